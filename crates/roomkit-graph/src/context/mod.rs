//! A run's context: every node's output, and the scopes paths read it through.

mod path;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::limits::measure;
pub use path::Path;
use path::Scope;

/// Where each node's entry lives in a context: one slot per node of a graph,
/// so storing and reading an output needs no hashing and no growth.
#[derive(Debug)]
pub(crate) struct Layout {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    start: Option<usize>,
    /// The slot of the node named `start`, whose `steps.start` is the trigger data.
    named_start: Option<usize>,
}

impl Layout {
    /// A layout for these node ids, `start` being the start node's slot.
    pub(crate) fn new(ids: Vec<String>, start: Option<usize>) -> Self {
        let index: HashMap<String, usize> =
            ids.iter().enumerate().map(|(slot, id)| (id.clone(), slot)).collect();
        let named_start = index.get(START).copied();
        Layout { ids, index, start, named_start }
    }

    pub(crate) fn slot(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// An identity for this layout, to check a path's binding against.
    pub(crate) fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }
}

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
#[derive(Clone, Debug)]
pub struct Context {
    layout: Arc<Layout>,
    /// Each node's output, by slot.
    slots: Vec<Option<Slot>>,
    /// Entries of ids outside the layout (kept from a saved state, say).
    extra: Map<String, Value>,
    /// What the `input` scope reads.
    input: Input,
    /// The sum of the outputs' sizes as JSON (of whole entries outside the layout).
    bytes: usize,
}

const OUTPUT: &str = "output";
const ERROR: &str = "error";

/// The id whose `steps.start` reads the trigger data (the engine stores the
/// trigger under it whatever the start node is called).
const START: &str = "start";

fn wrap(output: Value) -> Value {
    let mut entry = Map::with_capacity(1);
    entry.insert(OUTPUT.to_owned(), output);
    Value::Object(entry)
}

/// What the `input` scope reads: `steps.ID` of the node the run came from,
/// or, for a run restored without that node, what its incoming edges bring.
#[derive(Clone, Debug, Default)]
pub(crate) enum Input {
    /// `input` names nothing.
    #[default]
    Missing,
    /// `steps.ID` of the node in this slot; null (and present) when it stored nothing.
    Node(usize),
    /// A value of its own: `{source_id: steps.SOURCE}` over several incoming
    /// edges' sources, or one given with [`Context::set_input_value`].
    Value(Value),
}

/// What `input` alone reads after a node that stored nothing.
static NULL: Value = Value::Null;

/// A node's output, and its `{"output": value}` entry built only if a path
/// names the bare node id.
#[derive(Clone, Debug)]
struct Slot {
    output: Value,
    /// The node's failure, for a node that failed along an error edge.
    error: Option<Box<Value>>,
    entry: OnceLock<Box<Value>>,
    /// The output's size as JSON (the entry's, for an entry saved in another shape).
    bytes: usize,
}

impl Slot {
    fn new(output: Value, bytes: usize) -> Self {
        Slot { output, error: None, entry: OnceLock::new(), bytes }
    }

    /// A saved entry: `{"output": value}` or `{"output": value, "error":
    /// failure}` (anything else is kept as it is).
    fn from_entry(entry: Value) -> Self {
        let shaped = |map: &Map<String, Value>| {
            map.contains_key(OUTPUT) && (map.len() == 1 || (map.len() == 2 && map.contains_key(ERROR)))
        };
        match entry {
            Value::Object(mut map) if shaped(&map) => {
                let output = map.remove(OUTPUT).unwrap_or(Value::Null);
                let error = map.remove(ERROR).map(Box::new);
                let bytes = measure(&output).bytes + error.as_ref().map_or(0, |e| measure(e).bytes);
                Slot { error, ..Slot::new(output, bytes) }
            }
            other => Slot {
                output: Value::Null,
                error: None,
                bytes: measure(&other).bytes,
                entry: OnceLock::from(Box::new(other)),
            },
        }
    }

    fn entry(&self) -> &Value {
        self.entry.get_or_init(|| Box::new(self.build_entry()))
    }

    fn build_entry(&self) -> Value {
        let mut entry = wrap(self.output.clone());
        if let (Some(error), Value::Object(map)) = (&self.error, &mut entry) {
            map.insert(ERROR.to_owned(), (**error).clone());
        }
        entry
    }

    /// The output, unless the entry was saved in another shape.
    fn output(&self) -> Option<&Value> {
        match self.entry.get() {
            Some(entry) => entry.get(OUTPUT),
            None => Some(&self.output),
        }
    }
}

