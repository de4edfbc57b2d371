//! `WorkflowEngine`: the core's step loop driven from Python, with the
//! reference's errors and run log.
//!
//! The engine's state lives in [`Shared`]: the core engine, lent to the
//! future of the call running it ([`Lease`]) and given back when that ends or
//! is dropped, and, while handlers run, a [`View`] of the context they read
//! and write through `context` and `engine.context`.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyString, PyType, PyWeakrefReference};
use roomkit_graph::{
    Context, EngineError, EngineState, Graph, Handlers, LimitError, NoWaitClock, NodeType, StepStatus,
    Workflow, WorkflowEngine as Core,
};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::context::{TemplateResolver, WorkflowContext, template_error};
use crate::convert::{to_json, to_py};
use crate::driver::{Pending, PyFuture};
use crate::errors::ErrorClass;
use crate::handlers::{HandlerSpec, raised_text};
use crate::runlog::{self, INFO, Record, Run, WARNING};
use crate::stream::EventStream;

/// What an engine's Python object, its context view and its handlers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    workflow: Workflow,
    graph_id: String,
    /// The graph's `Node` objects by id, as handlers receive them.
    nodes: HashMap<String, Py<PyAny>>,
    /// Each node's id and type, by id (shared, so a step copies neither;
    /// looked up at every step, hence the fast hash).
    types: FxHashMap<String, (Arc<str>, Arc<str>)>,
    /// The engine's Python object, for the handlers' `engine` argument.
    this: OnceLock<Py<PyWeakrefReference>>,
    /// The exception a Python handler raised, with its node: re-raised as it
    /// is when that node's step fails.
    raised: Mutex<Option<(String, PyErr)>>,
    /// Outputs handlers wrote for ids that are not nodes of the graph,
    /// stored once their step ends (the core stores only nodes' outputs).
    loose: Mutex<Vec<(String, Value)>>,
    /// What handlers passed to `engine.emit`, by node, until their handler
    /// hands it to the step's stream.
    emitted: Mutex<Vec<(String, Value)>>,
    /// Whether a stream of this engine is being read (streams are one at a time).
    pub(crate) streaming: AtomicBool,
    /// The tasks running parallel children, by node, so `emit` knows whose it is.
    children: Mutex<Vec<(Py<PyAny>, String)>>,
}

struct State {
    /// The core engine; `None` while a call's future holds it.
    core: Option<Core>,
    /// What handlers see while they run.
    view: Option<View>,
    /// Ids written through the context since the last `drain_writes`.
    journal: Vec<String>,
    /// The run's id and the node running, for reads while the core is lent.
    run_id: String,
    current: Option<Arc<str>>,
    /// When the run started and how many nodes it ran, for the run log.
    started: Option<Instant>,
    steps: u64,
}

/// The context as handlers running a step see it: the core's, shared, with
/// what they wrote through `context.set` on top.
struct View {
    context: Arc<Context>,
    writes: Vec<(String, Value)>,
    /// How many of `writes` were handed to a finished handler already.
    handed: usize,
    input: Option<Value>,
    /// `context` with the writes and input applied, built when read.
    merged: Option<Context>,
    /// How many handlers run (a parallel node's children run at once).
    users: usize,
}

