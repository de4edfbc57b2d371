//! [`Sender`]: delivers the outbox, a batch of due deliveries at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream;
use roomkit_graph_store::{
    ClaimedDelivery, HookAttempt, HookStore, Millis, StoreError, next_attempt_at, now_millis,
};
use roomkit_graph_triggers::sign_timestamped;

/// The header naming the delivery (the same on every attempt).
pub const DELIVERY_HEADER: &str = "x-roomkit-delivery";

/// The header naming the event (`run.completed`...).
pub const EVENT_HEADER: &str = "x-roomkit-event";

/// How many bytes of a refusing receiver's answer are kept with the attempt.
const KEPT_ANSWER: usize = 200;

/// How a [`Sender`] works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderOptions {
    /// How often the outbox is looked at when it had nothing due.
    pub poll: Duration,
    /// How many deliveries are taken at a time.
    pub batch: usize,
    /// How many are attempted at once.
    pub concurrency: usize,
    /// How long a receiver has to answer.
    pub timeout: Duration,
}

impl Default for SenderOptions {
    /// Every second, 32 at a time, 8 at once, 10 s to answer.
    fn default() -> Self {
        SenderOptions {
            poll: Duration::from_secs(1),
            batch: 32,
            concurrency: 8,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Delivers the deliveries of a store's outbox as they fall due, in any
/// number of processes sharing the store: each delivery is taken by one of
/// them at a time (and taken again if that one dies before recording its
/// attempt).
#[derive(Clone)]
pub struct Sender {
    store: Arc<dyn HookStore>,
    client: reqwest::Client,
    options: SenderOptions,
}

impl Sender {
    /// A sender of `store`'s outbox.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be made (no TLS roots on the machine).
    pub fn new(store: Arc<dyn HookStore>, options: SenderOptions) -> Result<Sender, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roomkit-graph-hooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { store, client, options })
    }

    /// Delivers what falls due until `stop` completes: a batch at a time,
    /// looking again at once after a full batch, after
    /// [`SenderOptions::poll`] otherwise. A store that fails is logged and
    /// tried at the next poll.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let pause = match self.send_due().await {
                Ok(sent) if sent >= self.options.batch => Duration::ZERO,
                Ok(_) => self.options.poll,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the hooks' outbox");
                    self.options.poll
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Takes the deliveries due now (a batch at most), attempts them and
    /// records each attempt: how many were attempted.
    ///
    /// # Errors
    ///
    /// When the store cannot be read; an attempt that cannot be recorded is
    /// logged (the delivery is taken again when its hold lapses).
    pub async fn send_due(&self) -> Result<usize, StoreError> {
        let hold =
            Millis::try_from(self.options.timeout.as_millis()).unwrap_or(Millis::MAX).saturating_add(5_000);
        let claimed = self.store.claim_deliveries(now_millis(), hold, self.options.batch).await?;
        let count = claimed.len();
        stream::iter(claimed)
            .for_each_concurrent(self.options.concurrency.max(1), |claimed| async move {
                let attempt = self.attempt(&claimed).await;
                let delivery = &claimed.delivery;
                let next = if attempt.delivered() {
                    None
                } else {
                    next_attempt_at(delivery.created_at, attempt_count(&claimed), now_millis())
                };
                if next.is_none() && !attempt.delivered() {
                    tracing::warn!(delivery = %delivery.delivery_id, "a hook's delivery failed for good");
                }
                if let Err(error) = self.store.record_attempt(&delivery.delivery_id, &attempt, next).await {
                    tracing::warn!(%error, delivery = %delivery.delivery_id, "cannot record a hook's delivery attempt");
                }
            })
            .await;
        Ok(count)
    }

    /// POSTs a delivery, signed now.
    async fn attempt(&self, claimed: &ClaimedDelivery) -> HookAttempt {
        let delivery = &claimed.delivery;
        let body = delivery.body();
        let at = now_millis();
        let timestamp = at / 1_000;
        let signature = sign_timestamped(claimed.secret.as_bytes(), timestamp, body.as_bytes());
        let started = Instant::now();
        let sent = self
            .client
            .post(&claimed.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &delivery.delivery_id)
            .header(EVENT_HEADER, delivery.event.as_str())
            .header(roomkit_graph_triggers::TIMESTAMP_HEADER, timestamp.to_string())
            .header(roomkit_graph_triggers::ROOMKIT_SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        let (status_code, error) = match sent {
            Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
            Ok(mut response) => {
                let status = response.status();
                let mut answer = Vec::new();
                while answer.len() < KEPT_ANSWER {
                    match response.chunk().await {
                        Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                answer.truncate(KEPT_ANSWER);
                let answer = String::from_utf8_lossy(&answer);
                let answer = answer.trim();
                let said = if answer.is_empty() { String::new() } else { format!(": {answer}") };
                (Some(status.as_u16()), Some(format!("the receiver answered {status}{said}")))
            }
            Err(error) => (None, Some(describe(&error))),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        HookAttempt { at, status_code, error, duration_ms }
    }
}

/// How many attempts a delivery has had once the one under way is counted.
fn attempt_count(claimed: &ClaimedDelivery) -> u32 {
    u32::try_from(claimed.delivery.attempts.len()).unwrap_or(u32::MAX).saturating_add(1)
}

/// Why a request got no answer, in a few words with its causes.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "the receiver did not answer in time"
    } else if error.is_connect() {
        "cannot connect to the receiver"
    } else {
        "the request failed"
    };
    let mut text = what.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
