//! The `orchestration` node's strategies against loopback providers, run
//! through the real engine: pipeline, loop, supervisor and swarm.

mod support;

use roomkit_graph::Node;
use serde_json::{Value, json};
use support::{ANTHROPIC_KEY, Answer, FakeProvider, OPENAI_KEY, Wire, agents_on, run_node};

/// Agents `ids` on provider "p", each with its own model and system prompt.
fn team(ids: &[&str]) -> Value {
    let agents: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "provider": "p", "model": format!("{id}-model"), "system_prompt": format!("You are {id}."),
                   "description": format!("the {id}")})
        })
        .collect();
    Value::Array(agents)
}

fn orchestration(config: Value) -> Node {
    Node::new("team", "orchestration").with_config(config)
}

/// The `messages` of an orchestration output as (agent, text) pairs.
fn said(output: &Value) -> Vec<(String, String)> {
    let messages = output["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .map(|m| {
            (m["agent"].as_str().unwrap_or("?").to_owned(), m["text"].as_str().unwrap_or("?").to_owned())
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, t)| (a.to_string(), t.to_string())).collect()
}

#[tokio::test]
async fn a_pipeline_gives_each_agent_the_previous_reply() {
    let script = vec![Answer::text("Draft: Rust is fast."), Answer::text("Edited: Rust is fast and safe.")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), team(&["writer", "editor"]));
    let node = orchestration(json!({"strategy": "pipeline", "agents": ["writer", "editor"],
                                    "prompt_template": "Write about {{trigger.topic}}."}));
    let ran = run_node(agents, node, json!({"topic": "Rust"})).await;

    let output = ran.output.clone().expect("the pipeline completes");
    assert_eq!(output["text"], "Edited: Rust is fast and safe.");
    assert_eq!(
        said(&output),
        pairs(&[("writer", "Draft: Rust is fast."), ("editor", "Edited: Rust is fast and safe.")])
    );
    let requests = provider.requests();
    assert_eq!((requests[0].model(), requests[1].model()), ("writer-model", "editor-model"));
    assert_eq!(requests[0].messages(), [json!({"role": "user", "content": "Write about Rust."})]);
    assert_eq!(requests[1].messages(), [json!({"role": "user", "content": "Draft: Rust is fast."})]);
    assert_eq!(requests[1].system().as_deref(), Some("You are editor."));
    let agents_messaging: Vec<&Value> = ran.events("agent_message").iter().map(|e| &e["agent"]).collect();
    assert_eq!(agents_messaging, [&json!("writer"), &json!("editor")]);
}

