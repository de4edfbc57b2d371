//! The run log: one record per thing a run does, on the `roomkit_graph`
//! logger, each with a `roomkit_graph` attribute holding the event (`run.start`,
//! `node.complete`...), the run, the graph, the node and the event's fields
//! (what `verbose()` prints). Nothing is built unless the logger takes the level.
//!
//! Whether the logger takes INFO records is asked of Python once and asked
//! again only after Python code may have run (see [`python_may_have_run`]):
//! a run of built-in steps asks once, not once per step.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

/// `logging.INFO`.
pub(crate) const INFO: i32 = 20;
/// `logging.WARNING`.
pub(crate) const WARNING: i32 = 30;

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER
        .get_or_try_init(py, || {
            py.import("logging")?.call_method1("getLogger", ("roomkit_graph",)).map(Bound::unbind)
        })
        .map(|logger| logger.bind(py))
}

/// Whose record it is: the run and its graph.
pub(crate) struct Run<'a> {
    pub(crate) id: &'a str,
    pub(crate) graph: &'a str,
}

/// One record: its event, level, message (with `%` arguments) and fields.
pub(crate) struct Record<'a, 'py> {
    pub(crate) event: &'a str,
    pub(crate) level: i32,
    pub(crate) message: &'a str,
    pub(crate) node: Option<&'a str>,
    pub(crate) args: Vec<Bound<'py, PyAny>>,
    pub(crate) fields: Vec<(&'a str, Bound<'py, PyAny>)>,
}

/// How many times Python code may have run (and so changed the logging
/// configuration); starts at 1, so a cached answer is never of generation 0.
static GENERATION: AtomicU64 = AtomicU64::new(1);
/// The last answer for INFO: its generation times two, plus one if taken.
static INFO_ANSWER: AtomicU64 = AtomicU64::new(0);

/// Says that Python code may have run since the logger was last asked: the
/// driver when Python polls an engine call, a step whose handler may call
/// Python, and a record logged (its handlers are Python). Only a stretch of
/// Rust run under the GIL, with none of these, reuses an answer: no other
/// thread runs Python while it holds the GIL. (Asking runs Python, so a level
/// another thread sets at that very moment is seen from the next poll.)
pub(crate) fn python_may_have_run() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Whether the logger takes records of `level`.
pub(crate) fn enabled(py: Python<'_>, level: i32) -> bool {
    if level != INFO {
        return ask(py, level);
    }
    let generation = GENERATION.load(Ordering::Relaxed);
    let answer = INFO_ANSWER.load(Ordering::Relaxed);
    if answer >> 1 == generation {
        return answer & 1 == 1;
    }
    let taken = ask(py, level);
    INFO_ANSWER.store(generation << 1 | u64::from(taken), Ordering::Relaxed);
    taken
}

fn ask(py: Python<'_>, level: i32) -> bool {
    logger(py)
        .and_then(|logger| logger.call_method1(pyo3::intern!(py, "isEnabledFor"), (level,))?.is_truthy())
        .unwrap_or(false)
}

/// Logs the record `make` builds, when the logger takes `level`. A logging
/// failure is reported as unraisable: the run it describes goes on.
pub(crate) fn log<'a, 'py>(
    py: Python<'py>,
    level: i32,
    run: &Run<'_>,
    make: impl FnOnce() -> Record<'a, 'py>,
) {
    if !enabled(py, level) {
        return;
    }
    let emitted = emit(py, run, make());
    python_may_have_run();
    if let Err(error) = emitted {
        error.write_unraisable(py, None);
    }
}

fn emit<'py>(py: Python<'py>, run: &Run<'_>, record: Record<'_, 'py>) -> PyResult<()> {
    let fields = PyDict::new(py);
    fields.set_item("event", record.event)?;
    fields.set_item("run", run.id)?;
    fields.set_item("graph", run.graph)?;
    fields.set_item("node", record.node)?;
    for (key, value) in record.fields {
        fields.set_item(key, value)?;
    }
    let extra = PyDict::new(py);
    extra.set_item("roomkit_graph", fields)?;
    let mut args =
        vec![record.level.into_pyobject(py)?.into_any(), record.message.into_pyobject(py)?.into_any()];
    args.extend(record.args);
    let kwargs = PyDict::new(py);
    kwargs.set_item("extra", extra)?;
    logger(py)?.call_method("log", PyTuple::new(py, args)?, Some(&kwargs))?;
    Ok(())
}
