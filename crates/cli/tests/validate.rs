//! `roomkit-graph validate` as people and scripts use it: the real binary on
//! real files; and the same checks behind `run` and the server's graph routes.

mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{Server, client};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../roomkit-graph/tests/fixtures").join(name)
}

fn validate(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomkit-graph"))
        .arg("validate")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_file_with_many_mistakes_gets_them_all_with_nodes_and_fields_and_exit_1() {
    let output = validate(&[fixture("many-mistakes.json").as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    for line in [
        "10 mistakes",
        "dangling_edge_target node=notify:",
        "unknown_function_action node=fetch field=action:",
        "invalid_duration node=wait field=duration:",
        "malformed_template node=greet field=template.text:",
        "malformed_condition node=check field=edges[4].condition:",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn files_given_together_are_a_family_whose_subgraphs_name_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let write = |id: &str, nodes: Value| {
        let path = dir.path().join(format!("{id}.json"));
        let mut all = vec![json!({"id": "start", "type": "start"})];
        all.extend(nodes.as_array().unwrap().iter().cloned());
        all.push(json!({"id": "end", "type": "end"}));
        let ids: Vec<&str> = all.iter().map(|node| node["id"].as_str().unwrap()).collect();
        let edges: Vec<Value> = ids.windows(2).map(|w| json!({"source": w[0], "target": w[1]})).collect();
        let graph =
            json!({"id": id, "name": id, "trigger": {"type": "manual"}, "nodes": all, "edges": edges});
        std::fs::write(&path, graph.to_string()).unwrap();
        path
    };
    let parent =
        write("parent", json!([{"id": "check", "type": "subgraph", "config": {"graph_id": "review"}}]));
    let review = write("review", json!([{"id": "look", "type": "log", "config": {"paths": []}}]));

    // Alone, the parent's subgraph may be stored already: a warning, exit 0.
    let output = validate(&[parent.as_os_str()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(
        stdout(&output).contains(
            "warning: subgraph_not_given node=check field=graph_id: node \"check\": graph \"review\" is not \
             among the files checked: it must be stored before this one"
        ),
        "{}",
        stdout(&output)
    );
    // Together, the family is whole.
    let output = validate(&[parent.as_os_str(), review.as_os_str()]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("parent.json: ok\n"), "{}", stdout(&output));
    assert!(!stdout(&output).contains("subgraph_not_given"), "{}", stdout(&output));
    // A graph that runs itself is a mistake.
    let itself =
        write("itself", json!([{"id": "again", "type": "subgraph", "config": {"graph_id": "itself"}}]));
    let output = validate(&[itself.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("invalid_subgraph node=again field=graph_id:"), "{}", stdout(&output));
}

#[test]
fn valid_files_exit_0_and_unreadable_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let valid = dir.path().join("valid.json");
    std::fs::write(
        &valid,
        r#"{"id": "g", "name": "G", "trigger": {"type": "manual"},
            "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
            "edges": [{"source": "start", "target": "end"}]}"#,
    )
    .unwrap();
    let output = validate(&[valid.as_os_str()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("valid.json: ok\n"));

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"id\": \"g\",\n \"nodes\": [}").unwrap();
    let missing = dir.path().join("missing.json");
    let output = validate(&[valid.as_os_str(), broken.as_os_str(), missing.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("broken.json: not a graph: invalid graph JSON") && text.contains("line 2"),
        "{text}"
    );
    assert!(text.contains("missing.json: not a graph: cannot read the file"), "{text}");
}

#[test]
fn json_output_lists_every_error_for_scripts() {
    let output = validate(&["--json".as_ref(), fixture("unreachable-and-config.json").as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["valid"], false);
    let errors = &report["files"][0]["errors"];
    assert_eq!(errors[0]["code"], "unreachable");
    assert_eq!(errors[0]["node"], "island");
    assert_eq!(errors[1]["code"], "invalid_join");
    assert_eq!(errors[1]["field"], "join");
}

#[test]
fn no_file_is_a_usage_error() {
    let output = validate(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FILES"));
}

const AI_GRAPH: &str = r#"{"id": "g", "name": "G", "trigger": {"type": "manual"},
 "nodes": [
  {"id": "start", "type": "start"},
  {"id": "triage", "type": "agent", "config": {"agent_id": "triage-agnet", "prompt_template": "{{trigger.title}}"}},
  {"id": "team", "type": "orchestration", "config": {"strategy": "pipeline", "agents": ["triage"]}},
  {"id": "tell", "type": "notification", "config": {"channel": "pager", "template": "Done"}},
  {"id": "end", "type": "end"}],
 "edges": [{"source": "start", "target": "triage"}, {"source": "triage", "target": "team"},
           {"source": "team", "target": "tell"}, {"source": "tell", "target": "end"}]}"#;

#[test]
fn agents_and_channels_files_check_the_nodes_that_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.json");
    std::fs::write(&graph, AI_GRAPH).unwrap();
    let agents = dir.path().join("agents.json");
    std::fs::write(
        &agents,
        r#"{"providers": {"local": {"kind": "openai"}},
            "agents": [{"id": "triage", "provider": "local", "model": "m"}]}"#,
    )
    .unwrap();
    let channels = dir.path().join("channels.json");
    std::fs::write(&channels, r#"{"channels": {"ops": {"kind": "webhook", "url": "http://127.0.0.1:9/"}}}"#)
        .unwrap();

    // Without the files only the graph itself is checked.
    assert_eq!(validate(&[graph.as_os_str()]).status.code(), Some(0));

    let output = validate(&[
        "--agents".as_ref(),
        agents.as_os_str(),
        "--channels".as_ref(),
        channels.as_os_str(),
        graph.as_os_str(),
        agents.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    for line in [
        "graph.json: 2 mistakes",
        "  agent_config node=triage field=agent_id: no agent \"triage-agnet\" (declared: triage)",
        "  notification_config node=tell field=channel: channel \"pager\" is not configured (configured: ops)",
        "agents.json: ok (agents file)",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn an_agents_or_channels_file_that_cannot_be_loaded_is_named_with_the_place_of_its_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.json");
    std::fs::write(&graph, AI_GRAPH).unwrap();
    let agents = dir.path().join("agents.json");
    std::fs::write(&agents, "{\n  \"providers\": {\"local\": {\"kind\": \"openai\",}}\n}").unwrap();
    let output = validate(&["--agents".as_ref(), agents.as_os_str(), graph.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("agents.json: agents file is not valid JSON at line 2, column 44: trailing comma"),
        "{stderr}"
    );

    std::fs::write(
        &agents,
        r#"{"providers": {"local": {"kind": "openai"}}, "agents": [{"id": "a", "provider": "local"}]}"#,
    )
    .unwrap();
    let output = validate(&["--agents".as_ref(), agents.as_os_str(), graph.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("agents.json: agents[0] (\"a\"): missing field `model`"), "{stderr}");

    let channels = dir.path().join("channels.json");
    std::fs::write(
        &channels,
        r#"{"channels": {"ops": {"kind": "slack", "webhook_url_env": "ROOMKIT_TEST_UNSET"}}}"#,
    )
    .unwrap();
    let output = validate(&["--channels".as_ref(), channels.as_os_str(), graph.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "channels.json: channel \"ops\": webhook_url_env: the environment variable ROOMKIT_TEST_UNSET is not set"
        ),
        "{stderr}"
    );
}

/// A graph whose `draft` and `review` nodes lead only to each other (the end
/// is reached from `check`), with `extra` merged into its top level.
fn looping_graph(extra: &str) -> String {
    format!(
        r#"{{"id": "g", "name": "G", "trigger": {{"type": "manual"}}{extra},
 "nodes": [{{"id": "start", "type": "start"}}, {{"id": "check", "type": "log"}},
           {{"id": "draft", "type": "log"}}, {{"id": "review", "type": "log"}}, {{"id": "end", "type": "end"}}],
 "edges": [{{"source": "start", "target": "check"}},
           {{"source": "check", "target": "end", "condition": {{"type": "field", "path": "trigger.skip", "op": "exists"}}}},
           {{"source": "check", "target": "draft"}},
           {{"source": "draft", "target": "review"}}, {{"source": "review", "target": "draft"}}]}}"#
    )
}

#[test]
fn warnings_are_printed_as_such_and_alone_they_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let looping = dir.path().join("looping.json");
    std::fs::write(&looping, looping_graph("")).unwrap();
    let output = validate(&[looping.as_os_str()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let warning = "  warning: cycle_without_exit node=draft: nodes \"draft\", \"review\" lead only to each \
                   other: a run that gets there ends only at its step limit; give one of them an edge out\n";
    assert_eq!(stdout(&output), format!("{}: ok, 1 warning\n{warning}", looping.display()));

    let output = validate(&["--json".as_ref(), looping.as_os_str()]);
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["valid"], true);
    assert_eq!(report["files"][0]["errors"], serde_json::json!([]));
    let warnings = &report["files"][0]["warnings"];
    assert_eq!(warnings.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(warnings[0]["code"], "cycle_without_exit");
    assert_eq!(warnings[0]["node"], "draft");
    assert_eq!(warnings[0]["field"], Value::Null);

    // With a mistake too (a max_steps of 0): exit 1, the mistake first, then the warning.
    let zero = dir.path().join("zero.json");
    std::fs::write(&zero, looping_graph(r#", "max_steps": 0"#)).unwrap();
    let output = validate(&[zero.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{}: 1 mistake, 1 warning", zero.display()));
    assert!(lines[1].starts_with("  invalid_max_steps field=max_steps: max_steps is 0"), "{text}");
    assert_eq!(format!("{}\n", lines[2]), warning);
    assert_eq!(lines.len(), 3, "{text}");

    // A max_steps that is not a whole number is no graph at all.
    let negative = dir.path().join("negative.json");
    std::fs::write(&negative, looping_graph(r#", "max_steps": -5"#)).unwrap();
    let output = validate(&[negative.as_os_str()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "negative.json: not a graph: invalid graph JSON: max_steps must be a whole number \
             of steps such as 1000, not -5 at line 1"
        ),
        "{text}"
    );
}

/// A graph scheduled on `cron` whose agent node calls `agent`.
fn scheduled_agent_graph(cron: &str, agent: &str) -> Value {
    json!({"id": "nightly", "name": "Nightly",
        "trigger": {"type": "scheduled", "schedule": {"cron": cron, "timezone": "UTC"}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "triage", "type": "agent", "config": {"agent_id": agent, "prompt_template": "Go"}},
                  {"id": "end", "type": "end"}],
        "edges": [{"source": "start", "target": "triage"}, {"source": "triage", "target": "end"}]})
}

/// `roomkit-graph --agents AGENTS validate --json FILE`: the exit status and the file's report.
fn validate_json(agents: &Path, file: &Path) -> (Option<i32>, Value) {
    let output = validate(&["--agents".as_ref(), agents.as_os_str(), "--json".as_ref(), file.as_os_str()]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    (output.status.code(), report["files"][0].clone())
}

/// A mistake as `validate` prints it, from its JSON.
fn printed(error: &Value) -> String {
    let node = error["node"].as_str().map(|n| format!(" node={n}")).unwrap_or_default();
    let field = error["field"].as_str().map(|f| format!(" field={f}")).unwrap_or_default();
    format!(
        "  {}{node}{field}: {}",
        error["code"].as_str().unwrap_or_default(),
        error["message"].as_str().unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_cron_is_refused_alike_by_validate_run_and_every_graph_route() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.json");
    std::fs::write(
        &agents,
        r#"{"providers": {"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "agents": [{"id": "triage", "provider": "local", "model": "m"}]}"#,
    )
    .unwrap();
    let file = dir.path().join("nightly.json");
    let graph = scheduled_agent_graph("every day", "triag");
    std::fs::write(&file, graph.to_string()).unwrap();

    // validate: the trigger's mistake, then the agent node's against the agents file.
    let (status, report) = validate_json(&agents, &file);
    assert_eq!(status, Some(1));
    let errors = report["errors"].clone();
    let found: Vec<(&str, Option<&str>, Option<&str>)> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["node"].as_str(), e["field"].as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("invalid_trigger", None, Some("trigger.schedule.cron")),
            ("agent_config", Some("triage"), Some("agent_id"))
        ]
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("trigger.schedule.cron \"every day\" is not a cron expression")
    );
    let text = stdout(&validate(&["--agents".as_ref(), agents.as_os_str(), file.as_os_str()]));
    let lines: Vec<String> = errors.as_array().unwrap().iter().map(printed).collect();
    assert_eq!(text, format!("{}: 2 mistakes\n{}\n", file.display(), lines.join("\n")));

    // run, on the database a server with the same agents file serves:
    // refused with the same mistakes, nothing stored.
    let server = Server::start(&["--agents", agents.to_str().unwrap()]);
    let token = server.token("default");
    let run =
        server::command(&server.db, &["--agents", agents.to_str().unwrap(), "run", file.to_str().unwrap()])
            .output()
            .expect("run runs");
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr,
        format!(
            "roomkit-graph: {}: 2 mistakes, so it was neither stored nor run:\n{}\n",
            file.display(),
            lines.join("\n")
        )
    );

    // The HTTP routes: the same findings, field for field.
    let send = |method: reqwest::Method, path: &str| {
        client().request(method, server.url(path)).bearer_auth(&token).json(&graph).send()
    };
    for (method, path) in
        [(reqwest::Method::POST, "/v1/graphs"), (reqwest::Method::PUT, "/v1/graphs/nightly")]
    {
        let refused = send(method, path).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_graph", "{path}");
        assert_eq!(body["error"]["details"]["errors"], errors, "{path}");
    }
    let checked: Value =
        send(reqwest::Method::POST, "/v1/graphs/validate").await.unwrap().json().await.unwrap();
    assert_eq!(checked, json!({"valid": false, "errors": errors, "warnings": []}));
    let listed: Value = server.get(&token, "/v1/graphs").await;
    assert_eq!(listed["graphs"], json!([]), "neither run nor the routes stored it");

    // Mended, the graph is accepted by all of them alike.
    let mended = scheduled_agent_graph("0 3 * * *", "triage");
    std::fs::write(&file, mended.to_string()).unwrap();
    assert_eq!(
        validate_json(&agents, &file),
        (Some(0), json!({"file": file, "valid": true, "errors": [], "warnings": []}))
    );
    let checked: Value = server.post(&token, "/v1/graphs/validate", &mended).await;
    assert_eq!(checked, json!({"valid": true, "errors": [], "warnings": []}));
    let created =
        client().post(server.url("/v1/graphs")).bearer_auth(&token).json(&mended).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
}
