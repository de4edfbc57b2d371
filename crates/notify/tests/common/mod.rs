//! Real servers on loopback for the tests: an HTTP server that records what
//! it receives and fails on request, and an SMTP server (mailin-embedded).
//!
//! Test helpers: a broken fixture should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use roomkit_graph::{
    EngineError, Event, Graph, Handlers, NoWaitClock, Node, StreamMode, Trigger, Workflow, WorkflowEngine,
};
use roomkit_graph_notify::NotificationHandler;
use serde_json::Value;

/// One request the HTTP server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How the HTTP server answers.
#[derive(Clone, Debug)]
pub struct Answers {
    /// The first `failures` requests get `failure_status`.
    pub failures: usize,
    pub failure_status: u16,
    /// The others get `status` with `body`.
    pub status: u16,
    pub body: &'static str,
    /// Waits this long before answering.
    pub delay: Duration,
}

impl Answers {
    pub fn ok(body: &'static str) -> Self {
        Answers { failures: 0, failure_status: 500, status: 200, body, delay: Duration::ZERO }
    }

    pub fn failing_first(failures: usize, body: &'static str) -> Self {
        Answers { failures, ..Answers::ok(body) }
    }

    pub fn always(status: u16, body: &'static str) -> Self {
        Answers { status, body, ..Answers::ok(body) }
    }
}

struct HttpState {
    answers: Answers,
    seen: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// An HTTP server on 127.0.0.1, port chosen by the system; it stops with the
/// test's runtime.
pub struct HttpServer {
    pub addr: SocketAddr,
    state: Arc<HttpState>,
}

impl HttpServer {
    pub async fn start(answers: Answers) -> HttpServer {
        let state =
            Arc::new(HttpState { answers, seen: AtomicUsize::new(0), received: Mutex::new(Vec::new()) });
        let app = Router::new().fallback(record).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        HttpServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("not poisoned").clone()
    }
}

async fn record(
    State(state): State<Arc<HttpState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    let body = String::from_utf8_lossy(&body).into_owned();
    state.received.lock().expect("not poisoned").push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let answers = &state.answers;
    if !answers.delay.is_zero() {
        tokio::time::sleep(answers.delay).await;
    }
    let n = state.seen.fetch_add(1, Ordering::SeqCst);
    if n < answers.failures {
        (StatusCode::from_u16(answers.failure_status).expect("a status"), "try again later")
    } else {
        (StatusCode::from_u16(answers.status).expect("a status"), answers.body)
    }
}

/// A message the SMTP server accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Mail {
    /// The value of the header `name` (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = value.as_mut() {
                    value.push_str(line.trim_start());
                    continue;
                }
            } else if value.is_some() {
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }

    pub fn body(&self) -> String {
        self.data.split_once("\r\n\r\n").map(|(_, body)| body.trim_end().to_owned()).unwrap_or_default()
    }
}

#[derive(Default)]
struct SmtpState {
    reject: HashSet<String>,
    /// Logins it accepts: (username, password).
    login: Option<(String, String)>,
    logins: Vec<(String, String)>,
    mails: Vec<Mail>,
}

#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<SmtpState>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_owned();
        self.to.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if self.state.lock().expect("not poisoned").reject.contains(to) {
            return response::NO_MAILBOX;
        }
        self.to.push(to.to_owned());
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail {
            from: self.from.clone(),
            to: self.to.clone(),
            data: String::from_utf8_lossy(&self.data).into_owned(),
        };
        self.state.lock().expect("not poisoned").mails.push(mail);
        response::OK
    }

    fn auth_plain(&mut self, _authorization_id: &str, authentication_id: &str, password: &str) -> Response {
        let mut state = self.state.lock().expect("not poisoned");
        state.logins.push((authentication_id.to_owned(), password.to_owned()));
        match &state.login {
            Some((user, pass)) if user == authentication_id && pass == password => response::AUTH_OK,
            _ => response::INVALID_CREDENTIALS,
        }
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.auth_plain("", username, password)
    }
}

