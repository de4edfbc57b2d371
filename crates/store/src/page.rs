//! Lists that can grow, read a page at a time: the order each is listed in
//! and the cursor that says where the next page starts, the same for every
//! backend.
//!
//! A page is read with keyset paging: the next page is what sorts after the
//! last item of this one, so a list read from start to end gives every item
//! that existed when the reading began exactly once, whatever is inserted
//! meanwhile. (Items inserted meanwhile come first, or are found later: a new
//! run sorts before the first page.)
//!
//! - Runs: newest first by creation time, runs created in the same
//!   millisecond by run id ([`RunCursor`], [`RunFilter::where_clause`]).
//! - Graphs: by id ([`GraphCursor`]).
//!
//! Cursors are opaque strings for clients (URL-safe base64); a string that is
//! not one is refused with a [`CursorError`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::{Dialect, FilterValue, Millis, RunFilter, RunRecord, StoredGraph};

/// The longest cursor read, in characters: a longer string is not one.
const MAX_CURSOR: usize = 2048;

/// A page of a list: its items, in the list's order, and the cursor of the
/// next page when there is more after them.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts ([`RunCursor::encode`],
    /// [`GraphCursor::encode`]); none on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of at most `size` items out of `items`, which holds up to one
    /// more (read to know whether there is more), the next page starting after
    /// the last item kept (`cursor` gives its cursor).
    ///
    /// ```
    /// use roomkit_graph_store::Page;
    /// let page = Page::cut(vec![1, 2, 3], 2, |last| last.to_string());
    /// assert_eq!((page.items, page.next_cursor), (vec![1, 2], Some("2".to_owned())));
    /// let last = Page::cut(vec![1, 2], 2, |last| last.to_string());
    /// assert_eq!((last.items, last.next_cursor), (vec![1, 2], None));
    /// ```
    pub fn cut(mut items: Vec<T>, size: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
        let more = items.len() > size;
        items.truncate(size);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Page { items, next_cursor }
    }
}

/// A cursor that is not one this store gave.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one a list gave ({reason}): pass the next_cursor of the previous page as it is")]
pub struct CursorError {
    reason: &'static str,
}

/// Where the next page of runs starts: after the run created at
/// `created_at` with id `run_id`, in the order runs are listed in (newest
/// first, runs of the same millisecond by run id).
///
/// ```
/// use roomkit_graph_store::RunCursor;
/// let cursor = RunCursor { created_at: 1_700_000_000_000, run_id: "0193-a".into() };
/// let text = cursor.encode();
/// assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
/// assert_eq!(RunCursor::decode(&text), Ok(cursor));
/// assert!(RunCursor::decode("not a cursor").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCursor {
    /// The creation time of the last run of the page.
    pub created_at: Millis,
    /// Its id.
    pub run_id: String,
}

impl RunCursor {
    /// The cursor of the page that ends with `run`.
    pub fn after(run: &RunRecord) -> RunCursor {
        RunCursor { created_at: run.created_at, run_id: run.run_id.clone() }
    }

    /// The cursor as an opaque, URL-safe string.
    pub fn encode(&self) -> String {
        encode(RUNS, &format!("{}:{}", self.created_at, self.run_id))
    }

    /// Reads a string [`RunCursor::encode`] wrote.
    pub fn decode(text: &str) -> Result<RunCursor, CursorError> {
        let fields = decode(RUNS, text)?;
        let (created_at, run_id) = fields.split_once(':').ok_or(CursorError { reason: "no run id" })?;
        let created_at = created_at.parse().map_err(|_| CursorError { reason: "no creation time" })?;
        Ok(RunCursor { created_at, run_id: run_id.to_owned() })
    }
}

/// Where the next page of hook deliveries starts: after the delivery made
/// at `created_at` with id `delivery_id`, in the order they are listed in
/// (newest first, then by id, greatest first).
///
/// ```
/// use roomkit_graph_store::{DeliveryCursor, RunCursor};
/// let cursor = DeliveryCursor { created_at: 5, delivery_id: "hook_1:r:3".into() };
/// assert_eq!(DeliveryCursor::decode(&cursor.encode()), Ok(cursor.clone()));
/// assert!(RunCursor::decode(&cursor.encode()).is_err(), "a delivery cursor is no run cursor");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryCursor {
    /// When the last delivery of the page was made.
    pub created_at: Millis,
    /// Its id.
    pub delivery_id: String,
}

