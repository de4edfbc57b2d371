//! Graph validation: structure, reachability and node configuration, in one
//! pass, and warnings about graphs that are valid but likely wrong; then the
//! [`Checks`] other crates register for their nodes and triggers.

mod checks;
mod cycles;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::condition::Condition;
use crate::duration::parse_duration;
use crate::engine::SubgraphTarget;
use crate::handler::{FUNCTION_ACTIONS, PARALLEL_JOINS};
use crate::limits::{self, Limits, PARALLEL_NESTING, id_problem};
use crate::model::{Graph, Node, NodeType};
use crate::policy::NodePolicy;
use crate::template::ValueTemplate;

pub use checks::{Checks, GraphCheck};

/// What kind of mistake a [`ValidationError`] reports, written in reports
/// (and JSON) as [`ValidationCode::as_str`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValidationCode {
    /// No node of type start.
    NoStart,
    /// More than one node of type start.
    MultipleStarts,
    /// No node of type end.
    NoEnd,
    /// A node named `start` that is not the start node.
    MisnamedStart,
    /// An edge leaves a node that does not exist.
    DanglingEdgeSource,
    /// An edge enters a node that does not exist.
    DanglingEdgeTarget,
    /// An edge enters the start node.
    StartHasIncoming,
    /// An edge leaves an end node.
    EndHasOutgoing,
    /// No path leads from start to the node.
    Unreachable,
    /// A function node whose `action` is missing or unknown.
    UnknownFunctionAction,
    /// A `json_transform` function node without `template`.
    MissingTemplate,
    /// A `custom` function node without a `function` name.
    MissingFunction,
    /// A `delay` function node whose `duration` cannot be read.
    InvalidDuration,
    /// A condition (on an edge or a condition node) that is missing, malformed,
    /// of an unknown type or with an unknown op, or that only a lenient reading
    /// makes sense of (no `type` or `conditions`, a null `path`, `not` with
    /// several conditions, `otherwise` nested or in a condition node, an
    /// edge's empty `{}`).
    MalformedCondition,
    /// An `error` condition inside all, any or not (or in a condition node),
    /// where it is always false: an error route is a whole edge condition.
    NestedErrorCondition,
    /// An error edge out of a parallel node's child: a child's failure is
    /// its parallel node's, so the edge is never taken.
    ErrorRouteFromChild,
    /// A configuration string whose `{{...}}` placeholder does not parse.
    MalformedTemplate,
    /// A `parent` that is not a parallel node of the graph.
    InvalidParent,
    /// A parallel node whose `join` is neither `all` nor `any`.
    InvalidJoin,
    /// A malformed `retry` or `timeout` setting.
    InvalidPolicy,
    /// A graph or node id that is empty, too long, or holds characters an id may not.
    InvalidId,
    /// A graph past one of its [`Limits`]: too many nodes or edges, a
    /// configuration too deep or a string too long, parallel nodes nested too deep.
    LimitExceeded,
    /// A human node whose `actions` is not a list of distinct, non-empty strings.
    InvalidActions,
    /// A human node whose `prompt` is not a string.
    InvalidPrompt,
    /// A graph whose `max_steps` is 0: no run of it could take a step.
    InvalidMaxSteps,
    /// A graph whose `concurrency` has a limit of 0 or a key that is not a
    /// template.
    InvalidConcurrency,
    /// A subgraph node without a `graph_id`, with a `version` that is not
    /// one (1, 2, ...), naming its own graph, or inside a parallel node.
    InvalidSubgraph,
    /// A trigger that cannot work, such as a schedule whose cron expression
    /// or time zone does not parse (the check of `roomkit-graph-triggers`).
    InvalidTrigger,
    /// An agent or orchestration node whose settings do not parse, or that
    /// names an agent the agents file does not declare (the check of
    /// `roomkit-graph-ai`).
    AgentConfig,
    /// A notification node whose settings do not parse, or whose channel is
    /// not configured (the check of `roomkit-graph-notify`).
    NotificationConfig,
    /// A mistake found by an application's own [`GraphCheck`], under a code
    /// of its choosing (`snake_case`, like the others: `missing_owner`).
    Custom(&'static str),
}

