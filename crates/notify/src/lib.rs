//! roomkit-graph-notify: the `notification` node handler of roomkit-graph, with
//! real delivery channels: webhooks, Slack incoming webhooks and email over
//! SMTP.
//!
//! A notification node names a channel and a template:
//! `{"channel": "ops-slack", "template": "Published: {{draft.output.title}}"}`.
//! The [`NotificationHandler`] renders the template from the run's context,
//! delivers it with a time limit and retries with backoff, and reports each
//! attempt as a custom event (`notification_failed`, `notification_sent`).
//!
//! - [`Channels`]: the configured channels by name, built in code or loaded
//!   from a JSON file with [`Channels::from_path`] (its format:
//!   [the channels file](Channels#the-channels-file)).
//! - [`WebhookChannel`], [`SlackChannel`], [`EmailChannel`]: the built-in
//!   kinds; [`Channel`] for others.
//! - [`NotificationHandler`]: the node handler; [`DeliveryPolicy`]: attempts,
//!   backoff and time limit.
//! - [`NotificationCheck`] ([`NotificationHandler::graph_check`]): a graph's
//!   notification nodes checked against the channels before any run, in the
//!   [`Checks`](roomkit_graph::Checks) registered beside the handler.
//! - Errors: [`ChannelsError`] (loading), [`ConfigError`] (a node's
//!   configuration), [`DeliveryError`] (one attempt), [`NotificationError`]
//!   (the node).
//!
//! Secrets (Slack webhook URLs, webhook headers, SMTP passwords) may come from
//! environment variables; they never appear in Debug output, errors or
//! events.
//!
//! # Quick start
//!
//! ```
//! use roomkit_graph::{Checks, Graph, Handlers, Limits, Workflow};
//! use roomkit_graph_notify::{Channels, NotificationHandler};
//!
//! let channels = Channels::from_json_with_env(
//!     r#"{"channels": {
//!         "ops-slack": {"kind": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"},
//!         "mail": {"kind": "email", "smtp_host": "smtp.example.com", "tls": "starttls",
//!                  "from": "Workflows <robot@example.com>", "to": ["oncall@example.com"]}
//!     }}"#,
//!     // `Channels::from_path` reads the process's environment instead.
//!     |var| (var == "SLACK_WEBHOOK_URL").then(|| "https://hooks.slack.com/services/T0/B0/X".to_owned()),
//! )?;
//! let handler = NotificationHandler::new(channels);
//!
//! let graph = Graph::from_json(r#"{
//!     "id": "publish", "name": "Publish", "trigger": {"type": "manual"},
//!     "nodes": [
//!         {"id": "start", "type": "start"},
//!         {"id": "announce", "type": "notification",
//!          "config": {"channel": "slack", "template": "Published: {{trigger.title}}"}},
//!         {"id": "end", "type": "end"}
//!     ],
//!     "edges": [{"source": "start", "target": "announce"}, {"source": "announce", "target": "end"}]
//! }"#)?;
//! let checks = Checks::new().with(handler.graph_check());
//! assert!(checks.check(&graph, &Limits::default()).is_valid());
//! let workflow = Workflow::new(graph, Handlers::builtin().with("notification", handler));
//! # drop(workflow);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod channel;
mod check;
mod config;
mod delivery;
mod email;
mod error;
mod handler;
mod http;
mod secret;
mod settings;
mod slack;
mod webhook;

pub use channel::{Channel, Notification};
pub use check::NotificationCheck;
pub use config::Channels;
pub use delivery::DeliveryPolicy;
pub use email::{EmailChannel, SmtpTls, message_id};
pub use error::{ChannelsError, ConfigError, DeliveryError, NotificationError};
pub use handler::NotificationHandler;
pub use lettre::message::Mailbox;
pub use reqwest::Url;
pub use reqwest::header::{HeaderName, HeaderValue};
pub use secret::Secret;
pub use slack::SlackChannel;
pub use webhook::WebhookChannel;
