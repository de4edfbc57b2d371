//! Durations written as text in the agents file: `"120s"`, `"500ms"`, `"2m"`
//! (`#[serde(with = "duration_text")]`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a duration as milliseconds: `"1500ms"`.
pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{}ms", duration.as_millis()))
}

/// Reads a duration written as text.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    roomkit_graph::parse_duration(&text).map_err(serde::de::Error::custom)
}
