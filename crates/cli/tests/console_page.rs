//! The web console of a real `roomkit-graph demo` (the examples stored, the
//! agents answered by its stand-in model), in a real headless Chromium, at
//! 1280x800 and at 390x844 (a phone): the content-review graph uploaded with
//! a mistake marked on its node in the picture, mended and saved; a run
//! started, its path and current node marked in its picture, a node's output
//! shown by keyboard; its step and the waiting children of a parallel
//! approval answered from the inbox; no sideways scroll and no error in the
//! page throughout. Screenshots go to
//! `target/tmp/screenshots/` for a person to look at. And 2,500 runs of one
//! millisecond, every one reachable in the list, each once.

#![allow(clippy::unwrap_used, reason = "test code: a failed step fails the test")]

mod browser;
mod server;

use std::time::Duration;

use browser::Browser;
use serde_json::{Value, json};
use server::Server;

/// Starts keeping the page's errors (uncaught ones, `console.error`, and
/// refusals by its content-security policy) in `window.pageErrors`.
const KEEP_ERRORS: &str = "window.pageErrors = []; \
    window.addEventListener('error', (e) => pageErrors.push('error: ' + e.message)); \
    window.addEventListener('unhandledrejection', (e) => pageErrors.push('rejection: ' + e.reason)); \
    document.addEventListener('securitypolicyviolation', (e) => pageErrors.push('CSP: ' + e.violatedDirective)); \
    const original = console.error; \
    console.error = (...args) => { pageErrors.push('console: ' + args.join(' ')); original.apply(console, args); }; \
    return true";

/// Fails when the page scrolls sideways or kept an error.
async fn assert_tidy(browser: &Browser, at: &str) {
    let wide = browser
        .run("const d = document.documentElement; return [d.scrollWidth, d.clientWidth, window.innerWidth]")
        .await;
    let [scroll, client, _] = [0, 1, 2].map(|i| wide[i].as_u64().unwrap());
    assert!(
        scroll <= client,
        "{at}: the page scrolls sideways ({scroll} px of content in {client} px): {wide}"
    );
    let errors = browser.run("return window.pageErrors").await;
    assert_eq!(errors, json!([]), "{at}: the page had errors");
}

/// Writes a screenshot of the page as `name`.png under the test output.
async fn screenshot(browser: &Browser, name: &str) {
    browser.run("window.scrollTo(0, 0); return true").await;
    let png = browser::within("a screenshot", browser.client().screenshot()).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Writes a screenshot of the page in a window `height` pixels tall, as
/// `name`.png under the test output, then gives the window its size back.
async fn tall_screenshot(browser: &Browser, height: u32, name: &str) {
    let (width, before) = browser::within("the window's size", browser.client().get_window_size()).await;
    browser::within("a taller window", browser.client().set_window_size(width as u32, height)).await;
    screenshot(browser, name).await;
    browser::within("the window's size back", browser.client().set_window_size(width as u32, before as u32))
        .await;
}

/// Goes to `hash` in the page (as a link would).
async fn go(browser: &Browser, hash: &str) {
    browser.run(&format!("location.hash = {hash:?}; return true")).await;
}

/// The content-review example, with `review`'s actions set to `actions`.
fn content_review(actions: Value) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/content-review.json");
    let mut graph: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let review =
        graph["nodes"].as_array_mut().unwrap().iter_mut().find(|node| node["id"] == "review").unwrap();
    review["config"]["actions"] = actions;
    graph
}

