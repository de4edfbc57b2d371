//! `WorkflowContext` and `TemplateResolver`: a run's outputs and the
//! `{{path}}` templates that read them, on the core's `Context` and
//! `Template`.
//!
//! A context is either a standalone one (`WorkflowContext()`) or the live
//! view of an engine's run (`engine.context`, which a standalone context
//! given to `WorkflowEngine(context=...)` becomes): reads and writes then go
//! to the engine's own context, also while a handler runs a step.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use roomkit_graph::{Context, Template, ValueTemplate};
use serde_json::{Map, Value};

use crate::convert::{to_json, to_py};
use crate::errors::ErrorClass;
use crate::shared::Shared;

/// The id under which a run keeps its trigger data.
const START: &str = "start";

/// Where a context's data lives.
pub(crate) enum Inner {
    /// A context of its own, with the ids written since the last `drain_writes`.
    Own { context: Context, writes: Vec<String> },
    /// An engine's context.
    Engine(Arc<Shared>),
}

/// Accumulates the outputs of a run's nodes: `{node_id: {"output": value}}`,
/// read with dot paths (`triage.output.severity`) and the `input.`,
/// `steps.` and `trigger.` scopes. Values are JSON: what is stored is
/// converted once, what is read is a fresh copy.
#[pyclass(module = "roomkit_graph.engine.context", name = "WorkflowContext", frozen, weakref)]
pub(crate) struct WorkflowContext {
    inner: Mutex<Inner>,
}

impl WorkflowContext {
    /// A live view of an engine's context.
    pub(crate) fn of_engine(shared: Arc<Shared>) -> Self {
        WorkflowContext { inner: Mutex::new(Inner::Engine(shared)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `read` with the context's data.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&Context) -> R) -> PyResult<R> {
        let shared = match &*self.lock() {
            Inner::Own { context, .. } => return Ok(read(context)),
            Inner::Engine(shared) => Arc::clone(shared),
        };
        shared.read(read)
    }

    /// Hands this context's data to an engine, whose view it becomes; its
    /// saved entries, for the engine to start from (`None`: it is already an
    /// engine's).
    pub(crate) fn adopt(&self, shared: Arc<Shared>) -> Option<Map<String, Value>> {
        let mut inner = self.lock();
        match std::mem::replace(&mut *inner, Inner::Engine(shared)) {
            Inner::Own { context, .. } => Some(context.to_entries()),
            engine @ Inner::Engine(_) => {
                *inner = engine;
                None
            }
        }
    }
}

#[pymethods]
impl WorkflowContext {
    #[new]
    fn new() -> Self {
        WorkflowContext { inner: Mutex::new(Inner::Own { context: Context::new(START), writes: Vec::new() }) }
    }

    /// Stores `output` as node `node_id`'s output and notes the write.
    fn set(&self, node_id: &str, output: &Bound<'_, PyAny>) -> PyResult<()> {
        let output = to_json(output)?;
        let shared = match &mut *self.lock() {
            Inner::Own { context, writes } => {
                context.set_output(node_id, output);
                writes.push(node_id.to_owned());
                return Ok(());
            }
            Inner::Engine(shared) => Arc::clone(shared),
        };
        shared.write(node_id, output)
    }

    /// Sets what `input.` paths read.
    fn set_current_input(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = to_json(value)?;
        let shared = match &mut *self.lock() {
            Inner::Own { context, .. } => {
                context.set_input_value(Some(value));
                return Ok(());
            }
            Inner::Engine(shared) => Arc::clone(shared),
        };
        shared.set_input(value)
    }

    /// The ids written since the last call, in order.
    fn drain_writes(&self) -> Vec<String> {
        let shared = match &mut *self.lock() {
            Inner::Own { writes, .. } => return std::mem::take(writes),
            Inner::Engine(shared) => Arc::clone(shared),
        };
        shared.drain_writes()
    }

    /// The value at `path`, or `default` when the path leads nowhere.
    #[pyo3(signature = (path, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Copied under the lock, converted after: a conversion may run Python
        // (a collection's finalizers) that reads this context.
        let found = self.read(|context| context.get(path).cloned())?;
        match found {
            Some(value) => to_py(py, &value),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Whether `path` leads to a value.
    fn has(&self, path: &str) -> PyResult<bool> {
        self.read(|context| context.get(path).is_some())
    }

    /// Every entry, as a new dict: `{node_id: {"output": value}}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let entries = self.read(|context| context.to_entries())?;
        to_py(py, &Value::Object(entries))
    }

    /// A context holding the entries of `data` (as `to_dict` writes them).
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, pyo3::types::PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let Value::Object(entries) = to_json(data)? else {
            return Err(PyTypeError::new_err("WorkflowContext.from_dict takes a dict of {node_id: entry}"));
        };
        Ok(WorkflowContext {
            inner: Mutex::new(Inner::Own {
                context: Context::from_saved(START, entries),
                writes: Vec::new(),
            }),
        })
    }

    fn __repr__(&self) -> PyResult<String> {
        let entries = self.read(|context| context.to_entries())?;
        Ok(format!("WorkflowContext({})", Value::Object(entries)))
    }
}

/// Resolves `{{path}}` placeholders against a context: `resolve` always
/// gives text (strings as they are, other values as JSON), `resolve_value`
/// keeps a lone placeholder's type and walks dicts and lists.
#[pyclass(module = "roomkit_graph.engine.resolver", name = "TemplateResolver", frozen)]
pub(crate) struct TemplateResolver {
    context: Py<WorkflowContext>,
}

impl TemplateResolver {
    pub(crate) fn over(context: Py<WorkflowContext>) -> Self {
        TemplateResolver { context }
    }
}

#[pymethods]
impl TemplateResolver {
    #[new]
    fn new(context: &Bound<'_, PyAny>) -> PyResult<Self> {
        let context = context
            .cast::<WorkflowContext>()
            .map_err(|_| PyTypeError::new_err("TemplateResolver takes a WorkflowContext"))?;
        Ok(TemplateResolver { context: context.clone().unbind() })
    }

