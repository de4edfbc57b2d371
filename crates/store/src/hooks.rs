//! Run-event hooks: an organization's subscriptions ([`Hook`]) to events of
//! its runs ([`HookEvent`]), and the deliveries of those events
//! ([`HookDelivery`]), kept in an outbox that each backend writes in the same
//! transaction as the step that caused them, one delivery per subscription
//! the event matches. [`HookStore`] keeps them; the rules every backend
//! shares (which entry is which event, what a delivery says, when the next
//! attempt is) are here.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{DeliveryCursor, Entry, Millis, Result, RunRecord, TranscriptEvent};

/// An event of a run a hook may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookEvent {
    /// The run completed.
    #[serde(rename = "run.completed")]
    RunCompleted,
    /// The run failed.
    #[serde(rename = "run.failed")]
    RunFailed,
    /// A node of the run began waiting (for a person, or a timer): one event
    /// per waiting point.
    #[serde(rename = "run.waiting")]
    RunWaiting,
    /// The run was cancelled.
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    /// An attempt of a node failed (it may be tried again).
    #[serde(rename = "node.failed")]
    NodeFailed,
}

impl HookEvent {
    /// Every event, in the order they are documented.
    pub const ALL: [HookEvent; 5] = [
        HookEvent::RunCompleted,
        HookEvent::RunFailed,
        HookEvent::RunWaiting,
        HookEvent::RunCancelled,
        HookEvent::NodeFailed,
    ];

    /// The event's name: `run.completed`, `run.failed`, `run.waiting`,
    /// `run.cancelled` or `node.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::RunCompleted => "run.completed",
            HookEvent::RunFailed => "run.failed",
            HookEvent::RunWaiting => "run.waiting",
            HookEvent::RunCancelled => "run.cancelled",
            HookEvent::NodeFailed => "node.failed",
        }
    }

    /// The event named `name`.
    ///
    /// ```
    /// # use roomkit_graph_store::HookEvent;
    /// assert_eq!(HookEvent::parse("run.failed"), Some(HookEvent::RunFailed));
    /// assert_eq!(HookEvent::parse("run.started"), None);
    /// assert!(HookEvent::ALL.iter().all(|event| HookEvent::parse(event.as_str()) == Some(*event)));
    /// ```
    pub fn parse(name: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|event| event.as_str() == name)
    }

    /// The event a transcript entry is, if any.
    ///
    /// ```
    /// # use roomkit_graph_store::{Entry, HookEvent};
    /// assert_eq!(HookEvent::of(&Entry::RunCompleted), Some(HookEvent::RunCompleted));
    /// let failed = Entry::NodeFailed { node_id: "a".into(), attempt: 1, error: "boom".into() };
    /// assert_eq!(HookEvent::of(&failed), Some(HookEvent::NodeFailed));
    /// assert_eq!(HookEvent::of(&Entry::WaitingClosed { node_id: "a".into() }), None);
    /// ```
    pub fn of(entry: &Entry) -> Option<HookEvent> {
        match entry {
            Entry::RunCompleted => Some(HookEvent::RunCompleted),
            Entry::RunFailed { .. } => Some(HookEvent::RunFailed),
            Entry::NodeWaiting { .. } => Some(HookEvent::RunWaiting),
            Entry::RunCancelled { .. } => Some(HookEvent::RunCancelled),
            Entry::NodeFailed { .. } => Some(HookEvent::NodeFailed),
            _ => None,
        }
    }
}

/// A subscription of an organization to events of its runs: each event it
/// matches is POSTed to `url`, signed with `secret`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Names the hook (`hook_` and 16 hex digits).
    pub hook_id: String,
    /// The organization whose runs it hears.
    pub org: String,
    /// Where the events go (http or https).
    pub url: String,
    /// The events it hears (at least one).
    pub events: Vec<HookEvent>,
    /// Only the runs of this graph, when set (their child runs are runs of
    /// their own graphs).
    pub graph_id: Option<String>,
    /// The key of the deliveries' HMAC-SHA256 signatures.
    pub secret: String,
    /// When it was made.
    pub created_at: Millis,
}

