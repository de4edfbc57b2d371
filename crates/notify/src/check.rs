//! Checking a graph's notification nodes against the configured channels,
//! before any run.

use std::sync::Arc;

use roomkit_graph::{Graph, GraphCheck, ValidationCode, ValidationError};

use crate::config::Channels;
use crate::settings::NodeSettings;

/// Checks a graph's `notification` nodes against the channels, with the
/// reader the handler uses: a missing or unknown channel, a missing template,
/// a malformed `to` or `delivery`. Each mistake has the code
/// `notification_config`, its node and field. Made by
/// [`NotificationHandler::graph_check`](crate::NotificationHandler::graph_check),
/// on the handler's channels.
///
/// ```
/// use roomkit_graph::{Graph, GraphCheck, Node, Trigger};
/// use roomkit_graph_notify::{Channels, NotificationHandler};
/// use serde_json::json;
///
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([
///     Node::new("start", "start"),
///     Node::new("tell", "notification").with_config(json!({"channel": "pager"})),
/// ])?;
/// let issues = NotificationHandler::new(Channels::new()).graph_check().check(&graph);
/// let found: Vec<(&str, &str)> =
///     issues.iter().map(|issue| (issue.node.as_deref().unwrap_or(""), issue.field.as_deref().unwrap_or(""))).collect();
/// assert_eq!(found, [("tell", "template"), ("tell", "channel")]);
/// assert_eq!(issues[1].code.as_str(), "notification_config");
/// assert_eq!(issues[1].message, "channel \"pager\" is not configured (configured: none)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct NotificationCheck {
    channels: Arc<Channels>,
}

impl NotificationCheck {
    /// A check against `channels`.
    pub(crate) fn new(channels: Arc<Channels>) -> Self {
        NotificationCheck { channels }
    }
}

impl GraphCheck for NotificationCheck {
    fn check(&self, graph: &Graph) -> Vec<ValidationError> {
        let mut issues = Vec::new();
        for node in graph.nodes().iter().filter(|node| node.node_type.as_str() == "notification") {
            let mut errors = NodeSettings::parse(&node.config).err().unwrap_or_default();
            if let Some(channel) = node.config.get("channel").and_then(|channel| channel.as_str())
                && !channel.is_empty()
                && let Err(error) = self.channels.resolve(channel)
            {
                errors.push(error);
            }
            issues.extend(errors.into_iter().map(|error| ValidationError {
                code: ValidationCode::NotificationConfig,
                node: Some(node.id.clone()),
                field: Some(error.field().to_owned()),
                message: error.to_string(),
            }));
        }
        issues
    }
}
