//! The writer thread: the one owner of the write connection, applying writes
//! with group commit. It knows nothing of what a write changes: each request
//! carries its SQL (from the file of its concern) as a closure.
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

use roomkit_graph_store::{Cause, RunRecord, StoreError, TranscriptEvent, Wake, Wakes};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::DbError;

/// At most this many requests share a transaction, so a flood of writes still
/// gets answered in bounded batches.
const MAX_GROUP: usize = 512;

/// Where the answer to a request goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write for the writer thread: what it changes (the SQL of its concern,
/// run on the writer's transaction), and where its outcome goes.
pub(crate) struct Request(Box<dyn Job>);

impl Request {
    /// A write that appends no transcript event, answering what it returns.
    pub(crate) fn new<T, W>(write: W, reply: Reply<T>) -> Self
    where
        T: Send + 'static,
        W: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        Request(Box::new(Write { write, appended: appends_nothing, reply }))
    }

    /// A write that appends transcript events, answering the run's record
    /// and them: once committed, they wake the followers.
    pub(crate) fn appending<W>(write: W, reply: Reply<(RunRecord, Vec<TranscriptEvent>)>) -> Self
    where
        W: FnOnce(&Connection) -> Result<(RunRecord, Vec<TranscriptEvent>), DbError> + Send + 'static,
    {
        Request(Box::new(Write { write, appended: appended_events, reply }))
    }
}

fn appends_nothing<T>(_: &T) -> &[TranscriptEvent] {
    &[]
}

fn appended_events((_, events): &(RunRecord, Vec<TranscriptEvent>)) -> &[TranscriptEvent] {
    events
}

/// A request, whatever it answers.
trait Job: Send {
    /// Applies the request in its own savepoint of `tx`, or straight in `tx`
    /// when it is `alone` in its group (then a refused request rolls back the
    /// whole transaction). The events it appends are kept for the followers
    /// only when someone `followed` it.
    fn apply(self: Box<Self>, tx: &mut Transaction<'_>, path: &Path, alone: bool, followed: bool) -> Applied;

    /// Answers without applying: the group could not be applied.
    fn fail(self: Box<Self>, err: &StoreError);
}

/// A write answering `T`.
struct Write<T, W> {
    write: W,
    /// The transcript events in its answer.
    appended: fn(&T) -> &[TranscriptEvent],
    reply: Reply<T>,
}

impl<T, W> Job for Write<T, W>
where
    T: Send + 'static,
    W: FnOnce(&Connection) -> Result<T, DbError> + Send,
{
    fn apply(self: Box<Self>, tx: &mut Transaction<'_>, path: &Path, alone: bool, followed: bool) -> Applied {
        let Write { write, appended, reply } = *self;
        let result = in_savepoint(tx, path, alone, write);
        let events = match &result {
            Ok(answer) if followed => appended(answer).to_vec(),
            _ => Vec::new(),
        };
        Applied::new(result, events, reply)
    }

    fn fail(self: Box<Self>, err: &StoreError) {
        // A caller that went away no longer wants the answer.
        let _ = self.reply.send(Err(err.clone()));
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
        .map_err(|err| {
            StoreError::Backend(Cause::new(format!("cannot start the writer thread: {err}")).with_source(err))
        })?;
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
            group.into_iter().for_each(|request| request.0.fail(&err));
            return;
        }
    };

    let alone = group.len() == 1;
    let followed = wakes.is_followed();
    let mut applied = Vec::with_capacity(group.len());
    let mut lost = None;
    let mut requests = group.into_iter();
    for request in requests.by_ref() {
        let done = request.0.apply(&mut tx, path, alone, followed);
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
        requests.for_each(|request| request.0.fail(err));
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
    use crate::{graphs, runs};
    use roomkit_graph::{EngineState, Graph, Trigger};
    use roomkit_graph_store::{Entry, NewRun, RunStatus, StepCommit};
    use serde_json::{Map, json};

    fn step(run_id: &str, expected_version: u64, node: &str) -> StepCommit {
        StepCommit {
            wake_at: None,
            run_id: run_id.into(),
            expected_version,
            at: roomkit_graph_store::now_millis(),
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
            children: Default::default(),
        };
        let run = NewRun {
            concurrency: None,
            origin: None,
            parent: None,
            org: "default".into(),
            graph_id: "g".into(),
            graph_version: 1,
            at: roomkit_graph_store::now_millis(),
            trigger: json!({}),
            state,
            key: None,
            first_step: None,
            lease: None,
        };
        let graph = Graph::new("g", "G", Trigger::manual());
        let commit = |step: StepCommit| move |conn: &Connection| runs::commit_step(conn, &step);
        let group = vec![
            Request::new(move |conn| graphs::save_graph(conn, "default", &graph), graph_reply),
            Request::appending(move |conn| runs::create_run(conn, &run), run_reply),
            Request::appending(commit(step("r", 1, "a")), first_reply),
            Request::appending(commit(step("r", 1, "stale")), stale_reply),
            Request::appending(commit(step("r", 2, "b")), second_reply),
        ];
        commit_group(&mut conn, &path, group, &wakes);

        assert_eq!(graph_answer.blocking_recv().unwrap().unwrap().version, 1);
        assert_eq!(run_answer.blocking_recv().unwrap().unwrap().0.version, 1);
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
