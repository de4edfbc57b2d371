//! The `roomkit_graph` Python package's native module, `roomkit_graph._core`.
//!
//! The package's Python files re-export what this module defines; the work
//! (the graph model, JSON, validation, conditions, templates, the step loop)
//! happens in the `roomkit-graph` crate.

use pyo3::prelude::*;

mod convert;
mod durable;
mod errors;

/// The native module: every class and function the package re-exports.
#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    durable::register(module)?;
    Ok(())
}
