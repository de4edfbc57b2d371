//! The workflow graph: nodes, edges and what triggers it.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::limits::{self, Limits, MAX_READ_DEPTH};
use crate::model::{Edge, Node, NodeType, Trigger};
use crate::validate::{self, Checks, Validation, ValidationError};

/// A workflow as data: its nodes, the edges between them and its trigger.
///
/// Build it in code or read it from JSON; writing it back gives the same JSON
/// (optional keys left out: `description` when absent, `version` when 1,
/// `config` and `metadata` when empty).
///
/// ```
/// use roomkit_graph::{Condition, Edge, Graph, Node, Trigger};
///
/// let mut graph = Graph::new("bug-triage", "Bug Triage", Trigger::webhook("github"));
/// graph
///     .add_nodes([Node::new("start", "start"), Node::new("triage", "agent"), Node::new("end", "end")])?
///     .add_edges([Edge::new("start", "triage"), Edge::new("triage", "end")]);
/// graph.validate_or_raise()?;
///
/// let json = graph.to_json();
/// assert_eq!(Graph::from_json(&json)?, graph);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graph {
    /// The graph's identifier.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// What starts a run.
    pub trigger: Trigger,
    /// What the workflow is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The graph's version (1 when not given).
    #[serde(skip_serializing_if = "is_one")]
    pub version: u64,
    /// Free-form data kept with the graph.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// How many steps a run of this graph may execute before it stops with a
    /// step-limit error; `None`: the engine's or runner's own limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// How many runs of the graph are driven at once, per key; `None`: no
    /// limit of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    nodes: Vec<Node>,
    /// The transitions, in the order they were added (routing order).
    pub edges: Vec<Edge>,
    #[serde(skip)]
    index: NodeIndex,
}

/// Node positions by id, so adding and finding a node does not scan the graph.
#[derive(Clone, Default)]
struct NodeIndex(HashMap<String, usize>);

impl PartialEq for NodeIndex {
    /// Derived from the nodes, which are compared themselves.
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl fmt::Debug for NodeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

fn is_one(version: &u64) -> bool {
    *version == 1
}

/// What can go wrong reading or building a graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A node id is already taken.
    #[error("duplicate node id {0:?}: every node of a graph needs its own id")]
    DuplicateNode(String),
    /// The JSON is not a graph.
    #[error("invalid graph JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON value given to [`Graph::from_value`] nests deeper than any
    /// graph read from JSON text can.
    #[error("the graph nests {depth} levels deep, more than the {limit} levels JSON text may")]
    TooDeep {
        /// How deep it nests.
        depth: usize,
        /// The deepest a graph may nest.
        limit: usize,
    },
    /// `validate_or_raise` found mistakes.
    #[error("the graph is invalid:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ValidationError>),
}

impl Graph {
    /// An empty graph.
    pub fn new(id: impl Into<String>, name: impl Into<String>, trigger: Trigger) -> Self {
        Graph {
            id: id.into(),
            name: name.into(),
            trigger,
            description: None,
            version: 1,
            metadata: Map::new(),
            max_steps: None,
            concurrency: None,
            nodes: Vec::new(),
            edges: Vec::new(),
            index: NodeIndex::default(),
        }
    }

