//! A run's context: every node's output, and the scopes paths read it through.

mod path;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use path::Path;
use path::Scope;

/// Everything a run has produced so far: `{node_id: {"output": value}}`.
///
/// Read it with dot-separated paths (see [`Path`] for the `trigger`, `steps` and
/// `input` scopes):
///
/// ```
/// use roomkit_graph::Context;
/// use serde_json::json;
///
/// let mut context = Context::new("start");
/// context.set_output("start", json!({"input": {"title": "DB down"}}));
/// context.set_output("triage", json!({"severity": "critical"}));
///
/// assert_eq!(context.get("triage.output.severity"), Some(&json!("critical")));
/// assert_eq!(context.get("steps.triage.severity"), Some(&json!("critical")));
/// assert_eq!(context.get("trigger.title"), Some(&json!("DB down")));
/// assert_eq!(context.get("triage.output.missing"), None);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    entries: Map<String, Value>,
    start: Arc<str>,
    input: Option<Arc<str>>,
}

const OUTPUT: &str = "output";

impl Context {
    /// An empty context for a graph whose start node is `start`.
    pub fn new(start: impl Into<Arc<str>>) -> Self {
        Context { entries: Map::new(), start: start.into(), input: None }
    }

    /// A context holding saved entries (`{node_id: {"output": value}}`).
    pub fn from_entries(start: impl Into<Arc<str>>, entries: Map<String, Value>) -> Self {
        Context { entries, start: start.into(), input: None }
    }

    /// The entries, as saved: `{node_id: {"output": value}}`.
    pub fn entries(&self) -> &Map<String, Value> {
        &self.entries
    }

    /// Gives the entries up.
    pub fn into_entries(self) -> Map<String, Value> {
        self.entries
    }

    /// Stores `output` as node `node_id`'s output, replacing an earlier one.
    pub fn set_output(&mut self, node_id: &str, output: Value) {
        let mut entry = Map::with_capacity(1);
        entry.insert(OUTPUT.to_owned(), output);
        self.entries.insert(node_id.to_owned(), Value::Object(entry));
    }

    /// Node `node_id`'s output, if it has one.
    pub fn output(&self, node_id: &str) -> Option<&Value> {
        self.entries.get(node_id)?.get(OUTPUT)
    }

    /// The trigger data of the run (null when the run was started without any).
    pub fn trigger(&self) -> Option<&Value> {
        self.output(&self.start)?.get("input")
    }

    /// Sets the node whose output the `input` scope reads.
    pub(crate) fn set_input_node(&mut self, node: Option<Arc<str>>) {
        self.input = node;
    }

    /// The value at a dot-separated path, or `None` when the path leads nowhere.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.lookup(&Path::parse(path))
    }

    /// The value at a parsed path, or `None` when the path leads nowhere.
    pub fn lookup(&self, path: &Path) -> Option<&Value> {
        let base = match &path.scope {
            Scope::Trigger => self.trigger()?,
            Scope::Input => self.output(self.input.as_deref()?)?,
            Scope::Steps(None) => return None,
            Scope::Steps(Some(id)) if **id == *self.start => self.trigger()?,
            Scope::Steps(Some(id)) => self.output(id)?,
            Scope::Entry(id) => self.entries.get(id)?,
        };
        path.rest.iter().try_fold(base, |value, key| value.as_object()?.get(key))
    }
}
