"""Interruptions of the engine from Python: a handler's BaseException that is
no failure of its node (a cancellation, KeyboardInterrupt...) ends the call
as it is, never retried nor routed; a stream's next event is cancelled with
its handler; a stream refuses a second __anext__ or aclose while one runs."""

import asyncio

import pytest

from roomkit_graph import (
    Condition,
    Edge,
    Graph,
    ManualTrigger,
    Node,
    NodeHandler,
    NodeResult,
    WorkflowEngine,
)

from graphs import chain


def routed() -> Graph:
    """start -> call -> end, call retried up to 3 times and routed to
    fallback on failure."""
    g = Graph(id="g", name="G", trigger=ManualTrigger())
    retry = {"retry": {"max_attempts": 3, "backoff": "1ms"}}
    g.add_nodes(
        Node("start", type="start"),
        Node("call", type="call", config=retry),
        Node("fallback", type="log"),
        Node("end", type="end"),
    )
    g.add_edges(
        Edge("start", "call"),
        Edge("call", "end"),
        Edge("call", "fallback", condition=Condition.from_dict({"type": "error"})),
        Edge("fallback", "end"),
    )
    return g


class Raises(NodeHandler):
    """Raises the same exception at each call, after a step on the loop."""

    def __init__(self, error: BaseException):
        self.error = error
        self.calls = 0

    async def execute(self, node, context, engine):
        self.calls += 1
        await asyncio.sleep(0)
        raise self.error


@pytest.mark.parametrize(
    "kind", [asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit]
)
async def test_a_base_exception_from_a_handler_is_raised_as_it_is_never_retried_nor_routed(kind):
    # Awaited in this task, not a task of its own: asyncio lets KeyboardInterrupt
    # and SystemExit out of a task to the loop.
    handler = Raises(kind("stop"))
    engine = WorkflowEngine(routed(), handlers={"call": handler})
    with pytest.raises(kind) as raised:
        await engine.run()
    assert raised.value is handler.error
    assert handler.calls == 1
    assert engine.current_node_id == "call"
    assert engine.context.get("fallback") is None
    assert engine.context.get("call") is None


async def test_an_exception_from_the_same_handler_is_still_routed():
    handler = Raises(RuntimeError("down"))
    engine = WorkflowEngine(routed(), handlers={"call": handler})
    ctx = await asyncio.wait_for(engine.run(), 10)
    assert handler.calls == 1
    assert ctx.get("fallback") is not None
    assert engine.current_node_id is None


class Blocks(NodeHandler):
    """Steps once on the loop, then waits on an event nobody sets; notes
    each call and how it ended."""

    def __init__(self):
        self.started = asyncio.Event()
        self.calls = 0
        self.ended: list[str] = []

    async def execute(self, node, context, engine):
        self.calls += 1
        try:
            await asyncio.sleep(0)
            self.started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        return NodeResult(output={})


async def test_cancelling_a_run_whose_node_has_an_error_edge_and_retries_cancels_it():
    handler = Blocks()
    engine = WorkflowEngine(routed(), handlers={"call": handler})
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(handler.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert handler.ended == ["cancelled"]
    assert handler.calls == 1
    assert engine.current_node_id == "call"
    assert engine.context.get("fallback") is None


async def test_cancelling_a_task_awaiting_a_streams_next_event_cancels_the_handler():
    handler = Blocks()
    # The start node's own handler: the initial values event is still queued
    # when the handler's first step on the loop goes to the task, so the
    # cancellation must reach the handler, not be answered with that event.
    engine = WorkflowEngine(chain(), handlers={"start": handler})
    stream = engine.stream(modes=("values",))
    task = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    assert handler.calls == 1 and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert handler.ended == ["cancelled"]
    assert engine.current_node_id == "start"


async def test_a_handler_reading_its_own_stream_is_refused_not_deadlocked():
    seen: list[str] = []

    class ReadsItsStream(NodeHandler):
        stream = None

        async def execute(self, node, context, engine):
            for method in (lambda: anext(self.stream), self.stream.aclose):
                try:
                    await method()
                except RuntimeError as error:
                    seen.append(str(error))
            return NodeResult(output={"read": len(seen)})

    handler = ReadsItsStream()
    engine = WorkflowEngine(chain(Node("r", type="reader")), handlers={"reader": handler})
    handler.stream = engine.stream(modes=("updates",))
    events = [event async for event in handler.stream]
    assert seen == [
        "anext(): asynchronous generator is already running",
        "aclose(): asynchronous generator is already running",
    ]
    assert {"r": {"output": {"read": 2}}} in [e["payload"] for e in events]


async def test_a_second_task_reading_a_stream_while_one_waits_is_refused():
    release = asyncio.Event()

    class Waits(NodeHandler):
        def __init__(self):
            self.started = asyncio.Event()

        async def execute(self, node, context, engine):
            self.started.set()
            await release.wait()
            return NodeResult(output={"released": True})

    handler = Waits()
    engine = WorkflowEngine(chain(Node("w", type="waits")), handlers={"waits": handler})
    stream = engine.stream(modes=("updates",))
    assert (await asyncio.wait_for(anext(stream), 10))["node_id"] == "start"
    reader = asyncio.create_task(anext(stream))
    await asyncio.wait_for(handler.started.wait(), 10)
    with pytest.raises(RuntimeError, match=r"^anext\(\): asynchronous generator is already running$"):
        await asyncio.wait_for(anext(stream), 10)
    with pytest.raises(RuntimeError, match=r"^aclose\(\): asynchronous generator is already running$"):
        await asyncio.wait_for(stream.aclose(), 10)
    release.set()
    event = await asyncio.wait_for(reader, 10)
    assert event["payload"] == {"w": {"output": {"released": True}}}
    await asyncio.wait_for(stream.aclose(), 10)
