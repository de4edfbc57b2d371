//! What a delivery channel is: the [`Channel`] trait, the [`Notification`] it
//! delivers, and [`Secret`], which keeps credentials out of Debug output.

use std::fmt;

use async_trait::async_trait;

use crate::error::DeliveryError;

/// One notification, as a channel delivers it.
///
/// ```
/// use roomkit_graph_notify::Notification;
///
/// let notification = Notification::new("ops", "Deploy finished")
///     .with_subject("Deploy")
///     .with_to(vec!["oncall@example.com".into()]);
/// assert_eq!(notification.text, "Deploy finished");
/// assert_eq!(notification.attempt, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The configured channel's name.
    pub channel: String,
    /// The run that sends it.
    pub run_id: String,
    /// The notification node.
    pub node_id: String,
    /// Names this execution of the node (`run/node/attempt`): a receiver that
    /// has seen it already can drop the duplicate.
    pub idempotency_key: String,
    /// The runner's attempt at the node, from 1 (retries within the node keep
    /// the same attempt and key).
    pub attempt: u32,
    /// The rendered text.
    pub text: String,
    /// The rendered subject, for channels that have one (email).
    pub subject: Option<String>,
    /// Recipients that replace the channel's own (email, webhook); empty: the
    /// channel's.
    pub to: Vec<String>,
}

impl Notification {
    /// A notification of `text` through `channel`, outside any run.
    pub fn new(channel: impl Into<String>, text: impl Into<String>) -> Self {
        Notification {
            channel: channel.into(),
            run_id: String::new(),
            node_id: String::new(),
            idempotency_key: String::new(),
            attempt: 1,
            text: text.into(),
            subject: None,
            to: Vec::new(),
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the recipients.
    pub fn with_to(mut self, to: Vec<String>) -> Self {
        self.to = to;
        self
    }

    /// Sets the run, node and idempotency key.
    pub fn for_run(
        mut self,
        run_id: impl Into<String>,
        node_id: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        self.run_id = run_id.into();
        self.node_id = node_id.into();
        self.idempotency_key = key.into();
        self
    }
}

/// Somewhere notifications go: a webhook, a Slack incoming webhook, an SMTP
/// server, or a channel of the application's own.
///
/// One call to [`deliver`](Channel::deliver) is one attempt: the
/// [`NotificationHandler`](crate::NotificationHandler) times it out and tries
/// again.
///
/// ```
/// use roomkit_graph_notify::{Channel, Channels, DeliveryError, Notification};
///
/// /// Prints notifications to standard error.
/// #[derive(Debug)]
/// struct Stderr;
///
/// #[async_trait::async_trait]
/// impl Channel for Stderr {
///     fn kind(&self) -> &str {
///         "stderr"
///     }
///
///     async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
///         eprintln!("[{}] {}", notification.channel, notification.text);
///         Ok(())
///     }
/// }
///
/// let channels = Channels::new().with("console", Stderr);
/// assert_eq!(channels.names().collect::<Vec<_>>(), ["console"]);
/// ```
#[async_trait]
pub trait Channel: Send + Sync + fmt::Debug {
    /// The channel's kind: `webhook`, `slack`, `email`, or the application's own.
    fn kind(&self) -> &str;

    /// Makes one attempt at delivering `notification`.
    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError>;

    /// The secrets this channel holds (URLs with tokens, passwords, header
    /// values): they are masked in every error and event, whatever a server or
    /// a library puts in its messages.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
}
