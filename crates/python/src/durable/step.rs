//! [`Step`], what a Python handler is given as its `engine`, and the node
//! and context it is given, built through the package's own classes as any
//! caller builds them.

use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use roomkit_graph::{Context, Graph, Node, Scope};
use serde_json::Value;

use super::run::repr;
use crate::convert::{to_json, to_py};

/// What a handler is given as its `engine`: the step it executes (the run,
/// its graph, the node, the attempt), the run's context and a
/// `TemplateResolver` on it, and `emit` for the run's transcript: what
/// handlers written for `WorkflowEngine` read from it.
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Step {
    run_id: String,
    node_id: String,
    attempt: u32,
    /// The graph the run executes, and its `Graph` once asked for.
    graph: Graph,
    graph_object: PyOnceLock<Py<PyAny>>,
    /// The `WorkflowContext` the handler is given.
    context: Py<PyAny>,
    /// What the handler emitted; none once the step is over.
    emitted: Mutex<Option<Vec<Value>>>,
}

impl Step {
    pub(super) fn of(node: &Node, scope: &Scope<'_>, context: Py<PyAny>) -> Step {
        Step {
            run_id: scope.run_id().to_owned(),
            node_id: node.id.clone(),
            attempt: scope.attempt(),
            graph: scope.graph().clone(),
            graph_object: PyOnceLock::new(),
            context,
            emitted: Mutex::new(Some(Vec::new())),
        }
    }

    /// Ends the step: what the handler emitted, in order.
    pub(super) fn finish(&self) -> Vec<Value> {
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

    /// The graph the run executes (a `Graph`; the version the run started with).
    #[getter]
    fn graph(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let graph = self.graph_object.get_or_try_init(py, || -> PyResult<_> {
            let value = serde_json::to_value(&self.graph)
                .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
            Ok(Class::Graph.get(py)?.call_method1("from_dict", (to_py(py, &value)?,))?.unbind())
        })?;
        Ok(graph.clone_ref(py))
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
    Graph,
    Node,
    WorkflowContext,
    TemplateResolver,
}

impl Class {
    fn get(self, py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
        static SLOTS: [PyOnceLock<Py<PyAny>>; 4] =
            [PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new(), PyOnceLock::new()];
        let name = match self {
            Class::Graph => "Graph",
            Class::Node => "Node",
            Class::WorkflowContext => "WorkflowContext",
            Class::TemplateResolver => "TemplateResolver",
        };
        SLOTS[self as usize].import(py, "roomkit_graph", name)
    }
}

/// The node as a `Node`.
pub(super) fn node_arg<'py>(py: Python<'py>, node: &Node) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(node).map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
    Class::Node.get(py)?.call_method1("from_dict", (to_py(py, &value)?,))
}

/// The run's context as a `WorkflowContext`, its `input` scope the step's.
pub(super) fn context_arg<'py>(py: Python<'py>, context: &Context) -> PyResult<Bound<'py, PyAny>> {
    let entries = to_py(py, &Value::Object(context.to_entries()))?;
    let workflow_context = Class::WorkflowContext.get(py)?.call_method1("from_dict", (entries,))?;
    let input = to_py(py, context.get("input").unwrap_or(&Value::Null))?;
    workflow_context.call_method1("set_current_input", (input,))?;
    Ok(workflow_context)
}
