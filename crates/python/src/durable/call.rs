//! The asyncio loop a runner was opened on, and calls of the package's
//! helpers there: each runs as an asyncio task, cancelled when the run's
//! task stops waiting for it (the run was cancelled, its lease lost).
//!
//! A call the loop itself stops (it is closed, or its task is cancelled by
//! something other than the runner, as `asyncio.run` does to the tasks left
//! when it returns or on Ctrl-C) never completes: the process is ending, so
//! its step is not the node's failure and nothing of it is committed. The
//! run keeps its lease, which lapses with the process, and another runner
//! takes it over.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use pyo3_async_runtimes::TaskLocals;

/// The asyncio loop a runner was opened on, and the context its handlers
/// run in (the one current when the runner was opened).
#[derive(Clone)]
pub(crate) struct Loop {
    locals: TaskLocals,
}

impl Loop {
    /// The loop running this call.
    pub(crate) fn running(py: Python<'_>) -> PyResult<Loop> {
        Ok(Loop { locals: TaskLocals::with_running_loop(py)?.copy_context(py)? })
    }

    /// Calls the package's helper `helper` of `roomkit_graph.durable` with
    /// `args` on the loop; the future completes with what it returns. The
    /// helper runs as an asyncio task, cancelled if the future is dropped
    /// before it completes (the run was cancelled, or its lease lost). When
    /// the loop stops it instead ([`Loop::stopped`]), the future never
    /// completes.
    pub(super) fn call<'py>(
        &self,
        py: Python<'py>,
        helper: Helper,
        mut args: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<impl Future<Output = PyResult<Py<PyAny>>> + Send + 'static + use<>> {
        let call = Py::new(py, Call { task: Mutex::new(Task::Scheduled) })?;
        args.push(call.clone_ref(py).into_bound(py).into_any());
        let coroutine = helper.function(py)?.call1(PyTuple::new(py, args)?)?;
        let result = match pyo3_async_runtimes::into_future_with_locals(&self.locals, coroutine) {
            Ok(result) => Some(result),
            Err(error) if self.stopped(py, &error) => None,
            Err(error) => return Err(error),
        };
        let abandoned = Abandoned { call, event_loop: self.locals.event_loop(py).unbind(), armed: true };
        let calls = self.clone();
        Ok(async move {
            let mut abandoned = abandoned;
            let Some(result) = result else {
                return std::future::pending().await;
            };
            let result = result.await;
            abandoned.armed = false;
            match result {
                // No interpreter to ask: it is shutting down.
                Err(error) if Python::try_attach(|py| calls.stopped(py, &error)).unwrap_or(true) => {
                    std::future::pending().await
                }
                result => result,
            }
        })
    }

    /// Whether `error`, out of a call, is the loop stopping it rather than
    /// the helper failing: the loop is closed, or the helper's task ended with
    /// a `BaseException` that is not an `Exception` (the runner cancels a
    /// task only once nobody waits for it, so a `CancelledError` seen here
    /// came from the loop's owner; `KeyboardInterrupt` and `SystemExit` end
    /// the loop too).
    fn stopped(&self, py: Python<'_>, error: &PyErr) -> bool {
        let closed = self.locals.event_loop(py).call_method0("is_closed");
        !error.is_instance_of::<PyException>(py)
            || closed.and_then(|closed| closed.is_truthy()).unwrap_or(true)
    }
}

/// Where a helper's asyncio task stands, for its cancellation.
enum Task {
    /// Not started yet.
    Scheduled,
    /// Running, as this task.
    Running(Py<PyAny>),
    /// Nobody waits for it any more: cancelled (or to cancel as it starts).
    Abandoned,
}

/// A helper's call, which the helper tells its task (`call.running(task)`).
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Call {
    task: Mutex<Task>,
}

#[pymethods]
impl Call {
    /// The helper runs as `task`: cancelled at once if its caller is gone.
    fn running(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut state = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            Task::Abandoned => {
                task.call_method0("cancel")?;
            }
            _ => *state = Task::Running(task.clone().unbind()),
        }
        Ok(())
    }
}

/// Cancels a call's task when the future waiting for it is dropped first.
struct Abandoned {
    call: Py<Call>,
    event_loop: Py<PyAny>,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let state = std::mem::replace(
            &mut *self.call.get().task.lock().unwrap_or_else(PoisonError::into_inner),
            Task::Abandoned,
        );
        if let Task::Running(task) = state {
            // From the loop's thread, as asyncio wants; nothing to do once the interpreter is gone.
            Python::try_attach(|py| {
                let cancel = task.bind(py).getattr("cancel");
                let scheduled = cancel.and_then(|cancel| {
                    self.event_loop.bind(py).call_method1("call_soon_threadsafe", (cancel,))
                });
                // A closed loop has stopped the task already.
                drop(scheduled);
            });
        }
    }
}

/// The helpers of `roomkit_graph.durable` the handlers call on the loop.
#[derive(Clone, Copy)]
pub(super) enum Helper {
    /// `_execute(handler, node, context, step, call)`: a handler's result.
    Execute,
    /// `_call_function(functions, name, context, config, call)`: `(found, output)`.
    CallFunction,
}

impl Helper {
    fn function(self, py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
        static EXECUTE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static CALL_FUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        match self {
            Helper::Execute => EXECUTE.import(py, "roomkit_graph.durable", "_execute"),
            Helper::CallFunction => CALL_FUNCTION.import(py, "roomkit_graph.durable", "_call_function"),
        }
    }
}
