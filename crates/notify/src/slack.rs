//! The Slack channel: a Slack incoming webhook.

use std::fmt;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::channel::{Channel, Notification};
use crate::error::DeliveryError;
use crate::http;

/// Posts `{"text": …}` to a Slack incoming webhook. Slack answers 200 with the
/// body `ok` on success, and an error code (`invalid_payload`,
/// `no_service`…) otherwise.
///
/// The webhook URL is a credential: Debug output and errors never show it.
/// Subjects and recipients do not apply: the webhook posts where it was
/// created for.
///
/// ```
/// use roomkit_graph_notify::SlackChannel;
///
/// let slack = SlackChannel::new("https://hooks.slack.com/services/T0/B0/XXXX".parse()?);
/// assert_eq!(format!("{slack:?}"), "SlackChannel { webhook_url: \"https://hooks.slack.com/…\" }");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SlackChannel {
    webhook_url: Url,
}

impl SlackChannel {
    /// A channel posting to the incoming webhook `webhook_url`.
    pub fn new(webhook_url: Url) -> Self {
        SlackChannel { webhook_url }
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn kind(&self) -> &str {
        "slack"
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&json!({"text": notification.text}))
            .map_err(|error| DeliveryError::Other(format!("cannot encode the body: {error}")))?;
        let answer = http::post_json(&self.webhook_url, &HeaderMap::new(), body).await?;
        match answer.status {
            200 if answer.body == "ok" => Ok(()),
            200 => Err(DeliveryError::SlackRejected { body: answer.body }),
            status => Err(DeliveryError::Status { status, body: answer.body }),
        }
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.webhook_url.as_str()]
    }
}

impl fmt::Debug for SlackChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackChannel").field("webhook_url", &http::redacted(&self.webhook_url)).finish()
    }
}
