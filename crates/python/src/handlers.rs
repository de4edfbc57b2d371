//! Node handlers between Python and the core.
//!
//! A handler given to `WorkflowEngine` is one of the built-in classes
//! (`StartHandler`... in `roomkit_graph.handlers`), then the engine runs the
//! core's handler with no Python call, or any other `NodeHandler`, whose
//! `execute` coroutine [`PyHandler`] drives on the caller's loop. A
//! built-in's `execute` called from Python (`await super().execute(...)` in
//! a subclass) yields a [`Builtin`] marker that the driving [`PyHandler`] runs
//! with the step's scope.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Poll, Waker};

use async_trait::async_trait;
use pyo3::exceptions::{PyException, PyRuntimeError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use roomkit_graph::{
    ConditionHandler, EndHandler, FunctionHandler, HandlerError, LogHandler, Node, NodeHandler, NodeResult,
    ParallelHandler, Scope, StartHandler, SwitchHandler,
};
use serde_json::Value;

use crate::convert::{to_json, to_py};
use crate::driver::{Intercept, PyAwait, PyFutureRef, PyTask};
use crate::shared::Shared;

/// The built-in handler classes, in `roomkit_graph.handlers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Start,
    End,
    Function,
    Condition,
    Switch,
    Log,
    Parallel,
}

const KINDS: [(Kind, &str); 7] = [
    (Kind::Start, "StartHandler"),
    (Kind::End, "EndHandler"),
    (Kind::Function, "FunctionHandler"),
    (Kind::Condition, "ConditionHandler"),
    (Kind::Switch, "SwitchHandler"),
    (Kind::Log, "LogHandler"),
    (Kind::Parallel, "ParallelHandler"),
];

impl Kind {
    fn named(name: &str) -> Option<Kind> {
        let kind = match name {
            "start" => Kind::Start,
            "end" => Kind::End,
            "function" => Kind::Function,
            "condition" => Kind::Condition,
            "switch" => Kind::Switch,
            "log" => Kind::Log,
            "parallel" => Kind::Parallel,
            _ => return None,
        };
        Some(kind)
    }

    /// The core's handler for this kind; a function handler calls `registry`'s functions.
    fn core(self, registry: Option<Py<PyAny>>, shared: Weak<Shared>) -> Arc<dyn NodeHandler> {
        match self {
            Kind::Start => Arc::new(StartHandler),
            Kind::End => Arc::new(EndHandler),
            Kind::Function => Arc::new(Functions { registry, shared }),
            Kind::Condition => Arc::new(ConditionHandler),
            Kind::Switch => Arc::new(SwitchHandler),
            Kind::Log => Arc::new(LogHandler),
            Kind::Parallel => Arc::new(ParallelHandler),
        }
    }
}

fn handlers_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || py.import("roomkit_graph.handlers").map(Bound::unbind))
        .map(|module| module.bind(py))
}

/// The built-in handlers by node type, as a new engine starts with them.
pub(crate) fn builtin_handlers(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    Ok(handlers_module(py)?.getattr("_BUILTIN_HANDLERS")?.cast_into::<PyDict>()?)
}

/// What serves a node type: a built-in the core runs, or a Python handler.
pub(crate) enum HandlerSpec {
    Builtin(Kind, Option<Py<PyAny>>),
    Python(Py<PyAny>),
}

impl HandlerSpec {
    /// Reads `handler`: an instance of a built-in class whose `execute` is the
    /// class's own is run by the core.
    pub(crate) fn of(handler: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = handler.py();
        let module = handlers_module(py)?;
        let execute = pyo3::intern!(py, "execute");
        let own = handler.get_type().getattr(execute)?;
        for (kind, name) in KINDS {
            let class = module.getattr(name)?;
            if handler.is_instance(&class)? && own.is(&class.getattr(execute)?) {
                let registry = match kind {
                    Kind::Function => Some(handler.getattr("_registry")?.unbind()),
                    _ => None,
                };
                return Ok(HandlerSpec::Builtin(kind, registry));
            }
        }
        if !handler.hasattr(execute)? {
            return Err(PyTypeError::new_err(format!(
                "a handler needs an async execute(node, context, engine), which {} lacks",
                handler.get_type().name()?
            )));
        }
        Ok(HandlerSpec::Python(handler.clone().unbind()))
    }

