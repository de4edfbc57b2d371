//! The inbox: every step of the organization's runs that waits for a person,
//! each waiting point on its own (each child of a parallel node, each child
//! run's), with what it asks, ready to be answered in place
//! (`POST /v1/runs/{run_id}/answer` with its `node_id`).

use axum::Json;
use axum::extract::State;
use roomkit_graph_store::{Entry, RunCursor, RunFilter, RunRecord, RunStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::App;
use crate::auth::Org;
use crate::error::{ApiError, ErrorBody};
use crate::extract::QueryParams;
use crate::runs::{RunLink, cursor, page_size};

/// How many transcript entries are read back from a run's end, at most, to
/// find what its waiting points ask (reading stops at the entries that began
/// the waits, which are most often in the last page).
const LOOK_BACK: u64 = 100_000;

/// Entries read at a time.
const PAGE: u64 = 100;

/// What reading back found about a node the run waits on.
#[derive(Clone)]
enum Found {
    /// Not found yet.
    Unknown,
    /// It asks a person: `node_waiting` with its prompt, actions and time.
    Asks(Option<String>, Vec<String>, i64),
    /// It waits on a child run (a subgraph's): not a step of this run's.
    Child,
}

/// One step waiting for a person.
#[derive(Serialize, ToSchema)]
pub(crate) struct WaitingStep {
    /// The run that waits.
    pub(crate) run_id: String,
    /// Its graph.
    pub(crate) graph_id: String,
    /// The graph version it runs.
    pub(crate) graph_version: u64,
    /// The node waiting: what an answer names as its `node_id`.
    pub(crate) node_id: String,
    /// What it asks.
    pub(crate) prompt: Option<String>,
    /// The answers it takes (any when empty).
    pub(crate) actions: Vec<String>,
    /// When it began to wait (milliseconds since the epoch).
    pub(crate) waiting_since: Option<i64>,
    /// When the run started.
    pub(crate) created_at: i64,
    /// For a child run: the run and node that started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<RunLink>,
}

/// A page of the inbox.
#[derive(Serialize, ToSchema)]
pub(crate) struct Inbox {
    /// The waiting steps of a page of waiting runs, newest run first, a run's
    /// steps in node order. A page may hold fewer steps than `limit`, or
    /// none: `limit` counts runs, and a run waiting on a timer or a child
    /// run has no step of its own here.
    pub(crate) waiting: Vec<WaitingStep>,
    /// The `cursor` of the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// Which page of the inbox.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct InboxQuery {
    /// Only runs of this graph.
    pub(crate) graph_id: Option<String>,
    /// The next page: the `next_cursor` of the previous one (with the same filter).
    pub(crate) cursor: Option<String>,
    /// At most this many runs (100 by default, 1000 at most).
    pub(crate) limit: Option<usize>,
}

/// Every step of the organization's runs that waits for a person, newest
/// run first, a page of runs at a time (as `listRuns`, whose cursors these are).
#[utoipa::path(get, path = "/v1/inbox", tag = "runs", operation_id = "getInbox", params(InboxQuery),
    responses((status = 200, description = "A page of waiting steps", body = Inbox), (status = 400, description = "A bad cursor", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn inbox(
    State(app): State<App>,
    Org(org): Org,
    QueryParams(query): QueryParams<InboxQuery>,
) -> Result<Json<Inbox>, ApiError> {
    let filter = RunFilter {
        org: Some(org),
        graph_id: query.graph_id,
        status: Some(RunStatus::Waiting),
        after: cursor(query.cursor.as_deref(), RunCursor::decode)?,
        ..RunFilter::default()
    };
    let page = app.runner.store().run_page(&filter, page_size(query.limit)?).await?;
    let mut waiting = Vec::new();
    for run in page.items {
        waiting.extend(steps(&app, run).await?);
    }
    Ok(Json(Inbox { waiting, next_cursor: page.next_cursor }))
}

/// The steps `run` waits on, with what each asks: read back from the end of
/// its transcript (the latest `node_waiting` of each node; a node whose
/// latest is a `child_started` waits on a child run, whose own steps are listed).
async fn steps(app: &App, run: RunRecord) -> Result<Vec<WaitingStep>, ApiError> {
    let nodes: Vec<String> = run.waiting_on().into_iter().map(str::to_owned).collect();
    let mut found = vec![Found::Unknown; nodes.len()];
    let mut end = run.last_seq;
    let oldest = run.last_seq.saturating_sub(LOOK_BACK);
    while end > oldest && found.iter().any(|found| matches!(found, Found::Unknown)) {
        let from = end.saturating_sub(PAGE).max(oldest);
        let count = usize::try_from(end - from).unwrap_or(usize::MAX);
        let events = app.runner.store().transcript(&run.run_id, from, count).await?;
        for event in events.iter().rev() {
            let (node_id, what) = match &event.entry {
                Entry::NodeWaiting { node_id, prompt, actions } => {
                    (node_id, Found::Asks(prompt.clone(), actions.clone(), event.at))
                }
                Entry::ChildStarted { node_id, .. } => (node_id, Found::Child),
                _ => continue,
            };
            if let Some(i) = nodes.iter().position(|node| node == node_id)
                && matches!(found[i], Found::Unknown)
            {
                found[i] = what;
            }
        }
        end = from;
    }
    Ok(nodes
        .into_iter()
        .zip(found)
        .filter_map(|(node_id, found)| {
            let (prompt, actions, waiting_since) = match found {
                Found::Asks(prompt, actions, at) => (prompt, actions, Some(at)),
                // Past the look-back: still listed, so no step is ever missing.
                Found::Unknown => (None, Vec::new(), None),
                Found::Child => return None,
            };
            Some(WaitingStep {
                run_id: run.run_id.clone(),
                graph_id: run.graph_id.clone(),
                graph_version: run.graph_version,
                node_id,
                prompt,
                actions,
                waiting_since,
                created_at: run.created_at,
                parent: run.parent.as_ref().map(RunLink::from),
            })
        })
        .collect())
}
