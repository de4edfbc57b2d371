//! The `agent` node against loopback providers speaking OpenAI's and
//! Anthropic's wire formats, run through the real engine: streamed tokens,
//! tool calls, structured output, retries, timeouts and key secrecy.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomkit_graph::Node;
use serde_json::{Value, json};
use support::{ANTHROPIC_KEY, Answer, FakeProvider, OPENAI_KEY, Wire, agents_on, run_node};

fn triage_agent() -> Value {
    json!([{"id": "triage", "provider": "p", "model": "triage-model", "system_prompt": "You triage bugs.",
            "temperature": 0.2, "max_tokens": 256}])
}

fn triage_node(extra: Value) -> Node {
    let mut config = json!({"agent_id": "triage", "prompt_template": "Triage: {{trigger.title}}"});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    Node::new("triage", "agent").with_config(config)
}

#[tokio::test]
async fn a_reply_streams_as_tokens_then_one_agent_message_in_both_wire_formats() {
    for (wire, key, usage) in [
        (Wire::OpenAi, OPENAI_KEY, json!({"input_tokens": 11, "output_tokens": 7})),
        (Wire::Anthropic, ANTHROPIC_KEY, json!({"input_tokens": 13, "output_tokens": 9})),
    ] {
        let reply = "The login bug is critical: every user is locked out.";
        let provider = FakeProvider::start(wire, Some(key), vec![Answer::text(reply)]).await;
        let agents = agents_on(&provider, json!({}), triage_agent());
        let ran = run_node(agents, triage_node(json!({})), json!({"title": "Login fails"})).await;

        assert_eq!(ran.output, Ok(json!({"text": reply})), "{wire:?}");
        let tokens = ran.events("token");
        assert!(tokens.len() > 5, "{wire:?}: the reply arrived in pieces, not whole");
        assert!(tokens.iter().all(|t| t["agent"] == "triage" && t.as_object().map(|o| o.len()) == Some(3)));
        let joined: String = tokens.iter().filter_map(|t| t["text"].as_str()).collect();
        assert_eq!(joined, reply);
        assert_eq!(
            ran.events("agent_message"),
            [&json!({"type": "agent_message", "agent": "triage", "text": reply, "usage": usage})],
            "{wire:?}"
        );
        // The agent_message comes after every token.
        assert_eq!(ran.custom.last().map(|e| &e["type"]), Some(&json!("agent_message")));

        let requests = provider.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.model(), "triage-model");
        assert_eq!(request.system().as_deref(), Some("You triage bugs."));
        assert_eq!(request.messages(), [json!({"role": "user", "content": "Triage: Login fails"})]);
        assert_eq!(request.body["temperature"], json!(0.2));
        assert_eq!(request.body["max_tokens"], json!(256));
        assert!(request.tool_names().is_empty());
        if wire == Wire::OpenAi {
            assert_eq!(request.body["stream_options"], json!({"include_usage": true}));
        }
    }
}

