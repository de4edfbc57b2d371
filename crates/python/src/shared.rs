//! What an engine's Python object, its context view and its handlers share:
//! the core engine, lent to the future of the call running it ([`Lease`])
//! and given back when that ends or is dropped, and, while handlers run, a
//! [`View`] of the context they read and write through `context` and
//! `engine.context`.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyWeakrefReference;
use roomkit_graph::{Context, LimitError, Workflow, WorkflowEngine as Core};
use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::runlog::Run;

/// What an engine's Python object, its context view and its handlers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    workflow: Workflow,
    graph_id: String,
    /// The graph's `Node` objects by id, as handlers receive them.
    nodes: HashMap<String, Py<PyAny>>,
    /// Each node's id and type, and whether its handler never calls Python,
    /// by id (shared, so a step copies neither; looked up at every step,
    /// hence the fast hash).
    types: FxHashMap<String, NodeInfo>,
    /// The engine's Python object and its `WorkflowContext`, for the
    /// handlers' `engine` and `context` arguments (weak: both hold this state).
    objects: OnceLock<(Py<PyWeakrefReference>, Py<PyWeakrefReference>)>,
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

/// What a step needs to know of its node.
#[derive(Clone)]
pub(crate) struct NodeInfo {
    pub(crate) id: Arc<str>,
    pub(crate) node_type: Arc<str>,
    /// Whether its handler never calls Python (see `HandlerSpec::runs_no_python`).
    pub(crate) runs_no_python: bool,
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
    /// The state of an engine running `workflow`, whose graph `graph_id` has
    /// the `Node` objects `nodes` and the steps' view of them `types`.
    pub(crate) fn new(
        workflow: Workflow,
        graph_id: String,
        nodes: HashMap<String, Py<PyAny>>,
        types: FxHashMap<String, NodeInfo>,
    ) -> Self {
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
            objects: OnceLock::new(),
            raised: Mutex::new(None),
            loose: Mutex::new(Vec::new()),
            emitted: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            streaming: AtomicBool::new(false),
        }
    }

    /// Records the engine's Python object and its context, once.
    pub(crate) fn set_objects(&self, engine: &Bound<'_, PyAny>, context: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.objects.get().is_none() {
            let engine = PyWeakrefReference::new(engine)?.unbind();
            let context = PyWeakrefReference::new(context)?.unbind();
            let _ = self.objects.set((engine, context));
        }
        Ok(())
    }

    /// The workflow the engine runs.
    pub(crate) fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Calls `f` with the core engine, unless a call holds it.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> PyResult<R> {
        let mut state = self.lock();
        match &mut state.core {
            Some(core) => Ok(f(core)),
            None => Err(PyRuntimeError::new_err("the engine is running a step")),
        }
    }

    /// Replaces the core engine (with one restored from a saved state).
    pub(crate) fn set_core(&self, core: Core) {
        self.lock().core = Some(core);
    }

    /// The run's id, also while a call holds the core.
    pub(crate) fn run_id(&self) -> String {
        let state = self.lock();
        match &state.core {
            Some(core) => core.run_id().to_owned(),
            None => state.run_id.clone(),
        }
    }

    /// The node the run is on, also while a call holds the core.
    pub(crate) fn current_node_id(&self) -> Option<String> {
        let state = self.lock();
        match &state.core {
            Some(core) => core.current_node_id().map(str::to_owned),
            None => state.current.as_deref().map(str::to_owned),
        }
    }

    /// Whether the run waits (false while a call holds the core).
    pub(crate) fn waiting(&self) -> bool {
        self.lock().core.as_ref().is_some_and(Core::waiting)
    }

    /// What a step needs to know of node `id`.
    pub(crate) fn node_info(&self, id: &str) -> Option<NodeInfo> {
        self.types.get(id).cloned()
    }

    /// A run `run_id` started: its clock and step count start afresh.
    pub(crate) fn run_started(&self, run_id: &str) {
        let mut state = self.lock();
        state.started = Some(Instant::now());
        state.steps = 0;
        state.run_id = run_id.to_owned();
        state.journal.push("start".to_owned());
    }

    /// A step of `node_id` begins: what an earlier step raised or emitted
    /// outside any handler goes nowhere.
    pub(crate) fn step_begins(&self, node_id: &Arc<str>) {
        self.raised.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.emitted.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.lock().current = Some(Arc::clone(node_id));
    }

    /// A step of the run completed.
    pub(crate) fn count_step(&self) {
        self.lock().steps += 1;
    }

    /// When the run started and how many steps it completed.
    pub(crate) fn run_figures(&self) -> (Option<Instant>, u64) {
        let state = self.lock();
        (state.started, state.steps)
    }

    /// What handlers wrote for ids that are not nodes of the graph.
    pub(crate) fn take_loose(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.loose.lock().unwrap_or_else(PoisonError::into_inner))
    }

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
    pub(crate) fn emit(&self, py: Python<'_>, payload: Value) -> PyResult<()> {
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

    pub(crate) fn take_raised(&self, node: &str) -> Option<PyErr> {
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
    pub(crate) fn engine<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.objects
            .get()
            .and_then(|(engine, _)| engine.bind(py).upgrade())
            .ok_or_else(|| PyRuntimeError::new_err("the engine running this step is gone"))
    }

    /// The engine's `WorkflowContext`.
    pub(crate) fn context_object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.objects
            .get()
            .and_then(|(_, context)| context.bind(py).upgrade())
            .ok_or_else(|| PyRuntimeError::new_err("the engine running this step is gone"))
    }

    pub(crate) fn run<'a>(&'a self, run_id: &'a str) -> Run<'a> {
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

/// An output refused by the run's limits, as a `ValueError`.
pub(crate) fn limit_error(node_id: &str, error: &LimitError) -> PyErr {
    PyValueError::new_err(format!("the output of {node_id:?} {error}"))
}
