//! Retention and deletion: a finished run deleted with everything of it
//! (transcript, child runs, hook deliveries; its key, timer and lease are on
//! its record), finished runs deleted once older than their organization's
//! or graph's retention ([`RetentionRule`], applied by [`sweep_expired`]),
//! and graph versions no run uses deleted; [`RetentionStore`] keeps the
//! rules and deletes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{HookStore, Millis, Result};

/// How long an organization (or one of its graphs) keeps its finished runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRule {
    /// The organization.
    pub org: String,
    /// The graph, for a rule of one graph; none for the organization's.
    pub graph_id: Option<String>,
    /// How long a run is kept once finished.
    pub keep: Millis,
}

/// Finished top-level runs to delete: those of `org` (of `graph_id` only,
/// when set; of no graph of `except_graphs`) finished before
/// `finished_before`, oldest first from `after`, at most `limit` of them
/// (each with its child runs). A run whose key is still held at `now`, or
/// with a hook delivery still to be tried, is kept until then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// The organization.
    pub org: String,
    /// Only this graph's runs.
    pub graph_id: Option<String>,
    /// None of these graphs' runs (they have rules of their own).
    pub except_graphs: Vec<String>,
    /// Only runs finished before this time.
    pub finished_before: Millis,
    /// The time keys are judged at.
    pub now: Millis,
    /// Only runs after this one (its creation time and id), in the order
    /// they are swept: the next batch of a sweep.
    pub after: Option<(Millis, String)>,
    /// At most this many runs looked at (their children not counted).
    pub limit: usize,
}

/// What one batch of a [`Sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// How many runs went, children included.
    pub deleted: usize,
    /// How many top-level runs were looked at (some are kept while a child
    /// of theirs is live): fewer than the limit ends the sweep.
    pub looked_at: usize,
    /// The last run looked at, where the next batch starts.
    pub last: Option<(Millis, String)>,
}

impl RetentionRule {
    /// The sweeps that apply `rules` at `now`, `limit` runs at a time: a
    /// graph's rule holds for its runs, its organization's for the others.
    ///
    /// ```
    /// # use roomkit_graph_store::{RetentionRule, Sweep};
    /// let rules = [
    ///     RetentionRule { org: "acme".into(), graph_id: None, keep: 100 },
    ///     RetentionRule { org: "acme".into(), graph_id: Some("audit".into()), keep: 900 },
    /// ];
    /// let sweeps = RetentionRule::sweeps(&rules, 1_000, 50);
    /// assert_eq!(sweeps[0], Sweep { org: "acme".into(), graph_id: None, except_graphs: vec!["audit".into()],
    ///     finished_before: 900, now: 1_000, after: None, limit: 50 });
    /// assert_eq!((sweeps[1].graph_id.as_deref(), sweeps[1].finished_before), (Some("audit"), 100));
    /// ```
    pub fn sweeps(rules: &[RetentionRule], now: Millis, limit: usize) -> Vec<Sweep> {
        rules
            .iter()
            .map(|rule| Sweep {
                org: rule.org.clone(),
                graph_id: rule.graph_id.clone(),
                except_graphs: match rule.graph_id {
                    Some(_) => Vec::new(),
                    None => rules
                        .iter()
                        .filter(|other| other.org == rule.org)
                        .filter_map(|other| other.graph_id.clone())
                        .collect(),
                },
                finished_before: now.saturating_sub(rule.keep),
                now,
                after: None,
                limit,
            })
            .collect()
    }
}

/// Retention rules, and deleting runs and graph versions. Every method is
/// one transaction.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Sets (or with `None` removes) how long `org` keeps its finished runs,
    /// or those of its graph `graph_id`.
    async fn set_retention(&self, org: &str, graph_id: Option<&str>, keep: Option<Millis>) -> Result<()>;

    /// Every rule, of every organization.
    async fn retention_rules(&self) -> Result<Vec<RetentionRule>>;

    /// Deletes a finished run with its child runs (theirs too), their
    /// transcripts and their hook deliveries: how many runs went.
    /// [`StoreError::NotFound`](crate::StoreError::NotFound) when there is no
    /// such run, [`StoreError::Conflict`](crate::StoreError::Conflict) when
    /// it or one of its children is running or waiting (cancel it first) or
    /// when it is the child of a run still stored (it goes with its parent).
    async fn delete_run(&self, run_id: &str) -> Result<usize>;

    /// Deletes a batch of the runs `sweep` names (as
    /// [`RetentionStore::delete_run`] does, passing over those with a child
    /// still live). A SQLite store gives the space back.
    async fn delete_finished_runs(&self, sweep: &Sweep) -> Result<Swept>;

    /// Deletes a version of a graph of `org`, but its latest (version
    /// numbers are never given twice: a process may hold a version's
    /// compiled graph or picture).
    /// [`StoreError::NotFound`](crate::StoreError::NotFound) when there is no
    /// such version, [`StoreError::Conflict`](crate::StoreError::Conflict)
    /// when a run uses it, [`StoreError::Invalid`](crate::StoreError::Invalid)
    /// for the latest ([`latest_kept`]).
    async fn delete_graph_version(&self, org: &str, graph_id: &str, version: u64) -> Result<()>;
}

/// Why the latest version of a graph is not deleted.
///
/// ```
/// let why = roomkit_graph_store::latest_kept("review", 3);
/// assert_eq!(why, "version 3 is the latest of graph review, which is kept: store a new version first");
/// ```
pub fn latest_kept(graph_id: &str, version: u64) -> String {
    format!("version {version} is the latest of graph {graph_id}, which is kept: store a new version first")
}

/// How many runs a sweep deletes in one transaction.
pub const SWEEP_BATCH: usize = 500;

/// Deletes every finished run older than its retention at `now`, a batch
/// of [`SWEEP_BATCH`] per transaction, and the hook deliveries over for
/// [`DELIVERIES_KEPT`](crate::DELIVERIES_KEPT): how many runs went.
///
/// # Errors
///
/// The first error of the store; the sweeps of the other rules are made all
/// the same (and what was deleted stays deleted).
pub async fn sweep_expired(store: &(impl RetentionStore + HookStore + ?Sized), now: Millis) -> Result<usize> {
    let mut first_error = None;
    let old_deliveries = now.saturating_sub(crate::DELIVERIES_KEPT);
    loop {
        match store.delete_old_deliveries(old_deliveries, SWEEP_BATCH).await {
            Ok(SWEEP_BATCH) => {}
            Ok(_) => break,
            Err(error) => {
                first_error.get_or_insert(error);
                break;
            }
        }
    }
    let mut deleted = 0;
    for mut sweep in RetentionRule::sweeps(&store.retention_rules().await?, now, SWEEP_BATCH) {
        loop {
            match store.delete_finished_runs(&sweep).await {
                Ok(swept) => {
                    deleted += swept.deleted;
                    if swept.looked_at < sweep.limit || swept.last.is_none() {
                        break;
                    }
                    sweep.after = swept.last;
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                    break;
                }
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(deleted),
    }
}
