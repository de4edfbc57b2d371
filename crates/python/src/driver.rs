//! Running the engine's Rust futures on the caller's asyncio loop, on the
//! loop's own thread.
//!
//! An async method of the package (`engine.run()`, say) returns a [`Pending`]:
//! an awaitable that polls the Rust future each time the awaiting task steps
//! it. A Python coroutine the future awaits (a handler's `execute`, a
//! registered function) is driven by [`PyAwait`] in the same poll: one that
//! completes without suspending costs no task and no thread hop. One that
//! awaits an asyncio future stays in the caller's task (its context
//! variables, its cancellation): the task waits on a loop future that the
//! awaited future's completion, or the Rust side (a node's `timeout`), resolves,
//! and a cancellation is thrown into the coroutine, the awaited future
//! cancelled. Any other object it yields (a bare `yield`) goes up to the task
//! as it is. What the Rust side waits on by itself (a parallel child's task,
//! a timer) is such a loop future too.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyIterator;
use pyo3::types::iterator::PySendResult;

/// What the engine's futures produce: a Python value, or the exception to raise.
pub(crate) type PyFuture = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>;

/// The background runtime whose timers the engine's futures use (a node's
/// `timeout` policy): its handle is entered around each poll.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("roomkit-graph-timers")
            .enable_time()
            .build()
            .expect("a runtime with one thread and a timer can be built")
    })
}

/// What the task stepping a [`Pending`] passed in, and what a coroutine
/// driven inside the poll handed out, for the length of one poll.
struct Frame {
    inbox: Inbox,
    yielded: Option<Py<PyAny>>,
    /// Whether a coroutine driven in the poll waits on an asyncio future
    /// (the task then waits on a loop future its completion resolves).
    parked: bool,
    /// What ends the call, raised as it is: a handler's exception that is
    /// no failure of its node (a cancellation, `KeyboardInterrupt`...).
    abort: Option<PyErr>,
}

/// What the awaiting task passed to a [`Pending`]'s `send` or `throw`.
enum Inbox {
    Send(Py<PyAny>),
    Throw(PyErr),
    Taken,
}

thread_local! {
    /// One frame per [`Pending`] being polled on this thread, innermost last.
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The frame of a [`Pending`] being polled: pushed when made, popped when
/// taken or dropped (also when the poll panics).
struct FrameGuard {
    popped: bool,
}

impl FrameGuard {
    fn push(inbox: Inbox) -> Self {
        FRAMES.with_borrow_mut(|frames| {
            frames.push(Frame { inbox, yielded: None, parked: false, abort: None })
        });
        FrameGuard { popped: false }
    }

    fn pop(mut self) -> Option<Frame> {
        self.popped = true;
        FRAMES.with_borrow_mut(|frames| frames.pop())
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        if !self.popped {
            FRAMES.with_borrow_mut(|frames| frames.pop());
        }
    }
}

/// Wakes a [`Pending`]: completes the loop future it handed to its task, if
/// any (from another thread, through `call_soon_threadsafe`), or notes that
/// the wake came during the poll.
struct LoopWaker {
    woken: AtomicBool,
    /// The loop and the future the task waits on, when the Rust side waits.
    target: Mutex<Option<(Py<PyAny>, Py<PyAny>)>>,
    thread: ThreadId,
}

impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let Some((event_loop, future)) = self.target.lock().unwrap_or_else(PoisonError::into_inner).take()
        else {
            return;
        };
        // Nothing to wake once the interpreter is finalizing.
        Python::try_attach(|py| {
            let result = if std::thread::current().id() == self.thread {
                resolve(future.bind(py))
            } else {
                wake_function(py).and_then(|wake| {
                    event_loop.bind(py).call_method1("call_soon_threadsafe", (wake, future)).map(drop)
                })
            };
            if let Err(error) = result {
                // The loop is closed: nobody waits any more.
                error.write_unraisable(py, None);
            }
        });
    }
}

/// Completes `future` unless it is done (cancelled, say).
fn resolve(future: &Bound<'_, PyAny>) -> PyResult<()> {
    if !future.call_method0("done")?.is_truthy()? {
        future.call_method1("set_result", (future.py().None(),))?;
    }
    Ok(())
}

#[pyfunction]
fn _wake(future: &Bound<'_, PyAny>) -> PyResult<()> {
    resolve(future)
}

