//! Dot-separated paths into a run's context, parsed once.

use std::fmt;
use std::sync::Arc;

use super::Layout;

/// A dot-separated path into a run's context, such as `triage.output.severity`.
///
/// The first segment picks where to look:
/// - `trigger.x`: the trigger data;
/// - `steps.ID.x`: node `ID`'s output, without the `output` hop (`steps.start`
///   is the trigger data);
/// - `input.x`: the output of the node the run came from (while a node's edges
///   are evaluated: that node's own output);
/// - anything else: a node id, as in `triage.output.severity`.
///
/// ```
/// use roomkit_graph::Path;
///
/// let path = Path::parse("steps.triage.severity");
/// assert_eq!(path.as_str(), "steps.triage.severity");
/// ```
#[derive(Clone, Debug)]
pub struct Path {
    raw: String,
    pub(crate) scope: Scope,
    pub(crate) rest: Vec<String>,
    /// The node slot this path reads, bound when a graph is compiled:
    /// (layout key, slot).
    pub(crate) binding: Option<(usize, usize)>,
}

/// Where a path starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `trigger...`
    Trigger,
    /// `input...`
    Input,
    /// `steps.ID...`; `None` for a bare `steps`, which names nothing.
    Steps(Option<String>),
    /// `ID...`: a context entry.
    Entry(String),
}

impl Path {
    /// Parses a path; every string is a path (one that names nothing simply
    /// finds nothing).
    pub fn parse(raw: &str) -> Self {
        let mut segments = raw.split('.');
        let first = segments.next().unwrap_or_default();
        let scope = match first {
            "trigger" => Scope::Trigger,
            "input" => Scope::Input,
            "steps" => Scope::Steps(segments.next().map(str::to_owned)),
            other => Scope::Entry(other.to_owned()),
        };
        Path { raw: raw.to_owned(), scope, rest: segments.map(str::to_owned).collect(), binding: None }
    }

    /// Binds the path to its node's slot in `layout`, so reading it needs no
    /// lookup by id.
    pub(crate) fn bind(&mut self, layout: &Arc<Layout>) {
        if let Scope::Entry(id) | Scope::Steps(Some(id)) = &self.scope {
            self.binding = layout.slot(id).map(|slot| (layout.key(), slot));
        }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
