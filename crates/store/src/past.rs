//! Looking back at a run: where it stood once any of its commits applied,
//! kept with the commit's last transcript event ([`Position`]), and read back
//! with the context written up to it ([`RunAt`]), to show a run as it was at
//! any entry or to fork a new run from there ([`Origin`]).

use roomkit_graph::EngineState;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Cause, Millis, RunRecord, RunStatus, StoreError, read_stored};

/// Where a run stood once a commit applied: kept, as JSON, with the commit's
/// last transcript event.
///
/// ```
/// use roomkit_graph_store::{Position, RunStatus};
///
/// let position = Position {
///     status: RunStatus::Waiting,
///     current_node_id: Some("review".into()),
///     previous_node_id: Some("draft".into()),
///     pending: vec![],
///     steps: 2,
///     wake_at: None,
/// };
/// let text = position.to_text();
/// assert_eq!(text, r#"{"status":"waiting","current_node_id":"review","previous_node_id":"draft","steps":2}"#);
/// assert_eq!(Position::read("r", 4, &text)?, position);
/// # Ok::<(), roomkit_graph_store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Its status.
    pub status: RunStatus,
    /// The node it was on.
    pub current_node_id: Option<String>,
    /// The node it had last left along an edge.
    pub previous_node_id: Option<String>,
    /// The children of the parallel node it waited on that still waited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// How many steps it had executed.
    pub steps: u64,
    /// When the timer it rested on was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Millis>,
}

/// What a store keeps instead of a [`Position`] on the events committed
/// before positions were kept (an older schema): their state cannot be
/// looked back at.
pub const UNKEPT_POSITION: &str = "\"unkept\"";

impl Position {
    /// The nodes the run waited on for a person there, as
    /// [`RunRecord::waiting_on`] says of a run now.
    pub fn waiting_on(&self) -> Vec<&str> {
        crate::run::waiting_on(self.status, self.wake_at, self.current_node_id.as_deref(), &self.pending)
    }

    /// The position as a store keeps it.
    pub fn to_text(&self) -> String {
        // A position of plain strings and numbers always writes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// [`StoreError::Invalid`]: where run `run_id` stood at entry `seq` was
    /// not kept (an older version committed it).
    pub fn unkept(run_id: &str, seq: u64) -> StoreError {
        StoreError::Invalid(format!(
            "run {run_id}: where it stood at entry {seq} was not kept (the entry was committed by an older version)"
        ))
    }

    /// Reads a position kept with event `seq` of run `run_id`:
    /// [`StoreError::Invalid`] for one committed before positions were
    /// kept, [`StoreError::Backend`] for one that does not read back.
    pub fn read(run_id: &str, seq: u64, text: &str) -> Result<Position, StoreError> {
        if text == UNKEPT_POSITION {
            return Err(Position::unkept(run_id, seq));
        }
        read_stored(text).map_err(|err| {
            StoreError::Backend(
                Cause::new(format!("the position of run {run_id} at entry {seq} does not read back: {err}"))
                    .with_source(err),
            )
        })
    }
}

impl RunRecord {
    /// [`StoreError::Invalid`] unless the run has a transcript entry `seq`.
    ///
    /// ```
    /// # use roomkit_graph_store::{RunRecord, RunStatus, StoreError};
    /// # let run = RunRecord {
    /// #     run_id: "r".into(), org: "default".into(), graph_id: "g".into(), graph_version: 1,
    /// #     status: RunStatus::Completed, current_node_id: None, previous_node_id: None,
    /// #     error: None, version: 3, last_seq: 4, wake_at: None, created_at: 0, updated_at: 0,
    /// #     owner: None, lease_until: None, steps: 2, pending: vec![], parent: None,
    /// # };
    /// assert!(run.check_entry(4).is_ok());
    /// let err = run.check_entry(5).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid request: run r has no entry 5: its entries are 1 to 4");
    /// ```
    pub fn check_entry(&self, seq: u64) -> Result<(), StoreError> {
        if seq == 0 || seq > self.last_seq {
            return Err(StoreError::Invalid(format!(
                "run {} has no entry {seq}: its entries are 1 to {}",
                self.run_id, self.last_seq
            )));
        }
        Ok(())
    }

    /// Where the run stands, as a store keeps it with a commit's last event.
    pub fn position(&self) -> Position {
        Position {
            status: self.status,
            current_node_id: self.current_node_id.clone(),
            previous_node_id: self.previous_node_id.clone(),
            pending: self.pending.clone(),
            steps: self.steps,
            wake_at: self.wake_at,
        }
    }
}

/// A run as it stood at one of its transcript entries: as the commit that
/// appended the entry left it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunAt {
    /// The entry asked about.
    pub seq: u64,
    /// The last entry of the commit that appended it, where its state is kept.
    pub commit_seq: u64,
    /// Where the run stood.
    pub position: Position,
    /// Its context then: every output written up to that commit.
    pub context: Map<String, Value>,
}

impl RunAt {
    /// The run `run_id` at entry `seq`, from the position kept with the last
    /// event of its commit (`commit_seq`, `position`) and its `context` then
    /// (the context entries each commit up to it wrote: see
    /// [`merged_context`](crate::merged_context)).
    ///
    /// ```
    /// use roomkit_graph_store::{RunAt, merged_context};
    ///
    /// let kept = r#"{"status":"running","current_node_id":"b","previous_node_id":"a","steps":1}"#;
    /// let writes = [r#"{"a":{"output":1}}"#, r#"{"a":{"output":2},"b":{"output":3}}"#];
    /// let at = RunAt::read("r", 3, 4, kept, merged_context("r", writes)?)?;
    /// assert_eq!(at.position.current_node_id.as_deref(), Some("b"));
    /// assert_eq!(serde_json::to_string(&at.context)?, r#"{"a":{"output":2},"b":{"output":3}}"#);
    /// let state = at.engine_state("fork-1");
    /// assert!(!state.waiting);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(
        run_id: &str,
        seq: u64,
        commit_seq: u64,
        position: &str,
        context: Map<String, Value>,
    ) -> Result<RunAt, StoreError> {
        let position = Position::read(run_id, commit_seq, position)?;
        Ok(RunAt { seq, commit_seq, position, context })
    }

    /// The engine state of a new run `run_id` that goes on from here.
    pub fn engine_state(&self, run_id: &str) -> EngineState {
        EngineState {
            context: self.context.clone(),
            current_node_id: self.position.current_node_id.clone(),
            previous_node_id: self.position.previous_node_id.clone(),
            waiting: self.position.status == RunStatus::Waiting,
            run_id: run_id.to_owned(),
            pending: self.position.pending.clone(),
            children: Default::default(),
        }
    }
}

/// The run and entry a run was forked from (see
/// [`Entry::RunStarted`](crate::Entry::RunStarted)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The run it was forked from.
    pub run_id: String,
    /// The entry of that run it went on from.
    pub seq: u64,
}
