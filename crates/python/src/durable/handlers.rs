//! The application's Python handlers and registered functions as node
//! handlers of the durable runner.
//!
//! The runner drives runs on its tokio tasks; a node whose handler is Python
//! is executed on the asyncio loop the runner was opened on: the handler is
//! called there (through `roomkit_graph.durable._execute`, which awaits what
//! it returns, so sync and async callables both work) and the run's task
//! waits for the result. A handler gets the node and the run's context (as
//! `roomkit_graph.durable` builds them) and a [`Step`] as its `engine`.
//!
//! What a handler returns becomes the node's result: `None` (no output), a
//! dict (the output), or an object with `output`, `status` (`"completed"`,
//! `"waiting"` or `"failed"`), `error` and `metadata` (a `NodeResult`). A
//! Python exception fails the node with its type and message, as a failed
//! result does; the node's retry policy and error edges apply.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3_async_runtimes::TaskLocals;
use roomkit_graph::{Ask, Context, FunctionHandler, HandlerError, Node, NodeHandler, NodeResult, Scope};
use serde_json::Value;

use super::run::repr;
use crate::convert::{to_json, to_py};

/// The asyncio loop a runner was opened on, and the context its handlers
/// run in (the one current when the runner was opened).
#[derive(Clone)]
pub(crate) struct Loop {
    locals: TaskLocals,
}

impl Loop {
    /// The loop running this call.
    pub(crate) fn running(py: Python<'_>) -> PyResult<Loop> {
        Ok(Loop { locals: TaskLocals::with_running_loop(py)?.copy_context(py)? })
    }

    /// Calls the package's helper `helper` of `roomkit_graph.durable` with
    /// `args` on the loop; the future completes with what it returns. The
    /// helper runs as an asyncio task, cancelled if the future is dropped
    /// before it completes (the run was cancelled, or its lease lost).
    fn call<'py>(
        &self,
        py: Python<'py>,
        helper: Helper,
        mut args: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<impl Future<Output = PyResult<Py<PyAny>>> + Send + 'static + use<>> {
        let call = Py::new(py, Call { task: Mutex::new(Task::Scheduled) })?;
        args.push(call.clone_ref(py).into_bound(py).into_any());
        let coroutine = helper.function(py)?.call1(PyTuple::new(py, args)?)?;
        let result = pyo3_async_runtimes::into_future_with_locals(&self.locals, coroutine)?;
        let abandoned = Abandoned { call, event_loop: self.locals.event_loop(py).unbind(), armed: true };
        Ok(async move {
            let mut abandoned = abandoned;
            let result = result.await;
            abandoned.armed = false;
            result
        })
    }
}

/// Where a helper's asyncio task stands, for its cancellation.
enum Task {
    /// Not started yet.
    Scheduled,
    /// Running, as this task.
    Running(Py<PyAny>),
    /// Nobody waits for it any more: cancelled (or to cancel as it starts).
    Abandoned,
}

/// A helper's call, which the helper tells its task (`call.running(task)`).
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Call {
    task: Mutex<Task>,
}

#[pymethods]
impl Call {
    /// The helper runs as `task`: cancelled at once if its caller is gone.
    fn running(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut state = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            Task::Abandoned => {
                task.call_method0("cancel")?;
            }
            _ => *state = Task::Running(task.clone().unbind()),
        }
        Ok(())
    }
}

/// Cancels a call's task when the future waiting for it is dropped first.
struct Abandoned {
    call: Py<Call>,
    event_loop: Py<PyAny>,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let state = std::mem::replace(
            &mut *self.call.get().task.lock().unwrap_or_else(PoisonError::into_inner),
            Task::Abandoned,
        );
        if let Task::Running(task) = state {
            // From the loop's thread, as asyncio wants; nothing to do once the interpreter is gone.
            Python::try_attach(|py| {
                let cancel = task.bind(py).getattr("cancel");
                let scheduled = cancel.and_then(|cancel| {
                    self.event_loop.bind(py).call_method1("call_soon_threadsafe", (cancel,))
                });
                // A closed loop has stopped the task already.
                drop(scheduled);
            });
        }
    }
}

/// The helpers of `roomkit_graph.durable` the handlers call on the loop.
#[derive(Clone, Copy)]
enum Helper {
    /// `_execute(handler, node, context, step, call)`: a handler's result.
    Execute,
    /// `_call_function(functions, name, context, config, call)`: `(found, output)`.
    CallFunction,
}

