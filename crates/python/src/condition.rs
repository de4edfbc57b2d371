//! `Condition` and its builder: edge conditions as data, evaluated by the core.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use roomkit_graph::{Condition as CoreCondition, ConditionError, Context};
use serde_json::{Map, Value};

use crate::convert::{to_json, to_py};
use crate::dataclass;
use crate::errors::ErrorClass;

/// How deep `all`, `any` and `not` may nest in a condition built in Python
/// (the core reads no deeper).
const MAX_NESTING: usize = 40;

/// A serializable condition for edge routing:
/// `Condition(type, path=None, op=None, value=None, conditions=())`.
///
/// `type` is `field`, `otherwise`, `all`, `any` or `not`; `op` (for `field`)
/// is `eq`, `neq`, `in`, `not_in`, `contains`, `gt`, `lt` or `exists`.
#[pyclass(module = "roomkit_graph.edges.condition", frozen)]
pub(crate) struct Condition {
    #[pyo3(get, name = "type")]
    kind: Py<PyAny>,
    #[pyo3(get)]
    path: Py<PyAny>,
    #[pyo3(get)]
    op: Py<PyAny>,
    #[pyo3(get)]
    value: Py<PyAny>,
    #[pyo3(get)]
    conditions: Py<PyAny>,
    /// How deep `all`, `any` and `not` nest in it (1 for a field condition).
    nesting: usize,
}

#[pymethods]
impl Condition {
    #[new]
    #[pyo3(signature = (r#type, path = None, op = None, value = None, conditions = None))]
    fn new(
        py: Python<'_>,
        r#type: Bound<'_, PyAny>,
        path: Option<Bound<'_, PyAny>>,
        op: Option<Bound<'_, PyAny>>,
        value: Option<Bound<'_, PyAny>>,
        conditions: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let none = |v: Option<Bound<'_, PyAny>>| v.map_or_else(|| py.None(), Bound::unbind);
        // Refused past the core's limit when built, so that no chain of
        // conditions gets deep enough to exhaust the stack when dropped.
        let mut nesting = 1;
        if let Some(items) = &conditions
            && (items.is_instance_of::<PyTuple>() || items.is_instance_of::<pyo3::types::PyList>())
        {
            for item in items.try_iter()? {
                if let Ok(item) = item?.cast::<Condition>() {
                    nesting = nesting.max(item.get().nesting + 1);
                }
            }
        }
        if nesting > MAX_NESTING {
            return Err(PyValueError::new_err(format!(
                "the condition nests all, any and not more than {MAX_NESTING} levels deep"
            )));
        }
        Ok(Condition {
            kind: r#type.unbind(),
            path: none(path),
            op: none(op),
            value: none(value),
            conditions: conditions.map_or_else(|| PyTuple::empty(py).into_any().unbind(), Bound::unbind),
            nesting,
        })
    }

    /// Starts a field condition: `Condition.field("triage.output.severity").equals("critical")`.
    #[classmethod]
    fn field(_cls: &Bound<'_, PyType>, path: Bound<'_, PyAny>) -> ConditionBuilder {
        ConditionBuilder { path: path.unbind() }
    }

    /// The catch-all edge: taken when no other edge of the node matched.
    #[classmethod]
    fn otherwise(cls: &Bound<'_, PyType>) -> PyResult<Py<PyAny>> {
        Ok(cls.call1(("otherwise",))?.unbind())
    }

    /// Holds when every one of `conditions` holds.
    #[classmethod]
    #[pyo3(signature = (*conditions))]
    fn all_(cls: &Bound<'_, PyType>, conditions: Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        Ok(cls.call(("all",), Some(&kwargs_conditions(conditions)?))?.unbind())
    }

    /// Holds when any of `conditions` holds.
    #[classmethod]
    #[pyo3(signature = (*conditions))]
    fn any_(cls: &Bound<'_, PyType>, conditions: Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        Ok(cls.call(("any",), Some(&kwargs_conditions(conditions)?))?.unbind())
    }

    /// Holds when `condition` does not.
    #[classmethod]
    fn not_(cls: &Bound<'_, PyType>, condition: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let conditions = PyTuple::new(cls.py(), [condition])?;
        Ok(cls.call(("not",), Some(&kwargs_conditions(conditions)?))?.unbind())
    }

