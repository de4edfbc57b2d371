"""The bug-triage workflow: an issue comes in, a triage step classifies it,
critical bugs are escalated on a notification channel, the rest get labels
and a team.

The application registers its own handlers for the agent and notification
nodes: a small rule-based triage and a notification printed to the terminal.
The same workflow as the Rust example (crates/roomkit-graph/examples/bug_triage.rs),
printing the same transcript.

    python crates/python/examples/bug_triage.py
    python crates/python/examples/bug_triage.py '{"title": "Typo on the pricing page"}'
"""

from __future__ import annotations

import asyncio
import json
import sys

from roomkit_graph import (
    Condition,
    Edge,
    Graph,
    Node,
    NodeHandler,
    NodeResult,
    WebhookTrigger,
    WorkflowEngine,
)

ISSUES = [
    {"issue_id": "123", "title": "Checkout is down for all EU users", "body": "Outage since 9:00"},
    {
        "issue_id": "124",
        "title": "Typo on the pricing page",
        "body": "'Monthy' should be 'Monthly'",
    },
]


def bug_triage() -> Graph:
    """The seed's bug-triage graph."""
    graph = Graph(id="bug-triage", name="Bug Triage", trigger=WebhookTrigger(source_type="github"))
    graph.add_nodes(
        Node("start", type="start"),
        Node(
            "triage",
            type="agent",
            config={
                "agent_id": "triage-agent",
                "prompt_template": (
                    "Triage this issue. Classify severity.\n\n{{start.output.input}}"
                ),
            },
        ),
        Node(
            "escalate",
            type="notification",
            config={"channel": "slack", "template": "Critical bug: {{triage.output.title}}"},
        ),
        Node(
            "assign",
            type="agent",
            config={
                "agent_id": "labeler-agent",
                "prompt_template": "Assign labels and team:\n\n{{triage.output}}",
            },
        ),
        Node("end", type="end"),
    )
    graph.add_edges(
        Edge("start", "triage"),
        Edge(
            "triage",
            "escalate",
            condition=Condition.field("triage.output.severity").equals("critical"),
        ),
        Edge("triage", "assign", condition=Condition.otherwise()),
        Edge("escalate", "end"),
        Edge("assign", "end"),
    )
    graph.validate_or_raise()
    return graph


def compact(value) -> str:
    """*value* as compact JSON, as the Rust example prints it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RuleBasedAgent(NodeHandler):
    """Rule-based stand-ins for the two agents, chosen by ``agent_id``."""

    async def execute(self, node, context, engine):
        prompt = engine.template_resolver.resolve(node.config.get("prompt_template", "")).lower()
        agent = node.config.get("agent_id")
        if agent == "triage-agent":
            if any(w in prompt for w in ("outage", "down", "data loss", "security")):
                severity = "critical"
            elif any(w in prompt for w in ("crash", "error", "broken")):
                severity = "major"
            else:
                severity = "minor"
            output = {"severity": severity, "title": context.get("trigger.title", "(untitled)")}
        elif agent == "labeler-agent":
            team = "frontend" if "page" in prompt or "button" in prompt else "backend"
            output = {"labels": ["bug", team], "team": team}
        else:
            return NodeResult(status="failed", error=f"no rules for agent {agent!r}")
        engine.emit({"agent": agent, "reply": output})
        return NodeResult(output=output)


class TerminalNotifier(NodeHandler):
    """Prints the notification to the terminal instead of sending it."""

    async def execute(self, node, context, engine):
        channel = node.config.get("channel", "terminal")
        text = engine.template_resolver.resolve(node.config.get("template", ""))
        print(f"    📣 [{channel}] {text}")
        return NodeResult(output={"channel": channel, "text": text, "sent": True})


async def main(issues: list[dict]) -> None:
    graph = bug_triage()
    handlers = {"agent": RuleBasedAgent(), "notification": TerminalNotifier()}
    for issue in issues:
        engine = WorkflowEngine(graph, handlers=handlers)
        print(f"── issue {compact(issue.get('issue_id'))}: {compact(issue.get('title'))}")
        async for event in engine.stream(issue, modes=("lifecycle", "custom")):
            node, payload = event["node_id"], event["payload"]
            if event["mode"] == "lifecycle" and payload["phase"] == "start":
                print(f"  → {node} ({payload['type']})")
            elif event["mode"] == "lifecycle":
                print(f"  ✓ {node} {payload['status']}")
            else:
                print(f"    💬 {payload['agent']}: {compact(payload['reply'])}")
        print(f"  run {engine.run_id} finished; context: {compact(engine.context.to_dict())}\n")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        try:
            given = [json.loads(sys.argv[1])]
        except ValueError as e:
            sys.exit(f"the issue must be JSON: {e}")
        if not isinstance(given[0], dict):
            sys.exit("the issue must be a JSON object")
    else:
        given = ISSUES
    asyncio.run(main(given))