impl Helper {
    fn function(self, py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
        static EXECUTE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static CALL_FUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        match self {
            Helper::Execute => EXECUTE.import(py, "roomkit_graph.durable", "_execute"),
            Helper::CallFunction => CALL_FUNCTION.import(py, "roomkit_graph.durable", "_call_function"),
        }
    }
}

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

/// What a handler is given as its `engine`: the step it executes (the run,
/// the node, the attempt), the run's context and a `TemplateResolver` on it,
/// and `emit` for the run's transcript.
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Step {
    run_id: String,
    node_id: String,
    attempt: u32,
    /// The `WorkflowContext` the handler is given.
    context: Py<PyAny>,
    /// What the handler emitted; none once the step is over.
    emitted: Mutex<Option<Vec<Value>>>,
}

impl Step {
    fn of(node: &Node, scope: &Scope<'_>, context: Py<PyAny>) -> Step {
        Step {
            run_id: scope.run_id().to_owned(),
            node_id: node.id.clone(),
            attempt: scope.attempt(),
            context,
            emitted: Mutex::new(Some(Vec::new())),
        }
    }

    /// Ends the step: what the handler emitted, in order.
    fn finish(&self) -> Vec<Value> {
        self.emitted.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default()
    }
}

#[pymethods]
impl Step {
    /// The run's id.
    #[getter]
    fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The node being executed.
    #[getter]
    fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Which attempt at the node this is: 1, then 2, 3... when its retry
    /// policy tries again.
    #[getter]
    fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `run/node/attempt`: a key for the outside effects of this execution
    /// (an idempotency key), so that a step run again after a crash does not
    /// repeat them.
    #[getter]
    fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.run_id, self.node_id, self.attempt)
    }

    /// The run's context as the step began (a `WorkflowContext`, the one the
    /// handler is given). What a handler writes to it is not kept: the
    /// node's output is what it returns.
    #[getter]
    fn context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    /// A `TemplateResolver` on the run's context.
    #[getter]
    fn template_resolver<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Class::TemplateResolver.get(py)?.call1((self.context.bind(py),))
    }

    /// Adds `payload` (JSON) to the run's transcript as a custom entry of
    /// this node, committed with the step.
    fn emit(&self, payload: &Bound<'_, PyAny>) -> PyResult<()> {
        let payload = to_json(payload)?;
        match &mut *self.emitted.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(emitted) => {
                emitted.push(payload);
                Ok(())
            }
            None => Err(PyRuntimeError::new_err(format!(
                "the step of node {:?} is over: emit while its handler executes",
                self.node_id
            ))),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (run_id, node_id) = (repr(py, &self.run_id)?, repr(py, &self.node_id)?);
        Ok(format!("Step(run_id={run_id}, node_id={node_id}, attempt={})", self.attempt))
    }
}

/// The package's classes a handler is given, built through Python as any
/// caller builds them.
#[derive(Clone, Copy)]
enum Class {
    Node,
    WorkflowContext,
    TemplateResolver,
}

impl Class {
    fn get(self, py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
        static SLOTS: [PyOnceLock<Py<PyAny>>; 3] = [PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new()];
        let name = match self {
            Class::Node => "Node",
            Class::WorkflowContext => "WorkflowContext",
            Class::TemplateResolver => "TemplateResolver",
        };
        SLOTS[self as usize].import(py, "roomkit_graph", name)
    }
}

/// The node as a `Node`.
fn node_arg<'py>(py: Python<'py>, node: &Node) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(node).map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
    Class::Node.get(py)?.call_method1("from_dict", (to_py(py, &value)?,))
}

/// The run's context as a `WorkflowContext`, its `input` scope the step's.
fn context_arg<'py>(py: Python<'py>, context: &Context) -> PyResult<Bound<'py, PyAny>> {
    let entries = to_py(py, &Value::Object(context.to_entries()))?;
    let workflow_context = Class::WorkflowContext.get(py)?.call_method1("from_dict", (entries,))?;
    let input = to_py(py, context.get("input").unwrap_or(&Value::Null))?;
    workflow_context.call_method1("set_current_input", (input,))?;
    Ok(workflow_context)
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