impl View {
    fn context(&mut self) -> &Context {
        if self.writes.is_empty() && self.input.is_none() {
            return &self.context;
        }
        let (base, writes, input) = (&self.context, &self.writes, &self.input);
        self.merged.get_or_insert_with(|| {
            let mut merged = (**base).clone();
            for (id, output) in writes {
                merged.set_output(id, output.clone());
            }
            if let Some(input) = input {
                merged.set_input_value(Some(input.clone()));
            }
            merged
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn busy() -> PyErr {
        PyRuntimeError::new_err(
            "the engine is running a step that waits outside any handler: its context can be read again once the step ends",
        )
    }

    /// Calls `read` with the run's context (as handlers see it, during a step).
    pub(crate) fn read<R>(&self, read: impl FnOnce(&Context) -> R) -> PyResult<R> {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(core) = &state.core {
            return Ok(read(core.context()));
        }
        match &mut state.view {
            Some(view) => Ok(read(view.context())),
            None => Err(Shared::busy()),
        }
    }

    /// Stores `output` as node `node_id`'s output.
    pub(crate) fn write(&self, node_id: &str, output: Value) -> PyResult<()> {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(core) = &mut state.core {
            core.set_output(node_id, output).map_err(|error| limit_error(node_id, &error))?;
        } else if let Some(view) = &mut state.view {
            view.writes.push((node_id.to_owned(), output));
            view.merged = None;
        } else {
            return Err(Shared::busy());
        }
        state.journal.push(node_id.to_owned());
        Ok(())
    }

    /// Sets what `input.` paths read.
    pub(crate) fn set_input(&self, value: Value) -> PyResult<()> {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(core) = &mut state.core {
            core.set_input_value(Some(value));
        } else if let Some(view) = &mut state.view {
            view.input = Some(value);
            view.merged = None;
        } else {
            return Err(Shared::busy());
        }
        Ok(())
    }

    pub(crate) fn drain_writes(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().journal)
    }

    /// A handler starts on the step whose context is `context`.
    pub(crate) fn enter(&self, context: Arc<Context>) {
        let mut state = self.lock();
        match &mut state.view {
            Some(view) => view.users += 1,
            None => {
                state.view =
                    Some(View { context, writes: Vec::new(), handed: 0, input: None, merged: None, users: 1 })
            }
        }
    }

    /// A handler ended: what was written since the last one ended for nodes
    /// of the graph, for its result (other ids are stored after the step).
    pub(crate) fn leave(&self) -> Vec<(String, Value)> {
        let mut state = self.lock();
        let Some(view) = &mut state.view else { return Vec::new() };
        let (writes, loose): (Vec<_>, Vec<_>) =
            view.writes[view.handed..].iter().cloned().partition(|(id, _)| self.nodes.contains_key(id));
        self.loose.lock().unwrap_or_else(PoisonError::into_inner).extend(loose);
        view.handed = view.writes.len();
        view.users -= 1;
        if view.users == 0 {
            state.view = None;
        }
        writes
    }

    /// A parallel child's handler runs as `task`.
    pub(crate) fn child_started(&self, task: Py<PyAny>, node: &str) {
        self.children.lock().unwrap_or_else(PoisonError::into_inner).push((task, node.to_owned()));
    }

    pub(crate) fn child_ended(&self, node: &str) {
        self.children.lock().unwrap_or_else(PoisonError::into_inner).retain(|(_, id)| id != node);
    }

    /// Keeps `payload`, emitted by the handler running in the current task.
    fn emit(&self, py: Python<'_>, payload: Value) -> PyResult<()> {
        let node = {
            let state = self.lock();
            if state.view.is_none() {
                // Outside a handler: nobody streams it.
                return Ok(());
            }
            state.current.as_deref().map(str::to_owned)
        };
        static CURRENT_TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let task = CURRENT_TASK.import(py, "asyncio", "current_task")?.call0()?;
        let child = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(running, _)| running.bind(py).is(&task))
            .map(|(_, id)| id.clone());
        if let Some(node) = child.or(node) {
            self.emitted.lock().unwrap_or_else(PoisonError::into_inner).push((node, payload));
        }
        Ok(())
    }

    /// What the handler of `node` emitted, in order.
    pub(crate) fn take_emitted(&self, node: &str) -> Vec<Value> {
        let mut emitted = self.emitted.lock().unwrap_or_else(PoisonError::into_inner);
        let (mine, others): (Vec<_>, Vec<_>) = emitted.drain(..).partition(|(id, _)| id == node);
        *emitted = others;
        mine.into_iter().map(|(_, payload)| payload).collect()
    }

    /// Keeps the exception a handler of `node` raised.
    pub(crate) fn raise(&self, node: &str, error: PyErr) {
        *self.raised.lock().unwrap_or_else(PoisonError::into_inner) = Some((node.to_owned(), error));
    }

    fn take_raised(&self, node: &str) -> Option<PyErr> {
        let mut raised = self.raised.lock().unwrap_or_else(PoisonError::into_inner);
        match raised.take() {
            Some((at, error)) if at == node => Some(error),
            _ => None,
        }
    }

    /// The graph's `Node` object `id`.
    pub(crate) fn node(&self, py: Python<'_>, id: &str) -> PyResult<Py<PyAny>> {
        self.nodes
            .get(id)
            .map(|node| node.clone_ref(py))
            .ok_or_else(|| PyRuntimeError::new_err(format!("no node {id:?} in the engine's graph")))
    }

    /// The engine's Python object.
    pub(crate) fn engine<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, WorkflowEngine>> {
        self.this
            .get()
            .and_then(|this| this.bind(py).upgrade_as::<WorkflowEngine>().ok().flatten())
            .ok_or_else(|| PyRuntimeError::new_err("the engine running this step is gone"))
    }

    fn run<'a>(&'a self, run_id: &'a str) -> Run<'a> {
        Run { id: run_id, graph: &self.graph_id }
    }
}

/// The core engine, lent to a call's future; given back when dropped.
pub(crate) struct Lease {
    shared: Arc<Shared>,
    core: Option<Core>,
}

impl Lease {
    pub(crate) fn take(shared: &Arc<Shared>) -> PyResult<Lease> {
        let core = shared.lock().core.take().ok_or_else(|| {
            PyRuntimeError::new_err(
                "the engine is already running: one call (start, step, run, resume, stream) at a time",
            )
        })?;
        Ok(Lease { shared: Arc::clone(shared), core: Some(core) })
    }

