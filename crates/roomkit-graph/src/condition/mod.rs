//! The serializable condition language used on edges and condition nodes.

mod eval;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::context::Path;

pub use eval::ConditionError;

/// A condition on the run's context.
///
/// Built in code or read from JSON; both forms are the same data:
///
/// ```
/// use roomkit_graph::Condition;
/// use serde_json::json;
///
/// let cond = Condition::all([
///     Condition::field("triage.output.severity").equals("critical"),
///     Condition::field("triage.output.team").in_(["backend", "infra"]),
/// ]);
/// assert_eq!(
///     serde_json::to_value(&cond).unwrap(),
///     json!({"type": "all", "conditions": [
///         {"type": "field", "path": "triage.output.severity", "op": "eq", "value": "critical"},
///         {"type": "field", "path": "triage.output.team", "op": "in", "value": ["backend", "infra"]},
///     ]})
/// );
/// ```
///
/// A JSON condition of an unknown `type` is kept as [`Condition::Unknown`] and
/// evaluates false; one that is malformed (a field condition without a path, say)
/// is kept as [`Condition::Malformed`] and fails when evaluated. Both are written
/// back exactly as read, and [`crate::Graph::validate`] reports them.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Compares the value at a path.
    Field(FieldCondition),
    /// Holds when every condition holds (true for none).
    All(Vec<Condition>),
    /// Holds when any condition holds (false for none).
    Any(Vec<Condition>),
    /// Holds when its condition does not. Written `{"type": "not", "conditions": [c]}`.
    Not(Vec<Condition>),
    /// The catch-all edge, taken when nothing else matched.
    Otherwise,
    /// A condition of a type this engine does not know; evaluates false.
    Unknown(Value),
    /// A condition that cannot be evaluated, with why.
    Malformed {
        /// The JSON as read.
        raw: Value,
        /// What is wrong with it.
        reason: String,
    },
}

/// `{"type": "field", "path", "op", "value"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldCondition {
    /// Where the compared value is.
    pub path: Path,
    /// How it is compared.
    pub op: Op,
    /// What it is compared with (null for `exists`).
    pub value: Value,
}

/// A field comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `eq`: JSON equality, numbers by value.
    Eq,
    /// `neq`: not `eq`.
    Neq,
    /// `in`: the field is an element of the array value, or a substring of the string value.
    In,
    /// `not_in`: not `in`.
    NotIn,
    /// `contains`: substring of a string field, element of an array field, key of an object field.
    Contains,
    /// `gt`: number > number, or string > string.
    Gt,
    /// `lt`: number < number, or string < string.
    Lt,
    /// `exists`: the path leads somewhere.
    Exists,
    /// An op this engine does not know: evaluating it is an error.
    Unknown(String),
}

impl Op {
    /// The op's name in JSON.
    pub fn as_str(&self) -> &str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::Gt => "gt",
            Op::Lt => "lt",
            Op::Exists => "exists",
            Op::Unknown(name) => name,
        }
    }

    fn parse(name: &str) -> Op {
        match name {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "in" => Op::In,
            "not_in" => Op::NotIn,
            "contains" => Op::Contains,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "exists" => Op::Exists,
            other => Op::Unknown(other.to_owned()),
        }
    }
}

/// Builds a field condition: `Condition::field(path).<op>(value)`.
#[derive(Clone, Debug)]
#[must_use = "a field builder does nothing until an op such as .equals(...) is applied"]
pub struct FieldBuilder {
    path: Path,
}

impl FieldBuilder {
    fn op(self, op: Op, value: Value) -> Condition {
        Condition::Field(FieldCondition { path: self.path, op, value })
    }

    /// The value equals `value` (numbers by value; booleans are not numbers).
    pub fn equals(self, value: impl Into<Value>) -> Condition {
        self.op(Op::Eq, value.into())
    }

    /// The value does not equal `value` (false when the path is missing).
    pub fn not_equals(self, value: impl Into<Value>) -> Condition {
        self.op(Op::Neq, value.into())
    }

    /// The value is greater than `value`.
    pub fn gt(self, value: impl Into<Value>) -> Condition {
        self.op(Op::Gt, value.into())
    }

    /// The value is less than `value`.
    pub fn lt(self, value: impl Into<Value>) -> Condition {
        self.op(Op::Lt, value.into())
    }

    /// The value contains `value`: substring, array element or object key.
    pub fn contains(self, value: impl Into<Value>) -> Condition {
        self.op(Op::Contains, value.into())
    }

    /// The value is one of `values`.
    pub fn in_<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Condition {
        self.op(Op::In, Value::Array(values.into_iter().map(Into::into).collect()))
    }