    /// `template` with every placeholder resolved, as text.
    fn resolve(&self, template: &str) -> PyResult<String> {
        let template = Template::parse(template).map_err(|e| template_error(&e))?;
        self.context.get().read(|context| template.render(context))?.map_err(|e| template_error(&e))
    }

    /// `data` with every placeholder in its strings resolved.
    fn resolve_dict<'py>(&self, py: Python<'py>, data: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        self.resolve_value(py, data.as_any())
    }

    /// `value` with every placeholder resolved: a string that is one
    /// placeholder gives the raw value, other strings text; dicts and lists
    /// are walked; anything else is returned as it is.
    fn resolve_value<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !(value.is_instance_of::<PyString>()
            || value.is_instance_of::<PyDict>()
            || value.is_instance_of::<PyList>())
        {
            return Ok(value.clone());
        }
        let compiled = ValueTemplate::compile(&to_json(value)?);
        if let Some((_, error)) = compiled.first_error() {
            return Err(template_error(error));
        }
        let resolved = self.context.get().read(|context| compiled.resolve(context))?;
        to_py(py, &resolved.map_err(|e| template_error(&e))?)
    }
}

/// A core template error as the package's `TemplateError`, in the words of
/// roomkit-graph's resolver.
pub(crate) fn template_error(error: &roomkit_graph::TemplateError) -> PyErr {
    use roomkit_graph::TemplateError as E;
    let message = match error {
        E::Missing { path } => format!("Template path not found: {path}"),
        E::UnknownFilter { placeholder, .. } => format!("Unknown template filter in: {placeholder}"),
        E::Malformed { placeholder, reason } if reason.starts_with("default") => format!(
            "default() takes a JSON value (a quoted string, number, true, false, null): {placeholder}: {reason}"
        ),
        other => other.to_string(),
    };
    ErrorClass::Template.err(message)
}