/// Never shows the secret.
impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("hook_id", &self.hook_id)
            .field("org", &self.org)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("graph_id", &self.graph_id)
            .field("secret", &"<secret>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl Hook {
    /// Its events as stored: each name between commas, so that one is
    /// found with a plain substring search (`,run.failed,`).
    ///
    /// ```
    /// # use roomkit_graph_store::{Hook, HookEvent};
    /// let events = [HookEvent::RunFailed, HookEvent::NodeFailed];
    /// let text = Hook::events_text(&events);
    /// assert_eq!(text, ",run.failed,node.failed,");
    /// assert_eq!(Hook::read_events(&text), events);
    /// ```
    pub fn events_text(events: &[HookEvent]) -> String {
        events.iter().fold(String::from(","), |text, event| text + event.as_str() + ",")
    }

    /// The events stored as [`Hook::events_text`] (names it does not know
    /// are skipped).
    pub fn read_events(text: &str) -> Vec<HookEvent> {
        text.split(',').filter_map(HookEvent::parse).collect()
    }
}

/// What a delivery of `event` (a `kind` event) of the run `run` says, but
/// its id: built when the step is committed, sent as is on every attempt.
///
/// ```
/// # use roomkit_graph_store::{Entry, HookEvent, RunRecord, RunStatus, TranscriptEvent, hook_payload};
/// let run = RunRecord {
///     run_id: "r".into(), org: "acme".into(), graph_id: "g".into(), graph_version: 2,
///     status: RunStatus::Failed, current_node_id: None, previous_node_id: None,
///     error: Some("boom".into()), version: 3, last_seq: 4, wake_at: None, created_at: 0,
///     updated_at: 0, owner: None, lease_until: None, steps: 2, pending: vec![], parent: None,
/// };
/// let event = TranscriptEvent { run_id: "r".into(), seq: 4, at: 99, entry: Entry::RunFailed { error: "boom".into() } };
/// let payload = hook_payload(HookEvent::RunFailed, &event, &run);
/// assert_eq!(payload["type"], "run.failed");
/// assert_eq!(payload["data"]["error"], "boom");
/// assert_eq!((payload["data"]["run_id"].as_str(), payload["data"]["seq"].as_u64()), (Some("r"), Some(4)));
/// ```
pub fn hook_payload(kind: HookEvent, event: &TranscriptEvent, run: &RunRecord) -> Value {
    let mut data = json!({
        "run_id": run.run_id,
        "graph_id": run.graph_id,
        "graph_version": run.graph_version,
        "status": run.status.as_str(),
        "seq": event.seq,
    });
    let extra = match &event.entry {
        Entry::NodeFailed { node_id, attempt, error } => {
            json!({"node_id": node_id, "attempt": attempt, "error": error})
        }
        Entry::NodeWaiting { node_id, prompt, actions } => {
            json!({"node_id": node_id, "prompt": prompt, "actions": actions})
        }
        Entry::RunFailed { error } => json!({"error": error}),
        Entry::RunCancelled { reason } => json!({"reason": reason}),
        _ => json!({}),
    };
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
        if let Some(parent) = &run.parent {
            data.insert("parent_run_id".into(), parent.run_id.clone().into());
        }
    }
    json!({"type": kind.as_str(), "org": run.org, "created_at": event.at, "data": data})
}

/// The id of the delivery of a run's event `seq` to a hook: the same for
/// every attempt, so a receiver drops a delivery it has seen.
///
/// ```
/// assert_eq!(roomkit_graph_store::delivery_id("hook_1", "r", 7), "hook_1:r:7");
/// ```
pub fn delivery_id(hook_id: &str, run_id: &str, seq: u64) -> String {
    format!("{hook_id}:{run_id}:{seq}")
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: it will be tried (again).
    Pending,
    /// The receiver took it (answered 2xx).
    Delivered,
    /// Given up: tried for [`GIVE_UP_AFTER`], or its hook was removed.
    Failed,
}

