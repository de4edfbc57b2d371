//! A run's steps as the reference takes them: `start` with its checks, each
//! step begun and finished with its run-log records, and the core's errors
//! as the reference's exceptions.

use std::sync::Arc;
use std::time::Instant;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyString};
use roomkit_graph::{EngineError, Graph, HandlerError, NodeType, StepStatus, WorkflowEngine as Core};
use serde_json::{Map, Value};

use crate::context::template_error;
use crate::errors::ErrorClass;
use crate::handlers::raised_text;
use crate::runlog::{self, INFO, Record, WARNING};
use crate::shared::{NodeInfo, Shared, limit_error};

/// The reference's refusal of a graph whose node named `start` is not its start node.
pub(crate) fn misnamed_start(graph: &Graph) -> Option<PyErr> {
    let node = graph.node("start")?;
    (node.node_type != NodeType::Start).then(|| {
        PyValueError::new_err(format!(
            "Only the start node may be named 'start', not {} node 'start'",
            node.node_type.as_str()
        ))
    })
}

/// An engine error as the exception roomkit-graph raises for it.
pub(crate) fn engine_error(error: EngineError) -> PyErr {
    match error {
        EngineError::Execution { node, message } => {
            ErrorClass::Execution.err(format!("Node '{node}' failed: {message}"))
        }
        EngineError::NoHandler { node_type, .. } => {
            ErrorClass::Execution.err(HandlerError::NoHandler { node_type }.to_string())
        }
        EngineError::NoTransition { node } => {
            ErrorClass::NoValidTransition.err(format!("No valid transition from node '{node}'"))
        }
        EngineError::Template { source, .. } => template_error(&source),
        EngineError::Condition { source, .. } => ErrorClass::Condition.err(source.to_string()),
        error @ (EngineError::InvalidArgument(_) | EngineError::AnswerRefused { .. }) => {
            PyValueError::new_err(error.to_string())
        }
        other => ErrorClass::Execution.err(other.to_string()),
    }
}

/// Starts a run on `core`, with the reference's checks and record.
pub(crate) fn start(py: Python<'_>, shared: &Shared, core: &mut Core, trigger: Value) -> PyResult<()> {
    if !core.graph().nodes().iter().any(|node| node.node_type == NodeType::Start) {
        return Err(PyValueError::new_err("Graph has no start node"));
    }
    if let Some(error) = misnamed_start(core.graph()) {
        return Err(error);
    }
    // The reference's start sets the start node's output and keeps the rest
    // of the context (what a context given to the engine holds, an earlier
    // run's outputs).
    core.start_keeping_context(trigger).map_err(engine_error)?;
    shared.run_started(core.run_id());
    let run = shared.run(core.run_id());
    runlog::log(py, INFO, &run, || Record {
        event: "run.start",
        level: INFO,
        message: "Run %s of %s started",
        node: None,
        args: vec![PyString::new(py, run.id).into_any(), PyString::new(py, run.graph).into_any()],
        fields: Vec::new(),
    });
    Ok(())
}

/// The step about to run: its node, the node's type, the run, and when it began.
pub(crate) struct Begun {
    node_id: Arc<str>,
    node_type: Arc<str>,
    runs_no_python: bool,
    began: Instant,
    /// Whether the run log takes INFO records.
    logs: bool,
}

/// Prepares the step of `core`'s current node (none when the run is
/// complete or waits): logs its start.
pub(crate) fn begin(shared: &Shared, core: &Core) -> Option<Begun> {
    let NodeInfo { id: node_id, node_type, runs_no_python } = shared.node_info(core.current_node_id()?)?;
    if core.waiting() {
        return None;
    }
    let logs = Python::attach(|py| runlog::enabled(py, INFO));
    if logs && &*node_type != NodeType::End.as_str() {
        Python::attach(|py| {
            runlog::log(py, INFO, &shared.run(core.run_id()), || Record {
                event: "node.start",
                level: INFO,
                message: "Node %s (%s) started",
                node: Some(&node_id),
                args: vec![PyString::new(py, &node_id).into_any(), PyString::new(py, &node_type).into_any()],
                fields: vec![("type", PyString::new(py, &node_type).into_any())],
            })
        });
    }
    shared.step_begins(&node_id);
    Some(Begun { node_id, node_type, runs_no_python, began: Instant::now(), logs })
}

/// Runs the current node of `core` and moves on: whether the run moved
/// (true also on the step whose node waits), as the reference's `step()`.
pub(crate) async fn step(shared: &Shared, core: &mut Core) -> PyResult<bool> {
    let Some(begun) = begin(shared, core) else { return Ok(false) };
    let status = match core.step().await {
        Err(error) => StepStatus::Failed { error, retry_in: None },
        Ok(_) if core.waiting() => StepStatus::Waiting(Vec::new()),
        Ok(_) => StepStatus::Completed,
    };
    finish(shared, core, status, &begun)
}

