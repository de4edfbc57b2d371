//! The writer thread: the one owner of the write connection, applying writes
//! with group commit.
//!
//! Requests arrive on a channel. The thread takes one, then every other one
//! already queued, and applies them all in ONE transaction (one fsync for many
//! steps), each in its own savepoint so that a refused request (a conflict, an
//! unknown run) is rolled back alone and answered with its own error while the
//! others commit. If the transaction cannot start or commit (locked, disk
//! full), every request of the group gets that error and nothing of the group
//! is kept. After a successful commit the replies go out, then the new
//! transcript events wake the followers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use roomkit_graph::Graph;
use roomkit_graph_store::{
    Lease, NewRun, RunRecord, StepCommit, StoreError, StoredGraph, TranscriptEvent, Wake, Wakes,
    WorkerRegistration, now_millis,
};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::DbError;
use crate::{workers, write};

/// At most this many requests share a transaction, so a flood of writes still
/// gets answered in bounded batches.
const MAX_GROUP: usize = 512;

/// Where the answer to a request goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write of [`Request::Change`].
pub(crate) type Change = Box<dyn FnOnce(&Connection) -> Result<(), DbError> + Send>;

/// One write for the writer thread, with where to send its outcome.
pub(crate) enum Request {
    /// [`write::save_graph`].
    SaveGraph { org: String, graph: Graph, reply: Reply<StoredGraph> },
    /// A write that appends no transcript event and answers nothing but its
    /// success (a token, a secret).
    Change { change: Change, reply: Reply<()> },
    /// [`write::create_run`] (boxed: a run with its first step is by far
    /// the largest request).
    CreateRun { run: Box<NewRun>, reply: Reply<RunRecord> },
    /// [`write::commit_step`].
    CommitStep { commit: StepCommit, reply: Reply<(RunRecord, Vec<TranscriptEvent>)> },
    /// [`write::claim_run`].
    Claim { run_id: String, lease: Lease, reply: Reply<Option<RunRecord>> },
    /// [`write::renew_lease`].
    Renew { run_id: String, lease: Lease, reply: Reply<RunRecord> },
    /// [`write::release_run`].
    Release { run_id: String, owner: String, reply: Reply<bool> },
    /// [`workers::register`].
    Register { registration: WorkerRegistration, reply: Reply<WorkerRegistration> },
}