#[tokio::test]
async fn tool_calls_run_the_registered_function_and_feed_its_result_back() {
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let key = if wire == Wire::OpenAi { OPENAI_KEY } else { ANTHROPIC_KEY };
        let script = vec![
            Answer::tool("weather", json!({"city": "Paris", "days": [1, 2]})),
            Answer::text("Sunny in Paris."),
        ];
        let provider = FakeProvider::start(wire, Some(key), script).await;
        let agents_json = json!([{"id": "triage", "provider": "p", "model": "m", "tools": [{
            "name": "weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }]}]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let agents = agents_on(&provider, json!({}), agents_json).with_tool("weather", move |args| {
            record.lock().expect("lock").push(args.clone());
            async move { Ok(json!({"forecast": "sunny", "city": args["city"]})) }
        });
        let ran = run_node(agents, triage_node(json!({})), json!({"title": "Trip"})).await;

        assert_eq!(ran.output, Ok(json!({"text": "Sunny in Paris."})), "{wire:?}");
        assert_eq!(*seen.lock().unwrap(), [json!({"city": "Paris", "days": [1, 2]})], "{wire:?}");
        assert_eq!(
            ran.events("tool_call"),
            [&json!({"type": "tool_call", "agent": "triage", "tool": "weather",
                     "arguments": {"city": "Paris", "days": [1, 2]}})]
        );
        // Only the final reply is an agent message: the tool-only reply had no text.
        assert_eq!(ran.events("agent_message").len(), 1);

        let requests = provider.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].tool_names(), ["weather"]);
        let result = r#"{"forecast":"sunny","city":"Paris"}"#;
        let messages = requests[1].messages();
        match wire {
            Wire::OpenAi => {
                assert_eq!(
                    requests[0].body["tools"][0],
                    json!({"type": "function", "function": {"name": "weather", "description": "Weather by city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
                );
                assert_eq!(
                    messages[1],
                    json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
                        "function": {"name": "weather", "arguments": "{\"city\":\"Paris\",\"days\":[1,2]}"}}]})
                );
                assert_eq!(messages[2], json!({"role": "tool", "tool_call_id": "call_0", "content": result}));
            }
            Wire::Anthropic => {
                assert_eq!(requests[0].body["tools"][0]["input_schema"]["required"], json!(["city"]));
                assert_eq!(
                    messages[1],
                    json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "weather",
                        "input": {"city": "Paris", "days": [1, 2]}}]})
                );
                assert_eq!(
                    messages[2],
                    json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": result}]})
                );
            }
        }
    }
}

fn severity_schema() -> Value {
    json!({"type": "object", "required": ["severity"], "additionalProperties": false,
           "properties": {"severity": {"enum": ["low", "high", "critical"]}}})
}

#[tokio::test]
async fn a_reply_that_misses_the_schema_is_asked_again_with_the_error() {
    let script = vec![
        Answer::text(r#"{"severity": "urgent"}"#),
        Answer::text("```json\n{\"severity\": \"critical\"}\n```"),
    ];
    let provider = FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), script).await;
    let agents = agents_on(&provider, json!({}), triage_agent());
    let ran =
        run_node(agents, triage_node(json!({"output_schema": severity_schema()})), json!({"title": "x"}))
            .await;

    assert_eq!(ran.output, Ok(json!({"severity": "critical"})));
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[0].last_user_text().contains("\"enum\":[\"low\",\"high\",\"critical\"]"),
        "the schema is shown"
    );
    let retry = requests[1].last_user_text();
    assert!(retry.contains("/severity") && retry.contains("urgent"), "the error is shown: {retry}");
    // The first reply stays in the conversation the model sees.
    assert_eq!(requests[1].messages().len(), 3);
    assert_eq!(ran.events("agent_message").len(), 2);
}

#[tokio::test]
async fn a_reply_that_never_fits_fails_naming_the_schema_error() {
    let script = vec![Answer::text("I think it is bad."), Answer::text(r#"{"severity": 3}"#)];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), triage_agent());
    let node = triage_node(json!({"output_schema": severity_schema(), "schema_retries": 1}));
    let ran = run_node(agents, node, json!({"title": "x"})).await;

    let error = ran.output.unwrap_err();
    assert!(error.starts_with(
        "node \"triage\" failed: agent \"triage\": the reply did not fit output_schema after 2 tries"
    ));
    assert!(error.contains("at /severity: 3 is not one of"), "{error}");
    assert_eq!(provider.requests().len(), 2);
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let script = vec![Answer::status(429, Some("1"), "Rate limit reached"), Answer::text("ok")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), triage_agent());
    let ran = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await;

    assert_eq!(ran.output, Ok(json!({"text": "ok"})));
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    // The policy's own backoff is 10 ms: only Retry-After explains a second.
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(3), "retried after {waited:?}");
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_waits_then_reported() {
    let script = vec![
        Answer::status(503, None, "overloaded"),
        Answer::status(500, None, "oops"),
        Answer::text("fine"),
    ];
    let provider = FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), script).await;
    let agents = agents_on(
        &provider,
        json!({"retry": {"max_attempts": 3, "initial_backoff": "50ms"}}),
        triage_agent(),
    );
    let ran = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await;
    assert_eq!(ran.output, Ok(json!({"text": "fine"})));
    let at: Vec<_> = provider.requests().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 3);
    assert!(at[1] - at[0] >= Duration::from_millis(50));
    assert!(at[2] - at[1] >= Duration::from_millis(100), "the second wait doubles");

    // Out of attempts: the last status and the provider's message, with the agent.
    let script = vec![Answer::status(529, None, "Overloaded"), Answer::status(529, None, "Overloaded")];
    let provider = FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), script).await;
    let agents = agents_on(
        &provider,
        json!({"retry": {"max_attempts": 2, "initial_backoff": "10ms"}}),
        triage_agent(),
    );
    let ran = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await;
    assert_eq!(
        ran.output,
        Err("node \"triage\" failed: agent \"triage\": provider \"p\" answered 529 after 2 attempt(s): Overloaded".into())
    );

    // A client error is not retried.
    let script =
        vec![Answer::status(400, None, "messages: at least one message is required"), Answer::text("no")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, json!({}), triage_agent());
    let ran = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await;
    assert!(
        ran.output
            .unwrap_err()
            .ends_with("answered 400 after 1 attempt(s): messages: at least one message is required")
    );
    assert_eq!(provider.unanswered(), 1);
}