impl Context {
    /// An empty context whose start node is `start`.
    pub fn new(start: &str) -> Self {
        Context::with_layout(Arc::new(Layout::new(vec![start.to_owned()], Some(0))))
    }

    /// An empty context laid out for a graph.
    pub(crate) fn with_layout(layout: Arc<Layout>) -> Self {
        let slots = vec![None; layout.ids.len()];
        Context { layout, slots, extra: Map::new(), input: Input::Missing, bytes: 0 }
    }

    /// A context laid out for a graph, holding saved entries.
    pub(crate) fn from_entries(layout: Arc<Layout>, entries: Map<String, Value>) -> Self {
        let mut context = Context::with_layout(layout);
        for (id, entry) in entries {
            match context.layout.slot(&id) {
                Some(slot) => {
                    let slot_entry = Slot::from_entry(entry);
                    context.bytes += slot_entry.bytes;
                    context.slots[slot] = Some(slot_entry);
                }
                None => {
                    context.bytes += measure(&entry).bytes;
                    context.extra.insert(id, entry);
                }
            }
        }
        context
    }

    /// A context holding saved entries (`{node_id: {"output": value}}`, as
    /// [`to_entries`](Self::to_entries) writes them), whose start node is `start`.
    ///
    /// ```
    /// use roomkit_graph::Context;
    /// use serde_json::json;
    ///
    /// let saved = json!({"start": {"output": {"input": {"n": 1}}}, "a": {"output": 2}});
    /// let context = Context::from_saved("start", saved.as_object().cloned().unwrap_or_default());
    /// assert_eq!(context.get("trigger.n"), Some(&json!(1)));
    /// assert_eq!(context.get("steps.a"), Some(&json!(2)));
    /// assert_eq!(serde_json::Value::Object(context.to_entries()), saved);
    /// ```
    pub fn from_saved(start: &str, entries: Map<String, Value>) -> Self {
        Context::from_entries(Arc::new(Layout::new(vec![start.to_owned()], Some(0))), entries)
    }

    /// The entries, as saved: `{node_id: {"output": value}}`, in graph order.
    pub fn to_entries(&self) -> Map<String, Value> {
        let filled = self.slots.iter().filter(|slot| slot.is_some()).count();
        let mut entries = Map::with_capacity(self.extra.len() + filled);
        for (id, slot) in self.layout.ids.iter().zip(&self.slots) {
            if let Some(slot) = slot {
                // One copy of the output, without keeping a wrapped one.
                let entry = slot.entry.get().map_or_else(|| slot.build_entry(), |entry| (**entry).clone());
                entries.insert(id.clone(), entry);
            }
        }
        entries.extend(self.extra.iter().map(|(id, entry)| (id.clone(), entry.clone())));
        entries
    }

    /// Node `node_id`'s entry: `{"output": value}`.
    pub fn entry(&self, node_id: &str) -> Option<&Value> {
        match self.layout.slot(node_id) {
            Some(slot) => self.slots[slot].as_ref().map(Slot::entry),
            None => self.extra.get(node_id),
        }
    }

    /// A copy of the entry in a slot, made without keeping a wrapped copy.
    pub(crate) fn entry_at(&self, slot: usize) -> Option<Value> {
        let slot = self.slots.get(slot)?.as_ref()?;
        Some(slot.entry.get().map_or_else(|| slot.build_entry(), |entry| (**entry).clone()))
    }

    /// Stores `output` as node `node_id`'s output, replacing an earlier one.
    pub fn set_output(&mut self, node_id: &str, output: Value) {
        let bytes = measure(&output).bytes;
        match self.layout.slot(node_id) {
            Some(slot) => self.set_output_at(slot, output, bytes),
            None => {
                let entry = wrap(output);
                self.bytes += measure(&entry).bytes;
                if let Some(old) = self.extra.insert(node_id.to_owned(), entry) {
                    self.bytes -= measure(&old).bytes;
                }
            }
        }
    }

    /// The sum of the sizes of the outputs stored (and of the failures kept
    /// beside them for error routes), as compact JSON (what
    /// [`Limits::context_bytes`](crate::Limits::context_bytes) bounds).
    ///
    /// ```
    /// use roomkit_graph::Context;
    /// use serde_json::json;
    ///
    /// let mut context = Context::new("start");
    /// context.set_output("start", json!({"input": {"n": 1}}));
    /// assert_eq!(context.size(), r#"{"input":{"n":1}}"#.len());
    /// context.set_output("start", json!({"input": null}));
    /// assert_eq!(context.size(), r#"{"input":null}"#.len());
    /// ```
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// The size of the output in a slot (0 when it has none).
    pub(crate) fn size_at(&self, slot: usize) -> usize {
        self.slots[slot].as_ref().map_or(0, |slot| slot.bytes)
    }