impl DeliveryCursor {
    /// The cursor as an opaque, URL-safe string.
    pub fn encode(&self) -> String {
        encode(DELIVERIES, &format!("{}:{}", self.created_at, self.delivery_id))
    }

    /// Reads a string [`DeliveryCursor::encode`] wrote.
    pub fn decode(text: &str) -> Result<DeliveryCursor, CursorError> {
        let fields = decode(DELIVERIES, text)?;
        let (created_at, id) = fields.split_once(':').ok_or(CursorError { reason: "no delivery id" })?;
        let created_at = created_at.parse().map_err(|_| CursorError { reason: "no creation time" })?;
        Ok(DeliveryCursor { created_at, delivery_id: id.to_owned() })
    }
}

/// Where the next page of graphs starts: after the graph with this id.
///
/// ```
/// use roomkit_graph_store::{GraphCursor, RunCursor};
/// let cursor = GraphCursor { graph_id: "review".into() };
/// assert_eq!(GraphCursor::decode(&cursor.encode()), Ok(cursor.clone()));
/// assert!(RunCursor::decode(&cursor.encode()).is_err(), "a graph cursor is no run cursor");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphCursor {
    /// The id of the last graph of the page.
    pub graph_id: String,
}

impl GraphCursor {
    /// The cursor of the page that ends with `graph`.
    pub fn after(graph: &StoredGraph) -> GraphCursor {
        GraphCursor { graph_id: graph.graph.id.clone() }
    }

    /// The cursor as an opaque, URL-safe string.
    pub fn encode(&self) -> String {
        encode(GRAPHS, &self.graph_id)
    }

    /// Reads a string [`GraphCursor::encode`] wrote.
    pub fn decode(text: &str) -> Result<GraphCursor, CursorError> {
        Ok(GraphCursor { graph_id: decode(GRAPHS, text)? })
    }
}

/// The mark of a run cursor's text, before its fields.
const RUNS: &str = "runs/1:";

/// The mark of a graph cursor's text.
const GRAPHS: &str = "graphs/1:";

/// The mark of a delivery cursor's text.
const DELIVERIES: &str = "deliveries/1:";

fn encode(mark: &str, fields: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{mark}{fields}"))
}

fn decode(mark: &str, text: &str) -> Result<String, CursorError> {
    if text.len() > MAX_CURSOR {
        return Err(CursorError { reason: "too long" });
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError { reason: "not base64" })?;
    let text = String::from_utf8(bytes).map_err(|_| CursorError { reason: "not text" })?;
    let fields = text.strip_prefix(mark).ok_or(CursorError { reason: "not of this list" })?;
    Ok(fields.to_owned())
}

impl RunFilter {
    /// The order runs are listed in, as SQL: newest first, runs created in
    /// the same millisecond by run id, greatest first (run ids are UUID v7,
    /// which one process makes in order, so the later first there too).
    pub const ORDER_BY: &'static str = "created_at DESC, run_id DESC";

    /// The filter as an SQL `WHERE` clause on the columns of a runs table
    /// (empty when it keeps every run), in `dialect`, with the values its
    /// parameters stand for, in order: the conditions of
    /// [`RunFilter::conditions`], the run id's prefix, the trigger field (an
    /// `EXISTS` on the run's first transcript entry), and with a cursor, only
    /// the runs listed after it in [`RunFilter::ORDER_BY`].
    ///
    /// ```
    /// use roomkit_graph_store::{Dialect, FilterValue, RunCursor, RunFilter};
    /// let filter = RunFilter {
    ///     graph_id: Some("g".into()),
    ///     run_id_prefix: Some("01a2".into()),
    ///     after: Some(RunCursor { created_at: 5, run_id: "r".into() }),
    ///     ..RunFilter::default()
    /// };
    /// let (clause, values) = filter.where_clause(Dialect::Postgres);
    /// assert_eq!(
    ///     clause,
    ///     " WHERE graph_id = $1 AND substr(run_id, 1, 4) = $2 AND (created_at < $3 OR (created_at = $3 AND run_id < $4))"
    /// );
    /// assert_eq!(values[..2], [FilterValue::Text("g".into()), FilterValue::Text("01a2".into())]);
    /// assert_eq!(RunFilter::default().where_clause(Dialect::Sqlite), (String::new(), vec![]));
    /// ```
    pub fn where_clause(&self, dialect: Dialect) -> (String, Vec<FilterValue>) {
        let parameter = |n: usize| match dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        };
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for (column, op, value) in self.conditions() {
            values.push(value);
            conditions.push(format!("{column} {op} {}", parameter(values.len())));
        }
        if let Some(prefix) = &self.run_id_prefix {
            values.push(FilterValue::Text(prefix.clone()));
            let start = parameter(values.len());
            conditions.push(match dialect {
                // SQLite compares text byte by byte: the ids from the prefix up
                // to it followed by the greatest character, a range of the key.
                Dialect::Sqlite => {
                    values.push(FilterValue::Text(format!("{prefix}\u{10FFFF}")));
                    format!("run_id >= {start} AND run_id < {}", parameter(values.len()))
                }
                // PostgreSQL's text order is its collation's: compared as it is.
                Dialect::Postgres => format!("substr(run_id, 1, {}) = {start}", prefix.chars().count()),
            });
        }
        if let Some(field) = &self.trigger {
            conditions.push(trigger_condition(field, dialect, &mut values, &parameter));
        }
        if let Some(cursor) = &self.after {
            values.push(FilterValue::Millis(cursor.created_at));
            let at = parameter(values.len());
            values.push(FilterValue::Text(cursor.run_id.clone()));
            let id = parameter(values.len());
            conditions.push(format!("(created_at < {at} OR (created_at = {at} AND run_id < {id}))"));
        }
        if conditions.is_empty() {
            return (String::new(), values);
        }
        (format!(" WHERE {}", conditions.join(" AND ")), values)
    }
}

