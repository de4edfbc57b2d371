"""The engine from Python: handlers awaited on the caller's loop and task,
cancellation, context variables, parallel children as tasks, exceptions
raised as they are, and the run's context as a live view."""

import asyncio
import collections.abc
import contextvars
import gc
import logging
import warnings

import pytest

from roomkit_graph import (
    Edge,
    ExecutionError,
    FunctionHandler,
    FunctionRegistry,
    Graph,
    ManualTrigger,
    Node,
    NodeHandler,
    NodeResult,
    WorkflowContext,
    WorkflowEngine,
)

from graphs import chain


class Sleeper(NodeHandler):
    """Awaits a real asyncio sleep, then outputs what it read."""

    async def execute(self, node, context, engine):
        await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        return NodeResult(output={"seen": context.get("trigger.n")})


async def test_a_handler_awaiting_asyncio_sleep_completes_its_step():
    engine = WorkflowEngine(chain(Node("nap", type="nap")), handlers={"nap": Sleeper()})
    ctx = await engine.run({"n": 7})
    assert ctx.get("nap.output.seen") == 7
    assert engine.current_node_id is None


def test_engine_calls_are_coroutines_asyncio_runs():
    engine = WorkflowEngine(chain(Node("nap", type="nap")), handlers={"nap": Sleeper()})
    call = engine.run({"n": 1})
    assert isinstance(call, collections.abc.Coroutine)
    ctx = asyncio.run(call)
    assert ctx.get("steps.nap.seen") == 1


class Blocked(NodeHandler):
    """Waits on an event nobody sets; notes how it ended."""

    def __init__(self):
        self.started = asyncio.Event()
        self.ended: list[str] = []

    async def execute(self, node, context, engine):
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.ended.append("cancelled")
            raise
        finally:
            self.ended.append("finally")
        return NodeResult(output={})


async def test_cancelling_the_task_awaiting_run_cancels_the_handler_and_frees_the_engine():
    handler = Blocked()
    engine = WorkflowEngine(chain(Node("block", type="block")), handlers={"block": handler})
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(handler.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handler.ended == ["cancelled", "finally"]
    # The engine is back: it stays on the node, and takes another call.
    assert engine.current_node_id == "block"
    assert engine.to_dict()["current_node_id"] == "block"


current_user = contextvars.ContextVar("current_user", default="nobody")


class ContextReader(NodeHandler):
    """Reads and sets a context variable across awaits, resetting it after."""

    async def execute(self, node, context, engine):
        before = current_user.get()
        token = current_user.set("handler")
        await asyncio.sleep(0)
        inside = current_user.get()
        current_user.reset(token)
        return NodeResult(output={"before": before, "inside": inside})


async def test_context_variables_are_the_callers_across_awaits():
    current_user.set("ada")
    engine = WorkflowEngine(chain(Node("who", type="who")), handlers={"who": ContextReader()})
    ctx = await engine.run()
    assert ctx.get("who.output") == {"before": "ada", "inside": "handler"}
    assert current_user.get() == "ada"


class Rendezvous(NodeHandler):
    """Each child sets its own event and waits for its sibling's: only
    children that run at once both finish."""

    def __init__(self):
        self.events = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def execute(self, node, context, engine):
        other = "b" if node.id == "a" else "a"
        self.events[node.id].set()
        await self.events[other].wait()
        return NodeResult(output={"met": other})


async def test_parallel_children_with_python_handlers_run_at_once():
    g = Graph(id="par", name="Par", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("both", type="parallel"),
        Node("a", type="meet", parent="both"),
        Node("b", type="meet", parent="both"),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "both"), Edge("both", "end"))
    engine = WorkflowEngine(g, handlers={"meet": Rendezvous()})
    ctx = await asyncio.wait_for(engine.run(), 10)
    assert ctx.get("both.output") == {"a": {"met": "b"}, "b": {"met": "a"}}


class ProviderDown(Exception):
    pass