impl Request {
    /// Answers without applying: the group could not be applied.
    fn fail(self, err: &StoreError) {
        // A caller that went away no longer wants the answer.
        match self {
            Request::SaveGraph { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::Change { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::CreateRun { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::CommitStep { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::Claim { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::Renew { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::Release { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Request::Register { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }

    /// Applies the request in its own savepoint of `tx`, or straight in `tx`
    /// when it is `alone` in its group (then a refused request rolls back the
    /// whole transaction). The events it appends are kept for the broadcast
    /// only when someone `followed` it.
    fn apply(self, tx: &mut Transaction<'_>, path: &Path, alone: bool, followed: bool) -> Applied {
        match self {
            Request::SaveGraph { org, graph, reply } => Applied::new(
                in_savepoint(tx, path, alone, |conn| write::save_graph(conn, &org, &graph)),
                Vec::new(),
                reply,
            ),
            Request::Change { change, reply } => {
                Applied::new(in_savepoint(tx, path, alone, change), Vec::new(), reply)
            }
            Request::CreateRun { run, reply } => {
                match in_savepoint(tx, path, alone, |conn| write::create_run(conn, &run)) {
                    Ok((record, events)) => Applied::new(Ok(record), events, reply),
                    Err(err) => Applied::new(Err(err), Vec::new(), reply),
                }
            }
            Request::CommitStep { commit, reply } => {
                let result = in_savepoint(tx, path, alone, |conn| write::commit_step(conn, &commit));
                let events = match &result {
                    Ok((_, events)) if followed => events.clone(),
                    _ => Vec::new(),
                };
                Applied::new(result, events, reply)
            }
            Request::Claim { run_id, lease, reply } => Applied::new(
                in_savepoint(tx, path, alone, |conn| write::claim_run(conn, &run_id, &lease)),
                Vec::new(),
                reply,
            ),
            Request::Renew { run_id, lease, reply } => Applied::new(
                in_savepoint(tx, path, alone, |conn| write::renew_lease(conn, &run_id, &lease)),
                Vec::new(),
                reply,
            ),
            Request::Release { run_id, owner, reply } => Applied::new(
                in_savepoint(tx, path, alone, |conn| write::release_run(conn, &run_id, &owner)),
                Vec::new(),
                reply,
            ),
            Request::Register { registration, reply } => Applied::new(
                in_savepoint(tx, path, alone, |conn| workers::register(conn, &registration, now_millis())),
                Vec::new(),
                reply,
            ),
        }
    }
}

/// A request applied in the open transaction, waiting for the commit.
struct Applied {
    /// Its error, if it was refused (its savepoint is rolled back).
    error: Option<StoreError>,
    /// The transcript events it appended, to broadcast once committed.
    events: Vec<TranscriptEvent>,
    /// Sends its outcome: its own result if the group committed, else the
    /// group's error.
    answer: Answer,
}

/// Sends a request's outcome, given whether its group committed.
type Answer = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

impl Applied {
    fn new<T: Send + 'static>(
        result: Result<T, StoreError>,
        events: Vec<TranscriptEvent>,
        reply: Reply<T>,
    ) -> Self {
        let error = result.as_ref().err().cloned();
        let answer = Box::new(move |committed: Result<(), &StoreError>| {
            let outcome = match committed {
                Ok(()) => result,
                Err(err) => Err(err.clone()),
            };
            // A caller that went away no longer wants the answer.
            let _ = reply.send(outcome);
        });
        Applied { error, events, answer }
    }
}

/// Runs `op` in a savepoint: released if it succeeds, rolled back (by
/// dropping it) if it fails. A request `alone` in its group needs none: the
/// transaction is rolled back instead.
fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    path: &Path,
    alone: bool,
    op: impl FnOnce(&Connection) -> Result<T, DbError>,
) -> Result<T, StoreError> {
    if alone {
        return op(tx).map_err(|err| err.into_store(path));
    }
    let run = || -> Result<T, DbError> {
        let savepoint = tx.savepoint()?;
        let value = op(&savepoint)?;
        savepoint.commit()?;
        Ok(value)
    };
    run().map_err(|err| err.into_store(path))
}

/// Starts the writer thread on `conn`. It ends once every sender of the
/// returned channel is dropped and the last group is answered.
pub(crate) fn spawn(
    conn: Connection,
    path: PathBuf,
    wakes: Wakes,
) -> Result<(mpsc::Sender<Request>, thread::JoinHandle<()>), StoreError> {
    let (requests, inbox) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("roomkit-sqlite-writer".into())
        .spawn(move || run(conn, &path, &inbox, &wakes))
        .map_err(|err| StoreError::Backend(format!("cannot start the writer thread: {err}")))?;
    Ok((requests, handle))
}

fn run(mut conn: Connection, path: &Path, inbox: &mpsc::Receiver<Request>, wakes: &Wakes) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, path, group, wakes);
    }
}

/// Applies `group` in one transaction and answers every request.
pub(crate) fn commit_group(conn: &mut Connection, path: &Path, group: Vec<Request>, wakes: &Wakes) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => {
            let err = DbError::from(err).into_store(path);
            group.into_iter().for_each(|request| request.fail(&err));
            return;
        }
    };

    let alone = group.len() == 1;
    let followed = wakes.is_followed();
    let mut applied = Vec::with_capacity(group.len());
    let mut lost = None;
    let mut requests = group.into_iter();
    for request in requests.by_ref() {
        let done = request.apply(&mut tx, path, alone, followed);
        // Some errors (SQLITE_FULL, IOERR...) may make SQLite roll back the whole
        // transaction, not just the statement: then nothing of the group is kept.
        let tx_gone = tx.is_autocommit();
        if tx_gone {
            lost = Some(done.error.as_ref().map_or_else(
                || StoreError::Backend("the transaction was rolled back by SQLite".into()),
                StoreError::clone,
            ));
        }
        applied.push(done);
        if tx_gone {
            break;
        }
    }

    let committed = match lost {
        Some(err) => Err(err),
        // A request alone, refused: its changes go with the transaction, and it
        // gets its own error.
        None if alone && applied.iter().any(|done| done.error.is_some()) => {
            drop(tx);
            Ok(())
        }
        None => tx.commit().map_err(|err| DbError::from(err).into_store(path)),
    };
    if let Err(err) = &committed {
        requests.for_each(|request| request.fail(err));
    }
    // The callers first: they wait on this commit to go on. Followers next,
    // only when some listen.
    let mut appended = Vec::new();
    for done in applied {
        (done.answer)(committed.as_ref().map(|_| ()));
        appended.extend(done.events);
    }
    if committed.is_ok() && wakes.is_followed() {
        for event in appended {
            wakes.wake(Wake::Committed(Arc::new(event)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomkit_graph::{EngineState, Trigger};
    use roomkit_graph_store::{Entry, RunStatus};
    use serde_json::{Map, json};

    fn step(run_id: &str, expected_version: u64, node: &str) -> StepCommit {
        StepCommit {
            wake_at: None,
            run_id: run_id.into(),
            expected_version,
            writes: vec![(node.into(), json!({ "output": node }))],
            current_node_id: Some(node.into()),
            previous_node_id: None,
            status: RunStatus::Running,
            error: None,
            entries: vec![Entry::NodeCompleted { node_id: node.into(), output: json!(node) }],
            lease: None,
            steps: 0,
            pending: Vec::new(),
        }
    }

    /// A refused request in the middle of a group is rolled back alone: the
    /// requests before and after it commit in the same transaction.
    #[test]
    fn a_refused_request_does_not_spoil_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.db");
        let mut conn = crate::schema::open_writer(&path, &crate::Options::default()).unwrap();
        let wakes = Wakes::default();
        let mut followed = wakes.subscribe();

        let (graph_reply, graph_answer) = oneshot::channel();
        let (run_reply, run_answer) = oneshot::channel();
        let (first_reply, mut first_answer) = oneshot::channel();
        let (stale_reply, mut stale_answer) = oneshot::channel();
        let (second_reply, mut second_answer) = oneshot::channel();
        let state = EngineState {
            context: Map::new(),
            current_node_id: Some("a".into()),
            previous_node_id: None,
            waiting: false,
            run_id: "r".into(),
            pending: Vec::new(),
        };
        let group = vec![
            Request::SaveGraph {
                org: "default".into(),
                graph: Graph::new("g", "G", Trigger::manual()),
                reply: graph_reply,
            },
            Request::CreateRun {
                run: Box::new(NewRun {
                    org: "default".into(),
                    graph_id: "g".into(),
                    graph_version: 1,
                    trigger: json!({}),
                    state,
                    key: None,
                    first_step: None,
                    lease: None,
                }),
                reply: run_reply,
            },
            Request::CommitStep { commit: step("r", 1, "a"), reply: first_reply },
            Request::CommitStep { commit: step("r", 1, "stale"), reply: stale_reply },
            Request::CommitStep { commit: step("r", 2, "b"), reply: second_reply },
        ];
        commit_group(&mut conn, &path, group, &wakes);

        assert_eq!(graph_answer.blocking_recv().unwrap().unwrap().version, 1);
        assert_eq!(run_answer.blocking_recv().unwrap().unwrap().version, 1);
        assert_eq!(first_answer.try_recv().unwrap().unwrap().0.version, 2);
        assert!(matches!(stale_answer.try_recv().unwrap(), Err(StoreError::Conflict { .. })));
        let (record, appended) = second_answer.try_recv().unwrap().unwrap();
        assert_eq!((record.version, record.last_seq, appended[0].seq), (3, 3, 3));

        let seqs: Vec<u64> = std::iter::from_fn(|| match followed.try_recv().ok()? {
            Wake::Committed(event) => Some(event.seq),
            Wake::Appended(_) => None,
        })
        .collect();
        assert_eq!(seqs, [1, 2, 3], "only committed events are broadcast, in order");
        let stale_rows: i64 = conn
            .query_row("SELECT count(*) FROM transcript WHERE writes_json LIKE '%stale%'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(stale_rows, 0);
    }
}
