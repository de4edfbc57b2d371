//! A real `roomkit-graph serve` process on loopback, tokens made with the real
//! `token create`, a small Server-Sent Events reader, the binary run once
//! (`cli`), stand-ins for outside services served on loopback, and graphs
//! several test files use.
#![allow(dead_code, reason = "each test file uses only some helpers")]

pub(crate) mod openapi;

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A `serve` process on its own database, stopped (SIGTERM) when dropped.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) db: PathBuf,
    /// What the server printed on stderr after its address.
    pub(crate) logs: Arc<Mutex<Vec<String>>>,
    args: Vec<String>,
    level: String,
    child: Option<Child>,
    _dir: TempDir,
}

impl Server {
    /// Starts `serve` on a free loopback port with `extra` arguments.
    pub(crate) fn start(extra: &[&str]) -> Server {
        Server::start_logging(extra, "warn")
    }

    /// Starts `serve` with logs at `level` (RUST_LOG).
    pub(crate) fn start_logging(extra: &[&str], level: &str) -> Server {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("runs.db");
        Server::start_on(db, extra, level, dir)
    }

    /// Starts `serve` on the database `db` (a file, or a PostgreSQL URL that
    /// other servers may share), keeping `dir` as long as it runs.
    pub(crate) fn start_on(db: PathBuf, extra: &[&str], level: &str, dir: TempDir) -> Server {
        let args: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (child, base) = spawn(&db, "127.0.0.1:0", &args, level, &logs);
        Server { base, db, logs, args, level: level.to_owned(), child: Some(child), _dir: dir }
    }

    /// Stops the server (SIGTERM) and starts it again on the same database,
    /// address and arguments: what a deployment does, clients seeing their
    /// connections drop.
    pub(crate) fn restart(&mut self) {
        assert!(self.stop().success(), "serve exits 0 on SIGTERM");
        self.start_again();
    }

    /// Kills the server with SIGKILL (a crash: it cleans nothing up) and
    /// starts it again on the same database, address and arguments.
    pub(crate) fn crash_and_restart(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        let killed =
            Command::new("kill").args(["-KILL", &child.id().to_string()]).status().expect("kill runs");
        assert!(killed.success());
        let _ = child.wait();
        self.start_again();
    }

    /// Starts the stopped server again on its database, address and arguments.
    pub(crate) fn start_again(&mut self) {
        let address = self.base.strip_prefix("http://").expect("the address is http").to_owned();
        let (child, base) = spawn(&self.db, &address, &self.args, &self.level, &self.logs);
        assert_eq!(base, self.base, "the server is back on its address");
        self.child = Some(child);
    }

    /// A new token of `org`, made with `token create`.
    pub(crate) fn token(&self, org: &str) -> String {
        let output = command(&self.db, &["--org", org, "token", "create", "--label", "test"])
            .output()
            .expect("token create runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("the token is text").trim().to_owned()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with `token`: the JSON answer.
    pub(crate) async fn get(&self, token: &str, path: &str) -> Value {
        let response =
            client().get(self.url(path)).bearer_auth(token).send().await.expect("the server answers");
        response.json().await.expect("a JSON answer")
    }

    /// POST `body` to `path` with `token`: the JSON answer.
    pub(crate) async fn post(&self, token: &str, path: &str, body: &Value) -> Value {
        let request = client().post(self.url(path)).bearer_auth(token).json(body);
        request.send().await.expect("the server answers").json().await.expect("a JSON answer")
    }

    /// Polls a run until `done` holds for it (for 20 s at most).
    pub(crate) async fn until_run(&self, token: &str, run_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let run: Value = self.get(token, &format!("/v1/runs/{run_id}")).await;
            if done(&run) {
                return run;
            }
            assert!(std::time::Instant::now() < deadline, "the run never got there: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Starts `roomkit-graph demo` on a free loopback port in a folder of its
    /// own; `logs` keeps what it prints on stdout after its banner's address
    /// (its notifications among them).
    pub(crate) fn demo() -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Server::demo_in(dir.path().join("demo"), dir)
    }

    /// Starts `roomkit-graph demo --dir folder`, keeping `dir` while it runs.
    pub(crate) fn demo_in(folder: PathBuf, dir: TempDir) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
            .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
            .arg(&folder)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("demo starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut printed = Vec::new();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                panic!("the demo ended before its banner: {printed:?} {}", errors.join().unwrap_or_default());
            };
            if let Some(open) = line.trim().strip_prefix("Open") {
                break open.trim().trim_end_matches("/#inbox").to_owned();
            }
            printed.push(line);
        };
        let logs = Arc::new(Mutex::new(printed));
        let kept = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().expect("the log lock").push(line);
            }
        });
        Server {
            base,
            db: folder.join("demo.db"),
            logs,
            args: Vec::new(),
            level: String::new(),
            child: Some(child),
            _dir: dir,
        }
    }

    /// Waits until the process has printed a line for which `found` holds (for 60 s at most).
    pub(crate) fn until_logged(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.logs.lock().expect("the log lock").iter().find(|line| found(line)) {
                return line.clone();
            }
            assert!(std::time::Instant::now() < deadline, "never printed {what}: {:?}", self.logs.lock());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        let killed =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(killed.success());
        child.wait().expect("serve exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `serve` on `db` listening on `listen`: the process and the base URL
/// it printed. Its stderr after that line goes to `logs`.
fn spawn(
    db: &Path,
    listen: &str,
    extra: &[String],
    level: &str,
    logs: &Arc<Mutex<Vec<String>>>,
) -> (Child, String) {
    let mut child = command(db, &["serve", "--listen", listen, "--schedule-tick", "100ms"])
        .args(extra)
        .env("RUST_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("serve prints where it listens").expect("stderr is text");
        if let Some(address) = line.strip_prefix("serve: listening on ") {
            break address.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on it.
    let kept = Arc::clone(logs);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().expect("the log lock").push(line);
        }
    });
    (child, base)
}

pub(crate) fn command(db: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomkit-graph"));
    command.arg("--database").arg(db).args(args).stdin(Stdio::null());
    command
}

/// Runs the binary once on the database `db` and waits for it.
pub(crate) fn cli(db: impl AsRef<OsStr>, args: &[&str]) -> Output {
    command(db, args).output().expect("the binary runs")
}

/// A command's output as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Serves `app` on a loopback port, on a runtime of its own (kept alive by
/// the caller): the base URL and the runtime.
pub(crate) fn serve_on_loopback(app: axum::Router) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the loopback server");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("the bound address"));
    runtime.spawn(async move { axum::serve(listener, app).await.expect("the loopback server serves") });
    (base, runtime)
}

