"""stream() runs a run as its events are taken: a node's handler runs only
once the events before it are out, as roomkit-graph's stream does."""

from __future__ import annotations

from roomkit_graph import Edge, Graph, ManualTrigger, Node, NodeHandler, NodeResult, WorkflowEngine


class _Noted(NodeHandler):
    """Notes in the shared list when it runs."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def execute(self, node, context, engine):
        self.seen.append(f"run {node.id}")
        return NodeResult(output={"done": node.id})


async def test_a_handler_runs_after_the_events_before_its_node_are_taken():
    seen: list[str] = []
    g = Graph(id="two", name="Two", trigger=ManualTrigger())
    g.add_nodes(Node("start", type="start"), Node("a", type="noted"), Node("b", type="noted"))
    g.add_nodes(Node("end", type="end"))
    g.add_edges(Edge("start", "a"), Edge("a", "b"), Edge("b", "end"))
    engine = WorkflowEngine(g, handlers={"noted": _Noted(seen)})

    async for event in engine.stream({}, modes=("lifecycle",)):
        seen.append(f"{event['payload']['phase']} {event['node_id']}")

    assert seen == [
        "start start",
        "complete start",
        "start a",
        "run a",
        "complete a",
        "start b",
        "run b",
        "complete b",
        "start end",
        "complete end",
    ]


async def test_a_stream_left_after_a_nodes_start_does_not_run_its_handler():
    seen: list[str] = []
    g = Graph(id="one", name="One", trigger=ManualTrigger())
    g.add_nodes(Node("start", type="start"), Node("a", type="noted"), Node("end", type="end"))
    g.add_edges(Edge("start", "a"), Edge("a", "end"))
    engine = WorkflowEngine(g, handlers={"noted": _Noted(seen)})

    events = engine.stream({}, modes=("lifecycle",))
    async for event in events:
        if event["node_id"] == "a":
            break
    await events.aclose()

    assert seen == []
    assert engine.current_node_id == "a"
