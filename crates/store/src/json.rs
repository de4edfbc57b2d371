//! Reading back JSON a store wrote, and the JSON text a run's pending
//! children are kept as.

use roomkit_graph::limits::{MAX_READ_DEPTH, text_depth};
use serde::de::{DeserializeOwned, Error as _};
use serde_json::{Map, Value};

use crate::{Cause, StoreError};

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

/// A run's context from the context entries its commits wrote, as a store
/// keeps them (see [`StepCommit::written_context`](crate::StepCommit::written_context)),
/// in transcript order: an entry keeps the place it was first written at
/// and the value it was last written with. [`StoreError::Backend`] when one
/// does not read back.
///
/// ```
/// use roomkit_graph_store::merged_context;
///
/// let writes = [r#"{"a":{"output":1}}"#, r#"{"b":{"output":2},"a":{"output":3}}"#];
/// let context = merged_context("r", writes)?;
/// assert_eq!(serde_json::to_string(&context).unwrap(), r#"{"a":{"output":3},"b":{"output":2}}"#);
/// assert!(merged_context("r", ["[1]"]).is_err());
/// # Ok::<(), roomkit_graph_store::StoreError>(())
/// ```
pub fn merged_context<'w>(
    run_id: &str,
    writes: impl IntoIterator<Item = &'w str>,
) -> Result<Map<String, Value>, StoreError> {
    let mut context = Map::new();
    for written in writes {
        let written: Map<String, Value> = read_stored(written).map_err(|err| {
            StoreError::Backend(
                Cause::new(format!("the context of run {run_id} does not read back: {err}")).with_source(err),
            )
        })?;
        context.extend(written);
    }
    Ok(context)
}

/// A run's pending children ([`RunRecord::pending`](crate::RunRecord::pending))
/// as a store keeps them in a column: a JSON array of node ids, none when
/// there are none. [`read_pending`] reads it back.
///
/// ```
/// use roomkit_graph_store::{pending_text, read_pending};
///
/// let pending = vec!["legal".to_owned(), "security".to_owned()];
/// let text = pending_text(&pending);
/// assert_eq!(text.as_deref(), Some(r#"["legal","security"]"#));
/// assert_eq!(read_pending("r", text.as_deref())?, pending);
/// assert_eq!(pending_text(&[]), None);
/// assert_eq!(read_pending("r", None)?, Vec::<String>::new());
/// # Ok::<(), roomkit_graph_store::StoreError>(())
/// ```
pub fn pending_text(pending: &[String]) -> Option<String> {
    (!pending.is_empty())
        .then(|| Value::Array(pending.iter().cloned().map(Value::String).collect()).to_string())
}

/// A run's pending children from the column [`pending_text`] wrote (none when
/// it is null); [`StoreError::Backend`] when it is not a JSON array of node
/// ids.
///
/// ```
/// use roomkit_graph_store::{StoreError, read_pending};
///
/// let err = read_pending("r", Some("[1]")).unwrap_err();
/// assert!(matches!(err, StoreError::Backend(detail) if detail.message().starts_with("the pending children of run r")));
/// ```
pub fn read_pending(run_id: &str, stored: Option<&str>) -> Result<Vec<String>, StoreError> {
    let Some(text) = stored else { return Ok(Vec::new()) };
    read_stored(text).map_err(|err| {
        StoreError::Backend(
            Cause::new(format!("the pending children of run {run_id} do not read back: {err}"))
                .with_source(err),
        )
    })
}
