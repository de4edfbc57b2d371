//! Runs: their records, what opening one and committing a step of it need,
//! which runs to list, and [`RunStore`], where runs are opened, moved and
//! leased.

use async_trait::async_trait;
use roomkit_graph::EngineState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ConcurrencySlot, Entry, Lease, Millis, Page, Result, RunCursor, RunKey, TranscriptEvent};

/// Where a durable run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Has a node to run next.
    Running,
    /// Has a node to run next, and waits for its turn: its graph's
    /// concurrency limit is reached for its key (see `Graph::concurrency`).
    Queued,
    /// Parked on a node until it is answered (or its timer fires).
    Waiting,
    /// Finished.
    Completed,
    /// Stopped by an error.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order a run may meet them.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Queued,
        RunStatus::Waiting,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The names of [`RunStatus::ALL`], for a message that lists them.
    ///
    /// ```
    /// use roomkit_graph_store::RunStatus;
    /// let names: Vec<_> = RunStatus::ALL.iter().map(|status| status.as_str()).collect();
    /// assert_eq!(RunStatus::NAMES, names.join(", "));
    /// assert!(RunStatus::ALL.iter().all(|status| RunStatus::parse(status.as_str()) == Some(*status)));
    /// ```
    pub const NAMES: &'static str = "running, queued, waiting, completed, failed, cancelled";

    /// `running`, `queued`, `waiting`, `completed`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Queued => "queued",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Reads a status written by [`RunStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => RunStatus::Running,
            "queued" => RunStatus::Queued,
            "waiting" => RunStatus::Waiting,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run is over (completed, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// A run's record: which graph it runs and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id, which is also its room's id.
    pub run_id: String,
    /// The organization that owns it (the owner of its graph).
    pub org: String,
    /// The graph it runs.
    pub graph_id: String,
    /// The graph version it pinned when it started.
    pub graph_version: u64,
    /// Where it stands.
    pub status: RunStatus,
    /// The node it is on (none once it is over).
    pub current_node_id: Option<String>,
    /// The node it last left along an edge.
    pub previous_node_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Bumped by every commit; a commit names the version it expects.
    pub version: u64,
    /// The sequence number of its last transcript event.
    pub last_seq: u64,
    /// When the timer a waiting run is parked on is due (a delay node).
    pub wake_at: Option<Millis>,
    /// When it started.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// Who drives it right now: the owner of its lease (see [`Lease`]). Only a
    /// running run has one; none when nobody holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When the lease of [`RunRecord::owner`] expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<Millis>,
    /// How many steps the run has executed (its step limit counts these).
    #[serde(default)]
    pub steps: u64,
    /// The children of the parallel node it waits on that still wait for an
    /// answer, in node order (none when it waits on a single node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// For a child run: the run and the subgraph node that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
}

/// The run and the node a child run was started by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent run.
    pub run_id: String,
    /// Its node: a subgraph node, or a node that runs in its own room.
    pub node_id: String,
    /// Whether the child runs that node itself, alone, in its parent's graph
    /// (a node that runs in its own room: an orchestration's agents taking
    /// turns), rather than a graph of its own (a subgraph node's).
    #[serde(default)]
    pub runs_node: bool,
}

/// The parent's side of opening a child run: its subgraph node, and its step
/// that starts the child (waiting on it), committed in the same transaction
/// as the child's creation, so that no child runs for a parent that does
/// not wait on it and no parent waits on a child that was never opened.
#[derive(Clone, Debug, PartialEq)]
pub struct ParentStep {
    /// The parent's node.
    pub node_id: String,
    /// Whether the child runs that node itself ([`ParentLink::runs_node`]).
    pub runs_node: bool,
    /// The parent's step ([`StepCommit::run_id`] is the parent run).
    pub commit: StepCommit,
}

impl RunRecord {
    /// The lease on the run, if someone holds one (live or expired).
    pub fn lease(&self) -> Option<Lease> {
        Some(Lease { owner: self.owner.clone()?, until: self.lease_until? })
    }

