//! Bounds on what a run may hold and what a graph may be, so that no graph,
//! trigger, answer or handler output can exhaust memory or the stack.
//!
//! [`Limits`] holds them (with safe defaults); [`measure`] gives a JSON value's
//! size and depth without recursion, whatever the value.

use std::fmt::{self, Write as _};

use serde_json::Value;

/// How large and how deep what a run holds may be, and how large a graph may be.
///
/// A step whose outputs would go past a limit fails with
/// [`EngineError::Limit`](crate::EngineError::Limit) and stores nothing;
/// [`Graph::validate_with`](crate::Graph::validate_with) reports a graph past
/// them. Limits apply to new input: a saved state larger than them is still
/// restored and run.
///
/// ```
/// use roomkit_graph::Limits;
/// use serde_json::json;
///
/// let limits = Limits { output_bytes: 16, ..Limits::default() };
/// assert!(limits.check_value(&json!({"ok": true})).is_ok());
/// let error = limits.check_value(&json!({"text": "more than sixteen bytes"})).unwrap_err();
/// assert_eq!(error.to_string(), "is 34 bytes as JSON, more than the limit of 16");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How deep a JSON value may nest (arrays and objects), in trigger data,
    /// answers, handler outputs and graphs.
    pub json_depth: usize,
    /// How large one node's output may be, in bytes of compact JSON.
    pub output_bytes: usize,
    /// How large a run's whole context (the sum of its outputs) may be, in bytes.
    pub context_bytes: usize,
    /// How many nodes a graph may have.
    pub nodes: usize,
    /// How many edges a graph may have.
    pub edges: usize,
    /// How long a graph id or node id may be, in characters.
    pub id_chars: usize,
    /// How long one configuration string may be, in bytes.
    pub config_string_bytes: usize,
    /// How deep subgraph runs may nest (a run's child is 1 deep, its
    /// grandchild 2...), at most [`MAX_SUBGRAPH_DEPTH`].
    pub subgraph_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            json_depth: DEFAULT_JSON_DEPTH,
            output_bytes: 1 << 20,
            context_bytes: 16 << 20,
            nodes: 1_000,
            edges: 5_000,
            id_chars: 128,
            config_string_bytes: 64 << 10,
            subgraph_depth: MAX_SUBGRAPH_DEPTH,
        }
    }
}

/// The default JSON depth: well below the 128 levels a JSON reader accepts,
/// so that a value and what wraps it (a context, a saved state, a transcript
/// entry) can always be read back.
pub const DEFAULT_JSON_DEPTH: usize = 64;

/// How deep JSON text may nest to be read at all: what a JSON reader
/// (`serde_json`) accepts, and so what stored records must stay under.
pub const MAX_READ_DEPTH: usize = 127;

/// The deepest a limit may set [`Limits::json_depth`]: what wraps a value in
/// stored records must stay under the 128 levels a JSON reader accepts.
pub const MAX_JSON_DEPTH: usize = 100;

/// How deep parallel nodes may nest (a parallel child that is itself a
/// parallel node, and so on); [`crate::Graph::validate`] reports deeper ones
/// and a run fails a step that goes deeper.
pub const PARALLEL_NESTING: usize = 16;

/// The deepest subgraph runs may nest: a saved state holds each waiting
/// child's state inside its parent's (three levels of JSON each), and the
/// whole must stay under the 128 levels a JSON reader accepts.
pub const MAX_SUBGRAPH_DEPTH: usize = 8;

/// How deep conditions may nest (`all` in `any` in `not`...) to be read:
/// [`crate::Condition::from_value`] keeps deeper ones as malformed.
pub const CONDITION_NESTING: usize = 40;

