//! The application's Python handlers and registered functions as node
//! handlers of the durable runner.
//!
//! The runner drives runs on its tokio tasks; a node whose handler is Python
//! is executed on the asyncio loop the runner was opened on: the handler is
//! called there (through `roomkit_graph.durable._execute`, which awaits what
//! it returns, so sync and async callables both work) and the run's task
//! waits for the result. A handler gets a `Node`, the run's
//! `WorkflowContext` and a [`Step`] as its `engine`.
//!
//! What a handler returns becomes the node's result: `None` (no output), a
//! dict (the output), or an object with `output`, `status` (`"completed"`,
//! `"waiting"` or `"failed"`), `error` and `metadata` (a `NodeResult`). A
//! Python exception fails the node with its type and message, as a failed
//! result does; the node's retry policy and error edges apply.

use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use roomkit_graph::{Ask, FunctionHandler, HandlerError, Node, NodeHandler, NodeResult, Scope};
use serde_json::Value;

use super::call::{Helper, Loop};
use super::step::{Step, context_arg, node_arg};
use crate::convert::{to_json, to_py};

/// A Python handler for the nodes of one type.
pub(crate) struct PythonHandler {
    handler: Py<PyAny>,
    calls: Loop,
}

impl PythonHandler {
    /// `handler` for nodes of type `node_type`: an object with an `execute`
    /// method, or a callable taking `(node, context, engine)`.
    pub(crate) fn new(node_type: &str, handler: &Bound<'_, PyAny>, calls: Loop) -> PyResult<Self> {
        let executes = match handler.getattr_opt("execute")? {
            Some(execute) => execute.is_callable(),
            None => handler.is_callable(),
        };
        if !executes {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "the handler for node type {node_type:?} is a {}, which cannot execute nodes: pass a \
                 NodeHandler (an object with `async def execute(node, context, engine)`)",
                handler.get_type().name()?
            )));
        }
        Ok(PythonHandler { handler: handler.clone().unbind(), calls })
    }
}

#[async_trait]
impl NodeHandler for PythonHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let (step, call) = Python::attach(|py| -> PyResult<_> {
            let context = context_arg(py, scope.context())?;
            let step = Bound::new(py, Step::of(node, scope, context.clone().unbind()))?;
            let handler = self.handler.bind(py).clone();
            let args = vec![handler, node_arg(py, node)?, context, step.clone().into_any()];
            Ok((step.unbind(), self.calls.call(py, Helper::Execute, args)?))
        })
        .map_err(failure)?;
        let returned = call.await;
        Python::attach(|py| {
            for payload in step.get().finish() {
                scope.emit(payload);
            }
            match returned {
                Ok(returned) => node_result(node, scope, returned.bind(py)),
                Err(error) => Err(failure(error)),
            }
        })
    }

    fn check_answer(&self, node: &Node, answer: &Value) -> Result<(), String> {
        Ask { prompt: None, actions: config_actions(node) }.check(answer)
    }
}

/// The function node with the application's registered functions: a
/// `custom` action calls the Python function of that name when the registry
/// has one; every other action, and a name it lacks, is the built-in's.
pub(crate) struct PythonFunctions {
    functions: Py<PyAny>,
    builtin: FunctionHandler,
    calls: Loop,
}

impl PythonFunctions {
    /// The functions of `functions`: a `FunctionRegistry` (`has` and `get`)
    /// or a mapping of names to callables `f(context, config)`, sync or async.
    pub(crate) fn new(functions: &Bound<'_, PyAny>, calls: Loop) -> PyResult<Self> {
        let is_mapping = functions.cast::<pyo3::types::PyMapping>().is_ok();
        if !is_mapping && (functions.getattr_opt("has")?.is_none() || functions.getattr_opt("get")?.is_none())
        {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "functions is a FunctionRegistry or a dict of names to functions, not a {}",
                functions.get_type().name()?
            )));
        }
        Ok(PythonFunctions {
            functions: functions.clone().unbind(),
            builtin: FunctionHandler::default(),
            calls,
        })
    }
}

#[async_trait]
impl NodeHandler for PythonFunctions {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let custom = node.config.get("action").and_then(Value::as_str) == Some("custom");
        let Some(name) = node.config.get("function").and_then(Value::as_str).filter(|_| custom) else {
            return self.builtin.execute(node, scope).await;
        };
        let call = Python::attach(|py| -> PyResult<_> {
            let config = to_py(py, &Value::Object(node.config.clone()))?;
            let context = context_arg(py, scope.context())?;
            let args =
                vec![self.functions.bind(py).clone(), PyString::new(py, name).into_any(), context, config];
            self.calls.call(py, Helper::CallFunction, args)
        })
        .map_err(failure)?;
        let returned = call.await;
        let output = Python::attach(|py| -> Result<Option<Value>, String> {
            let returned = returned.map_err(|error| describe(py, &error))?;
            let (found, output): (bool, Bound<'_, PyAny>) =
                returned.bind(py).extract().map_err(|error| describe(py, &error))?;
            match found {
                true => {
                    to_json(&output).map(Some).map_err(|error| format!("its output is not JSON: {error}"))
                }
                false => Ok(None),
            }
        });
        match output {
            Ok(Some(output)) => Ok(NodeResult::completed(output)),
            // Not one of the application's: the built-in says so.
            Ok(None) => self.builtin.execute(node, scope).await,
            Err(error) => Ok(NodeResult::failed(format!("function {name:?} failed: {error}"))),
        }
    }
}

