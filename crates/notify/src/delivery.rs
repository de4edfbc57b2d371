//! How hard a notification node tries: attempts, backoff between them, and
//! the time limit of each.

use std::time::Duration;

use roomkit_graph::parse_duration;
use serde_json::Value;

use crate::error::ConfigError;

/// The longest wait between two attempts, unless `backoff` itself is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A node's `delivery` settings:
/// `{"attempts": 3, "backoff": "500ms", "timeout": "10s"}`, every field optional.
///
/// After failed attempt `n` the node waits `backoff × 2^(n-1)` (at most 30 s,
/// or `backoff` when that is longer) before the next.
///
/// ```
/// use std::time::Duration;
/// use roomkit_graph_notify::DeliveryPolicy;
/// use serde_json::json;
///
/// let policy = DeliveryPolicy::from_config(&json!({"attempts": 4, "backoff": "1s"}))?;
/// assert_eq!(policy.attempts, 4);
/// assert_eq!(policy.timeout, DeliveryPolicy::default().timeout);
/// assert_eq!(policy.wait_after(1), Duration::from_secs(1));
/// assert_eq!(policy.wait_after(3), Duration::from_secs(4));
/// assert!(DeliveryPolicy::from_config(&json!({"attempts": 0})).is_err());
/// # Ok::<(), roomkit_graph_notify::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// How many attempts at most, from 1 (default 3).
    pub attempts: u32,
    /// The wait after the first failed attempt, doubled after each next one
    /// (default 500 ms).
    pub backoff: Duration,
    /// The time limit of one attempt (default 10 s).
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy { attempts: 3, backoff: Duration::from_millis(500), timeout: Duration::from_secs(10) }
    }
}

impl DeliveryPolicy {
    /// The most attempts a node may ask for.
    pub const MAX_ATTEMPTS: u32 = 20;

    /// Reads a node's `delivery` object; absent fields keep their defaults.
    pub fn from_config(config: &Value) -> Result<Self, ConfigError> {
        let Value::Object(fields) = config else {
            return Err(ConfigError::invalid(
                "delivery",
                "must be an object: {\"attempts\": 3, \"backoff\": \"500ms\"}",
            ));
        };
        let mut policy = DeliveryPolicy::default();
        for (field, value) in fields {
            let path = format!("delivery.{field}");
            match field.as_str() {
                "attempts" => {
                    policy.attempts = value
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (1..=Self::MAX_ATTEMPTS).contains(n))
                        .ok_or_else(|| {
                            ConfigError::invalid(
                                &path,
                                format!("{value} is not a whole number from 1 to {}", Self::MAX_ATTEMPTS),
                            )
                        })?;
                }
                "backoff" => policy.backoff = duration(&path, value)?,
                "timeout" => {
                    policy.timeout = duration(&path, value)?;
                    if policy.timeout.is_zero() {
                        return Err(ConfigError::invalid(&path, "must be longer than zero"));
                    }
                }
                _ => return Err(ConfigError::invalid(&path, "unknown field (attempts, backoff or timeout)")),
            }
        }
        Ok(policy)
    }

    /// How long to wait after failed attempt `attempt` (from 1).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        let cap = MAX_BACKOFF.max(self.backoff);
        self.backoff.checked_mul(factor).map_or(cap, |wait| wait.min(cap))
    }
}

fn duration(path: &str, value: &Value) -> Result<Duration, ConfigError> {
    let text = value.as_str().ok_or_else(|| {
        ConfigError::invalid(path, format!("{value} is not a duration such as \"500ms\" or \"2s\""))
    })?;
    parse_duration(text).map_err(|error| ConfigError::invalid(path, error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn waits_double_up_to_the_cap() {
        let policy = DeliveryPolicy { backoff: Duration::from_secs(4), ..DeliveryPolicy::default() };
        let waits: Vec<u64> = (1..=6).map(|n| policy.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [4, 8, 16, 30, 30, 30]);
        assert_eq!(policy.wait_after(100), MAX_BACKOFF);
        let slow = DeliveryPolicy { backoff: Duration::from_secs(60), ..DeliveryPolicy::default() };
        assert_eq!(slow.wait_after(3), Duration::from_secs(60));
    }

    #[test]
    fn mistakes_name_their_field() {
        let error = DeliveryPolicy::from_config(&json!({"backoff": 5})).err();
        assert_eq!(error.as_ref().map(ConfigError::field), Some("delivery.backoff"));
        let error = DeliveryPolicy::from_config(&json!({"retries": 5})).err();
        assert_eq!(error.as_ref().map(ConfigError::field), Some("delivery.retries"));
        let error = DeliveryPolicy::from_config(&json!({"timeout": "0s"})).err();
        assert_eq!(error.as_ref().map(ConfigError::field), Some("delivery.timeout"));
    }
}
