//! The web page at `/` of a real `roomkit-graph serve`, in a real headless
//! Chromium driven over WebDriver (chromedriver): a wrong token refused, a run
//! started from the page and followed live, its person's step answered with a
//! click (a refused answer showing the server's reason), a run cancelled, the
//! list filtered, an agent's reply growing as it streams, and the page
//! resuming its live stream after the server restarts; a parallel node's
//! waiting children answered form by form (`join: "all"` and `"any"`) and an
//! error route read in the thread. What the page did is checked over the API
//! too.
//!
//! Needs `/usr/bin/chromedriver` (or `CHROMEDRIVER`) and Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM`): Debian's `chromium-driver` and
//! `chromium`, which `scripts/test` installs where they are missing.

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test")]

mod browser;
mod server;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use browser::Browser;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use server::{Server, approvals_graph, client};
use tokio::sync::mpsc;

/// A person reviews a post on a topic; "later" is offered but no edge takes
/// it, so the run refuses it.
fn review_graph() -> Value {
    json!({"id": "review", "name": "Review", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "review", "type": "human",
                   "config": {"prompt": "Approve the post on {{trigger.topic}}?",
                              "actions": ["approve", "reject", "later"]}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "review"},
                  {"source": "review", "target": "end",
                   "condition": {"type": "field", "path": "review.output.action",
                                 "op": "in", "value": ["approve", "reject"]}}]})
}

