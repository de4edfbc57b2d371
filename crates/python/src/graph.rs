//! `Graph`: a workflow as data. Its nodes and edges are plain Python
//! containers (`nodes` a dict by id, `edges` a list), edited in place;
//! `to_dict`, `from_dict`, `validate` and `check` hand the graph to the core,
//! which reads, writes and checks it.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyTuple, PyType};
use roomkit_graph::{
    Graph as CoreGraph, GraphError, Limits, NodeType, Trigger as CoreTrigger, ValidationCode,
};
use serde_json::Value;

use crate::convert::{to_json, to_py};
use crate::dataclass;
use crate::dataclass::{object, or_dict, text};
use crate::edge::{self, Edge};
use crate::errors::ErrorClass;
use crate::node::{self, Node};
use crate::trigger::Trigger;

/// The trigger types the core reads; others are Python subclasses of `Trigger`.
const CORE_TRIGGERS: [&str; 4] = ["manual", "webhook", "scheduled", "event"];

/// A workflow graph: `Graph(id, name, trigger, description=None, version=1,
/// nodes={}, edges=[], metadata={}, max_steps=None)`; `max_steps` (beyond
/// roomkit-graph) bounds the steps a run of the graph may take.
#[pyclass(module = "roomkit_graph.graph", subclass)]
pub(crate) struct Graph {
    #[pyo3(get, set)]
    id: Py<PyAny>,
    #[pyo3(get, set)]
    name: Py<PyAny>,
    #[pyo3(get, set)]
    trigger: Py<PyAny>,
    #[pyo3(get, set)]
    description: Py<PyAny>,
    #[pyo3(get, set)]
    version: Py<PyAny>,
    #[pyo3(get, set)]
    nodes: Py<PyAny>,
    #[pyo3(get, set)]
    edges: Py<PyAny>,
    #[pyo3(get, set)]
    metadata: Py<PyAny>,
    #[pyo3(get, set)]
    max_steps: Py<PyAny>,
}