#[tokio::test]
async fn the_node_tries_again_after_a_failure_that_may_pass_but_not_after_a_refused_request() {
    let retry = json!({"retry": {"max_attempts": 2, "backoff": {"initial": "10ms"}}});
    let single = json!({"retry": {"max_attempts": 1}});
    // The provider gives up at once; the node's policy tries again.
    let script = vec![Answer::status(529, None, "Overloaded"), Answer::text("fine")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, single.clone(), triage_agent());
    let ran = run_node(agents, triage_node(retry.clone()), json!({"title": "x"})).await;
    assert_eq!(ran.output, Ok(json!({"text": "fine"})));

    // The request itself is wrong: sending it again would not help.
    let script = vec![Answer::status(400, None, "no model"), Answer::text("no")];
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), script).await;
    let agents = agents_on(&provider, single, triage_agent());
    let ran = run_node(agents, triage_node(retry.clone()), json!({"title": "x"})).await;
    assert!(ran.output.unwrap_err().ends_with("answered 400 after 1 attempt(s): no model"));
    assert_eq!(provider.unanswered(), 1);

    // Nothing listens: the failure says why, from the HTTP client's causes.
    let closed =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let unreachable = json!({"base_url": format!("http://{closed}"), "retry": {"max_attempts": 1}});
    let agents = agents_on(&provider, unreachable, triage_agent());
    let error = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await.output.unwrap_err();
    assert!(error.starts_with("node \"triage\" failed: agent \"triage\": provider \"p\" could not be reached after 1 attempt(s): error sending request"), "{error}");
    assert!(error.contains("onnection refused") && !error.contains(OPENAI_KEY), "{error}");
}

#[tokio::test]
async fn a_call_that_gets_no_answer_times_out() {
    let provider =
        FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), vec![Answer::Hang, Answer::text("late")]).await;
    let agents = agents_on(&provider, json!({"timeout": "300ms"}), triage_agent());
    let started = tokio::time::Instant::now();
    let ran = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await;
    assert_eq!(
        ran.output,
        Err("node \"triage\" failed: agent \"triage\": provider \"p\" did not answer within 300ms".into())
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(provider.requests().len(), 1, "a timed-out call is not sent again");
}