    /// The nodes, in the order they were added.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.0.get(id).map(|&i| &self.nodes[i])
    }

    /// The start node: the one node of type `start` (the first, if there are several).
    pub fn start_node(&self) -> Option<&Node> {
        self.nodes.iter().find(|node| node.node_type == NodeType::Start)
    }

    /// Adds a node; a duplicate id is refused and leaves the graph unchanged.
    pub fn add_node(&mut self, node: Node) -> Result<&mut Self, GraphError> {
        if self.index.0.contains_key(&node.id) {
            return Err(GraphError::DuplicateNode(node.id));
        }
        self.index.0.insert(node.id.clone(), self.nodes.len());
        self.nodes.push(node);
        Ok(self)
    }

    /// Adds nodes in order; at the first duplicate id, nothing more is added.
    pub fn add_nodes(&mut self, nodes: impl IntoIterator<Item = Node>) -> Result<&mut Self, GraphError> {
        for node in nodes {
            self.add_node(node)?;
        }
        Ok(self)
    }

    /// Adds nodes in order, each with an edge to the next: a run goes through
    /// them one after another. At the first duplicate id, nothing more is
    /// added (the edges only between the nodes added).
    ///
    /// ```
    /// use roomkit_graph::{Graph, Node, Trigger};
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_chain([Node::new("start", "start"), Node::new("pause", "log"), Node::new("end", "end")])?;
    /// let edges: Vec<_> = graph.edges.iter().map(|e| (e.source.as_str(), e.target.as_str())).collect();
    /// assert_eq!(edges, [("start", "pause"), ("pause", "end")]);
    /// assert!(graph.validate().is_empty());
    /// # Ok::<(), roomkit_graph::GraphError>(())
    /// ```
    pub fn add_chain(&mut self, nodes: impl IntoIterator<Item = Node>) -> Result<&mut Self, GraphError> {
        let mut previous: Option<String> = None;
        for node in nodes {
            let id = node.id.clone();
            self.add_node(node)?;
            if let Some(source) = previous.replace(id.clone()) {
                self.edges.push(Edge::new(source, id));
            }
        }
        Ok(self)
    }

    /// Adds an edge. Edges to unknown nodes are accepted here and reported by
    /// [`Graph::validate`], so a graph being edited can be incomplete.
    pub fn add_edge(&mut self, edge: Edge) -> &mut Self {
        self.edges.push(edge);
        self
    }

    /// Adds edges in order.
    pub fn add_edges(&mut self, edges: impl IntoIterator<Item = Edge>) -> &mut Self {
        self.edges.extend(edges);
        self
    }

    /// Every mistake in the graph, in one pass: structure first, then reachability
    /// (only when the structure is sound), then node configuration, then what
    /// goes past the default [`Limits`]. Empty when the graph is valid.
    pub fn validate(&self) -> Vec<ValidationError> {
        validate::validate(self, &Limits::default())
    }

    /// [`Graph::validate`] against `limits`: node and edge counts, ids
    /// (1 to `id_chars` ASCII letters, digits, `_` and `-`), how deep
    /// configurations nest and how long their strings are. A graph with too
    /// many nodes or edges gets that one mistake.
    ///
    /// ```
    /// use roomkit_graph::{Edge, Graph, Limits, Node, Trigger, ValidationCode};
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
    /// graph.add_edge(Edge::new("start", "end"));
    /// assert!(graph.validate_with(&Limits::default()).is_empty());
    /// let errors = graph.validate_with(&Limits { nodes: 1, ..Limits::default() });
    /// assert_eq!(errors[0].code, ValidationCode::LimitExceeded);
    /// assert_eq!(errors[0].message, "the graph has 2 nodes, more than the limit of 1");
    /// # Ok::<(), roomkit_graph::GraphError>(())
    /// ```
    pub fn validate_with(&self, limits: &Limits) -> Vec<ValidationError> {
        validate::validate(self, limits)
    }

    /// Every mistake, as [`Graph::validate`] gives them, and apart from them
    /// every warning: what is allowed but likely wrong, such as nodes a run
    /// cannot leave (`cycle_without_exit`). A graph with warnings only is valid.
    ///
    /// ```
    /// use roomkit_graph::{Condition, Edge, Graph, Node, Trigger};
    ///
    /// let mut graph = Graph::new("g", "G", Trigger::manual());
    /// graph.add_nodes([Node::new("start", "start"), Node::new("a", "log"), Node::new("b", "log")])?;
    /// graph.add_node(Node::new("end", "end"))?;
    /// graph.add_edges([
    ///     Edge::new("start", "end").when(Condition::field("trigger.skip").equals(true)),
    ///     Edge::new("start", "a"),
    ///     Edge::new("a", "b"),
    ///     Edge::new("b", "a"),
    /// ]);
    /// let found = graph.check();
    /// assert!(found.errors.is_empty());
    /// assert_eq!(found.warnings.len(), 1);
    /// assert_eq!(found.warnings[0].code.as_str(), "cycle_without_exit");
    /// assert!(found.warnings[0].message.starts_with(r#"nodes "a", "b" lead only to each other"#));
    ///
    /// graph.add_edge(Edge::new("b", "end").when(Condition::otherwise()));
    /// assert!(graph.check().warnings.is_empty());
    /// # Ok::<(), roomkit_graph::GraphError>(())
    /// ```
    pub fn check(&self) -> Validation {
        self.check_with(&Limits::default())
    }

    /// [`Graph::check`] against `limits`, as [`Graph::validate_with`]: a graph
    /// with too many nodes or edges gets that one mistake and no warning.
    /// Checks registered by other crates come on top with [`Checks::check`].
    pub fn check_with(&self, limits: &Limits) -> Validation {
        Checks::new().check(self, limits)
    }

    /// What the graph's subgraph nodes run, in node order (those whose
    /// `graph_id` or `version` cannot be read are left out: `validate`
    /// reports them), so whoever keeps graphs can check that each is there
    /// ([`SubgraphRef::missing`](crate::SubgraphRef::missing)).
    ///
    /// ```
    /// use roomkit_graph::{Graph, Node, SubgraphRef, Trigger};
    /// use serde_json::json;
    ///
    /// let mut graph = Graph::new("publish", "Publish", Trigger::manual());
    /// graph.add_node(Node::new("check", "subgraph").with_config(json!({"graph_id": "review", "version": 3})))?;
    /// let [target] = graph.subgraph_refs().try_into().expect("one");
    /// assert_eq!((target.node_id.as_str(), target.graph_id.as_str(), target.version), ("check", "review", Some(3)));
    /// assert!(target.missing(Some(3), "stored").is_none());
    /// let missing = target.missing(Some(2), "stored").expect("no version 3");
    /// assert_eq!(missing.message, "node \"check\": graph \"review\" has no version 3 stored (the newest is 2)");
    /// let missing = target.missing(None, "stored").expect("no such graph");
    /// assert_eq!(missing.message, "node \"check\": graph \"review\" is not stored");
    /// # Ok::<(), roomkit_graph::GraphError>(())
    /// ```
    pub fn subgraph_refs(&self) -> Vec<crate::SubgraphRef> {
        self.nodes()
            .iter()
            .filter(|node| node.node_type == super::NodeType::Subgraph)
            .filter_map(|node| {
                let target = crate::engine::SubgraphTarget::read(node).ok()?;
                Some(crate::SubgraphRef {
                    node_id: node.id.clone(),
                    graph_id: target.graph_id,
                    version: target.version,
                })
            })
            .collect()
    }

    /// [`Graph::validate`], as an error when anything is wrong.
    pub fn validate_or_raise(&self) -> Result<(), GraphError> {
        let errors = self.validate();
        if errors.is_empty() { Ok(()) } else { Err(GraphError::Invalid(errors)) }
    }

    /// Reads a graph from JSON text.
    pub fn from_json(text: &str) -> Result<Self, GraphError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Reads a graph from a JSON value (one nested deeper than JSON text may
    /// be, [`MAX_READ_DEPTH`](crate::limits::MAX_READ_DEPTH) levels, is refused).
    pub fn from_value(value: Value) -> Result<Self, GraphError> {
        let depth = limits::depth(&value);
        if depth > MAX_READ_DEPTH {
            limits::dispose(value);
            return Err(GraphError::TooDeep { depth, limit: MAX_READ_DEPTH });
        }
        Ok(serde_json::from_value(value)?)
    }

    /// Writes the graph as compact JSON text.
    pub fn to_json(&self) -> String {
        Value::from(self).to_string()
    }

    /// Writes the graph as indented JSON text.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&Value::from(self)).unwrap_or_default()
    }
}

