//! [`Runner`], the durable runner's Python class, and [`Opening`], what
//! `Runner.open` returns.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use roomkit_graph::Graph;
use roomkit_graph_database::Database;
use roomkit_graph_store::{DEFAULT_ORG, RunFilter, RunRecord, RunStatus};
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::call::Loop;
use super::database::{database_of, open_error};
use super::errors::{Refusal, runner_error, store_error};
use super::handlers::runner_handlers;
use super::run::{Run, repr};
use super::transcript::Transcript;
use crate::convert::to_json;
use crate::errors::ErrorClass;

/// The shortest lease a runner takes.
const MIN_LEASE: Duration = Duration::from_millis(50);

/// Runs stored graphs durably on SQLite or PostgreSQL: every step is
/// committed before the next begins, so a run outlives the process that
/// drives it. Open one with `await Runner.open(database, ...)` (or
/// `async with Runner.open(...) as runner:`), and close it with
/// `await runner.close()`; a runner let go without it stops the same way,
/// in the background.
///
/// Any number of runners, in one process or many, may share a database:
/// each run is driven by one of them at a time (the holder of its lease),
/// and a run whose process died is taken over by another runner once its
/// lease expires (every `recover_every` seconds each runner looks for such
/// runs).
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Runner {
    runner: roomkit_graph_runner::Runner,
    database: Database,
    /// True once closed: the recovery loop stops and requests are refused.
    closed: watch::Sender<bool>,
}

/// What `Runner.open` returns: await it for the runner, or use it with
/// `async with`, which closes the runner at the end of the block.
#[pyclass(module = "roomkit_graph.durable", frozen)]
pub(crate) struct Opening {
    /// The asyncio future of the runner being opened.
    future: Py<PyAny>,
}

#[pymethods]
impl Opening {
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.future.bind(py).call_method0("__await__")
    }

    fn __aenter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.future.clone_ref(py)
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(&self, py: Python<'py>, _exc: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.future.bind(py).call_method0("result")?;
        runner.call_method0("close")
    }
}

