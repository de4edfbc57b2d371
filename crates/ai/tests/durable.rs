//! An agent node run durably: the runner commits each step to a real SQLite
//! file, the agent's reply is kept as a typed transcript entry with its usage,
//! and the streamed tokens go out live only.

mod support;

use std::sync::Arc;

use roomkit_graph::{Handlers, Node};
use roomkit_graph_ai::register;
use roomkit_graph_runner::Runner;
use roomkit_graph_sqlite::SqliteStore;
use roomkit_graph_store::prelude::*;
use roomkit_graph_store::{Entry, RunStatus};
use serde_json::json;
use support::{Answer, FakeProvider, OPENAI_KEY, Wire, agents_on, one_node_graph};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reply_is_committed_as_an_agent_message_with_usage_and_its_tokens_only_go_out_live() {
    let reply = "Critical: nobody can sign in.";
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), vec![Answer::text(reply)]).await;
    let agents = agents_on(&provider, json!({}), json!([{"id": "triage", "provider": "p", "model": "m"}]));
    let node = Node::new("triage", "agent")
        .with_config(json!({"agent_id": "triage", "prompt_template": "Triage: {{trigger.title}}"}));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");

    let runner =
        Runner::new(SqliteStore::open(&db).unwrap(), register(Handlers::builtin(), Arc::new(agents)));
    let mut live = runner.live();
    runner.save_graph(&one_node_graph(node)).await.unwrap();
    let run = runner.start("g", json!({"title": "Login is down"})).await.unwrap();
    assert_eq!(runner.wait(&run.run_id).await.unwrap().status, RunStatus::Completed);
    runner.shutdown().await;
    drop(runner);

    let mut streamed = String::new();
    while let Ok(event) = live.try_recv() {
        assert_eq!((event.run_id.as_str(), event.node_id.as_str()), (run.run_id.as_str(), "triage"));
        assert_eq!(event.payload["type"], "token");
        streamed.push_str(event.payload["text"].as_str().unwrap());
    }
    assert_eq!(streamed, reply);

    // Read back from the file by a new store, as another process would.
    let store = SqliteStore::open(&db).unwrap();
    let transcript = store.transcript(&run.run_id, 0, usize::MAX).await.unwrap();
    let messages: Vec<&Entry> = transcript
        .iter()
        .map(|event| &event.entry)
        .filter(|e| matches!(e, Entry::AgentMessage { .. }))
        .collect();
    assert_eq!(
        messages,
        [&Entry::AgentMessage {
            node_id: "triage".into(),
            agent: "triage".into(),
            text: reply.into(),
            usage: Some(json!({"input_tokens": 11, "output_tokens": 7})),
        }]
    );
    assert!(
        !transcript
            .iter()
            .any(|event| matches!(&event.entry, Entry::Custom { payload, .. } if payload["type"] == "token")),
        "no token is kept: {transcript:?}"
    );
    assert_eq!(transcript.last().map(|event| &event.entry), Some(&Entry::RunCompleted));
}
