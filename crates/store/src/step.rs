//! The rules of opening a run and committing a step, the same for every
//! backend: the record a run opens with, when a commit is refused, what the
//! run's record becomes, and how the outputs a step wrote are kept with its
//! transcript.

use roomkit_graph::EngineState;
use serde_json::{Map, Value};

use crate::{
    Entry, Lease, Millis, NewRun, ParentLink, RunRecord, RunStatus, StepCommit, StoreError, TranscriptEvent,
};

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
    ///     steps: 0, pending: vec![], parent: None,
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

    /// The lease `lease` holds the run with once it claims it at `now`: its
    /// own, renewed when its owner held the run already (never shortened); or
    /// none when the run is not running or someone else holds a live lease
    /// on it (see [`RunRecord::is_claimable_by`]).
    pub fn claimed_by(&self, lease: &Lease, now: Millis) -> Option<Lease> {
        self.is_claimable_by(&lease.owner, now)
            .then(|| Lease { owner: lease.owner.clone(), until: self.renewed_until(lease) })
    }

    /// The run queued: it waits for its turn, held by nobody.
    ///
    /// ```
    /// # use roomkit_graph_store::{RunRecord, RunStatus};
    /// let run = RunRecord {
    ///     run_id: "r".into(), org: "default".into(), graph_id: "g".into(), graph_version: 1,
    ///     status: RunStatus::Running, current_node_id: Some("a".into()), previous_node_id: None,
    ///     error: None, version: 3, last_seq: 4, wake_at: None, created_at: 0, updated_at: 0,
    ///     owner: Some("b".into()), lease_until: Some(100),
    ///     steps: 0, pending: vec![], parent: None,
    /// };
    /// let queued = run.queued();
    /// assert_eq!((queued.status, queued.owner, queued.lease_until), (RunStatus::Queued, None, None));
    /// ```
    pub fn queued(self) -> RunRecord {
        RunRecord { status: RunStatus::Queued, owner: None, lease_until: None, ..self }
    }

    /// The run held by `lease`.
    pub fn held_by(self, lease: Lease) -> RunRecord {
        RunRecord { owner: Some(lease.owner), lease_until: Some(lease.until), ..self }
    }

    /// The expiry `lease` renews the run's lease to, or
    /// [`StoreError::Conflict`] when the run is not running or its lease is not
    /// held by `lease.owner` (the owner lost it).
    pub fn renewal(&self, lease: &Lease) -> Result<Millis, StoreError> {
        let held = self.lease().filter(|held| held.owner == lease.owner);
        if self.status != RunStatus::Running || held.is_none() {
            let holder = self.owner.as_deref().unwrap_or("nobody");
            return Err(StoreError::Conflict {
                run_id: self.run_id.clone(),
                detail: format!(
                    "{} cannot renew: the run is {} and held by {holder}",
                    lease.owner,
                    self.status.as_str()
                ),
            });
        }
        Ok(self.renewed_until(lease))
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

impl RunRecord {
    /// The commit that sets this run going again once `child`, one of its
    /// child runs, is over (at `now`): a `child_finished` entry, the run
    /// running on the subgraph node, to finish it with the child's end. None
    /// unless this run waits on that node (it moved on, was cancelled...):
    /// then the child's end changes nothing of it.
    ///
    /// ```
    /// # use roomkit_graph_store::{Entry, ParentLink, RunRecord, RunStatus};
    /// let parent = RunRecord {
    ///     run_id: "p".into(), org: "default".into(), graph_id: "g".into(), graph_version: 1,
    ///     status: RunStatus::Waiting, current_node_id: Some("check".into()), previous_node_id: None,
    ///     error: None, version: 3, last_seq: 4, wake_at: None, created_at: 0, updated_at: 0,
    ///     owner: None, lease_until: None, steps: 2, pending: vec![], parent: None,
    /// };
    /// let child = RunRecord {
    ///     run_id: "c".into(), status: RunStatus::Completed, current_node_id: None,
    ///     parent: Some(ParentLink { run_id: "p".into(), node_id: "check".into(), runs_node: false }),
    ///     ..parent.clone()
    /// };
    /// let wake = parent.woken_by(&child, 10).expect("the parent waits on it");
    /// assert_eq!((wake.status, wake.expected_version), (RunStatus::Running, 3));
    /// assert_eq!(wake.entries, [Entry::ChildFinished { node_id: "check".into(), run_id: "c".into(), status: RunStatus::Completed }]);
    /// let moved_on = RunRecord { status: RunStatus::Cancelled, ..parent };
    /// assert!(moved_on.woken_by(&child, 10).is_none());
    /// ```
    pub fn woken_by(&self, child: &RunRecord, now: Millis) -> Option<StepCommit> {
        let link = child.parent.as_ref()?;
        let waits = link.run_id == self.run_id
            && child.status.is_final()
            && self.status == RunStatus::Waiting
            && self.current_node_id.as_deref() == Some(link.node_id.as_str());
        waits.then(|| StepCommit {
            run_id: self.run_id.clone(),
            expected_version: self.version,
            at: now,
            writes: Vec::new(),
            current_node_id: self.current_node_id.clone(),
            previous_node_id: self.previous_node_id.clone(),
            status: RunStatus::Running,
            error: None,
            entries: vec![Entry::ChildFinished {
                node_id: link.node_id.clone(),
                run_id: child.run_id.clone(),
                status: child.status,
            }],
            wake_at: None,
            lease: None,
            steps: self.steps,
            pending: self.pending.clone(),
        })
    }
}

impl StepCommit {
    /// Whether the commit may apply to the run as it stands (`before`) at
    /// `now`: [`StoreError::Conflict`] when the run moved past
    /// `expected_version` or another owner holds a live lease on it,
    /// [`StoreError::Invalid`] when it appends no entry to keep its outputs
    /// and the run's position on.
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
        if self.entries.is_empty() {
            return Err(StoreError::Invalid(format!(
                "a commit to run {} appends no transcript entry to keep its outputs and where it leaves the run on",
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
            steps: self.steps,
            pending: self.pending.clone(),
            ..before
        }
    }

    /// The context entries the step wrote (`{node_id: {"output": ...}}`, in
    /// the order written: [`StepCommit::writes`]), as a store keeps them with the step's last
    /// transcript event; none when it wrote nothing. A run's context is these
    /// objects merged in transcript order: an entry keeps the place it was
    /// first written at and the value it was last written with.
    ///
    /// ```
    /// # use roomkit_graph_store::{RunStatus, StepCommit};
    /// # use serde_json::json;
    /// let commit = StepCommit {
    ///     run_id: "r".into(), expected_version: 1, at: 0,
    ///     writes: vec![("draft".into(), json!({"output": "v1"})), ("log".into(), json!({"output": 2}))],
    ///     current_node_id: None, previous_node_id: None, status: RunStatus::Running,
    ///     error: None, entries: vec![], wake_at: None, lease: None,
    ///     steps: 0, pending: Vec::new(),
    /// };
    /// let written = commit.written_context().unwrap();
    /// assert_eq!(serde_json::to_string(&written)?, r#"{"draft":{"output":"v1"},"log":{"output":2}}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn written_context(&self) -> Option<Map<String, Value>> {
        (!self.writes.is_empty()).then(|| self.writes.iter().cloned().collect())
    }
}

impl NewRun {
    /// The run's record as it opens at [`NewRun::at`]: version 1, its transcript at
    /// the `run_started` event; running, waiting or (with no node left)
    /// completed as its state says, held by its lease only while running.
    pub fn opening_record(&self) -> RunRecord {
        let status = if self.state.current_node_id.is_none() {
            RunStatus::Completed
        } else if self.state.waiting {
            RunStatus::Waiting
        } else {
            RunStatus::Running
        };
        let lease = self.lease.as_ref().filter(|_| status == RunStatus::Running);
        RunRecord {
            run_id: self.state.run_id.clone(),
            org: self.org.clone(),
            graph_id: self.graph_id.clone(),
            graph_version: self.graph_version,
            status,
            current_node_id: self.state.current_node_id.clone(),
            previous_node_id: self.state.previous_node_id.clone(),
            error: None,
            version: 1,
            last_seq: 1,
            wake_at: None,
            created_at: self.at,
            updated_at: self.at,
            owner: lease.map(|lease| lease.owner.clone()),
            lease_until: lease.map(|lease| lease.until),
            steps: 0,
            pending: self.state.pending.clone(),
            parent: self.parent.as_ref().map(|step| ParentLink {
                run_id: step.commit.run_id.clone(),
                node_id: step.node_id.clone(),
                runs_node: step.runs_node,
            }),
        }
    }

    /// The run's first transcript event, at [`NewRun::at`]: `run_started`
    /// with its trigger data.
    pub fn started_event(&self) -> TranscriptEvent {
        TranscriptEvent {
            run_id: self.state.run_id.clone(),
            seq: 1,
            at: self.at,
            entry: Entry::RunStarted {
                graph_id: self.graph_id.clone(),
                graph_version: self.graph_version,
                trigger: self.trigger.clone(),
                forked_from: self.origin.clone(),
            },
        }
    }

    /// The context the run starts with, as a store keeps it with its first
    /// event (see [`StepCommit::written_context`]); none when empty.
    pub fn starting_context(&self) -> Option<&Map<String, Value>> {
        (!self.state.context.is_empty()).then_some(&self.state.context)
    }
}

impl RunRecord {
    /// The engine state to continue the run from, with its `context`.
    pub fn engine_state(&self, context: Map<String, Value>) -> EngineState {
        EngineState {
            context,
            current_node_id: self.current_node_id.clone(),
            previous_node_id: self.previous_node_id.clone(),
            waiting: self.status == RunStatus::Waiting,
            run_id: self.run_id.clone(),
            pending: self.pending.clone(),
            children: Default::default(),
        }
    }
}
