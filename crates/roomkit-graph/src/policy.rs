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

/// The most attempts a node may make.
pub(crate) const MAX_ATTEMPTS: u32 = 100;

/// The largest factor a growing backoff may have.
pub(crate) const MAX_FACTOR: f64 = 100.0;

/// The longest a timeout or a backoff wait may be: 30 days.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

fn duration(value: &Value, field: &str) -> Result<Duration, PolicyError> {
    let duration = match value {
        Value::String(text) => parse_duration(text).map_err(|e| invalid(field, e.to_string()))?,
        other => return Err(invalid(field, format!("a duration such as \"30s\" is needed, not {other}"))),
    };
    if duration > MAX_WAIT {
        return Err(invalid(field, format!("{value} is longer than the limit of 30 days")));
    }
    Ok(duration)
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
            policy.max_attempts = max
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "retry.max_attempts",
                        format!("a whole number from 1 to {MAX_ATTEMPTS} is needed, not {max}"),
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
                        factor.as_f64().filter(|f| (1.0..=MAX_FACTOR).contains(f)).ok_or_else(|| {
                            invalid(
                                "retry.backoff.factor",
                                format!("a number from 1 to {MAX_FACTOR} is needed, not {factor}"),
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

    /// How long to wait before attempt `next` (2, 3...): `initial`, growing
    /// by `factor` at each attempt, never more than `max`, whatever the attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use roomkit_graph::NodePolicy;
    /// use serde_json::json;
    ///
    /// let config = json!({"retry": {"max_attempts": 100, "backoff": {"initial": "1s", "factor": 100, "max": "1h"}}});
    /// let policy = NodePolicy::read(config.as_object().unwrap())?;
    /// assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(3600));
    /// # Ok::<(), roomkit_graph::PolicyError>(())
    /// ```
    pub fn backoff(&self, next: u32) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(next.saturating_sub(2)).unwrap_or(i32::MAX);
        let seconds = self.initial.as_secs_f64() * self.factor.powi(exponent);
        // Past what a duration holds (or not a number at all): the longest wait.
        Duration::try_from_secs_f64(seconds).unwrap_or(self.max).min(self.max)
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

    /// Found by fuzzing: backoff panicked converting an overflowing float to a duration.
    #[test]
    fn backoff_never_overflows() {
        let policies = [
            NodePolicy::default(),
            read(json!({"retry": {"max_attempts": 100, "backoff": {"initial": "0s"}}})).unwrap(),
            read(json!({"retry": {"backoff": {"initial": "30d", "factor": 100, "max": "30d"}}})).unwrap(),
            // Settings no graph may hold, made in code: still no panic.
            NodePolicy { factor: 1e300, ..NodePolicy::default() },
            NodePolicy { factor: f64::INFINITY, initial: Duration::ZERO, ..NodePolicy::default() },
            NodePolicy { factor: f64::NAN, ..NodePolicy::default() },
            NodePolicy { initial: Duration::MAX, max: Duration::MAX, ..NodePolicy::default() },
        ];
        for policy in policies {
            for attempt in [0, 1, 2, 3, 66, 1100, u32::MAX] {
                assert!(policy.backoff(attempt) <= policy.max, "{policy:?} at {attempt}");
            }
        }
        assert_eq!(NodePolicy::default().backoff(66), Duration::from_secs(300));
    }

    #[test]
    fn malformed_policies_name_their_field() {
        for (config, field) in [
            (json!({"timeout": 30}), "timeout"),
            (json!({"retry": {"max_attempts": 0}}), "retry.max_attempts"),
            (json!({"retry": {"backoff": "soon"}}), "retry.backoff"),
            (json!({"retry": {"backoff": {"factor": 0.5}}}), "retry.backoff.factor"),
            (json!({"retry": true}), "retry"),
            (json!({"retry": {"max_attempts": 101}}), "retry.max_attempts"),
            (json!({"retry": {"backoff": {"factor": 1e300}}}), "retry.backoff.factor"),
            (json!({"retry": {"backoff": {"initial": "1000000000s"}}}), "retry.backoff.initial"),
            (json!({"timeout": "400d"}), "timeout"),
        ] {
            assert_eq!(read(config).unwrap_err().field, field);
        }
    }
}