async fn tour(width: u32, height: u32, label: &str) {
    // The demo: the examples stored, agents answered by the stand-in, four runs under way.
    let server = Server::demo();
    let token = server.token("default");

    let browser = Browser::sized(width, height).await;
    browser.goto(&server.url("/#graphs")).await;
    assert_eq!(browser.run(KEEP_ERRORS).await, true);
    assert_eq!(browser.run("return window.innerWidth").await, json!(width), "the viewport is the window");
    // Before signing in, only the sign-in form shows.
    assert_eq!(browser.run("return document.getElementById('app').hidden").await, true);
    browser.sign_in(&token).await;

    // The content-review graph, uploaded with a mistake: found, listed and marked on its node.
    browser
        .until(
            "the graphs",
            "return document.querySelector('#graph-list tr[data-graph-id=content-review] a')",
        )
        .await;
    browser.click("#graph-list tr[data-graph-id=content-review] a").await;
    browser.until("its picture", "return document.querySelector('#graph-picture [data-node=revise]')").await;
    let upload = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(upload.path(), content_review(json!("approve")).to_string()).unwrap();
    let file = browser.find("#graph-file").await;
    browser::within("choosing the file", file.send_keys(upload.path().to_str().unwrap())).await;
    let finding = browser.text("the mistake", "#graph-findings li.error-finding[data-node=review]").await;
    assert!(finding.contains("invalid_actions"), "{finding}");
    browser
        .until(
            "the mistake on its node",
            "return document.querySelector('#graph-preview [data-node=review].finding .sign')",
        )
        .await;
    assert_tidy(&browser, "the graph with a mistake").await;
    screenshot(&browser, &format!("graph-mistake-{label}")).await;

    // Mended and saved: version 2, drawn.
    browser.fill("#graph-json", &content_review(json!(["approve", "reject"])).to_string()).await;
    browser.click("#graph-save").await;
    let saved = browser.text("the saved version", "#graph-saved").await;
    assert_eq!(saved, "Saved as content-review v2.");
    browser
        .until("version 2 listed", "return document.querySelector('#graph-versions li[data-version=\"2\"]')")
        .await;
    assert_eq!(server.get(&token, "/v1/graphs/content-review").await["version"], 2);

    // A run started from the page: the stand-in drafts, and the picture marks the path and where it waits.
    go(&browser, "#runs").await;
    browser.click("#start-box summary").await;
    browser
        .until(
            "the graph to start",
            "return document.querySelector('#start-graph option[value=content-review]')",
        )
        .await;
    browser.select("#start-graph", "content-review").await;
    browser.fill("#start-input", r#"{"topic": "tides"}"#).await;
    browser.click("#start-button").await;
    browser
        .until(
            "the run waiting in its picture",
            "return document.querySelector('#run-picture [data-node=review].current')",
        )
        .await;
    let run_id = browser.text("the run's id", "#run-id").await;
    let taken = browser
        .run("return [...document.querySelectorAll('#run-picture .edge.taken')].map(e => +e.dataset.edge)")
        .await;
    assert_eq!(taken, json!([0, 1]), "start → draft → review");
    let done = browser
        .run("return [...document.querySelectorAll('#run-picture .node.done')].map(n => n.dataset.node)")
        .await;
    assert_eq!(done, json!(["start", "draft"]));
    let drafted = browser.text("the draft", "#thread [data-type=agent_message] p").await;
    assert!(drafted.contains("stand-in"), "{drafted}");
    // The answer form comes first, above the picture.
    browser
        .until(
            "the answer form above the picture",
            "const a = document.getElementById('answers'), p = document.getElementById('run-picture'); \
             return !a.hidden && a.getBoundingClientRect().top < p.getBoundingClientRect().top",
        )
        .await;
    // A node chosen by keyboard shows its output.
    browser.run("document.querySelector('#run-picture [data-node=draft]').focus(); return true").await;
    let focused = browser::within("the focused node", browser.client().active_element()).await;
    browser::within("pressing Enter", focused.send_keys("\u{E007}")).await;
    let panel = browser.text("the node's panel", "#node-panel:not([hidden]) pre").await;
    assert!(panel.contains("writer-agent"), "its settings: {panel}");
    browser
        .until("its output", "return [...document.querySelectorAll('#node-panel pre')].some(p => p.textContent.includes('titled by'))")
        .await;
    assert_tidy(&browser, "a waiting run").await;
    screenshot(&browser, &format!("run-{label}")).await;
    if width > 900 {
        tall_screenshot(&browser, 1500, "run-whole-1280").await;
    }

    // The demo's parallel approval: both children wait, inside their parallel node.
    let release = server.get(&token, "/v1/runs?graph_id=release-approval").await["runs"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    go(&browser, &format!("#run={release}")).await;
    let waiting = browser
        .until(
            "both children waiting",
            "const nodes = [...document.querySelectorAll('#run-picture .node.current')].map(n => n.dataset.node); \
             return nodes.length === 2 && nodes",
        )
        .await;
    assert_eq!(waiting, json!(["legal", "security"]));

    // The inbox: this run's review, the demo's parallel approval (each child on
    // its own) and the demo's own review, newest run first.
    go(&browser, "#inbox").await;
    let steps = browser
        .until(
            "four waiting steps",
            "const forms = [...document.querySelectorAll('#inbox-list form')]; \
             return forms.length === 4 && forms.map(f => f.dataset.run + ':' + f.dataset.node)",
        )
        .await;
    let steps: Vec<String> = serde_json::from_value(steps).unwrap();
    assert_eq!(
        steps[..3],
        [format!("{run_id}:review"), format!("{release}:legal"), format!("{release}:security")]
    );
    assert!(steps[3].ends_with(":review"));
    assert_eq!(browser.text("the count", "#inbox-count").await, "4");
    let looks = browser
        .run("return [...document.querySelectorAll('#inbox-list form')][0].querySelectorAll('button')[1].className")
        .await;
    assert_eq!(looks, "act-no", "reject looks unlike approve");
    assert_tidy(&browser, "the inbox").await;
    screenshot(&browser, &format!("inbox-{label}")).await;

    // Answered in place: the review (the post is published: its notification
    // prints on the terminal), then legal.
    browser.click(&format!("#inbox-list form[data-run='{run_id}'] button[data-action=approve]")).await;
    server.until_run(&token, &run_id, |run| run["status"] == "completed").await;
    server
        .until_logged("the publication", |line| line.starts_with("[notification on slack] Published: tides"));
    browser
        .click(&format!(
            "#inbox-list form[data-run='{release}'][data-node=legal] button[data-action=approve]"
        ))
        .await;
    browser
        .until("two steps left", "return document.querySelectorAll('#inbox-list form').length === 2")
        .await;

    // The finished run's picture: every node on its path done, no current one.
    go(&browser, &format!("#run={run_id}")).await;
    browser
        .until(
            "the run done in its picture",
            "return document.querySelector('#run-picture [data-node=publish].done')",
        )
        .await;
    assert_eq!(browser.text("its status", "#run-status").await, "completed");
    assert_eq!(browser.run("return document.querySelectorAll('#run-picture .node.current').length").await, 0);

    // The parallel approval: security still waits inside its parallel node; legal is done.
    go(&browser, &format!("#run={release}")).await;
    browser
        .until(
            "security waiting",
            "return document.querySelector('#run-picture [data-node=security].current')",
        )
        .await;
    let legal = browser
        .run("return document.querySelector('#run-picture [data-node=legal]').getAttribute('class')")
        .await;
    assert!(legal.as_str().unwrap().contains("done"), "{legal}");
    // On a phone the opened run shows first, the list out of the way.
    let list_shown =
        browser.run("return document.getElementById('runs-section').offsetParent !== null").await;
    assert_eq!(list_shown, json!(width > 900), "the list shows beside the run on a wide screen only");
    assert_tidy(&browser, "a parallel run").await;
    screenshot(&browser, &format!("parallel-{label}")).await;

    // Its timeline: each step with how it ended and how long it took.
    browser.click("#tab-timeline").await;
    let steps = browser.text("the timeline", "#timeline li[data-node=approvals]").await;
    assert!(steps.contains("approvals (parallel)"), "{steps}");
    assert_tidy(&browser, "the timeline").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_on_a_laptop() {
    tour(1280, 800, "1280").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_on_a_phone() {
    tour(390, 844, "390").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_one_of_2500_runs_of_one_millisecond_is_listed_once() {
    const RUNS: usize = 2500;
    let server = Server::start(&[]);
    let token = server.token("acme");
    let graph = json!({"id": "g", "name": "G", "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "end"}]});
    server.post(&token, "/v1/graphs", &graph).await;
    // One run started for real, then copied in the database under other ids,
    // all in one millisecond, as a burst of runs may be.
    let run = server.post(&token, "/v1/graphs/g/runs", &json!({})).await;
    let first = run["run_id"].as_str().unwrap().to_owned();
    server.until_run(&token, &first, |run| run["status"] == "completed").await;
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let columns: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info('runs') WHERE name != 'run_id' ORDER BY cid")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let columns = columns.join(", ");
    let copies = db
        .execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
                 INSERT INTO runs (run_id, {columns}) SELECT run_id || printf('-%04d', i), {columns} FROM runs, n",
                RUNS - 1
            ),
            [],
        )
        .unwrap();
    assert_eq!(copies, RUNS - 1);
    assert_eq!(db.execute("UPDATE runs SET created_at = 1700000000000", []).unwrap(), RUNS);
    let started: std::collections::HashSet<String> =
        std::iter::once(first.clone()).chain((1..RUNS).map(|i| format!("{first}-{i:04}"))).collect();

    let browser = Browser::start().await;
    browser.goto(&server.url("/")).await;
    browser.sign_in(&token).await;
    browser
        .until("the first page", "return document.querySelectorAll('#runs tbody tr').length === 100")
        .await;
    for page in 2..=RUNS / 100 {
        browser.click("#runs-more").await;
        browser
            .until(
                &format!("page {page}"),
                &format!("return document.querySelectorAll('#runs tbody tr').length === {}", page * 100),
            )
            .await;
    }
    browser.until("no more pages", "return document.getElementById('runs-more').hidden").await;
    let listed: Vec<String> = serde_json::from_value(
        browser
            .run("return [...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.runId)")
            .await,
    )
    .unwrap();
    assert_eq!(listed.len(), RUNS, "no run twice");
    assert_eq!(listed.into_iter().collect::<std::collections::HashSet<_>>(), started, "every run once");
    browser.close().await;
}