/// A real SMTP server (mailin-embedded) on 127.0.0.1, on a thread of its own
/// for the rest of the test process.
pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<SmtpState>>,
    /// The PEM certificate it presents after STARTTLS, when it offers TLS.
    pub certificate: Option<String>,
    _files: Option<tempfile::TempDir>,
}

impl SmtpServer {
    /// A plain-text server rejecting `reject` recipients with 550.
    pub fn start(reject: &[&str]) -> SmtpServer {
        SmtpServer::launch(reject, None)
    }

    /// A server offering STARTTLS (self-signed for 127.0.0.1) and AUTH, which
    /// accepts `username`/`password`.
    pub fn start_tls(username: &str, password: &str) -> SmtpServer {
        SmtpServer::launch(&[], Some((username.to_owned(), password.to_owned())))
    }

    fn launch(reject: &[&str], login: Option<(String, String)>) -> SmtpServer {
        let state = Arc::new(Mutex::new(SmtpState {
            reject: reject.iter().map(|address| (*address).to_owned()).collect(),
            login: login.clone(),
            ..SmtpState::default()
        }));
        let recorder =
            Recorder { state: Arc::clone(&state), from: String::new(), to: Vec::new(), data: Vec::new() };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local address").port();
        let mut server = Server::new(recorder);
        server.with_name("mx.test").with_tcp_listener(listener).with_num_threads(2);
        let mut certificate = None;
        let mut files = None;
        if login.is_some() {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let certified =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
            let cert_path = dir.path().join("cert.pem");
            let key_path = dir.path().join("key.pem");
            std::fs::write(&cert_path, certified.cert.pem()).expect("write the certificate");
            std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write the key");
            server
                .with_ssl(SslConfig::SelfSigned {
                    cert_path: cert_path.display().to_string(),
                    key_path: key_path.display().to_string(),
                })
                .expect("TLS set up")
                .with_auth(mailin_embedded::AuthMechanism::Plain);
            certificate = Some(certified.cert.pem());
            files = Some(dir);
        }
        std::thread::spawn(move || {
            // It serves until the test process ends.
            let _ = server.serve();
        });
        SmtpServer { port, state, certificate, _files: files }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.lock().expect("not poisoned").mails.clone()
    }

    pub fn logins(&self) -> Vec<(String, String)> {
        self.state.lock().expect("not poisoned").logins.clone()
    }
}

/// start → `notify` (a notification node with `config`) → end.
pub fn notify_graph(config: Value) -> Graph {
    let mut graph = Graph::new("notify-test", "Notify test", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("notify", "notification").with_config(config),
            Node::new("end", "end"),
        ])
        .expect("distinct node ids");
    graph.add_edges([roomkit_graph::Edge::new("start", "notify"), roomkit_graph::Edge::new("notify", "end")]);
    graph
}

/// An engine running `graph` with `handler` for notification nodes; backoffs
/// do not really wait.
pub fn engine(graph: Graph, handler: NotificationHandler) -> WorkflowEngine {
    Workflow::new(graph, Handlers::builtin().with("notification", handler)).with_clock(NoWaitClock).engine()
}

/// Runs `engine` on `trigger`, streaming custom events: the payloads, and how
/// the run ended.
pub async fn run_custom(
    engine: &mut WorkflowEngine,
    trigger: Value,
) -> (Vec<Value>, Result<(), EngineError>) {
    let mut stream = engine.stream(trigger, &[StreamMode::Custom]);
    let mut payloads = Vec::new();
    let mut ended = Ok(());
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event { payload, node_id, .. }) => {
                assert_eq!(node_id.as_deref(), Some("notify"));
                payloads.push(payload);
            }
            Err(error) => ended = Err(error),
        }
    }
    (payloads, ended)
}