    pub(crate) fn core(&mut self) -> &mut Core {
        self.core.as_mut().expect("a lease holds the engine until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            let mut state = self.shared.lock();
            state.run_id = core.run_id().to_owned();
            state.current = core.current_node_id().map(Arc::from);
            state.core = Some(core);
        }
    }
}

/// Drives a graph step by step: `start`, `step`, `run` and `resume` are
/// awaitables run on the caller's loop; handlers (built-in ones run in
/// Rust) are called with the node, the context and the engine.
#[pyclass(module = "roomkit_graph.engine.executor", name = "WorkflowEngine", frozen, weakref, subclass)]
pub(crate) struct WorkflowEngine {
    shared: Arc<Shared>,
    graph: Py<PyAny>,
    context: Py<WorkflowContext>,
    handlers: Py<PyDict>,
    resolver: Py<TemplateResolver>,
}

impl WorkflowEngine {
    pub(crate) fn context_object(&self) -> &Py<WorkflowContext> {
        &self.context
    }

    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> PyResult<R> {
        let mut state = self.shared.lock();
        match &mut state.core {
            Some(core) => Ok(f(core)),
            None => Err(PyRuntimeError::new_err("the engine is running a step")),
        }
    }

    /// An awaitable running `run` with the core engine.
    fn call<F, Fut>(slf: &Bound<'_, Self>, run: F) -> PyResult<Pending>
    where
        F: FnOnce(Arc<Shared>, Lease) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = PyResult<Py<PyAny>>> + Send + 'static,
    {
        let shared = Arc::clone(&slf.get().shared);
        if shared.this.get().is_none() {
            let _ = shared.this.set(PyWeakrefReference::new(slf.as_any())?.unbind());
        }
        // The call keeps the engine's object alive: its handlers receive it.
        let this = slf.clone().unbind();
        let future: PyFuture = Box::pin(async move {
            let lease = Lease::take(&shared)?;
            let result = run(shared, lease).await;
            drop(this);
            result
        });
        Ok(Pending::new(future))
    }
}

/// Reads a graph object (a `Graph`, or any object with `to_dict()`) into
/// the core's model.
fn core_graph(graph: &Bound<'_, PyAny>) -> PyResult<Graph> {
    // A `Graph` lowers itself, also with a trigger of a type the core does not know.
    if let Ok(graph) = graph.cast::<crate::graph::Graph>() {
        return Ok(graph.borrow().to_core(graph.py())?.0);
    }
    let data = to_json(&graph.call_method0("to_dict")?)?;
    Graph::from_value(data).map_err(|e| PyValueError::new_err(format!("the graph cannot be read: {e}")))
}

/// The reference's refusal of a graph whose node named `start` is not its start node.
fn misnamed_start(graph: &Graph) -> Option<PyErr> {
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
            if message.starts_with("No handler registered for node type") {
                ErrorClass::Execution.err(message)
            } else {
                ErrorClass::Execution.err(format!("Node '{node}' failed: {message}"))
            }
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
    core.start(trigger).map_err(engine_error)?;
    {
        let mut state = shared.lock();
        state.started = Some(Instant::now());
        state.steps = 0;
        state.run_id = core.run_id().to_owned();
        state.journal.push("start".to_owned());
    }
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
    began: Instant,
    /// Whether the run log takes INFO records (asked once per step).
    logs: bool,
}

/// Prepares the step of `core`'s current node (none when the run is
/// complete or waits): logs its start.
pub(crate) fn begin(shared: &Shared, core: &Core) -> Option<Begun> {
    let (node_id, node_type) = shared.types.get(core.current_node_id()?)?.clone();
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
    shared.raised.lock().unwrap_or_else(PoisonError::into_inner).take();
    // What was emitted outside any handler of an earlier step goes nowhere.
    shared.emitted.lock().unwrap_or_else(PoisonError::into_inner).clear();
    shared.lock().current = Some(Arc::clone(&node_id));
    Some(Begun { node_id, node_type, began: Instant::now(), logs })
}

/// Runs the current node of `core` and moves on: whether the run moved
/// (true also on the step whose node waits), as the reference's `step()`.
async fn step(shared: &Shared, core: &mut Core) -> PyResult<bool> {
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
    for (id, output) in std::mem::take(&mut *shared.loose.lock().unwrap_or_else(PoisonError::into_inner)) {
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
    {
        let is_end = node_type == NodeType::End.as_str();
        {
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
                        shared.lock().steps += 1;
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
                        let (started, steps) = {
                            let state = shared.lock();
                            (state.started, state.steps)
                        };
                        runlog::log(py, INFO, &run, || Record {
                            event: "run.complete",
                            level: INFO,
                            message: "Run %s of %s completed",
                            node: None,
                            args: vec![
                                PyString::new(py, run.id).into_any(),
                                PyString::new(py, run.graph).into_any(),
                            ],
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
                StepStatus::Waiting(_) | StepStatus::Sleeping(_) => {
                    shared.lock().steps += 1;
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
    }
}

#[pymethods]
impl WorkflowEngine {
    #[new]
    #[pyo3(signature = (graph, handlers = None, context = None))]
    fn new(
        py: Python<'_>,
        graph: Bound<'_, PyAny>,
        handlers: Option<Bound<'_, PyAny>>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let model = core_graph(&graph)?;
        let graph_id = model.id.clone();
        let types = model
            .nodes()
            .iter()
            .map(|node| (node.id.clone(), (Arc::from(node.id.as_str()), Arc::from(node.node_type.as_str()))))
            .collect();
        let mut nodes = HashMap::new();
        for item in graph.getattr("nodes")?.call_method0("items")?.try_iter()? {
            let (id, node): (String, Py<PyAny>) = item?.extract()?;
            nodes.insert(id, node);
        }
        let merged = crate::handlers::builtin_handlers(py)?.copy()?;
        if let Some(handlers) = handlers.filter(|h| !h.is_none()) {
            merged.call_method1("update", (handlers,))?;
        }
        let mut specs = Vec::with_capacity(merged.len());
        for (key, handler) in merged.iter() {
            specs.push((key.str()?.to_str()?.to_owned(), HandlerSpec::of(&handler)?));
        }
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let handlers = specs.into_iter().fold(Handlers::empty(), |handlers, (node_type, spec)| {
                handlers.with_arc(&node_type, spec.build(weak))
            });
            let workflow = Workflow::new(model, handlers).with_clock(NoWaitClock);
            let core = workflow.engine();
            Shared {
                state: Mutex::new(State {
                    run_id: core.run_id().to_owned(),
                    core: Some(core),
                    view: None,
                    journal: Vec::new(),
                    current: None,
                    started: None,
                    steps: 0,
                }),
                workflow,
                graph_id,
                nodes,
                types,
                this: OnceLock::new(),
                raised: Mutex::new(None),
                loose: Mutex::new(Vec::new()),
                emitted: Mutex::new(Vec::new()),
                children: Mutex::new(Vec::new()),
                streaming: AtomicBool::new(false),
            }
        });
        let context = match context.filter(|c| !c.is_none()) {
            None => Py::new(py, WorkflowContext::of_engine(Arc::clone(&shared)))?,
            Some(given) => {
                let given = given
                    .cast::<WorkflowContext>()
                    .map_err(|_| PyTypeError::new_err("context must be a WorkflowContext"))?;
                let entries = given.get().adopt(Arc::clone(&shared)).ok_or_else(|| {
                    PyValueError::new_err(
                        "this context is another engine's: give a WorkflowContext of its own",
                    )
                })?;
                let mut state = shared.lock();
                if let Some(core) = &mut state.core {
                    load_entries(core, entries)?;
                }
                drop(state);
                given.clone().unbind()
            }
        };
        let resolver = Py::new(py, TemplateResolver::over(context.clone_ref(py)))?;
        Ok(WorkflowEngine { shared, graph: graph.unbind(), context, handlers: merged.unbind(), resolver })
    }

    #[getter]
    fn graph(&self, py: Python<'_>) -> Py<PyAny> {
        self.graph.clone_ref(py)
    }

    #[getter]
    fn run_id(&self) -> String {
        let state = self.shared.lock();
        match &state.core {
            Some(core) => core.run_id().to_owned(),
            None => state.run_id.clone(),
        }
    }

    #[getter]
    fn context(&self, py: Python<'_>) -> Py<WorkflowContext> {
        self.context.clone_ref(py)
    }

    #[getter]
    fn current_node_id(&self) -> Option<String> {
        let state = self.shared.lock();
        match &state.core {
            Some(core) => core.current_node_id().map(str::to_owned),
            None => state.current.as_deref().map(str::to_owned),
        }
    }

    #[getter]
    fn waiting(&self) -> bool {
        let state = self.shared.lock();
        state.core.as_ref().is_some_and(Core::waiting)
    }

    #[getter]
    fn template_resolver(&self, py: Python<'_>) -> Py<TemplateResolver> {
        self.resolver.clone_ref(py)
    }

    /// The handler for `node_type`, or None.
    fn get_handler<'py>(
        &self,
        py: Python<'py>,
        node_type: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.handlers.bind(py).get_item(node_type)
    }

    /// Starts a run from the start node with `trigger_data`.
    #[pyo3(signature = (trigger_data = None))]
    fn start(slf: &Bound<'_, Self>, trigger_data: Option<Bound<'_, PyAny>>) -> PyResult<Pending> {
        let trigger = trigger_data.map(|t| to_json(&t)).transpose()?.unwrap_or(Value::Null);
        Self::call(slf, move |shared, mut lease| async move {
            Python::attach(|py| {
                start(py, &shared, lease.core(), trigger)?;
                Ok(py.None())
            })
        })
    }

    /// Runs the current node and moves on; whether the run moved (true on the
    /// step whose node waits, false once it completes or while it waits).
    fn step(slf: &Bound<'_, Self>) -> PyResult<Pending> {
        Self::call(slf, |shared, mut lease| async move {
            let moved = step(&shared, lease.core()).await?;
            Python::attach(|py| Ok(pyo3::types::PyBool::new(py, moved).to_owned().into_any().unbind()))
        })
    }

    /// Starts a run and steps until it completes, waits or fails; the context.
    #[pyo3(signature = (trigger_data = None))]
    fn run(slf: &Bound<'_, Self>, trigger_data: Option<Bound<'_, PyAny>>) -> PyResult<Pending> {
        let trigger = trigger_data.map(|t| to_json(&t)).transpose()?.unwrap_or(Value::Null);
        let context = slf.get().context.clone_ref(slf.py());
        Self::call(slf, move |shared, mut lease| async move {
            Python::attach(|py| start(py, &shared, lease.core(), trigger))?;
            while step(&shared, lease.core()).await? {}
            Ok(context.into_any())
        })
    }

    /// Stores `input_data` as node `node_id`'s output and, when the run waits
    /// on that node, moves on along its edges.
    fn resume(slf: &Bound<'_, Self>, node_id: String, input_data: &Bound<'_, PyAny>) -> PyResult<Pending> {
        if node_id == "start" {
            return Err(PyValueError::new_err(
                "'start' holds the run's trigger data: resume names the node the run waits on",
            ));
        }
        let data = to_json(input_data)?;
        Self::call(slf, move |shared, mut lease| async move {
            Python::attach(|py| {
                let core = lease.core();
                core.resume(&node_id, data).map_err(engine_error)?;
                runlog::log(py, INFO, &shared.run(core.run_id()), || Record {
                    event: "node.resume",
                    level: INFO,
                    message: "Node %s resumed",
                    node: Some(&node_id),
                    args: vec![PyString::new(py, &node_id).into_any()],
                    fields: Vec::new(),
                });
                Ok(py.None())
            })
        })
    }

    /// The node the run would go to after `node_id`: conditional edges in
    /// order, then the unconditional one, then `otherwise`; None without edges.
    fn evaluate_edges(&self, node_id: &str) -> PyResult<Option<String>> {
        self.with_core(|core| {
            if core.graph().node(node_id).is_none() {
                return Ok(None);
            }
            core.evaluate_edges(node_id).map_err(engine_error)
        })?
    }

    /// Starts a run with `trigger_data` and yields its events, in `modes`
    /// (`values`, `updates`, `lifecycle`, `custom`), until it completes,
    /// waits or fails (the error comes after the failing step's events).
    #[pyo3(signature = (trigger_data = None, *, modes = None))]
    fn stream(
        slf: &Bound<'_, Self>,
        trigger_data: Option<Bound<'_, PyAny>>,
        modes: Option<Bound<'_, PyAny>>,
    ) -> PyResult<EventStream> {
        let trigger = trigger_data.map(|t| to_json(&t)).transpose()?.unwrap_or(Value::Null);
        let modes = match modes {
            Some(modes) => crate::stream::modes(&modes)?,
            None => vec![roomkit_graph::StreamMode::Updates],
        };
        let shared = Arc::clone(&slf.get().shared);
        if shared.this.get().is_none() {
            let _ = shared.this.set(PyWeakrefReference::new(slf.as_any())?.unbind());
        }
        Ok(EventStream::new(shared, slf.clone().into_any().unbind(), trigger, modes))
    }

    /// Sends `payload` to the stream as a custom event of the node whose
    /// handler calls it (nothing outside a stream).
    fn emit(&self, py: Python<'_>, payload: &Bound<'_, PyAny>) -> PyResult<()> {
        let payload = to_json(payload)?;
        self.shared.emit(py, payload)
    }

    /// The run's state, to continue it later with `from_dict`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.with_core(|core| core.to_state())?;
        let value = serde_json::to_value(state)
            .map_err(|e| PyRuntimeError::new_err(format!("the run's state cannot be written: {e}")))?;
        to_py(py, &value)
    }

    /// An engine continuing the run saved in `data` (from `to_dict`).
    #[classmethod]
    #[pyo3(signature = (graph, data, handlers = None))]
    fn from_dict<'py>(
        cls: &Bound<'py, PyType>,
        graph: Bound<'py, PyAny>,
        data: &Bound<'py, PyAny>,
        handlers: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let Value::Object(mut data) = to_json(data)? else {
            return Err(PyTypeError::new_err("WorkflowEngine.from_dict takes the dict to_dict wrote"));
        };
        let kwargs = PyDict::new(py);
        kwargs.set_item("handlers", handlers)?;
        let engine = cls.call((graph,), Some(&kwargs))?;
        let this = engine.cast::<WorkflowEngine>()?.get();
        let text = |value: Option<Value>| match value {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let context = match data.remove("context") {
            Some(Value::Object(context)) => context,
            _ => Map::new(),
        };
        let state = EngineState {
            context,
            current_node_id: text(data.remove("current_node_id")),
            previous_node_id: text(data.remove("previous_node_id")),
            waiting: data.remove("waiting").and_then(|w| w.as_bool()).unwrap_or(false),
            run_id: text(data.remove("run_id")).unwrap_or_default(),
            pending: match data.remove("pending") {
                Some(Value::Array(ids)) => ids.into_iter().filter_map(|id| text(Some(id))).collect(),
                _ => Vec::new(),
            },
        };
        if let Some(error) = misnamed_start(this.shared.workflow.graph()) {
            return Err(error);
        }
        let restored = this.shared.workflow.restore(state).map_err(engine_error)?;
        this.shared.lock().core = Some(restored);
        Ok(engine)
    }
}

/// Loads saved entries into the context of a new run.
fn load_entries(core: &mut Core, entries: Map<String, Value>) -> PyResult<()> {
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

/// An output refused by the run's limits, as a `ValueError`.
fn limit_error(node_id: &str, error: &LimitError) -> PyErr {
    PyValueError::new_err(format!("the output of {node_id:?} {error}"))
}
