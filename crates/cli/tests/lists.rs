//! Lists read a page at a time through a real `roomkit-graph serve` and the
//! real `runs` command: runs created in the same millisecond each listed
//! once through `next_cursor` while new runs start, graphs by id, a
//! malformed cursor refused, and `runs --all`, `--cursor`, `--show-cursor`.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed request fails the test")]

mod server;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client, command};

const RUNS: usize = 60;
const PAGE: usize = 7;

fn graph(id: &str) -> Value {
    json!({"id": id, "name": id, "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "end"}]})
}

/// Starts a run of `g`: its id.
async fn start(server: &Server, token: &str) -> String {
    let run: Value = server.post(token, "/v1/graphs/g/runs", &json!({})).await;
    run["run_id"].as_str().expect("a run id").to_owned()
}

/// Every page of `GET path` (with `limit=PAGE`), following `next_cursor`,
/// the items under `field`; `between` runs after each page.
async fn every_page(
    server: &Server,
    token: &str,
    path: &str,
    field: &str,
    mut between: impl AsyncFnMut(),
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{path}?limit={PAGE}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = server.get(token, &url).await;
        pages += 1;
        items.extend(page[field].as_array().expect("a list").iter().cloned());
        between().await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert_eq!(page["next_cursor"], Value::Null, "null on the last page");
                return (items, pages);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_one_millisecond_are_each_listed_once_over_http_and_by_runs_all() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    let created = client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph("g")).send();
    assert_eq!(created.await.unwrap().status(), StatusCode::CREATED);
    let mut ids = HashSet::new();
    for _ in 0..RUNS {
        ids.insert(start(&server, &token).await);
    }
    // All in one millisecond, as a burst of runs may be.
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(db.execute("UPDATE runs SET created_at = 1700000000000", []).unwrap(), RUNS);

    // New runs start while the pages are read: they come before the first page.
    let mut started_meanwhile = Vec::new();
    let (runs, pages) = every_page(&server, &token, "/v1/runs", "runs", async || {
        started_meanwhile.push(start(&server, &token).await);
    })
    .await;
    assert_eq!(pages, RUNS.div_ceil(PAGE));
    let listed: Vec<String> = runs.iter().map(|run| run["run_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(listed.len(), RUNS, "no run twice");
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), ids, "every run once");

    let bad = client().get(server.url("/v1/runs?cursor=bm90LWEtY3Vyc29y")).bearer_auth(&token).send();
    let bad = bad.await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_cursor", "{body}");

    // The command line: every page, then one page and its cursor for scripts.
    let all =
        command(&server.db, &["--org", "acme", "--json", "runs", "--all", "--limit", "7"]).output().unwrap();
    assert!(all.status.success(), "{}", String::from_utf8_lossy(&all.stderr));
    let lines: Vec<Value> = String::from_utf8(all.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let every: Vec<&str> = lines.iter().map(|run| run["run_id"].as_str().unwrap()).collect();
    assert_eq!(every.len(), RUNS + started_meanwhile.len());
    assert_eq!(every.iter().collect::<HashSet<_>>().len(), every.len(), "each once");
    assert_eq!(every[started_meanwhile.len()..], listed, "the newer runs first, then as served");

    let one =
        command(&server.db, &["--org", "acme", "runs", "--limit", "7", "--show-cursor"]).output().unwrap();
    let stdout = String::from_utf8(one.stdout).unwrap();
    let (page, cursor) = stdout.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(page.lines().count(), 7);
    let next = command(&server.db, &["--org", "acme", "--json", "runs", "--limit", "7", "--cursor", cursor])
        .output()
        .unwrap();
    let next: Vec<Value> = String::from_utf8(next.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(next[0]["run_id"].as_str(), Some(every[7]), "the next page starts after the first");
    let refused = command(&server.db, &["runs", "--cursor", "garbage"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the cursor is not one a list gave"));
}

#[tokio::test(flavor = "multi_thread")]
async fn graphs_are_listed_by_id_a_page_at_a_time() {
    let server = Server::start(&[]);
    let token = server.token("acme");
    for id in (0..16).rev() {
        let created =
            client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&graph(&format!("g{id:02}")));
        assert_eq!(created.send().await.unwrap().status(), StatusCode::CREATED);
    }
    let (graphs, pages) = every_page(&server, &token, "/v1/graphs", "graphs", async || {}).await;
    assert_eq!(pages, 3);
    let ids: Vec<&str> = graphs.iter().map(|graph| graph["graph_id"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..16).map(|id| format!("g{id:02}")).collect();
    assert_eq!(ids, expected);
}
