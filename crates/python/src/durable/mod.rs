//! `roomkit_graph.durable`: the durable runner for Python. Runs of stored
//! graphs are driven on the runner's tokio tasks and every step is committed
//! to SQLite or PostgreSQL before the next begins, so a run survives its
//! process and is picked up by another.
//!
//! # Layout
//!
//! - `runner`: [`Runner`](runner::Runner), the Python class, and `Opening`,
//!   what `Runner.open` returns (awaitable, or used with `async with`).
//! - `database`: which database a runner opens, from a path or a URL.
//! - `handlers`: the application's Python handlers and registered
//!   functions as node handlers; what they return as the node's result.
//! - `step`: [`Step`](step::Step), what a handler is given as its `engine`,
//!   and the `Node` and `WorkflowContext` it is given.
//! - `call`: the asyncio loop the runner was opened on, and the calls made
//!   there, cancelled when nobody waits for them any more.
//! - `run`: [`Run`](run::Run), a run's record as Python sees it, and
//!   transcript events as dicts.
//! - `transcript`: [`Transcript`](transcript::Transcript), a run's transcript
//!   as an async iterator.
//! - `errors`: the runner's and the store's errors as the package's exceptions.

use pyo3::prelude::*;

mod call;
mod database;
mod errors;
mod handlers;
mod run;
mod runner;
mod step;
mod transcript;

/// Adds the durable runner's classes to the native module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<runner::Runner>()?;
    module.add_class::<runner::Opening>()?;
    module.add_class::<run::Run>()?;
    module.add_class::<step::Step>()?;
    module.add_class::<transcript::Transcript>()?;
    Ok(())
}