#[tokio::test]
async fn a_loop_repeats_until_its_condition_on_the_last_reply_holds() {
    let script = vec![
        Answer::text(r#"{"score": 4, "draft": "a"}"#),
        Answer::text(r#"{"score": 6, "draft": "b"}"#),
        Answer::text(r#"{"score": 9, "draft": "c"}"#),
        Answer::text("never asked"),
    ];
    let provider = FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), script).await;
    let agents = agents_on(&provider, json!({}), team(&["writer"]));
    let node = orchestration(json!({
        "strategy": "loop", "agent": "writer", "max_rounds": 5,
        "prompt_template": "Write a slogan for {{trigger.product}}.",
        "loop_prompt": "Score {{input.score}} is below {{trigger.goal}}: improve draft {{ input.draft }}.",
        "until": {"type": "field", "path": "input.score", "op": "gt", "value": 8}
    }));
    let ran = run_node(agents, node, json!({"product": "tea", "goal": 8})).await;

    let output = ran.output.clone().expect("the loop completes");
    assert_eq!(output["text"], r#"{"score": 9, "draft": "c"}"#);
    assert_eq!(said(&output).len(), 3);
    assert_eq!(provider.unanswered(), 1, "the loop stopped when the condition held");
    let requests = provider.requests();
    assert_eq!(requests[1].last_user_text(), "Score 4 is below 8: improve draft a.");
    assert_eq!(requests[2].last_user_text(), "Score 6 is below 8: improve draft b.");
    // One conversation: the agent sees its earlier replies.
    assert_eq!(requests[2].messages().len(), 5);
}

#[tokio::test]
async fn a_loop_stops_after_max_rounds_and_reads_text_replies() {
    let script = vec![Answer::text("try 1"), Answer::text("try 2"), Answer::text("spare")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), team(&["writer"]));
    let node = orchestration(json!({
        "strategy": "loop", "agents": ["writer"], "max_rounds": 2, "prompt_template": "Go.",
        "until": {"type": "field", "path": "input", "op": "contains", "value": "DONE"}
    }));
    let ran = run_node(agents, node, json!({})).await;
    let output = ran.output.clone().expect("the loop completes");
    assert_eq!(output["text"], "try 2");
    assert_eq!(provider.requests()[1].last_user_text(), "Continue.");
    assert_eq!(provider.unanswered(), 1);
}

#[tokio::test]
async fn a_supervisor_delegates_to_workers_and_answers_with_their_results() {
    let script = vec![
        Answer::tool("delegate", json!({"worker": "researcher", "task": "Find three facts about tea."})),
        Answer::text("Tea is old. Tea is popular. Tea has caffeine."),
        Answer::tool("delegate", json!({"worker": "writer", "task": "Write one line from: Tea is old."})),
        Answer::text("Tea: ancient and beloved."),
        Answer::text("Here it is: Tea: ancient and beloved."),
    ];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), team(&["boss", "researcher", "writer"]));
    let node = orchestration(json!({"strategy": "supervisor", "supervisor": "boss",
                                    "workers": ["researcher", "writer"], "prompt_template": "A line about tea."}));
    let ran = run_node(agents, node, json!({})).await;

    let output = ran.output.clone().expect("the supervisor completes");
    assert_eq!(output["text"], "Here it is: Tea: ancient and beloved.");
    assert_eq!(
        said(&output),
        pairs(&[
            ("researcher", "Tea is old. Tea is popular. Tea has caffeine."),
            ("writer", "Tea: ancient and beloved."),
            ("boss", "Here it is: Tea: ancient and beloved."),
        ])
    );
    let requests = provider.requests();
    let models: Vec<&str> = requests.iter().map(|r| r.model()).collect();
    assert_eq!(models, ["boss-model", "researcher-model", "boss-model", "writer-model", "boss-model"]);
    assert_eq!(requests[0].tool_names(), ["delegate"]);
    let delegate = &requests[0].body["tools"][0]["function"];
    assert_eq!(delegate["parameters"]["properties"]["worker"]["enum"], json!(["researcher", "writer"]));
    assert!(delegate["description"].as_str().unwrap_or_default().contains("researcher (the researcher)"));
    assert!(requests[1].tool_names().is_empty(), "workers get no delegate tool");
    assert_eq!(requests[1].messages(), [json!({"role": "user", "content": "Find three facts about tea."})]);
    assert_eq!(
        requests[2].messages()[2],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "Tea is old. Tea is popular. Tea has caffeine."})
    );
    assert_eq!(requests[4].messages().len(), 5);
    let tool_calls = ran.events("tool_call");
    assert_eq!(tool_calls.len(), 2);
    assert_eq!(tool_calls[0]["agent"], "boss");
}

#[tokio::test]
async fn a_supervisor_that_never_answers_stops_at_max_rounds() {
    let call = || Answer::tool("delegate", json!({"worker": "ghost", "task": "x"}));
    let provider =
        FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), vec![call(), call(), call()]).await;
    let agents = agents_on(&provider, json!({}), team(&["boss", "worker"]));
    let node = orchestration(json!({"strategy": "supervisor", "supervisor": "boss", "workers": ["worker"],
                                    "max_rounds": 2, "prompt_template": "Go."}));
    let ran = run_node(agents, node, json!({})).await;
    assert_eq!(
        ran.output,
        Err("node \"team\" failed: supervisor orchestration did not end within max_rounds = 2".into())
    );
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    // An unknown worker is reported to the supervisor, not run.
    let result = &requests[1].messages()[2]["content"][0];
    assert_eq!(result["is_error"], true);
    assert!(result["content"].as_str().unwrap_or_default().contains("there is no worker \"ghost\""));
}