/// Stores what handlers wrote outside the graph's nodes, logs how the step
/// ended with `status` and says whether the run moved, or raises its error
/// (a handler's exception as it was raised).
pub(crate) fn finish(shared: &Shared, core: &mut Core, status: StepStatus, begun: &Begun) -> PyResult<bool> {
    if !begun.runs_no_python {
        runlog::python_may_have_run();
    }
    for (id, output) in shared.take_loose() {
        core.set_output(&id, output).map_err(|error| limit_error(&id, &error))?;
    }
    let seconds = begun.began.elapsed().as_secs_f64();
    Python::attach(|py| log_end(py, shared, core, status, begun, seconds))
}

/// Logs how a step ended; whether the run moved, or the step's error.
fn log_end<'py>(
    py: Python<'py>,
    shared: &Shared,
    core: &Core,
    status: StepStatus,
    begun: &Begun,
    seconds: f64,
) -> PyResult<bool> {
    let (node_id, node_type, run_id) = (&*begun.node_id, &*begun.node_type, core.run_id());
    let is_end = node_type == NodeType::End.as_str();
    let run = shared.run(run_id);
    let fields = |more: Vec<(&'static str, Bound<'py, PyAny>)>| {
        let mut fields = vec![
            ("type", PyString::new(py, node_type).into_any()),
            ("seconds", PyFloat::new(py, seconds).into_any()),
        ];
        fields.extend(more);
        fields
    };
    let node = || PyString::new(py, node_id).into_any();
    match status {
        StepStatus::Completed | StepStatus::Routed(_) => {
            if !is_end {
                shared.count_step();
            }
            if !is_end && begun.logs {
                runlog::log(py, INFO, &run, || Record {
                    event: "node.complete",
                    level: INFO,
                    message: "Node %s completed in %.1f s",
                    node: Some(node_id),
                    args: vec![node(), PyFloat::new(py, seconds).into_any()],
                    fields: fields(Vec::new()),
                });
            }
            let moved = core.current_node_id().is_some();
            if !moved {
                let (started, steps) = shared.run_figures();
                runlog::log(py, INFO, &run, || Record {
                    event: "run.complete",
                    level: INFO,
                    message: "Run %s of %s completed",
                    node: None,
                    args: vec![PyString::new(py, run.id).into_any(), PyString::new(py, run.graph).into_any()],
                    fields: vec![
                        (
                            "seconds",
                            match started {
                                Some(at) => PyFloat::new(py, at.elapsed().as_secs_f64()).into_any(),
                                None => py.None().into_bound(py),
                            },
                        ),
                        (
                            "steps",
                            steps
                                .into_pyobject(py)
                                .map(|n| n.into_any())
                                .unwrap_or_else(|_| py.None().into_bound(py)),
                        ),
                    ],
                });
            }
            Ok(moved)
        }
        StepStatus::Waiting(_) | StepStatus::Sleeping(_) | StepStatus::Child(_) => {
            shared.count_step();
            runlog::log(py, INFO, &run, || Record {
                event: "node.wait",
                level: INFO,
                message: "Node %s waits for an answer",
                node: Some(node_id),
                args: vec![node()],
                fields: fields(Vec::new()),
            });
            Ok(true)
        }
        StepStatus::Failed { error, .. } => {
            let raised = shared.take_raised(node_id);
            let text = match (&raised, &error) {
                (Some(raised), _) => raised_text(py, raised),
                (None, EngineError::Execution { message, .. }) => message.clone(),
                (None, EngineError::NoHandler { node_type, .. }) => {
                    HandlerError::NoHandler { node_type: node_type.clone() }.to_string()
                }
                (None, other) => other.to_string(),
            };
            let text = PyString::new(py, &text).into_any();
            runlog::log(py, WARNING, &run, || Record {
                event: "node.fail",
                level: WARNING,
                message: "Node %s failed: %s",
                node: Some(node_id),
                args: vec![node(), text.clone()],
                fields: fields(vec![("error", text.clone())]),
            });
            Err(raised.unwrap_or_else(|| engine_error(error)))
        }
    }
}

/// Loads saved entries into the context of a new run.
pub(crate) fn load_entries(core: &mut Core, entries: Map<String, Value>) -> PyResult<()> {
    for (id, entry) in entries {
        match entry {
            Value::Object(mut entry) if entry.contains_key("output") => {
                let output = entry.remove("output").unwrap_or(Value::Null);
                core.set_output(&id, output).map_err(|error| limit_error(&id, &error))?;
            }
            _ => {}
        }
    }
    Ok(())
}
