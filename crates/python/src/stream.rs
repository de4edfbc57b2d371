//! `engine.stream()`: a run's events as an async iterator of dicts
//! (`{mode, payload, node_id, seq}`), from the core's step streams.
//!
//! The stream's driver (start, then one core step stream per step, with the
//! run log) is a Rust future polled by each `__anext__` until it has queued
//! an event; the error that ends a run comes after the failing step's events.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures_util::StreamExt;
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use roomkit_graph::{StepStatus, StreamMode};
use serde_json::Value;

use crate::convert::to_py;
use crate::driver::{Pending, handed_out, take_abort, throw_pending};
use crate::shared::{Lease, Shared};
use crate::steps::{begin, finish, start};

/// The driver: the run, queuing events as it goes.
type Driver = Pin<Box<dyn Future<Output = PyResult<()>> + Send>>;

/// One event, numbered in the stream.
struct Queued {
    mode: StreamMode,
    payload: Value,
    node_id: Option<String>,
    seq: u64,
}

/// Where the driver queues events, numbering them.
#[derive(Default)]
struct Queue {
    events: VecDeque<Queued>,
    next_seq: u64,
}

impl Queue {
    fn push(&mut self, mode: StreamMode, payload: Value, node_id: Option<String>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push_back(Queued { mode, payload, node_id, seq });
    }
}

/// What the driver left: running, or ended (with the error to raise once
/// the queued events are out).
enum Run {
    Going(Driver),
    Failed(PyErr),
    Ended,
}

/// The async iterator `WorkflowEngine.stream()` returns.
#[pyclass(module = "roomkit_graph.engine.streaming", name = "EventStream", frozen)]
pub(crate) struct EventStream {
    queue: Arc<Mutex<Queue>>,
    run: Arc<Mutex<Run>>,
    shared: Arc<Shared>,
    /// Whether this stream is the engine's active one, until it ends.
    owns: Arc<AtomicBool>,
    /// Whether an `__anext__` or `aclose` of this stream is under way.
    busy: Arc<AtomicBool>,
}

/// An `__anext__` or `aclose` under way, until it ends or is dropped: a
/// second one meanwhile (from another task, or from a handler the first one
/// runs) is refused, as Python's async generators refuse it.
struct Running(Arc<AtomicBool>);