fn wake_function(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static WAKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    WAKE.get_or_try_init(py, || Ok::<_, PyErr>(wrap_pyfunction!(_wake, py)?.into_any().unbind()))
        .map(|f| f.bind(py).clone())
}

/// `asyncio.get_running_loop()`.
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET.import(py, "asyncio", "get_running_loop")?.call0()
}

/// An awaitable running a Rust future on the loop of the task that awaits
/// it. It is a coroutine (`__await__`, `send`, `throw`, `close`), so
/// `asyncio.run`, `create_task` and `await` all take it.
#[pyclass(module = "roomkit_graph._core", name = "Pending")]
pub(crate) struct Pending {
    /// In a mutex only so the class may be shared: the awaiting task alone uses it.
    future: Mutex<Option<PyFuture>>,
    waker: Option<(Arc<LoopWaker>, Waker)>,
    /// Whether the last object handed to the task came from a Python
    /// coroutine the future drives (so `throw` goes to that coroutine).
    inline: bool,
}

impl Pending {
    pub(crate) fn new(future: PyFuture) -> Self {
        Pending { future: Mutex::new(Some(future)), waker: None, inline: false }
    }

    fn drop_future(&mut self) {
        *self.future.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        self.waker = None;
    }

    /// Polls the future with `inbox` for the coroutine it drives; returns
    /// what to hand to the task, or raises `StopIteration` with the result.
    fn step(&mut self, py: Python<'_>, inbox: Inbox) -> PyResult<Py<PyAny>> {
        let future = self.future.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(future) = future.as_mut() else {
            return match inbox {
                Inbox::Throw(error) => Err(error),
                _ => {
                    Err(PyRuntimeError::new_err("cannot reuse an awaited engine call: call the method again"))
                }
            };
        };
        let (state, waker) = match &self.waker {
            Some((state, waker)) => (Arc::clone(state), waker.clone()),
            None => {
                let state = Arc::new(LoopWaker {
                    woken: AtomicBool::new(false),
                    target: Mutex::new(None),
                    thread: std::thread::current().id(),
                });
                let waker = Waker::from(Arc::clone(&state));
                self.waker = Some((Arc::clone(&state), waker.clone()));
                (state, waker)
            }
        };
        // Python polls: whatever ran before may have changed its logging.
        crate::runlog::python_may_have_run();
        state.woken.store(false, Ordering::Release);
        *state.target.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let (polled, frame) = {
            let _entered = runtime().enter();
            let frame = FrameGuard::push(inbox);
            let polled = future.as_mut().poll(&mut Context::from_waker(&waker));
            (polled, frame.pop())
        };
        let frame = match frame {
            Some(Frame { abort: Some(error), .. }) | Some(Frame { inbox: Inbox::Throw(error), .. }) => {
                // Aborted, or thrown in and taken by nobody: the call ends with it.
                self.drop_future();
                return Err(error);
            }
            frame => frame,
        };
        match polled {
            Poll::Ready(result) => {
                self.drop_future();
                let value = result?;
                Err(PyStopIteration::new_err((value,)))
            }
            Poll::Pending => {
                let (yielded, parked) = frame.map_or((None, false), |frame| (frame.yielded, frame.parked));
                if let Some(yielded) = yielded {
                    self.inline = true;
                    return Ok(yielded);
                }
                self.inline = parked;
                if state.woken.load(Ordering::Acquire) {
                    // Woken while polled: step again at once (a bare `yield`).
                    return Ok(py.None());
                }
                let event_loop = running_loop(py)?;
                let future = event_loop.call_method0("create_future")?;
                // As `Future.__await__` marks it: the task then waits for it.
                future.setattr("_asyncio_future_blocking", true)?;
                *state.target.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((event_loop.unbind(), future.clone().unbind()));
                if state.woken.load(Ordering::Acquire) {
                    // Woken from another thread before the target was set.
                    resolve(&future)?;
                }
                Ok(future.unbind())
            }
        }
    }
}