    /// Whether running `node` with this handler never calls Python: a
    /// built-in other than parallel (whose children may be Python's) and a
    /// `custom` function.
    pub(crate) fn runs_no_python(&self, node: &Node) -> bool {
        match self {
            HandlerSpec::Builtin(Kind::Start | Kind::End | Kind::Condition | Kind::Switch | Kind::Log, _) => {
                true
            }
            HandlerSpec::Builtin(Kind::Function, _) => !is_custom(node),
            HandlerSpec::Builtin(Kind::Parallel, _) | HandlerSpec::Python(_) => false,
        }
    }

    /// The core handler for an engine whose state is `shared`.
    pub(crate) fn build(self, shared: &Weak<Shared>) -> Arc<dyn NodeHandler> {
        match self {
            HandlerSpec::Builtin(kind, registry) => kind.core(registry, shared.clone()),
            HandlerSpec::Python(handler) => Arc::new(PyHandler { handler, shared: shared.clone() }),
        }
    }
}

/// How an exception is shown in the run log: its `repr`.
pub(crate) fn raised_text(py: Python<'_>, error: &PyErr) -> String {
    error.value(py).repr().map_or_else(|_| error.to_string(), |repr| repr.to_string())
}

/// The engine's state, or a plain error when the engine is gone.
fn upgrade(shared: &Weak<Shared>) -> Result<Arc<Shared>, HandlerError> {
    shared
        .upgrade()
        .ok_or_else(|| HandlerError::execution("the engine running this step is gone").permanent())
}

/// What a Python call inside a handler ended with, as the core sees it: the
/// exception is kept to be raised as it is.
fn failure(shared: &Shared, node: &str, error: PyErr) -> HandlerError {
    let message = error.to_string();
    shared.raise(node, error);
    HandlerError::execution(message).permanent()
}

/// Ends the step for `error` when it is no failure of the node: a
/// `BaseException` that is not an `Exception` (the task's cancellation,
/// `KeyboardInterrupt`, `SystemExit`, `GeneratorExit`) is neither routed nor
/// retried but raised as it is, the run staying on the node; the handler
/// then never returns. Gives other errors back.
async fn interrupt(error: PyErr) -> PyErr {
    if Python::attach(|py| error.is_instance_of::<PyException>(py)) {
        return error;
    }
    match crate::driver::abort(error) {
        Ok(()) => std::future::pending().await,
        Err(error) => error,
    }
}

/// Waits for good when the engine call is ending with an interruption: no
/// more Python code runs in it.
async fn stop_if_interrupted() {
    if crate::driver::aborting() {
        std::future::pending::<()>().await;
    }
}

/// Enters the step's context view for a handler, and leaves it when dropped.
struct ViewGuard<'a> {
    shared: &'a Shared,
    left: bool,
}

impl<'a> ViewGuard<'a> {
    fn enter(shared: &'a Shared, scope: &Scope<'_>) -> Self {
        shared.enter(scope.shared_context());
        ViewGuard { shared, left: false }
    }

    fn leave(mut self) -> Vec<(String, Value)> {
        self.left = true;
        self.shared.leave()
    }
}

impl Drop for ViewGuard<'_> {
    fn drop(&mut self) {
        if !self.left {
            self.shared.leave();
        }
    }
}

