//! Checking a graph's AI nodes against the agents before anything runs.

use std::sync::Arc;

use roomkit_graph::{Graph, GraphCheck, NodeType, ValidationCode, ValidationError};

use crate::agent_node::AgentNodeConfig;
use crate::config::Agents;
use crate::error::AiError;
use crate::orchestration::OrchestrationConfig;

/// Checks a graph's `agent` and `orchestration` nodes against the agents,
/// with the readers their handlers use: malformed settings, agents that the
/// agents file does not declare, agents whose tools have no function
/// registered. Each mistake has the code `agent_config`, its node and field.
/// Register it in the [`Checks`](roomkit_graph::Checks) beside the handlers
/// [`register`](crate::register) adds.
///
/// ```
/// use std::sync::Arc;
/// use roomkit_graph::{Graph, GraphCheck, Node, Trigger};
/// use roomkit_graph_ai::{AgentCheck, Agents};
/// use serde_json::json;
///
/// let agents = Agents::from_json(r#"{"providers": {"p": {"kind": "anthropic"}},
///   "agents": [{"id": "triage", "provider": "p", "model": "m"}]}"#)?;
/// let mut graph = Graph::new("g", "G", Trigger::manual());
/// graph.add_nodes([
///     Node::new("ok", "agent").with_config(json!({"agent_id": "triage", "prompt_template": "hi"})),
///     Node::new("typo", "agent").with_config(json!({"agent_id": "triag"})),
///     Node::new("team", "orchestration").with_config(json!({"strategy": "pipeline", "agents": ["triage", "ghost"]})),
/// ])?;
/// let problems = AgentCheck::new(Arc::new(agents)).check(&graph);
/// assert_eq!(problems.len(), 2);
/// assert_eq!((problems[0].node.as_deref(), problems[0].field.as_deref()), (Some("typo"), Some("agent_id")));
/// assert_eq!((problems[1].node.as_deref(), problems[1].field.as_deref()), (Some("team"), Some("agents")));
/// assert_eq!(problems[1].message, "no agent \"ghost\" (declared: triage)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AgentCheck {
    agents: Arc<Agents>,
}

impl AgentCheck {
    /// A check against `agents` (the agents the handlers call).
    pub fn new(agents: Arc<Agents>) -> Self {
        AgentCheck { agents }
    }
}

impl GraphCheck for AgentCheck {
    fn check(&self, graph: &Graph) -> Vec<ValidationError> {
        let agents = &self.agents;
        let mut problems = Vec::new();
        for node in graph.nodes() {
            let mut problem = |field: &str, message: String| {
                problems.push(ValidationError {
                    code: ValidationCode::AgentConfig,
                    node: Some(node.id.clone()),
                    field: Some(field.to_owned()),
                    message,
                })
            };
            let named: Result<Vec<(&str, String)>, AiError> = match node.node_type {
                NodeType::Agent => {
                    AgentNodeConfig::read(&node.config).map(|config| vec![("agent_id", config.agent_id)])
                }
                NodeType::Orchestration => OrchestrationConfig::read(&node.config).map(|config| {
                    config.agent_ids().into_iter().map(|(field, id)| (field, id.to_owned())).collect()
                }),
                _ => continue,
            };
            match named {
                Err(AiError::Config { field, message }) => problem(&field, message),
                Err(other) => problem("config", other.to_string()),
                Ok(named) => {
                    for (field, id) in named {
                        match agents.agent(&id) {
                            None => problem(
                                field,
                                format!(
                                    "no agent {id:?} (declared: {})",
                                    agents.ids().collect::<Vec<_>>().join(", ")
                                ),
                            ),
                            Some(agent) => {
                                for tool in
                                    agent.tools.iter().filter(|tool| !agents.has_tool_function(&tool.name))
                                {
                                    problem(
                                        field,
                                        format!(
                                            "agent {id:?} declares tool {:?}, which has no function registered",
                                            tool.name
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomkit_graph::{Node, Trigger};
    use serde_json::json;

    #[test]
    fn tools_without_functions_and_malformed_settings_are_reported() {
        let file = r#"{"providers": {"p": {"kind": "openai"}},
            "agents": [{"id": "a", "provider": "p", "model": "m", "tools": [{"name": "lookup"}]}]}"#;
        let agents = Agents::from_json(file).unwrap();
        let mut graph = Graph::new("g", "G", Trigger::manual());
        graph
            .add_nodes([
                Node::new("one", "agent").with_config(json!({"agent_id": "a"})),
                Node::new("two", "orchestration")
                    .with_config(json!({"strategy": "loop", "agent": "a", "max_rounds": 0})),
                Node::new("three", "agent").with_config(json!({"agent_id": 7})),
                Node::new("four", "function"),
            ])
            .unwrap();
        let found: Vec<(String, String, String)> = AgentCheck::new(Arc::new(agents.clone()))
            .check(&graph)
            .into_iter()
            .map(|e| (e.node.unwrap_or_default(), e.field.unwrap_or_default(), e.message))
            .collect();
        let row =
            |node: &str, field: &str, message: &str| (node.to_owned(), field.to_owned(), message.to_owned());
        assert_eq!(
            found,
            [
                row(
                    "one",
                    "agent_id",
                    "agent \"a\" declares tool \"lookup\", which has no function registered"
                ),
                row("two", "max_rounds", "must be at least 1"),
                row("three", "agent_id", "must be a string"),
            ]
        );
        let agents = agents.with_tool("lookup", |_| async { Ok(json!(null)) });
        assert_eq!(AgentCheck::new(Arc::new(agents)).check(&graph).len(), 2);
    }
}