async def test_an_exception_from_a_handler_propagates_as_it_is():
    error = ProviderDown("the provider is down")

    class Raises(NodeHandler):
        async def execute(self, node, context, engine):
            await asyncio.sleep(0)
            raise error

    engine = WorkflowEngine(chain(Node("call", type="call")), handlers={"call": Raises()})
    with pytest.raises(ProviderDown) as raised:
        await engine.run()
    assert raised.value is error
    assert engine.current_node_id == "call"


async def test_an_exception_from_a_registered_function_propagates_as_it_is():
    registry = FunctionRegistry()

    @registry.function("lookup")
    async def lookup(context, config):
        raise KeyError("no such customer")

    node = Node("f", type="function", config={"action": "custom", "function": "lookup"})
    engine = WorkflowEngine(chain(node), handlers={"function": FunctionHandler(registry)})
    with pytest.raises(KeyError, match="no such customer"):
        await engine.run()


class Counting(NodeHandler):
    """Counts its calls."""

    def __init__(self):
        self.calls = 0

    async def execute(self, node, context, engine):
        self.calls += 1
        return NodeResult(output={"n": context.get("trigger.n")})


async def test_a_call_never_awaited_runs_nothing_and_leaves_the_engine_free():
    handler = Counting()
    engine = WorkflowEngine(chain(Node("c", type="count")), handlers={"count": handler})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.run({"n": 1})  # never awaited
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert handler.calls == 0
    assert engine.current_node_id is None
    ctx = await asyncio.wait_for(engine.run({"n": 2}), 10)
    assert (handler.calls, ctx.get("c.output.n")) == (1, 2)


