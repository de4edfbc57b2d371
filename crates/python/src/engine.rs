//! `WorkflowEngine`: the core's step loop driven from Python, with the
//! reference's errors and run log. What the engine, its context view and
//! its handlers share is in [`crate::shared`]; the steps themselves in
//! [`crate::steps`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};
use roomkit_graph::{EngineState, Graph, Handlers, NoWaitClock, Workflow, WorkflowEngine as Core};
use serde_json::{Map, Value};

use crate::context::{TemplateResolver, WorkflowContext};
use crate::convert::{to_json, to_py};
use crate::driver::{Pending, PyFuture};
use crate::handlers::HandlerSpec;
use crate::runlog::{self, INFO, Record};
use crate::shared::{Lease, NodeInfo, Shared};
use crate::steps::{engine_error, load_entries, misnamed_start, start, step};
use crate::stream::EventStream;

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
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> PyResult<R> {
        self.shared.with_core(f)
    }

    /// An awaitable running `run` with the core engine.
    fn call<F, Fut>(slf: &Bound<'_, Self>, run: F) -> PyResult<Pending>
    where
        F: FnOnce(Arc<Shared>, Lease) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = PyResult<Py<PyAny>>> + Send + 'static,
    {
        let shared = Arc::clone(&slf.get().shared);
        shared.set_objects(slf.as_any(), slf.get().context.bind(slf.py()).as_any())?;
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
        let types = model
            .nodes()
            .iter()
            .map(|node| {
                // The handler registered last for a type serves it, as in the fold below.
                let spec = specs.iter().rfind(|(node_type, _)| node_type == node.node_type.as_str());
                let info = NodeInfo {
                    id: Arc::from(node.id.as_str()),
                    node_type: Arc::from(node.node_type.as_str()),
                    runs_no_python: spec.is_some_and(|(_, spec)| spec.runs_no_python(node)),
                };
                (node.id.clone(), info)
            })
            .collect();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let handlers = specs.into_iter().fold(Handlers::empty(), |handlers, (node_type, spec)| {
                handlers.with_arc(&node_type, spec.build(weak))
            });
            let workflow = Workflow::new(model, handlers).with_clock(NoWaitClock);
            Shared::new(workflow, graph_id, nodes, types)
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
                shared.with_core(|core| load_entries(core, entries))??;
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
        self.shared.run_id()
    }

    #[getter]
    fn context(&self, py: Python<'_>) -> Py<WorkflowContext> {
        self.context.clone_ref(py)
    }

    #[getter]
    fn current_node_id(&self) -> Option<String> {
        self.shared.current_node_id()
    }

    #[getter]
    fn waiting(&self) -> bool {
        self.shared.waiting()
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
        shared.set_objects(slf.as_any(), slf.get().context.bind(slf.py()).as_any())?;
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
            // The package runs no subgraph node: no child run is saved.
            children: Default::default(),
        };
        if let Some(error) = misnamed_start(this.shared.workflow().graph()) {
            return Err(error);
        }
        let restored = this.shared.workflow().restore(state).map_err(engine_error)?;
        this.shared.set_core(restored);
        Ok(engine)
    }
}