    /// Evaluates the condition against a run's context (a `WorkflowContext`):
    /// each path is read with `context.get(path)` (so `input.`, `steps.` and
    /// `trigger.` scopes apply), and the core compares. A missing path makes a
    /// field condition false.
    fn evaluate(&self, py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<bool> {
        let missing = py.import("builtins")?.getattr("object")?.call0()?;
        self.evaluate_with(py, |path| {
            let value = context.call_method1("get", (path, &missing))?;
            if value.is(&missing) { Ok(None) } else { to_json(&value).map(Some) }
        })
    }

    /// Evaluates the condition against a plain dict: each path is walked key
    /// by key (`"a.b"` reads `data["a"]["b"]`); a missing path is false.
    fn evaluate_dict(&self, py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<bool> {
        let root = to_json(context)?;
        self.evaluate_with(py, |path| {
            Ok(path.split('.').try_fold(&root, |value, key| value.as_object()?.get(key)).cloned())
        })
    }

    /// The condition as JSON data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.to_core(py)?.to_value())
    }

    /// A condition from its JSON data, read as the core reads it (leniently:
    /// a missing `type` is a field condition, missing `conditions` none).
    #[classmethod]
    fn from_dict<'py>(cls: &Bound<'py, PyType>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !data.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!(
                "a condition must be a dict, not {}",
                data.get_type().name()?
            )));
        }
        build(cls, &CoreCondition::from_value(&to_json(data)?))
    }
}

/// `{"conditions": conditions}`, for the constructors of composite conditions.
fn kwargs_conditions<'py>(conditions: Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyDict>> {
    let kwargs = PyDict::new(conditions.py());
    kwargs.set_item("conditions", conditions)?;
    Ok(kwargs)
}

impl Condition {
    /// The condition as the core reads it.
    pub(crate) fn to_core(&self, py: Python<'_>) -> PyResult<CoreCondition> {
        Ok(CoreCondition::from_value(&self.to_value(py, 1, &|path| Ok(path.to_owned()))?))
    }

    /// The condition as JSON, each field path passed through `path`.
    fn to_value(
        &self,
        py: Python<'_>,
        level: usize,
        path: &dyn Fn(&str) -> PyResult<String>,
    ) -> PyResult<Value> {
        if level > MAX_NESTING {
            return Err(PyValueError::new_err(format!(
                "the condition nests all, any and not more than {MAX_NESTING} levels deep"
            )));
        }
        let kind = to_json(self.kind.bind(py))?;
        let mut map = Map::new();
        match kind.as_str() {
            Some("field") => {
                map.insert("type".into(), kind);
                let written = match self.path.bind(py).cast::<PyString>() {
                    Ok(text) => Value::String(path(text.to_str()?)?),
                    Err(_) => to_json(self.path.bind(py))?,
                };
                map.insert("path".into(), written);
                map.insert("op".into(), to_json(self.op.bind(py))?);
                map.insert("value".into(), to_json(self.value.bind(py))?);
            }
            Some("all" | "any" | "not") => {
                map.insert("type".into(), kind);
                let mut items = Vec::new();
                for item in self.conditions.bind(py).try_iter()? {
                    let item = item?;
                    let Ok(condition) = item.cast::<Condition>() else {
                        return Err(PyTypeError::new_err(format!(
                            "a condition's conditions must be Condition objects, not {}",
                            item.get_type().name()?
                        )));
                    };
                    items.push(condition.get().to_value(py, level + 1, path)?);
                }
                map.insert("conditions".into(), Value::Array(items));
            }
            _ => {
                map.insert("type".into(), kind);
            }
        }
        Ok(Value::Object(map))
    }

    /// Evaluates with the core, each field path's value given by `read`
    /// (`None`: missing).
    fn evaluate_with(
        &self,
        py: Python<'_>,
        read: impl Fn(&str) -> PyResult<Option<Value>>,
    ) -> PyResult<bool> {
        // Each path's value is put in one object the core reads as the start
        // node's output, under the path's number: `start.output.<n>`.
        // A missing path's number is left out, so the core finds nothing there.
        let values = std::cell::RefCell::new(Map::new());
        let count = std::cell::Cell::new(0_usize);
        let value = self.to_value(py, 1, &|path| {
            let key = count.replace(count.get() + 1).to_string();
            if let Some(found) = read(path)? {
                values.borrow_mut().insert(key.clone(), found);
            }
            Ok(format!("start.output.{key}"))
        })?;
        let condition = CoreCondition::from_value(&value);
        let mut context = Context::new("start");
        context.set_output("start", Value::Object(values.into_inner()));
        condition.evaluate(&context).map_err(|e| condition_error(&e))
    }
}

/// A core condition error in the package's words.
fn condition_error(error: &ConditionError) -> PyErr {
    match error {
        ConditionError::UnknownOp { op, .. } => {
            ErrorClass::Condition.err(format!("Unknown condition operator: '{op}'"))
        }
        other => ErrorClass::Condition.err(other.to_string()),
    }
}