/// Legal and security approve a release in parallel (`join`: "all" or
/// "any"); with "all", a lint check completes beside them (with "any" it
/// would win at once).
pub(crate) fn approvals_graph(id: &str, join: &str) -> Value {
    let mut nodes = vec![
        json!({"id": "start", "type": "start"}),
        json!({"id": "approvals", "type": "parallel", "config": {"join": join}}),
        json!({"id": "legal", "type": "human", "parent": "approvals",
               "config": {"prompt": "Legal: ship {{trigger.release}}?", "actions": ["approve", "reject"]}}),
        json!({"id": "security", "type": "human", "parent": "approvals",
               "config": {"prompt": "Security: ship {{trigger.release}}?",
                          "actions": ["approve", "reject"]}}),
    ];
    if join == "all" {
        nodes.push(json!({"id": "lint", "type": "function", "parent": "approvals",
                          "config": {"action": "set_context", "values": {"clean": true}}}));
    }
    nodes.push(json!({"id": "end", "type": "end"}));
    json!({"id": id, "name": "Release", "trigger": {"type": "manual"}, "nodes": nodes,
           "edges": [{"source": "start", "target": "approvals"}, {"source": "approvals", "target": "end"}]})
}

/// A post drafted, reviewed by a person (approve publishes it, reject sends
/// it back to the draft), published; named `name`.
pub(crate) fn review_graph(name: &str) -> Value {
    json!({"id": "review", "name": name, "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "draft", "type": "function", "config": {"action": "set_context", "values": {"body": "v1"}}},
                  {"id": "review", "type": "human",
                   "config": {"prompt": "Approve the post on {{trigger.topic}}?", "actions": ["approve", "reject"]}},
                  {"id": "publish", "type": "function", "config": {"action": "set_context", "values": {"done": true}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "draft"}, {"source": "draft", "target": "review"},
                  {"source": "review", "target": "publish",
                   "condition": {"type": "field", "path": "review.output.action", "op": "eq", "value": "approve"}},
                  {"source": "review", "target": "draft",
                   "condition": {"type": "field", "path": "review.output.action", "op": "eq", "value": "reject"}},
                  {"source": "publish", "target": "end"}]})
}

/// A client with the bearer token.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client")
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<String>,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// Reads Server-Sent Events from a streaming response.
pub(crate) struct SseReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub(crate) fn new(response: reqwest::Response) -> SseReader {
        SseReader { body: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next event (comments and keep-alives skipped); `None` when the
    /// stream ended.
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(SseEvent { id, event, data });
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(error)) => panic!("the event stream broke: {error}"),
                None => return None,
            }
        }
    }
}