/// Awaits `awaitable` for `node`: inline on the step's poll for the node the
/// step runs, as a task of its own for a parallel node's child (children run
/// at once).
async fn drive<'s, 't: 's>(
    awaitable: Py<PyAny>,
    node: &'s Node,
    scope: &'s Scope<'t>,
    shared: Weak<Shared>,
) -> PyResult<Py<PyAny>> {
    if node.parent.is_some() {
        let slot = Python::attach(|py| Py::new(py, BuiltinSlot { state: Mutex::new(SlotState::default()) }))?;
        let task = Python::attach(|py| {
            let context = slot_context(py, &slot)?;
            PyTask::spawn_in(awaitable.bind(py), &context)
        })?;
        let registered = match (shared.upgrade(), Python::attach(|py| task.task(py))) {
            (Some(shared), Some(handle)) => {
                shared.child_started(handle, &node.id);
                Some(shared)
            }
            _ => None,
        };
        let result = serve(task, slot, Builtins { node, scope, shared: shared.clone() }).await;
        if let Some(shared) = registered {
            shared.child_ended(&node.id);
        }
        result
    } else {
        let future = Python::attach(|py| PyAwait::new(awaitable.bind(py)))?.intercepting(Builtins {
            node,
            scope,
            shared,
        });
        future.await
    }
}

/// A `NodeHandler` of the application's, written in Python.
struct PyHandler {
    handler: Py<PyAny>,
    shared: Weak<Shared>,
}

#[async_trait]
impl NodeHandler for PyHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        stop_if_interrupted().await;
        let shared = upgrade(&self.shared)?;
        let view = ViewGuard::enter(&shared, scope);
        let called = Python::attach(|py| {
            let engine = shared.engine(py)?;
            let context = shared.context_object(py)?;
            let args = (shared.node(py, &node.id)?, context, engine);
            self.handler.bind(py).call_method1(pyo3::intern!(py, "execute"), args).map(Bound::unbind)
        });
        let result = match called {
            Ok(awaitable) => drive(awaitable, node, scope, self.shared.clone()).await,
            Err(error) => Err(error),
        };
        for payload in shared.take_emitted(&node.id) {
            scope.emit(payload);
        }
        let writes = view.leave();
        let result = result.and_then(|result| Python::attach(|py| from_python(result.bind(py))));
        match result {
            Ok(mut result) => {
                result.child_outputs.splice(0..0, writes);
                Ok(result)
            }
            Err(error) => Err(failure(&shared, &node.id, interrupt(error).await)),
        }
    }
}

/// The function node: `set_context`, `json_transform` and `delay` as the
/// core does them, `custom` calling a function of a Python `FunctionRegistry`
/// (`graph_registry` unless another is given) with the context and the
/// node's own `config` dict.
struct Functions {
    registry: Option<Py<PyAny>>,
    shared: Weak<Shared>,
}

/// Whether a function node calls a registered Python function.
fn is_custom(node: &Node) -> bool {
    node.config.get("action").and_then(Value::as_str) == Some("custom")
}

fn core_functions() -> &'static FunctionHandler {
    static CORE: std::sync::OnceLock<FunctionHandler> = std::sync::OnceLock::new();
    CORE.get_or_init(FunctionHandler::default)
}

impl Functions {
    /// The function `name` of the registry, if registered.
    fn lookup(&self, py: Python<'_>, name: &str) -> PyResult<Option<Py<PyAny>>> {
        let registry = match &self.registry {
            Some(registry) if !registry.is_none(py) => registry.bind(py).clone(),
            _ => handlers_module(py)?.getattr("graph_registry")?,
        };
        let functions = registry.getattr(pyo3::intern!(py, "_functions"))?;
        Ok(functions.call_method1(pyo3::intern!(py, "get"), (name,))?.extract()?)
    }
}

