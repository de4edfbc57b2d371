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
/// - `input.x`: `steps.P.x`, P being the node the run came from (so coming
///   from the start node, the trigger data; while a node's edges are evaluated,
///   that node's own output); after a node that stored nothing, `input` alone
///   is null and `input.x` missing;
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
    /// The path as written; the scope's id and the rest are slices of it, so a
    /// parsed path is one small allocation.
    raw: Box<str>,
    pub(crate) scope: Scope,
    /// Where the scope's node id ends (for `Entry` and `Steps`).
    id_end: u32,
    /// Where the segments after the scope start, if there are any.
    rest_start: Option<u32>,
    /// The node slot this path reads, bound when a graph is compiled:
    /// (layout key, slot).
    pub(crate) binding: Option<(usize, u32)>,
}

/// Where a path starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `trigger...`
    Trigger,
    /// `input...`
    Input,
    /// A bare `steps`, which names nothing.
    StepsBare,
    /// `steps.ID...`
    Steps,
    /// `ID...`: a context entry.
    Entry,
}

const STEPS: &str = "steps.";

impl Path {
    /// Parses a path; every string is a path (one that names nothing simply
    /// finds nothing).
    pub fn parse(raw: &str) -> Self {
        // Offsets are kept as u32: a path longer than 4 GiB is cut there.
        let offset = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        let after_dot = |from: usize| raw[from..].find('.').map(|dot| offset(from + dot + 1));
        let first_end = raw.find('.').unwrap_or(raw.len());
        let (scope, id_end, rest_start) = match &raw[..first_end] {
            "trigger" => (Scope::Trigger, 0, after_dot(0)),
            "input" => (Scope::Input, 0, after_dot(0)),
            "steps" if first_end == raw.len() => (Scope::StepsBare, 0, None),
            "steps" => {
                let id_end = raw[STEPS.len()..].find('.').map_or(raw.len(), |dot| STEPS.len() + dot);
                (Scope::Steps, offset(id_end), after_dot(STEPS.len()))
            }
            _ => (Scope::Entry, offset(first_end), after_dot(0)),
        };
        Path { raw: raw.into(), scope, id_end, rest_start, binding: None }
    }

    /// The node id the path starts from (`Entry` and `Steps` scopes).
    pub(crate) fn id(&self) -> &str {
        match self.scope {
            Scope::Steps => self.raw.get(STEPS.len()..self.id_end as usize).unwrap_or_default(),
            Scope::Entry => self.raw.get(..self.id_end as usize).unwrap_or_default(),
            Scope::Trigger | Scope::Input | Scope::StepsBare => "",
        }
    }

    /// The segments after the scope.
    pub(crate) fn rest(&self) -> impl Iterator<Item = &str> {
        self.rest_start
            .map(|start| self.raw.get(start as usize..).unwrap_or_default().split('.'))
            .into_iter()
            .flatten()
    }

    /// Binds the path to its node's slot in `layout`, so reading it needs no
    /// lookup by id.
    pub(crate) fn bind(&mut self, layout: &Arc<Layout>) {
        if let Scope::Entry | Scope::Steps = self.scope {
            self.binding =
                layout.slot(self.id()).and_then(|slot| Some((layout.key(), u32::try_from(slot).ok()?)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &str) -> (Scope, String, Vec<String>) {
        let path = Path::parse(raw);
        (path.scope, path.id().to_owned(), path.rest().map(str::to_owned).collect())
    }

    #[test]
    fn scopes_ids_and_rest() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parts("a.output.x"), (Scope::Entry, "a".into(), s(&["output", "x"])));
        assert_eq!(parts("a"), (Scope::Entry, "a".into(), s(&[])));
        assert_eq!(parts("steps.b.c"), (Scope::Steps, "b".into(), s(&["c"])));
        assert_eq!(parts("steps.b"), (Scope::Steps, "b".into(), s(&[])));
        assert_eq!(parts("steps"), (Scope::StepsBare, "".into(), s(&[])));
        assert_eq!(parts("trigger"), (Scope::Trigger, "".into(), s(&[])));
        assert_eq!(parts("input.x.y"), (Scope::Input, "".into(), s(&["x", "y"])));
        assert_eq!(parts("a."), (Scope::Entry, "a".into(), s(&[""])));
        assert_eq!(parts(""), (Scope::Entry, "".into(), s(&[])));
    }
}
