//! What starts a run: manual, webhook, schedule or event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What starts a run of a graph.
///
/// Written as `{"type": "manual" | "webhook" | "scheduled" | "event", ...}`; a
/// webhook trigger always writes its `source_type` (default `"generic"`), and
/// `config` is left out when empty.
///
/// ```
/// use roomkit_graph::Trigger;
///
/// let trigger = Trigger::webhook("github");
/// let json = serde_json::to_value(&trigger).unwrap();
/// assert_eq!(json, serde_json::json!({"type": "webhook", "source_type": "github"}));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields,
    expecting = "a trigger: an object whose \"type\" is manual, webhook, scheduled or event"
)]
pub enum Trigger {
    /// Started by hand (an API call, the command line).
    Manual {
        /// Free-form trigger settings.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        config: Map<String, Value>,
    },
    /// Started by an HTTP request; the request body is the trigger data.
    Webhook {
        /// Where the requests come from (`"github"`, `"generic"`, ...).
        #[serde(default = "generic")]
        source_type: String,
        /// Free-form trigger settings.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        config: Map<String, Value>,
    },
    /// Started on a schedule, e.g. `{"cron": "0 9 * * 1", "timezone": "Europe/Paris"}`.
    Scheduled {
        /// When to fire.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<Map<String, Value>>,
        /// Free-form trigger settings.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        config: Map<String, Value>,
    },
    /// Started when a named event is fired.
    Event {
        /// The event's name.
        event: String,
        /// Free-form trigger settings.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        config: Map<String, Value>,
    },
}

fn generic() -> String {
    "generic".to_owned()
}

impl Trigger {
    /// A manual trigger.
    pub fn manual() -> Self {
        Trigger::Manual { config: Map::new() }
    }

    /// A webhook trigger for requests from `source_type`.
    pub fn webhook(source_type: impl Into<String>) -> Self {
        Trigger::Webhook { source_type: source_type.into(), config: Map::new() }
    }

    /// A scheduled trigger; `schedule` is an object such as `{"cron": "*/5 * * * *"}`.
    pub fn scheduled(schedule: Map<String, Value>) -> Self {
        Trigger::Scheduled { schedule: Some(schedule), config: Map::new() }
    }

    /// A trigger fired by the event named `event`.
    pub fn event(event: impl Into<String>) -> Self {
        Trigger::Event { event: event.into(), config: Map::new() }
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::manual()
    }
}