impl ValidationCode {
    /// The code as written in reports: `no_start`, `unreachable`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationCode::NoStart => "no_start",
            ValidationCode::MultipleStarts => "multiple_starts",
            ValidationCode::NoEnd => "no_end",
            ValidationCode::MisnamedStart => "misnamed_start",
            ValidationCode::DanglingEdgeSource => "dangling_edge_source",
            ValidationCode::DanglingEdgeTarget => "dangling_edge_target",
            ValidationCode::StartHasIncoming => "start_has_incoming",
            ValidationCode::EndHasOutgoing => "end_has_outgoing",
            ValidationCode::Unreachable => "unreachable",
            ValidationCode::UnknownFunctionAction => "unknown_function_action",
            ValidationCode::MissingTemplate => "missing_template",
            ValidationCode::MissingFunction => "missing_function",
            ValidationCode::InvalidDuration => "invalid_duration",
            ValidationCode::MalformedCondition => "malformed_condition",
            ValidationCode::NestedErrorCondition => "nested_error_condition",
            ValidationCode::ErrorRouteFromChild => "error_route_from_child",
            ValidationCode::MalformedTemplate => "malformed_template",
            ValidationCode::InvalidParent => "invalid_parent",
            ValidationCode::InvalidJoin => "invalid_join",
            ValidationCode::InvalidPolicy => "invalid_policy",
            ValidationCode::InvalidId => "invalid_id",
            ValidationCode::LimitExceeded => "limit_exceeded",
            ValidationCode::InvalidActions => "invalid_actions",
            ValidationCode::InvalidPrompt => "invalid_prompt",
            ValidationCode::InvalidMaxSteps => "invalid_max_steps",
            ValidationCode::InvalidConcurrency => "invalid_concurrency",
            ValidationCode::InvalidSubgraph => "invalid_subgraph",
            ValidationCode::InvalidTrigger => "invalid_trigger",
            ValidationCode::AgentConfig => "agent_config",
            ValidationCode::NotificationConfig => "notification_config",
            ValidationCode::Custom(code) => code,
        }
    }
}

impl Serialize for ValidationCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ValidationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mistake in a graph: its code, the node it is about, the configuration
/// field for configuration mistakes, and a message naming both.
///
/// ```
/// use roomkit_graph::{Graph, ValidationCode};
/// use serde_json::json;
///
/// let graph = Graph::from_value(json!({
///     "id": "g", "name": "G", "trigger": {"type": "manual"},
///     "nodes": [
///         {"id": "start", "type": "start"},
///         {"id": "wait", "type": "function", "config": {"action": "delay", "duration": "soon"}},
///         {"id": "end", "type": "end"}
///     ],
///     "edges": [{"source": "start", "target": "wait"}, {"source": "wait", "target": "end"}]
/// }))?;
/// let errors = graph.validate();
/// assert_eq!(errors.len(), 1);
/// assert_eq!(errors[0].code, ValidationCode::InvalidDuration);
/// assert_eq!(errors[0].node.as_deref(), Some("wait"));
/// assert_eq!(errors[0].field.as_deref(), Some("duration"));
/// # Ok::<(), roomkit_graph::GraphError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// What kind of mistake.
    pub code: ValidationCode,
    /// The node it is about (none for graph-wide mistakes such as `no_start`).
    pub node: Option<String>,
    /// The configuration field it is about (`duration`, `template.name`,
    /// `edges[2].condition`), for configuration mistakes.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// What kind of likely mistake a [`ValidationWarning`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// Nodes that reach each other (a node with an edge to itself included)
    /// with no edge of any kind leaving them and no end node among them: a
    /// run that enters them ends only at its step limit.
    CycleWithoutExit,
    /// A subgraph node naming a graph that is not among the files checked
    /// together: it must be stored before this graph is.
    SubgraphNotGiven,
}