#[pymethods]
impl Pending {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.step(py, Inbox::Send(py.None()))
    }

    fn send(&mut self, py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        self.step(py, Inbox::Send(value))
    }

    #[pyo3(signature = (error, value = None, traceback = None))]
    fn throw(
        &mut self,
        py: Python<'_>,
        error: Bound<'_, PyAny>,
        value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = traceback;
        let error = match value {
            Some(value) if !value.is_none() => PyErr::from_value(value),
            _ if error.is_instance_of::<pyo3::types::PyType>() => PyErr::from_value(error.call0()?),
            _ => PyErr::from_value(error),
        };
        if self.inline && self.future.get_mut().unwrap_or_else(PoisonError::into_inner).is_some() {
            // The coroutine the future drives decides what the error does.
            return self.step(py, Inbox::Throw(error));
        }
        // The Rust side waits: dropping the future cancels what it runs.
        self.drop_future();
        Err(error)
    }

    fn close(&mut self) {
        self.drop_future();
    }
}

/// Registers [`Pending`] as a `collections.abc.Coroutine`.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<Pending>()?;
    let coroutine = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine.call_method1("register", (py.get_type::<Pending>(),))?;
    Ok(())
}

/// What a [`PyAwait`] hands out instead of a loop future: a marker it runs
/// itself (a built-in handler's work, with the step's scope), sending the
/// result back into the coroutine.
pub(crate) trait Intercept<'a>: Send {
    /// The work `yielded` stands for, if it is such a marker.
    fn intercept(&mut self, py: Python<'_>, yielded: &Bound<'_, PyAny>) -> PyResult<Option<PyFutureRef<'a>>>;
}

/// A future borrowed from a handler's scope.
pub(crate) type PyFutureRef<'a> = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send + 'a>>;

/// Drives a Python awaitable inside a Rust future, on the thread that polls
/// it (see the module's documentation).
pub(crate) struct PyAwait<'a> {
    iterator: Option<Py<PyIterator>>,
    started: bool,
    /// The asyncio future the coroutine awaits, while it does, and the
    /// waker its completion wakes (the latest poll's).
    awaited: Option<Py<PyAny>>,
    wake: Arc<Mutex<Option<Waker>>>,
    /// A marker's work in progress, and what it stands for.
    inner: Option<PyFutureRef<'a>>,
    /// A value to send at the next poll (an intercepted marker's result).
    reply: Option<PyResult<Py<PyAny>>>,
    intercept: Option<Box<dyn Intercept<'a> + 'a>>,
}

impl<'a> PyAwait<'a> {
    /// Drives `awaitable` (anything with `__await__`).
    pub(crate) fn new(awaitable: &Bound<'_, PyAny>) -> PyResult<Self> {
        let iterator = awaitable.call_method0(pyo3::intern!(awaitable.py(), "__await__"))?;
        Ok(PyAwait {
            iterator: Some(iterator.cast_into::<PyIterator>()?.unbind()),
            started: false,
            awaited: None,
            wake: Arc::new(Mutex::new(None)),
            inner: None,
            reply: None,
            intercept: None,
        })
    }

    /// Runs markers the awaitable yields with `intercept`.
    pub(crate) fn intercepting(mut self, intercept: impl Intercept<'a> + 'a) -> Self {
        self.intercept = Some(Box::new(intercept));
        self
    }
}

impl Drop for PyAwait<'_> {
    fn drop(&mut self) {
        let awaited = self.awaited.take();
        if let Some(iterator) = self.iterator.take()
            && self.started
        {
            // Abandoned half-way (the run was cancelled, or timed out): let it clean up.
            Python::attach(|py| {
                let closed = awaited
                    .map_or(Ok(()), |awaited| awaited.bind(py).call_method0("cancel").map(drop))
                    .and_then(|()| iterator.bind(py).call_method0("close").map(drop));
                if let Err(error) = closed {
                    error.write_unraisable(py, None);
                }
            });
        }
    }
}

/// Whether `yielded` is an asyncio future the coroutine blocks on.
fn blocking_future(yielded: &Bound<'_, PyAny>) -> bool {
    let py = yielded.py();
    yielded
        .getattr(pyo3::intern!(py, "_asyncio_future_blocking"))
        .and_then(|blocking| blocking.is_truthy())
        .unwrap_or(false)
}

