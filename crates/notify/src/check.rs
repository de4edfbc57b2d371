//! Checking a graph's notification nodes against the configured channels,
//! before any run.

use std::fmt;

use roomkit_graph::Graph;

use crate::config::Channels;
use crate::error::ConfigError;
use crate::handler::NodeSettings;

/// One mistake of one notification node.
///
/// ```
/// use roomkit_graph::{Graph, Node, Trigger};
/// use roomkit_graph_notify::{Channels, check_graph};
/// use serde_json::json;
///
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([
///     Node::new("start", "start"),
///     Node::new("tell", "notification").with_config(json!({"channel": "pager"})),
/// ])?;
/// let issues = check_graph(&graph, &Channels::new());
/// let found: Vec<(&str, &str)> = issues.iter().map(|issue| (issue.node.as_str(), issue.field())).collect();
/// assert_eq!(found, [("tell", "template"), ("tell", "channel")]);
/// assert_eq!(issues[1].to_string(), "node \"tell\": channel \"pager\" is not configured (configured: none)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationIssue {
    /// The node.
    pub node: String,
    /// What is wrong.
    pub error: ConfigError,
}

impl NotificationIssue {
    /// The configuration field at fault (`channel`, `template`, `delivery.backoff`...).
    pub fn field(&self) -> &str {
        self.error.field()
    }
}

impl fmt::Display for NotificationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?}: {}", self.node, self.error)
    }
}

impl std::error::Error for NotificationIssue {}

/// Every mistake of `graph`'s `notification` nodes: a missing or unknown
/// channel, a missing template, a malformed `to` or `delivery`. Empty when
/// every node can run.
pub fn check_graph(graph: &Graph, channels: &Channels) -> Vec<NotificationIssue> {
    let mut issues = Vec::new();
    for node in graph.nodes().iter().filter(|node| node.node_type.as_str() == "notification") {
        let mut errors = NodeSettings::parse(&node.config).err().unwrap_or_default();
        if let Some(channel) = node.config.get("channel").and_then(|channel| channel.as_str())
            && !channel.is_empty()
            && let Err(error) = channels.resolve(channel)
        {
            errors.push(error);
        }
        issues.extend(errors.into_iter().map(|error| NotificationIssue { node: node.id.clone(), error }));
    }
    issues
}