#[async_trait]
impl NodeHandler for Functions {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        if !is_custom(node) {
            return core_functions().execute(node, scope).await;
        }
        let name = match node.config.get("function") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        stop_if_interrupted().await;
        let shared = upgrade(&self.shared)?;
        let view = ViewGuard::enter(&shared, scope);
        let called = Python::attach(|py| -> PyResult<Option<(Py<PyAny>, bool)>> {
            let Some(function) = self.lookup(py, &name)? else { return Ok(None) };
            let context = shared.context_object(py)?;
            let config = shared.node(py, &node.id)?.bind(py).getattr(pyo3::intern!(py, "config"))?;
            let result = function.bind(py).call1((context, config))?;
            let awaitable = result.hasattr(pyo3::intern!(py, "__await__"))?;
            Ok(Some((result.unbind(), awaitable)))
        });
        let result = match called {
            Ok(None) => {
                view.leave();
                return Ok(NodeResult::failed(format!("Unknown custom function: '{name}'")));
            }
            Ok(Some((result, true))) => drive(result, node, scope, self.shared.clone()).await,
            Ok(Some((result, false))) => Ok(result),
            Err(error) => Err(error),
        };
        for payload in shared.take_emitted(&node.id) {
            scope.emit(payload);
        }
        let writes = view.leave();
        match result.and_then(|output| Python::attach(|py| to_json(output.bind(py)))) {
            Ok(output) => {
                let mut result = NodeResult::completed(output);
                result.child_outputs = writes;
                Ok(result)
            }
            Err(error) => Err(failure(&shared, &node.id, interrupt(error).await)),
        }
    }
}

/// A Python `NodeResult` (any object with `output`, `status` and `error`) as the core's.
fn from_python(result: &Bound<'_, PyAny>) -> PyResult<NodeResult> {
    let py = result.py();
    let output = to_json(&result.getattr(pyo3::intern!(py, "output"))?)?;
    let status = result.getattr(pyo3::intern!(py, "status"))?;
    let error = result.getattr(pyo3::intern!(py, "error"))?;
    let error = if error.is_none() { None } else { Some(error.str()?.to_str()?.to_owned()) };
    let status = status.str()?;
    Ok(match status.to_str()? {
        "completed" => NodeResult::completed(output),
        "waiting" => NodeResult::waiting().with_output(output),
        "failed" => {
            NodeResult::failed(error.unwrap_or_else(|| "unknown error".to_owned())).with_output(output)
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "a handler returned status {other:?}: a NodeResult's status is completed, waiting or failed"
            )));
        }
    })
}

/// The core's result as a Python `NodeResult`.
fn to_python<'py>(py: Python<'py>, result: &NodeResult) -> PyResult<Bound<'py, PyAny>> {
    let class = handlers_module(py)?.getattr("NodeResult")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("output", to_py(py, &result.output)?)?;
    kwargs.set_item("status", result.status.as_str())?;
    kwargs.set_item("error", result.error.as_deref())?;
    class.call((), Some(&kwargs))
}

/// A core handler error as the exception a built-in handler raises in Python.
fn handler_error(error: HandlerError) -> PyErr {
    match error {
        HandlerError::Template(error) => crate::context::template_error(&error),
        HandlerError::Condition(error) => crate::errors::ErrorClass::Condition.err(error.to_string()),
        other => crate::errors::ErrorClass::Execution.err(other.to_string()),
    }
}

/// What a built-in handler's `execute` returns when called from Python: an
/// awaitable that hands itself to the [`PyHandler`] driving the calling
/// coroutine, which runs the built-in with the step's scope and sends its
/// `NodeResult` back.
///
/// Stepped by an asyncio task instead (a parallel child's handler runs as
/// one), it asks the [`BuiltinSlot`] of that task's context to run the
/// built-in and hands the task a loop future with the result.
#[pyclass(module = "roomkit_graph._core", name = "Builtin", frozen)]
pub(crate) struct Builtin {
    kind: Kind,
    handler: Py<PyAny>,
    node_id: String,
    stage: Mutex<Stage>,
}

/// Where a [`Builtin`] awaitable stands.
enum Stage {
    Fresh,
    /// Handed to the driver intercepting it, which sends the result back.
    Handed,
    /// Asked of a slot: the loop future its result comes in.
    Asked(Py<PyAny>),
}

