//! Nodes: one step of a workflow.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The kind of a node. Any name that is not one of the built-in kinds is a
/// [`NodeType::Custom`] type, served by a handler registered under that name.
///
/// ```
/// use roomkit_graph::NodeType;
///
/// assert_eq!(NodeType::from("human"), NodeType::Human);
/// assert_eq!(NodeType::from("webscrape"), NodeType::Custom("webscrape".into()));
/// assert_eq!(NodeType::Parallel.as_str(), "parallel");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// Entry point: receives the trigger data.
    Start,
    /// Marks the run complete.
    End,
    /// Runs one AI agent.
    Agent,
    /// Runs a multi-agent strategy.
    Orchestration,
    /// Pauses for a person's answer.
    Human,
    /// Sends a notification and continues.
    Notification,
    /// Transforms data, waits, or calls a registered function.
    Function,
    /// Runs its children concurrently and joins them.
    Parallel,
    /// Stores the boolean result of a condition.
    Condition,
    /// Reads a context value for multi-way branching.
    Switch,
    /// Records values from the context.
    Log,
    /// Runs another graph as a child run (the graphs of a
    /// [`Graphs`](crate::Graphs) registry).
    Subgraph,
    /// Any other type, served by a handler registered under its name.
    Custom(String),
}

impl NodeType {
    /// The name this type is written and registered under.
    pub fn as_str(&self) -> &str {
        match self {
            NodeType::Start => "start",
            NodeType::End => "end",
            NodeType::Agent => "agent",
            NodeType::Orchestration => "orchestration",
            NodeType::Human => "human",
            NodeType::Notification => "notification",
            NodeType::Function => "function",
            NodeType::Parallel => "parallel",
            NodeType::Condition => "condition",
            NodeType::Switch => "switch",
            NodeType::Log => "log",
            NodeType::Subgraph => "subgraph",
            NodeType::Custom(name) => name,
        }
    }
}

impl From<&str> for NodeType {
    fn from(name: &str) -> Self {
        match name {
            "start" => NodeType::Start,
            "end" => NodeType::End,
            "agent" => NodeType::Agent,
            "orchestration" => NodeType::Orchestration,
            "human" => NodeType::Human,
            "notification" => NodeType::Notification,
            "function" => NodeType::Function,
            "parallel" => NodeType::Parallel,
            "condition" => NodeType::Condition,
            "switch" => NodeType::Switch,
            "log" => NodeType::Log,
            "subgraph" => NodeType::Subgraph,
            other => NodeType::Custom(other.to_owned()),
        }
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NodeType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(NodeType::from(name.as_str()))
    }
}

/// One step of a workflow.
///
/// `config` holds the node's settings (what its handler reads), `metadata`
/// anything a UI or tool wants to keep with it, `parent` the parallel node that
/// runs it as a child.
///
/// ```
/// use roomkit_graph::{Node, NodeType};
/// use serde_json::json;
///
/// let node = Node::new("tag", "function")
///     .with_config(json!({"action": "set_context", "values": {"status": "open"}}));
/// assert_eq!(node.node_type, NodeType::Function);
/// assert_eq!(node.config["action"], "set_context");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within its graph; outputs are stored under it.
    pub id: String,
    /// What the node does.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// The node's settings.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Free-form data kept with the node.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The parallel node that runs this node as one of its children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl Node {
    /// A node with no configuration.
    pub fn new(id: impl Into<String>, node_type: impl Into<NodeType>) -> Self {
        Node {
            id: id.into(),
            node_type: node_type.into(),
            config: Map::new(),
            metadata: Map::new(),
            parent: None,
        }
    }

    /// Sets the configuration. A value that is not a JSON object leaves the
    /// configuration empty.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = match config {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self
    }

    /// Sets the metadata. A value that is not a JSON object leaves it empty.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = match metadata {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self
    }

    /// Makes this node a child of the parallel node `parent`.
    pub fn with_parent(mut self, parent: impl Into<String>) -> Self {
        self.parent = Some(parent.into());
        self
    }
}

impl From<String> for NodeType {
    fn from(name: String) -> Self {
        NodeType::from(name.as_str())
    }
}