#[pymethods]
impl Runner {
    /// Opens a runner on `database`: a SQLite file (a path, created when
    /// missing, or `sqlite://PATH`) or a PostgreSQL server (`postgres://...`).
    ///
    /// - `handlers`: `{node_type: handler}`, the application's
    ///   `NodeHandler`s (objects with `async def execute(node, context,
    ///   engine)`); they replace the built-in handler of their type. Built in:
    ///   start, end, function, condition, switch, log, parallel, and human
    ///   (waits for an answer).
    /// - `functions`: the functions of `custom` function nodes, a
    ///   `FunctionRegistry` or a dict of names to `f(context, config)`, sync
    ///   or async.
    /// - `lease`: seconds a run stays this runner's without a sign of life; a
    ///   run whose process died is taken over this long after at the latest.
    /// - `recover_every`: seconds between two looks for runs nobody drives
    ///   (None: only when `recover()` is called).
    /// - `max_steps`: the step limit of runs whose graph sets none.
    /// - `worker`: a worker id: a runner restarted with the same id takes its
    ///   runs back at once; refused with `WorkerTakenError` while another
    ///   live process is that worker.
    /// - `connections`: at most this many connections to PostgreSQL.
    ///
    /// Handlers and functions are called on the asyncio loop this is
    /// called on, which must keep running while the runner is open: close
    /// the runner (or use `async with`) before the loop ends. A Python step
    /// whose task the loop cancels or closes (Ctrl-C, `asyncio.run`
    /// returning first) is not committed: its run is left to be taken over
    /// once its lease lapses.
    #[classmethod]
    #[pyo3(signature = (
        database, *, handlers = None, functions = None, lease = 30.0, recover_every = Some(5.0),
        max_steps = None, worker = None, connections = 8
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        database: &Bound<'_, PyAny>,
        handlers: Option<&Bound<'_, PyAny>>,
        functions: Option<&Bound<'_, PyAny>>,
        lease: f64,
        recover_every: Option<f64>,
        max_steps: Option<u64>,
        worker: Option<String>,
        connections: usize,
    ) -> PyResult<Opening> {
        let database = database_of(database)?;
        let lease = seconds(lease).filter(|lease| *lease >= MIN_LEASE).ok_or_else(|| {
            PyValueError::new_err(format!(
                "lease is a number of seconds, at least {}",
                MIN_LEASE.as_secs_f64()
            ))
        })?;
        let recover_every = match recover_every {
            Some(every) => Some(seconds(every).filter(|every| !every.is_zero()).ok_or_else(|| {
                PyValueError::new_err("recover_every is a number of seconds above 0, or None")
            })?),
            None => None,
        };
        if max_steps == Some(0) || connections == 0 {
            return Err(PyValueError::new_err("max_steps and connections are at least 1"));
        }
        let calls = Loop::running(py)?;
        let handlers = runner_handlers(handlers, functions, &calls)?;
        let future = pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut runner = database
                .open(connections, handlers, worker.as_deref())
                .await
                .map_err(open_error)?
                .with_lease(lease);
            if let Some(max_steps) = max_steps {
                runner = runner.with_max_steps(max_steps);
            }
            let (closed, _) = watch::channel(false);
            if let Some(every) = recover_every {
                tokio::spawn(recover_every_so_often(runner.clone(), every, closed.subscribe()));
            }
            Ok(Runner { runner, database, closed })
        })?;
        Ok(Opening { future: future.unbind() })
    }

    /// Checks `graph` (a `Graph`, a dict or JSON text) and stores it as the
    /// next version of its id; returns that version. An invalid graph is
    /// refused with `GraphValidationError`, naming every mistake, and
    /// nothing is stored. Runs in flight keep the version they started with.
    fn save_graph<'py>(&self, py: Python<'py>, graph: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let graph = graph_of(graph)?;
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            runner.save_graph(&graph).await.map(|stored| stored.version).map_err(runner_error)
        })
    }

    /// Starts a run of `graph_id` with `trigger_data` (a dict; empty when
    /// None), and drives it in the background: of its latest version, or of
    /// `version` when given. Returns the run's id once its start is
    /// committed.
    #[pyo3(signature = (graph_id, trigger_data = None, *, version = None))]
    fn start<'py>(
        &self,
        py: Python<'py>,
        graph_id: String,
        trigger_data: Option<&Bound<'py, PyAny>>,
        version: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let trigger = data_or_empty(trigger_data)?;
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let started = match version {
                Some(version) => runner.start_version(&graph_id, version, trigger).await,
                None => runner.start(&graph_id, trigger).await,
            };
            started.map(|run| run.run_id).map_err(runner_error)
        })
    }

    /// Answers the run `run_id` with `data` (a dict; empty when None) and
    /// drives it on. `node` names the node answered; it may be left out
    /// when the run waits on one node only. `by` says who answered (kept in
    /// the transcript). Refused with `NotWaitingError` when the run does not
    /// wait on that node and `AnswerRefusedError` when the node does not take
    /// the answer (an action it does not offer); nothing changes then.
    #[pyo3(signature = (run_id, data = None, *, node = None, by = None))]
    fn answer<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        data: Option<&Bound<'py, PyAny>>,
        node: Option<String>,
        by: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = data_or_empty(data)?;
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let node = match node {
                Some(node) => node,
                None => only_wait(&runner.store().run(&run_id).await.map_err(store_error)?)?,
            };
            runner.answer(&run_id, &node, data, by.as_deref()).await.map_err(runner_error)?;
            Ok(())
        })
    }

    /// Cancels the run `run_id`, whoever drives it (a step in progress is
    /// dropped and its commit refused); `reason` is kept in the transcript.
    /// Refused with `RunFinishedError` when the run is over already.
    #[pyo3(signature = (run_id, reason = None))]
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        reason: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            runner.cancel(&run_id, reason.as_deref()).await.map_err(runner_error)?;
            Ok(())
        })
    }

    /// The run `run_id` as it stands, with its context. `RunNotFoundError`
    /// for an unknown run.
    fn run<'py>(&self, py: Python<'py>, run_id: String) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move { read_run(&runner, &run_id).await })
    }

    /// Waits until the run `run_id` waits for an answer or is over (whichever
    /// process drives it), and returns it with its context. A run resting
    /// on a timer is still under way. Bound it with `asyncio.wait_for`.
    fn wait<'py>(&self, py: Python<'py>, run_id: String) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            runner.wait(&run_id).await.map_err(runner_error)?;
            read_run(&runner, &run_id).await
        })
    }

    /// The runs, newest first: at most `limit`, only those in `status`
    /// (`"running"`, `"queued"`, `"waiting"`, `"completed"`, `"failed"`, `"cancelled"`)
    /// and of graph `graph` when given. Their `context` is not read (None).
    #[pyo3(signature = (*, status = None, graph = None, limit = 100))]
    fn runs<'py>(
        &self,
        py: Python<'py>,
        status: Option<String>,
        graph: Option<String>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = status
            .map(|status| {
                RunStatus::parse(&status).ok_or_else(|| {
                    PyValueError::new_err(format!("status {status:?} is not one of {}", RunStatus::NAMES))
                })
            })
            .transpose()?;
        let filter = RunFilter {
            org: Some(DEFAULT_ORG.to_owned()),
            graph_id: graph,
            status,
            limit: Some(limit),
            ..RunFilter::default()
        };
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let runs = runner.store().list_runs(&filter).await.map_err(store_error)?;
            Ok(runs.into_iter().map(|record| Run::new(record, None)).collect::<Vec<_>>())
        })
    }

    /// The transcript of the run `run_id` after event `after`, as an async
    /// iterator of dicts (`{"run_id", "seq", "at", "type", ...}`, as
    /// `roomkit-graph show --json` prints them). With `follow`, it goes on
    /// with every event as it is committed, by any process, and ends once
    /// the run is over; without, it ends with what is committed now.
    #[pyo3(signature = (run_id, *, follow = false, after = 0))]
    fn transcript(&self, run_id: String, follow: bool, after: u64) -> PyResult<Transcript> {
        Ok(Transcript::new(self.open_runner()?, run_id, after, follow))
    }

    /// Takes over the runs nobody drives (their process died and their lease
    /// expired) and drives them; returns how many. The runner does this every
    /// `recover_every` seconds by itself.
    fn recover<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.open_runner()?;
        pyo3_async_runtimes::tokio::future_into_py(
            py,
            async move { runner.recover().await.map_err(runner_error) },
        )
    }

    /// Stops driving runs: each step in progress is finished and committed,
    /// then its run's lease is released, so that another runner takes it over
    /// at once. Runs stay in the database. Closing twice is fine.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.closed.send_replace(true);
        let runner = self.runner.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            runner.shutdown().await;
            Ok(())
        })
    }

    fn __aenter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(&self, py: Python<'py>, _exc: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.close(py)
    }

    /// This runner's id in the leases it takes: its worker id, or
    /// `host/pid/uuid`.
    #[getter]
    fn owner(&self) -> &str {
        self.runner.owner()
    }

    /// How long its leases last, in seconds.
    #[getter]
    fn lease(&self) -> f64 {
        self.runner.lease().as_secs_f64()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        *self.closed.borrow()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let database = match &self.database {
            Database::Sqlite(path) => repr(py, &path.display().to_string())?,
            // The URL may hold a password.
            Database::Postgres(_) => "'postgres://...'".to_owned(),
        };
        let state = if self.closed() { ", closed" } else { "" };
        Ok(format!("Runner({database}, owner={}{state})", repr(py, self.runner.owner())?))
    }
}

