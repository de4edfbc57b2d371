//! A run's transcript as an async iterator: [`Transcript`].

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use roomkit_graph_runner::Runner;
use roomkit_graph_store::{StoreError, TranscriptEvent};
use tokio::sync::{Mutex, watch};

use super::errors::store_error;
use super::run::event_dict;

/// How many events one read of a transcript fetches.
const PAGE: usize = 256;

type Events = BoxStream<'static, Result<TranscriptEvent, StoreError>>;

/// A run's transcript, event by event (dicts: `{"run_id", "seq", "at",
/// "type", ...}`), from `Runner.transcript`: `async for event in ...`.
/// Followed live, it ends once the run is over; otherwise once it has given
/// what is committed.
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Transcript {
    /// None once it has ended (or was closed).
    events: Arc<Mutex<Option<Events>>>,
    /// True once `aclose()` was called: a `__anext__` waiting ends.
    closed: watch::Sender<bool>,
}

impl Transcript {
    /// Run `run_id`'s transcript after sequence number `after`: what is
    /// committed, then, with `follow`, every event as it is committed (by
    /// any process) until the run is over.
    pub(crate) fn new(runner: Runner, run_id: String, after: u64, follow: bool) -> Transcript {
        let events = match follow {
            true => runner.store().follow(&run_id, after),
            false => committed(runner, run_id, after),
        };
        Transcript { events: Arc::new(Mutex::new(Some(events))), closed: watch::Sender::new(false) }
    }
}

/// What is committed of a transcript after `after`, read a page at a time.
fn committed(runner: Runner, run_id: String, after: u64) -> Events {
    // (what is read and not yet given, the last seq read, whether the end was read)
    let start = (Vec::<TranscriptEvent>::new().into_iter(), after, false);
    stream::unfold((runner, start), move |(runner, (mut page, last, ended))| {
        let run_id = run_id.clone();
        async move {
            if let Some(event) = page.next() {
                return Some((Ok(event), (runner, (page, last, ended))));
            }
            if ended {
                return None;
            }
            match runner.store().transcript(&run_id, last, PAGE).await {
                Ok(events) => {
                    let ended = events.len() < PAGE;
                    let last = events.last().map_or(last, |event| event.seq);
                    let mut page = events.into_iter();
                    let first = page.next()?;
                    Some((Ok(first), (runner, (page, last, ended))))
                }
                // An error ends the transcript once given.
                Err(error) => Some((Err(error), (runner, (Vec::new().into_iter(), last, true)))),
            }
        }
    })
    .boxed()
}

#[pymethods]
impl Transcript {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let events = Arc::clone(&self.events);
        let mut closed = self.closed.subscribe();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut events = events.lock().await;
            // A transcript closed while this waits for its next event ends.
            let next = match events.as_mut() {
                Some(stream) => tokio::select! {
                    next = stream.next() => next,
                    () = async { drop(closed.wait_for(|closed| *closed).await) } => None,
                },
                None => None,
            };
            match next {
                Some(Ok(event)) => Python::attach(|py| event_dict(py, &event).map(Bound::unbind)),
                Some(Err(error)) => {
                    *events = None;
                    Err(store_error(error))
                }
                None => {
                    *events = None;
                    Err(PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }

    /// Stops following: the iterator ends (what `async for` does on `break`
    /// is up to the caller; this frees the follower at once), and so does a
    /// `__anext__` waiting for the next event.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.closed.send_replace(true);
        let events = Arc::clone(&self.events);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            events.lock().await.take();
            Ok(())
        })
    }
}
