//! The errors of this crate: one enum per layer.
//!
//! - [`ChannelsError`]: a channels file (or a channel built in code) is wrong.
//! - [`ConfigError`]: a notification node's configuration is wrong.
//! - [`DeliveryError`]: one attempt at delivering a notification failed.
//! - [`NotificationError`]: why a notification node failed; it becomes the
//!   node's [`HandlerError`](roomkit_graph::HandlerError).
//!
//! None of them ever holds a secret (a Slack webhook URL, a password, a header
//! value): they name the channel, the field and the environment variable.

use std::path::PathBuf;
use std::time::Duration;

/// Why channels could not be loaded or built.
///
/// ```
/// use roomkit_graph_notify::{Channels, ChannelsError};
///
/// let error = Channels::from_json_with_env(
///     r#"{"channels": {"ops": {"kind": "slack", "webhook_url_env": "OPS_SLACK"}}}"#,
///     |_| None,
/// )
/// .unwrap_err();
/// assert!(matches!(error, ChannelsError::MissingEnv { ref var, .. } if var == "OPS_SLACK"));
/// assert_eq!(
///     error.to_string(),
///     "channel \"ops\": webhook_url_env: the environment variable OPS_SLACK is not set"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelsError {
    /// The file could not be read.
    #[error("cannot read the channels file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A mistake inside the file at `path`.
    #[error("{}: {inner}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The mistake.
        inner: Box<ChannelsError>,
    },
    /// The text is not JSON.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The document is not `{"channels": {NAME: {...}, ...}}`.
    #[error("{0}")]
    Shape(String),
    /// A channel's `kind` is missing or not one of webhook, slack, email.
    #[error("channel {channel:?}: kind: {found} is not a channel kind (webhook, slack or email)")]
    UnknownKind {
        /// The channel.
        channel: String,
        /// What was found, as JSON (`null` when missing).
        found: String,
    },
    /// A field the channel's kind needs is absent.
    #[error("channel {channel:?}: {field}: required for kind {kind}")]
    MissingField {
        /// The channel.
        channel: String,
        /// The channel's kind.
        kind: &'static str,
        /// The field (or `a|b` when either may be given).
        field: String,
    },
    /// A field the channel's kind does not have (a typo, often).
    #[error("channel {channel:?}: {field}: not a field of kind {kind}")]
    UnknownField {
        /// The channel.
        channel: String,
        /// The channel's kind.
        kind: &'static str,
        /// The field.
        field: String,
    },
    /// Two fields that exclude each other are both given.
    #[error("channel {channel:?}: {field} and {other}: give one or the other")]
    Conflict {
        /// The channel.
        channel: String,
        /// One field.
        field: String,
        /// The other.
        other: String,
    },
    /// A field has a value of the wrong type or form.
    #[error("channel {channel:?}: {field}: {problem}")]
    InvalidField {
        /// The channel.
        channel: String,
        /// The field.
        field: String,
        /// What is wrong (never the value of a secret).
        problem: String,
    },
    /// A field names an environment variable that is not set (or not UTF-8).
    #[error("channel {channel:?}: {field}: the environment variable {var} is not set")]
    MissingEnv {
        /// The channel.
        channel: String,
        /// The field naming the variable.
        field: String,
        /// The variable.
        var: String,
    },
}