/// A new `Condition` (of class `cls`) from the core's.
pub(crate) fn build<'py>(cls: &Bound<'py, PyType>, condition: &CoreCondition) -> PyResult<Bound<'py, PyAny>> {
    build_at(cls, condition, 1)
}

fn build_at<'py>(
    cls: &Bound<'py, PyType>,
    condition: &CoreCondition,
    level: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    if level > MAX_NESTING {
        return Err(
            ErrorClass::Condition.err(format!("conditions are nested more than {MAX_NESTING} levels deep"))
        );
    }
    let composite = |kind: &str, items: &[CoreCondition]| -> PyResult<Bound<'py, PyAny>> {
        let built = items.iter().map(|item| build_at(cls, item, level + 1)).collect::<PyResult<Vec<_>>>()?;
        cls.call((kind,), Some(&kwargs_conditions(PyTuple::new(py, built)?)?))
    };
    match condition {
        CoreCondition::Field(field) => {
            cls.call1(("field", field.path.as_str(), field.op.as_str(), to_py(py, &field.value)?))
        }
        CoreCondition::All(items) => composite("all", items),
        CoreCondition::Any(items) => composite("any", items),
        CoreCondition::Not(items) => composite("not", items),
        CoreCondition::Otherwise => cls.call1(("otherwise",)),
        CoreCondition::Error => cls.call1(("error",)),
        CoreCondition::Unknown(raw)
        | CoreCondition::Lenient { raw, .. }
        | CoreCondition::Malformed { raw, .. } => build_raw(cls, raw, condition, level),
    }
}

/// A condition the core keeps as written: its fields taken as they are.
fn build_raw<'py>(
    cls: &Bound<'py, PyType>,
    raw: &Value,
    read: &CoreCondition,
    level: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let Some(object) = raw.as_object() else {
        let reason = read.problem().unwrap_or_else(|| "a condition must be a JSON object".to_owned());
        return Err(ErrorClass::Condition.err(reason));
    };
    let kind = object.get("type").cloned().unwrap_or_else(|| Value::String("field".into()));
    let field = |key: &str| to_py(py, object.get(key).unwrap_or(&Value::Null));
    match kind.as_str() {
        Some("field") => cls.call1(("field", field("path")?, field("op")?, field("value")?)),
        Some(kind @ ("all" | "any" | "not")) => {
            let items = match object.get("conditions") {
                None => Vec::new(),
                Some(Value::Array(items)) => items.clone(),
                Some(_) => {
                    return Err(ErrorClass::Condition.err("\"conditions\" must be an array of conditions"));
                }
            };
            let built = items
                .iter()
                .map(|item| build_at(cls, &CoreCondition::from_value(item), level + 1))
                .collect::<PyResult<Vec<_>>>()?;
            cls.call((kind,), Some(&kwargs_conditions(PyTuple::new(py, built)?)?))
        }
        _ => cls.call1((to_py(py, &kind)?,)),
    }
}

/// Builds field conditions: `Condition.field(path).equals(value)` and the other ops.
#[pyclass(module = "roomkit_graph.edges.condition", frozen)]
pub(crate) struct ConditionBuilder {
    path: Py<PyAny>,
}

impl ConditionBuilder {
    fn op(&self, py: Python<'_>, op: &str, value: Option<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let class = py.get_type::<Condition>();
        let value = value.map_or_else(|| py.None(), Bound::unbind);
        Ok(class.call1(("field", self.path.clone_ref(py), op, value))?.unbind())
    }
}

#[pymethods]
impl ConditionBuilder {
    #[new]
    fn new(path: Bound<'_, PyAny>) -> Self {
        ConditionBuilder { path: path.unbind() }
    }

    /// The value equals `value`.
    fn equals(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "eq", Some(value))
    }

    /// The value does not equal `value`.
    fn not_equals(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "neq", Some(value))
    }

    /// The value is one of `values`.
    fn in_(&self, py: Python<'_>, values: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "in", Some(values))
    }

    /// The value is none of `values`.
    fn not_in(&self, py: Python<'_>, values: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "not_in", Some(values))
    }

    /// The value contains `value`.
    fn contains(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "contains", Some(value))
    }

    /// The value is greater than `value`.
    fn gt(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "gt", Some(value))
    }

    /// The value is less than `value`.
    fn lt(&self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.op(py, "lt", Some(value))
    }

    /// The path leads somewhere.
    fn exists(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.op(py, "exists", None)
    }
}

dataclass::dataclass_methods!(frozen Condition {
    kind: "type",
    path: "path",
    op: "op",
    value: "value",
    conditions: "conditions",
});