impl From<&Graph> for Value {
    fn from(graph: &Graph) -> Value {
        // Every field of a graph is plain JSON data, so this cannot fail.
        serde_json::to_value(graph).unwrap_or(Value::Null)
    }
}

/// How many runs of a graph are driven at once: at most `limit` per key,
/// the key rendered from each run's trigger data when it starts (one key for
/// every run without a `key`). The others wait their turn, queued, in the
/// order they were started; a run waiting on a person, a timer or a child
/// run holds no place.
///
/// ```
/// use roomkit_graph::{Concurrency, Graph};
/// use serde_json::json;
///
/// let graph: Graph = serde_json::from_value(json!({"id": "g", "name": "G", "trigger": {"type": "manual"},
///     "concurrency": {"limit": 3, "key": "{{trigger.customer}}"}, "nodes": [], "edges": []})).unwrap();
/// let concurrency = graph.concurrency.as_ref().unwrap();
/// assert_eq!(concurrency.limit, 3);
/// assert_eq!(concurrency.key_for(&json!({"customer": "acme"})).unwrap(), "acme");
/// assert_eq!(Concurrency { limit: 1, key: None }.key_for(&json!({})).unwrap(), "");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// At most this many runs per key are driven at once (1 or more).
    pub limit: u32,
    /// What keys the runs: a template over the trigger data, such as
    /// `{{trigger.customer}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Concurrency {
    /// The key of a run started with `trigger`: its template rendered over
    /// the trigger data (empty without a template).
    ///
    /// # Errors
    ///
    /// When the key is not a template.
    pub fn key_for(&self, trigger: &Value) -> Result<String, crate::TemplateError> {
        let Some(key) = &self.key else { return Ok(String::new()) };
        let mut context = crate::Context::new("start");
        context.set_output("start", serde_json::json!({ "input": trigger }));
        crate::Template::parse(key)?.render(&context)
    }
}