/// A value past one of the [`Limits`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Nested deeper than [`Limits::json_depth`].
    #[error("nests {depth} levels deep, more than the limit of {limit}")]
    Depth {
        /// How deep it nests.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// Larger than [`Limits::output_bytes`].
    #[error("is {bytes} bytes as JSON, more than the limit of {limit}")]
    Size {
        /// Its size as compact JSON.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A dump of the whole context (a log node's) would be larger than
    /// [`Limits::output_bytes`].
    #[error("would dump a context of {bytes} bytes, more than the limit of {limit}")]
    Dump {
        /// The context's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Would be larger than [`Limits::output_bytes`], found while it is built
    /// (from the parts done so far: a template's copies, a parallel node's
    /// children), before the whole is.
    #[error("would be more than the limit of {limit} bytes")]
    Exceeds {
        /// The limit.
        limit: usize,
    },
    /// Would make the run's context larger than [`Limits::context_bytes`].
    #[error("would make the run's context {bytes} bytes, more than the limit of {limit}")]
    Context {
        /// The context's size with it.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A subgraph run nested deeper than [`Limits::subgraph_depth`].
    #[error("would nest runs {depth} deep, more than the limit of {limit}")]
    Nesting {
        /// How deep the child run would be.
        depth: usize,
        /// The limit.
        limit: usize,
    },
}

impl Limits {
    /// These limits with `json_depth` no deeper than [`MAX_JSON_DEPTH`] and
    /// `subgraph_depth` than [`MAX_SUBGRAPH_DEPTH`], so that whatever they
    /// let in can be stored and read back.
    ///
    /// ```
    /// use roomkit_graph::Limits;
    ///
    /// let limits = Limits { json_depth: 10_000, ..Limits::default() }.clamped();
    /// assert_eq!(limits.json_depth, roomkit_graph::limits::MAX_JSON_DEPTH);
    /// // As deep as a saved state holding every child's can be read back.
    /// assert_eq!((limits.subgraph_depth, Limits::default().clamped().subgraph_depth), (7, 8));
    /// ```
    pub fn clamped(mut self) -> Limits {
        self.json_depth = self.json_depth.min(MAX_JSON_DEPTH);
        // Each child's state nests three levels inside its parent's, and a
        // trigger passed down one more (`{"input": ...}`): all of it within
        // what a JSON reader takes.
        let fits = (MAX_READ_DEPTH - 4 - self.json_depth) / 3;
        self.subgraph_depth = self.subgraph_depth.min(MAX_SUBGRAPH_DEPTH).min(fits);
        self
    }

    /// Checks one value (an output, trigger data, an answer) against the depth
    /// and output size limits; returns its size in bytes.
    pub fn check_value(&self, value: &Value) -> Result<usize, LimitError> {
        let Measure { bytes, depth } = measure(value);
        if depth > self.json_depth {
            return Err(LimitError::Depth { depth, limit: self.json_depth });
        }
        if bytes > self.output_bytes {
            return Err(LimitError::Size { bytes, limit: self.output_bytes });
        }
        Ok(bytes)
    }

    /// Checks how deep JSON text nests before it is read (see [`text_depth`]).
    ///
    /// ```
    /// use roomkit_graph::Limits;
    ///
    /// let limits = Limits::default();
    /// let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    /// let error = limits.check_text(deep.as_bytes()).unwrap_err();
    /// assert_eq!(error.to_string(), "nests 200 levels deep, more than the limit of 64");
    /// ```
    pub fn check_text(&self, text: &[u8]) -> Result<(), LimitError> {
        match text_depth(text) {
            depth if depth > self.json_depth => Err(LimitError::Depth { depth, limit: self.json_depth }),
            _ => Ok(()),
        }
    }
}

/// A JSON value's size and depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    /// Its length as compact JSON text (as `serde_json::to_string` writes it), in bytes.
    pub bytes: usize,
    /// How deep arrays and objects nest in it: 0 for a number, 1 for `[1]`, 2 for `[[1]]`.
    pub depth: usize,
}

/// Measures `value` without recursion, so any value, however deep, is measured.
///
/// ```
/// use roomkit_graph::{Measure, measure};
/// use serde_json::json;
///
/// let value = json!({"text": "line\n", "n": [1, 2.5, null]});
/// let text = serde_json::to_string(&value)?;
/// assert_eq!(measure(&value), Measure { bytes: text.len(), depth: 2 });
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn measure(value: &Value) -> Measure {
    measure_at(value, 0)
}

/// How deep [`measure`] recurses; deeper parts are measured with a stack of
/// their own ([`measure_deep`]), so no value can overflow the call stack.
const RECURSION: usize = 64;

/// [`measure`] of a part `level` levels down: recursive (no allocation) for
/// the values runs hold, iterative below [`RECURSION`] levels.
fn measure_at(value: &Value, level: usize) -> Measure {
    let scalar = |bytes| Measure { bytes, depth: 0 };
    match value {
        Value::Null | Value::Bool(true) => scalar(4),
        Value::Bool(false) => scalar(5),
        Value::Number(number) => scalar(number_len(number)),
        Value::String(text) => scalar(string_len(text)),
        _ if level >= RECURSION => measure_deep(value),
        Value::Array(items) => {
            let mut total = Measure { bytes: 2 + items.len().saturating_sub(1), depth: 0 };
            for item in items {
                let part = measure_at(item, level + 1);
                total.bytes += part.bytes;
                total.depth = total.depth.max(part.depth);
            }
            total.depth += 1;
            total
        }
        Value::Object(map) => {
            // Braces, a colon per entry, commas between entries, and the keys.
            let mut total = Measure { bytes: 2 + map.len() + map.len().saturating_sub(1), depth: 0 };
            for (key, item) in map {
                let part = measure_at(item, level + 1);
                total.bytes += string_len(key) + part.bytes;
                total.depth = total.depth.max(part.depth);
            }
            total.depth += 1;
            total
        }
    }
}

/// [`measure`] without recursion, for parts nested deeper than [`RECURSION`].
fn measure_deep(value: &Value) -> Measure {
    let mut total = Measure::default();
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        total.bytes += match value {
            Value::Null => 4,
            Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(number) => number_len(number),
            Value::String(text) => string_len(text),
            Value::Array(items) => {
                total.depth = total.depth.max(level + 1);
                stack.extend(items.iter().map(|item| (item, level + 1)));
                2 + items.len().saturating_sub(1)
            }
            Value::Object(map) => {
                total.depth = total.depth.max(level + 1);
                stack.extend(map.values().map(|item| (item, level + 1)));
                // Braces, a colon per entry, commas between entries, and the keys.
                2 + map.len() + map.len().saturating_sub(1) + map.keys().map(|k| string_len(k)).sum::<usize>()
            }
        };
    }
    total
}

/// How deep arrays and objects nest in `value` (see [`Measure::depth`]), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(level + 1);
                stack.extend(items.iter().map(|item| (item, level + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(level + 1);
                stack.extend(map.values().map(|item| (item, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// How deep arrays and objects nest in JSON text, read in one pass without
/// parsing it (brackets inside strings do not count); for text that is not
/// JSON, a number that reading it will refuse anyway.
///
/// ```
/// use roomkit_graph::limits::text_depth;
///
/// assert_eq!(text_depth(br#"{"a": [1, "]]]", {"b": []}]}"#), 4);
/// assert_eq!(text_depth(b"42"), 0);
/// ```
pub fn text_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Lets go of `value` without recursion (dropping a value recurses as deep as it nests).
pub(crate) fn dispose(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, item)| item)),
            _ => {}
        }
    }
}

/// A string's length as a JSON string: quotes, and escapes where JSON writes them.
fn string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// A number's length as JSON: counted for integers, written out (to a
/// counter) for floats.
fn number_len(number: &serde_json::Number) -> usize {
    let digits = |n: u64| n.checked_ilog10().map_or(1, |d| d as usize + 1);
    match (number.as_u64(), number.as_i64()) {
        (Some(n), _) => digits(n),
        (None, Some(n)) => 1 + digits(n.unsigned_abs()),
        _ => display_len(number),
    }
}

/// The length of a value's `Display` text, without writing it anywhere.
fn display_len(value: &impl fmt::Display) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0 += text.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail.
    let _ = write!(count, "{value}");
    count.0
}

/// Whether `id` may name a graph or a node: 1 to `max_chars` characters, each
/// an ASCII letter or digit, `_` or `-`. Otherwise, what is wrong with it.
///
/// ```
/// use roomkit_graph::limits::id_problem;
///
/// assert_eq!(id_problem("bug-triage_2", 128), None);
/// assert!(id_problem("", 128).is_some());
/// assert!(id_problem("a.b", 128).is_some());
/// assert!(id_problem(&"x".repeat(129), 128).is_some());
/// ```
pub fn id_problem(id: &str, max_chars: usize) -> Option<String> {
    if id.is_empty() {
        return Some("it is empty".to_owned());
    }
    let chars = id.chars().count();
    if chars > max_chars {
        return Some(format!("it is {chars} characters long, more than the limit of {max_chars}"));
    }
    id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')).map(|c| {
        let shown = if c.is_control() || c.is_whitespace() { String::new() } else { format!("\"{c}\" ") };
        format!(
            "it holds {shown}(U+{:04X}): an id is made of ASCII letters, digits, \"_\" and \"-\"",
            u32::from(c)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::hash_map(any::<String>(), inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn measure_is_the_length_of_the_written_json(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            prop_assert_eq!(measure(&value).bytes, text.len());
            prop_assert_eq!(measure(&value).depth, depth(&value));
        }
    }

    #[test]
    fn recursive_and_deep_measures_agree() {
        let value = json!({"a": [1, -20, 3.5, u64::MAX, i64::MIN, "x\ny", {"b": null, "c": [true, false]}]});
        assert_eq!(measure(&value), measure_deep(&value));
        assert_eq!(measure(&value).bytes, serde_json::to_string(&value).unwrap().len());
    }

    #[test]
    fn values_too_deep_for_any_reader_are_measured() {
        let mut value = json!(1);
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        assert_eq!(measure(&value), Measure { bytes: 200_001, depth: 100_000 });
        let error = Limits::default().check_value(&value).unwrap_err();
        assert_eq!(error, LimitError::Depth { depth: 100_000, limit: 64 });
        // Taken apart level by level: dropping it whole would recurse as deep.
        while let Value::Array(mut items) = value {
            value = items.pop().unwrap_or(Value::Null);
        }
    }
}