    /// Whether `owner` may drive the run at `now`: it is running and nobody
    /// else holds a live lease on it.
    ///
    /// ```
    /// # use roomkit_graph_store::{RunRecord, RunStatus};
    /// let mut run = RunRecord {
    ///     run_id: "r".into(), org: "default".into(), graph_id: "g".into(), graph_version: 1,
    ///     status: RunStatus::Running, current_node_id: Some("a".into()), previous_node_id: None,
    ///     error: None, version: 3, last_seq: 4, wake_at: None, created_at: 0, updated_at: 0,
    ///     owner: Some("b".into()), lease_until: Some(100),
    ///     steps: 0, pending: vec![], parent: None,
    /// };
    /// assert!(!run.is_claimable_by("a", 99));
    /// assert!(run.is_claimable_by("b", 99));
    /// assert!(run.is_claimable_by("a", 100), "the lease of b expired");
    /// run.status = RunStatus::Waiting;
    /// assert!(!run.is_claimable_by("b", 99));
    /// ```
    pub fn is_claimable_by(&self, owner: &str, now: Millis) -> bool {
        self.status == RunStatus::Running
            && self.lease().is_none_or(|lease| lease.owner == owner || !lease.is_live_at(now))
    }

    /// Where the run waits for a person, while it does: the children of the
    /// parallel node it is on that still wait, or the node it is on. None
    /// while it runs, rests on a timer or is over. (A run waiting on a child
    /// run names its subgraph node: its child says where it waits.)
    ///
    /// ```
    /// # use roomkit_graph_store::{RunRecord, RunStatus};
    /// let run = RunRecord {
    ///     run_id: "r".into(), org: "default".into(), graph_id: "g".into(), graph_version: 1,
    ///     status: RunStatus::Waiting, current_node_id: Some("approvals".into()), previous_node_id: None,
    ///     error: None, version: 3, last_seq: 4, wake_at: None, created_at: 0, updated_at: 0,
    ///     owner: None, lease_until: None, steps: 2, pending: vec!["legal".into(), "security".into()], parent: None,
    /// };
    /// assert_eq!(run.waiting_on(), ["legal", "security"]);
    /// let single = RunRecord { pending: vec![], ..run.clone() };
    /// assert_eq!(single.waiting_on(), ["approvals"]);
    /// assert!(RunRecord { wake_at: Some(9), ..single.clone() }.waiting_on().is_empty());
    /// assert!(RunRecord { status: RunStatus::Running, ..single }.waiting_on().is_empty());
    /// ```
    pub fn waiting_on(&self) -> Vec<&str> {
        waiting_on(self.status, self.wake_at, self.current_node_id.as_deref(), &self.pending)
    }
}

/// The nodes a run in `status` on `current` (resting on a timer due at
/// `wake_at`, its parallel children `pending`) waits on for a person: see
/// [`RunRecord::waiting_on`].
pub(crate) fn waiting_on<'a>(
    status: RunStatus,
    wake_at: Option<Millis>,
    current: Option<&'a str>,
    pending: &'a [String],
) -> Vec<&'a str> {
    match (status, wake_at, current) {
        (RunStatus::Waiting, None, _) if !pending.is_empty() => pending.iter().map(String::as_str).collect(),
        (RunStatus::Waiting, None, Some(node)) => vec![node],
        _ => Vec::new(),
    }
}

