//! Durations as written in node configuration: `500ms`, `30s`, `30m`, `2h`, `1d`.

use std::time::Duration;

/// A duration that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason} (write e.g. 500ms, 30s, 30m, 2h or 1d)")]
pub struct DurationError {
    text: String,
    reason: String,
}

/// Reads a duration such as `500ms`, `30s`, `30m`, `2h`, `1d` or `1h 30m`.
///
/// ```
/// use std::time::Duration;
/// use roomkit_graph::parse_duration;
///
/// assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
/// assert_eq!(parse_duration("30m")?, Duration::from_secs(30 * 60));
/// assert_eq!(parse_duration("1d")?, Duration::from_secs(86_400));
/// assert!(parse_duration("soon").is_err());
/// # Ok::<(), roomkit_graph::DurationError>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim())
        .map_err(|e| DurationError { text: text.to_owned(), reason: e.to_string() })
}