#[pymethods]
impl Graph {
    #[new]
    #[pyo3(signature = (
        id, name, trigger, description = None, version = None, nodes = None, edges = None, metadata = None,
        max_steps = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        id: Bound<'_, PyAny>,
        name: Bound<'_, PyAny>,
        trigger: Bound<'_, PyAny>,
        description: Option<Bound<'_, PyAny>>,
        version: Option<Bound<'_, PyAny>>,
        nodes: Option<Bound<'_, PyAny>>,
        edges: Option<Bound<'_, PyAny>>,
        metadata: Option<Bound<'_, PyAny>>,
        max_steps: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Graph {
            id: id.unbind(),
            name: name.unbind(),
            trigger: trigger.unbind(),
            description: description.map_or_else(|| py.None(), Bound::unbind),
            version: match version {
                Some(version) => version.unbind(),
                None => 1_u64.into_pyobject(py)?.into_any().unbind(),
            },
            nodes: or_dict(py, nodes),
            edges: edges.map_or_else(|| PyList::empty(py).into_any().unbind(), Bound::unbind),
            metadata: or_dict(py, metadata),
            max_steps: max_steps.map_or_else(|| py.None(), Bound::unbind),
        })
    }

    /// Adds a node; an id already taken raises `ValueError`.
    fn add_node(&self, py: Python<'_>, node: Bound<'_, PyAny>) -> PyResult<()> {
        let nodes = self.nodes.bind(py);
        let id = node.getattr("id")?;
        if nodes.contains(&id)? {
            return Err(PyValueError::new_err(format!("Duplicate node id: {}", id.str()?)));
        }
        nodes.set_item(id, node)
    }

    /// Adds nodes in order.
    #[pyo3(signature = (*nodes))]
    fn add_nodes(&self, py: Python<'_>, nodes: Bound<'_, PyTuple>) -> PyResult<()> {
        nodes.iter().try_for_each(|node| self.add_node(py, node))
    }

    /// Adds an edge.
    fn add_edge(&self, py: Python<'_>, edge: Bound<'_, PyAny>) -> PyResult<()> {
        self.edges.bind(py).call_method1("append", (edge,)).map(drop)
    }

    /// Adds edges in order.
    #[pyo3(signature = (*edges))]
    fn add_edges(&self, py: Python<'_>, edges: Bound<'_, PyTuple>) -> PyResult<()> {
        edges.iter().try_for_each(|edge| self.add_edge(py, edge))
    }

    /// The node with this id; `KeyError` when there is none.
    fn get_node<'py>(&self, py: Python<'py>, node_id: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.nodes.bind(py).get_item(node_id)
    }

    /// The edges leaving `node_id`, in order.
    fn get_outgoing_edges<'py>(
        &self,
        py: Python<'py>,
        node_id: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.edges_where(py, "source", &node_id)
    }

    /// The edges entering `node_id`, in order.
    fn get_incoming_edges<'py>(
        &self,
        py: Python<'py>,
        node_id: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.edges_where(py, "target", &node_id)
    }

    /// The children of the parallel node `parent_id`.
    fn get_children<'py>(
        &self,
        py: Python<'py>,
        parent_id: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let children = PyList::empty(py);
        for node in self.nodes.bind(py).call_method0("values")?.try_iter()? {
            let node = node?;
            if node.getattr("parent")?.eq(&parent_id)? {
                children.append(node)?;
            }
        }
        Ok(children)
    }

    /// The graph's structural mistakes, in roomkit-graph's words and order
    /// (empty when valid): start and end nodes, the id `start`, edges to
    /// nodes that do not exist, edges into the start node or out of an end
    /// node, and (when nothing else is wrong) nodes the start cannot reach.
    /// `check()` reports everything the engine checks.
    fn validate(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let graph = self.structure(py)?;
        Ok(reference_messages(&graph))
    }

    /// `validate()`, raising `GraphValidationError` with every message when
    /// the graph is not valid.
    fn validate_or_raise(&self, py: Python<'_>) -> PyResult<()> {
        let errors = self.validate(py)?;
        if errors.is_empty() { Ok(()) } else { Err(ErrorClass::Validation.err(errors.join("; "))) }
    }

    /// Every mistake the engine finds in the graph, as dicts `{code, node,
    /// field, message}`: `validate()`'s and the rest (node configurations,
    /// conditions, templates, ids, limits).
    fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let (graph, _) = self.to_core(py)?;
        let found = PyList::empty(py);
        for error in graph.check().errors {
            let entry = PyDict::new(py);
            entry.set_item("code", error.code.as_str())?;
            entry.set_item("node", error.node)?;
            entry.set_item("field", error.field)?;
            entry.set_item("message", error.message)?;
            found.append(entry)?;
        }
        Ok(found)
    }

    /// The graph as JSON data, as the engine writes it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (graph, trigger) = self.to_core(py)?;
        let Value::Object(mut written) = Value::from(&graph) else {
            return Err(PyValueError::new_err("the graph could not be written as JSON"));
        };
        let data = PyDict::new(py);
        // The keys in roomkit-graph's order.
        for key in
            ["id", "name", "trigger", "nodes", "edges", "description", "version", "metadata", "max_steps"]
        {
            if let Some(value) = written.remove(key) {
                data.set_item(key, to_py(py, &value)?)?;
            }
        }
        if let Some(trigger) = trigger {
            data.set_item("trigger", trigger)?;
        }
        Ok(data.into_any())
    }

    /// A graph from its JSON data, read by the engine: a mistake in the data
    /// (a missing or unknown key, a value of the wrong kind) raises
    /// `GraphValidationError` saying where; a node id used twice `ValueError`.
    #[classmethod]
    fn from_dict<'py>(cls: &Bound<'py, PyType>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        if !data.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!(
                "a graph must be a dict, not {}",
                data.get_type().name()?
            )));
        }
        let mut json = to_json(data)?;
        // A trigger of a type the core does not know is read by its Python class.
        let mut custom = None;
        if let Some(trigger) = json.as_object_mut().and_then(|map| map.get_mut("trigger"))
            && trigger.is_object()
            && !CORE_TRIGGERS.contains(&trigger.get("type").and_then(Value::as_str).unwrap_or(""))
        {
            custom = Some(py.get_type::<Trigger>().call_method1("from_dict", (to_py(py, trigger)?,))?);
            *trigger = serde_json::json!({"type": "manual"});
        }
        // The reference refuses a second node of an id as `add_node` does.
        if let Some(Value::Array(nodes)) = json.get("nodes") {
            let mut seen = std::collections::HashSet::new();
            for id in nodes.iter().filter_map(|node| node.get("id")?.as_str()) {
                if !seen.insert(id) {
                    return Err(graph_error(&GraphError::DuplicateNode(id.to_owned())));
                }
            }
        }
        let graph = CoreGraph::from_value(json).map_err(|e| graph_error(&e))?;
        let trigger = match custom {
            Some(trigger) => trigger,
            None => {
                let written = serde_json::to_value(&graph.trigger)
                    .map_err(|e| ErrorClass::Validation.err(format!("invalid trigger: {e}")))?;
                py.get_type::<Trigger>().call_method1("from_dict", (to_py(py, &written)?,))?
            }
        };
        let nodes = PyDict::new(py);
        let node_class = py.get_type::<Node>();
        for node in graph.nodes() {
            nodes.set_item(node.id.as_str(), node::build(&node_class, node)?)?;
        }
        let edges = PyList::empty(py);
        let edge_class = py.get_type::<Edge>();
        for edge in &graph.edges {
            edges.append(edge::build(&edge_class, edge)?)?;
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("description", graph.description.as_deref())?;
        kwargs.set_item("version", graph.version)?;
        kwargs.set_item("nodes", nodes)?;
        kwargs.set_item("edges", edges)?;
        kwargs.set_item("metadata", to_py(py, &Value::Object(graph.metadata.clone()))?)?;
        kwargs.set_item("max_steps", graph.max_steps)?;
        cls.call((graph.id.as_str(), graph.name.as_str(), trigger), Some(&kwargs))
    }
}