#[pymethods]
impl Builtin {
    #[new]
    fn new(kind: &str, handler: Py<PyAny>, node: &Bound<'_, PyAny>) -> PyResult<Self> {
        let kind = Kind::named(kind)
            .ok_or_else(|| PyValueError::new_err(format!("no built-in handler {kind:?}")))?;
        let node_id = node.getattr("id")?.str()?.to_str()?.to_owned();
        Ok(Builtin { kind, handler, node_id, stage: Mutex::new(Stage::Fresh) })
    }

    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let mut stage = this.stage.lock().unwrap_or_else(PoisonError::into_inner);
        match &*stage {
            Stage::Fresh if crate::driver::polling() => {
                *stage = Stage::Handed;
                Ok(slf.clone().into_any().unbind())
            }
            Stage::Fresh => {
                let slot = current_slot(py)?.ok_or_else(|| {
                    PyRuntimeError::new_err(
                        "a built-in handler's execute runs the node a WorkflowEngine step executes: \
                         await it from a handler the engine runs",
                    )
                })?;
                let future = crate::driver::running_loop(py)?.call_method0("create_future")?;
                slot.get().ask(Asked {
                    kind: this.kind,
                    handler: this.handler.clone_ref(py),
                    node_id: this.node_id.clone(),
                    future: future.clone().unbind(),
                });
                // As `Future.__await__` marks it: the task then waits for it.
                future.setattr("_asyncio_future_blocking", true)?;
                *stage = Stage::Asked(future.clone().unbind());
                Ok(future.unbind())
            }
            Stage::Handed => Err(PyStopIteration::new_err((py.None(),))),
            Stage::Asked(future) => {
                let result = future.bind(py).call_method0("result")?;
                Err(PyStopIteration::new_err((result.unbind(),)))
            }
        }
    }

    fn send(slf: &Bound<'_, Self>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        if value.is_none(slf.py()) {
            return Builtin::__next__(slf);
        }
        Err(PyStopIteration::new_err((value,)))
    }

    #[pyo3(signature = (error, value = None, traceback = None))]
    fn throw(
        &self,
        error: Bound<'_, PyAny>,
        value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = traceback;
        if let Stage::Asked(future) = &*self.stage.lock().unwrap_or_else(PoisonError::into_inner) {
            // The slot drops the work once its future is cancelled.
            future.bind(error.py()).call_method0("cancel")?;
        }
        Err(match value {
            Some(value) if !value.is_none() => PyErr::from_value(value),
            _ => PyErr::from_value(error),
        })
    }
}

/// Runs the [`Builtin`] markers a handler's coroutine yields, with its scope.
struct Builtins<'s, 't> {
    node: &'s Node,
    scope: &'s Scope<'t>,
    shared: Weak<Shared>,
}

impl<'s, 't: 's> Intercept<'s> for Builtins<'s, 't> {
    fn intercept(&mut self, py: Python<'_>, yielded: &Bound<'_, PyAny>) -> PyResult<Option<PyFutureRef<'s>>> {
        let Ok(marker) = yielded.cast::<Builtin>() else { return Ok(None) };
        let marker = marker.get();
        self.run(py, marker.kind, &marker.handler, &marker.node_id).map(Some)
    }
}

impl<'s, 't: 's> Builtins<'s, 't> {
    /// The built-in `kind` of `handler` (its Python object) run on the node
    /// `node_id`, which must be the node being executed.
    fn run(
        &mut self,
        py: Python<'_>,
        kind: Kind,
        handler: &Py<PyAny>,
        node_id: &str,
    ) -> PyResult<PyFutureRef<'s>> {
        if node_id != self.node.id {
            return Err(PyRuntimeError::new_err(format!(
                "a built-in handler called from a handler runs the node being executed ({:?}), not {:?}",
                self.node.id, node_id
            )));
        }
        let registry = (kind == Kind::Function)
            .then(|| handler.bind(py).getattr("_registry").map(Bound::unbind))
            .transpose()?;
        let handler = kind.core(registry, self.shared.clone());
        let (node, scope) = (self.node, self.scope);
        Ok(Box::pin(async move {
            let result = handler.execute(node, scope).await;
            Python::attach(|py| match result {
                Ok(result) => to_python(py, &result).map(Bound::unbind),
                Err(error) => Err(handler_error(error)),
            })
        }))
    }
}

/// A built-in's work a [`Builtin`] asked of a [`BuiltinSlot`], and the loop
/// future its result goes to.
struct Asked {
    kind: Kind,
    handler: Py<PyAny>,
    node_id: String,
    future: Py<PyAny>,
}

