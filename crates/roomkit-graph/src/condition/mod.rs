//! The serializable condition language used on edges and condition nodes.

mod eval;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::context::Path;
use crate::limits::{self, CONDITION_NESTING, MAX_READ_DEPTH};

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
/// is kept as [`Condition::Malformed`] and fails when evaluated. Reading is
/// lenient where the reference's is: a missing `type` means `field`, missing
/// `conditions` mean none, a null `path` is false (each kept as
/// [`Condition::Lenient`]); `not` uses its first condition. All of these are
/// written back exactly as read, and [`crate::Graph::validate`] reports them.
///
/// ```
/// use roomkit_graph::{Condition, Context};
/// use serde_json::json;
///
/// let mut context = Context::new("start");
/// context.set_output("x", json!({"n": 1}));
/// let raw = json!({"path": "x.output.n", "op": "eq", "value": 1});
/// let condition = Condition::from_value(&raw);
/// assert!(condition.evaluate(&context)?);
/// assert!(condition.problem().unwrap().contains("without \"type\""));
/// assert_eq!(condition.to_value(), raw);
/// # Ok::<(), roomkit_graph::ConditionError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Compares the value at a path.
    Field(FieldCondition),
    /// Holds when every condition holds (true for none).
    All(Vec<Condition>),
    /// Holds when any condition holds (false for none).
    Any(Vec<Condition>),
    /// Holds when its condition does not. Written `{"type": "not", "conditions": [c]}`;
    /// with more conditions, the first one is used.
    Not(Vec<Condition>),
    /// The catch-all edge, taken when nothing else matched; anywhere else
    /// (nested, or in a condition node) it is true.
    Otherwise,
    /// An error route: the edge is taken only when its source node fails
    /// (after its retries), never after it completes. Written `{"type": "error"}`;
    /// only at the top of an edge's condition (nested, it is false).
    Error,
    /// A condition of a type this engine does not know; evaluates false.
    Unknown(Value),
    /// A condition read leniently, as the reference reads it: written back as
    /// read (`raw`), evaluated as `reading`, and reported by validation with `reason`.
    /// `reading` is none only for an edge's condition written `{}`: the edge
    /// is unconditional (and the condition true).
    Lenient {
        /// The JSON as read.
        raw: Value,
        /// How it is read.
        reading: Option<Box<Condition>>,
        /// What is wrong with it as written.
        reason: String,
    },
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

    /// The error route: an edge taken only when its source node fails.
    ///
    /// ```
    /// use roomkit_graph::{Condition, Edge};
    /// use serde_json::json;
    ///
    /// let edge = Edge::new("triage", "apologise").when(Condition::error());
    /// assert_eq!(serde_json::to_value(&edge)?["condition"], json!({"type": "error"}));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn error() -> Condition {
        Condition::Error
    }

    /// Whether this is an error route ([`Condition::error`]).
    pub fn is_error(&self) -> bool {
        matches!(self, Condition::Error)
    }

    /// Whether this is the `otherwise` catch-all.
    pub fn is_otherwise(&self) -> bool {
        matches!(self, Condition::Otherwise)
    }

    /// Reads a condition from JSON. Never fails: unknown types and malformed
    /// conditions are kept as they are (see [`Condition`]). Conditions nested
    /// more than [`CONDITION_NESTING`] levels are malformed (kept without their
    /// JSON when it is deeper than JSON text may be).
    ///
    /// ```
    /// use roomkit_graph::Condition;
    /// use serde_json::json;
    ///
    /// let mut value = json!({"type": "otherwise"});
    /// for _ in 0..100 {
    ///     value = json!({"type": "not", "conditions": [value]});
    /// }
    /// let condition = Condition::from_value(&value);
    /// assert!(condition.problem().unwrap().contains("nested more than"));
    /// ```
    pub fn from_value(value: &Value) -> Condition {
        Condition::read(value, 1)
    }

    fn read(value: &Value, level: usize) -> Condition {
        let malformed = |reason: &str| Condition::Malformed { raw: kept(value), reason: reason.to_owned() };
        let Some(object) = value.as_object() else {
            return malformed("a condition must be a JSON object");
        };
        if level > CONDITION_NESTING {
            return malformed(&format!("conditions are nested more than {CONDITION_NESTING} levels deep"));
        }
        let lenient = |reading: Condition, reason: &str| Condition::Lenient {
            raw: kept(value),
            reading: Some(Box::new(reading)),
            reason: reason.to_owned(),
        };
        let list = |conditions: fn(Vec<Condition>) -> Condition| match object.get("conditions") {
            Some(Value::Array(items)) => {
                conditions(items.iter().map(|item| Condition::read(item, level + 1)).collect())
            }
            None => lenient(conditions(Vec::new()), "it has no \"conditions\": it is read as none"),
            Some(_) => malformed("\"conditions\" must be an array of conditions"),
        };
        let kind = match object.get("type") {
            None => None,
            Some(Value::String(kind)) => Some(kind.as_str()),
            Some(_) => return Condition::Unknown(kept(value)),
        };
        match kind {
            Some("field") | None => {
                let path = match object.get("path") {
                    Some(Value::String(path)) => path,
                    Some(Value::Null) => {
                        // Never true: `any` of nothing.
                        return lenient(Condition::Any(Vec::new()), "its \"path\" is null: it is never true");
                    }
                    _ => return malformed("a field condition needs a \"path\" string"),
                };
                let Some(op) = object.get("op").and_then(Value::as_str) else {
                    return malformed("a field condition needs an \"op\" string");
                };
                let field = Condition::Field(FieldCondition {
                    path: Path::parse(path),
                    op: Op::parse(op),
                    value: object.get("value").map_or(Value::Null, kept),
                });
                match kind {
                    None => lenient(field, "a condition without \"type\" is read as a field condition"),
                    Some(_) => field,
                }
            }
            Some("all") => list(Condition::All),
            Some("any") => list(Condition::Any),
            Some("not") => match list(Condition::Not) {
                Condition::Not(items) if !items.is_empty() => Condition::Not(items),
                bad @ Condition::Malformed { .. } => bad,
                // No conditions at all: nothing to negate.
                _ => malformed("a not condition needs a condition in \"conditions\""),
            },
            Some("otherwise") => Condition::Otherwise,
            Some("error") => Condition::Error,
            Some(_) => Condition::Unknown(kept(value)),
        }
    }

    /// Writes the condition as JSON (each part copied once, without
    /// recursion, however deep a condition built in code is).
    pub fn to_value(&self) -> Value {
        /// Work left: a condition to write, or a list to close over its last `n` written parts.
        enum Work<'a> {
            Write(&'a Condition),
            Close(&'static str, usize),
        }
        let mut work = vec![Work::Write(self)];
        let mut written: Vec<Value> = Vec::new();
        while let Some(next) = work.pop() {
            match next {
                Work::Write(condition) => match condition {
                    Condition::All(items) | Condition::Any(items) | Condition::Not(items) => {
                        let kind = match condition {
                            Condition::All(_) => "all",
                            Condition::Any(_) => "any",
                            _ => "not",
                        };
                        work.push(Work::Close(kind, items.len()));
                        work.extend(items.iter().rev().map(Work::Write));
                    }
                    Condition::Field(field) => {
                        let mut map = Map::with_capacity(4);
                        map.insert("type".into(), "field".into());
                        map.insert("path".into(), field.path.as_str().into());
                        map.insert("op".into(), field.op.as_str().into());
                        map.insert("value".into(), field.value.clone());
                        written.push(Value::Object(map));
                    }
                    Condition::Otherwise => written.push(json!({"type": "otherwise"})),
                    Condition::Error => written.push(json!({"type": "error"})),
                    Condition::Unknown(raw)
                    | Condition::Malformed { raw, .. }
                    | Condition::Lenient { raw, .. } => written.push(raw.clone()),
                },
                Work::Close(kind, n) => {
                    let items = written.split_off(written.len().saturating_sub(n));
                    let mut map = Map::with_capacity(2);
                    map.insert("type".into(), kind.into());
                    map.insert("conditions".into(), Value::Array(items));
                    written.push(Value::Object(map));
                }
            }
        }
        written.pop().unwrap_or(Value::Null)
    }

    /// How deep `all`, `any` and `not` nest in this condition (1 for a field
    /// condition), counted without recursion.
    pub fn nesting(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1)];
        while let Some((condition, level)) = stack.pop() {
            deepest = deepest.max(level);
            match condition {
                Condition::All(items) | Condition::Any(items) | Condition::Not(items) => {
                    stack.extend(items.iter().map(|item| (item, level + 1)));
                }
                Condition::Lenient { reading: Some(reading), .. } => stack.push((reading, level)),
                _ => {}
            }
        }
        deepest
    }

    /// The first mistake in this condition, if any: malformed parts, unknown
    /// types and ops, and what is only read leniently (a missing `type` or
    /// `conditions`, a null `path`, `not` with several conditions, `otherwise`
    /// nested inside all / any / not). An `error` condition nested there is
    /// reported apart (see [`Condition::nests_error`]).
    pub fn problem(&self) -> Option<String> {
        match self {
            Condition::Field(FieldCondition { op: Op::Unknown(op), .. }) => {
                Some(format!("unknown op {op:?} (expected eq, neq, in, not_in, contains, gt, lt or exists)"))
            }
            Condition::Field(_) | Condition::Otherwise | Condition::Error => None,
            Condition::Not(items) if items.len() > 1 => {
                Some(format!("a not condition holds {} conditions: only the first is used", items.len()))
            }
            Condition::All(items) | Condition::Any(items) | Condition::Not(items) => {
                items.iter().find_map(|item| match item {
                    Condition::Otherwise => {
                        Some("\"otherwise\" inside all, any or not is always true".to_owned())
                    }
                    Condition::Error => None,
                    item => item.problem(),
                })
            }
            Condition::Lenient { reason, .. } => Some(reason.clone()),
            Condition::Unknown(raw) => Some(format!(
                "unknown condition type {} (expected field, all, any, not, otherwise or error)",
                raw.get("type").unwrap_or(&Value::Null)
            )),
            Condition::Malformed { reason, .. } => Some(reason.clone()),
        }
    }

    /// Whether an `error` condition stands inside all, any or not, where it is
    /// always false (an error route is a whole edge condition).
    ///
    /// ```
    /// use roomkit_graph::Condition;
    ///
    /// assert!(!Condition::error().nests_error());
    /// assert!(Condition::not(Condition::error()).nests_error());
    /// ```
    pub fn nests_error(&self) -> bool {
        let mut stack = vec![(self, false)];
        while let Some((condition, nested)) = stack.pop() {
            match condition {
                Condition::Error if nested => return true,
                Condition::All(items) | Condition::Any(items) | Condition::Not(items) => {
                    stack.extend(items.iter().map(|item| (item, true)));
                }
                Condition::Lenient { reading: Some(reading), .. } => stack.push((reading, nested)),
                _ => {}
            }
        }
        false
    }
}

/// A part of a condition's JSON kept as it was read, unless it nests deeper
/// than JSON text may (possible only for values built in code): then null.
fn kept(value: &Value) -> Value {
    if limits::depth(value) > MAX_READ_DEPTH { Value::Null } else { value.clone() }
}

impl Serialize for Condition {
    /// Refused for a condition (built in code) whose JSON would nest deeper
    /// than JSON text may: it could not be read back.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Each level of nesting is two levels of JSON (an object, its list).
        let nesting = self.nesting();
        if nesting.saturating_mul(2) > MAX_READ_DEPTH {
            return Err(serde::ser::Error::custom(format!(
                "the condition is nested {nesting} levels deep, more than JSON text may hold"
            )));
        }
        let value = self.to_value();
        let depth = limits::depth(&value);
        if depth > MAX_READ_DEPTH {
            return Err(serde::ser::Error::custom(format!(
                "the condition nests {depth} levels deep as JSON, more than the {MAX_READ_DEPTH} JSON text may"
            )));
        }
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Condition::from_value(&Value::deserialize(deserializer)?))
    }
}