#[tokio::test]
async fn an_api_key_is_never_printed() {
    let secret = "sk-live-DO-NOT-PRINT-9f8e7d6c5b4a";
    let leaks = |text: &str| text.contains(secret) || text.contains("DO-NOT-PRINT");

    // The server wants another key and echoes the one it got in its 401 message.
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), vec![]).await;
    let agents =
        agents_on(&provider, json!({}), triage_agent()).with_env_lookup(move |_| Some(secret.to_owned()));
    assert!(!leaks(&format!("{agents:?}")));
    assert!(!leaks(&format!("{:#?}", agents.config())));
    let ran = run_node(agents.clone(), triage_node(json!({})), json!({"title": "x"})).await;
    let error = ran.output.unwrap_err();
    assert!(
        error.contains("answered 401") && error.contains("Incorrect API key provided: Bearer [redacted]"),
        "{error}"
    );
    assert!(!leaks(&error), "{error}");
    assert!(ran.custom.iter().all(|event| !leaks(&event.to_string())));
    assert_eq!(
        provider.requests()[0].headers["authorization"],
        format!("Bearer {secret}").as_str(),
        "it was sent"
    );

    // Anthropic's header, and a key that cannot be a header value.
    let provider = FakeProvider::start(Wire::Anthropic, Some(ANTHROPIC_KEY), vec![Answer::text("hi")]).await;
    let agents = agents_on(&provider, json!({}), triage_agent());
    let ran = run_node(agents.clone(), triage_node(json!({})), json!({"title": "x"})).await;
    assert_eq!(ran.output, Ok(json!({"text": "hi"})));
    assert_eq!(provider.requests()[0].headers["x-api-key"], ANTHROPIC_KEY);
    let bad = agents.with_env_lookup(move |_| Some(format!("{secret}\n")));
    let error = run_node(bad, triage_node(json!({})), json!({"title": "x"})).await.output.unwrap_err();
    assert!(
        error.contains("the API key holds characters a header cannot carry") && !leaks(&error),
        "{error}"
    );

    // A missing key names the variable.
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), vec![]).await;
    let agents = agents_on(&provider, json!({}), triage_agent()).with_env_lookup(|_| None);
    let error = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await.output.unwrap_err();
    assert_eq!(
        error,
        "node \"triage\" failed: agent \"triage\": provider \"p\": the environment variable TEST_KEY (its api_key_env) is not set"
    );
    assert!(provider.requests().is_empty());
}

#[tokio::test]
async fn node_config_mistakes_fail_with_the_field() {
    let provider = FakeProvider::start(Wire::OpenAi, Some(OPENAI_KEY), vec![]).await;
    let agents = agents_on(&provider, json!({}), triage_agent());
    let node =
        Node::new("triage", "agent").with_config(json!({"agent_id": "ghost", "prompt_template": "hi"}));
    let error = run_node(agents.clone(), node, json!({})).await.output.unwrap_err();
    assert_eq!(
        error,
        "node \"triage\" failed: config field \"agent_id\": no agent \"ghost\" (declared: triage)"
    );
    let node = triage_node(json!({"output_schema": {"type": "thing"}}));
    let error = run_node(agents, node, json!({"title": "x"})).await.output.unwrap_err();
    assert!(
        error.starts_with("node \"triage\" failed: config field \"output_schema\": not a usable JSON Schema"),
        "{error}"
    );
}

#[tokio::test]
async fn a_broken_stream_fails_clearly_instead_of_returning_half_a_reply() {
    // Cut off before [DONE].
    let cut = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Half\"}}]}\n\n".to_owned();
    // An error event in the middle of the stream, as Anthropic sends when overloaded.
    let overloaded = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    // Tool arguments that are not JSON.
    let bad_arguments = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"t\",\"arguments\":\"{oops\"}}]}}]}\n\n",
        "data: [DONE]\n\n",
    );
    for (wire, raw, expected) in [
        (Wire::OpenAi, cut, "provider \"p\" sent a bad stream: the stream ended before data: [DONE]"),
        (Wire::Anthropic, overloaded.to_owned(), "provider \"p\" sent a bad stream: error event: Overloaded"),
        (
            Wire::OpenAi,
            bad_arguments.to_owned(),
            "provider \"p\" sent a bad stream: the arguments of tool call \"t\" are not JSON",
        ),
    ] {
        let key = if wire == Wire::OpenAi { OPENAI_KEY } else { ANTHROPIC_KEY };
        let provider = FakeProvider::start(wire, Some(key), vec![Answer::Raw(raw)]).await;
        let agents = agents_on(&provider, json!({}), triage_agent());
        let error = run_node(agents, triage_node(json!({})), json!({"title": "x"})).await.output.unwrap_err();
        assert!(
            error.starts_with(&format!("node \"triage\" failed: agent \"triage\": {expected}")),
            "{error}"
        );
    }
}