async fn create_graph(server: &Server, token: &str, graph: &Value) {
    let response =
        client().post(server.url("/v1/graphs")).bearer_auth(token).json(graph).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_follows_answers_and_cancels_runs_in_the_browser() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph()).await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/")).await;

    // A wrong token is refused with the server's reason.
    browser.fill("#token", "rkg_wrong").await;
    browser.click("#login-button").await;
    let refused = browser.text("the refusal of a wrong token", "#login-error").await;
    assert_eq!(refused, "The server refused the token: the token is not valid");
    assert_eq!(browser.run("return document.getElementById('app').hidden").await, true);
    browser.sign_in(&token).await;

    // A run started from the page, its topic holding markup that must stay text.
    browser
        .until("the graph to start", "return document.querySelector('#start-graph option[value=review]')")
        .await;
    browser.click("#start-box summary").await;
    browser.select("#start-graph", "review").await;
    browser.fill("#start-input", r#"{"topic": "<b>rust</b>"}"#).await;
    browser.click("#start-button").await;
    let run_id = browser
        .until(
            "the new run waiting in the list",
            "const row = document.querySelector('#runs tbody tr[data-status=waiting]'); \
             return row && row.dataset.runId",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(browser.text("the open run", "#run-id").await, run_id);
    let actions = browser
        .until(
            "the answer buttons",
            "const form = document.querySelector('#answers:not([hidden]) form[data-node=review]'); \
             return form && [...form.querySelectorAll('.answer-actions button')].map(b => b.dataset.action)",
        )
        .await;
    assert_eq!(actions, json!(["approve", "reject", "later"]));
    assert_eq!(
        browser.text("the prompt", "#answers .answer-prompt").await,
        "Approve the post on <b>rust</b>?"
    );
    let markup = browser.run("return document.querySelectorAll('#run b, #runs b').length").await;
    assert_eq!(markup, 0, "text from runs is never read as HTML");
    let waiting = browser.text("the question in the thread", "#thread [data-type=node_waiting] p").await;
    assert_eq!(waiting, "Approve the post on <b>rust</b>?");

    // An answer the run refuses shows the server's reason and changes nothing.
    browser.click("#answers button[data-action=later]").await;
    let reason = browser.text("the refusal of the answer", "#answers .answer-error").await;
    assert!(reason.starts_with("The answer was refused: answer refused for \"review\""), "{reason}");
    let run: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "waiting");

    // The person answers with a click, their name and extra data.
    browser.fill("#answers .answer-by", "ada").await;
    browser.fill("#answers .answer-extra", r#"{"note": "ship it"}"#).await;
    browser.click("#answers button[data-action=approve]").await;
    browser.text("the end of the run in the thread", "#thread [data-type=run_completed]").await;
    browser
        .until(
            "the run completed in the header",
            "return document.getElementById('run-status').textContent === 'completed'",
        )
        .await;
    let row = format!("#runs tr[data-run-id='{run_id}'][data-status=completed]");
    browser.until("the run completed in the list", &format!("return document.querySelector({row:?})")).await;
    assert_eq!(browser.run("return document.querySelectorAll('#answers form').length").await, 0);
    let answer = browser.text("the answer in the thread", "#thread [data-type=answer_received]").await;
    assert!(answer.starts_with("ada → review"), "{answer}");

    // The API agrees: completed with that answer, every entry shown once, in order.
    let run: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "completed");
    let page: Value = server.get(&token, &format!("/v1/runs/{run_id}/transcript")).await;
    let answered =
        page["events"].as_array().unwrap().iter().find(|e| e["type"] == "answer_received").unwrap();
    assert_eq!(answered["data"], json!({"note": "ship it", "action": "approve"}));
    assert_eq!(answered["by"], "ada");
    let last = run["last_seq"].as_u64().unwrap();
    assert_eq!(browser.thread_seqs().await, (1..=last).collect::<Vec<_>>());

    // Another run, started over the API, shows up in the list; opened and cancelled there.
    let other: Value = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "go"})).await;
    let other_id = other["run_id"].as_str().unwrap().to_owned();
    let button = format!("#runs tr[data-run-id='{other_id}'] button");
    browser.until("the second run in the list", &format!("return document.querySelector({button:?})")).await;
    browser.click(&button).await;
    browser.until("its question", "return document.querySelector('#answers form')").await;
    browser.click("#cancel").await;
    browser.click("#cancel-yes").await;
    let cancelled = browser.text("the cancellation in the thread", "#thread [data-type=run_cancelled]").await;
    assert!(cancelled.contains("cancelled on the web page"), "{cancelled}");
    let other: Value = server.get(&token, &format!("/v1/runs/{other_id}")).await;
    assert_eq!(other["status"], "cancelled");

    // The list filtered by status.
    browser.select("#filter-status", "completed").await;
    let listed = browser
        .until(
            "only the completed run",
            "const ids = [...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.runId); \
             return ids.length === 1 && ids",
        )
        .await;
    assert_eq!(listed, json!([run_id]));

    // Another organization's token: the run open in the address is not found, the list is empty.
    let globex = server.token("globex");
    browser.click("#sign-out").await;
    browser.sign_in(&globex).await;
    let missing = browser.text("that the run is not found", "#run-error").await;
    let expected = format!(
        "Run {other_id} was not found: it does not exist, or it belongs to another organization \
         than this token's."
    );
    assert_eq!(missing, expected);
    browser.text("an empty list", "#runs-empty:not([hidden])").await;
    browser.close().await;
}