#[derive(Default)]
struct SlotState {
    asked: VecDeque<Asked>,
    /// Wakes the future serving the slot when work is asked.
    waker: Option<Waker>,
}

/// Where a handler's coroutine run as an asyncio task of its own (a
/// parallel child's) asks for built-in work (`await super().execute(...)`):
/// the slot is in the task's context, and the Rust future waiting for the
/// task runs the work with the node's scope ([`serve`]).
#[pyclass(module = "roomkit_graph._core", frozen)]
pub(crate) struct BuiltinSlot {
    state: Mutex<SlotState>,
}

impl BuiltinSlot {
    fn ask(&self, asked: Asked) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.asked.push_back(asked);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// The next work asked; `waker` is woken when more is.
    fn next(&self, waker: &Waker) -> Option<Asked> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.waker = Some(waker.clone());
        state.asked.pop_front()
    }
}

/// The context variable holding the [`BuiltinSlot`] of the running task.
fn slot_variable(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static VARIABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    VARIABLE
        .get_or_try_init(py, || {
            let kwargs = PyDict::new(py);
            kwargs.set_item("default", py.None())?;
            let class = py.import("contextvars")?.getattr("ContextVar")?;
            Ok::<_, PyErr>(class.call(("roomkit_graph_builtin_slot",), Some(&kwargs))?.unbind())
        })
        .map(|variable| variable.bind(py))
}

/// A copy of the current context with `slot` as the running task's slot.
fn slot_context<'py>(py: Python<'py>, slot: &Py<BuiltinSlot>) -> PyResult<Bound<'py, PyAny>> {
    let context = py.import("contextvars")?.call_method0("copy_context")?;
    let set = slot_variable(py)?.getattr("set")?;
    context.call_method1("run", (set, slot.clone_ref(py)))?;
    Ok(context)
}

/// The slot of the running task's context, if any.
fn current_slot(py: Python<'_>) -> PyResult<Option<Bound<'_, BuiltinSlot>>> {
    let slot = slot_variable(py)?.call_method0("get")?;
    Ok(slot.cast_into::<BuiltinSlot>().ok())
}

/// Waits for `task`, running the built-in work its coroutine asks of
/// `slot` with `builtins` meanwhile.
async fn serve<'s, 't: 's>(
    mut task: PyTask,
    slot: Py<BuiltinSlot>,
    mut builtins: Builtins<'s, 't>,
) -> PyResult<Py<PyAny>> {
    let mut work: Option<(PyFutureRef<'s>, Py<PyAny>)> = None;
    std::future::poll_fn(|cx| {
        loop {
            if let Some((running, future)) = work.as_mut() {
                match running.as_mut().poll(cx) {
                    Poll::Pending => break,
                    Poll::Ready(result) => {
                        settle(future, result);
                        work = None;
                    }
                }
            }
            let Some(asked) = slot.get().next(cx.waker()) else { break };
            let started = Python::attach(|py| builtins.run(py, asked.kind, &asked.handler, &asked.node_id));
            match started {
                Ok(running) => work = Some((running, asked.future)),
                Err(error) => settle(&asked.future, Err(error)),
            }
        }
        Pin::new(&mut task).poll(cx)
    })
    .await
}

/// Completes the loop future a [`Builtin`] waits on with `result`, unless
/// it was cancelled.
fn settle(future: &Py<PyAny>, result: PyResult<Py<PyAny>>) {
    Python::attach(|py| {
        let future = future.bind(py);
        let settled = future.call_method0("done").and_then(|done| done.is_truthy()).and_then(|done| {
            match (done, result) {
                (true, _) => Ok(()),
                (false, Ok(value)) => future.call_method1("set_result", (value,)).map(drop),
                (false, Err(error)) => {
                    future.call_method1("set_exception", (error.into_value(py),)).map(drop)
                }
            }
        });
        if let Err(error) = settled {
            error.write_unraisable(py, None);
        }
    });
}