impl WarningCode {
    /// The code as written in reports: `cycle_without_exit`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningCode::CycleWithoutExit => "cycle_without_exit",
            WarningCode::SubgraphNotGiven => "subgraph_not_given",
        }
    }
}

impl fmt::Display for WarningCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something in a graph that is allowed but likely a mistake: the graph runs,
/// perhaps not as meant. Shaped like a [`ValidationError`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationWarning {
    /// What kind of likely mistake.
    pub code: WarningCode,
    /// The node it is about (for a set of nodes, the first in graph order).
    pub node: Option<String>,
    /// The configuration field it is about, if one.
    pub field: Option<String>,
    /// What looks wrong, for a person.
    pub message: String,
}

impl fmt::Display for ValidationWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

/// Everything [`Graph::check`] (or [`Checks::check`]) found: the mistakes,
/// which make the graph invalid, and the warnings, which do not.
///
/// ```
/// use roomkit_graph::{Condition, Edge, Graph, Node, Trigger, WarningCode};
///
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([Node::new("start", "start"), Node::new("poll", "log"), Node::new("end", "end")])?;
/// graph.add_edges([
///     Edge::new("start", "end").when(Condition::field("trigger.skip").equals(true)),
///     Edge::new("start", "poll"),
///     Edge::new("poll", "poll"),
/// ]);
/// let found = graph.check();
/// assert!(found.is_valid());
/// assert_eq!(found.warnings[0].code, WarningCode::CycleWithoutExit);
/// assert_eq!(found.warnings[0].node.as_deref(), Some("poll"));
/// # Ok::<(), roomkit_graph::GraphError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Validation {
    /// Every mistake, as [`Graph::validate`] gives them, then those of the
    /// registered [`Checks`].
    pub errors: Vec<ValidationError>,
    /// Every warning, in graph order.
    pub warnings: Vec<ValidationWarning>,
}

impl Validation {
    /// Whether the graph has no mistake (warnings or not).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

struct Report {
    errors: Vec<ValidationError>,
}

impl Report {
    fn graph(&mut self, code: ValidationCode, message: String) {
        self.errors.push(ValidationError { code, node: None, field: None, message });
    }

    fn node(&mut self, code: ValidationCode, node: &str, message: String) {
        self.errors.push(ValidationError { code, node: Some(node.to_owned()), field: None, message });
    }