impl DeliveryStatus {
    /// Its name: `pending`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Where a delivery stands after `attempt`, with `next_attempt_at` the
    /// time of the next one (none: no more).
    ///
    /// ```
    /// # use roomkit_graph_store::{DeliveryStatus, HookAttempt};
    /// let answered = |code| HookAttempt { at: 0, status_code: Some(code), error: None, duration_ms: 1 };
    /// assert_eq!(DeliveryStatus::after(&answered(204), Some(5)), DeliveryStatus::Delivered);
    /// assert_eq!(DeliveryStatus::after(&answered(500), Some(5)), DeliveryStatus::Pending);
    /// assert_eq!(DeliveryStatus::after(&answered(500), None), DeliveryStatus::Failed);
    /// ```
    pub fn after(attempt: &HookAttempt, next_attempt_at: Option<Millis>) -> DeliveryStatus {
        match (attempt.delivered(), next_attempt_at) {
            (true, _) => DeliveryStatus::Delivered,
            (false, Some(_)) => DeliveryStatus::Pending,
            (false, None) => DeliveryStatus::Failed,
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// One attempt at a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookAttempt {
    /// When it was made.
    pub at: Millis,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why it did not count, when it did not (no answer, or not 2xx).
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

impl HookAttempt {
    /// Whether the receiver took the delivery: it answered 2xx.
    pub fn delivered(&self) -> bool {
        self.status_code.is_some_and(|code| (200..300).contains(&code))
    }
}

/// A delivery of one event to one hook, with its attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookDelivery {
    /// See [`delivery_id`].
    pub delivery_id: String,
    /// The organization of the run and the hook.
    pub org: String,
    /// The hook.
    pub hook_id: String,
    /// The event.
    pub event: HookEvent,
    /// The run.
    pub run_id: String,
    /// The transcript entry that is the event.
    pub seq: u64,
    /// What it says ([`hook_payload`]).
    pub payload: Value,
    /// When the event was committed.
    pub created_at: Millis,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// When it is tried next, while pending.
    pub next_attempt_at: Option<Millis>,
    /// Its attempts so far, oldest first.
    pub attempts: Vec<HookAttempt>,
}

impl HookDelivery {
    /// The body POSTed: its payload with its id first.
    ///
    /// ```
    /// # use roomkit_graph_store::{DeliveryStatus, HookDelivery, HookEvent};
    /// let delivery = HookDelivery {
    ///     delivery_id: "h:r:3".into(), org: "acme".into(), hook_id: "h".into(), event: HookEvent::RunCompleted,
    ///     run_id: "r".into(), seq: 3, payload: serde_json::json!({"type": "run.completed", "data": {}}),
    ///     created_at: 0, status: DeliveryStatus::Pending, next_attempt_at: Some(0), attempts: vec![],
    /// };
    /// assert_eq!(delivery.body(), r#"{"id":"h:r:3","type":"run.completed","data":{}}"#);
    /// ```
    pub fn body(&self) -> String {
        let mut body = serde_json::Map::new();
        body.insert("id".into(), self.delivery_id.clone().into());
        if let Value::Object(payload) = &self.payload {
            body.extend(payload.iter().map(|(key, value)| (key.clone(), value.clone())));
        }
        Value::Object(body).to_string()
    }

    /// Where the page after this delivery starts (it ends a page).
    pub fn cursor(&self) -> crate::DeliveryCursor {
        crate::DeliveryCursor { created_at: self.created_at, delivery_id: self.delivery_id.clone() }
    }
}

/// The pause after a delivery's first failed attempt; it doubles after each.
pub const FIRST_RETRY: Millis = 1_000;

/// The longest pause between two attempts.
pub const LONGEST_RETRY: Millis = 60 * 60 * 1_000;

/// How long a delivery is tried, from its event: a day.
pub const GIVE_UP_AFTER: Millis = 24 * 60 * 60 * 1_000;

/// How long a delivery that is over is kept, to be seen: 30 days.
pub const DELIVERIES_KEPT: Millis = 30 * 24 * 60 * 60 * 1_000;

/// When a delivery of an event committed at `created_at` is tried next after
/// `attempts` failed attempts, the last ending at `now`: [`FIRST_RETRY`]
/// doubling up to [`LONGEST_RETRY`]; never once [`GIVE_UP_AFTER`] has passed
/// (`None`: it has failed for good).
///
/// ```
/// # use roomkit_graph_store::{next_attempt_at, GIVE_UP_AFTER, LONGEST_RETRY};
/// assert_eq!(next_attempt_at(0, 1, 10), Some(1_010));
/// assert_eq!(next_attempt_at(0, 3, 10), Some(4_010));
/// assert_eq!(next_attempt_at(0, 40, 10), Some(10 + LONGEST_RETRY));
/// assert_eq!(next_attempt_at(0, 30, GIVE_UP_AFTER - 5), Some(GIVE_UP_AFTER), "one last try at the end of the day");
/// assert_eq!(next_attempt_at(0, 31, GIVE_UP_AFTER), None);
/// ```
pub fn next_attempt_at(created_at: Millis, attempts: u32, now: Millis) -> Option<Millis> {
    let give_up_at = created_at.saturating_add(GIVE_UP_AFTER);
    if now >= give_up_at {
        return None;
    }
    let doublings = attempts.saturating_sub(1).min(32);
    let pause = FIRST_RETRY.saturating_mul(1 << doublings).min(LONGEST_RETRY);
    Some(now.saturating_add(pause).min(give_up_at))
}

/// A delivery taken to be attempted, with where it goes.
#[derive(Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery: HookDelivery,
    /// Its hook's URL.
    pub url: String,
    /// Its hook's secret.
    pub secret: String,
    /// Until when it is held for the claimant: its attempt is recorded only
    /// while no other process has taken it since.
    pub held_until: Millis,
}

/// Never shows the hook's secret.
impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("delivery", &self.delivery)
            .field("url", &self.url)
            .field("secret", &"<secret>")
            .field("held_until", &self.held_until)
            .finish()
    }
}

