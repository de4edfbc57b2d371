//! Reading back JSON a store wrote.

use roomkit_graph::limits::{MAX_READ_DEPTH, text_depth};
use serde::de::{DeserializeOwned, Error as _};

/// How deep stored JSON may nest to be read back: a value accepted before
/// limits existed (up to the 127 levels JSON text may hold), wrapped in the
/// records that store it, with room to spare.
pub const STORED_DEPTH: usize = 2 * MAX_READ_DEPTH;

/// Reads JSON a store wrote, without the JSON reader's 128-level limit (up to
/// [`STORED_DEPTH`]), so that whatever was once accepted reads back.
///
/// ```
/// use roomkit_graph_store::read_stored;
/// use serde_json::Value;
///
/// let deep = format!("{}1{}", "[".repeat(130), "]".repeat(130));
/// assert!(serde_json::from_str::<Value>(&deep).is_err());
/// let value: Value = read_stored(&deep)?;
/// assert_eq!(roomkit_graph::measure(&value).depth, 130);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn read_stored<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    let depth = text_depth(text.as_bytes());
    if depth > STORED_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "stored JSON nests {depth} levels deep, more than the {STORED_DEPTH} a store reads back"
        )));
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.disable_recursion_limit();
    let value = T::deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}
