//! Checks beyond the core's validation: a node type's settings read by its
//! handler's own reader, a trigger read by what fires it. The crates that
//! bring those handlers register them in a [`Checks`], and every place that
//! accepts a graph runs the same set.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use crate::limits::Limits;
use crate::model::Graph;
#[cfg(doc)]
use crate::validate::ValidationCode;
use crate::validate::{self, Validation, ValidationError};

/// A check of a graph beyond the core's validation, run after it by
/// [`Checks::check`].
///
/// A check reads what it checks with the same reader as the code that will
/// use it (a node's handler, the scheduler of a trigger), so a graph it
/// passes is one that code can run, and its findings are
/// [`ValidationError`]s like the core's, each with its code, node, field
/// and message. The project's crates have codes of their own
/// ([`ValidationCode::InvalidTrigger`], [`ValidationCode::AgentConfig`],
/// [`ValidationCode::NotificationConfig`]); an application's check names its
/// own with [`ValidationCode::Custom`].
///
/// ```
/// use roomkit_graph::{Checks, Graph, GraphCheck, Limits, ValidationCode, ValidationError};
/// use serde_json::json;
///
/// /// This application's notification nodes name the channel they send on.
/// struct NamedChannels;
///
/// impl GraphCheck for NamedChannels {
///     fn check(&self, graph: &Graph) -> Vec<ValidationError> {
///         graph
///             .nodes()
///             .iter()
///             .filter(|node| node.node_type.as_str() == "notification" && !node.config.contains_key("channel"))
///             .map(|node| ValidationError {
///                 code: ValidationCode::Custom("unnamed_channel"),
///                 node: Some(node.id.clone()),
///                 field: Some("channel".to_owned()),
///                 message: "a notification node needs a \"channel\"".to_owned(),
///             })
///             .collect()
///     }
/// }
///
/// let graph = Graph::from_value(json!({
///     "id": "g", "name": "G", "trigger": {"type": "manual"},
///     "nodes": [{"id": "start", "type": "start"}, {"id": "tell", "type": "notification"}, {"id": "end", "type": "end"}],
///     "edges": [{"source": "start", "target": "tell"}, {"source": "tell", "target": "end"}]
/// }))?;
/// assert!(graph.check().is_valid());
/// let found = Checks::new().with(NamedChannels).check(&graph, &Limits::default());
/// assert_eq!(found.errors.len(), 1);
/// assert_eq!(found.errors[0].code.as_str(), "unnamed_channel");
/// assert_eq!(found.errors[0].node.as_deref(), Some("tell"));
/// # Ok::<(), roomkit_graph::GraphError>(())
/// ```
pub trait GraphCheck: Send + Sync {
    /// Every mistake this check finds in `graph`, in graph order; none when
    /// it passes.
    fn check(&self, graph: &Graph) -> Vec<ValidationError>;
}

/// The checks a graph must pass beyond the core's validation, in the order
/// registered, like [`Handlers`](crate::Handlers) for running it. Cheap to
/// clone.
///
/// [`Checks::new`] has none: [`Checks::check`] then finds exactly what
/// [`Graph::check_with`] does.
#[derive(Clone, Default)]
pub struct Checks {
    checks: Vec<Arc<dyn GraphCheck>>,
    /// The type of each check, for [`Checks::has`].
    kinds: Vec<TypeId>,
}

impl Checks {
    /// No check beyond the core's validation.
    pub fn new() -> Self {
        Checks::default()
    }

    /// Adds `check`, run after those registered before it.
    pub fn with<C: GraphCheck + 'static>(mut self, check: C) -> Self {
        self.checks.push(Arc::new(check));
        self.kinds.push(TypeId::of::<C>());
        self
    }

    /// Whether a check of type `C` is registered: for code that needs a check
    /// (a server needs the check of the triggers it fires) to add it only
    /// when it is missing, so that no finding is reported twice.
    ///
    /// ```
    /// use roomkit_graph::{Checks, Graph, GraphCheck, ValidationError};
    ///
    /// struct Nothing;
    /// impl GraphCheck for Nothing {
    ///     fn check(&self, _graph: &Graph) -> Vec<ValidationError> {
    ///         Vec::new()
    ///     }
    /// }
    ///
    /// let checks = Checks::new().with(Nothing);
    /// assert!(checks.has::<Nothing>());
    /// assert!(!Checks::new().has::<Nothing>());
    /// ```
    pub fn has<C: GraphCheck + 'static>(&self) -> bool {
        self.kinds.contains(&TypeId::of::<C>())
    }

    /// Everything wrong with `graph`: the core's mistakes and warnings, as
    /// [`Graph::check_with`] finds them against `limits`, then the mistakes
    /// of each registered check in turn. A graph too large to look into gets
    /// the core's one mistake and nothing else.
    pub fn check(&self, graph: &Graph, limits: &Limits) -> Validation {
        validate::check(graph, limits, &self.checks)
    }
}

impl fmt::Debug for Checks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checks").field("checks", &self.checks.len()).finish()
    }
}
