//! A node's retry and timeout settings, read from its configuration:
//! `"retry": {"max_attempts": 3, "backoff": "2s"}` (a fixed wait) or
//! `"backoff": {"initial": "1s", "factor": 2, "max": "1m"}` (growing waits), and
//! `"timeout": "30s"` for each attempt. Durable runners apply them;
//! [`crate::Graph::validate`] reports malformed ones.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration::parse_duration;

/// How a node is retried and how long an attempt may take.
///
/// ```
/// use std::time::Duration;
/// use roomkit_graph::NodePolicy;
/// use serde_json::json;
///
/// let config = json!({"retry": {"max_attempts": 4, "backoff": {"initial": "1s", "factor": 2}}, "timeout": "30s"});
/// let policy = NodePolicy::read(config.as_object().unwrap())?;
/// assert_eq!(policy.max_attempts, 4);
/// assert_eq!(policy.timeout, Some(Duration::from_secs(30)));
/// assert_eq!(policy.backoff(3), Duration::from_secs(2));
/// # Ok::<(), roomkit_graph::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NodePolicy {
    /// Attempts in all (1: no retry).
    pub max_attempts: u32,
    initial: Duration,
    factor: f64,
    max: Duration,
    /// How long one attempt may take.
    pub timeout: Option<Duration>,
}

/// A malformed retry or timeout setting: the field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// The field, such as `retry.max_attempts`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Default for NodePolicy {
    fn default() -> Self {
        NodePolicy {
            max_attempts: 1,
            initial: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
            timeout: None,
        }
    }
}

fn invalid(field: &str, message: String) -> PolicyError {
    PolicyError { field: field.to_owned(), message }
}

fn duration(value: &Value, field: &str) -> Result<Duration, PolicyError> {
    match value {
        Value::String(text) => parse_duration(text).map_err(|e| invalid(field, e.to_string())),
        other => Err(invalid(field, format!("a duration such as \"30s\" is needed, not {other}"))),
    }
}

impl NodePolicy {
    /// Reads the policy of a node's configuration (the defaults: one attempt,
    /// no timeout).
    pub fn read(config: &Map<String, Value>) -> Result<NodePolicy, PolicyError> {
        let mut policy = NodePolicy::default();
        if let Some(timeout) = config.get("timeout") {
            policy.timeout = Some(duration(timeout, "timeout")?);
        }
        let Some(retry) = config.get("retry") else { return Ok(policy) };
        let retry =
            retry.as_object().ok_or_else(|| invalid("retry", format!("an object is needed, not {retry}")))?;
        if let Some(max) = retry.get("max_attempts") {
            policy.max_attempts =
                max.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|&n| n >= 1).ok_or_else(|| {
                    invalid(
                        "retry.max_attempts",
                        format!("a whole number of at least 1 is needed, not {max}"),
                    )
                })?;
        }
        match retry.get("backoff") {
            None => {}
            Some(Value::Object(backoff)) => {
                if let Some(initial) = backoff.get("initial") {
                    policy.initial = duration(initial, "retry.backoff.initial")?;
                }
                if let Some(factor) = backoff.get("factor") {
                    policy.factor =
                        factor.as_f64().filter(|f| f.is_finite() && *f >= 1.0).ok_or_else(|| {
                            invalid(
                                "retry.backoff.factor",
                                format!("a number of at least 1 is needed, not {factor}"),
                            )
                        })?;
                }
                if let Some(max) = backoff.get("max") {
                    policy.max = duration(max, "retry.backoff.max")?;
                }
            }
            Some(fixed) => {
                policy.initial = duration(fixed, "retry.backoff")?;
                policy.factor = 1.0;
                policy.max = policy.initial;
            }
        }
        Ok(policy)
    }

    /// How long to wait before attempt `next` (2, 3...).
    pub fn backoff(&self, next: u32) -> Duration {
        let exponent = i32::try_from(next.saturating_sub(2)).unwrap_or(i32::MAX);
        self.initial.mul_f64(self.factor.powi(exponent)).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(config: Value) -> Result<NodePolicy, PolicyError> {
        NodePolicy::read(config.as_object().unwrap())
    }

    #[test]
    fn fixed_and_growing_backoff() {
        let fixed = read(json!({"retry": {"max_attempts": 3, "backoff": "2s"}, "timeout": "30s"})).unwrap();
        assert_eq!((fixed.max_attempts, fixed.timeout), (3, Some(Duration::from_secs(30))));
        assert_eq!(fixed.backoff(2), Duration::from_secs(2));
        assert_eq!(fixed.backoff(5), Duration::from_secs(2));
        let growing = read(
            json!({"retry": {"max_attempts": 9, "backoff": {"initial": "1s", "factor": 3, "max": "20s"}}}),
        )
        .unwrap();
        let waits: Vec<u64> = (2..=5).map(|n| growing.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 3, 9, 20]);
        assert_eq!(read(json!({})).unwrap(), NodePolicy::default());
    }

    #[test]
    fn malformed_policies_name_their_field() {
        for (config, field) in [
            (json!({"timeout": 30}), "timeout"),
            (json!({"retry": {"max_attempts": 0}}), "retry.max_attempts"),
            (json!({"retry": {"backoff": "soon"}}), "retry.backoff"),
            (json!({"retry": {"backoff": {"factor": 0.5}}}), "retry.backoff.factor"),
            (json!({"retry": true}), "retry"),
        ] {
            assert_eq!(read(config).unwrap_err().field, field);
        }
    }
}
