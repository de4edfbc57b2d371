//! The `notification` node handler: render, deliver, retry, report.

use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph::{HandlerError, Node, NodeHandler, NodeResult, Scope, Signal};
use serde_json::{Value, json};

use crate::channel::{Channel, Notification};
use crate::check::NotificationCheck;
use crate::config::Channels;
use crate::delivery::DeliveryPolicy;
use crate::error::{ConfigError, DeliveryError, NotificationError};
use crate::settings::{NodeSettings, recipients};

/// Serves `notification` nodes:
///
/// ```json
/// {"id": "publish", "type": "notification", "config": {
///   "channel": "ops-slack",
///   "template": "Published: {{draft.output.title}}",
///   "subject": "Published {{draft.output.title}}",
///   "to": ["editor@example.com"],
///   "delivery": {"attempts": 3, "backoff": "500ms", "timeout": "10s"}
/// }}
/// ```
///
/// - `channel`: a configured channel's name, or a kind (`slack`, `email`,
///   `webhook`) when exactly one channel has it ([`Channels::resolve`]).
/// - `template`: the text, with `{{path}}` placeholders read from the run's
///   context.
/// - `subject` (email; a template too), `to` (an address, a comma-separated
///   list or a list, replacing the channel's recipients; a template too).
/// - `delivery`: see [`DeliveryPolicy`].
///
/// Each attempt is cut off after `delivery.timeout`; a failed one emits
/// `{"type": "notification_failed", "channel", "attempt", "error"}` and, after
/// a backoff on the workflow's clock, the next attempt follows. Success emits
/// `{"type": "notification_sent", "channel", "text"}` and completes the node
/// with `{"sent": true, "channel", "text", "attempts"}`. When every attempt
/// fails (or one fails in a way no retry can fix: a malformed address), the
/// node fails with a [`NotificationError`] naming the channel and the last
/// error. Secrets the channel holds are masked in every error and event.
///
/// ```
/// use roomkit_graph::{Edge, EngineStatus, Graph, GraphCheck, Handlers, Node, Trigger, WorkflowEngine};
/// use roomkit_graph_notify::{Channel, Channels, DeliveryError, Notification, NotificationHandler};
/// use serde_json::json;
///
/// /// Keeps notifications in memory.
/// #[derive(Debug, Default)]
/// struct Inbox(std::sync::Mutex<Vec<String>>);
///
/// #[async_trait::async_trait]
/// impl Channel for Inbox {
///     fn kind(&self) -> &str {
///         "inbox"
///     }
///     async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
///         self.0.lock().map_err(|_| DeliveryError::Other("poisoned".into()))?.push(notification.text.clone());
///         Ok(())
///     }
/// }
///
/// let mut graph = Graph::new("publish", "Publish", Trigger::manual());
/// graph.add_nodes([
///     Node::new("start", "start"),
///     Node::new("notify", "notification")
///         .with_config(json!({"channel": "team", "template": "Published: {{trigger.title}}"})),
///     Node::new("end", "end"),
/// ])?;
/// graph.add_edges([Edge::new("start", "notify"), Edge::new("notify", "end")]);
///
/// let handler = NotificationHandler::new(Channels::new().with("team", Inbox::default()));
/// assert!(handler.graph_check().check(&graph).is_empty());
/// let mut engine = WorkflowEngine::new(graph, Handlers::builtin().with("notification", handler));
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
/// assert_eq!(engine.run(json!({"title": "Q3 report"})).await?, EngineStatus::Completed);
/// assert_eq!(
///     engine.context().get("notify.output"),
///     Some(&json!({"sent": true, "channel": "team", "text": "Published: Q3 report", "attempts": 1}))
/// );
/// # Ok::<(), roomkit_graph::EngineError>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct NotificationHandler {
    channels: Arc<Channels>,
}

impl NotificationHandler {
    /// A handler delivering through `channels`.
    pub fn new(channels: Channels) -> Self {
        NotificationHandler { channels: Arc::new(channels) }
    }

    /// The channels it delivers through.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The check of a graph's notification nodes against these channels,
    /// for the [`Checks`](roomkit_graph::Checks) registered beside this
    /// handler (see [`NotificationCheck`]).
    pub fn graph_check(&self) -> NotificationCheck {
        NotificationCheck::new(Arc::clone(&self.channels))
    }
}

#[async_trait]
impl NodeHandler for NotificationHandler {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let config_error = |source| NotificationError::Config { node: node.id.clone(), source };
        let settings = scope.prepared(|node| NodeSettings::parse(&node.config));
        let settings = match settings.as_ref() {
            Ok(settings) => settings,
            Err(errors) => {
                let first = errors.first().cloned().unwrap_or(ConfigError::MissingChannel);
                return Err(config_error(first).into());
            }
        };
        let (name, channel) = self.channels.resolve(&settings.channel).map_err(config_error)?;
        let text = scope.render("template")?.ok_or_else(|| config_error(ConfigError::MissingTemplate))?;
        let notification = Notification {
            channel: name.to_owned(),
            run_id: scope.run_id().to_owned(),
            node_id: node.id.clone(),
            idempotency_key: scope.idempotency_key(),
            attempt: scope.attempt(),
            subject: scope.render("subject")?,
            to: recipients(scope.resolve("to")?.unwrap_or(Value::Null)).map_err(config_error)?,
            text,
        };
        let attempts = deliver(channel.as_ref(), &notification, &settings.policy, scope).await?;
        Ok(NodeResult::completed(json!({
            "sent": true,
            "channel": name,
            "text": notification.text,
            "attempts": attempts,
        })))
    }
}

/// Delivers `notification` within `policy`, emitting each outcome; how many
/// attempts it took.
async fn deliver(
    channel: &dyn Channel,
    notification: &Notification,
    policy: &DeliveryPolicy,
    scope: &Scope<'_>,
) -> Result<u32, NotificationError> {
    let name = notification.channel.as_str();
    let secrets = channel.secrets();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = tokio::time::timeout(policy.timeout, channel.deliver(notification))
            .await
            .unwrap_or(Err(DeliveryError::Timeout(policy.timeout)));
        let error = match outcome {
            Ok(()) => {
                scope.signal(Signal::NotificationSent {
                    channel: name.to_owned(),
                    text: notification.text.clone(),
                });
                return Ok(attempt);
            }
            Err(error) => error.masked(&secrets),
        };
        scope.emit(json!({
            "type": "notification_failed",
            "channel": name,
            "attempt": attempt,
            "error": error.to_string(),
        }));
        if attempt >= policy.attempts || !error.is_retryable() {
            return Err(NotificationError::Failed {
                channel: name.to_owned(),
                attempts: attempt,
                last: error,
            });
        }
        scope.clock().sleep(policy.wait_after(attempt)).await;
    }
}