/// What opening a run's room needs.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// The organization whose graph it runs.
    pub org: String,
    /// The graph it runs.
    pub graph_id: String,
    /// The stored graph version it pins.
    pub graph_version: u64,
    /// When the run starts, on its creator's clock: the run's `created_at`,
    /// the time of its `run_started` event, and the time its key is judged
    /// free at.
    pub at: Millis,
    /// The trigger data (recorded in the `run_started` entry).
    pub trigger: Value,
    /// The engine's state after `start` (its run id is the run's id).
    pub state: EngineState,
    /// A key no other run may have while it holds it (a schedule's due time,
    /// a request's idempotency key, a webhook delivery): a second run with it
    /// is refused with [`StoreError::Duplicate`](crate::StoreError::Duplicate).
    pub key: Option<RunKey>,
    /// The lease its creator takes on it, if it starts running: no other
    /// process picks it up while its creator drives it.
    pub lease: Option<Lease>,
    /// The run's first step, committed with its creation (its
    /// `expected_version` is 1, the new run's): one transaction instead of two.
    pub first_step: Option<StepCommit>,
    /// For a child run: its parent's step that starts it, committed with
    /// its creation (refused together: a parent that moved opens no child).
    pub parent: Option<ParentStep>,
    /// For a fork: the run and entry it goes on from (recorded in the
    /// `run_started` entry).
    pub origin: Option<crate::Origin>,
    /// For a run of a graph with a concurrency limit: the key it holds its
    /// place by and the limit. Past the limit it opens queued (see
    /// [`RunStatus::Queued`]).
    pub concurrency: Option<ConcurrencySlot>,
}

/// One step, committed whole.
#[derive(Clone, Debug, PartialEq)]
pub struct StepCommit {
    /// The run.
    pub run_id: String,
    /// The run version this step was computed from.
    pub expected_version: u64,
    /// When the step is committed, on the committer's clock: the time of its
    /// transcript events and of the run's update, and the time a lease on the
    /// run is judged at.
    pub at: Millis,
    /// The context entries the step wrote, `(node_id, entry)` with each entry
    /// `{"output": ...}` (and `"error"` for a failure taken along an error
    /// edge): only these are stored, never the whole context again. A step
    /// that writes appends at least one transcript entry (the writes are kept
    /// with its last one); otherwise the commit is refused as
    /// [`StoreError::Invalid`](crate::StoreError::Invalid).
    pub writes: Vec<(String, Value)>,
    /// The node the run is on after the step.
    pub current_node_id: Option<String>,
    /// The node the run last left along an edge.
    pub previous_node_id: Option<String>,
    /// Where the run stands after the step.
    pub status: RunStatus,
    /// Why the run failed, with [`RunStatus::Failed`].
    pub error: Option<String>,
    /// The transcript entries of the step, in order.
    pub entries: Vec<Entry>,
    /// Parks the run on a timer due at this time (with [`RunStatus::Waiting`]);
    /// none clears it.
    pub wake_at: Option<Millis>,
    /// The lease of the committer. With one, the commit is refused when
    /// another owner holds a live lease on the run; if the run stays running
    /// the committer holds the lease after it (taken, or renewed to
    /// `until` at the latest of the stored and the given time). Without one
    /// (a cancel, say), nobody's lease is checked or taken. Either way a commit
    /// that leaves the run not running releases its lease.
    pub lease: Option<Lease>,
    /// How many steps the run has executed in all, after this commit.
    pub steps: u64,
    /// The children of the parallel node the run waits on that still wait,
    /// after this commit (none otherwise).
    pub pending: Vec<String>,
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    /// Only runs of this organization.
    pub org: Option<String>,
    /// Only runs of this graph.
    pub graph_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time.
    pub created_from: Option<Millis>,
    /// Only runs created before this time.
    pub created_until: Option<Millis>,
    /// Only runs parked on a timer due at or before this time.
    pub due_by: Option<Millis>,
    /// Only the child runs of this run.
    pub parent_run_id: Option<String>,
    /// Only runs whose id starts with this.
    pub run_id_prefix: Option<String>,
    /// Only runs whose trigger data holds this value there.
    pub trigger: Option<TriggerField>,
    /// Only runs listed after this cursor (the next page of a list).
    pub after: Option<RunCursor>,
    /// At most this many (all when none).
    pub limit: Option<usize>,
}