#[tokio::test]
async fn a_swarm_hands_the_conversation_on_until_an_agent_answers() {
    let script = vec![
        Answer::Reply {
            text: "Let me pass you to billing.".into(),
            tool_calls: vec![("handoff".into(), json!({"agent": "billing", "message": "wants a refund"}))],
        },
        Answer::text("Your refund is on its way."),
    ];
    let provider = FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), script).await;
    let agents = agents_on(&provider, json!({}), team(&["triage", "billing", "tech"]));
    let node = orchestration(json!({"strategy": "swarm", "agents": ["triage", "billing", "tech"],
                                    "prompt_template": "I was charged twice."}));
    let ran = run_node(agents, node, json!({})).await;

    let output = ran.output.clone().expect("the swarm completes");
    assert_eq!(output["text"], "Your refund is on its way.");
    assert_eq!(
        said(&output),
        pairs(&[("triage", "Let me pass you to billing."), ("billing", "Your refund is on its way.")])
    );
    let requests = provider.requests();
    assert_eq!((requests[0].model(), requests[1].model()), ("triage-model", "billing-model"));
    assert_eq!(requests[1].system().as_deref(), Some("You are billing."));
    assert_eq!(requests[0].tool_names(), ["handoff"]);
    assert_eq!(requests[1].tool_names(), ["handoff"]);
    // Billing sees the whole conversation, the handoff and its result.
    let messages = requests[1].messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["content"][1]["input"], json!({"agent": "billing", "message": "wants a refund"}));
    assert_eq!(
        messages[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_0", "content": "triage handed the conversation to billing"})
    );
}

#[tokio::test]
async fn a_swarm_starts_at_its_entry_and_is_bounded() {
    let handoff = |to: &str| Answer::tool("handoff", json!({"agent": to}));
    let script = vec![handoff("a"), handoff("b"), handoff("a")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), team(&["a", "b"]));
    let node = orchestration(
        json!({"strategy": "swarm", "agents": ["a", "b"], "entry": "b", "max_rounds": 3, "prompt_template": "x"}),
    );
    let ran = run_node(agents, node, json!({})).await;
    assert_eq!(
        ran.output,
        Err("node \"team\" failed: swarm orchestration did not end within max_rounds = 3".into())
    );
    let models: Vec<String> = provider.requests().iter().map(|r| r.model().to_owned()).collect();
    assert_eq!(models, ["b-model", "a-model", "b-model"]);
}

#[tokio::test]
async fn orchestration_config_mistakes_name_the_field() {
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), vec![]).await;
    let agents = agents_on(&provider, json!({}), team(&["a"]));
    for (config, expected) in [
        (json!({"strategy": "mesh"}), "config field \"strategy\": unknown strategy \"mesh\""),
        (json!({"strategy": "pipeline", "agents": []}), "config field \"agents\": must be a non-empty array"),
        (json!({"strategy": "supervisor", "workers": ["a"]}), "config field \"supervisor\": is required"),
        (
            json!({"strategy": "swarm", "agents": ["a"], "entry": "z"}),
            "config field \"entry\": \"z\" is not one of",
        ),
        (json!({"strategy": "loop", "agent": "a", "until": {"type": "field"}}), "config field \"until\":"),
        (
            json!({"strategy": "pipeline", "agents": ["a", "nobody"], "prompt_template": "x"}),
            "config field \"agents\": no agent \"nobody\"",
        ),
    ] {
        let error = run_node(agents.clone(), orchestration(config), json!({})).await.output.unwrap_err();
        assert!(error.starts_with(&format!("node \"team\" failed: {expected}")), "{error}");
    }
    assert!(provider.requests().is_empty());
}
