//! A graph compiled for running: indices instead of ids, routes per node,
//! templates and conditions parsed once.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::EngineError;
use crate::condition::Condition;
use crate::context::Context;
use crate::model::{Graph, Node, NodeType};
use crate::template::ValueTemplate;

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
}

/// A graph ready to run.
#[derive(Debug)]
pub(crate) struct Plan {
    graph: Graph,
    ids: Vec<Arc<str>>,
    index: HashMap<String, usize>,
    start: Result<usize, String>,
    routes: Vec<Routes>,
    templates: Vec<HashMap<String, ValueTemplate>>,
    conditions: Vec<Option<Condition>>,
    children: Vec<Vec<usize>>,
}

impl Plan {
    pub(crate) fn new(graph: Graph) -> Self {
        let nodes = graph.nodes();
        let ids: Vec<Arc<str>> = nodes.iter().map(|node| Arc::from(node.id.as_str())).collect();
        let index: HashMap<String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
        let target =
            |id: &str| index.get(id).map_or_else(|| Target::Missing(id.to_owned()), |&i| Target::Node(i));

        let mut routes: Vec<Routes> = nodes.iter().map(|_| Routes::default()).collect();
        for edge in &graph.edges {
            let Some(&source) = index.get(&edge.source) else { continue };
            let routes = &mut routes[source];
            match &edge.condition {
                None => routes.default = Some(target(&edge.target)),
                Some(Condition::Otherwise) => routes.otherwise = Some(target(&edge.target)),
                Some(condition) => routes.conditional.push((condition.clone(), target(&edge.target))),
            }
        }
        let mut children = vec![Vec::new(); nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            if let Some(&parent) = node.parent.as_ref().and_then(|p| index.get(p)) {
                children[parent].push(i);
            }
        }
        let templates = nodes
            .iter()
            .map(|node| node.config.iter().map(|(k, v)| (k.clone(), ValueTemplate::compile(v))).collect())
            .collect();
        let conditions = nodes
            .iter()
            .map(|node| match node.node_type {
                NodeType::Condition => node.config.get("condition").map(Condition::from_value),
                _ => None,
            })
            .collect();
        let start = start_index(&graph, &index);
        Plan { graph, ids, index, start, routes, templates, conditions, children }
    }

    pub(crate) fn graph(&self) -> &Graph {
        &self.graph
    }

    pub(crate) fn node(&self, index: usize) -> &Node {
        &self.graph.nodes()[index]
    }

    pub(crate) fn id(&self, index: usize) -> &str {
        &self.ids[index]
    }

    pub(crate) fn shared_id(&self, index: usize) -> Arc<str> {
        Arc::clone(&self.ids[index])
    }

    pub(crate) fn index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The start node, or why the graph cannot be started.
    pub(crate) fn start(&self) -> Result<usize, EngineError> {
        self.start.clone().map_err(EngineError::InvalidArgument)
    }

    pub(crate) fn children(&self, index: usize) -> &[usize] {
        &self.children[index]
    }

    pub(crate) fn config_template(&self, index: usize, key: &str) -> Option<&ValueTemplate> {
        self.templates[index].get(key)
    }

    pub(crate) fn config_condition(&self, index: usize) -> Option<&Condition> {
        self.conditions[index].as_ref()
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

fn start_index(graph: &Graph, index: &HashMap<String, usize>) -> Result<usize, String> {
    if let Some(named) = graph.node("start").filter(|node| node.node_type != NodeType::Start) {
        return Err(format!(
            "the node named \"start\" is of type {:?}, not start: graph {:?} cannot be started",
            named.node_type.as_str(),
            graph.id
        ));
    }
    graph
        .start_node()
        .and_then(|node| index.get(&node.id).copied())
        .ok_or_else(|| format!("graph {:?} has no start node", graph.id))
}

/// The output a start node writes for `trigger`.
pub(crate) fn start_output(trigger: Value) -> Value {
    let mut output = serde_json::Map::with_capacity(1);
    output.insert("input".to_owned(), trigger);
    Value::Object(output)
}