    fn field(&mut self, code: ValidationCode, node: &str, field: &str, message: String) {
        self.errors.push(ValidationError {
            code,
            node: Some(node.to_owned()),
            field: Some(field.to_owned()),
            message,
        });
    }
}

pub(crate) fn validate(graph: &Graph, limits: &Limits) -> Vec<ValidationError> {
    let mut report = Report { errors: Vec::new() };
    mistakes(graph, limits, &mut report);
    report.errors
}

/// The core's mistakes and warnings, then the mistakes of each of `checks`;
/// only the core's one mistake for a graph too large to look into.
pub(crate) fn check(graph: &Graph, limits: &Limits, checks: &[Arc<dyn GraphCheck>]) -> Validation {
    let mut report = Report { errors: Vec::new() };
    if !mistakes(graph, limits, &mut report) {
        return Validation { errors: report.errors, warnings: Vec::new() };
    }
    for check in checks {
        report.errors.extend(check.check(graph));
    }
    Validation { errors: report.errors, warnings: warnings(graph) }
}

/// Every mistake of the graph, into `report`; false when the graph is too
/// large to look into (that is then the one mistake reported).
fn mistakes(graph: &Graph, limits: &Limits, report: &mut Report) -> bool {
    if !size(graph, limits, report) {
        return false;
    }
    structure(graph, report);
    if report.errors.is_empty() {
        reachability(graph, report);
    }
    step_limit(graph, report);
    concurrency(graph, report);
    configuration(graph, report);
    bounds(graph, limits, report);
    true
}

/// The likely mistakes of a graph small enough to look into.
fn warnings(graph: &Graph) -> Vec<ValidationWarning> {
    cycles::traps(graph)
        .into_iter()
        .map(|set| {
            let ids: Vec<&str> = set.iter().map(|&i| graph.nodes()[i].id.as_str()).collect();
            let message = match ids.as_slice() {
                [one] => format!(
                    "node {} leads only back to itself: a run that gets there ends only at \
                     its step limit; give it an edge to another node",
                    shown(one)
                ),
                _ => format!(
                    "nodes {} lead only to each other: a run that gets there ends only at \
                     its step limit; give one of them an edge out",
                    ids.iter().map(|id| shown(id)).collect::<Vec<_>>().join(", ")
                ),
            };
            ValidationWarning {
                code: WarningCode::CycleWithoutExit,
                node: Some(ids[0].to_owned()),
                field: None,
                message,
            }
        })
        .collect()
}

/// The graph's `max_steps`, when it has one: at least 1.
fn step_limit(graph: &Graph, report: &mut Report) {
    if graph.max_steps == Some(0) {
        report.errors.push(ValidationError {
            code: ValidationCode::InvalidMaxSteps,
            node: None,
            field: Some("max_steps".to_owned()),
            message: "max_steps is 0: a run of the graph could not take a single step; \
                give 1 or more, or leave it out for the runner's limit"
                .to_owned(),
        });
    }
}

/// The graph's `concurrency`, when it has one: a limit of 1 or more, a key
/// that is a template.
fn concurrency(graph: &Graph, report: &mut Report) {
    let Some(concurrency) = &graph.concurrency else { return };
    let mistake = |field: &str, message: String| ValidationError {
        code: ValidationCode::InvalidConcurrency,
        node: None,
        field: Some(field.to_owned()),
        message,
    };
    if concurrency.limit == 0 {
        report.errors.push(mistake(
            "concurrency.limit",
            "concurrency.limit is 0: no run of the graph could ever go; give 1 or more".to_owned(),
        ));
    }
    if let Some(key) = &concurrency.key
        && let Err(error) = crate::Template::parse(key)
    {
        report.errors.push(mistake("concurrency.key", format!("concurrency.key is not a template: {error}")));
    }
}

/// Whether the graph's node and edge counts are within the limits (reported when not).
fn size(graph: &Graph, limits: &Limits, report: &mut Report) -> bool {
    let mut within = true;
    for (what, count, limit) in
        [("nodes", graph.nodes().len(), limits.nodes), ("edges", graph.edges.len(), limits.edges)]
    {
        if count > limit {
            within = false;
            report.graph(
                ValidationCode::LimitExceeded,
                format!("the graph has {count} {what}, more than the limit of {limit}"),
            );
        }
    }
    within
}

/// Ids, and how deep and how long what the graph holds is.
fn bounds(graph: &Graph, limits: &Limits, report: &mut Report) {
    use ValidationCode::*;
    if let Some(problem) = id_problem(&graph.id, limits.id_chars) {
        report.graph(InvalidId, format!("graph id {}: {problem}", shown(&graph.id)));
    }
    if let Some(problem) = value_problem(&Value::Object(graph.metadata.clone()), limits) {
        report.graph(LimitExceeded, format!("the graph's metadata {problem}"));
    }
    for node in graph.nodes() {
        let id = node.id.as_str();
        if let Some(problem) = id_problem(id, limits.id_chars) {
            report.node(InvalidId, id, format!("node id {}: {problem}", shown(id)));
        }
        for (key, value) in node.config.iter().chain(&node.metadata) {
            if let Some(problem) = value_problem(value, limits) {
                report.field(LimitExceeded, id, key, format!("node {}: {key} {problem}", shown(id)));
            }
        }
    }
    for (i, edge) in graph.edges.iter().enumerate() {
        let condition = edge.condition.as_ref().map(Condition::to_value).unwrap_or(Value::Null);
        let metadata = Value::Object(edge.metadata.clone());
        for (what, value) in [("condition", condition), ("metadata", metadata)] {
            if let Some(problem) = value_problem(&value, limits) {
                let field = format!("edges[{i}].{what}");
                report.field(LimitExceeded, &edge.source, &field, format!("edge {i}: {what} {problem}"));
            }
        }
    }
}

/// What makes a value of the graph too deep or hold a string too long, if anything.
fn value_problem(value: &Value, limits: &Limits) -> Option<String> {
    let depth = limits::depth(value);
    if depth > limits.json_depth {
        return Some(format!("nests {depth} levels deep, more than the limit of {}", limits.json_depth));
    }
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) if text.len() > limits.config_string_bytes => {
                return Some(format!(
                    "holds a string of {} bytes, more than the limit of {}",
                    text.len(),
                    limits.config_string_bytes
                ));
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    None
}

/// An id as shown in a message: quoted, and cut short when long.
fn shown(id: &str) -> String {
    match id.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}...", &id[..end]),
        None => format!("{id:?}"),
    }
}

