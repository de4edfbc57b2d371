//! What was stored before the limits existed stays readable and runnable: a
//! run whose trigger data nests as deep as JSON text may (the server once took
//! it) is read back, answered and completed on a real SQLite file.

use roomkit_graph::{Edge, EngineState, Graph, Handlers, HumanHandler, Node, Trigger};
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::{DEFAULT_ORG, Entry, NewRun, RunStatus, StepCommit, now_millis};
use serde_json::{Map, json};

#[tokio::test(flavor = "multi_thread")]
async fn a_run_holding_data_deeper_than_the_limits_reads_back_and_completes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SqliteStore::open(dir.path().join("runs.db")).expect("the database opens");
    let runner = Runner::new(store, Handlers::builtin().with("human", HumanHandler));
    let mut graph = Graph::new("review", "Review", Trigger::manual());
    graph
        .add_nodes([
            Node::new("start", "start"),
            Node::new("review", "human").with_config(json!({"actions": ["approve"]})),
            Node::new("end", "end"),
        ])
        .expect("unique ids");
    graph.add_edges([Edge::new("start", "review"), Edge::new("review", "end")]);
    runner.save_graph(&graph).await.expect("a valid graph");

    // 126 levels in an object: 127 levels, the most JSON text may hold.
    let mut trigger = json!("leaf");
    for _ in 0..126 {
        trigger = json!([trigger]);
    }
    let trigger = json!({"deep": trigger});
    let mut context = Map::new();
    context.insert("start".to_owned(), json!({"output": {"input": trigger}}));
    let state = EngineState {
        context,
        current_node_id: Some("review".to_owned()),
        previous_node_id: Some("start".to_owned()),
        waiting: true,
        run_id: "0193deep-0000-7000-8000-000000000001".to_owned(),
        pending: Vec::new(),
        children: Default::default(),
    };
    // Stored as the store's own API takes it, as an earlier version did.
    let created = runner
        .store()
        .create_run(NewRun {
            origin: None,
            parent: None,
            concurrency: None,
            org: DEFAULT_ORG.to_owned(),
            graph_id: "review".to_owned(),
            graph_version: 1,
            at: now_millis(),
            trigger: trigger.clone(),
            state: state.clone(),
            key: None,
            lease: None,
            first_step: Some(StepCommit {
                run_id: state.run_id.clone(),
                expected_version: 1,
                at: now_millis(),
                writes: vec![("start".to_owned(), json!({"output": {"input": trigger}}))],
                current_node_id: Some("review".to_owned()),
                previous_node_id: Some("start".to_owned()),
                status: RunStatus::Waiting,
                error: None,
                entries: vec![
                    Entry::NodeCompleted { node_id: "start".to_owned(), output: json!({"input": trigger}) },
                    Entry::NodeWaiting {
                        node_id: "review".to_owned(),
                        prompt: None,
                        actions: vec!["approve".to_owned()],
                    },
                ],
                wake_at: None,
                lease: None,
                steps: 0,
                pending: Vec::new(),
            }),
        })
        .await
        .expect("the run is stored");

    let (record, loaded) = runner.store().load_run(&created.run_id).await.expect("the run reads back");
    assert_eq!(record.status, RunStatus::Waiting);
    assert_eq!(loaded.context["start"], json!({"output": {"input": trigger}}));
    let transcript =
        runner.store().transcript(&created.run_id, 0, 100).await.expect("the transcript reads back");
    assert!(transcript.len() >= 2, "{} entries", transcript.len());

    runner
        .answer(&created.run_id, "review", json!({"action": "approve"}), Some("ada"))
        .await
        .expect("answered");
    let done = runner.wait(&created.run_id).await.expect("the run ends");
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    let (_, finished) = runner.store().load_run(&created.run_id).await.expect("the run reads back");
    assert_eq!(finished.context["start"]["output"]["input"], trigger);
    assert_eq!(finished.context["review"], json!({"output": {"action": "approve"}}));
    runner.shutdown().await;
}
