//! Triggers: how a workflow is started. `Trigger.from_dict` picks the class
//! registered for the data's `type`: the four built-in ones, and any
//! subclass declared with `class MyTrigger(Trigger, trigger_type="mine")`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use crate::dataclass;
use crate::dataclass::or_dict;

/// The trigger classes by type name.
fn registry(py: Python<'_>) -> &Bound<'_, PyDict> {
    static REGISTRY: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    REGISTRY.get_or_init(py, || PyDict::new(py).unbind()).bind(py)
}

/// Registers the built-in trigger classes under their types.
pub(crate) fn register_builtins(py: Python<'_>) -> PyResult<()> {
    let registry = registry(py);
    registry.set_item("webhook", py.get_type::<WebhookTrigger>())?;
    registry.set_item("scheduled", py.get_type::<ScheduledTrigger>())?;
    registry.set_item("event", py.get_type::<EventTrigger>())?;
    registry.set_item("manual", py.get_type::<ManualTrigger>())?;
    Ok(())
}

/// `data.get(key, default)` for a dict; an error naming the trigger otherwise.
fn get<'py>(data: &Bound<'py, PyAny>, key: &str, default: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let Ok(dict) = data.cast::<PyDict>() else {
        return Err(PyTypeError::new_err(format!(
            "a trigger must be a dict, not {}",
            data.get_type().name()?
        )));
    };
    Ok(dict.get_item(key)?.unwrap_or(default))
}

/// `data["config"]`, or a fresh empty dict.
fn config_of<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    get(data, "config", PyDict::new(data.py()).into_any())
}

/// The base trigger: `Trigger(type="", config={})`, frozen.
#[pyclass(module = "roomkit_graph.triggers", subclass, frozen)]
pub(crate) struct Trigger {
    #[pyo3(get, name = "type")]
    kind: Py<PyAny>,
    #[pyo3(get)]
    config: Py<PyAny>,
}

impl Trigger {
    fn with(py: Python<'_>, kind: Bound<'_, PyAny>, config: Option<Bound<'_, PyAny>>) -> Self {
        Trigger { kind: kind.unbind(), config: or_dict(py, config) }
    }

    /// The trigger's fields in order: `type`, `config`, then the subclass's own.
    fn fields<'py>(slf: &Bound<'py, Self>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let py = slf.py();
        let this = slf.get();
        let mut fields = vec![
            ("type".to_owned(), this.kind.bind(py).clone()),
            ("config".to_owned(), this.config.bind(py).clone()),
        ];
        let extra = slf.call_method0("_extra_fields")?;
        let extra = extra
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err("a trigger's _extra_fields() must return a dict"))?;
        for (key, value) in extra.iter() {
            fields.push((key.str()?.to_str()?.to_owned(), value));
        }
        Ok(fields)
    }

    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(slf.py(), Trigger::fields(slf)?.into_iter().map(|(_, value)| value))
    }
}

#[pymethods]
impl Trigger {
    #[new]
    #[classmethod]
    #[pyo3(signature = (r#type = None, config = None, *args, **kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        r#type: Option<Bound<'_, PyAny>>,
        config: Option<Bound<'_, PyAny>>,
        args: Bound<'_, PyTuple>,
        kwargs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let py = cls.py();
        // A subclass written in Python may take fields of its own, which
        // its own `__init__` sets.
        let extra = !args.is_empty() || kwargs.as_ref().is_some_and(|k| !k.is_empty());
        if extra && cls.is(py.get_type::<Trigger>()) {
            return Err(PyTypeError::new_err("Trigger() takes only type and config"));
        }
        Ok(Trigger::with(py, r#type.unwrap_or_else(|| PyString::new(py, "").into_any()), config))
    }

    /// The trigger as JSON data: `type`, the subclass's own fields, and
    /// `config` unless empty.
    fn to_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let data = PyDict::new(py);
        data.set_item("type", slf.get().kind.bind(py))?;
        let extra = slf.call_method0("_extra_fields")?;
        data.call_method1("update", (extra,))?;
        let config = slf.get().config.bind(py);
        if config.is_truthy()? {
            data.set_item("config", config)?;
        }
        Ok(data)
    }

