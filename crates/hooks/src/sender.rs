//! [`Sender`]: delivers the outbox, a batch of due deliveries at a time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream;
use roomkit_graph_store::{
    ClaimedDelivery, HookAttempt, HookStore, Millis, StoreError, next_attempt_at, now_millis,
};
use roomkit_graph_triggers::sign_timestamped;

use crate::address::{PublicOnly, is_public};

/// The header naming the delivery (the same on every attempt).
pub const DELIVERY_HEADER: &str = "x-roomkit-delivery";

/// The header naming the event (`run.completed`...).
pub const EVENT_HEADER: &str = "x-roomkit-event";

/// Attempts at deliveries, by event and outcome (delivered, retrying,
/// failed), counted through the `metrics` facade.
pub const HOOK_ATTEMPTS: &str = "roomkit_hook_attempts_total";

/// How many bytes of a refusing receiver's answer are kept with the attempt.
const KEPT_ANSWER: usize = 200;

/// How a [`Sender`] works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderOptions {
    /// How often the outbox is looked at when it had nothing due.
    pub poll: Duration,
    /// How many deliveries are taken, and attempted at once, at a time.
    pub concurrency: usize,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// Whether hooks may reach private addresses (loopback, the local
    /// network, link-local): for a server whose receivers are on its own
    /// network, and whose tokens that may change things are trusted with it.
    pub private_addresses: bool,
}

impl Default for SenderOptions {
    /// Every second, 8 at once, 10 s to answer, public addresses only.
    fn default() -> Self {
        SenderOptions {
            poll: Duration::from_secs(1),
            concurrency: 8,
            timeout: Duration::from_secs(10),
            private_addresses: false,
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
        let mut client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roomkit-graph-hooks/", env!("CARGO_PKG_VERSION")));
        if !options.private_addresses {
            client = client.dns_resolver(PublicOnly);
        }
        let client = client.build()?;
        Ok(Sender { store, client, options })
    }

    /// Delivers what falls due until `stop` completes: a round at a time,
    /// looking again at once after a full round, after
    /// [`SenderOptions::poll`] otherwise. A store that fails is logged and
    /// tried at the next poll. Stopping drops the attempts under way (their
    /// deliveries are taken again once their hold lapses).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let sent = tokio::select! {
                () = &mut stop => return,
                sent = self.send_due() => sent,
            };
            let pause = match sent {
                Ok(sent) if sent >= self.options.concurrency.max(1) => Duration::ZERO,
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

    /// Takes the deliveries due now ([`SenderOptions::concurrency`] at
    /// most, all attempted at once, so each is held for one timeout and a
    /// margin), attempts them and records each attempt: how many were
    /// attempted.
    ///
    /// # Errors
    ///
    /// When the store cannot be read; an attempt that cannot be recorded is
    /// logged (the delivery is taken again when its hold lapses).
    pub async fn send_due(&self) -> Result<usize, StoreError> {
        let hold =
            Millis::try_from(self.options.timeout.as_millis()).unwrap_or(Millis::MAX).saturating_add(5_000);
        let round = self.options.concurrency.max(1);
        let claimed = self.store.claim_deliveries(now_millis(), hold, round).await?;
        let count = claimed.len();
        stream::iter(claimed)
            .for_each_concurrent(round, |claimed| async move {
                let attempt = self.attempt(&claimed).await;
                let delivery = &claimed.delivery;
                let next = if attempt.delivered() {
                    None
                } else {
                    next_attempt_at(delivery.created_at, attempt_count(&claimed), now_millis())
                };
                let outcome = match (attempt.delivered(), next) {
                    (true, _) => "delivered",
                    (false, Some(_)) => "retrying",
                    (false, None) => "failed",
                };
                if next.is_none() && !attempt.delivered() {
                    tracing::warn!(delivery = %delivery.delivery_id, "a hook's delivery failed for good");
                }
                match self.store.record_attempt(&claimed, &attempt, next).await {
                    Ok(true) => {
                        metrics::counter!(HOOK_ATTEMPTS, "event" => delivery.event.as_str(), "outcome" => outcome)
                            .increment(1);
                    }
                    Ok(false) => tracing::warn!(
                        delivery = %delivery.delivery_id,
                        "a hook's delivery attempt outlasted its hold: another process took the delivery"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, delivery = %delivery.delivery_id, "cannot record a hook's delivery attempt");
                    }
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
        if let Some(refused) = self.refused_address(&claimed.url) {
            return HookAttempt { at, status_code: None, error: Some(refused), duration_ms: 0 };
        }
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

impl Sender {
    /// Why a URL naming its host by a private address is not sent to (names
    /// are checked as they are resolved, by [`PublicOnly`]).
    fn refused_address(&self, url: &str) -> Option<String> {
        if self.options.private_addresses {
            return None;
        }
        let url = reqwest::Url::parse(url).ok()?;
        let host = url.host_str()?;
        // An IPv6 host is written in brackets; a name does not parse.
        let address: IpAddr = host.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        (!is_public(address)).then(|| {
            format!(
                "{address} is a private address: hooks reach private addresses only when the server allows \
                 them (--hooks-to-private-addresses)"
            )
        })
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