impl Running {
    fn enter(busy: &Arc<AtomicBool>, method: &str) -> PyResult<Running> {
        if busy.swap(true, Ordering::AcqRel) {
            return Err(PyRuntimeError::new_err(format!(
                "{method}(): asynchronous generator is already running"
            )));
        }
        Ok(Running(Arc::clone(busy)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl EventStream {
    /// The stream ended or was dropped: another may start.
    fn release(shared: &Shared, owns: &AtomicBool) {
        if owns.swap(false, Ordering::AcqRel) {
            shared.streaming.store(false, Ordering::Release);
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        EventStream::release(&self.shared, &self.owns);
    }
}

/// Reads the modes a stream was asked for.
pub(crate) fn modes(modes: &Bound<'_, PyAny>) -> PyResult<Vec<StreamMode>> {
    let mut read = Vec::new();
    for mode in modes.try_iter()? {
        let mode = mode?;
        let mode = match mode.str()?.to_str()? {
            "values" => StreamMode::Values,
            "updates" => StreamMode::Updates,
            "lifecycle" => StreamMode::Lifecycle,
            "custom" => StreamMode::Custom,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown stream mode {other:?}: the modes are values, updates, lifecycle and custom"
                )));
            }
        };
        read.push(mode);
    }
    Ok(read)
}

impl EventStream {
    /// A stream of a new run of the engine in `shared` with `trigger`,
    /// showing `modes`; nothing runs until the first `__anext__`.
    pub(crate) fn new(shared: Arc<Shared>, this: Py<PyAny>, trigger: Value, modes: Vec<StreamMode>) -> Self {
        let queue = Arc::new(Mutex::new(Queue::default()));
        let out = Arc::clone(&queue);
        let owns = Arc::new(AtomicBool::new(false));
        let owner = Arc::clone(&owns);
        let engine = Arc::clone(&shared);
        let driver: Driver = Box::pin(async move {
            let single_shot = || {
                PyRuntimeError::new_err("stream() is single-shot; a stream is already active on this engine")
            };
            if shared.streaming.swap(true, Ordering::AcqRel) {
                return Err(single_shot());
            }
            owner.store(true, Ordering::Release);
            let mut lease = Lease::take(&shared).map_err(|_| single_shot())?;
            let push = |mode, payload, node_id| {
                out.lock().unwrap_or_else(PoisonError::into_inner).push(mode, payload, node_id);
            };
            Python::attach(|py| start(py, &shared, lease.core(), trigger))?;
            if modes.contains(&StreamMode::Values) {
                push(StreamMode::Values, Value::Object(lease.core().context().to_entries()), None);
            }
            // Lifecycle events tell how each step ended, for the run log.
            let mut asked = modes.clone();
            if !asked.contains(&StreamMode::Lifecycle) {
                asked.push(StreamMode::Lifecycle);
            }
            loop {
                let core = lease.core();
                let Some(begun) = begin(&shared, core) else { break };
                let mut error = None;
                {
                    let mut events = core.stream_step(&asked);
                    while let Some(event) = events.next().await {
                        match event {
                            Ok(event) if modes.contains(&event.mode) => {
                                push(event.mode, event.payload, event.node_id);
                                HandOver::default().await;
                            }
                            Ok(_) => {}
                            Err(failed) => error = Some(failed),
                        }
                    }
                }
                let status = match error {
                    Some(error) => StepStatus::Failed { error, retry_in: None },
                    None if core.waiting() => StepStatus::Waiting(Vec::new()),
                    None => StepStatus::Completed,
                };
                let moved = finish(&shared, core, status, &begun)?;
                if !moved || core.waiting() {
                    break;
                }
            }
            drop(this);
            Ok(())
        });
        EventStream {
            queue,
            run: Arc::new(Mutex::new(Run::Going(driver))),
            shared: engine,
            owns,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Hands the event just queued to the consumer before the run goes on (the
/// next node's handler runs only when the next event is asked for): pending
/// once, without a wake, as [`next_event`] takes the queued event on pending
/// and the next `__anext__` polls the driver again.
#[derive(Default)]
struct HandOver {
    handed: bool,
}

impl Future for HandOver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.handed {
            return Poll::Ready(());
        }
        self.handed = true;
        Poll::Pending
    }
}

/// The next queued event, polling the driver until there is one.
fn next_event(
    queue: &Mutex<Queue>,
    run: &Mutex<Run>,
    cx: &mut std::task::Context<'_>,
) -> Poll<PyResult<Option<Queued>>> {
    loop {
        // A cancellation thrown in goes to the handler's coroutine first, not
        // past it to a queued event.
        if !throw_pending()
            && let Some(event) = queue.lock().unwrap_or_else(PoisonError::into_inner).events.pop_front()
        {
            return Poll::Ready(Ok(Some(event)));
        }
        let mut run = run.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *run {
            Run::Going(driver) => match driver.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => *run = Run::Ended,
                Poll::Ready(Err(error)) => *run = Run::Failed(error),
                Poll::Pending => {
                    if let Some(error) = take_abort() {
                        // A handler was interrupted: the run stops on its node.
                        *run = Run::Ended;
                        return Poll::Ready(Err(error));
                    }
                    if throw_pending() {
                        // Nothing took it: the call ends with it.
                        return Poll::Pending;
                    }
                    // A handler's coroutine waits on what it handed out: the
                    // task must get it now; queued events go out next time.
                    if handed_out() || queue.lock().unwrap_or_else(PoisonError::into_inner).events.is_empty()
                    {
                        return Poll::Pending;
                    }
                }
            },
            Run::Failed(_) => {
                let Run::Failed(error) = std::mem::replace(&mut *run, Run::Ended) else { unreachable!() };
                return Poll::Ready(Err(error));
            }
            Run::Ended => return Poll::Ready(Ok(None)),
        }
    }
}

#[pymethods]
impl EventStream {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__(&self) -> Pending {
        let (queue, run) = (Arc::clone(&self.queue), Arc::clone(&self.run));
        let (shared, owns, busy) = (Arc::clone(&self.shared), Arc::clone(&self.owns), Arc::clone(&self.busy));
        Pending::new(Box::pin(async move {
            let _running = Running::enter(&busy, "anext")?;
            let event = std::future::poll_fn(|cx| next_event(&queue, &run, cx)).await;
            if !matches!(event, Ok(Some(_))) {
                EventStream::release(&shared, &owns);
            }
            let event = event?;
            Python::attach(|py| {
                let Some(event) = event else { return Err(PyStopAsyncIteration::new_err(())) };
                let dict = PyDict::new(py);
                dict.set_item("mode", mode_name(event.mode))?;
                dict.set_item("payload", to_py(py, &event.payload)?)?;
                dict.set_item("node_id", event.node_id)?;
                dict.set_item("seq", event.seq)?;
                Ok(dict.into_any().unbind())
            })
        }))
    }

    /// Stops the stream: the run stays where it is.
    fn aclose(&self) -> Pending {
        let run = Arc::clone(&self.run);
        let (shared, owns, busy) = (Arc::clone(&self.shared), Arc::clone(&self.owns), Arc::clone(&self.busy));
        Pending::new(Box::pin(async move {
            let _running = Running::enter(&busy, "aclose")?;
            *run.lock().unwrap_or_else(PoisonError::into_inner) = Run::Ended;
            EventStream::release(&shared, &owns);
            Python::attach(|py| Ok(py.None()))
        }))
    }
}

fn mode_name(mode: StreamMode) -> &'static str {
    match mode {
        StreamMode::Values => "values",
        StreamMode::Updates => "updates",
        StreamMode::Lifecycle => "lifecycle",
        StreamMode::Custom => "custom",
    }
}