async def test_cancelled_handlers_leave_no_unawaited_coroutine():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handler = Blocked()
        blocked = WorkflowEngine(chain(Node("block", type="block")), handlers={"block": handler})
        task = asyncio.create_task(blocked.run())
        await asyncio.wait_for(handler.started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()
    assert [str(w.message) for w in caught] == []


class Doubling(FunctionHandler):
    """A function handler that runs the built-in, then doubles what it output."""

    async def execute(self, node, context, engine):
        result = await super().execute(node, context, engine)
        return NodeResult(output={k: v * 2 for k, v in result.output.items()})


async def test_a_subclass_of_a_builtin_handler_runs_it_with_super():
    node = Node("f", type="function", config={"action": "set_context", "values": {"n": 21}})
    ctx = await WorkflowEngine(chain(node), handlers={"function": Doubling()}).run()
    assert ctx.get("f.output.n") == 42


async def test_a_subclass_of_a_builtin_handler_runs_it_with_super_as_a_parallel_child():
    g = Graph(id="par", name="Par", trigger=ManualTrigger())
    g.add_nodes(
        Node("start", type="start"),
        Node("both", type="parallel"),
        Node("a", type="function", parent="both", config={"action": "set_context", "values": {"n": 21}}),
        Node("b", type="function", parent="both", config={"action": "set_context", "values": {"n": 4}}),
        Node("end", type="end"),
    )
    g.add_edges(Edge("start", "both"), Edge("both", "end"))
    ctx = await asyncio.wait_for(WorkflowEngine(g, handlers={"function": Doubling()}).run(), 10)
    assert ctx.get("both.output") == {"a": {"n": 42}, "b": {"n": 8}}


async def test_a_builtin_handlers_execute_outside_an_engine_step_says_where_it_runs():
    node = Node("f", type="function", config={"action": "set_context", "values": {"n": 1}})
    with pytest.raises(RuntimeError, match="runs the node a WorkflowEngine step executes"):
        await asyncio.wait_for(FunctionHandler().execute(node, WorkflowContext(), None), 10)


class Writer(NodeHandler):
    """Writes a note through the context it is given and reads it back."""

    async def execute(self, node, context, engine):
        assert context is engine.context
        context.set("note", {"from": node.id})
        return NodeResult(output={"read_back": context.get("note.output.from")})


async def test_the_context_handlers_get_is_the_engines_live_view():
    given = WorkflowContext()
    engine = WorkflowEngine(chain(Node("w", type="w")), handlers={"w": Writer()}, context=given)
    assert engine.context is given
    await engine.run({"n": 1})
    assert given.get("w.output.read_back") == "w"
    assert given.get("trigger.n") == 1
    engine.context.set("w", {"replaced": True})
    assert engine.to_dict()["context"]["w"] == {"output": {"replaced": True}}


async def test_writes_through_the_context_keep_to_the_runs_limits():
    engine = WorkflowEngine(chain(Node("w", type="w")), handlers={"w": Writer()})
    too_large = "x" * (1 << 20)
    for node_id in ("w", "note"):
        with pytest.raises(ValueError, match="more than the limit of 1048576"):
            engine.context.set(node_id, too_large)
        assert engine.context.get(node_id) is None
    engine.context.set("w", {"small": True})
    assert engine.to_dict()["context"]["w"] == {"output": {"small": True}}


async def test_one_call_at_a_time_on_an_engine():
    handler = Blocked()
    engine = WorkflowEngine(chain(Node("block", type="block")), handlers={"block": handler})
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(handler.started.wait(), 10)
    with pytest.raises(RuntimeError, match="already running"):
        await engine.step()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_chain_of_python_functions_runs_inline_to_the_end():
    registry = FunctionRegistry()

    @registry.function("f")
    async def f(context, config):
        return {"i": config["i"]}

    nodes = [
        Node(f"n{i}", type="function", config={"action": "custom", "function": "f", "i": i})
        for i in range(200)
    ]
    ctx = await WorkflowEngine(chain(*nodes), handlers={"function": FunctionHandler(registry)}).run()
    assert [ctx.get(f"n{i}.output.i") for i in (0, 199)] == [0, 199]


class SleepyEmitter(NodeHandler):
    """Emits around an asyncio sleep, so the stream waits on the loop mid-step."""

    async def execute(self, node, context, engine):
        engine.emit({"at": "before"})
        await asyncio.sleep(0.01)
        engine.emit({"at": "after"})
        return NodeResult(output={"done": True})


async def test_a_stream_waits_on_the_loop_with_its_handler_and_keeps_the_order():
    engine = WorkflowEngine(chain(Node("e", type="emit")), handlers={"emit": SleepyEmitter()})
    events = [e async for e in engine.stream(modes=("lifecycle", "custom", "updates"))]
    at_e = [(e["mode"], e["payload"].get("phase") or e["payload"].get("at")) for e in events if e["node_id"] == "e"]
    assert at_e == [
        ("lifecycle", "start"),
        ("custom", "before"),
        ("custom", "after"),
        ("lifecycle", "complete"),
        ("updates", None),
    ]
    assert [e["seq"] for e in events] == list(range(len(events)))


async def test_a_stream_raises_a_handlers_exception_as_it_is_after_the_steps_events():
    error = ProviderDown("down")

    class Raises(NodeHandler):
        async def execute(self, node, context, engine):
            raise error

    engine = WorkflowEngine(chain(Node("call", type="call")), handlers={"call": Raises()})
    seen = []
    with pytest.raises(ProviderDown) as raised:
        async for event in engine.stream(modes=("lifecycle",)):
            seen.append(event["payload"])
    assert raised.value is error
    assert seen[-1] == {"phase": "complete", "node_id": "call", "status": "failed"}


class Nested(NodeHandler):
    """Runs a whole other workflow, one that sleeps on the loop, inside its step."""

    async def execute(self, node, context, engine):
        inner = WorkflowEngine(chain(Node("nap", type="nap")), handlers={"nap": Sleeper()})
        ctx = await inner.run({"n": context.get("trigger.n")})
        return NodeResult(output={"inner": ctx.get("nap.output.seen")})


async def test_a_handler_may_await_another_engine_that_waits_on_the_loop():
    engine = WorkflowEngine(chain(Node("outer", type="outer")), handlers={"outer": Nested()})
    ctx = await asyncio.wait_for(engine.run({"n": 5}), 10)
    assert ctx.get("outer.output.inner") == 5


async def test_a_nodes_timeout_stops_a_python_handler_that_awaits_too_long():
    handler = Blocked()
    node = Node("block", type="block", config={"timeout": "50ms"})
    engine = WorkflowEngine(chain(node), handlers={"block": handler})
    with pytest.raises(ExecutionError, match="timed out"):
        await asyncio.wait_for(engine.run(), 10)
    assert handler.ended == ["finally"]
    assert engine.current_node_id == "block"


class Records(logging.Handler):
    """Keeps the run log's events."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.events = []

    def emit(self, record):
        self.events.append((record.roomkit_graph["event"], record.roomkit_graph["node"]))


async def test_the_run_log_follows_a_level_a_handler_changes_mid_run():
    logger = logging.getLogger("roomkit_graph")
    records = Records()
    registry = FunctionRegistry()

    @registry.function("louder")
    async def louder(context, config):
        logger.setLevel(logging.INFO)
        return {}

    nodes = [
        Node("quiet", type="function", config={"action": "json_transform", "template": {"a": 1}}),
        Node("switch", type="function", config={"action": "custom", "function": "louder"}),
        Node("heard", type="function", config={"action": "json_transform", "template": {"b": 2}}),
    ]
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(records)
    try:
        await WorkflowEngine(chain(*nodes), handlers={"function": FunctionHandler(registry)}).run()
        # Off when the run started, on from the step after the handler's.
        assert ("node.complete", "quiet") not in records.events
        assert ("node.start", "heard") in records.events
        assert ("node.complete", "heard") in records.events
        assert records.events[-1] == ("run.complete", None)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)


async def test_the_run_log_follows_a_level_changed_between_steps():
    logger = logging.getLogger("roomkit_graph")
    records = Records()
    nodes = [
        Node(f"n{i}", type="function", config={"action": "json_transform", "template": {"i": i}})
        for i in range(2)
    ]
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(records)
    try:
        engine = WorkflowEngine(chain(*nodes))
        await engine.start()
        assert await engine.step()  # start
        assert await engine.step()  # n0, not logged
        logger.setLevel(logging.INFO)
        assert await engine.step()  # n1, logged
        assert [event for event in records.events if event[1] is not None] == [
            ("node.start", "n1"),
            ("node.complete", "n1"),
        ]
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)


async def test_start_keeps_what_the_context_holds_and_sets_the_start_nodes_output():
    ctx = WorkflowContext()
    ctx.set("settings", {"greeting": "hi"})
    greet = Node(
        "greet",
        type="function",
        config={"action": "json_transform", "template": {"said": "{{settings.output.greeting}}"}},
    )
    engine = WorkflowEngine(chain(greet), context=ctx)
    first = await engine.run(trigger_data={"x": 1})
    assert first.get("greet.output") == {"said": "hi"}
    assert first.get("settings.output") == {"greeting": "hi"}
    # A second run on the same engine starts from what the first left.
    ctx.set("settings", {"greeting": "hello"})
    again = await engine.run(trigger_data={"x": 2})
    assert again is first
    assert again.get("start.output") == {"input": {"x": 2}}
    assert again.get("greet.output") == {"said": "hello"}


async def test_a_second_run_keeps_the_contexts_order():
    ctx = WorkflowContext()
    for name in ("e1", "e2", "e3"):
        ctx.set(name, {"n": name})
    engine = WorkflowEngine(chain(), context=ctx)
    await engine.run(trigger_data={"x": 1})
    first = list(ctx.to_dict())
    await engine.run(trigger_data={"x": 2})
    assert list(ctx.to_dict()) == first
    assert [key for key in first if key.startswith("e")] == ["e1", "e2", "e3"]


async def test_start_keeps_a_restored_output_and_refuses_a_context_past_its_limit():
    big = "x" * 2_000_000  # more than an output may be, saved by an earlier process
    state = {"context": {"big": {"output": big}}, "current_node_id": None, "waiting": False}
    engine = WorkflowEngine.from_dict(chain(), state)
    ctx = await engine.run(trigger_data={"x": 1})
    assert ctx.get("big.output") == big

    full = WorkflowEngine(chain())
    for i in range(16):
        full.context.set(f"part{i}", "y" * 1_000_000)
    run_id = full.run_id
    with pytest.raises(ExecutionError, match="trigger data"):
        await full.run(trigger_data={"z": "z" * 900_000})
    assert full.run_id == run_id
    assert full.context.get("part15.output") == "y" * 1_000_000
