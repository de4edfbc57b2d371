//! The PostgreSQL store against a real PostgreSQL server of the test's own:
//! two stores on one database stand for two processes (on two machines) that
//! share the runs.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use futures_util::StreamExt;
use roomkit_graph::{EngineState, Graph, Trigger};
use roomkit_graph_postgres::{Options, PostgresStore};
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{
    DEFAULT_ORG, Entry, Lease, NewRun, RunFilter, RunKey, RunStatus, StepCommit, StoreError, TokenRecord,
    now_millis,
};
use serde_json::{Map, Value, json};

fn graph(id: &str) -> Graph {
    Graph::new(id, format!("Graph {id}"), Trigger::manual())
}

fn new_run(graph_id: &str, run_id: &str, key: Option<&str>) -> NewRun {
    let mut context = Map::new();
    context.insert("start".into(), json!({ "output": { "topic": run_id } }));
    NewRun {
        org: DEFAULT_ORG.into(),
        graph_id: graph_id.into(),
        graph_version: 1,
        trigger: json!({ "topic": run_id }),
        state: EngineState {
            context,
            current_node_id: Some("draft".into()),
            previous_node_id: Some("start".into()),
            waiting: false,
            run_id: run_id.into(),
            pending: Vec::new(),
        },
        key: key.map(RunKey::from),
        first_step: None,
        lease: None,
    }
}

/// A running step on `node` that writes `output`, from `expected_version`.
fn step(run_id: &str, expected_version: u64, node: &str, output: Value) -> StepCommit {
    StepCommit {
        run_id: run_id.into(),
        expected_version,
        writes: vec![(node.into(), json!({ "output": output }))],
        current_node_id: Some(node.into()),
        previous_node_id: Some("start".into()),
        status: RunStatus::Running,
        error: None,
        entries: vec![
            Entry::NodeStarted { node_id: node.into(), node_type: "function".into(), attempt: 1 },
            Entry::NodeCompleted { node_id: node.into(), output: output.clone() },
        ],
        wake_at: None,
        lease: None,
        steps: 0,
        pending: Vec::new(),
    }
}

fn final_step(run_id: &str, expected_version: u64) -> StepCommit {
    StepCommit {
        writes: Vec::new(),
        current_node_id: None,
        status: RunStatus::Completed,
        entries: vec![Entry::RunCompleted],
        ..step(run_id, expected_version, "end", json!(null))
    }
}

/// Two stores on one new database: two processes sharing it.
async fn two_stores() -> (PostgresStore, PostgresStore) {
    let url = roomkit_graph_pgtest::database();
    let first = PostgresStore::connect(&url).await.unwrap();
    let second = PostgresStore::connect(&url).await.unwrap();
    (first, second)
}

#[tokio::test(flavor = "multi_thread")]
async fn graphs_are_versioned_and_a_run_keeps_its_context_in_order() {
    let (store, other) = two_stores().await;
    assert_eq!(store.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap().version, 1);
    assert_eq!(other.save_graph(DEFAULT_ORG, &graph("review")).await.unwrap().version, 2);
    assert_eq!(store.save_graph("acme", &graph("review")).await.unwrap().version, 1, "per organization");
    assert_eq!(store.latest_graph_version(DEFAULT_ORG, "review").await.unwrap(), 2);
    assert_eq!(other.graph(DEFAULT_ORG, "review", Some(1)).await.unwrap().graph, graph("review"));
    assert!(matches!(
        store.graph(DEFAULT_ORG, "review", Some(3)).await,
        Err(StoreError::NotFound(what)) if what == "graph review version 3"
    ));
    let listed = store.list_graphs(None).await.unwrap();
    assert_eq!(
        listed.iter().map(|g| (g.org.as_str(), g.version)).collect::<Vec<_>>(),
        [("acme", 1), (DEFAULT_ORG, 2)]
    );

    let run = store.create_run(new_run("review", "r1", None)).await.unwrap();
    assert_eq!((run.status, run.version, run.last_seq, run.graph_version), (RunStatus::Running, 1, 1, 1));
    store.commit_step(step("r1", 1, "zeta", json!(1))).await.unwrap();
    store.commit_step(step("r1", 2, "alpha", json!({"b": 2, "a": 1}))).await.unwrap();
    let (record, events) = other.commit_step(step("r1", 3, "zeta", json!(3))).await.unwrap();
    assert_eq!((record.version, record.last_seq), (4, 7));
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7]);

    let (record, state) = other.load_run("r1").await.unwrap();
    assert_eq!(record.current_node_id.as_deref(), Some("zeta"));
    assert_eq!(state.context.keys().collect::<Vec<_>>(), ["start", "zeta", "alpha"]);
    assert_eq!(state.context["zeta"], json!({"output": 3}), "the last value, at the first place");
    assert_eq!(
        serde_json::to_string(&state.context["alpha"]).unwrap(),
        r#"{"output":{"b":2,"a":1}}"#,
        "JSON kept as written"
    );
    let transcript = store.transcript("r1", 2, 3).await.unwrap();
    assert_eq!(transcript.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert!(matches!(store.transcript("nope", 0, 10).await, Err(StoreError::NotFound(_))));
}

