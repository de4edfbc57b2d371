"""Human and notification nodes in RoomKit rooms, and RoomRuns, which resumes
the run a room's answer is for (roomkit_graph.roomkit), on a real RoomKit with
its in-memory store, an SMS transport and RoomKit's scripted AI provider."""

from __future__ import annotations

import asyncio

import pytest
from roomkit import (
    ChannelType,
    EventDirection,
    HookExecution,
    HookTrigger,
    InboundMessage,
    RoomKit,
    SMSChannel,
    TextContent,
)
from roomkit.channels.ai import AIChannel
from roomkit.providers.ai.mock import MockAIProvider
from roomkit.providers.sms.mock import MockSMSProvider
from roomkit_graph import (
    Condition,
    Edge,
    ExecutionError,
    Graph,
    ManualTrigger,
    Node,
    NodeHandler,
    NodeResult,
    WorkflowEngine,
)
from roomkit_graph.roomkit import RoomRuns, room_handlers

PHONE = "+15550101234"


@pytest.fixture
async def kit():
    kit = RoomKit()
    yield kit
    await kit.close()


@pytest.fixture
async def sms(kit):
    """An SMS transport; each room made with ``_room`` has the same correspondent."""
    provider = MockSMSProvider()
    kit.register_channel(SMSChannel("sms", provider=provider))
    return provider


async def _room(kit, room_id: str) -> None:
    await kit.create_room(room_id=room_id)
    await kit.attach_channel(room_id, "sms", metadata={"phone_number": PHONE})


async def _until(done, within: float = 10.0) -> None:
    """Wait until *done()* holds, what another task does, within a bound."""
    async with asyncio.timeout(within):
        while not done():
            await asyncio.sleep(0.01)


def _texts(sms) -> list[str]:
    return [s["event"].content.body for s in sms.sent]


def _review_graph() -> Graph:
    """An agent drafts, a person approves or rejects in the room, and the room
    is told the outcome."""
    g = Graph(id="review", name="Review", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node(
            "draft", type="agent", config={"agent": "writer", "prompt": "Draft: {{trigger.topic}}"}
        ),
        Node("review", type="human", config={"text": "Publish '{{draft.output.text}}'?"}),
        Node("publish", type="notification", config={"text": "Published, {{review.output.by}}."}),
        Node("drop", type="notification", config={"text": "Dropped: {{review.output.text}}"}),
        Node("end", type="end"),
    )
    g.add_edges(
        Edge("start", "draft"),
        Edge("draft", "review"),
        Edge("review", "publish", condition=Condition.field("review.output.text").equals("yes")),
        Edge("review", "drop", condition=Condition.otherwise()),
        Edge("publish", "end"),
        Edge("drop", "end"),
    )
    return g


@pytest.mark.parametrize(
    ("answer", "step", "told"),
    [
        ({"text": "yes", "by": "Ana"}, "publish", "Published, Ana."),
        ({"text": "not yet", "by": "Ana"}, "drop", "Dropped: not yet"),
    ],
)
async def test_a_delegated_draft_waits_for_its_review_and_goes_on_with_the_answer(
    kit, sms, answer, step, told
):
    kit.register_channel(AIChannel("writer", provider=MockAIProvider(["Graphs in Rust"])))
    await _room(kit, "editors")
    engine = WorkflowEngine(_review_graph(), handlers=room_handlers(kit))
    runs = RoomRuns()

    await runs.start(engine, {"room_id": "editors", "topic": "graphs"})

    assert (engine.waiting, engine.current_node_id) == (True, "review")
    assert engine.context.get("review.output") == {"room": "editors"}
    assert _texts(sms) == ["Publish 'Graphs in Rust'?"]

    assert await runs.answer("editors", answer) is True

    assert (engine.waiting, engine.current_node_id) == (False, None)
    assert engine.context.get("review.output") == answer
    assert _texts(sms) == ["Publish 'Graphs in Rust'?", told]
    posted = [e for e in await kit.store.list_events("editors") if e.type == "message"]
    assert [e.metadata["workflow"]["node"] for e in posted] == ["review", step]
    assert {e.metadata["workflow"]["run"] for e in posted} == {engine.run_id}
    assert await runs.answer("editors", answer) is False


async def test_an_sms_reply_in_the_room_answers_its_run(kit, sms):
    """The application's inbound hook hands each message a person writes into
    a room to RoomRuns: the reply resumes the run that asked there."""
    await _room(kit, "ops")
    g = Graph(id="refund", name="Refund", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("ask", type="human", config={"text": "Refund {{trigger.amount}} EUR?"}),
        Node(
            "done",
            type="notification",
            config={"text": "Refund {{trigger.amount}}: {{ask.output.text}}"},
        ),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "ask"), Edge("ask", "done"), Edge("done", "end"))
    engine = WorkflowEngine(g, handlers=room_handlers(kit))
    runs = RoomRuns()
    answered = asyncio.Event()

    @kit.hook(
        HookTrigger.AFTER_BROADCAST,
        execution=HookExecution.ASYNC,
        channel_types={ChannelType.SMS},
        directions={EventDirection.INBOUND},
    )
    async def on_reply(event, _context):
        if await runs.answer(event.room_id, {"text": event.content.body}):
            answered.set()

    await runs.start(engine, {"room_id": "ops", "amount": 120})
    assert _texts(sms) == ["Refund 120 EUR?"]

    reply = InboundMessage(channel_id="sms", sender_id=PHONE, content=TextContent(body="approved"))
    await kit.process_inbound(reply, room_id="ops")
    await asyncio.wait_for(answered.wait(), timeout=10)

    assert engine.current_node_id is None
    assert engine.context.get("ask.output.text") == "approved"
    stored = [
        (e.source.channel_type, e.content.body)
        for e in await kit.store.list_events("ops")
        if e.type == "message"
    ]
    assert stored == [
        (ChannelType.HOST, "Refund 120 EUR?"),
        (ChannelType.SMS, "approved"),
        (ChannelType.HOST, "Refund 120: approved"),
    ]
    # Posted from the room's own work (the hook), the SMS goes out after the post.
    await _until(lambda: len(sms.sent) == 2)
    assert _texts(sms) == ["Refund 120 EUR?", "Refund 120: approved"]