/// The node's result from what its handler returned.
fn node_result(
    node: &Node,
    scope: &Scope<'_>,
    returned: &Bound<'_, PyAny>,
) -> Result<NodeResult, HandlerError> {
    let py = returned.py();
    let read = |what: &str, value: PyResult<Value>| {
        value.map_err(|error| {
            HandlerError::execution(format!("its handler's {what} is not JSON: {}", describe(py, &error)))
                .permanent()
        })
    };
    if returned.is_none() {
        return Ok(NodeResult::completed(Value::Null));
    }
    if returned.cast::<PyDict>().is_ok() {
        return Ok(NodeResult::completed(read("output", to_json(returned))?));
    }
    let attribute = |name: &str| returned.getattr_opt(name).ok().flatten().filter(|value| !value.is_none());
    let Some(status) = attribute("status") else {
        let kind = returned.get_type().name().map(|name| name.to_string()).unwrap_or_default();
        return Err(HandlerError::execution(format!(
            "its handler returned a {kind}: return a NodeResult (output, status, error, metadata), \
             a dict (the output) or None"
        ))
        .permanent());
    };
    let output = match attribute("output") {
        Some(output) => read("output", to_json(&output))?,
        None => Value::Null,
    };
    let metadata = match attribute("metadata") {
        Some(metadata) => read("metadata", to_json(&metadata))?,
        None => Value::Null,
    };
    let status = status.extract::<String>().unwrap_or_default();
    match status.as_str() {
        "completed" => Ok(NodeResult::completed(output)),
        "waiting" => Ok(NodeResult::waiting_for(ask(node, scope, &metadata)).with_output(output)),
        "failed" => {
            let error = attribute("error").map(|error| error.str().map(|text| text.to_string()));
            let error = error.transpose().map_err(|error| HandlerError::execution(describe(py, &error)))?;
            Ok(NodeResult::failed(error.unwrap_or_else(|| "its handler returned failed".to_owned()))
                .with_output(output))
        }
        other => Err(HandlerError::execution(format!(
            "its handler returned the status {other:?}: one of \"completed\", \"waiting\" or \"failed\""
        ))
        .permanent()),
    }
}

/// What a waiting node asks: `prompt` and `actions` from the result's
/// metadata, else from the node's config (its `prompt` rendered), as a human
/// node asks.
fn ask(node: &Node, scope: &Scope<'_>, metadata: &Value) -> Ask {
    let prompt = match metadata.get("prompt").and_then(Value::as_str) {
        Some(prompt) => Some(prompt.to_owned()),
        None => scope
            .render("prompt")
            .ok()
            .flatten()
            .or_else(|| node.config.get("prompt").and_then(Value::as_str).map(str::to_owned)),
    };
    let actions = match metadata.get("actions").and_then(Value::as_array) {
        Some(listed) => listed.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        None => config_actions(node),
    };
    Ask { prompt, actions }
}

/// The actions a node's config offers (`actions`): an answer must take one.
fn config_actions(node: &Node) -> Vec<String> {
    let listed = node.config.get("actions").and_then(Value::as_array);
    listed.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// A Python exception as the failure of the node it came from.
fn failure(error: PyErr) -> HandlerError {
    HandlerError::execution(Python::attach(|py| describe(py, &error)))
}

/// `TypeName: message`, as Python prints an exception's last line.
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let kind =
        error.get_type(py).name().map(|name| name.to_string()).unwrap_or_else(|_| "Exception".to_owned());
    match error.value(py).str().map(|text| text.to_string()) {
        Ok(text) if !text.is_empty() => format!("{kind}: {text}"),
        _ => kind,
    }
}

/// The handlers of a runner: the built-ins, a human node that waits for an
/// answer, and the application's, which replace any of them.
pub(crate) fn runner_handlers(
    handlers: Option<&Bound<'_, PyAny>>,
    functions: Option<&Bound<'_, PyAny>>,
    calls: &Loop,
) -> PyResult<roomkit_graph::Handlers> {
    let mut all = roomkit_graph::Handlers::builtin().with("human", roomkit_graph::HumanHandler);
    if let Some(functions) = functions.filter(|functions| !functions.is_none()) {
        all = all.with("function", PythonFunctions::new(functions, calls.clone())?);
    }
    let Some(handlers) = handlers.filter(|handlers| !handlers.is_none()) else {
        return Ok(all);
    };
    let mapping = handlers.cast::<pyo3::types::PyMapping>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err("handlers is a dict of node types to NodeHandler objects")
    })?;
    for item in mapping.items()?.iter() {
        let (node_type, handler): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        // A NodeType member is a str too.
        let node_type: String = node_type.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "a node type is a string, not {}",
                node_type.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        all = all.with(&node_type, PythonHandler::new(&node_type, &handler, calls.clone())?);
    }
    Ok(all)
}