/// The JSON shape of a graph, checked for duplicate node ids after reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a graph: a JSON object with id, name, trigger, nodes and edges")]
struct GraphJson {
    id: String,
    name: String,
    trigger: Trigger,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "one")]
    version: u64,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default, deserialize_with = "step_count")]
    max_steps: Option<u64>,
    #[serde(default)]
    concurrency: Option<Concurrency>,
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(default)]
    edges: Vec<Edge>,
}

fn one() -> u64 {
    1
}

/// A graph's `max_steps`: a whole number of steps, 0 or more (0 is read, and
/// reported by [`Graph::validate`]); null is none.
fn step_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) if number.as_u64().is_some() => Ok(number.as_u64()),
        Some(other) => {
            let shown = match &other {
                Value::Number(number) => number.to_string(),
                Value::String(_) => "a string".to_owned(),
                Value::Bool(_) => "a boolean".to_owned(),
                Value::Array(_) => "a list".to_owned(),
                _ => "an object".to_owned(),
            };
            limits::dispose(other);
            Err(serde::de::Error::custom(format!(
                "max_steps must be a whole number of steps such as 1000, not {shown}"
            )))
        }
    }
}

impl<'de> Deserialize<'de> for Graph {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = GraphJson::deserialize(deserializer)?;
        let mut graph = Graph {
            id: json.id,
            name: json.name,
            trigger: json.trigger,
            description: json.description,
            version: json.version,
            metadata: json.metadata,
            max_steps: json.max_steps,
            concurrency: json.concurrency,
            nodes: Vec::with_capacity(json.nodes.len()),
            edges: json.edges,
            index: NodeIndex::default(),
        };
        graph.add_nodes(json.nodes).map_err(serde::de::Error::custom)?;
        Ok(graph)
    }
}
