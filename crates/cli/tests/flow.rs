//! Flow control through the real binary, with a model provider stand-in on
//! loopback that speaks OpenAI's streaming protocol and records when each
//! request comes and how many are in flight: `serve --max-runs` drives at
//! most that many runs at once, and a provider's `requests_per_minute`
//! paces the requests of all runs of the process.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client};

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
    /// By the key a prompt names (`for KEY #N`).
    keys: Mutex<HashMap<String, KeySeen>>,
    /// While set, calls are held (counted in flight) until it is cleared.
    held: AtomicBool,
    released: tokio::sync::Notify,
}

impl Seen {
    /// Waits while calls are held.
    async fn pass(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !self.held.load(Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }

    /// Lets the calls held go, and the next ones pass.
    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

/// What the stand-in saw of one key: its calls in flight, the most at once,
/// and the Ns in the order they came.
#[derive(Default)]
struct KeySeen(usize, usize, Vec<u64>);

/// The key and number a prompt `... for KEY #N` names.
fn key_of(body: &Value) -> Option<(String, u64)> {
    let prompt = body["messages"].as_array()?.iter().rev().find_map(|message| message["content"].as_str())?;
    let (key, n) = prompt.rsplit_once(" for ")?.1.split_once(" #")?;
    Some((key.to_owned(), n.trim().parse().ok()?))
}

/// A chat completion, streamed, after `delay`: one piece of text, then the end.
async fn complete(seen: Arc<Seen>, delay: Duration, body: Value) -> impl IntoResponse {
    seen.arrivals.lock().unwrap().push(Instant::now());
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let key = key_of(&body);
    if let Some((key, n)) = &key {
        let mut keys = seen.keys.lock().unwrap();
        let KeySeen(flying, most, order) = keys.entry(key.clone()).or_default();
        *flying += 1;
        *most = (*most).max(*flying);
        order.push(*n);
    }
    seen.pass().await;
    tokio::time::sleep(delay).await;
    if let Some((key, _)) = &key {
        seen.keys.lock().unwrap().get_mut(key).unwrap().0 -= 1;
    }
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    let body = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"delta": {"content": "a stand-in's reply"}}]})
    );
    ([("content-type", "text/event-stream")], body)
}

/// Serves the stand-in on loopback, each reply after `delay`: its base URL and what it sees.
async fn stand_in(delay: Duration) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post({
            let seen = Arc::clone(&seen);
            move |axum::Json(body): axum::Json<Value>| complete(Arc::clone(&seen), delay, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// A server whose agents use the stand-in at `base` (with `provider` merged
/// into the provider's settings), started with `extra` arguments, and a
/// token with a graph of one agent step stored.
async fn server_with_agent(base: &str, provider: Value, extra: &[&str]) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        json!({"kind": "openai", "base_url": format!("{base}/v1"), "retry": {"max_attempts": 1}});
    settings.as_object_mut().unwrap().extend(provider.as_object().unwrap().clone());
    let agents = json!({"providers": {"stand-in": settings},
        "agents": [{"id": "writer", "provider": "stand-in", "model": "any"}]});
    let file = dir.path().join("agents.json");
    std::fs::write(&file, agents.to_string()).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let args: Vec<&str> = [&["--agents", file.as_str(), "--poll", "100ms"][..], extra].concat();
    let server = Server::start_on(dir.path().join("runs.db"), &args, "warn", dir);
    let token = server.token("acme");
    let graph = json!({"id": "write", "name": "Write", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "draft", "type": "agent", "config": {"agent_id": "writer", "prompt_template": "Write {{trigger.n}}"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "draft"}, {"source": "draft", "target": "end"}]});
    let made = client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph).send().await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED, "{}", made.text().await.unwrap());
    (server, token)
}

