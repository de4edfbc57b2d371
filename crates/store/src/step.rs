//! The rules of committing a step, the same for every backend: when a commit
//! is refused, what the run's record becomes, and how the outputs a step
//! wrote are kept with its transcript.

use serde_json::{Map, Value, json};

use crate::{Lease, Millis, RunRecord, RunStatus, StepCommit, StoreError};

impl RunRecord {
    /// The expiry of `lease` once taken on this run: its own, or the later of
    /// its own and the stored one when its owner holds the run already (a
    /// renewal never shortens a lease).
    ///
    /// ```
    /// # use roomkit_graph_store::{Lease, RunRecord, RunStatus};
    /// let run = RunRecord {
    ///     run_id: "r".into(), org: "default".into(), graph_id: "g".into(), graph_version: 1,
    ///     status: RunStatus::Running, current_node_id: Some("a".into()), previous_node_id: None,
    ///     error: None, version: 3, last_seq: 4, wake_at: None, created_at: 0, updated_at: 0,
    ///     owner: Some("b".into()), lease_until: Some(100),
    /// };
    /// assert_eq!(run.renewed_until(&Lease { owner: "b".into(), until: 50 }), 100);
    /// assert_eq!(run.renewed_until(&Lease { owner: "c".into(), until: 50 }), 50);
    /// ```
    pub fn renewed_until(&self, lease: &Lease) -> Millis {
        match self.lease() {
            Some(held) if held.owner == lease.owner => held.until.max(lease.until),
            _ => lease.until,
        }
    }

    /// [`StoreError::Conflict`] when someone other than `lease.owner` holds a
    /// live lease on the run at `now`.
    pub fn refuse_if_held_by_another(&self, lease: &Lease, now: Millis) -> Result<(), StoreError> {
        match self.lease() {
            Some(held) if held.owner != lease.owner && held.is_live_at(now) => Err(StoreError::Conflict {
                run_id: self.run_id.clone(),
                detail: format!("{} holds the run until {}", held.owner, held.until),
            }),
            _ => Ok(()),
        }
    }
}

impl StepCommit {
    /// Whether the commit may apply to the run as it stands (`before`) at
    /// `now`: [`StoreError::Conflict`] when the run moved past
    /// `expected_version` or another owner holds a live lease on it,
    /// [`StoreError::Invalid`] when it writes outputs without an entry to keep
    /// them on.
    pub fn check(&self, before: &RunRecord, now: Millis) -> Result<(), StoreError> {
        if before.version != self.expected_version {
            return Err(StoreError::Conflict {
                run_id: self.run_id.clone(),
                detail: format!("expected version {}, found {}", self.expected_version, before.version),
            });
        }
        if let Some(lease) = &self.lease {
            before.refuse_if_held_by_another(lease, now)?;
        }
        if !self.writes.is_empty() && self.entries.is_empty() {
            return Err(StoreError::Invalid(format!(
                "a commit to run {} writes outputs but appends no transcript entry to keep them on",
                self.run_id
            )));
        }
        Ok(())
    }

    /// The run's record once the commit applied to `before` at `now`, its
    /// transcript ending at `last_seq`. A run left running with a lease is
    /// held by the committer; one parked or over is held by nobody.
    pub fn applied_to(&self, before: RunRecord, last_seq: u64, now: Millis) -> RunRecord {
        let (owner, lease_until) = match &self.lease {
            _ if self.status != RunStatus::Running => (None, None),
            Some(lease) => (Some(lease.owner.clone()), Some(before.renewed_until(lease))),
            None => (before.owner.clone(), before.lease_until),
        };
        RunRecord {
            owner,
            lease_until,
            status: self.status,
            current_node_id: self.current_node_id.clone(),
            previous_node_id: self.previous_node_id.clone(),
            error: self.error.clone(),
            version: before.version + 1,
            last_seq,
            updated_at: now,
            wake_at: self.wake_at,
            ..before
        }
    }

    /// The context entries the step wrote (`{node_id: {"output": ...}}`, in
    /// the order written), as a store keeps them with the step's last
    /// transcript event; none when it wrote nothing. A run's context is these
    /// objects merged in transcript order: an entry keeps the place it was
    /// first written at and the value it was last written with.
    ///
    /// ```
    /// # use roomkit_graph_store::{RunStatus, StepCommit};
    /// # use serde_json::json;
    /// let commit = StepCommit {
    ///     run_id: "r".into(), expected_version: 1,
    ///     writes: vec![("draft".into(), json!("v1")), ("log".into(), json!(2))],
    ///     current_node_id: None, previous_node_id: None, status: RunStatus::Running,
    ///     error: None, entries: vec![], wake_at: None, lease: None,
    /// };
    /// let written = commit.written_context().unwrap();
    /// assert_eq!(serde_json::to_string(&written)?, r#"{"draft":{"output":"v1"},"log":{"output":2}}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn written_context(&self) -> Option<Map<String, Value>> {
        (!self.writes.is_empty()).then(|| {
            self.writes
                .iter()
                .map(|(node_id, output)| (node_id.clone(), json!({ "output": output })))
                .collect()
        })
    }
}
