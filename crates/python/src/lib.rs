//! The `roomkit_graph` Python package's native module, `roomkit_graph._core`.
//!
//! The package's Python files re-export what this module defines; the work
//! (the graph model, JSON, validation, conditions, templates, the step loop)
//! happens in the `roomkit-graph` crate.

use pyo3::prelude::*;

/// The allocator of the module's Rust side: a run allocates and frees small
/// values at every step, which mimalloc serves faster than the C library's
/// allocator inside the interpreter's process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod condition;
mod context;
mod convert;
mod dataclass;
mod driver;
mod durable;
mod edge;
mod engine;
mod errors;
mod graph;
mod handlers;
mod node;
mod progress;
mod registry;
mod result;
mod runlog;
mod shared;
mod steps;
mod stream;
mod trigger;

/// The native module: every class and function the package re-exports.
#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("NODE_TYPES", node::node_type_names())?;
    module.add_class::<node::Node>()?;
    module.add_class::<edge::Edge>()?;
    module.add_class::<condition::Condition>()?;
    module.add_class::<condition::ConditionBuilder>()?;
    module.add_class::<trigger::Trigger>()?;
    module.add_class::<trigger::WebhookTrigger>()?;
    module.add_class::<trigger::ScheduledTrigger>()?;
    module.add_class::<trigger::EventTrigger>()?;
    module.add_class::<trigger::ManualTrigger>()?;
    trigger::register_builtins(py)?;
    module.add_class::<graph::Graph>()?;
    module.add_class::<registry::FunctionRegistry>()?;
    module.add("graph_registry", Bound::new(py, registry::FunctionRegistry::new(py))?)?;
    module.add_class::<result::NodeResult>()?;
    module.add_class::<result::StepResult>()?;
    module.add_class::<context::WorkflowContext>()?;
    module.add_class::<context::TemplateResolver>()?;
    module.add_class::<engine::WorkflowEngine>()?;
    module.add_class::<handlers::Builtin>()?;
    module.add_class::<stream::EventStream>()?;
    module.add_function(wrap_pyfunction!(progress::progress_line, module)?)?;
    module.add_function(wrap_pyfunction!(progress::printable, module)?)?;
    driver::register(module)?;
    durable::register(module)?;
    Ok(())
}