impl Graph {
    fn edges_where<'py>(
        &self,
        py: Python<'py>,
        end: &str,
        node_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let found = PyList::empty(py);
        for edge in self.edges.bind(py).try_iter()? {
            let edge = edge?;
            if edge.getattr(end)?.eq(node_id)? {
                found.append(edge)?;
            }
        }
        Ok(found)
    }

    /// The graph's nodes (`Node` objects, in order).
    fn node_objects<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, Node>>> {
        let nodes = self.nodes.bind(py);
        let Ok(nodes) = nodes.cast::<PyDict>() else {
            return Err(PyTypeError::new_err(format!(
                "graph.nodes must be a dict, not {}",
                nodes.get_type().name()?
            )));
        };
        let mut found = Vec::with_capacity(nodes.len());
        for (key, node) in nodes.iter() {
            let Ok(node) = node.cast_into::<Node>() else {
                return Err(PyTypeError::new_err(format!("graph.nodes[{}] is not a Node", key.repr()?)));
            };
            found.push(node);
        }
        Ok(found)
    }

    /// The graph's edges (`Edge` objects, in order).
    fn edge_objects<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, Edge>>> {
        let mut found = Vec::new();
        for (i, edge) in self.edges.bind(py).try_iter()?.enumerate() {
            let Ok(edge) = edge?.cast_into::<Edge>() else {
                return Err(PyTypeError::new_err(format!("graph.edges[{i}] is not an Edge")));
            };
            found.push(edge);
        }
        Ok(found)
    }

    /// The part of the graph its structure is: node ids, types and parents,
    /// edge ends (what `validate` looks at, whatever the rest holds).
    fn structure(&self, py: Python<'_>) -> PyResult<CoreGraph> {
        let id = self.id.bind(py).str()?.to_str()?.to_owned();
        let mut graph = CoreGraph::new(id, "", CoreTrigger::manual());
        for node in self.node_objects(py)? {
            let node = node.borrow();
            let id = text(node.id.bind(py), "a node's id")?;
            let node_type = text(node.node_type.bind(py), &format!("node '{id}': its type"))?;
            let mut core = roomkit_graph::Node::new(id.clone(), node_type);
            let parent = node.parent.bind(py);
            if !parent.is_none() {
                core.parent = Some(text(parent, &format!("node '{id}': its parent"))?);
            }
            graph.add_node(core).map_err(|e| graph_error(&e))?;
        }
        for edge in self.edge_objects(py)? {
            let (source, target) = edge.get().ends(py)?;
            graph.add_edge(roomkit_graph::Edge::new(source, target));
        }
        Ok(graph)
    }

    /// The whole graph as the core's, and the trigger's own data when the
    /// core does not know its type (the core then holds a manual trigger).
    pub(crate) fn to_core<'py>(&self, py: Python<'py>) -> PyResult<(CoreGraph, Option<Bound<'py, PyAny>>)> {
        let id = text(self.id.bind(py), "the graph's id")?;
        let name = text(self.name.bind(py), "the graph's name")?;
        let trigger = self.trigger.bind(py).call_method0("to_dict")?;
        let trigger_json = to_json(&trigger)?;
        let kind = trigger_json.get("type").and_then(Value::as_str).unwrap_or("");
        let (core_trigger, custom) = match serde_json::from_value::<CoreTrigger>(trigger_json.clone()) {
            Ok(core) if CORE_TRIGGERS.contains(&kind) => (core, None),
            _ => (CoreTrigger::manual(), Some(trigger)),
        };
        let mut graph = CoreGraph::new(id, name, core_trigger);
        let description = self.description.bind(py);
        if !description.is_none() {
            graph.description = Some(text(description, "the graph's description")?);
        }
        let version = self.version.bind(py);
        graph.version = match version.cast::<PyInt>() {
            Ok(v) => v.extract::<u64>().map_err(|_| {
                PyValueError::new_err(format!("the graph's version must be 0 or more, not {v}"))
            })?,
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "the graph's version must be an int, not {}",
                    version.get_type().name()?
                )));
            }
        };
        graph.metadata = object(self.metadata.bind(py), "the graph's metadata")?;
        let max_steps = self.max_steps.bind(py);
        if !max_steps.is_none() {
            let Ok(steps) = max_steps.extract::<u64>() else {
                return Err(PyTypeError::new_err(format!(
                    "the graph's max_steps must be a whole number, not {}",
                    max_steps.repr()?
                )));
            };
            graph.max_steps = Some(steps);
        }
        for node in self.node_objects(py)? {
            graph.add_node(node.borrow().to_core(py)?).map_err(|e| graph_error(&e))?;
        }
        for edge in self.edge_objects(py)? {
            graph.add_edge(edge.get().to_core(py)?);
        }
        Ok((graph, custom))
    }
}