/// A value in runs' trigger data: runs whose trigger data holds `value` at
/// `path` (`customer`, `order.region`). Each key of the path is letters,
/// digits, `_` and `-` (so it spells the same in every backend's JSON path);
/// the value is a string, number, boolean or null.
///
/// ```
/// use roomkit_graph_store::TriggerField;
/// use serde_json::json;
///
/// let field = TriggerField::new("order.region", json!("eu"))?;
/// assert_eq!(field.path(), ["order", "region"]);
/// assert!(TriggerField::new("order..region", json!("eu")).is_err());
/// assert!(TriggerField::new("tags.0", json!("x")).is_err(), "an index is not a key");
/// assert!(TriggerField::new("customer", json!({"id": 1})).is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerField {
    path: Vec<String>,
    value: Value,
}

impl TriggerField {
    /// The field at the dotted `path`, holding `value`; why not when the path
    /// or the value cannot be searched for.
    pub fn new(path: &str, value: Value) -> Result<TriggerField, String> {
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.is_empty() || keys.len() > 16 {
            return Err(format!("a trigger field is 1 to 16 keys joined by dots, not {path:?}"));
        }
        // A key of digits only would read as an array's index in one backend and not another.
        let plain = |key: &String| {
            !key.is_empty()
                && key.len() <= 128
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !key.chars().all(|c| c.is_ascii_digit() || c == '-')
        };
        if let Some(key) = keys.iter().find(|key| !plain(key)) {
            return Err(format!(
                "the key {key:?} of trigger field {path:?} is not 1 to 128 letters, digits, _ or - \
                 (not a number)"
            ));
        }
        if value.is_object() || value.is_array() {
            return Err("a trigger field is compared with a string, a number, true, false or null".to_owned());
        }
        Ok(TriggerField { path: keys, value })
    }

    /// Its keys, outermost first.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The value it holds.
    pub fn value(&self) -> &Value {
        &self.value
    }
}

/// The SQL a backend speaks, for [`RunFilter::where_clause`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: parameters `?1`, the transcript in `transcript`.
    Sqlite,
    /// PostgreSQL: parameters `$1`, the transcript in `roomkit_graph.transcript`.
    Postgres,
}

/// A value a [`RunFilter`] compares a column with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterValue {
    /// Text: an id or a status.
    Text(String),
    /// A time in [`Millis`].
    Millis(Millis),
}