async def test_runs_wait_apart_by_room_and_a_room_without_one_is_not_answered(kit, sms):
    await _room(kit, "alpha")
    await _room(kit, "beta")
    g = Graph(id="ask", name="Ask", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("ask", type="human", config={"text": "{{trigger.room_id}}?"}),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "ask"), Edge("ask", "end"))
    runs = RoomRuns()
    in_alpha = WorkflowEngine(g, handlers=room_handlers(kit))
    in_beta = WorkflowEngine(g, handlers=room_handlers(kit))
    await runs.start(in_alpha, {"room_id": "alpha"})
    await runs.start(in_beta, {"room_id": "beta"})

    assert await runs.answer("gamma", {"text": "?"}) is False
    assert await runs.answer("beta", {"text": "b"}) is True

    assert (in_alpha.waiting, in_beta.current_node_id) == (True, None)
    assert in_beta.context.get("ask.output") == {"text": "b"}
    assert await runs.answer("alpha", {"text": "a"}) is True
    assert in_alpha.current_node_id is None
    assert _texts(sms) == ["alpha?", "beta?"]


async def test_a_run_resumed_by_other_means_is_let_go_and_the_next_one_answered(kit, sms):
    await _room(kit, "desk")
    g = Graph(id="ask", name="Ask", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("ask", type="human", config={"text": "Case {{trigger.case}}?"}),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "ask"), Edge("ask", "end"))
    runs = RoomRuns()
    first = WorkflowEngine(g, handlers=room_handlers(kit))
    second = WorkflowEngine(g, handlers=room_handlers(kit))
    await runs.start(first, {"room_id": "desk", "case": "A"})
    await runs.start(second, {"room_id": "desk", "case": "B"})
    await first.resume("ask", {"text": "from the web page"})
    while await first.step():
        pass

    assert await runs.answer("desk", {"text": "by SMS"}) is True

    assert first.context.get("ask.output.text") == "from the web page"
    assert (second.current_node_id, second.context.get("ask.output.text")) == (None, "by SMS")
    assert await runs.answer("desk", {"text": "late"}) is False


async def test_a_run_that_asks_again_elsewhere_waits_in_the_new_room(kit, sms):
    await _room(kit, "support")
    await _room(kit, "finance")
    g = Graph(id="refund", name="Refund", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("check", type="human", config={"text": "Is the order late?"}),
        Node(
            "pay",
            type="human",
            config={"room": "{{trigger.finance}}", "text": "Pay back {{trigger.amount}}?"},
        ),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "check"), Edge("check", "pay"), Edge("pay", "end"))
    engine = WorkflowEngine(g, handlers=room_handlers(kit))
    runs = RoomRuns()

    await runs.start(engine, {"room_id": "support", "finance": "finance", "amount": 40})
    assert await runs.answer("support", {"text": "yes"}) is True

    assert (engine.waiting, engine.current_node_id) == (True, "pay")
    assert await runs.answer("support", {"text": "yes"}) is False
    assert await runs.answer("finance", {"text": "ok"}) is True
    assert engine.current_node_id is None
    assert _texts(sms) == ["Is the order late?", "Pay back 40?"]


class _Hold(NodeHandler):
    """Pauses the run without naming a room."""

    async def execute(self, node, context, engine):
        return NodeResult(output=None, status="waiting")


async def test_room_runs_refuses_a_run_paused_without_a_room(kit):
    g = Graph(id="hold", name="Hold", trigger=ManualTrigger())
    g.add_nodes(Node("start", type="start"), Node("hold", type="hold"), Node("end", type="end"))
    g.add_edges(Edge("start", "hold"), Edge("hold", "end"))
    engine = WorkflowEngine(g, handlers={**room_handlers(kit), "hold": _Hold()})

    with pytest.raises(ValueError, match="'hold', whose output names no room"):
        await RoomRuns().start(engine, {"room_id": "anywhere"})

    assert engine.waiting is True


@pytest.mark.parametrize("kind", ["notification", "human"])
async def test_a_message_node_without_text_fails_and_sends_nothing(kit, sms, kind):
    await _room(kit, "ops")
    g = Graph(id="tell", name="Tell", trigger=ManualTrigger())
    g.add_nodes(Node("start", type="start"), Node("tell", type=kind), Node("end", type="end"))
    g.add_edges(Edge("start", "tell"), Edge("tell", "end"))

    with pytest.raises(ExecutionError, match=f"{kind} node 'tell' needs the setting 'text'"):
        await WorkflowEngine(g, handlers=room_handlers(kit)).run({"room_id": "ops"})

    assert sms.sent == []