    /// Forgets every output, keeping the layout.
    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.extra.clear();
        self.input = Input::Missing;
        self.bytes = 0;
    }

    /// Stores `output`, of `bytes` bytes as JSON, in the node's slot of this context's layout.
    pub(crate) fn set_output_at(&mut self, slot: usize, output: Value, bytes: usize) {
        self.bytes = self.bytes - self.size_at(slot) + bytes;
        self.slots[slot] = Some(Slot::new(output, bytes));
    }

    /// Stores a failed node's entry in its slot: `output` and, under
    /// `error`, its failure (`bytes`: both sizes).
    pub(crate) fn set_failure_at(&mut self, slot: usize, output: Value, error: Value, bytes: usize) {
        self.bytes = self.bytes - self.size_at(slot) + bytes;
        self.slots[slot] = Some(Slot { error: Some(Box::new(error)), ..Slot::new(output, bytes) });
    }

    /// Forgets the failure kept in a slot (its node completed since), keeping
    /// its output. Whether there was one.
    pub(crate) fn clear_failure_at(&mut self, slot: usize) -> bool {
        let Some(Some(kept)) = self.slots.get_mut(slot) else { return false };
        let Some(error) = kept.error.take() else { return false };
        let bytes = measure(&error).bytes.min(kept.bytes);
        self.bytes -= bytes;
        kept.bytes -= bytes;
        kept.entry = OnceLock::new();
        true
    }

    /// Node `node_id`'s output, if it has one.
    pub fn output(&self, node_id: &str) -> Option<&Value> {
        match self.layout.slot(node_id) {
            Some(slot) => self.output_at(slot),
            None => self.extra.get(node_id)?.get(OUTPUT),
        }
    }

    fn output_at(&self, slot: usize) -> Option<&Value> {
        self.slots.get(slot)?.as_ref()?.output()
    }

    /// The trigger data of the run (null when the run was started without any).
    pub fn trigger(&self) -> Option<&Value> {
        self.output_at(self.layout.start?)?.get("input")
    }

    /// Sets the node (by slot) the `input` scope reads as `steps.ID`: the
    /// trigger data for the node named `start`; null, and present, when the
    /// node stored nothing. `None`: `input` names nothing.
    pub(crate) fn set_input(&mut self, slot: Option<usize>) {
        self.input = slot.map_or(Input::Missing, Input::Node);
    }

    /// Reads `input` as `steps` of `slot` (while a node's edges are tried),
    /// returning what it read before, for [`restore_input`](Self::restore_input).
    pub(crate) fn replace_input(&mut self, slot: usize) -> Input {
        std::mem::replace(&mut self.input, Input::Node(slot))
    }

    /// Puts back what `input` read before [`replace_input`](Self::replace_input).
    pub(crate) fn restore_input(&mut self, input: Input) {
        self.input = input;
    }

    /// Sets what the `input` scope reads to `value` (`None`: `input` names
    /// nothing), for a caller that runs nodes itself; the engine sets it
    /// before each step.
    ///
    /// ```
    /// use roomkit_graph::Context;
    /// use serde_json::json;
    ///
    /// let mut context = Context::new("start");
    /// context.set_input_value(Some(json!({"topic": "billing"})));
    /// assert_eq!(context.get("input.topic"), Some(&json!("billing")));
    /// context.set_input_value(None);
    /// assert_eq!(context.get("input"), None);
    /// ```
    pub fn set_input_value(&mut self, value: Option<Value>) {
        self.input = value.map_or(Input::Missing, Input::Value);
    }

    /// Sets the `input` scope from the sources of a node's incoming edges, for
    /// a run restored without the node it came from: no source, `input` names
    /// nothing; one, as [`set_input`](Self::set_input); several (one per edge),
    /// the object `{source_id: steps.SOURCE}`, null for a source without output.
    pub(crate) fn set_input_from(&mut self, sources: &[usize]) {
        self.input = match sources {
            [] => Input::Missing,
            [source] => Input::Node(*source),
            sources => {
                let mut merged = Map::with_capacity(sources.len());
                for &source in sources {
                    let value = self.steps_at(source).cloned().unwrap_or(Value::Null);
                    merged.insert(self.layout.ids[source].clone(), value);
                }
                Input::Value(Value::Object(merged))
            }
        };
    }

    /// `steps.ID` of the node in `slot`: its output; for the node named
    /// `start`, the trigger data.
    fn steps_at(&self, slot: usize) -> Option<&Value> {
        if Some(slot) == self.layout.named_start { self.trigger() } else { self.output_at(slot) }
    }

    /// The value at a dot-separated path, or `None` when the path leads nowhere.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.lookup(&Path::parse(path))
    }

    /// The value at a parsed path, or `None` when the path leads nowhere.
    pub fn lookup(&self, path: &Path) -> Option<&Value> {
        let mut rest = path.rest();
        let base = match path.scope {
            Scope::Trigger => self.trigger()?,
            Scope::Input => match &self.input {
                Input::Missing => return None,
                Input::Node(slot) => match self.steps_at(*slot) {
                    Some(value) => value,
                    // A node that stored nothing: `input` is null, `input.x` missing.
                    None if path.rest().next().is_none() => return Some(&NULL),
                    None => return None,
                },
                Input::Value(value) => value,
            },
            Scope::StepsBare => return None,
            Scope::Steps => match self.slot_of(path) {
                Some(slot) => self.steps_at(slot)?,
                None if path.id() == START => self.trigger()?,
                None => self.extra.get(path.id())?.get(OUTPUT)?,
            },
            Scope::Entry => match self.slot_of(path) {
                // `id.output...` reads the output itself, without building the entry.
                Some(slot) if path.rest().next() == Some(OUTPUT) => {
                    rest.next();
                    self.output_at(slot)?
                }
                Some(slot) => self.slots[slot].as_ref()?.entry(),
                None => self.extra.get(path.id())?,
            },
        };
        rest.try_fold(base, |value, key| value.as_object()?.get(key))
    }

    fn slot_of(&self, path: &Path) -> Option<usize> {
        match path.binding {
            Some((layout, slot)) if layout == self.layout.key() => Some(slot as usize),
            _ => self.layout.slot(path.id()),
        }
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.to_entries() == other.to_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A context laid out for `ids`, the first being the start node, with its
    /// trigger `{"title": "DB down"}` and `a`'s output `{"n": 1}`.
    fn context(ids: [&str; 3]) -> Context {
        let layout = Layout::new(ids.iter().map(|id| id.to_string()).collect(), Some(0));
        let mut context = Context::with_layout(Arc::new(layout));
        context.set_output(ids[0], json!({"input": {"title": "DB down"}}));
        context.set_output("a", json!({"n": 1}));
        context
    }

    #[test]
    fn input_reads_like_steps_of_the_node_the_run_came_from() {
        let mut context = context(["start", "a", "b"]);
        assert_eq!(context.get("input"), None);
        // Coming from start: the trigger data, not {"input": ...}.
        context.set_input(Some(0));
        assert_eq!(context.get("input"), Some(&json!({"title": "DB down"})));
        assert_eq!(context.get("input.title"), Some(&json!("DB down")));
        context.set_input(Some(1));
        assert_eq!(context.get("input.n"), Some(&json!(1)));
        // A node that stored nothing: `input` is null and exists, `input.x` is missing.
        context.set_input(Some(2));
        assert_eq!(context.get("input"), Some(&Value::Null));
        assert_eq!(context.get("input.x"), None);
        context.set_input(None);
        assert_eq!(context.get("input"), None);
    }

    #[test]
    fn steps_start_is_the_trigger_and_a_start_node_named_otherwise_its_output() {
        let mut context = context(["begin", "a", "b"]);
        context.set_output("start", json!({"input": {"title": "DB down"}}));
        assert_eq!(context.get("steps.start"), Some(&json!({"title": "DB down"})));
        assert_eq!(context.get("steps.begin"), Some(&json!({"input": {"title": "DB down"}})));
        assert_eq!(context.get("trigger.title"), Some(&json!("DB down")));
        context.set_input(Some(0));
        assert_eq!(context.get("input.input.title"), Some(&json!("DB down")));
    }

    #[test]
    fn input_from_incoming_edges_for_a_run_restored_without_its_previous_node() {
        let mut context = context(["start", "a", "b"]);
        context.set_input_from(&[]);
        assert_eq!(context.get("input"), None);
        context.set_input_from(&[0]);
        assert_eq!(context.get("input.title"), Some(&json!("DB down")));
        context.set_input_from(&[2]);
        assert_eq!(context.get("input"), Some(&Value::Null));
        context.set_input_from(&[0, 1, 2]);
        assert_eq!(
            context.get("input"),
            Some(&json!({"start": {"title": "DB down"}, "a": {"n": 1}, "b": null}))
        );
        assert_eq!(context.get("input.a.n"), Some(&json!(1)));
        context.clear();
        assert_eq!(context.get("input"), None);
    }
}