/// The SQL condition that a run's trigger data holds `field`'s value at its
/// path: an `EXISTS` on the run's first transcript entry, comparing by the
/// value's JSON type (a string with a string, a number with a number, as
/// numbers), its values pushed on `values`.
fn trigger_condition(
    field: &crate::TriggerField,
    dialect: Dialect,
    values: &mut Vec<FilterValue>,
    parameter: &impl Fn(usize) -> String,
) -> String {
    let mut bind = |value: FilterValue| {
        values.push(value);
        parameter(values.len())
    };
    let (transcript, test) = match dialect {
        Dialect::Sqlite => {
            let path = bind(FilterValue::Text(format!("$.trigger.{}", field.path().join("."))));
            let at = format!("t.entry_json, {path}");
            let test = match field.value() {
                Value::String(text) => {
                    format!(
                        "json_type({at}) = 'text' AND json_extract({at}) = {}",
                        bind(FilterValue::Text(text.clone()))
                    )
                }
                // An integer compares as one (exactly, however large); another number as a real.
                Value::Number(number) => match number.as_i64() {
                    Some(integer) => format!(
                        "json_type({at}) IN ('integer', 'real') AND json_extract({at}) = {}",
                        bind(FilterValue::Millis(integer))
                    ),
                    None => format!(
                        "json_type({at}) IN ('integer', 'real') AND json_extract({at}) = CAST({} AS REAL)",
                        bind(FilterValue::Text(number.to_string()))
                    ),
                },
                Value::Bool(true) => format!("json_type({at}) = 'true'"),
                Value::Bool(false) => format!("json_type({at}) = 'false'"),
                _ => format!("json_type({at}) = 'null'"),
            };
            ("transcript", test)
        }
        // As json, not jsonb: jsonb refuses to hold some text json keeps.
        Dialect::Postgres => {
            let path = bind(FilterValue::Text(format!("{{trigger,{}}}", field.path().join(","))));
            let at = format!("(t.entry_json::json #> ({path}::text)::text[])");
            let test = match field.value() {
                Value::String(text) => format!(
                    "json_typeof({at}) = 'string' AND {at} #>> '{{}}' = {}",
                    bind(FilterValue::Text(text.clone()))
                ),
                Value::Number(number) => format!(
                    "json_typeof({at}) = 'number' AND ({at} #>> '{{}}')::numeric = ({}::text)::numeric",
                    bind(FilterValue::Text(number.to_string()))
                ),
                Value::Bool(flag) => format!("json_typeof({at}) = 'boolean' AND {at} #>> '{{}}' = '{flag}'"),
                _ => format!("json_typeof({at}) = 'null'"),
            };
            // PostgreSQL cannot read a string holding U+0000 out of json: such a
            // run is skipped (CASE, as AND does not promise an order).
            let test =
                format!("CASE WHEN position('\\u0000' in t.entry_json) = 0 THEN {test} ELSE false END");
            ("roomkit_graph.transcript", test)
        }
    };
    format!("EXISTS (SELECT 1 FROM {transcript} t WHERE t.run_id = runs.run_id AND t.seq = 1 AND {test})")
}
