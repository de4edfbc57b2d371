//! The conformance runner: executes conformance cases (a graph plus a script
//! of `run` / `resume` operations, or a validation request) and produces one
//! record per operation, in the format `compare.py` reads.
//!
//! Only the generic built-in handlers are registered, plus the case's mocks;
//! delays do not really wait.

mod mock;

use std::fs;
use std::path::Path;

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use roomkit_graph::{
    EngineError, EngineState, EngineStatus, Graph, Handlers, NoWaitClock, StreamMode, Workflow,
    WorkflowEngine,
};
use serde_json::{Map, Value, json};

use mock::MockHandler;

/// Runs every `*.json` case of `cases_dir` and writes `out_dir/NAME.json` for
/// each. Returns the names of the cases run.
pub async fn run_dir(cases_dir: &Path, out_dir: &Path) -> anyhow::Result<Vec<String>> {
    fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut paths: Vec<_> = fs::read_dir(cases_dir)
        .with_context(|| format!("cannot read cases folder {}", cases_dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no *.json case in {}", cases_dir.display());
    }
    let mut names = Vec::with_capacity(paths.len());
    for path in paths {
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let case: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let records = run_case(&case).await;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let out = out_dir.join(&name);
        fs::write(&out, serde_json::to_string_pretty(&records)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
        names.push(name);
    }
    Ok(names)
}

/// Runs one case and returns its records.
pub async fn run_case(case: &Value) -> Vec<Value> {
    let graph = match case.get("graph").cloned().map(Graph::from_value) {
        Some(Ok(graph)) => graph,
        Some(Err(error)) => return vec![failure("invalid_argument", &error.to_string(), Value::Null)],
        None => return vec![failure("invalid_argument", "the case has no \"graph\"", Value::Null)],
    };
    if case.get("validate").and_then(Value::as_bool) == Some(true) {
        return vec![validation_record(&graph)];
    }
    let mocks = case.get("mocks").and_then(Value::as_object).cloned().unwrap_or_default();
    let script = case.get("script").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut records = Vec::with_capacity(script.len());
    let mut saved: Option<EngineState> = None;
    for op in &script {
        let workflow = Workflow::new(graph.clone(), handlers(&mocks)).with_clock(NoWaitClock);
        let (record, state, failed) = run_op(&workflow, op, saved.take()).await;
        records.push(record);
        saved = state;
        if failed {
            break;
        }
    }
    records
}

fn handlers(mocks: &Map<String, Value>) -> Handlers {
    mocks.iter().fold(Handlers::builtin(), |handlers, (node_id, results)| {
        handlers.with_node(node_id, MockHandler::new(results.as_array().cloned().unwrap_or_default()))
    })
}

fn validation_record(graph: &Graph) -> Value {
    let mut errors: Vec<(String, Option<String>)> =
        graph.validate().into_iter().map(|e| (e.code.as_str().to_owned(), e.node)).collect();
    errors.sort();
    json!({"errors": errors.into_iter().map(|(code, node)| json!({"code": code, "node": node})).collect::<Vec<_>>()})
}

/// Runs one op; returns its record, the state to carry on and whether it failed.
async fn run_op(
    workflow: &Workflow,
    op: &Value,
    saved: Option<EngineState>,
) -> (Value, Option<EngineState>, bool) {
    let data = |key: &str| op.get(key).cloned().unwrap_or(Value::Null);
    let modes = match op.get("stream").map(stream_modes).transpose() {
        Ok(modes) => modes,
        Err(message) => return (failure("invalid_argument", &message, Value::Null), saved, true),
    };
    let mut engine = match op.get("op").and_then(Value::as_str) {
        Some("run") => workflow.engine(),
        Some("resume") => {
            let Some(state) = saved else {
                return (failure("invalid_argument", "resume needs a previous op", Value::Null), None, true);
            };
            match workflow.restore(state.clone()) {
                Ok(engine) => engine,
                Err(error) => return (error_record(&error, state_json(&state), None), Some(state), true),
            }
        }
        other => {
            let message = format!("unknown op {}", other.map_or("(none)".to_owned(), |o| format!("{o:?}")));
            return (failure("invalid_argument", &message, Value::Null), saved, true);
        }
    };
    let resume_node = op.get("node").and_then(Value::as_str).unwrap_or_default().to_owned();
    let is_run = op.get("op").and_then(Value::as_str) == Some("run");
    let (result, events) = match &modes {
        Some(modes) => {
            let mut stream = if is_run {
                engine.stream(data("input"), modes)
            } else {
                engine.stream_resume(&resume_node, data("data"), modes)
            };
            let mut events = Vec::new();
            let mut result = Ok(());
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => events.push(serde_json::to_value(event).unwrap_or(Value::Null)),
                    Err(error) => result = Err(error),
                }
            }
            drop(stream);
            (result, Some(events))
        }
        None if is_run => (engine.run(data("input")).await.map(drop), None),
        None => (
            async {
                engine.resume(&resume_node, data("data"))?;
                engine.advance().await.map(drop)
            }
            .await,
            None,
        ),
    };
    let state = engine.to_state();
    let record = match &result {
        Ok(()) => outcome_record(&engine, state_json(&state), events),
        Err(error) => error_record(error, state_json(&state), events),
    };
    (record, Some(state), result.is_err())
}

fn stream_modes(value: &Value) -> Result<Vec<StreamMode>, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("bad stream modes {value}: {e}"))
}

/// The saved state as a record holds it: without its run id.
fn state_json(state: &EngineState) -> Value {
    let mut json = serde_json::to_value(state).unwrap_or(Value::Null);
    if let Some(state) = json.as_object_mut() {
        state.remove("run_id");
    }
    json
}

fn outcome_record(engine: &WorkflowEngine, state: Value, events: Option<Vec<Value>>) -> Value {
    let outcome = match engine.status() {
        EngineStatus::Completed => "completed",
        EngineStatus::Waiting => "waiting",
        EngineStatus::Running => "stopped",
    };
    with_events(json!({"outcome": outcome, "error_kind": null, "state": state}), events)
}

fn error_record(error: &EngineError, state: Value, events: Option<Vec<Value>>) -> Value {
    let record = json!({
        "outcome": "error",
        "error_kind": error.kind().as_str(),
        "state": state,
        "error": error.to_string(),
    });
    with_events(record, events)
}

fn failure(kind: &str, message: &str, state: Value) -> Value {
    json!({"outcome": "error", "error_kind": kind, "state": state, "error": message})
}

fn with_events(mut record: Value, events: Option<Vec<Value>>) -> Value {
    if let (Some(events), Some(map)) = (events, record.as_object_mut()) {
        map.insert("events".to_owned(), Value::Array(events));
    }
    record
}
