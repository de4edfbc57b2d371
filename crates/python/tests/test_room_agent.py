"""Agent nodes run by RoomKit agents (roomkit_graph.roomkit), on a real RoomKit
with its in-memory store and RoomKit's own scripted AI provider."""

from __future__ import annotations

import logging

import pytest
from roomkit import ChannelType, RoomKit, SMSChannel
from roomkit.channels.agent import Agent
from roomkit.channels.ai import AIChannel
from roomkit.providers.ai.base import AIContext, AIProvider, AIResponse, AIToolCall
from roomkit.providers.ai.mock import MockAIProvider
from roomkit.providers.sms.mock import MockSMSProvider
from roomkit_graph import (
    Condition,
    Edge,
    ExecutionError,
    Graph,
    ManualTrigger,
    Node,
    WorkflowEngine,
)
from roomkit_graph.roomkit import room_handlers


@pytest.fixture
async def kit():
    kit = RoomKit()
    yield kit
    await kit.close()


def _agent_graph(config: dict) -> Graph:
    g = Graph(id="agent", name="Agent", trigger=ManualTrigger())
    g.add_nodes(Node("start", type="start"), Node("work", type="agent", config=config))
    g.add_nodes(Node("end", type="end"))
    g.add_edges(Edge("start", "work"), Edge("work", "end"))
    return g


def _asked(call: AIContext) -> str:
    """The text of the last thing the agent was asked in its turn."""
    [text] = [m.content for m in call.messages if m.role == "user"][-1:]
    return text if isinstance(text, str) else " ".join(getattr(p, "text", "") for p in text)


def _records(caplog, event: str) -> list[dict]:
    return [
        r.roomkit_graph
        for r in caplog.records
        if getattr(r, "roomkit_graph", {}).get("event") == event
    ]


async def test_the_agent_is_asked_the_rendered_prompt_in_a_child_room_of_the_runs_room(kit):
    provider = MockAIProvider(["Severity: critical."])
    kit.register_channel(AIChannel("triage", provider=provider))
    room = await kit.create_room()
    graph = _agent_graph({"agent": "triage", "prompt": "Triage: {{trigger.title}}"})

    engine = WorkflowEngine(graph, handlers=room_handlers(kit))
    ctx = await engine.run({"room_id": room.id, "title": "Checkout down"})

    assert ctx.get("work.output") == {"text": "Severity: critical."}
    [call] = provider.calls
    assert "Triage: Checkout down" in _asked(call)
    # The turn ran in a child room of the run's room, which holds the question
    # and the answer; the run's room got neither.
    assert call.room is not None and call.room.room.id.startswith(f"{room.id}::task-")
    child = [e.content.body for e in await kit.store.list_events(call.room.room.id)]
    assert "Triage: Checkout down" in child and "Severity: critical." in child
    parent = await kit.store.list_events(room.id)
    assert all(getattr(e.content, "body", "") != "Severity: critical." for e in parent)


async def test_a_structured_answer_is_the_output_and_routes_the_run(kit):
    """The agent hands back a result object through submit_result; a condition
    on it picks the notification the room's SMS correspondent gets."""
    classify = AIToolCall(
        id="call-1",
        name="submit_result",
        arguments={
            "status": "completed",
            "summary": "EU outage",
            "data": {"severity": "critical"},
        },
    )
    provider = MockAIProvider(
        ai_responses=[AIResponse(content="", tool_calls=[classify]), AIResponse(content="Done.")]
    )
    sms = MockSMSProvider()
    kit.register_channel(AIChannel("triage", provider=provider))
    kit.register_channel(SMSChannel("sms", provider=sms))
    await kit.create_room(room_id="support")
    await kit.attach_channel("support", "sms", metadata={"phone_number": "+15550100000"})
    g = Graph(id="triage", name="Triage", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node(
            "classify",
            type="agent",
            config={"agent": "triage", "prompt": "Classify", "structured": True},
        ),
        Node("page", type="notification", config={"text": "Paging: {{classify.output.summary}}"}),
        Node("file", type="notification", config={"text": "Filed: {{classify.output.summary}}"}),
        Node("end", type="end"),
    )
    g.add_edges(
        Edge("start", "classify"),
        Edge(
            "classify",
            "page",
            condition=Condition.field("classify.output.data.severity").equals("critical"),
        ),
        Edge("classify", "file", condition=Condition.otherwise()),
        Edge("page", "end"),
        Edge("file", "end"),
    )

    ctx = await WorkflowEngine(g, handlers=room_handlers(kit)).run({"room_id": "support"})

    assert ctx.get("classify.output.data") == {"severity": "critical"}
    assert ctx.get("page.output") == {"room": "support", "text": "Paging: EU outage"}
    assert not ctx.has("file.output")
    assert [(s["to"], s["event"].content.body) for s in sms.sent] == [
        ("+15550100000", "Paging: EU outage")
    ]
    [posted] = [e for e in await kit.store.list_events("support") if e.type == "message"]
    assert posted.source.channel_type == ChannelType.HOST


