//! A graph compiled for running: indices instead of ids, routes per node,
//! templates and conditions parsed once.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::EngineError;
use crate::condition::Condition;
use crate::context::{Context, Layout};
use crate::limits::PARALLEL_NESTING;
use crate::model::{Graph, Node, NodeType};
use crate::policy::NodePolicy;
use crate::template::ValueTemplate;

/// What a handler derived from a node's configuration, kept for every run.
pub(crate) type Prepared = Arc<dyn Any + Send + Sync>;

/// Where an edge leads: the target's index, or its id when no such node exists.
#[derive(Debug)]
enum Target {
    Node(usize),
    Missing(String),
}

#[derive(Debug, Default)]
struct Routes {
    /// Conditional edges, in the order they were added.
    conditional: Vec<(Condition, Target)>,
    /// The last unconditional edge.
    default: Option<Target>,
    /// The last `otherwise` edge.
    otherwise: Option<Target>,
    /// The first error edge: taken when the node fails.
    error: Option<Target>,
}

/// A graph ready to run.
#[derive(Debug)]
pub(crate) struct Plan {
    graph: Graph,
    layout: Arc<Layout>,
    start: Result<usize, String>,
    routes: Vec<Routes>,
    /// Each node's configuration fields, compiled and bound to the layout.
    templates: Vec<Vec<(String, ValueTemplate)>>,
    prepared: Vec<OnceLock<Prepared>>,
    children: Vec<Vec<usize>>,
    /// Each node's retry and timeout policy, or why it cannot be read.
    policies: Vec<Result<NodePolicy, String>>,
    /// Each node's incoming edges' sources, one per edge, in the order added.
    sources: Vec<Vec<usize>>,
}

impl Plan {
    pub(crate) fn new(graph: Graph) -> Self {
        let nodes = graph.nodes();
        let start = start_index(&graph);
        let layout = Arc::new(Layout::new(nodes.iter().map(|n| n.id.clone()).collect(), start.clone().ok()));
        let target = |id: &str| layout.slot(id).map_or_else(|| Target::Missing(id.to_owned()), Target::Node);

        let mut routes: Vec<Routes> = nodes.iter().map(|_| Routes::default()).collect();
        let mut sources = vec![Vec::new(); nodes.len()];
        for edge in &graph.edges {
            let Some(source) = layout.slot(&edge.source) else { continue };
            if let Some(target) = layout.slot(&edge.target) {
                sources[target].push(source);
            }
            let routes = &mut routes[source];
            match edge.route_condition() {
                None => routes.default = Some(target(&edge.target)),
                Some(Condition::Otherwise) => routes.otherwise = Some(target(&edge.target)),
                Some(Condition::Error) => {
                    if routes.error.is_none() {
                        routes.error = Some(target(&edge.target));
                    }
                }
                Some(condition) => {
                    let mut condition = condition.clone();
                    condition.bind(&layout);
                    routes.conditional.push((condition, target(&edge.target)));
                }
            }
        }
        let parent_of: Vec<Option<usize>> =
            nodes.iter().map(|node| node.parent.as_deref().and_then(|p| layout.slot(p))).collect();
        let mut children = vec![Vec::new(); nodes.len()];
        for (i, parent) in parent_of.iter().enumerate() {
            // A node among its own ancestors would run itself forever: such
            // links are left out (validation reports them), as are links
            // nested past the limit.
            if let Some(parent) = *parent
                && sound_ancestry(&parent_of, i)
            {
                children[parent].push(i);
            }
        }
        let templates = nodes
            .iter()
            .map(|node| {
                let compile = |value| {
                    let mut template = ValueTemplate::compile(value);
                    template.bind(&layout);
                    template
                };
                node.config.iter().map(|(key, value)| (key.clone(), compile(value))).collect()
            })
            .collect();
        let prepared = nodes.iter().map(|_| OnceLock::new()).collect();
        let policies = nodes
            .iter()
            .map(|node| NodePolicy::read(&node.config).map_err(|problem| problem.to_string()))
            .collect();
        Plan { graph, layout, start, routes, templates, prepared, children, policies, sources }
    }

    /// A new, empty context laid out for this graph.
    pub(crate) fn new_context(&self) -> Context {
        Context::with_layout(Arc::clone(&self.layout))
    }

