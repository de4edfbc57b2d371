//! The check of a graph's trigger, with the reader the [`Scheduler`](crate::Scheduler) uses.

use roomkit_graph::{Graph, GraphCheck, ValidationCode, ValidationError};

use crate::schedule::Schedule;

/// Checks that a graph's trigger can work: a scheduled trigger needs a
/// schedule that [`Schedule::of`] reads (a cron expression that parses, a
/// known time zone). Other triggers always can. A mistake has the code
/// `invalid_trigger`, no node, and the field at fault.
///
/// ```
/// use roomkit_graph::{Checks, Edge, Graph, Limits, Node, Trigger};
/// use roomkit_graph_triggers::TriggerCheck;
/// use serde_json::json;
///
/// let trigger: Trigger = serde_json::from_value(json!({"type": "scheduled",
///     "schedule": {"cron": "0 9 * * 1", "timezone": "Mars/Olympus"}}))?;
/// let mut graph = Graph::new("weekly", "Weekly", trigger);
/// graph.add_nodes([Node::new("start", "start"), Node::new("end", "end")])?;
/// graph.add_edge(Edge::new("start", "end"));
///
/// let checks = Checks::new().with(TriggerCheck);
/// let found = checks.check(&graph, &Limits::default());
/// assert_eq!(found.errors.len(), 1);
/// assert_eq!(found.errors[0].code.as_str(), "invalid_trigger");
/// assert_eq!(found.errors[0].field.as_deref(), Some("trigger.schedule.timezone"));
/// assert_eq!(found.errors[0].message, "unknown time zone \"Mars/Olympus\" in trigger.schedule.timezone");
///
/// graph.trigger = Trigger::manual();
/// assert!(checks.check(&graph, &Limits::default()).is_valid());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TriggerCheck;

impl GraphCheck for TriggerCheck {
    fn check(&self, graph: &Graph) -> Vec<ValidationError> {
        match Schedule::of(&graph.trigger) {
            Ok(_) => Vec::new(),
            Err(error) => vec![ValidationError {
                code: ValidationCode::InvalidTrigger,
                node: None,
                field: Some(error.field().to_owned()),
                message: error.to_string(),
            }],
        }
    }
}