class _Unavailable(AIProvider):
    """A model that cannot be reached."""

    @property
    def model_name(self) -> str:
        return "unavailable"

    async def generate(self, context: AIContext) -> AIResponse:
        raise RuntimeError("model unavailable")


async def test_an_agent_task_that_fails_fails_the_node_with_its_error(kit):
    sms = MockSMSProvider()
    kit.register_channel(AIChannel("writer", provider=_Unavailable()))
    kit.register_channel(SMSChannel("sms", provider=sms))
    await kit.create_room(room_id="ops")
    await kit.attach_channel("ops", "sms", metadata={"phone_number": "+15550100000"})
    g = Graph(id="report", name="Report", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("write", type="agent", config={"agent": "writer", "prompt": "Write"}),
        Node("tell", type="notification", config={"text": "Report: {{write.output.text}}"}),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "write"), Edge("write", "tell"), Edge("tell", "end"))
    engine = WorkflowEngine(g, handlers=room_handlers(kit))

    with pytest.raises(ExecutionError, match="write") as raised:
        await engine.run({"room_id": "ops"})

    assert "agent writer ended failed: model unavailable" in str(raised.value)
    assert sms.sent == []


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        ({"prompt": "Write"}, "needs the setting 'agent'"),
        ({"agent": "writer"}, "needs the setting 'prompt'"),
        ({"agent": "writer", "prompt": ["Write"]}, "'prompt' must be text"),
    ],
)
async def test_an_agent_node_without_its_settings_fails_before_asking(kit, config, missing):
    provider = MockAIProvider(["unused"])
    kit.register_channel(AIChannel("writer", provider=provider))
    room = await kit.create_room()

    with pytest.raises(ExecutionError, match=missing):
        await WorkflowEngine(_agent_graph(config), handlers=room_handlers(kit)).run(
            {"room_id": room.id}
        )

    assert provider.calls == []


async def test_the_agents_turn_is_logged_with_its_tokens_and_tools(kit, caplog):
    caplog.set_level(logging.INFO, logger="roomkit_graph")
    submit = AIToolCall(
        id="c1", name="submit_result", arguments={"status": "completed", "summary": "ok"}
    )
    usage = {
        "input_tokens": 7,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 3,
        "output_tokens": 9,
    }
    provider = MockAIProvider(
        ai_responses=[
            AIResponse(content="", tool_calls=[submit], usage=usage),
            AIResponse(content="Done."),
        ]
    )
    kit.register_channel(Agent("checker", provider=provider, role="Release checker"))
    room = await kit.create_room()
    graph = _agent_graph(
        {"agent": "checker", "prompt": "Check {{trigger.version}}", "structured": True}
    )

    engine = WorkflowEngine(graph, handlers=room_handlers(kit))
    await engine.run({"room_id": room.id, "version": "1.4"})

    [start] = _records(caplog, "agent.start")
    assert (start["agent"], start["role"], start["node"]) == ("checker", "Release checker", "work")
    assert (start["run"], start["graph"]) == (engine.run_id, "agent")
    [done] = _records(caplog, "agent.done")
    assert (done["tokens_in"], done["tokens_out"], done["tokens_cached"]) == (60, 9, 50)
    assert (done["tools"], done["status"]) == (["submit_result"], "completed")
    assert done["seconds"] >= 0
    # What was asked and answered is DEBUG only, and INFO messages do not quote it.
    assert _records(caplog, "agent.prompt") == [] and _records(caplog, "agent.answer") == []
    assert all("1.4" not in r.getMessage() for r in caplog.records)


async def test_an_agents_text_is_logged_as_it_writes_and_its_room_is_left(kit, caplog):
    caplog.set_level(logging.DEBUG, logger="roomkit_graph")
    answer = "The release notes: three fixes, one feature."
    provider = MockAIProvider([answer], streaming=True)
    kit.register_channel(Agent("writer", provider=provider, publish_text_deltas=True))
    room = await kit.create_room()
    graph = _agent_graph({"agent": "writer", "prompt": "Write the notes"})

    ctx = await WorkflowEngine(graph, handlers=room_handlers(kit)).run({"room_id": room.id})

    assert ctx.get("work.output.text") == answer
    assert "".join(r["text"] for r in _records(caplog, "agent.text")) == answer
    [prompt] = _records(caplog, "agent.prompt")
    assert prompt["text"] == "Write the notes"
    [said] = _records(caplog, "agent.answer")
    assert said["text"] == answer
    assert kit.realtime.subscription_count == 0