impl Future for PyAwait<'_> {
    type Output = PyResult<Py<PyAny>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        Python::attach(|py| {
            loop {
                if let Some(inner) = this.inner.as_mut() {
                    match inner.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(result) => {
                            this.inner = None;
                            this.reply = Some(result);
                        }
                    }
                }
                let Some(iterator) = this.iterator.as_ref() else {
                    return Poll::Ready(Err(PyRuntimeError::new_err(
                        "the awaitable was already driven to its end",
                    )));
                };
                let iterator = iterator.bind(py).clone();
                if let Some(awaited) = &this.awaited {
                    // Parked on a future: go on once it is done, or take what the task throws.
                    let thrown = match take_inbox() {
                        Some(Inbox::Throw(error)) => Some(error),
                        _ => None,
                    };
                    let awaited = awaited.bind(py).clone();
                    match thrown {
                        Some(error) => {
                            if let Err(cancel) = awaited.call_method0("cancel") {
                                return Poll::Ready(Err(cancel));
                            }
                            this.awaited = None;
                            this.reply = Some(Err(error));
                        }
                        None => match awaited.call_method0("done").and_then(|done| done.is_truthy()) {
                            Ok(true) => {
                                // The task's news was taken above: the future's result is read on resuming.
                                this.awaited = None;
                                this.reply = Some(Ok(py.None()));
                            }
                            Ok(false) => {
                                *this.wake.lock().unwrap_or_else(PoisonError::into_inner) =
                                    Some(cx.waker().clone());
                                park();
                                return Poll::Pending;
                            }
                            Err(error) => return Poll::Ready(Err(error)),
                        },
                    }
                }
                let sent = match (this.reply.take(), this.started) {
                    (Some(Ok(value)), _) => iterator.send(value.bind(py)),
                    (Some(Err(error)), _) => throw(&iterator, error),
                    (None, false) => iterator.send(&py.None().into_bound(py)),
                    (None, true) => match take_inbox() {
                        Some(Inbox::Send(value)) => iterator.send(value.bind(py)),
                        Some(Inbox::Throw(error)) => throw(&iterator, error),
                        // Polled without news from the task: it still waits on what it has.
                        Some(Inbox::Taken) | None => return Poll::Pending,
                    },
                };
                this.started = true;
                match sent {
                    Ok(PySendResult::Return(value)) => {
                        this.iterator = None;
                        return Poll::Ready(Ok(value.unbind()));
                    }
                    Ok(PySendResult::Next(yielded)) => {
                        if let Some(intercept) = this.intercept.as_mut() {
                            match intercept.intercept(py, &yielded) {
                                Ok(Some(work)) => {
                                    this.inner = Some(work);
                                    continue;
                                }
                                Ok(None) => {}
                                Err(error) => {
                                    this.reply = Some(Err(error));
                                    continue;
                                }
                            }
                        }
                        if blocking_future(&yielded) {
                            // As a task does: take the future, wake when it is done.
                            let parked = yielded
                                .setattr(pyo3::intern!(py, "_asyncio_future_blocking"), false)
                                .and_then(|()| {
                                    *this.wake.lock().unwrap_or_else(PoisonError::into_inner) =
                                        Some(cx.waker().clone());
                                    let done = TaskDone { waker: Arc::clone(&this.wake) };
                                    yielded.call_method1(pyo3::intern!(py, "add_done_callback"), (done,))
                                });
                            if let Err(error) = parked {
                                this.reply = Some(Err(error));
                                continue;
                            }
                            this.awaited = Some(yielded.unbind());
                            park();
                            return Poll::Pending;
                        }
                        hand_out(yielded.unbind());
                        return Poll::Pending;
                    }
                    Err(error) => {
                        this.iterator = None;
                        return Poll::Ready(Err(error));
                    }
                }
            }
        })
    }
}

/// Throws `error` into `iterator` (`iterator.throw(error)`), as a send result.
fn throw<'py>(iterator: &Bound<'py, PyIterator>, error: PyErr) -> PyResult<PySendResult<'py>> {
    let py = iterator.py();
    match iterator.call_method1(pyo3::intern!(py, "throw"), (error.into_value(py),)) {
        Ok(yielded) => Ok(PySendResult::Next(yielded)),
        Err(error) if error.is_instance_of::<PyStopIteration>(py) => {
            let value = error.value(py).getattr("value")?;
            Ok(PySendResult::Return(value))
        }
        Err(error) => Err(error),
    }
}

/// Ends the engine call being polled with `error`, raised as it is once the
/// poll returns (the call's future is dropped); the caller then waits for
/// good. Gives `error` back when no call is being polled.
pub(crate) fn abort(error: PyErr) -> Result<(), PyErr> {
    FRAMES.with_borrow_mut(|frames| match frames.last_mut() {
        Some(frame) => {
            frame.abort.get_or_insert(error);
            Ok(())
        }
        None => Err(error),
    })
}