/// A runner let go without `close()` stops as `close()` does (its runs are
/// let go after their step in progress, its recovery, timers and heartbeat
/// stop), in the background: dropping it never waits.
impl Drop for Runner {
    fn drop(&mut self) {
        if self.closed.send_replace(true) {
            // Closed: it is stopping already.
            return;
        }
        let runner = self.runner.clone();
        pyo3_async_runtimes::tokio::get_runtime().spawn(async move { runner.shutdown().await });
    }
}

impl Runner {
    /// The runner, unless it was closed.
    fn open_runner(&self) -> PyResult<roomkit_graph_runner::Runner> {
        match *self.closed.borrow() {
            true => Err(Refusal::Durable.err("this runner is closed: open another")),
            false => Ok(self.runner.clone()),
        }
    }
}

/// Every `every`, takes over the runs nobody drives, until the runner is closed.
async fn recover_every_so_often(
    runner: roomkit_graph_runner::Runner,
    every: Duration,
    mut closed: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = async { drop(closed.wait_for(|closed| *closed).await) } => return,
            () = runner.stopped() => return,
            // A look that fails (the database locked, out of reach) is made again at the next tick.
            _ = ticks.tick() => drop(runner.recover().await),
        }
    }
}

/// The run `run_id` with its context.
async fn read_run(runner: &roomkit_graph_runner::Runner, run_id: &str) -> PyResult<Run> {
    let (record, state) = runner.store().load_run(run_id).await.map_err(store_error)?;
    Ok(Run::new(record, Some(state.context)))
}

/// The one node a run waits on, for an answer that names none.
fn only_wait(record: &RunRecord) -> PyResult<String> {
    let run_id = &record.run_id;
    if record.status != RunStatus::Waiting || record.wake_at.is_some() {
        let status = record.status.as_str();
        return Err(Refusal::NotWaiting.err(format!("run {run_id} waits for no answer: it is {status}")));
    }
    match (record.pending.as_slice(), &record.current_node_id) {
        ([], Some(node)) | ([node], _) => Ok(node.clone()),
        ([], None) => Err(Refusal::NotWaiting.err(format!("run {run_id} waits for no answer"))),
        (several, _) => Err(PyValueError::new_err(format!(
            "run {run_id} waits on {}: name the node answered (node=...)",
            several.join(", ")
        ))),
    }
}

/// A graph from a `Graph` (anything with `to_dict()`), a dict or JSON text.
fn graph_of(graph: &Bound<'_, PyAny>) -> PyResult<Graph> {
    let invalid = |error: roomkit_graph::GraphError| ErrorClass::Validation.err(error.to_string());
    if let Ok(text) = graph.cast::<PyString>() {
        return Graph::from_json(text.to_str()?).map_err(invalid);
    }
    let value = if graph.cast::<PyDict>().is_ok() {
        to_json(graph)?
    } else if let Some(to_dict) = graph.getattr_opt("to_dict")? {
        to_json(&to_dict.call0()?)?
    } else {
        return Err(PyTypeError::new_err(format!(
            "a graph is a Graph, a dict or JSON text, not a {}",
            graph.get_type().name()?
        )));
    };
    Graph::from_value(value).map_err(invalid)
}

/// JSON data from Python (`None`: an empty object).
fn data_or_empty(data: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    match data {
        Some(data) if !data.is_none() => to_json(data),
        _ => Ok(Value::Object(Map::new())),
    }
}

/// `seconds` as a duration, if it is one.
fn seconds(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}