    /// The value is none of `values` (false when the path is missing).
    pub fn not_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Condition {
        self.op(Op::NotIn, Value::Array(values.into_iter().map(Into::into).collect()))
    }

    /// The path leads somewhere (a stored null counts).
    pub fn exists(self) -> Condition {
        self.op(Op::Exists, Value::Null)
    }
}

impl Condition {
    /// Starts a condition on the value at `path`.
    pub fn field(path: &str) -> FieldBuilder {
        FieldBuilder { path: Path::parse(path) }
    }

    /// Holds when all of `conditions` hold.
    pub fn all(conditions: impl IntoIterator<Item = Condition>) -> Condition {
        Condition::All(conditions.into_iter().collect())
    }

    /// Holds when any of `conditions` holds.
    pub fn any(conditions: impl IntoIterator<Item = Condition>) -> Condition {
        Condition::Any(conditions.into_iter().collect())
    }

    /// Holds when `condition` does not.
    #[allow(clippy::should_implement_trait)]
    pub fn not(condition: Condition) -> Condition {
        Condition::Not(vec![condition])
    }

    /// The catch-all: taken when no other edge of the node matched.
    pub fn otherwise() -> Condition {
        Condition::Otherwise
    }

    /// Whether this is the `otherwise` catch-all.
    pub fn is_otherwise(&self) -> bool {
        matches!(self, Condition::Otherwise)
    }

    /// Reads a condition from JSON. Never fails: unknown types and malformed
    /// conditions are kept as they are (see [`Condition`]).
    pub fn from_value(value: &Value) -> Condition {
        let malformed = |reason: &str| Condition::Malformed { raw: value.clone(), reason: reason.to_owned() };
        let Some(object) = value.as_object() else {
            return malformed("a condition must be a JSON object");
        };
        let list = |conditions: fn(Vec<Condition>) -> Condition| match object.get("conditions") {
            Some(Value::Array(items)) => conditions(items.iter().map(Condition::from_value).collect()),
            _ => malformed("\"conditions\" must be an array of conditions"),
        };
        match object.get("type").and_then(Value::as_str) {
            Some("field") => {
                let Some(path) = object.get("path").and_then(Value::as_str) else {
                    return malformed("a field condition needs a \"path\" string");
                };
                let Some(op) = object.get("op").and_then(Value::as_str) else {
                    return malformed("a field condition needs an \"op\" string");
                };
                Condition::Field(FieldCondition {
                    path: Path::parse(path),
                    op: Op::parse(op),
                    value: object.get("value").cloned().unwrap_or(Value::Null),
                })
            }
            Some("all") => list(Condition::All),
            Some("any") => list(Condition::Any),
            Some("not") => match list(Condition::Not) {
                Condition::Not(items) if items.len() != 1 => {
                    malformed("a not condition holds exactly one condition in \"conditions\"")
                }
                other => other,
            },
            Some("otherwise") => Condition::Otherwise,
            Some(_) => Condition::Unknown(value.clone()),
            None => malformed("a condition needs a \"type\" string"),
        }
    }

    /// Writes the condition as JSON.
    pub fn to_value(&self) -> Value {
        let list = |kind: &str, items: &[Condition]| json!({"type": kind, "conditions": items.iter().map(Condition::to_value).collect::<Vec<_>>()});
        match self {
            Condition::Field(field) => {
                let mut map = Map::with_capacity(4);
                map.insert("type".into(), "field".into());
                map.insert("path".into(), field.path.as_str().into());
                map.insert("op".into(), field.op.as_str().into());
                map.insert("value".into(), field.value.clone());
                Value::Object(map)
            }
            Condition::All(items) => list("all", items),
            Condition::Any(items) => list("any", items),
            Condition::Not(items) => list("not", items),
            Condition::Otherwise => json!({"type": "otherwise"}),
            Condition::Unknown(raw) | Condition::Malformed { raw, .. } => raw.clone(),
        }
    }

    /// The first problem that makes this condition unusable, if any: malformed
    /// parts, unknown types and unknown ops.
    pub fn problem(&self) -> Option<String> {
        match self {
            Condition::Field(FieldCondition { op: Op::Unknown(op), .. }) => {
                Some(format!("unknown op {op:?} (expected eq, neq, in, not_in, contains, gt, lt or exists)"))
            }
            Condition::Field(_) | Condition::Otherwise => None,
            Condition::All(items) | Condition::Any(items) | Condition::Not(items) => {
                items.iter().find_map(Condition::problem)
            }
            Condition::Unknown(raw) => Some(format!(
                "unknown condition type {} (expected field, all, any, not or otherwise)",
                raw.get("type").unwrap_or(&Value::Null)
            )),
            Condition::Malformed { reason, .. } => Some(reason.clone()),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Condition::from_value(&Value::deserialize(deserializer)?))
    }
}