/// A core graph error as the package raises it.
fn graph_error(error: &GraphError) -> PyErr {
    match error {
        GraphError::DuplicateNode(id) => PyValueError::new_err(format!("Duplicate node id: {id}")),
        other => ErrorClass::Validation.err(other.to_string()),
    }
}

/// The core's structural mistakes in roomkit-graph's words and order.
fn reference_messages(graph: &CoreGraph) -> Vec<String> {
    use ValidationCode::*;
    let unbounded = Limits { nodes: usize::MAX, edges: usize::MAX, ..Limits::default() };
    let starts: Vec<&str> =
        graph.nodes().iter().filter(|n| n.node_type == NodeType::Start).map(|n| n.id.as_str()).collect();
    let position = |id: &str| graph.nodes().iter().position(|n| n.id == id).unwrap_or(usize::MAX);
    let mut found: Vec<(u8, usize, String)> = Vec::new();
    for error in graph.validate_with(&unbounded) {
        let node = error.node.as_deref().unwrap_or("");
        let (rank, message) = match error.code {
            NoStart => (0, "Graph must have exactly one start node".to_owned()),
            MultipleStarts => (
                0,
                format!(
                    "Graph must have exactly one start node, found {}: {}",
                    starts.len(),
                    starts.join(", ")
                ),
            ),
            NoEnd => (1, "Graph must have at least one end node".to_owned()),
            MisnamedStart => {
                let kind = graph.node("start").map_or("", |n| n.node_type.as_str());
                (2, format!("Only the start node may be named 'start', not {kind} node 'start'"))
            }
            DanglingEdgeSource => (3, format!("Edge source references nonexistent node: {node}")),
            DanglingEdgeTarget => (3, format!("Edge target references nonexistent node: {node}")),
            // roomkit-graph looks at the first start node only.
            StartHasIncoming if starts.first() == Some(&node) => {
                (4, format!("Start node '{node}' must not have incoming edges"))
            }
            EndHasOutgoing => {
                found.push((5, position(node), format!("End node '{node}' must not have outgoing edges")));
                continue;
            }
            Unreachable => (6, format!("Node '{node}' is not reachable from start")),
            _ => continue,
        };
        found.push((rank, 0, message));
    }
    // Stable: within a rank the core's order, end nodes in graph order.
    found.sort_by_key(|(rank, at, _)| (*rank, *at));
    found.into_iter().map(|(_, _, message)| message).collect()
}

dataclass::dataclass_methods!(mutable Graph {
    id: "id",
    name: "name",
    trigger: "trigger",
    description: "description",
    version: "version",
    nodes: "nodes",
    edges: "edges",
    metadata: "metadata",
    max_steps: "max_steps",
});