/// A run waiting on two children of a parallel node: its step count and the
/// children that still wait are on its record and in the state `load_run`
/// gives the engine, for another process too; a commit with no child left
/// clears them. An entry with an error beside its output reads back whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_runs_step_count_pending_children_and_failed_entries_are_kept() {
    let (store, other) = two_stores().await;
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    store.create_run(new_run("g", "r1", None)).await.unwrap();
    let fan_out = StepCommit {
        status: RunStatus::Waiting,
        current_node_id: Some("reviews".into()),
        steps: 7,
        pending: vec!["legal".into(), "security".into()],
        ..step("r1", 1, "draft", json!("v1"))
    };
    let (committed, _) = store.commit_step(fan_out).await.unwrap();
    assert_eq!(committed.steps, 7);
    assert_eq!(committed.pending, ["legal", "security"]);
    let (record, state) = other.load_run("r1").await.unwrap();
    assert_eq!(record, committed);
    assert!(state.waiting);
    assert_eq!(state.pending, ["legal", "security"]);
    assert_eq!(other.list_runs(&RunFilter::default()).await.unwrap(), [committed]);

    let mut joined = StepCommit {
        current_node_id: Some("publish".into()),
        steps: 8,
        pending: Vec::new(),
        ..step("r1", 2, "security", json!(null))
    };
    joined.writes = vec![("security".into(), json!({"output": null, "error": "scan timed out"}))];
    let (committed, _) = other.commit_step(joined).await.unwrap();
    assert_eq!((committed.steps, committed.pending.len()), (8, 0));
    let (record, state) = store.load_run("r1").await.unwrap();
    assert_eq!(record, committed);
    assert_eq!((state.waiting, state.pending.len()), (false, 0));
    assert_eq!(
        serde_json::to_string(&state.context["security"]).unwrap(),
        r#"{"output":null,"error":"scan timed out"}"#
    );

    // A run opened waiting on children keeps them, with its first step too.
    let mut parked = new_run("g", "r2", None);
    parked.state.waiting = true;
    parked.state.pending = vec!["legal".into(), "security".into()];
    let opened = store.create_run(parked).await.unwrap();
    assert_eq!((opened.status, opened.steps), (RunStatus::Waiting, 0));
    assert_eq!(other.load_run("r2").await.unwrap().1.pending, ["legal", "security"]);
    let mut stepped = new_run("g", "r3", None);
    stepped.first_step = Some(StepCommit {
        status: RunStatus::Waiting,
        steps: 1,
        pending: vec!["security".into()],
        ..step("r3", 1, "legal", json!(1))
    });
    let opened = store.create_run(stepped).await.unwrap();
    assert_eq!((opened.version, opened.steps), (2, 1));
    assert_eq!(other.run("r3").await.unwrap(), opened);
    assert_eq!(opened.pending, ["security"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_is_committed_once_when_two_processes_race_for_it() {
    let (first, second) = two_stores().await;
    first.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    for n in 0..20 {
        let run_id = format!("r{n}");
        first.create_run(new_run("g", &run_id, None)).await.unwrap();
        let (a, b) = tokio::join!(
            first.commit_step(step(&run_id, 1, "a", json!("first"))),
            second.commit_step(step(&run_id, 1, "b", json!("second")))
        );
        let won = [&a, &b].iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "exactly one commit of version 1: {a:?} {b:?}");
        let lost = if a.is_ok() { b } else { a };
        assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");
        let events = second.transcript(&run_id, 0, 100).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3], "no gap, nothing twice");
    }
    let refused = first.commit_step(StepCommit { entries: Vec::new(), ..step("r0", 2, "c", json!(1)) }).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
    assert_eq!(first.run("r0").await.unwrap().version, 2, "a refused commit changes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_lets_one_process_drive_a_run_until_it_expires() {
    let (a, b) = two_stores().await;
    a.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    a.create_run(new_run("g", "r", None)).await.unwrap();
    a.create_run(new_run("g", "idle", None)).await.unwrap();
    let now = now_millis();
    let claimed = a.claim_run("r", &Lease::new("a", now, 500)).await.unwrap().unwrap();
    assert_eq!(claimed.owner.as_deref(), Some("a"));
    assert_eq!(b.claim_run("r", &Lease::new("b", now, 60_000)).await.unwrap(), None, "held by a");
    let taken = b
        .commit_step(StepCommit { lease: Some(Lease::new("b", now, 60_000)), ..step("r", 1, "x", json!(1)) });
    assert!(matches!(taken.await, Err(StoreError::Conflict { .. })));
    let claimable = b.claimable_runs(now, 10).await.unwrap();
    assert_eq!(claimable.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["idle"]);

    // a dies: once its lease expires, b takes the run, and a has lost it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = now_millis();
    let claimable = b.claimable_runs(later, 10).await.unwrap();
    assert_eq!(claimable.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(), ["idle", "r"]);
    assert!(b.claim_run("r", &Lease::new("b", later, 60_000)).await.unwrap().is_some());
    assert!(matches!(
        a.renew_lease("r", &Lease::new("a", later, 60_000)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(!a.release_run("r", "a").await.unwrap(), "not a's any more");
    let renewed = b.renew_lease("r", &Lease::new("b", later + 10, 60_000)).await.unwrap();
    assert_eq!(renewed.lease_until, Some(later + 60_010));
    // Parking releases the lease.
    let park = StepCommit {
        status: RunStatus::Waiting,
        lease: Some(Lease::new("b", later, 60_000)),
        ..step("r", 1, "review", json!(null))
    };
    let (parked, _) = b.commit_step(park).await.unwrap();
    assert_eq!((parked.owner, parked.lease_until), (None, None));
    assert_eq!(a.claim_run("r", &Lease::new("a", later, 60_000)).await.unwrap(), None, "waiting");
    assert!(matches!(a.claim_run("nope", &Lease::new("a", now, 1)).await, Err(StoreError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_key_starts_one_run_even_when_two_processes_use_it_at_once() {
    let (a, b) = two_stores().await;
    a.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let (first, second) = tokio::join!(
        a.create_run(new_run("g", "r1", Some("k"))),
        b.create_run(new_run("g", "r2", Some("k")))
    );
    let (won, lost) = if first.is_ok() { (first, second) } else { (second, first) };
    let holder = won.unwrap().run_id;
    assert!(matches!(lost, Err(StoreError::Duplicate { key, run_id, .. }) if key == "k" && run_id == holder));
    assert!(matches!(a.create_run(new_run("g", &holder, None)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(
        a.create_run(NewRun { graph_version: 9, ..new_run("g", "r3", None) }).await,
        Err(StoreError::NotFound(what)) if what == "graph g version 9"
    ));
    assert_eq!(a.list_runs(&RunFilter::default()).await.unwrap().len(), 1, "nothing else was kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_listed_by_graph_status_and_time() {
    let (store, _) = two_stores().await;
    store.save_graph(DEFAULT_ORG, &graph("a")).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("b")).await.unwrap();
    let mut created = Vec::new();
    for (graph_id, run_id) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
        created.push(store.create_run(new_run(graph_id, run_id, None)).await.unwrap().created_at);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store.commit_step(final_step("a1", 1)).await.unwrap();
    let ids =
        |runs: Vec<roomkit_graph_store::RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_runs(&RunFilter::default()).await.unwrap()), ["a2", "b1", "a1"]);
    let of_a = RunFilter { graph_id: Some("a".into()), ..RunFilter::default() };
    assert_eq!(ids(store.list_runs(&of_a).await.unwrap()), ["a2", "a1"]);
    let completed = RunFilter { status: Some(RunStatus::Completed), ..RunFilter::default() };
    assert_eq!(ids(store.list_runs(&completed).await.unwrap()), ["a1"]);
    let since = RunFilter { created_from: Some(created[1]), limit: Some(1), ..RunFilter::default() };
    assert_eq!(ids(store.list_runs(&since).await.unwrap()), ["a2"]);
    let other_org = RunFilter { org: Some("acme".into()), ..RunFilter::default() };
    assert!(store.list_runs(&other_org).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_secrets_are_kept_per_organization() {
    let (store, other) = two_stores().await;
    let token = TokenRecord {
        token_hash: "ab12".into(),
        org: "acme".into(),
        label: Some("ci".into()),
        created_at: 7,
    };
    store.create_token(&token).await.unwrap();
    assert!(matches!(other.create_token(&token).await, Err(StoreError::Invalid(_))));
    assert_eq!(other.token("ab12").await.unwrap(), Some(token));
    assert_eq!(other.token("cd34").await.unwrap(), None);
    store.set_secret("acme", "g", "webhook", Some("s1")).await.unwrap();
    store.set_secret("acme", "g", "webhook", Some("s2")).await.unwrap();
    assert_eq!(other.secret("acme", "g", "webhook").await.unwrap().as_deref(), Some("s2"));
    assert_eq!(other.secret("other", "g", "webhook").await.unwrap(), None);
    other.set_secret("acme", "g", "webhook", None).await.unwrap();
    assert_eq!(store.secret("acme", "g", "webhook").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_in_one_process_sees_the_steps_another_commits_with_no_gap_and_no_duplicate() {
    let (writer, reader) = two_stores().await;
    writer.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    writer.create_run(new_run("g", "r", None)).await.unwrap();
    writer.commit_step(step("r", 1, "s1", json!(1))).await.unwrap();

    // From position 2: replays 3 (committed already), then what comes.
    let mut followed = reader.follow("r", 2);
    let first =
        tokio::time::timeout(Duration::from_secs(10), followed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.seq, 3);
    let committing = tokio::spawn({
        let writer = writer.clone();
        async move {
            for version in 2..=30 {
                writer.commit_step(step("r", version, &format!("s{version}"), json!(version))).await.unwrap();
            }
            writer.commit_step(final_step("r", 31)).await.unwrap();
        }
    });
    let started = std::time::Instant::now();
    let mut seqs = vec![first.seq];
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), followed.next()).await.unwrap() {
        seqs.push(event.unwrap().seq);
    }
    committing.await.unwrap();
    assert_eq!(seqs, (3..=62).collect::<Vec<_>>(), "every event once, in order, ending with the run");
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut unknown = reader.follow("nope", 0);
    assert!(matches!(unknown.next().await, Some(Err(StoreError::NotFound(_)))));
    assert!(unknown.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_is_not_ours_is_refused_and_left_as_it_was() {
    let url = roomkit_graph_pgtest::database();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE SCHEMA roomkit_graph; CREATE TABLE roomkit_graph.runs (id int)")
        .await
        .unwrap();
    let refused = PostgresStore::connect(&url).await.map(drop).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Foreign { detail, .. } if detail.contains("not a roomkit-graph store")),
        "{refused:?}"
    );
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'roomkit_graph'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "nothing created beside it");

    // A store of a newer version is refused too.
    let url = roomkit_graph_pgtest::database();
    drop(PostgresStore::connect(&url).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute("UPDATE roomkit_graph.meta SET schema_version = 99").await.unwrap();
    let refused = PostgresStore::connect(&url).await.map(drop).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Foreign { detail, .. } if detail.contains("newer")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_url_or_an_unknown_database_is_a_clear_error() {
    let refused = PostgresStore::connect("postgres://app@host:notaport/db").await.map(drop).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(detail) if detail.contains("not a PostgreSQL URL")),
        "{refused:?}"
    );
    let missing =
        PostgresStore::connect(&roomkit_graph_pgtest::missing_database()).await.map(drop).unwrap_err();
    let text = missing.to_string();
    assert!(text.contains("no_such_database") && text.contains("3D000"), "{text}");
    let nobody = PostgresStore::connect("postgres://app@127.0.0.1:1/runs").await.map(drop).unwrap_err();
    assert!(
        matches!(&nobody, StoreError::Unavailable(detail) if detail.contains("runs on 127.0.0.1:1 as app")),
        "{nobody:?}"
    );
}

/// How many connections to the database of `url` are encrypted and how many
/// are not, leaving out the one asking.
async fn connections_by_tls(url: &str) -> (i64, i64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_encrypted_as_sslmode_asks() {
    let url = roomkit_graph_pgtest::database();
    let required = PostgresStore::connect(&format!("{url}?sslmode=require")).await.unwrap();
    required.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let (encrypted, plain) = connections_by_tls(&url).await;
    assert!(encrypted >= 1 && plain == 0, "{encrypted} encrypted, {plain} plain");
    drop(required);

    let url = roomkit_graph_pgtest::database();
    let disabled = PostgresStore::connect(&format!("{url}?sslmode=disable")).await.unwrap();
    disabled.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let (encrypted, plain) = connections_by_tls(&url).await;
    assert!(encrypted == 0 && plain >= 1, "{encrypted} encrypted, {plain} plain");
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_go_on_while_the_server_keeps_dropping_connections_each_committed_once() {
    let url = roomkit_graph_pgtest::database();
    let store = PostgresStore::connect(&url).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    store.create_run(new_run("g", "r", None)).await.unwrap();

    // Every 50 ms, the server ends every other session on the database.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let dropping = tokio::spawn({
        let ended = std::sync::Arc::clone(&ended);
        async move {
            loop {
                let row = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap();
                ended.fetch_add(row.get::<_, i64>(0), std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let mut version = 1;
    while version <= 60 {
        match store.commit_step(step("r", version, &format!("n{version}"), json!(version))).await {
            Ok((record, _)) => version = record.version,
            // Applied, but the answer was lost with its connection: the run moved.
            Err(StoreError::Conflict { .. }) => version = store.run("r").await.unwrap().version,
            Err(other) => panic!("step {version}: {other}"),
        }
    }
    dropping.abort();
    let ended = ended.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ended >= 3, "only {ended} sessions were ended: the test did not drop connections");

    let events = store.transcript("r", 0, 1000).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=121).collect::<Vec<_>>(), "no gap");
    let completed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::NodeCompleted { node_id, .. } => Some(node_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(completed, (1..=60).map(|n| format!("n{n}")).collect::<Vec<_>>(), "each step once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_keeps_to_its_number_of_connections() {
    let url = roomkit_graph_pgtest::database();
    let zero = PostgresStore::connect_with(&url, Options { max_connections: 0 }).await.map(drop).unwrap_err();
    assert!(matches!(zero, StoreError::Invalid(_)), "{zero:?}");
    let store = PostgresStore::connect_with(&url, Options { max_connections: 2 }).await.unwrap();
    store.save_graph(DEFAULT_ORG, &graph("g")).await.unwrap();
    let runs = (0..12).map(|n| {
        let store = store.clone();
        async move {
            let run_id = format!("r{n}");
            store.create_run(new_run("g", &run_id, None)).await.unwrap();
            for version in 1..=5 {
                store
                    .commit_step(step(&run_id, version, &format!("s{version}"), json!(version)))
                    .await
                    .unwrap();
            }
        }
    });
    futures_util::future::join_all(runs).await;
    let (encrypted, plain) = connections_by_tls(&url).await;
    assert!(encrypted + plain <= 3, "two for the operations and one listening: {}", encrypted + plain);
    assert_eq!(store.list_runs(&RunFilter::default()).await.unwrap().len(), 12);
}