/// A loopback OpenAI-compatible server whose one streamed reply is made of
/// the pieces the test sends, as it sends them; it ends when the sender is dropped.
async fn streaming_model() -> (String, mpsc::UnboundedSender<String>) {
    let (pieces, receiver) = mpsc::unbounded_channel::<String>();
    let receiver = Arc::new(Mutex::new(Some(receiver)));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async move {
            let chunk = |delta: Value, finish: Value| {
                let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
                format!("data: {chunk}\n\n")
            };
            let Some(receiver) = receiver.lock().unwrap().take() else {
                return axum::response::Response::builder()
                    .status(500)
                    .body(axum::body::Body::empty())
                    .unwrap();
            };
            let pieces = futures_util::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|piece| (piece, receiver))
            })
            .map(move |piece| chunk(json!({"content": piece}), Value::Null));
            let head =
                futures_util::stream::iter([chunk(json!({"role": "assistant", "content": ""}), Value::Null)]);
            let tail =
                futures_util::stream::iter([chunk(json!({}), json!("stop")), "data: [DONE]\n\n".to_owned()]);
            let body = head.chain(pieces).chain(tail).map(Ok::<_, Infallible>);
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(axum::body::Body::from_stream(body))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, pieces)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_an_agent_typing_and_resumes_after_the_server_restarts() {
    let (model, pieces) = streaming_model().await;
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.json");
    let agents_file = json!({"providers": {"fake": {"kind": "openai", "base_url": format!("{model}/v1")}},
                             "agents": [{"id": "writer", "provider": "fake", "model": "m"}]});
    std::fs::write(&agents, agents_file.to_string()).unwrap();
    let mut server = Server::start(&["--agents", agents.to_str().unwrap()]);
    let token = server.token("acme");
    let graph = json!({"id": "post", "name": "Post", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "write", "type": "agent",
                   "config": {"agent_id": "writer", "prompt_template": "Write about {{trigger.topic}}"}},
                  {"id": "review", "type": "human",
                   "config": {"prompt": "Publish it?", "actions": ["publish"]}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "write"}, {"source": "write", "target": "review"},
                  {"source": "review", "target": "end"}]});
    create_graph(&server, &token, &graph).await;
    let run: Value = server.post(&token, "/v1/graphs/post/runs", &json!({"topic": "rust"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();

    // The run opened from its address, once signed in.
    let browser = Browser::start().await;
    browser.goto(&server.url(&format!("/#run={run_id}"))).await;
    browser.sign_in(&token).await;
    browser.text("the start of the run", "#thread [data-type=run_started]").await;
    browser
        .until(
            "the live stream",
            "return document.getElementById('follow-state').textContent === 'Following live.'",
        )
        .await;

    // The reply grows in a typing bubble as it streams, then the message replaces it.
    pieces.send("Durable runs ".to_owned()).unwrap();
    assert_eq!(browser.text("the first piece", "#thread .typing p").await, "Durable runs");
    pieces.send("survive restarts.".to_owned()).unwrap();
    browser
        .until(
            "the second piece",
            "const p = document.querySelector('#thread .typing p'); \
             return p && p.textContent === 'Durable runs survive restarts.'",
        )
        .await;
    drop(pieces);
    let message = browser.text("the agent's message", "#thread [data-type=agent_message] p").await;
    assert_eq!(message, "Durable runs survive restarts.");
    assert_eq!(browser.run("return document.querySelectorAll('#thread .typing').length").await, 0);
    browser.until("the question", "return document.querySelector('#answers form')").await;

    // The server restarts: the page reconnects, resuming after the last entry it has.
    server.restart();
    browser.click("#answers button[data-action=publish]").await;
    browser.text("the end of the run", "#thread [data-type=run_completed]").await;
    let run: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "completed");
    let last = run["last_seq"].as_u64().unwrap();
    assert_eq!(browser.thread_seqs().await, (1..=last).collect::<Vec<_>>(), "no entry twice, none missed");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_waiting_child_of_a_parallel_node_has_its_own_answer_form() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &approvals_graph("release", "all")).await;
    create_graph(&server, &token, &approvals_graph("release-any", "any")).await;
    // A node type no handler serves fails, and its error route takes the run on.
    let routed = json!({"id": "routed", "name": "Routed", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"}, {"id": "shout", "type": "megaphone"},
                  {"id": "fallback", "type": "function",
                   "config": {"action": "set_context", "values": {"ok": true}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "shout"}, {"source": "shout", "target": "end"},
                  {"source": "shout", "target": "fallback", "condition": {"type": "error"}},
                  {"source": "fallback", "target": "end"}]});
    create_graph(&server, &token, &routed).await;
    let run: Value = server.post(&token, "/v1/graphs/release/runs", &json!({"release": "v2"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();

    // One form per waiting child, each with its own question and actions.
    let browser = Browser::start().await;
    browser.goto(&server.url(&format!("/#run={run_id}"))).await;
    browser.sign_in(&token).await;
    let forms = browser.answer_forms(2).await;
    assert_eq!(forms, json!(["legal", "security"]));
    let prompts = browser
        .run("return [...document.querySelectorAll('#answers .answer-prompt')].map(p => p.textContent)")
        .await;
    assert_eq!(prompts, json!(["Legal: ship v2?", "Security: ship v2?"]));
    let actions = browser
        .run(
            "return [...document.querySelectorAll('#answers form')] \
             .map(f => [...f.querySelectorAll('button')].map(b => b.dataset.action))",
        )
        .await;
    assert_eq!(actions, json!([["approve", "reject"], ["approve", "reject"]]));
    assert_eq!(browser.text("the node", "#run-node").await, "approvals (waiting on legal, security)");

    // Security's reviewer starts typing; legal approves: legal's form goes, security's stays as typed.
    browser.fill("#answers form[data-node=security] .answer-extra", "after the pen test").await;
    browser.fill("#answers form[data-node=legal] .answer-by", "ada").await;
    browser.click("#answers form[data-node=legal] button[data-action=approve]").await;
    let forms = browser.answer_forms(1).await;
    assert_eq!(forms, json!(["security"]));
    let kept = browser
        .run("return document.querySelector('#answers form[data-node=security] .answer-extra').value")
        .await;
    assert_eq!(kept, "after the pen test", "what was typed in the other form is kept");
    browser
        .until(
            "the focus on security's form",
            "const form = document.activeElement.closest('form'); \
             return form && form.dataset.node === 'security'",
        )
        .await;
    let answered = browser.text("legal's answer in the thread", "#thread [data-type=answer_received]").await;
    assert!(answered.starts_with("ada → legal"), "{answered}");
    let run: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!((&run["status"], &run["pending"]), (&json!("waiting"), &json!(["security"])));

    // Security approves: the parallel node completes with every child's output and the run ends.
    browser.click("#answers form[data-node=security] button[data-action=approve]").await;
    browser.text("the end of the run", "#thread [data-type=run_completed]").await;
    assert_eq!(browser.answer_forms(0).await, json!([]));
    let run: Value = server.get(&token, &format!("/v1/runs/{run_id}")).await;
    assert_eq!(run["status"], "completed");
    let page: Value = server.get(&token, &format!("/v1/runs/{run_id}/transcript")).await;
    let completed = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "node_completed" && e["node_id"] == "approvals")
        .expect("the parallel node completed");
    assert_eq!(
        completed["output"],
        json!({"legal": {"action": "approve"}, "lint": {"clean": true},
               "security": {"action": "approve", "feedback": "after the pen test"}})
    );

    // With join "any" the first answer wins and the other child's waiting point closes in the thread.
    let any: Value = server.post(&token, "/v1/graphs/release-any/runs", &json!({"release": "v3"})).await;
    let any_id = any["run_id"].as_str().unwrap().to_owned();
    browser.goto(&server.url(&format!("/#run={any_id}"))).await;
    browser.answer_forms(2).await;
    browser.click("#answers form[data-node=security] button[data-action=reject]").await;
    let closed = browser.text("the closed waiting point", "#thread [data-type=waiting_closed]").await;
    assert!(closed.starts_with("⏹ legal no longer waits: another answer came first"), "{closed}");
    browser.text("the end of the run", "#thread [data-type=run_completed]").await;
    assert_eq!(browser.answer_forms(0).await, json!([]));

    // A failure that takes an error route reads as such.
    let run: Value = server.post(&token, "/v1/graphs/routed/runs", &json!({})).await;
    let routed_id = run["run_id"].as_str().unwrap().to_owned();
    browser.goto(&server.url(&format!("/#run={routed_id}"))).await;
    let failed = browser.text("the failure", "#thread [data-type=node_failed]").await;
    assert!(failed.starts_with("✗ shout failed"), "{failed}");
    let route = browser.text("the error route", "#thread [data-type=error_routed]").await;
    assert!(route.starts_with("↪ shout failed; its error route goes on to fallback"), "{route}");
    browser.text("the end of the run", "#thread [data-type=run_completed]").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_run_reads_inside_its_parents_thread_and_each_links_to_the_other() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph()).await;
    let publish = json!({"id": "publish", "name": "Publish", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "check", "type": "subgraph", "config": {"graph_id": "review", "output": "{{review.output}}"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "check"}, {"source": "check", "target": "end"}]});
    create_graph(&server, &token, &publish).await;
    let run: Value = server.post(&token, "/v1/graphs/publish/runs", &json!({"topic": "tides"})).await;
    let parent = run["run_id"].as_str().unwrap().to_owned();

    let browser = Browser::start().await;
    browser.goto(&server.url(&format!("/#run={parent}"))).await;
    browser.sign_in(&token).await;
    let started = browser.text("the child run", "#thread [data-type=child_started]").await;
    assert!(started.starts_with("⤵ check started a child run of review v1"), "{started}");
    // The parent is answered on its child's page, not its own.
    browser
        .until("the parent waiting", "return document.getElementById('run-status').textContent === 'waiting'")
        .await;
    assert_eq!(browser.answer_forms(0).await, json!([]));
    // Its thread opens in place.
    browser.click("#thread details.child summary").await;
    let asked =
        browser.text("the child's question", "#thread details.child li[data-type=node_waiting]").await;
    assert!(asked.contains("node waiting · review"), "{asked}");

    // The link opens the child, which links back; it is answered there.
    browser.click("#thread [data-type=child_started] a.run-link").await;
    let child = browser.text("the child's id", "#run-id").await;
    assert_ne!(child, parent);
    let back = browser.text("the parent link", "#run-parent").await;
    assert_eq!(back, format!("{parent} at check"));
    assert_eq!(browser.answer_forms(1).await, json!(["review"]));
    browser.click("#answers form[data-node=review] button[data-action=approve]").await;
    browser.text("the child's end", "#thread [data-type=run_completed]").await;

    browser.click("#run-parent a.run-link").await;
    let finished = browser.text("the child's end in the parent", "#thread [data-type=child_finished]").await;
    assert!(finished.starts_with("⤴ child run completed: check goes on"), "{finished}");
    browser.text("the parent's end", "#thread [data-type=run_completed]").await;
    let done: Value = server.get(&token, &format!("/v1/runs/{parent}")).await;
    assert_eq!(done["status"], "completed");

    // A fork of the parent from its first entry says where it came from, and links there.
    let fork: Value = server.post(&token, &format!("/v1/runs/{parent}/fork"), &json!({"at": 1})).await;
    let fork = fork["run_id"].as_str().unwrap().to_owned();
    browser.goto(&server.url(&format!("/#run={fork}"))).await;
    let started = browser.text("the fork's start", "#thread [data-type=run_started]").await;
    assert!(started.contains(&format!("Forked from {parent} at #1")), "{started}");
    browser.click("#thread [data-type=run_started] a.run-link").await;
    browser
        .until(
            "the origin opened",
            &format!("return document.getElementById('run-id').textContent === '{parent}'"),
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_cannot_recover_says_why_and_stops_until_asked_again() {
    let mut server = Server::start(&[]);
    let token = server.token("acme");
    create_graph(&server, &token, &review_graph()).await;
    let run: Value = server.post(&token, "/v1/graphs/review/runs", &json!({"topic": "tides"})).await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;
    browser.goto(&server.url(&format!("/#run={run_id}"))).await;
    browser.sign_in(&token).await;
    browser
        .until(
            "the live stream",
            "return document.getElementById('follow-state').textContent === 'Following live.'",
        )
        .await;

    // The server goes away: the page tries again, then says why it stopped.
    assert!(server.stop().success());
    browser.text("the retries", "#follow-state").await;
    let script = "const s = document.getElementById('follow-state').textContent; \
                  return s.startsWith('Live updates stopped') && s";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stopped = loop {
        let shown = browser.run(script).await;
        if let Some(text) = shown.as_str() {
            break text.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the page never gave up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stopped.contains("cannot reach the server") && stopped.contains("(6 tries)"), "{stopped}");
    assert_eq!(browser.run("return document.getElementById('reconnect').hidden").await, false);

    // Back: asked again, it follows live.
    server.start_again();
    browser.click("#reconnect").await;
    browser
        .until(
            "following again",
            "return document.getElementById('follow-state').textContent === 'Following live.'",
        )
        .await;
    browser.close().await;
}