/// Whether the engine call being polled is ending with an [`abort`]: no
/// more Python code runs in it.
pub(crate) fn aborting() -> bool {
    FRAMES.with_borrow(|frames| frames.last().is_some_and(|frame| frame.abort.is_some()))
}

/// Takes the error the engine call being polled is ending with, for a
/// caller that ends it itself.
pub(crate) fn take_abort() -> Option<PyErr> {
    FRAMES.with_borrow_mut(|frames| frames.last_mut().and_then(|frame| frame.abort.take()))
}

/// Whether the task threw an error into the call being polled that nothing took yet.
pub(crate) fn throw_pending() -> bool {
    FRAMES.with_borrow(|frames| frames.last().is_some_and(|frame| matches!(frame.inbox, Inbox::Throw(_))))
}

/// Whether an engine call is being polled on this thread (a coroutine
/// stepped now is driven by it, not by an asyncio task).
pub(crate) fn polling() -> bool {
    FRAMES.with_borrow(|frames| !frames.is_empty())
}

/// Takes what the task passed to the innermost [`Pending`] being polled.
fn take_inbox() -> Option<Inbox> {
    FRAMES.with_borrow_mut(|frames| {
        frames.last_mut().map(|frame| std::mem::replace(&mut frame.inbox, Inbox::Taken))
    })
}

/// Whether a coroutine driven in the current poll handed something to the
/// task (which must then get it: the coroutine waits on it).
pub(crate) fn handed_out() -> bool {
    FRAMES.with_borrow(|frames| frames.last().is_some_and(|frame| frame.yielded.is_some()))
}

/// Notes that a coroutine driven in the current poll waits on a future.
fn park() {
    FRAMES.with_borrow_mut(|frames| {
        if let Some(frame) = frames.last_mut() {
            frame.parked = true;
        }
    });
}

/// Hands `yielded` to the task stepping the innermost [`Pending`].
fn hand_out(yielded: Py<PyAny>) {
    FRAMES.with_borrow_mut(|frames| {
        if let Some(frame) = frames.last_mut() {
            frame.yielded = Some(yielded);
        }
    });
}

/// A Python awaitable run as its own asyncio task (a parallel child's
/// handler, so children run at once), polled as a Rust future; dropping it
/// cancels the task.
pub(crate) struct PyTask {
    task: Option<Py<PyAny>>,
    waker: Arc<Mutex<Option<Waker>>>,
}

#[pyclass(module = "roomkit_graph._core")]
struct TaskDone {
    waker: Arc<Mutex<Option<Waker>>>,
}

#[pymethods]
impl TaskDone {
    fn __call__(&self, _task: &Bound<'_, PyAny>) {
        if let Some(waker) = self.waker.lock().unwrap_or_else(PoisonError::into_inner).take() {
            waker.wake();
        }
    }
}

impl PyTask {
    /// Schedules `awaitable` as a task on the running loop, in a copy of
    /// `context` (a `contextvars.Context`).
    pub(crate) fn spawn_in(awaitable: &Bound<'_, PyAny>, context: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = awaitable.py();
        static ENSURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let ensure = ENSURE.import(py, "asyncio", "ensure_future")?;
        let task = context.call_method1(pyo3::intern!(py, "run"), (ensure, awaitable))?;
        let waker = Arc::new(Mutex::new(None));
        task.call_method1("add_done_callback", (TaskDone { waker: Arc::clone(&waker) },))?;
        Ok(PyTask { task: Some(task.unbind()), waker })
    }

    /// The asyncio task.
    pub(crate) fn task(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.task.as_ref().map(|task| task.clone_ref(py))
    }
}

impl Future for PyTask {
    type Output = PyResult<Py<PyAny>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        Python::attach(|py| {
            let Some(task) = this.task.as_ref() else {
                return Poll::Ready(Err(PyRuntimeError::new_err("the task was already awaited")));
            };
            let task = task.bind(py);
            match task.call_method0("done").and_then(|done| done.is_truthy()) {
                Err(error) => Poll::Ready(Err(error)),
                Ok(true) => {
                    let result = task.call_method0("result").map(Bound::unbind);
                    this.task = None;
                    Poll::Ready(result)
                }
                Ok(false) => {
                    *this.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

impl Drop for PyTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            Python::attach(|py| {
                if let Err(error) = task.bind(py).call_method0("cancel") {
                    error.write_unraisable(py, None);
                }
            });
        }
    }
}