impl RunFilter {
    /// The filter as SQL conditions on the columns of a runs table, all to
    /// hold: `(column, operator, value)`, for a backend to bind in its own way.
    ///
    /// ```
    /// use roomkit_graph_store::{FilterValue, RunFilter, RunStatus};
    /// let filter = RunFilter { status: Some(RunStatus::Waiting), due_by: Some(5), ..RunFilter::default() };
    /// assert_eq!(
    ///     filter.conditions(),
    ///     [("status", "=", FilterValue::Text("waiting".into())), ("wake_at", "<=", FilterValue::Millis(5))]
    /// );
    /// ```
    pub fn conditions(&self) -> Vec<(&'static str, &'static str, FilterValue)> {
        let text = |column, value: &Option<String>| {
            value.clone().map(|value| (column, "=", FilterValue::Text(value)))
        };
        let millis =
            |column, op, value: Option<Millis>| value.map(|value| (column, op, FilterValue::Millis(value)));
        [
            text("org", &self.org),
            text("graph_id", &self.graph_id),
            text("status", &self.status.map(|status| status.as_str().to_owned())),
            millis("created_at", ">=", self.created_from),
            millis("created_at", "<", self.created_until),
            millis("wake_at", "<=", self.due_by),
            text("parent_run_id", &self.parent_run_id),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// How many runs are live, by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveRunCounts {
    /// Runs a process drives or will pick up.
    pub running: u64,
    /// Runs waiting on a person, a timer or a child run.
    pub waiting: u64,
    /// Runs waiting for their turn under a concurrency limit.
    pub queued: u64,
}

/// Where runs are kept: opened, moved a step at a time, leased to the process
/// driving them, read and listed. Every method is one transaction.
///
/// A write whose future is dropped before it answers may or may not have been
/// applied; the run version in [`StepCommit`] makes retrying it safe.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Opens a run's room: its record, its initial state and the `run_started`
    /// entry (sequence number 1). Refused if the run id exists, if its key is
    /// held by another run ([`StoreError::Duplicate`](crate::StoreError::Duplicate), see
    /// [`RunKey::taken_by`]) or if the graph version does not exist. A key
    /// whose holder let it go ([`HeldKey::is_free_at`](crate::HeldKey::is_free_at))
    /// is taken from it.
    async fn create_run(&self, run: NewRun) -> Result<RunRecord>;

    /// Commits one step: its writes, the run's new position and status, and its
    /// transcript entries, atomically. Refused with [`StoreError::Conflict`](crate::StoreError::Conflict),
    /// changing nothing, when the run's version is not `commit.expected_version`
    /// (another process moved it), or when the commit carries a lease and
    /// another owner holds one on the run that is live at `commit.at`. A
    /// commit that leaves the run running with a lease takes or renews it; one that leaves it not running
    /// releases its lease (see [`StepCommit::lease`]). Returns the new record
    /// and the appended events.
    async fn commit_step(&self, commit: StepCommit) -> Result<(RunRecord, Vec<TranscriptEvent>)>;

    /// Takes the lease on a run for `lease.owner` until `lease.until`, if the
    /// run is running and nobody else holds a live lease on it at `now` (it
    /// has no owner, its owner's lease expired, or the owner is `lease.owner`,
    /// whose lease is then renewed). Returns the claimed record, or `None` (changing
    /// nothing) when the run is not running or someone else holds it.
    /// [`StoreError::NotFound`](crate::StoreError::NotFound) for an unknown run. Does not change the run's
    /// version: a commit prepared by the owner before a renewal still applies.
    async fn claim_run(&self, run_id: &str, lease: &Lease, now: Millis) -> Result<Option<RunRecord>>;

    /// Extends the lease `lease.owner` holds on a running run to `lease.until`
    /// (never shortening it). Refused with [`StoreError::Conflict`](crate::StoreError::Conflict), changing
    /// nothing, when the run is not running or its lease is not held by
    /// `lease.owner` (another process took it after it expired, or it was
    /// released): the owner has lost the run and must stop driving it.
    async fn renew_lease(&self, run_id: &str, lease: &Lease) -> Result<RunRecord>;

    /// Releases the lease `owner` holds on a run, so that another process can
    /// take it at once. Returns whether `owner` held it; a lease held by
    /// someone else, or none, is left as it is.
    async fn release_run(&self, run_id: &str, owner: &str) -> Result<bool>;

    /// Up to `limit` running runs that nobody holds a live lease on at `now`:
    /// those without an owner first, then those whose lease expired, oldest
    /// lease first. What a process may [`RunStore::claim_run`] to pick up.
    async fn claimable_runs(&self, now: Millis, limit: usize) -> Result<Vec<RunRecord>>;

    /// A run's record.
    async fn run(&self, run_id: &str) -> Result<RunRecord>;

    /// A run's record and the engine state to continue it from.
    async fn load_run(&self, run_id: &str) -> Result<(RunRecord, EngineState)>;

    /// Runs matching `filter`, newest first (equal creation times by run id).
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;

    /// How many runs are running, waiting and queued, of every
    /// organization (counted on the status index).
    async fn live_run_counts(&self) -> Result<LiveRunCounts>;

    /// A page of at most `size` runs matching `filter` (whose `limit` it
    /// ignores), in the order of [`RunStore::list_runs`], and the cursor of the
    /// next page: pass it as `filter.after` ([`RunCursor::decode`]).
    async fn run_page(&self, filter: &RunFilter, size: usize) -> Result<Page<RunRecord>> {
        let one_more = RunFilter { limit: Some(size.saturating_add(1)), ..filter.clone() };
        let runs = self.list_runs(&one_more).await?;
        Ok(Page::cut(runs, size, |last| RunCursor::after(last).encode()))
    }
}
