//! The graphs of `examples/` through the real binary, end to end: agents on a
//! loopback server speaking OpenAI's streamed chat completions, notifications
//! to a loopback Slack webhook, a person's step answered from another
//! invocation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use server::{serve_on_loopback, text};

mod server;

/// A loopback server for the examples' agents (`POST /v1/chat/completions`)
/// and Slack channel (`POST /slack`). Replies depend only on the prompt.
struct Loopback {
    base: String,
    slack_posts: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Loopback {
    fn start() -> Loopback {
        let slack_posts = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/slack", post(slack))
            .with_state(Arc::clone(&slack_posts));
        let (base, runtime) = serve_on_loopback(app);
        Loopback { base, slack_posts, _runtime: runtime }
    }

    fn slack_posts(&self) -> Vec<Value> {
        self.slack_posts.lock().expect("the posts lock").clone()
    }

    /// `examples/agents.json` with its provider on this server, and a
    /// channels file whose Slack channel posts here, both written in `dir`.
    fn config_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let text = std::fs::read_to_string(example("agents.json")).expect("examples/agents.json is readable");
        let mut agents: Value = serde_json::from_str(&text).expect("examples/agents.json is JSON");
        agents["providers"]["local"]["base_url"] = json!(format!("{}/v1", self.base));
        let agents_file = dir.join("agents.json");
        std::fs::write(&agents_file, agents.to_string()).expect("the agents file is written");
        let channels = json!({"channels": {"team-slack": {"kind": "slack", "webhook_url": format!("{}/slack", self.base)}}});
        let channels_file = dir.join("channels.json");
        std::fs::write(&channels_file, channels.to_string()).expect("the channels file is written");
        (agents_file, channels_file)
    }
}

/// What the examples' agents answer, by what they are asked (the first
/// phrase the prompt contains; the summary quotes the reviews, so it comes
/// first).
fn reply_to(prompt: &str) -> &'static str {
    const REPLIES: [(&str, &str); 9] = [
        ("Summarize these reviews", "Both reviews pass: ship it."),
        (
            "Title: Login is down",
            r#"{"severity": "critical", "title": "Login is down", "summary": "Nobody can sign in."}"#,
        ),
        (
            "Title: Typo on the pricing page",
            r#"{"severity": "low", "title": "Typo on the pricing page", "summary": "A word is misspelt."}"#,
        ),
        ("Assign labels", "Labels: bug, docs. Team: web."),
        (
            "Write a short blog post",
            r#"{"title": "Durable workflows in Rust", "body": "Every step is committed before the next begins."}"#,
        ),
        (
            "Revise the blog post",
            r#"{"body": "Every step is committed before the next begins, so a crash loses nothing."}"#,
        ),
        ("Describe what this change does", "It limits login attempts to five a minute per address."),
        ("security issues", "No security issues: the limit only slows repeated attempts."),
        ("compliance issues", "No compliance issues: no personal data is kept."),
    ];
    REPLIES
        .iter()
        .find(|(asked, _)| prompt.contains(asked))
        .map_or("I cannot help with that.", |(_, reply)| reply)
}

/// OpenAI's chat completions, streamed: the reply in pieces of four
/// characters, a finish chunk, a chunk with the usage, then `[DONE]`.
async fn chat_completions(axum::Json(request): axum::Json<Value>) -> axum::response::Response {
    assert_eq!(request["stream"], true, "the client streams");
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let prompt = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str());
    let prompt = prompt.unwrap_or_default();
    let reply = reply_to(prompt);
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": request["model"],
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    let mut body = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    let chars: Vec<char> = reply.chars().collect();
    for piece in chars.chunks(4) {
        body.push_str(&chunk(json!({"content": piece.iter().collect::<String>()}), Value::Null));
    }
    body.push_str(&chunk(json!({}), json!("stop")));
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": request["model"], "choices": [],
        "usage": {"prompt_tokens": prompt.split_whitespace().count(), "completion_tokens": chars.len().div_ceil(4)}});
    body.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from(body))
        .expect("a valid response")
}

/// A Slack incoming webhook: keeps the post, answers `ok`.
async fn slack(
    State(posts): State<Arc<Mutex<Vec<Value>>>>,
    axum::Json(post): axum::Json<Value>,
) -> &'static str {
    posts.lock().expect("the posts lock").push(post);
    "ok"
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

/// The binary on `db` with the agents and channels files.
fn cli(db: &Path, files: &(PathBuf, PathBuf), args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
        .arg("--database")
        .arg(db)
        .arg("--agents")
        .arg(&files.0)
        .arg("--channels")
        .arg(&files.1)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// The transcript `cli` prints for `args`, which must succeed; shown on
/// stderr, for the reader of the test's output.
fn transcript_of(db: &Path, files: &(PathBuf, PathBuf), args: &[&str]) -> String {
    let output = cli(db, files, args);
    let transcript = text(&output.stdout);
    eprintln!("{transcript}");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    transcript
}

/// The run id in the hint a parked run prints on stderr.
fn waiting_run(output: &Output) -> String {
    let stderr = text(&output.stderr);
    let hint = stderr.lines().find(|l| l.contains("roomkit-graph answer")).expect("how to answer");
    hint.split_whitespace().nth(2).expect("the run id").to_owned()
}

/// Asserts that each of `lines` is in `text`, in that order.
fn assert_in_order(text: &str, lines: &[&str]) {
    let mut rest = text;
    for line in lines {
        let at = rest.find(line).unwrap_or_else(|| panic!("{line:?} missing (or out of order) in:\n{text}"));
        rest = &rest[at + line.len()..];
    }
}

#[test]
fn the_examples_are_valid_with_their_agents_and_channels() {
    let files =
        ["agents.json", "channels.json", "bug-triage.json", "content-review.json", "parallel-checks.json"];
    let output = Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
        .args(["validate", "--agents", "agents.json", "--channels", "channels.json"])
        .args(files)
        .current_dir(example(""))
        .env("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/X")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "agents.json: ok (agents file)\nchannels.json: ok (channels file)\nbug-triage.json: ok\n\
         content-review.json: ok\nparallel-checks.json: ok\n"
    );
}

