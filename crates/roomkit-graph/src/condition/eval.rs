//! Evaluating conditions against a run's context.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{Condition, FieldCondition, Op};
use std::sync::Arc;

use crate::context::{Context, Layout};

/// Why a condition could not be evaluated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConditionError {
    /// A field condition with an op this engine does not know.
    #[error("unknown op {op:?} on path {path:?}")]
    UnknownOp {
        /// The op as written.
        op: String,
        /// The condition's path.
        path: String,
    },
    /// A condition that is not well formed.
    #[error("malformed condition {raw}: {reason}")]
    Malformed {
        /// The condition as read.
        raw: Value,
        /// What is wrong with it.
        reason: String,
    },
}

impl Condition {
    /// Evaluates the condition against `context`.
    ///
    /// A missing path makes every field condition false; `otherwise` is true
    /// (routing takes `otherwise` edges last, without evaluating them); `error`
    /// and unknown condition types are false; `not` negates its first condition.
    ///
    /// ```
    /// use roomkit_graph::{Condition, Context};
    /// use serde_json::json;
    ///
    /// let mut context = Context::new("start");
    /// context.set_output("x", json!({"amount": 1500, "tags": ["urgent"]}));
    /// assert!(Condition::field("x.output.amount").gt(1000.0).evaluate(&context)?);
    /// assert!(Condition::field("x.output.tags").contains("urgent").evaluate(&context)?);
    /// assert!(!Condition::field("x.output.nope").not_equals(1).evaluate(&context)?);
    /// # Ok::<(), roomkit_graph::ConditionError>(())
    /// ```
    pub fn evaluate(&self, context: &Context) -> Result<bool, ConditionError> {
        match self {
            Condition::Field(field) => field.evaluate(context),
            Condition::All(items) => {
                for item in items {
                    if !item.evaluate(context)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Any(items) => {
                for item in items {
                    if item.evaluate(context)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(items) => match items.first() {
                Some(item) => Ok(!item.evaluate(context)?),
                None => Err(ConditionError::Malformed {
                    raw: self.to_value(),
                    reason: "a not condition needs a condition".to_owned(),
                }),
            },
            Condition::Otherwise => Ok(true),
            Condition::Error | Condition::Unknown(_) => Ok(false),
            Condition::Lenient { reading, .. } => reading.as_ref().map_or(Ok(true), |c| c.evaluate(context)),
            Condition::Malformed { raw, reason } => {
                Err(ConditionError::Malformed { raw: raw.clone(), reason: reason.clone() })
            }
        }
    }
}

impl Condition {
    /// Binds every field path to its node slot in `layout`.
    pub(crate) fn bind(&mut self, layout: &Arc<Layout>) {
        match self {
            Condition::Field(field) => field.path.bind(layout),
            Condition::All(items) | Condition::Any(items) | Condition::Not(items) => {
                items.iter_mut().for_each(|item| item.bind(layout))
            }
            Condition::Lenient { reading: Some(reading), .. } => reading.bind(layout),
            Condition::Otherwise
            | Condition::Error
            | Condition::Unknown(_)
            | Condition::Lenient { reading: None, .. }
            | Condition::Malformed { .. } => {}
        }
    }
}

impl FieldCondition {
    fn evaluate(&self, context: &Context) -> Result<bool, ConditionError> {
        if let Op::Unknown(op) = &self.op {
            return Err(ConditionError::UnknownOp { op: op.clone(), path: self.path.to_string() });
        }
        let Some(actual) = context.lookup(&self.path) else { return Ok(false) };
        let expected = &self.value;
        Ok(match &self.op {
            Op::Exists => true,
            Op::Eq => json_eq(actual, expected),
            Op::Neq => !json_eq(actual, expected),
            Op::Gt => compare(actual, expected) == Some(Ordering::Greater),
            Op::Lt => compare(actual, expected) == Some(Ordering::Less),
            Op::In => is_in(actual, expected),
            Op::NotIn => !is_in(actual, expected),
            Op::Contains => contains(actual, expected),
            Op::Unknown(_) => false,
        })
    }
}

/// JSON equality where numbers compare by value across integers and floats, and
/// booleans are never numbers.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len() && xs.iter().all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// Numbers by value (exactly for integers), strings by code point; else unordered.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn number_cmp(x: &Number, y: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return Some(a.cmp(&b));
    }
    if x.is_f64() || y.is_f64() {
        return x.as_f64()?.partial_cmp(&y.as_f64()?);
    }
    // One negative i64 and one u64 beyond i64's range.
    Some(if x.as_i64().is_some() { Ordering::Less } else { Ordering::Greater })
}

fn is_in(actual: &Value, expected: &Value) -> bool {
    match (expected, actual) {
        (Value::Array(items), _) => items.iter().any(|item| json_eq(item, actual)),
        (Value::String(haystack), Value::String(needle)) => haystack.contains(needle.as_str()),
        _ => false,
    }
}

fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(haystack), Value::String(needle)) => haystack.contains(needle.as_str()),
        (Value::Array(items), _) => items.iter().any(|item| json_eq(item, expected)),
        (Value::Object(map), Value::String(key)) => map.contains_key(key),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_booleans_are_not_numbers() {
        assert!(json_eq(&json!(1500), &json!(1500.0)));
        assert!(json_eq(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert!(!json_eq(&json!(0), &json!(false)));
        assert!(!json_eq(&json!(1), &json!(true)));
        assert_eq!(compare(&json!(-1), &json!(u64::MAX)), Some(Ordering::Less));
        assert_eq!(compare(&json!(2.5), &json!(2)), Some(Ordering::Greater));
        assert_eq!(compare(&json!("b"), &json!(1)), None);
    }

    #[test]
    fn membership_and_containment() {
        assert!(is_in(&json!("app"), &json!("approved")));
        assert!(!is_in(&json!(1), &json!("1")));
        assert!(contains(&json!({"k": 1}), &json!("k")));
        assert!(contains(&json!([1, 2]), &json!(2.0)));
        assert!(!contains(&json!(12), &json!(1)));
    }

    #[test]
    fn missing_paths_make_every_field_condition_false() {
        let context = Context::new("start");
        for cond in [
            Condition::field("a.output.x").not_equals(1),
            Condition::field("a.output.x").not_in([1]),
            Condition::field("a.output.x").exists(),
        ] {
            assert_eq!(cond.evaluate(&context), Ok(false));
        }
    }

    #[test]
    fn unknown_ops_are_errors_and_unknown_types_false() {
        let context = Context::new("start");
        let cond = Condition::from_value(&json!({"type": "field", "path": "x", "op": "like", "value": 1}));
        assert!(matches!(cond.evaluate(&context), Err(ConditionError::UnknownOp { .. })));
        let cond = Condition::from_value(&json!({"type": "xor", "conditions": []}));
        assert_eq!(cond.evaluate(&context), Ok(false));
    }
}