/// Starts `runs` runs and waits for each to complete.
async fn run_all(server: &Server, token: &str, runs: usize) {
    let mut started = Vec::new();
    for n in 0..runs {
        let run = server.post(token, "/v1/graphs/write/runs", &json!({"n": n})).await;
        started.push(run["run_id"].as_str().unwrap().to_owned());
    }
    for run_id in &started {
        let done = server.until_run(token, run_id, |run| run["status"] != "running").await;
        assert_eq!(done["status"], "completed", "{done}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_drives_at_most_max_runs_runs_at_once() {
    let (base, seen) = stand_in(Duration::from_millis(300)).await;
    let (server, token) = server_with_agent(&base, json!({}), &["--max-runs", "2"]).await;
    run_all(&server, &token, 8).await;
    assert_eq!(seen.arrivals.lock().unwrap().len(), 8, "one call a run");
    assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), 2, "two at a time, and no more");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_providers_requests_per_minute_paces_every_run_of_the_process() {
    let (base, seen) = stand_in(Duration::ZERO).await;
    let (server, token) = server_with_agent(&base, json!({"requests_per_minute": 300}), &[]).await;
    run_all(&server, &token, 6).await;
    let arrivals = seen.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 6);
    // 300 a minute: one every 200 ms, whatever the runs started together.
    for pair in arrivals.windows(2) {
        let apart = pair[1] - pair[0];
        assert!(apart >= Duration::from_millis(190), "two requests {apart:?} apart");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_past_their_keys_or_organizations_limit_wait_their_turn_across_processes_on_postgres() {
    const RUNS: u64 = 200;
    const KEYS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
    // The calls are held until every run is started, so that each key's
    // runs pile up.
    let (base, seen) = stand_in(Duration::from_millis(50)).await;
    seen.held.store(true, Ordering::SeqCst);
    let url = roomkit_graph_pgtest::database();
    let dir = tempfile::tempdir().unwrap();
    let agents = json!({"providers": {"stand-in": {"kind": "openai", "base_url": format!("{base}/v1")}},
        "agents": [{"id": "writer", "provider": "stand-in", "model": "any"}]});
    let file = dir.path().join("agents.json");
    std::fs::write(&file, agents.to_string()).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let driving = ["--agents", file.as_str(), "--poll", "100ms"];
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let serving = [&driving[..], &["--metrics-listen", &listen]].concat();
    let server = Server::start_on(url.clone().into(), &serving, "warn", tempfile::tempdir().unwrap());
    server.until_logged("the metrics address", |line| line.starts_with("metrics: "));
    // The organization runs at most 10 at once: fewer than its 4 keys' 3.
    let set = server::cli(&url, &["--org", "acme", "concurrency", "set", "10"]);
    assert!(set.status.success(), "{}", server::text(&set.stderr));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let child = server::command(&url, &[&driving[..], &["worker", "--poll", "100ms"]].concat())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            Worker(child)
        })
        .collect();
    let token = server.token("acme");
    let graph = json!({"id": "write", "name": "Write", "trigger": {"type": "manual"},
        "concurrency": {"limit": 3, "key": "{{trigger.customer}}"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "draft", "type": "agent",
                   "config": {"agent_id": "writer", "prompt_template": "Write for {{trigger.customer}} #{{trigger.n}}"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "draft"}, {"source": "draft", "target": "end"}]});
    let made = client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph).send().await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED, "{}", made.text().await.unwrap());

    let mut queued = 0;
    for n in 0..RUNS {
        let customer = KEYS[usize::try_from(n).unwrap() % KEYS.len()];
        let run = server.post(&token, "/v1/graphs/write/runs", &json!({"customer": customer, "n": n})).await;
        queued += usize::from(run["status"] == "queued");
    }
    // 0, 4 and 8 of acme, 1, 5 and 9 of globex, 2 and 6 of initech, 3 and 7
    // of umbrella run; 10 of initech is the organization's eleventh.
    assert_eq!(queued, 190, "runs past a limit open queued");
    let show = server::cli(&url, &["--org", "acme", "--json", "concurrency", "show"]);
    let show: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(show["max_running"], 10);
    let depths: Vec<_> =
        show["queued"].as_array().unwrap().iter().map(|depth| depth["queued"].clone()).collect();
    assert_eq!(depths, [json!(47), json!(47), json!(48), json!(48)], "{show}");
    let metrics =
        client().get(format!("http://{listen}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = r#"roomkit_runs_queued{org="acme",graph="write",key="umbrella"} 48"#;
    assert!(metrics.lines().any(|sample| sample == line), "{metrics}");
    assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), 10, "the organization's 10, each called");
    seen.release();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = server.get(&token, "/v1/runs?status=completed&limit=1000").await;
        if done["runs"].as_array().unwrap().len() == RUNS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all runs completed: {}",
            done["runs"].as_array().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(workers);
    assert_eq!(seen.most_in_flight.load(Ordering::SeqCst), 10, "at most the organization's 10 at once");
    let metrics =
        client().get(format!("http://{listen}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = r#"roomkit_runs_queued{org="acme",graph="write",key="umbrella"} 0"#;
    assert!(metrics.lines().any(|sample| sample == line), "an emptied queue reads 0: {metrics}");

    let keys = seen.keys.lock().unwrap();
    for key in KEYS {
        let KeySeen(_, most, order) = &keys[key];
        assert!(*most <= 3, "{key}: at most 3 at once, not {most}");
        if ["acme", "globex"].contains(&key) {
            assert_eq!(*most, 3, "{key}: 3 at first");
        }
        let created: Vec<u64> =
            (0..RUNS).filter(|n| KEYS[usize::try_from(*n).unwrap() % KEYS.len()] == key).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, created, "{key}: each run called once");
        // Places go in the order runs were created: a run comes at most two
        // places (the limit, less one) ahead of its turn.
        for (arrived, n) in order.iter().enumerate() {
            let turn = created.iter().position(|c| c == n).unwrap();
            assert!(arrived + 2 >= turn, "{key}: run #{n} came {arrived}th, its turn is {turn}: {order:?}");
        }
    }
}

/// A worker process, killed when dropped.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
