//! A run as Python sees it: [`Run`], its record (and its context, when
//! read), and transcript events as dicts.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use roomkit_graph_store::{Millis, RunRecord, RunStatus, TranscriptEvent};
use serde_json::{Map, Value};

use crate::convert::to_py;

/// A durable run: which graph it runs and where it stands. Read with
/// `Runner.run`, `Runner.wait` (with its context) or `Runner.runs`
/// (without).
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Run {
    record: RunRecord,
    /// The run's context, when it was read.
    context: Option<Map<String, Value>>,
}

impl Run {
    /// The run of `record`, with `context` when it was read.
    pub(crate) fn new(record: RunRecord, context: Option<Map<String, Value>>) -> Run {
        Run { record, context }
    }
}

#[pymethods]
impl Run {
    /// The run's id (a UUID), also its room's.
    #[getter]
    fn run_id(&self) -> &str {
        &self.record.run_id
    }

    /// The graph it runs.
    #[getter]
    fn graph_id(&self) -> &str {
        &self.record.graph_id
    }

    /// The version of the graph it started with.
    #[getter]
    fn graph_version(&self) -> u64 {
        self.record.graph_version
    }

    /// `"running"`, `"queued"`, `"waiting"`, `"completed"`, `"failed"` or `"cancelled"`.
    #[getter]
    fn status(&self) -> &'static str {
        self.record.status.as_str()
    }

    /// Whether the run is over: completed, failed or cancelled.
    #[getter]
    fn is_over(&self) -> bool {
        self.record.status.is_final()
    }

    /// The nodes that wait for an answer (several for a parallel node's
    /// children); empty unless the run waits for a person.
    #[getter]
    fn waiting_on(&self) -> Vec<String> {
        let record = &self.record;
        if record.status != RunStatus::Waiting || record.wake_at.is_some() {
            return Vec::new();
        }
        match record.pending.is_empty() {
            true => record.current_node_id.iter().cloned().collect(),
            false => record.pending.clone(),
        }
    }

    /// The node the run is on (None once it is over).
    #[getter]
    fn current_node(&self) -> Option<&str> {
        self.record.current_node_id.as_deref()
    }

    /// The node it last left along an edge.
    #[getter]
    fn previous_node(&self) -> Option<&str> {
        self.record.previous_node_id.as_deref()
    }

    /// Why it failed.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.record.error.as_deref()
    }

    /// How many steps it has taken (its step limit counts them).
    #[getter]
    fn steps(&self) -> u64 {
        self.record.steps
    }

    /// Who drives it right now (a running run's lease holder).
    #[getter]
    fn owner(&self) -> Option<&str> {
        self.record.owner.as_deref()
    }

    /// When it started (a timezone-aware `datetime`, UTC).
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.record.created_at)
    }

    /// When it last changed.
    #[getter]
    fn updated_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.record.updated_at)
    }

    /// When the timer it rests on is due (a delay node), if it rests on one.
    #[getter]
    fn wake_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.record.wake_at.map(|at| datetime(py, at)).transpose()
    }

    /// Every output the run has stored, `{node_id: {"output": value}}` (a
    /// copy); None in a list of runs, which does not read contexts.
    #[getter]
    fn context<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.context.as_ref().map(|context| to_py(py, &Value::Object(context.clone()))).transpose()
    }

    /// The run as JSON-ready data: the record as the command line and the
    /// HTTP API write it (times in milliseconds since the epoch), and its
    /// `context` when it was read.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut value =
            serde_json::to_value(&self.record).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        if let (Some(context), Value::Object(map)) = (&self.context, &mut value) {
            map.insert("context".to_owned(), Value::Object(context.clone()));
        }
        to_py(py, &value)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let record = &self.record;
        let mut text = format!(
            "Run(run_id={}, graph_id={}, graph_version={}, status={}",
            repr(py, &record.run_id)?,
            repr(py, &record.graph_id)?,
            record.graph_version,
            repr(py, record.status.as_str())?
        );
        let waiting = self.waiting_on();
        if !waiting.is_empty() {
            text.push_str(&format!(", waiting_on={}", PyList::new(py, waiting)?.repr()?));
        }
        if let Some(error) = &record.error {
            text.push_str(&format!(", error={}", repr(py, error)?));
        }
        text.push(')');
        Ok(text)
    }
}

/// A transcript event as a dict, as `roomkit-graph show --json` writes it:
/// `{"run_id", "seq", "at", "type", ...}` with the entry's own fields.
pub(crate) fn event_dict<'py>(py: Python<'py>, event: &TranscriptEvent) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(event).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    to_py(py, &value)
}

/// `text` as Python writes a string in a repr: `'run-1'`.
pub(crate) fn repr(py: Python<'_>, text: &str) -> PyResult<String> {
    Ok(PyString::new(py, text).repr()?.to_string())
}

/// Milliseconds since the epoch as a UTC `datetime`.
fn datetime(py: Python<'_>, millis: Millis) -> PyResult<Bound<'_, PyAny>> {
    let module = py.import("datetime")?;
    let utc = module.getattr("timezone")?.getattr("utc")?;
    // Exact to the millisecond: whole seconds and microseconds apart.
    let seconds =
        module.getattr("datetime")?.call_method1("fromtimestamp", (millis.div_euclid(1000), &utc))?;
    // timedelta(days, seconds, microseconds, milliseconds)
    let delta = module.getattr("timedelta")?.call1((0, 0, 0, millis.rem_euclid(1000)))?;
    seconds.add(delta)
}