/// What is wrong with a node's `parent` chain beyond its direct parent: the
/// node is its own ancestor, or parallel nodes nest deeper than [`PARALLEL_NESTING`].
fn ancestry_problem(graph: &Graph, node: &Node) -> Option<(ValidationCode, String)> {
    let mut seen = HashSet::from([node.id.as_str()]);
    let mut depth = 0;
    let mut at = node;
    while let Some(parent) = at.parent.as_deref().and_then(|p| graph.node(p)) {
        if !seen.insert(parent.id.as_str()) {
            let message = if parent.id == node.id {
                format!("node {:?} is its own ancestor: a parallel node cannot run itself", node.id)
            } else {
                format!("node {:?}: its parents form a cycle through {:?}", node.id, parent.id)
            };
            return Some((ValidationCode::InvalidParent, message));
        }
        depth += 1;
        if depth > PARALLEL_NESTING {
            return Some((
                ValidationCode::LimitExceeded,
                format!("node {:?}: parallel nodes nest more than {PARALLEL_NESTING} levels deep", node.id),
            ));
        }
        at = parent;
    }
    None
}

fn structure(graph: &Graph, report: &mut Report) {
    use ValidationCode::*;
    let nodes = graph.nodes();
    let starts: Vec<&Node> = nodes.iter().filter(|n| n.node_type == NodeType::Start).collect();
    match starts.len() {
        0 => report.graph(NoStart, "the graph has no start node".to_owned()),
        1 => {}
        n => report.graph(
            MultipleStarts,
            format!(
                "the graph has {n} start nodes ({}); it needs exactly one",
                starts.iter().map(|n| format!("{:?}", n.id)).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
    if !nodes.iter().any(|n| n.node_type == NodeType::End) {
        report.graph(NoEnd, "the graph has no end node".to_owned());
    }
    if let Some(named) = graph.node("start").filter(|n| n.node_type != NodeType::Start) {
        report.node(
            MisnamedStart,
            "start",
            format!(
                "node \"start\" is of type {:?}: the id start is reserved for the start node",
                named.node_type.as_str()
            ),
        );
    }
    for edge in &graph.edges {
        if graph.node(&edge.source).is_none() {
            report.node(
                DanglingEdgeSource,
                &edge.source,
                format!(
                    "edge {:?} -> {:?} leaves {:?}, which is not a node",
                    edge.source, edge.target, edge.source
                ),
            );
        }
        if graph.node(&edge.target).is_none() {
            report.node(
                DanglingEdgeTarget,
                &edge.target,
                format!(
                    "edge {:?} -> {:?} enters {:?}, which is not a node",
                    edge.source, edge.target, edge.target
                ),
            );
        }
    }
    let of_type = |id: &str, node_type: NodeType| graph.node(id).is_some_and(|n| n.node_type == node_type);
    let mut seen = HashSet::new();
    for edge in graph.edges.iter().filter(|e| of_type(&e.target, NodeType::Start)) {
        if seen.insert(&edge.target) {
            report.node(
                StartHasIncoming,
                &edge.target,
                format!("start node {:?} has an incoming edge from {:?}", edge.target, edge.source),
            );
        }
    }
    let mut seen = HashSet::new();
    for edge in graph.edges.iter().filter(|e| of_type(&e.source, NodeType::End)) {
        if seen.insert(&edge.source) {
            report.node(
                EndHasOutgoing,
                &edge.source,
                format!("end node {:?} has an outgoing edge to {:?}", edge.source, edge.target),
            );
        }
    }
}

fn reachability(graph: &Graph, report: &mut Report) {
    let Some(start) = graph.start_node() else { return };
    // Where each node leads: its edges' targets, and a parallel node's children.
    let mut next_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for edge in &graph.edges {
        next_of.entry(edge.source.as_str()).or_default().push(edge.target.as_str());
    }
    for node in graph.nodes() {
        if let Some(parent) = node.parent.as_deref() {
            next_of.entry(parent).or_default().push(node.id.as_str());
        }
    }
    let mut reached: HashSet<&str> = HashSet::from([start.id.as_str()]);
    let mut queue = VecDeque::from([start.id.as_str()]);
    while let Some(id) = queue.pop_front() {
        for &next in next_of.get(id).into_iter().flatten() {
            if reached.insert(next) {
                queue.push_back(next);
            }
        }
    }
    for node in graph.nodes().iter().filter(|n| !reached.contains(n.id.as_str())) {
        report.node(
            ValidationCode::Unreachable,
            &node.id,
            format!("node {:?} cannot be reached from the start node {:?}", node.id, start.id),
        );
    }
}

fn configuration(graph: &Graph, report: &mut Report) {
    use ValidationCode::*;
    for node in graph.nodes() {
        let id = node.id.as_str();
        if let Some(parent) = &node.parent {
            match graph.node(parent) {
                None => report.field(
                    InvalidParent,
                    id,
                    "parent",
                    format!("node {id:?}: parent {parent:?} is not a node"),
                ),
                Some(p) if p.node_type != NodeType::Parallel => report.field(
                    InvalidParent,
                    id,
                    "parent",
                    format!("node {id:?}: parent {parent:?} is a {} node, not a parallel node", p.node_type),
                ),
                Some(_) => {
                    if let Some((code, message)) = ancestry_problem(graph, node) {
                        report.field(code, id, "parent", message);
                    }
                }
            }
        }
        match node.node_type {
            NodeType::Function => function_config(node, report),
            NodeType::Condition => match node.config.get("condition") {
                None => report.field(
                    MalformedCondition,
                    id,
                    "condition",
                    format!("condition node {id:?} has no \"condition\": it would always give false"),
                ),
                Some(raw) => condition_node(id, &Condition::from_value(raw), report),
            },
            NodeType::Human => human_config(node, report),
            NodeType::Subgraph => subgraph_config(graph, node, report),
            NodeType::Parallel => {
                if let Some(join) =
                    node.config.get("join").filter(|j| !PARALLEL_JOINS.contains(&j.as_str().unwrap_or("")))
                {
                    report.field(
                        InvalidJoin,
                        id,
                        "join",
                        format!("node {id:?}: join {join} is neither \"all\" nor \"any\""),
                    );
                }
            }
            _ => {}
        }
        if let Err(error) = NodePolicy::read(&node.config) {
            report.field(InvalidPolicy, id, &error.field, format!("node {id:?}: {error}"));
        }
        for (key, value) in &node.config {
            if let Some((at, error)) = ValueTemplate::compile(value).first_error() {
                let field = if at.is_empty() || at.starts_with('[') {
                    format!("{key}{at}")
                } else {
                    format!("{key}.{at}")
                };
                report.field(MalformedTemplate, id, &field, format!("node {id:?}: {field}: {error}"));
            }
        }
    }
    for (i, edge) in graph.edges.iter().enumerate() {
        let Some(condition) = &edge.condition else { continue };
        let field = format!("edges[{i}].condition");
        let at = format!("edge {:?} -> {:?}", edge.source, edge.target);
        if let Some(problem) = condition.problem() {
            report.field(MalformedCondition, &edge.source, &field, format!("{at}: condition: {problem}"));
        }
        if condition.nests_error() {
            report.field(
                NestedErrorCondition,
                &edge.source,
                &field,
                format!("{at}: an error condition inside all, any or not is always false: make it the whole condition"),
            );
        }
        let parent = graph.node(&edge.source).and_then(|source| source.parent.as_deref());
        if let (true, Some(parent)) = (condition.is_error(), parent) {
            report.field(
                ErrorRouteFromChild,
                &edge.source,
                &field,
                format!(
                    "{at}: {:?} is a child of parallel node {parent:?}, whose failure is the parallel node's: \
                     put the error edge on {parent:?}",
                    edge.source
                ),
            );
        }
    }
}

/// A condition node's `condition`: what [`Condition::problem`] finds, and the
/// conditions that mean something only on an edge.
fn condition_node(id: &str, condition: &Condition, report: &mut Report) {
    use ValidationCode::*;
    let problem = match condition {
        Condition::Otherwise => {
            Some("\"otherwise\" is for edges: in a condition node it is always true".to_owned())
        }
        condition => condition.problem(),
    };
    if let Some(problem) = problem {
        report.field(MalformedCondition, id, "condition", format!("node {id:?}: condition: {problem}"));
    }
    if condition.is_error() || condition.nests_error() {
        report.field(
            NestedErrorCondition,
            id,
            "condition",
            format!("node {id:?}: an error condition is for edges: in a condition node it is always false"),
        );
    }
}

/// What a subgraph node runs ([`Graph::subgraph_refs`]): the graph and the
/// version (the newest when `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubgraphRef {
    /// The subgraph node.
    pub node_id: String,
    /// The graph it runs.
    pub graph_id: String,
    /// The version it runs, if pinned.
    pub version: Option<u32>,
}

impl SubgraphRef {
    /// The mistake of naming a graph that is not there (`invalid_subgraph`,
    /// naming the node and the id), given the newest version of the graph
    /// that `place` holds (`"stored"`...; none: it holds no such graph).
    /// `None` when the target is there.
    pub fn missing(&self, newest: Option<u32>, place: &str) -> Option<ValidationError> {
        let (node, graph) = (&self.node_id, &self.graph_id);
        let (field, message) = match (newest, self.version) {
            (None, _) => ("graph_id", format!("node {node:?}: graph {graph:?} is not {place}")),
            (Some(newest), Some(version)) if version > newest => (
                "version",
                format!(
                    "node {node:?}: graph {graph:?} has no version {version} {place} (the newest is {newest})"
                ),
            ),
            (Some(_), _) => return None,
        };
        Some(ValidationError {
            code: ValidationCode::InvalidSubgraph,
            node: Some(node.clone()),
            field: Some(field.to_owned()),
            message,
        })
    }

    /// The warning that the target is not among the graphs checked together
    /// (`subgraph_not_given`): it must be stored first.
    pub fn not_given(&self) -> ValidationWarning {
        let (node, graph) = (&self.node_id, &self.graph_id);
        ValidationWarning {
            code: WarningCode::SubgraphNotGiven,
            node: Some(node.clone()),
            field: Some("graph_id".to_owned()),
            message: format!(
                "node {node:?}: graph {graph:?} is not among the files checked: it must be stored before this one"
            ),
        }
    }
}

/// A subgraph node's target (read as a run reads it), and where it stands:
/// a graph may not run itself, and a child run cannot wait inside a
/// parallel node's step.
fn subgraph_config(graph: &Graph, node: &Node, report: &mut Report) {
    use ValidationCode::InvalidSubgraph;
    let id = node.id.as_str();
    match SubgraphTarget::read(node) {
        Err((field, why)) => report.field(InvalidSubgraph, id, field, why),
        Ok(target) if target.graph_id == graph.id => report.field(
            InvalidSubgraph,
            id,
            "graph_id",
            format!("node {id:?}: graph {:?} may not run itself as a subgraph", graph.id),
        ),
        Ok(_) => {}
    }
    if let Some(parent) = &node.parent {
        report.field(
            InvalidSubgraph,
            id,
            "parent",
            format!("node {id:?}: a subgraph node cannot be a child of parallel node {parent:?}"),
        );
    }
}

/// A human node's `prompt` (a template string) and `actions` (the answers it takes).
fn human_config(node: &Node, report: &mut Report) {
    let id = node.id.as_str();
    if let Some(prompt) = node.config.get("prompt").filter(|p| !p.is_string()) {
        report.field(
            ValidationCode::InvalidPrompt,
            id,
            "prompt",
            format!("node {id:?}: \"prompt\" must be a string (a template), not {}", json_kind(prompt)),
        );
    }
    let Some(actions) = node.config.get("actions") else { return };
    let problem = match actions.as_array() {
        None => Some(format!(
            "must be a list of strings such as [\"approve\", \"reject\"], not {}",
            json_kind(actions)
        )),
        Some(items) => {
            let mut seen = HashSet::new();
            items.iter().find_map(|item| match item.as_str() {
                None => Some(format!("must hold only strings, not {}", json_kind(item))),
                Some("") => Some("holds an empty action".to_owned()),
                Some(action) if !seen.insert(action) => Some(format!("holds {action:?} twice")),
                Some(_) => None,
            })
        }
    };
    if let Some(problem) = problem {
        report.field(
            ValidationCode::InvalidActions,
            id,
            "actions",
            format!("node {id:?}: \"actions\" {problem}"),
        );
    }
}

/// A JSON value's kind, for messages: `a number`, `an object`...
///
/// ```
/// assert_eq!(roomkit_graph::json_kind(&serde_json::json!([1])), "a list");
/// ```
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn function_config(node: &Node, report: &mut Report) {
    use ValidationCode::*;
    let id = node.id.as_str();
    let config = &node.config;
    match config.get("action").and_then(Value::as_str) {
        Some("json_transform") if !config.contains_key("template") => report.field(
            MissingTemplate,
            id,
            "template",
            format!("node {id:?}: json_transform needs a \"template\""),
        ),
        Some("delay") => {
            let problem = match config.get("duration") {
                Some(Value::String(text)) => parse_duration(text).err().map(|e| e.to_string()),
                Some(other) => Some(format!("\"duration\" must be a string such as \"30s\", not {other}")),
                None => Some("delay needs a \"duration\" such as \"30s\"".to_owned()),
            };
            if let Some(problem) = problem {
                report.field(InvalidDuration, id, "duration", format!("node {id:?}: {problem}"));
            }
        }
        Some("custom") if !config.get("function").is_some_and(Value::is_string) => report.field(
            MissingFunction,
            id,
            "function",
            format!("node {id:?}: a custom action needs a \"function\" name"),
        ),
        Some(action) if FUNCTION_ACTIONS.contains(&action) => {}
        _ => report.field(
            UnknownFunctionAction,
            id,
            "action",
            format!(
                "node {id:?}: unknown function action {} (expected one of {})",
                config.get("action").unwrap_or(&Value::Null),
                FUNCTION_ACTIONS.join(", ")
            ),
        ),
    }
}
