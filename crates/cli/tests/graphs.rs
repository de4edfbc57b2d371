//! The graph commands through the real binary, on a SQLite file and on a
//! PostgreSQL database: graphs stored as versions without running them,
//! listed and printed; a file with a mistake stores nothing; a family of
//! graphs that run each other is checked and stored together.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::{Value, json};
use server::{cli, text};

mod server;

fn graph(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "trigger": {"type": "manual"},
           "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
           "edges": [{"source": "start", "target": "end"}]})
}

fn write(dir: &Path, file: &str, graph: &Value) -> String {
    let path = dir.join(file);
    std::fs::write(&path, graph.to_string()).expect("the graph file is written");
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Runs `args` on `db`, asserting it exits 0, and gives its stdout.
fn succeeds(db: &OsStr, args: &[&str]) -> String {
    let output = cli(db, args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output.stderr));
    text(&output.stdout)
}

fn graphs_are_stored_listed_and_shown_without_running_them(db: &OsStr) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let first = write(dir.path(), "hello.json", &graph("hello", "Hello"));
    assert_eq!(succeeds(db, &["graph", "put", &first]), "hello v1\n");
    let second = write(dir.path(), "hello2.json", &graph("hello", "Hello again"));
    let review = write(dir.path(), "review.json", &graph("review", "Review"));
    assert_eq!(succeeds(db, &["graph", "put", &second, &review]), "hello v2\nreview v1\n");

    assert_eq!(succeeds(db, &["graph", "list"]), "hello  v2  Hello again\nreview  v1  Review\n");
    let listed: Vec<Value> = succeeds(db, &["--json", "graph", "list"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (&listed[0]["id"], &listed[0]["version"], &listed[0]["name"]),
        (&json!("hello"), &json!(2), &json!("Hello again"))
    );
    assert!(listed[0]["created_at"].as_i64().is_some_and(|at| at > 0), "{listed:?}");

    let latest: Value = serde_json::from_str(&succeeds(db, &["graph", "show", "hello"])).expect("JSON");
    assert_eq!(latest, graph("hello", "Hello again"));
    let older: Value =
        serde_json::from_str(&succeeds(db, &["graph", "show", "hello", "--version", "1"])).expect("JSON");
    assert_eq!(older["name"], "Hello");

    let missing = cli(db, &["graph", "show", "hello", "--version", "9"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("graph \"hello\" has no version 9 (its latest is 2)"),
        "{}",
        text(&missing.stderr)
    );
    let unknown = cli(db, &["graph", "show", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no graph \"nope\" is stored"), "{}", text(&unknown.stderr));

    // A mistake in one file stores none of them.
    let mut broken = graph("broken", "Broken");
    broken["edges"] = json!([{"source": "start", "target": "nowhere"}]);
    let broken = write(dir.path(), "broken.json", &broken);
    let third = write(dir.path(), "hello3.json", &graph("hello", "Hello, third"));
    let refused = cli(db, &["graph", "put", &third, &broken]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("no graph was stored"), "{stderr}");
    assert!(stderr.contains("broken.json: 1 mistake") && stderr.contains("nowhere"), "{stderr}");
    assert_eq!(succeeds(db, &["graph", "list"]), "hello  v2  Hello again\nreview  v1  Review\n");

    // Graphs belong to their organization, and nothing was run.
    assert_eq!(succeeds(db, &["--org", "other", "graph", "list"]), "");
    assert_eq!(succeeds(db, &["--json", "runs"]), "");
}

/// A graph whose `sub` node runs `runs` (pinned to `version` if given).
fn runs(id: &str, runs: &str, version: Option<u32>) -> Value {
    let mut config = json!({"graph_id": runs});
    if let Some(version) = version {
        config["version"] = json!(version);
    }
    json!({"id": id, "name": id, "trigger": {"type": "manual"},
           "nodes": [{"id": "start", "type": "start"}, {"id": "sub", "type": "subgraph", "config": config},
                     {"id": "end", "type": "end"}],
           "edges": [{"source": "start", "target": "sub"}, {"source": "sub", "target": "end"}]})
}

fn a_family_of_graphs_is_checked_and_stored_together(db: &OsStr) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let parent = write(dir.path(), "parent.json", &runs("parent", "child", None));
    let child = write(dir.path(), "child.json", &graph("child", "Child"));

    // Alone, the parent names a graph that is not stored: refused, naming the node and the id.
    let refused = cli(db, &["graph", "put", &parent]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(
            "invalid_subgraph node=sub field=graph_id: node \"sub\": graph \"child\" is not stored"
        ),
        "{stderr}"
    );
    assert_eq!(succeeds(db, &["graph", "list"]), "");
    // `run` stores the graph it runs: refused the same way, nothing run.
    let run = cli(db, &["run", &parent]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("graph \"child\" is not stored"), "{}", text(&run.stderr));

    // Together (in any order), they are stored; so are graphs that run each other.
    assert_eq!(succeeds(db, &["graph", "put", &parent, &child]), "parent v1\nchild v1\n");
    let ping = write(dir.path(), "ping.json", &runs("ping", "pong", None));
    let pong = write(dir.path(), "pong.json", &runs("pong", "ping", None));
    assert_eq!(succeeds(db, &["graph", "put", &ping, &pong]), "ping v1\npong v1\n");

    // A pinned version must exist, or come with the family.
    let pinned = write(dir.path(), "pinned.json", &runs("pinned", "child", Some(2)));
    let refused = cli(db, &["graph", "put", &pinned]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(
            "field=version: node \"sub\": graph \"child\" has no version 2 stored (the newest is 1)"
        ),
        "{stderr}"
    );
    assert_eq!(succeeds(db, &["graph", "put", &child, &pinned]), "child v2\npinned v1\n");

    // Organizations do not see each other's graphs.
    let other = cli(db, &["--org", "other", "graph", "put", &parent]);
    assert_eq!(other.status.code(), Some(2), "{}", text(&other.stdout));
}

#[test]
fn a_family_of_graphs_is_checked_and_stored_together_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    a_family_of_graphs_is_checked_and_stored_together(dir.path().join("runs.db").as_os_str());
}

#[test]
fn a_family_of_graphs_is_checked_and_stored_together_on_postgres() {
    let url = roomkit_graph_pgtest::database();
    a_family_of_graphs_is_checked_and_stored_together(OsStr::new(&url));
}

#[test]
fn graphs_are_stored_listed_and_shown_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    graphs_are_stored_listed_and_shown_without_running_them(dir.path().join("runs.db").as_os_str());
}

#[test]
fn graphs_are_stored_listed_and_shown_on_postgres() {
    let url = roomkit_graph_pgtest::database();
    graphs_are_stored_listed_and_shown_without_running_them(OsStr::new(&url));
}