impl ChannelsError {
    pub(crate) fn invalid(channel: &str, field: &str, problem: impl Into<String>) -> Self {
        ChannelsError::InvalidField {
            channel: channel.to_owned(),
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Why a notification node's configuration cannot be used.
///
/// ```
/// use roomkit_graph_notify::ConfigError;
///
/// let error = ConfigError::UnknownChannel { channel: "pager".into(), known: vec!["ops-slack".into()] };
/// assert_eq!(error.to_string(), "channel \"pager\" is not configured (configured: ops-slack)");
/// assert_eq!(error.field(), "channel");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No `channel` field, or not a string.
    #[error("channel: a notification node needs a channel (the name of a configured channel)")]
    MissingChannel,
    /// No channel of that name, nor exactly one of that kind.
    #[error("channel {channel:?} is not configured (configured: {})", list(known))]
    UnknownChannel {
        /// The name asked for.
        channel: String,
        /// The configured channels' names.
        known: Vec<String>,
    },
    /// The name is a kind that several channels share.
    #[error("channel {channel:?} is ambiguous: it is the kind of {}; name one of them", list(candidates))]
    AmbiguousChannel {
        /// The kind asked for.
        channel: String,
        /// The channels of that kind.
        candidates: Vec<String>,
    },
    /// No `template` field.
    #[error("template: a notification node needs a template (the text to send)")]
    MissingTemplate,
    /// A field has the wrong type or form.
    #[error("{field}: {problem}")]
    InvalidField {
        /// The field, such as `delivery.attempts`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    /// The configuration field at fault: `channel`, `template`, `to`,
    /// `delivery.backoff`...
    pub fn field(&self) -> &str {
        match self {
            ConfigError::MissingChannel
            | ConfigError::UnknownChannel { .. }
            | ConfigError::AmbiguousChannel { .. } => "channel",
            ConfigError::MissingTemplate => "template",
            ConfigError::InvalidField { field, .. } => field,
        }
    }

    pub(crate) fn invalid(field: &str, problem: impl Into<String>) -> Self {
        ConfigError::InvalidField { field: field.to_owned(), problem: problem.into() }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// Why one attempt at delivering a notification failed.
///
/// ```
/// use roomkit_graph_notify::DeliveryError;
///
/// let error = DeliveryError::Status { status: 503, body: "busy".into() };
/// assert_eq!(error.to_string(), "the server answered 503: busy");
/// assert!(error.is_retryable());
/// assert!(!DeliveryError::Invalid("no recipient".into()).is_retryable());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The channel did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server could not be reached or the connection broke: the
    /// client's error with its causes, as text so that the channel's secrets
    /// can be masked in it.
    #[error("cannot reach the server: {0}")]
    Connect(String),
    /// An HTTP server answered with a status other than success.
    #[error("the server answered {status}{}", body_suffix(body))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// Slack answered 200 but not `ok`.
    #[error("Slack answered {body:?} instead of \"ok\"")]
    SlackRejected {
        /// The start of the answer's body.
        body: String,
    },
    /// The SMTP server refused (4xx: transient, 5xx: permanent).
    #[error("the SMTP server refused: {0}")]
    Smtp(String),
    /// The notification cannot be sent as it is (a malformed address, no
    /// recipient); trying again would not help.
    #[error("{0}")]
    Invalid(String),
    /// Any other failure of a channel.
    #[error("{0}")]
    Other(String),
}

impl DeliveryError {
    /// Whether another attempt could succeed: every failure but
    /// [`DeliveryError::Invalid`].
    pub fn is_retryable(&self) -> bool {
        !matches!(self, DeliveryError::Invalid(_))
    }

    /// The same error with every one of `secrets` in its text replaced by `***`.
    pub(crate) fn masked(self, secrets: &[&str]) -> Self {
        let mask = |text: String| crate::secret::mask(&text, secrets);
        match self {
            DeliveryError::Timeout(limit) => DeliveryError::Timeout(limit),
            DeliveryError::Connect(text) => DeliveryError::Connect(mask(text)),
            DeliveryError::Status { status, body } => DeliveryError::Status { status, body: mask(body) },
            DeliveryError::SlackRejected { body } => DeliveryError::SlackRejected { body: mask(body) },
            DeliveryError::Smtp(text) => DeliveryError::Smtp(mask(text)),
            DeliveryError::Invalid(text) => DeliveryError::Invalid(mask(text)),
            DeliveryError::Other(text) => DeliveryError::Other(mask(text)),
        }
    }
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() { String::new() } else { format!(": {body}") }
}

/// Why a notification node failed.
///
/// It becomes the node's [`HandlerError::Execution`](roomkit_graph::HandlerError)
/// (its source), which the engine retries per the node's `retry` policy when
/// [it may pass](NotificationError::is_retryable).
///
/// ```
/// use roomkit_graph_notify::{DeliveryError, NotificationError};
///
/// let error = NotificationError::Failed {
///     channel: "ops-slack".into(),
///     attempts: 3,
///     last: DeliveryError::Status { status: 500, body: String::new() },
/// };
/// assert_eq!(
///     error.to_string(),
///     "notification channel \"ops-slack\" failed after 3 attempts: the server answered 500"
/// );
/// assert!(roomkit_graph::HandlerError::from(error).is_retryable());
///
/// let refused = NotificationError::Failed {
///     channel: "mail".into(),
///     attempts: 1,
///     last: DeliveryError::Invalid("no recipient".into()),
/// };
/// assert!(!roomkit_graph::HandlerError::from(refused).is_retryable(), "no attempt would do better");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// The node's configuration is wrong. (The engine's error names the node
    /// already, so the message does not.)
    #[error("{source}")]
    Config {
        /// The node.
        node: String,
        /// What is wrong.
        source: ConfigError,
    },
    /// Every attempt failed.
    #[error(
        "notification channel {channel:?} failed after {attempts} attempt{}: {last}",
        if *attempts == 1 { "" } else { "s" }
    )]
    Failed {
        /// The channel.
        channel: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: DeliveryError,
    },
}

impl NotificationError {
    /// Whether running the node again may succeed: not with a wrong
    /// configuration, nor after a delivery [that cannot
    /// succeed](DeliveryError::is_retryable).
    pub fn is_retryable(&self) -> bool {
        match self {
            NotificationError::Config { .. } => false,
            NotificationError::Failed { last, .. } => last.is_retryable(),
        }
    }
}

impl From<NotificationError> for roomkit_graph::HandlerError {
    fn from(error: NotificationError) -> Self {
        let failed = roomkit_graph::HandlerError::execution(error.to_string());
        let failed = if error.is_retryable() { failed } else { failed.permanent() };
        failed.with_source(error)
    }
}
