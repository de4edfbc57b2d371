//! The bug-triage workflow: an issue comes in, a triage step classifies it,
//! critical bugs are escalated on a notification channel, the rest get labels
//! and a team.
//!
//! The application registers its own handlers for the agent and notification
//! nodes: a small rule-based triage and a notification printed to the terminal.
//!
//! ```text
//! cargo run -p roomkit-graph --example bug_triage
//! cargo run -p roomkit-graph --example bug_triage -- '{"title": "Typo on the pricing page", "body": "..."}'
//! ```

use async_trait::async_trait;
use futures_util::StreamExt;
use roomkit_graph::{
    Condition, Edge, Graph, HandlerError, Handlers, Node, NodeHandler, NodeResult, Scope, StreamMode,
    Trigger, WorkflowEngine,
};
use serde_json::{Value, json};

/// The seed's bug-triage graph.
fn bug_triage() -> Result<Graph, roomkit_graph::GraphError> {
    let mut graph = Graph::new("bug-triage", "Bug Triage", Trigger::webhook("github"));
    graph.add_nodes([
        Node::new("start", "start"),
        Node::new("triage", "agent").with_config(json!({
            "agent_id": "triage-agent",
            "prompt_template": "Triage this issue. Classify severity.\n\n{{start.output.input}}"
        })),
        Node::new("escalate", "notification").with_config(json!({
            "channel": "slack",
            "template": "Critical bug: {{triage.output.title}}"
        })),
        Node::new("assign", "agent").with_config(json!({
            "agent_id": "labeler-agent",
            "prompt_template": "Assign labels and team:\n\n{{triage.output}}"
        })),
        Node::new("end", "end"),
    ])?;
    graph.add_edges([
        Edge::new("start", "triage"),
        Edge::new("triage", "escalate").when(Condition::field("triage.output.severity").equals("critical")),
        Edge::new("triage", "assign").when(Condition::otherwise()),
        Edge::new("escalate", "end"),
        Edge::new("assign", "end"),
    ]);
    graph.validate_or_raise()?;
    Ok(graph)
}

/// Rule-based stand-ins for the two agents, chosen by `agent_id`.
struct RuleBasedAgent;

#[async_trait]
impl NodeHandler for RuleBasedAgent {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let prompt = scope.render("prompt_template")?.unwrap_or_default().to_lowercase();
        let output = match node.config.get("agent_id").and_then(Value::as_str) {
            Some("triage-agent") => {
                let severity =
                    if ["outage", "down", "data loss", "security"].iter().any(|w| prompt.contains(w)) {
                        "critical"
                    } else if ["crash", "error", "broken"].iter().any(|w| prompt.contains(w)) {
                        "major"
                    } else {
                        "minor"
                    };
                let title = scope.context().get("trigger.title").cloned().unwrap_or(json!("(untitled)"));
                json!({"severity": severity, "title": title})
            }
            Some("labeler-agent") => {
                let team =
                    if prompt.contains("page") || prompt.contains("button") { "frontend" } else { "backend" };
                json!({"labels": ["bug", team], "team": team})
            }
            other => return Err(HandlerError::execution(format!("no rules for agent {other:?}"))),
        };
        scope.emit(json!({"agent": node.config.get("agent_id"), "reply": output}));
        Ok(NodeResult::completed(output))
    }
}

/// Prints the notification to the terminal instead of sending it.
struct TerminalNotifier;

#[async_trait]
impl NodeHandler for TerminalNotifier {
    async fn execute(&self, node: &Node, scope: &Scope<'_>) -> Result<NodeResult, HandlerError> {
        let channel = node.config.get("channel").and_then(Value::as_str).unwrap_or("terminal");
        let text = scope.render("template")?.unwrap_or_default();
        println!("    📣 [{channel}] {text}");
        Ok(NodeResult::completed(json!({"channel": channel, "text": text, "sent": true})))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issues: Vec<Value> = match std::env::args().nth(1) {
        Some(text) => vec![serde_json::from_str(&text).map_err(|e| format!("the issue must be JSON: {e}"))?],
        None => vec![
            json!({"issue_id": "123", "title": "Checkout is down for all EU users", "body": "Outage since 9:00"}),
            json!({"issue_id": "124", "title": "Typo on the pricing page", "body": "'Monthy' should be 'Monthly'"}),
        ],
    };
    let graph = bug_triage()?;
    let handlers = Handlers::builtin().with("agent", RuleBasedAgent).with("notification", TerminalNotifier);
    for issue in issues {
        let mut engine = WorkflowEngine::new(graph.clone(), handlers.clone());
        println!("── issue {}: {}", issue["issue_id"], issue["title"]);
        let mut events = engine.stream(issue, &[StreamMode::Lifecycle, StreamMode::Custom]);
        while let Some(event) = events.next().await {
            let event = event?;
            let node = event.node_id.unwrap_or_default();
            let text = |key: &str| event.payload[key].as_str().unwrap_or_default().to_owned();
            match (event.mode, text("phase").as_str()) {
                (StreamMode::Lifecycle, "start") => println!("  → {node} ({})", text("type")),
                (StreamMode::Lifecycle, _) => println!("  ✓ {node} {}", text("status")),
                (_, _) => println!("    💬 {}: {}", text("agent"), event.payload["reply"]),
            }
        }
        drop(events);
        println!(
            "  run {} finished; context: {}\n",
            engine.run_id(),
            Value::Object(engine.context().to_entries())
        );
    }
    Ok(())
}