    /// A context laid out for this graph, holding saved entries.
    pub(crate) fn restore_context(&self, entries: serde_json::Map<String, Value>) -> Context {
        Context::from_entries(Arc::clone(&self.layout), entries)
    }

    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    pub(crate) fn node(&self, index: usize) -> &Node {
        &self.graph.nodes()[index]
    }

    pub(crate) fn id(&self, index: usize) -> &str {
        &self.node(index).id
    }

    pub(crate) fn index(&self, id: &str) -> Option<usize> {
        self.layout.slot(id)
    }

    /// The start node, or why the graph cannot be started.
    pub(crate) fn start(&self) -> Result<usize, EngineError> {
        self.start.clone().map_err(EngineError::InvalidArgument)
    }

    pub(crate) fn children(&self, index: usize) -> &[usize] {
        &self.children[index]
    }

    /// The sources of the node's incoming edges, one per edge, in the order added.
    pub(crate) fn sources(&self, index: usize) -> &[usize] {
        &self.sources[index]
    }

    pub(crate) fn config_template(&self, index: usize, key: &str) -> Option<&ValueTemplate> {
        self.templates[index].iter().find(|(k, _)| k == key).map(|(_, template)| template)
    }

    /// Where the node's prepared value is kept.
    pub(crate) fn prepared(&self, index: usize) -> &OnceLock<Prepared> {
        &self.prepared[index]
    }

    /// Where the run goes after `node` completed: conditional edges in order
    /// (first match wins), then the unconditional edge, then `otherwise`.
    /// `Ok(None)`: the node has no edges, so the run is complete.
    pub(crate) fn route(&self, node: usize, context: &Context) -> Result<Option<usize>, EngineError> {
        let routes = &self.routes[node];
        let node_id = || self.id(node).to_owned();
        for (condition, target) in &routes.conditional {
            let matched = condition
                .evaluate(context)
                .map_err(|source| EngineError::Condition { node: node_id(), source })?;
            if matched {
                return self.resolve(node, target).map(Some);
            }
        }
        match routes.default.as_ref().or(routes.otherwise.as_ref()) {
            Some(target) => self.resolve(node, target).map(Some),
            None if routes.conditional.is_empty() => Ok(None),
            None => Err(EngineError::NoTransition { node: node_id() }),
        }
    }

    /// Where the run goes after `node` failed: its first error edge, if any.
    pub(crate) fn error_route(&self, node: usize) -> Option<Result<usize, EngineError>> {
        self.routes[node].error.as_ref().map(|target| self.resolve(node, target))
    }

    /// The node's retry and timeout policy, or why its configuration holds none.
    pub(crate) fn policy(&self, node: usize) -> Result<&NodePolicy, &str> {
        self.policies[node].as_ref().map_err(String::as_str)
    }

    fn resolve(&self, node: usize, target: &Target) -> Result<usize, EngineError> {
        match target {
            Target::Node(index) => Ok(*index),
            Target::Missing(id) => Err(EngineError::Execution {
                node: self.id(node).to_owned(),
                message: format!("an edge leads to {id:?}, which is not a node of the graph"),
            }),
        }
    }
}

/// Whether walking up from `node` through `parent_of` ends within
/// [`PARALLEL_NESTING`] levels without meeting `node` again.
fn sound_ancestry(parent_of: &[Option<usize>], node: usize) -> bool {
    let mut at = node;
    for _ in 0..=PARALLEL_NESTING {
        match parent_of[at] {
            None => return true,
            Some(parent) if parent == node => return false,
            Some(parent) => at = parent,
        }
    }
    false
}

fn start_index(graph: &Graph) -> Result<usize, String> {
    if let Some(named) = graph.node("start").filter(|node| node.node_type != NodeType::Start) {
        return Err(format!(
            "the node named \"start\" is of type {:?}, not start: graph {:?} cannot be started",
            named.node_type.as_str(),
            graph.id
        ));
    }
    graph
        .nodes()
        .iter()
        .position(|node| node.node_type == NodeType::Start)
        .ok_or_else(|| format!("graph {:?} has no start node", graph.id))
}

/// The output a start node writes for `trigger`.
pub(crate) fn start_output(trigger: Value) -> Value {
    let mut output = serde_json::Map::with_capacity(1);
    output.insert("input".to_owned(), trigger);
    Value::Object(output)
}
