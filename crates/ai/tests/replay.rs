//! An orchestration handed back the turns an earlier go kept goes on from
//! the first one it lacks, for every strategy: cut after any number of kept
//! records, a second go asks the loopback provider only for the turns not
//! kept, runs an agent's own tool only when its result was not kept, keeps
//! only what is new, and ends with the same output as an uncut go.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use roomkit_graph::{Emitted, Handlers, Node, Progress, Workflow};
use roomkit_graph_ai::{Agents, register};
use serde_json::{Value, json};
use support::{Answer, FakeProvider, OPENAI_KEY, Wire, agents_on, one_node_graph};

/// Hands back `earlier` and records what is kept.
struct Recorder {
    earlier: Vec<Value>,
    kept: Mutex<Vec<Value>>,
}

#[async_trait]
impl Progress for Recorder {
    fn kept(&self) -> &[Value] {
        &self.earlier
    }

    async fn keep(&self, _node_id: &str, record: Value, _sent: Vec<Emitted>) -> Result<(), String> {
        self.kept.lock().unwrap().push(record);
        Ok(())
    }
}

/// One strategy's case: the node, its agents, and the provider's answers.
struct Case {
    name: &'static str,
    config: Value,
    agents: Value,
    script: Vec<Answer>,
}

fn agent(id: &str) -> Value {
    json!({"id": id, "provider": "p", "model": format!("{id}-model")})
}

fn cases() -> Vec<Case> {
    let lookup = json!({"name": "lookup", "description": "Looks a word up",
                        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}});
    let mut researcher = agent("researcher");
    researcher["tools"] = json!([lookup]);
    vec![
        Case {
            name: "pipeline, an agent using its own tool",
            config: json!({"strategy": "pipeline", "agents": ["researcher", "editor"], "prompt_template": "Tides?"}),
            agents: json!([researcher, agent("editor")]),
            script: vec![
                Answer::tool("lookup", json!({"word": "tide"})),
                Answer::text("Tides come from the moon."),
                Answer::text("Edited: tides follow the moon."),
            ],
        },
        Case {
            name: "loop",
            config: json!({"strategy": "loop", "agent": "writer", "max_rounds": 5, "prompt_template": "Go.",
                           "until": {"type": "field", "path": "input", "op": "contains", "value": "DONE"}}),
            agents: json!([agent("writer")]),
            script: vec![Answer::text("one"), Answer::text("two"), Answer::text("three DONE")],
        },
        Case {
            name: "supervisor",
            config: json!({"strategy": "supervisor", "supervisor": "boss", "workers": ["a", "b"],
                           "prompt_template": "Plan."}),
            agents: json!([agent("boss"), agent("a"), agent("b")]),
            script: vec![
                Answer::tool("delegate", json!({"worker": "a", "task": "part one"})),
                Answer::text("one done"),
                Answer::tool("delegate", json!({"worker": "b", "task": "part two"})),
                Answer::text("two done"),
                Answer::text("All done."),
            ],
        },
        Case {
            name: "swarm",
            config: json!({"strategy": "swarm", "agents": ["triage", "billing"], "prompt_template": "Refund?"}),
            agents: json!([agent("triage"), agent("billing")]),
            script: vec![
                Answer::tool("handoff", json!({"agent": "billing", "message": "refund"})),
                Answer::text("Refunded."),
            ],
        },
    ]
}

/// One go at `case` against `script`, handed back `earlier`: the node's
/// output, what it kept, how many requests the provider got and how many
/// times the tool ran.
async fn go(case: &Case, script: Vec<Answer>, earlier: Vec<Value>) -> (Value, Vec<Value>, usize, usize) {
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    let agents: Agents =
        agents_on(&provider, json!({}), case.agents.clone()).with_tool("lookup", move |_| {
            *counted.lock().unwrap() += 1;
            async { Ok(json!("the rise and fall of the sea")) }
        });
    let node = Node::new("team", "orchestration").with_config(case.config.clone());
    let workflow = Workflow::new(one_node_graph(node), register(Handlers::builtin(), Arc::new(agents)));
    let mut engine = workflow.engine();
    let recorder = Arc::new(Recorder { earlier, kept: Mutex::new(Vec::new()) });
    engine.keep_progress_in(Arc::clone(&recorder) as Arc<dyn Progress>);
    engine.run(json!({})).await.unwrap_or_else(|error| panic!("{}: {error}", case.name));
    let output = engine.context().get("team.output").cloned().unwrap();
    let kept = recorder.kept.lock().unwrap().clone();
    let tool_runs = *calls.lock().unwrap();
    (output, kept, provider.requests().len(), tool_runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_goes_on_from_any_number_of_kept_turns() {
    for case in cases() {
        let (whole, records, requests, tool_runs) = go(&case, case.script.clone(), Vec::new()).await;
        assert_eq!(requests, case.script.len(), "{}", case.name);
        assert!(records.len() >= case.script.len(), "{}: each reply is kept: {records:?}", case.name);
        for cut in 0..=records.len() {
            let replies = records[..cut].iter().filter(|record| record.get("reply").is_some()).count();
            let results = records[..cut].iter().filter(|record| record.get("tool_result").is_some()).count();
            let rest = case.script[replies..].to_vec();
            let (output, kept, asked, ran) = go(&case, rest, records[..cut].to_vec()).await;
            let at = format!("{} cut after {cut} of {} records", case.name, records.len());
            assert_eq!(output, whole, "{at}");
            assert_eq!(kept, records[cut..], "{at}: only what is new is kept");
            assert_eq!(asked, case.script.len() - replies, "{at}: the turns kept are not asked for");
            assert_eq!(ran, tool_runs - results.min(tool_runs), "{at}: a kept tool result is not run again");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_kept_that_do_not_fit_the_conversation_fail_the_node_saying_so() {
    let case = &cases()[0];
    let foreign = vec![
        json!({"tool_result": {"agent": "editor", "result": {"call_id": "x", "content": "?", "is_error": false}}}),
    ];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), case.script.clone()).await;
    let agents = agents_on(&provider, json!({}), case.agents.clone());
    let node = Node::new("team", "orchestration").with_config(case.config.clone());
    let mut engine =
        Workflow::new(one_node_graph(node), register(Handlers::builtin(), Arc::new(agents))).engine();
    engine.keep_progress_in(Arc::new(Recorder { earlier: foreign, kept: Mutex::new(Vec::new()) }));
    let error = engine.run(json!({})).await.unwrap_err().to_string();
    assert!(
        error.contains(
            "a tool result of agent \"editor\" was kept where a reply of agent \"researcher\" comes"
        ),
        "{error}"
    );
    assert!(provider.requests().is_empty());
}
