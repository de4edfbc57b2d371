//! The webhook channel: a JSON POST to any URL.

use std::fmt;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use crate::channel::{Channel, Notification};
use crate::error::DeliveryError;
use crate::http;

/// Posts each notification as JSON to a URL:
///
/// ```json
/// {"run_id": "…", "node_id": "publish", "channel": "hooks", "text": "Published: …",
///  "subject": "…", "to": ["…"], "idempotency_key": "run/publish/1", "attempt": 1}
/// ```
///
/// (`subject` and `to` only when set) with `Content-Type: application/json`
/// and an `Idempotency-Key` header equal to the node's
/// [`idempotency_key`](roomkit_graph::Scope::idempotency_key), so a receiver can
/// drop the copies that retries send. Any 2xx answer is success.
///
/// The URL and the header values are secrets: Debug output shows only the
/// URL's host.
///
/// ```
/// use roomkit_graph_notify::WebhookChannel;
/// use roomkit_graph_notify::{HeaderName, HeaderValue};
///
/// let hook = WebhookChannel::new("https://hooks.example.com/T0/secret".parse()?)
///     .with_header(HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer s3cr3t"));
/// let shown = format!("{hook:?}");
/// assert!(shown.contains("hooks.example.com"));
/// assert!(!shown.contains("secret") && !shown.contains("s3cr3t"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WebhookChannel {
    url: Url,
    headers: HeaderMap,
}

impl WebhookChannel {
    /// A webhook posting to `url`.
    pub fn new(url: Url) -> Self {
        WebhookChannel { url, headers: HeaderMap::new() }
    }

    /// Adds a header to every request (its value is treated as a secret).
    pub fn with_header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.append(name, value);
        self
    }

    /// The body posted for `notification`.
    ///
    /// ```
    /// use roomkit_graph_notify::{Notification, WebhookChannel};
    /// use serde_json::json;
    ///
    /// let notification = Notification::new("hooks", "Published").for_run("r1", "publish", "r1/publish/1");
    /// assert_eq!(
    ///     WebhookChannel::body(&notification),
    ///     json!({"run_id": "r1", "node_id": "publish", "channel": "hooks", "text": "Published",
    ///            "idempotency_key": "r1/publish/1", "attempt": 1})
    /// );
    /// ```
    pub fn body(notification: &Notification) -> Value {
        let mut body = Map::new();
        body.insert("run_id".into(), json!(notification.run_id));
        body.insert("node_id".into(), json!(notification.node_id));
        body.insert("channel".into(), json!(notification.channel));
        body.insert("text".into(), json!(notification.text));
        if let Some(subject) = &notification.subject {
            body.insert("subject".into(), json!(subject));
        }
        if !notification.to.is_empty() {
            body.insert("to".into(), json!(notification.to));
        }
        body.insert("idempotency_key".into(), json!(notification.idempotency_key));
        body.insert("attempt".into(), json!(notification.attempt));
        Value::Object(body)
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn kind(&self) -> &str {
        "webhook"
    }

    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let mut headers = self.headers.clone();
        if !notification.idempotency_key.is_empty() {
            let key = HeaderValue::from_str(&notification.idempotency_key).map_err(|_| {
                DeliveryError::Invalid(format!(
                    "the idempotency key {:?} cannot be sent as a header",
                    notification.idempotency_key
                ))
            })?;
            headers.insert(HeaderName::from_static("idempotency-key"), key);
        }
        let body = serde_json::to_vec(&WebhookChannel::body(notification))
            .map_err(|error| DeliveryError::Other(format!("cannot encode the body: {error}")))?;
        let answer = http::post_json(&self.url, &headers, body).await?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(DeliveryError::Status { status: answer.status, body: answer.body })
        }
    }

    fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![self.url.as_str()];
        secrets.extend(self.headers.values().filter_map(|value| value.to_str().ok()));
        secrets
    }
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("url", &http::redacted(&self.url))
            .field("headers", &self.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>())
            .finish()
    }
}