/// Which deliveries [`HookStore::deliveries`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this hook's.
    pub hook_id: Option<String>,
    /// Only this run's.
    pub run_id: Option<String>,
    /// Only those in this state.
    pub status: Option<DeliveryStatus>,
    /// Only those listed after this one (the next page of a listing).
    pub before: Option<DeliveryCursor>,
}

/// Hooks and their deliveries. Deliveries are made by the commits of the
/// run store, in the transaction of the step whose entries are the events.
#[async_trait]
pub trait HookStore: Send + Sync {
    /// Stores a hook. Refused if its id exists in its organization.
    async fn add_hook(&self, hook: &Hook) -> Result<()>;

    /// The hooks of `org`, oldest first.
    async fn hooks(&self, org: &str) -> Result<Vec<Hook>>;

    /// Removes the hook of `org` with this id; its pending deliveries fail
    /// (they are kept, to be seen). False when `org` has no such hook.
    async fn remove_hook(&self, org: &str, hook_id: &str) -> Result<bool>;

    /// Takes up to `limit` pending deliveries due at `now`, oldest first,
    /// and holds them until `now + hold` (no other process takes them
    /// meanwhile; one not recorded by then is taken again). Due deliveries
    /// of a hook removed meanwhile fail instead.
    async fn claim_deliveries(&self, now: Millis, hold: Millis, limit: usize)
    -> Result<Vec<ClaimedDelivery>>;

    /// Records an attempt at a claimed delivery: delivered when it was,
    /// otherwise tried again at `next_attempt_at`, or failed for good
    /// without one. Nothing is recorded (false) when the claim lapsed and
    /// another process took the delivery since, or it is over.
    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: &HookAttempt,
        next_attempt_at: Option<Millis>,
    ) -> Result<bool>;

    /// Deletes up to `limit` deliveries that are over (delivered or failed)
    /// and were made before `before`, of every organization: how many went.
    async fn delete_old_deliveries(&self, before: Millis, limit: usize) -> Result<usize>;

    /// The deliveries of `org` that `filter` lets through, newest first, at
    /// most `limit`.
    async fn deliveries(&self, org: &str, filter: &DeliveryFilter, limit: usize)
    -> Result<Vec<HookDelivery>>;
}