    /// The subclass's own fields, for `to_dict` (none for the base class).
    fn _extra_fields<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        PyDict::new(py)
    }

    /// A trigger from its JSON data, of the class registered for its `type`
    /// (this class when none is).
    #[classmethod]
    fn from_dict<'py>(cls: &Bound<'py, PyType>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let kind = get(data, "type", PyString::new(py, "").into_any())?;
        let class = match registry(py).get_item(&kind) {
            Ok(Some(class)) => class,
            _ => cls.clone().into_any(),
        };
        class.call_method1("_from_dict_fields", (data,))
    }

    /// Builds an object of this class from the data's fields (subclasses
    /// read their own).
    #[classmethod]
    fn _from_dict_fields<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item("type", get(data, "type", PyString::new(py, "").into_any())?)?;
        kwargs.set_item("config", config_of(data)?)?;
        cls.call((), Some(&kwargs))
    }

    /// Registers a subclass declared with `trigger_type="name"` for `from_dict`.
    #[classmethod]
    #[pyo3(signature = (trigger_type = None, **kwargs))]
    fn __init_subclass__(
        cls: &Bound<'_, PyType>,
        trigger_type: Option<Bound<'_, PyAny>>,
        kwargs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        if let Some(kwargs) = kwargs.filter(|k| !k.is_empty()) {
            let names: Vec<String> = kwargs.keys().iter().map(|k| k.to_string()).collect();
            return Err(PyTypeError::new_err(format!(
                "{}: unexpected class keyword {}",
                cls.name()?,
                names.join(", ")
            )));
        }
        if let Some(name) = trigger_type.filter(|t| t.is_truthy().unwrap_or(false)) {
            registry(cls.py()).set_item(name, cls)?;
        }
        Ok(())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let fields = Trigger::fields(slf)?;
        let named: Vec<(&str, &Bound<'_, PyAny>)> = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
        dataclass::repr(slf.as_any(), &named)
    }

    fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if !dataclass::same_class(slf.as_any(), other) {
            return Ok(slf.py().NotImplemented());
        }
        let other = other.cast::<Self>()?;
        dataclass::compare(Trigger::values(slf)?, Trigger::values(other)?)
    }

    fn __hash__(slf: &Bound<'_, Self>) -> PyResult<isize> {
        Trigger::values(slf)?.hash()
    }

    /// Copies and pickles as the class called with its fields (and, for a
    /// subclass written in Python, its own attributes).
    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>, Option<Bound<'py, PyAny>>)> {
        Ok((slf.get_type(), Trigger::values(slf)?, slf.getattr("__dict__").ok()))
    }

    fn __setattr__(&self, py: Python<'_>, name: &str, _value: Bound<'_, PyAny>) -> PyResult<()> {
        Err(dataclass::frozen_error(py, name))
    }

    fn __delattr__(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        Err(dataclass::frozen_error(py, name))
    }
}

/// The base part of a built-in trigger of type `kind`.
fn base(py: Python<'_>, kind: &str, config: Option<Bound<'_, PyAny>>) -> PyClassInitializer<Trigger> {
    PyClassInitializer::from(Trigger::with(py, PyString::new(py, kind).into_any(), config))
}

/// The built-in trigger class `cls` called with `data`'s `config` and,
/// when it has one, its own `field`.
fn from_dict_fields<'py>(
    cls: &Bound<'py, PyType>,
    data: &Bound<'py, PyAny>,
    field: Option<(&str, Bound<'py, PyAny>)>,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(cls.py());
    if let Some((name, value)) = field {
        kwargs.set_item(name, value)?;
    }
    kwargs.set_item("config", config_of(data)?)?;
    cls.call((), Some(&kwargs))
}

/// A built-in trigger with one field of its own beside `config`: the class
/// (with its doc), its `type`, the field and the field's default (a function
/// of the interpreter, so each trigger gets a value of its own).
macro_rules! one_field_trigger {
    ($(#[$doc:meta])* $class:ident, $kind:literal, $field:ident, $default:expr) => {
        $(#[$doc])*
        #[pyclass(module = "roomkit_graph.triggers", extends = Trigger, subclass, frozen)]
        pub(crate) struct $class {
            #[pyo3(get)]
            $field: Py<PyAny>,
        }

        impl $class {
            fn default_value(py: Python<'_>) -> Bound<'_, PyAny> {
                let default: fn(Python<'_>) -> Bound<'_, PyAny> = $default;
                default(py)
            }
        }

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (r#type = None, config = None, $field = None))]
            fn new(
                py: Python<'_>,
                r#type: Option<Bound<'_, PyAny>>,
                config: Option<Bound<'_, PyAny>>,
                $field: Option<Bound<'_, PyAny>>,
            ) -> PyClassInitializer<Self> {
                let _ = r#type;
                let $field = $field.unwrap_or_else(|| Self::default_value(py)).unbind();
                base(py, $kind, config).add_subclass($class { $field })
            }

            fn _extra_fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let fields = PyDict::new(py);
                fields.set_item(stringify!($field), &self.$field)?;
                Ok(fields)
            }

            #[classmethod]
            fn _from_dict_fields<'py>(
                cls: &Bound<'py, PyType>,
                data: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let value = get(data, stringify!($field), Self::default_value(cls.py()))?;
                from_dict_fields(cls, data, Some((stringify!($field), value)))
            }
        }
    };
}

one_field_trigger!(
    /// Triggered by an inbound webhook: `WebhookTrigger(source_type="generic")`.
    WebhookTrigger,
    "webhook",
    source_type,
    |py| PyString::new(py, "generic").into_any()
);

one_field_trigger!(
    /// Triggered on a recurring schedule: `ScheduledTrigger(schedule={})`.
    ScheduledTrigger,
    "scheduled",
    schedule,
    |py| PyDict::new(py).into_any()
);

one_field_trigger!(
    /// Triggered by an internal event: `EventTrigger(event="")`.
    EventTrigger,
    "event",
    event,
    |py| PyString::new(py, "").into_any()
);

/// Triggered by hand: `ManualTrigger()`.
#[pyclass(module = "roomkit_graph.triggers", extends = Trigger, subclass, frozen)]
pub(crate) struct ManualTrigger;

#[pymethods]
impl ManualTrigger {
    #[new]
    #[pyo3(signature = (r#type = None, config = None))]
    fn new(
        py: Python<'_>,
        r#type: Option<Bound<'_, PyAny>>,
        config: Option<Bound<'_, PyAny>>,
    ) -> PyClassInitializer<Self> {
        let _ = r#type;
        base(py, "manual", config).add_subclass(ManualTrigger)
    }

    #[classmethod]
    fn _from_dict_fields<'py>(
        cls: &Bound<'py, PyType>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        from_dict_fields(cls, data, None)
    }
}
