//! Checking a graph's AI nodes against the agents before anything runs.

use std::fmt;

use roomkit_graph::{Graph, NodeType};

use crate::agent_node::AgentNodeConfig;
use crate::config::Agents;
use crate::error::AiError;
use crate::orchestration::OrchestrationConfig;

/// A mistake in an AI node's configuration: the node, the field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The node.
    pub node_id: String,
    /// The configuration field, such as `agent_id` or `workers`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?}, config field {:?}: {}", self.node_id, self.field, self.message)
    }
}

impl std::error::Error for ConfigProblem {}

/// Every mistake of the graph's `agent` and `orchestration` nodes: malformed
/// settings, agents that `agents` does not declare, agents whose tools have no
/// function registered.
///
/// ```
/// use roomkit_graph::{Graph, Node, Trigger};
/// use roomkit_graph_ai::{Agents, check_graph};
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
/// let problems = check_graph(&graph, &agents);
/// assert_eq!(problems.len(), 2);
/// assert_eq!((problems[0].node_id.as_str(), problems[0].field.as_str()), ("typo", "agent_id"));
/// assert_eq!((problems[1].node_id.as_str(), problems[1].field.as_str()), ("team", "agents"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_graph(graph: &Graph, agents: &Agents) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for node in graph.nodes() {
        let mut problem = |field: &str, message: String| {
            problems.push(ConfigProblem { node_id: node.id.clone(), field: field.to_owned(), message })
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
        let found: Vec<String> = check_graph(&graph, &agents).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "node \"one\", config field \"agent_id\": agent \"a\" declares tool \"lookup\", which has no function registered",
                "node \"two\", config field \"max_rounds\": must be at least 1",
                "node \"three\", config field \"agent_id\": must be a string",
            ]
        );
        let agents = agents.with_tool("lookup", |_| async { Ok(json!(null)) });
        assert_eq!(check_graph(&graph, &agents).len(), 2);
    }
}