#[test]
fn bug_triage_escalates_a_critical_bug_on_slack_and_labels_the_rest() {
    let server = Loopback::start();
    let dir = tempfile::tempdir().unwrap();
    let files = server.config_files(dir.path());
    let db = dir.path().join("runs.db");
    let graph = example("bug-triage.json");
    let graph = graph.to_str().unwrap();

    let input = r#"{"title": "Login is down", "body": "Every sign-in answers 500."}"#;
    let transcript = transcript_of(&db, &files, &["run", graph, "--input", input]);
    assert_in_order(
        &transcript,
        &[
            "▶ run started: bug-triage v1",
            "triage … agent",
            r#"triage-agent: {"severity": "critical", "title": "Login is down", "summary": "Nobody can sign in."}"#,
            r#"triage ✓ {"severity":"critical","title":"Login is down","summary":"Nobody can sign in."}"#,
            "escalate 📣 [team-slack] Critical bug: Login is down (Nobody can sign in.)",
            "■ run completed",
        ],
    );
    assert!(!transcript.contains("assign"), "{transcript}");
    assert!(!transcript.contains("token"), "tokens go out live only:\n{transcript}");
    assert_eq!(server.slack_posts(), [json!({"text": "Critical bug: Login is down (Nobody can sign in.)"})]);

    let input = r#"{"title": "Typo on the pricing page"}"#;
    let transcript = transcript_of(&db, &files, &["run", graph, "--input", input]);
    assert_in_order(
        &transcript,
        &[
            r#"triage-agent: {"severity": "low""#,
            "labeler-agent: Labels: bug, docs. Team: web.",
            "■ run completed",
        ],
    );
    assert_eq!(server.slack_posts().len(), 1, "nothing is escalated");
}

#[test]
fn content_review_parks_for_a_person_and_goes_round_the_revision_loop() {
    let server = Loopback::start();
    let dir = tempfile::tempdir().unwrap();
    let files = server.config_files(dir.path());
    let db = dir.path().join("runs.db");
    let graph = example("content-review.json");

    let output =
        cli(&db, &files, &["run", graph.to_str().unwrap(), "--input", r#"{"topic": "durable workflows"}"#]);
    assert_eq!(output.status.code(), Some(3), "not on a terminal: {}", text(&output.stderr));
    assert_in_order(
        &text(&output.stdout),
        &[
            r#"writer-agent: {"title": "Durable workflows in Rust""#,
            "review ⏸ Approve \"Durable workflows in Rust\", or reject it with feedback: Every step is committed \
             before the next begins. [approve / reject]",
        ],
    );
    let run = waiting_run(&output);

    let reject = r#"{"action": "reject", "feedback": "Say what a crash does."}"#;
    let output = cli(&db, &files, &["answer", &run, "review", "--data", reject]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert_in_order(
        &text(&output.stdout),
        &[
            "cli → review: {\"action\":\"reject\",\"feedback\":\"Say what a crash does.\"}",
            "revise … agent",
            "review ⏸ Approve \"Durable workflows in Rust\", or reject it with feedback: Every step is committed \
             before the next begins, so a crash loses nothing. [approve / reject]",
        ],
    );

    let output = cli(&db, &files, &["answer", &run, "review", "--data", r#"{"action": "approve"}"#]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(server.slack_posts(), [json!({"text": "Published: Durable workflows in Rust"})]);

    let transcript = transcript_of(&db, &files, &["show", &run]);
    assert_in_order(
        &transcript,
        &[
            "▶ run started: content-review v1 {\"topic\":\"durable workflows\"}",
            "draft … agent",
            "writer-agent: {\"title\": \"Durable workflows in Rust\", \"body\": \"Every step is committed before the next begins.\"}",
            "review ⏸ Approve",
            "cli → review: {\"action\":\"reject\"",
            "writer-agent: {\"body\": \"Every step is committed before the next begins, so a crash loses nothing.\"}",
            "review ⏸ Approve",
            "cli → review: {\"action\":\"approve\"}",
            "publish 📣 [team-slack] Published: Durable workflows in Rust",
            "■ run completed",
        ],
    );
}

#[test]
fn parallel_checks_run_their_agents_and_notification_side_by_side() {
    let server = Loopback::start();
    let dir = tempfile::tempdir().unwrap();
    let files = server.config_files(dir.path());
    let db = dir.path().join("runs.db");
    let graph = example("parallel-checks.json");
    let change = r#"{"change": "Rate-limit POST /login"}"#;

    let transcript = transcript_of(&db, &files, &["run", graph.to_str().unwrap(), "--input", change]);
    for line in [
        "analyzer: It limits login attempts to five a minute per address.",
        "security-agent: No security issues: the limit only slows repeated attempts.",
        "compliance-agent: No compliance issues: no personal data is kept.",
        "notify 📣 [team-slack] Checking a change: It limits login attempts to five a minute per address.",
        "summarizer: Both reviews pass: ship it.",
        "■ run completed",
    ] {
        assert!(transcript.contains(line), "{line:?} missing from:\n{transcript}");
    }
    assert_eq!(server.slack_posts().len(), 1);
}
