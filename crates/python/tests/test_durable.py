"""roomkit_graph.durable on a real SQLite file: runs started, answered,
cancelled, listed and followed; Python handlers and functions for their
nodes; parallel waits, error routes and the step limit; refusals."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from roomkit_graph import FunctionRegistry, Node, NodeResult, WorkflowContext
from roomkit_graph.durable import (
    AnswerRefusedError,
    DurableError,
    NotWaitingError,
    Run,
    RunFinishedError,
    RunNotFoundError,
    Runner,
)
from roomkit_graph.errors import GraphError, GraphValidationError

#: Every wait of these tests is bounded by this many seconds.
BOUND = 30


def bounded(awaitable):
    return asyncio.wait_for(awaitable, BOUND)


def graph(graph_id: str, nodes: list[dict], edges: list[tuple], **extra: Any) -> dict:
    """A graph from start -> ... with `edges` as (source, target[, condition])."""
    return {
        "id": graph_id,
        "name": graph_id,
        "trigger": {"type": "manual"},
        "nodes": [{"id": "start", "type": "start"}, *nodes, {"id": "end", "type": "end"}],
        "edges": [
            {"source": s, "target": t, **({"condition": c[0]} if c else {})} for s, t, *c in edges
        ],
        **extra,
    }


REVIEW = graph(
    "review",
    [
        {
            "id": "review",
            "type": "human",
            "config": {"prompt": "Ship {{trigger.title}}?", "actions": ["approve", "reject"]},
        }
    ],
    [("start", "review"), ("review", "end")],
)


@pytest.fixture
async def open_runner(tmp_path):
    """Opens runners on one SQLite file; closes them all at the end."""
    opened: list[Runner] = []

    async def open_(**options: Any) -> Runner:
        runner = await Runner.open(tmp_path / "runs.db", **options)
        opened.append(runner)
        return runner

    yield open_
    for runner in opened:
        await runner.close()


async def test_a_run_waits_for_an_answer_then_completes(open_runner):
    runner = await open_runner()
    assert await runner.save_graph(REVIEW) == 1
    run_id = await runner.start("review", {"title": "v2"})

    run = await bounded(runner.wait(run_id))
    assert isinstance(run, Run)
    assert (run.status, run.waiting_on, run.current_node, run.is_over) == ("waiting", ["review"], "review", False)
    assert run.context["start"] == {"output": {"input": {"title": "v2"}}}
    assert repr(run) == (
        f"Run(run_id='{run_id}', graph_id='review', graph_version=1, status='waiting', waiting_on=['review'])"
    )

    await runner.answer(run_id, {"action": "approve"}, by="ada")
    run = await bounded(runner.wait(run_id))
    assert (run.status, run.waiting_on, run.error, run.is_over) == ("completed", [], None, True)
    assert run.context["review"] == {"output": {"action": "approve"}}
    assert run.to_dict()["status"] == "completed" and run.to_dict()["context"] == run.context

    events = [event async for event in runner.transcript(run_id)]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    waiting = next(event for event in events if event["type"] == "node_waiting")
    assert (waiting["prompt"], waiting["actions"]) == ("Ship v2?", ["approve", "reject"])
    answered = next(event for event in events if event["type"] == "answer_received")
    assert (answered["by"], answered["data"]) == ("ada", {"action": "approve"})
    assert events[-1]["type"] == "run_completed"
    # A graph saved again is its next version; an earlier one can still be run.
    assert await runner.save_graph(REVIEW) == 2
    assert (await runner.run(await runner.start("review", {"title": "v1"}))).graph_version == 2
    assert (await runner.run(await runner.start("review", {"title": "v1"}, version=1))).graph_version == 1
    with pytest.raises(RunNotFoundError):
        await runner.start("review", version=3)


async def test_a_transcript_is_followed_live_until_the_run_is_over(open_runner):
    runner = await open_runner()
    await runner.save_graph(REVIEW)
    run_id = await runner.start("review", {"title": "v3"})
    seen: list[dict] = []
    answered = asyncio.Event()

    async def follow():
        async for event in runner.transcript(run_id, follow=True):
            seen.append(event)
            if event["type"] == "node_waiting":
                answered.set()

    follower = asyncio.create_task(follow())
    await bounded(answered.wait())
    # The follower is still on: it takes what comes next as it is committed.
    assert not follower.done()
    await runner.answer(run_id, {"action": "reject"})
    await bounded(follower)
    kinds = [event["type"] for event in seen]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed"
    assert kinds.index("node_waiting") < kinds.index("answer_received")
    assert [event["seq"] for event in seen] == list(range(1, len(seen) + 1))
    # Followed from a position, it gives what comes after it only.
    after = [event["seq"] async for event in runner.transcript(run_id, follow=True, after=len(seen) - 2)]
    assert after == [len(seen) - 1, len(seen)]


async def test_closing_a_transcript_ends_the_wait_for_its_next_event(open_runner):
    runner = await open_runner()
    await runner.save_graph(REVIEW)
    run_id = await runner.start("review")
    await bounded(runner.wait(run_id))
    transcript = runner.transcript(run_id, follow=True)
    while (await bounded(transcript.__anext__()))["type"] != "node_waiting":
        pass
    # Nothing more comes while the run waits: the next event is awaited.
    pending = asyncio.ensure_future(transcript.__anext__())
    await asyncio.sleep(0.05)
    assert not pending.done()
    await bounded(transcript.aclose())
    with pytest.raises(StopAsyncIteration):
        await bounded(pending)
    with pytest.raises(StopAsyncIteration):
        await bounded(transcript.__anext__())


async def test_a_runner_let_go_without_close_stops_driving_its_runs(tmp_path):
    gate, later = asyncio.Event(), []

    class Gate:
        async def execute(self, node, context, engine):
            await gate.wait()
            return {"by": "first"}

    class Later:
        def __init__(self, by: str) -> None:
            self.by = by

        async def execute(self, node, context, engine):
            later.append(self.by)
            if self.by == "first":
                await asyncio.Event().wait()
            return {"by": self.by}

    chain = graph(
        "chain",
        [{"id": "gate", "type": "gate"}, {"id": "later", "type": "later"}],
        [("start", "gate"), ("gate", "later"), ("later", "end")],
    )
    first = await Runner.open(tmp_path / "runs.db", handlers={"gate": Gate(), "later": Later("first")}, recover_every=None)
    await first.save_graph(chain)
    run_id = await first.start("chain")
    del first
    gc.collect()
    # Its step in progress ends and is committed; the run is let go then.
    gate.set()
    async with Runner.open(
        tmp_path / "runs.db", handlers={"gate": Gate(), "later": Later("second")}, recover_every=None
    ) as second:

        async def take_over() -> None:
            while await second.recover() == 0:
                await asyncio.sleep(0.02)

        await bounded(take_over())
        run = await bounded(second.wait(run_id))
    assert run.status == "completed"
    assert (run.context["gate"]["output"], run.context["later"]["output"]) == ({"by": "first"}, {"by": "second"})
    assert later == ["second"]


async def test_runs_are_cancelled_and_listed(open_runner):
    runner = await open_runner()
    await runner.save_graph(REVIEW)
    first = await runner.start("review", {"title": "a"})
    second = await runner.start("review", {"title": "b"})
    await bounded(runner.wait(first))
    await bounded(runner.wait(second))

    await runner.cancel(first, "not needed")
    assert (await runner.run(first)).status == "cancelled"
    events = [event async for event in runner.transcript(first)]
    assert events[-1] == {**events[-1], "type": "run_cancelled", "reason": "not needed"}

    assert [run.run_id for run in await runner.runs()] == [second, first]
    assert [run.run_id for run in await runner.runs(status="cancelled")] == [first]
    assert [run.run_id for run in await runner.runs(status="waiting", graph="review")] == [second]
    assert await runner.runs(graph="other") == []
    assert len(await runner.runs(limit=1)) == 1
    assert all(run.context is None for run in await runner.runs())
    with pytest.raises(ValueError, match='status "paused" is not one of running, queued, waiting'):
        await runner.runs(status="paused")


async def test_refusals_are_exceptions_that_say_why_and_change_nothing(open_runner):
    runner = await open_runner()
    await runner.save_graph(REVIEW)
    run_id = await runner.start("review", {"title": "x"})
    await bounded(runner.wait(run_id))

    with pytest.raises(AnswerRefusedError, match='action "ship" is not one of approve, reject'):
        await runner.answer(run_id, {"action": "ship"})
    with pytest.raises(NotWaitingError, match=f"run {run_id} is not waiting on \"end\""):
        await runner.answer(run_id, {"action": "approve"}, node="end")
    assert (await runner.run(run_id)).waiting_on == ["review"]

    await runner.answer(run_id, {"action": "approve"})
    await bounded(runner.wait(run_id))
    with pytest.raises(NotWaitingError, match=f"run {run_id} waits for no answer: it is completed"):
        await runner.answer(run_id, {"action": "approve"})
    with pytest.raises(RunFinishedError, match=f"run {run_id} is already completed"):
        await runner.cancel(run_id)

    with pytest.raises(RunNotFoundError) as missing:
        await runner.run("no-such-run")
    assert isinstance(missing.value, LookupError) and isinstance(missing.value, DurableError)
    with pytest.raises(RunNotFoundError):
        await runner.start("no-such-graph")

    broken = graph("broken", [{"id": "lost", "type": "log"}], [("start", "end")])
    with pytest.raises(GraphValidationError, match="lost"):
        await runner.save_graph(broken)
    with pytest.raises(RunNotFoundError):
        await runner.start("broken")
    with pytest.raises(TypeError, match="a graph is a Graph, a dict or JSON text, not a int"):
        await runner.save_graph(3)
    with pytest.raises(TypeError, match="not JSON"):
        await runner.start("review", {"when": object()})


async def test_opening_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(ValueError, match="mysql:// is not a database this build opens"):
        await Runner.open("mysql://app:secret@host/db")
    with pytest.raises(ValueError, match="lease is a number of seconds, at least 0.05"):
        await Runner.open(tmp_path / "r.db", lease=0)
    with pytest.raises(TypeError, match='node type "shout" is a int, which cannot execute nodes'):
        await Runner.open(tmp_path / "r.db", handlers={"shout": 3})
    with pytest.raises(TypeError, match="functions is a FunctionRegistry or a dict"):
        await Runner.open(tmp_path / "r.db", functions=[1])
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("hello, this is not SQLite" * 100)
    with pytest.raises(GraphError, match="is not a roomkit-graph database"):
        await Runner.open(not_a_database)


async def test_a_worker_id_is_taken_back_by_the_next_runner_of_it(tmp_path):
    async with Runner.open(tmp_path / "runs.db", worker="w1") as runner:
        assert runner.owner == "w1"
    # Closed, its id is free at once.
    async with Runner.open(tmp_path / "runs.db", worker="w1") as again:
        assert again.owner == "w1"
    with pytest.raises(ValueError, match="worker"):
        await Runner.open(tmp_path / "runs.db", worker="two words")


async def test_a_closed_runner_refuses_requests(tmp_path):
    async with Runner.open(f"sqlite://{tmp_path / 'runs.db'}") as runner:
        assert not runner.closed and runner.lease == 30.0
        await runner.save_graph(REVIEW)
    assert runner.closed
    with pytest.raises(DurableError, match="this runner is closed"):
        await runner.start("review")
    # It stored what it was given: another runner on the file sees it.
    async with Runner.open(tmp_path / "runs.db") as other:
        run_id = await other.start("review", {"title": "y"})
        assert (await bounded(other.wait(run_id))).status == "waiting"


class Draft:
    """A handler of a custom node type: reads the context, emits, resolves templates."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def execute(self, node, context, engine):
        assert isinstance(node, Node) and isinstance(context, WorkflowContext) and engine.context is context
        assert engine.graph.id == "writing" and engine.graph.get_node(node.id).type == "draft"
        self.calls.append((node.id, engine.run_id, engine.attempt, asyncio.get_running_loop()))
        await asyncio.sleep(0)
        engine.emit({"drafting": context.get("trigger.topic")})
        text = engine.template_resolver.resolve(node.config["text"])
        return NodeResult(output={"text": text, "key": engine.idempotency_key, "seen": sorted(context.to_dict())})


class Approve:
    """Waits for an answer, asking what its metadata says."""

    async def execute(self, node, context, engine):
        return NodeResult(status="waiting", metadata={"prompt": f"Approve {context.get('steps.draft.text')}?"})


async def test_python_handlers_and_functions_run_the_nodes_of_their_types(open_runner):
    draft = Draft()

    functions = FunctionRegistry()

    @functions.function("count")
    def count(context, config):
        return {"words": len(context.get("draft.output.text").split()), "unit": config["unit"]}

    @functions.function("shout")
    async def shout(context, config):
        await asyncio.sleep(0.01)
        return {"loud": f"{context.get('input.words')}!"}

    runner = await open_runner(handlers={"draft": draft, "approve": Approve()}, functions=functions)
    nodes = [
        {"id": "draft", "type": "draft", "config": {"text": "About {{trigger.topic}} today"}},
        {"id": "count", "type": "function", "config": {"action": "custom", "function": "count", "unit": "w"}},
        {"id": "shout", "type": "function", "config": {"action": "custom", "function": "shout"}},
        {"id": "ok", "type": "approve", "config": {"actions": ["yes", "no"]}},
        {"id": "note", "type": "function", "config": {"action": "set_context", "values": {"done": True}}},
    ]
    path = ["start", "draft", "count", "shout", "ok", "note", "end"]
    edges = list(zip(path, path[1:]))
    await runner.save_graph(graph("writing", nodes, edges))
    run_id = await runner.start("writing", {"topic": "rust"})

    run = await bounded(runner.wait(run_id))
    assert run.waiting_on == ["ok"], run
    output = run.context["draft"]["output"]
    assert output == {"text": "About rust today", "key": f"{run_id}/draft/1", "seen": ["start"]}
    assert run.context["count"]["output"] == {"words": 3, "unit": "w"}
    # Its input is what the node before it output.
    assert run.context["shout"]["output"] == {"loud": "3!"}
    # The handler ran once, on this test's loop.
    assert [(node, run, attempt) for node, run, attempt, _ in draft.calls] == [("draft", run_id, 1)]
    assert draft.calls[0][3] is asyncio.get_running_loop()

    events = [event async for event in runner.transcript(run_id)]
    assert {"type": "custom", "node_id": "draft", "payload": {"drafting": "rust"}}.items() <= next(
        event for event in events if event["type"] == "custom"
    ).items()
    asked = next(event for event in events if event["type"] == "node_waiting")
    assert (asked["prompt"], asked["actions"]) == ("Approve About rust today?", ["yes", "no"])

    with pytest.raises(AnswerRefusedError, match='action "maybe" is not one of yes, no'):
        await runner.answer(run_id, {"action": "maybe"})
    await runner.answer(run_id, {"action": "yes"})
    run = await bounded(runner.wait(run_id))
    assert run.status == "completed"
    assert run.context["note"]["output"] == {"done": True}


async def test_a_failing_handler_fails_its_run_with_its_exception(open_runner):
    class Broken:
        async def execute(self, node, context, engine):
            raise RuntimeError("the printer is on fire")

    def lost(context, config):
        raise KeyError("ink")

    runner = await open_runner(handlers={"print": Broken()}, functions={"lost": lost})
    await runner.save_graph(graph("printing", [{"id": "p", "type": "print"}], [("start", "p"), ("p", "end")]))
    failed = await bounded(runner.wait(await runner.start("printing")))
    assert failed.status == "failed"
    assert "RuntimeError: the printer is on fire" in failed.error

    nodes = [{"id": "f", "type": "function", "config": {"action": "custom", "function": "lost"}}]
    await runner.save_graph(graph("lost", nodes, [("start", "f"), ("f", "end")]))
    failed = await bounded(runner.wait(await runner.start("lost")))
    assert "function \"lost\" failed: KeyError: 'ink'" in failed.error
    # A name the registry lacks is the built-in's refusal.
    nodes = [{"id": "f", "type": "function", "config": {"action": "custom", "function": "nobody"}}]
    await runner.save_graph(graph("nobody", nodes, [("start", "f"), ("f", "end")]))
    failed = await bounded(runner.wait(await runner.start("nobody")))
    assert failed.status == "failed" and "nobody" in failed.error


async def test_cancelling_a_run_cancels_its_python_step(open_runner):
    started, stopped = asyncio.Event(), asyncio.Event()

    class Forever:
        async def execute(self, node, context, engine):
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                stopped.set()
                raise

    runner = await open_runner(handlers={"forever": Forever()})
    await runner.save_graph(graph("stuck", [{"id": "f", "type": "forever"}], [("start", "f"), ("f", "end")]))
    run_id = await runner.start("stuck")
    await bounded(started.wait())
    await runner.cancel(run_id, "too slow")
    await bounded(stopped.wait())
    run = await runner.run(run_id)
    assert (run.status, run.steps) == ("cancelled", 1)


async def test_a_python_exception_is_retried_as_the_node_says(open_runner):
    class Shaky:
        async def execute(self, node, context, engine):
            if engine.attempt == 1:
                raise ConnectionError("the service hung up")
            return {"attempt": engine.attempt}

    runner = await open_runner(handlers={"shaky": Shaky()})
    nodes = [{"id": "call", "type": "shaky", "config": {"retry": {"max_attempts": 2, "backoff": "10ms"}}}]
    await runner.save_graph(graph("shaky", nodes, [("start", "call"), ("call", "end")]))
    run_id = await runner.start("shaky")
    run = await bounded(runner.wait(run_id))
    assert run.status == "completed", run
    assert run.context["call"]["output"] == {"attempt": 2}
    failed = [event async for event in runner.transcript(run_id) if event["type"] == "node_failed"]
    error = 'node "call" failed: ConnectionError: the service hung up'
    assert [(event["attempt"], event["error"]) for event in failed] == [(1, error)]


async def test_an_error_edge_takes_a_failed_python_node_on(open_runner):
    class Flaky:
        async def execute(self, node, context, engine):
            return NodeResult(status="failed", error="the API said no", output={"tried": 1})

    runner = await open_runner(handlers={"flaky": Flaky()})
    nodes = [
        {"id": "call", "type": "flaky"},
        {"id": "fallback", "type": "function", "config": {"action": "set_context", "values": {"plan": "b"}}},
    ]
    edges = [("start", "call"), ("call", "end"), ("call", "fallback", {"type": "error"}), ("fallback", "end")]
    await runner.save_graph(graph("routed", nodes, edges))
    run = await bounded(runner.wait(await runner.start("routed")))
    assert run.status == "completed", run
    assert run.context["call"]["output"] == {"tried": 1}
    assert run.context["call"]["error"]["message"] == "the API said no"
    assert run.context["fallback"]["output"] == {"plan": "b"}


async def test_parallel_children_wait_each_for_their_answer(open_runner):
    runner = await open_runner()
    nodes = [
        {"id": "checks", "type": "parallel"},
        {"id": "legal", "type": "human", "parent": "checks", "config": {"actions": ["ok"]}},
        {"id": "security", "type": "human", "parent": "checks", "config": {"actions": ["ok"]}},
    ]
    await runner.save_graph(graph("checks", nodes, [("start", "checks"), ("checks", "end")]))
    run_id = await runner.start("checks")
    assert (await bounded(runner.wait(run_id))).waiting_on == ["legal", "security"]
    with pytest.raises(ValueError, match="waits on legal, security: name the node answered"):
        await runner.answer(run_id, {"action": "ok"})

    await runner.answer(run_id, {"action": "ok"}, node="security")
    run = await bounded(runner.wait(run_id))
    assert (run.status, run.waiting_on) == ("waiting", ["legal"])
    # One node left: the answer need not name it.
    await runner.answer(run_id, {"action": "ok"})
    run = await bounded(runner.wait(run_id))
    assert run.status == "completed"
    assert run.context["checks"]["output"] == {"legal": {"action": "ok"}, "security": {"action": "ok"}}


async def test_the_step_limit_stops_a_run(open_runner):
    runner = await open_runner(max_steps=50)
    steps = [{"id": f"s{i}", "type": "log"} for i in range(5)]
    path = ["start", *[step["id"] for step in steps], "end"]
    await runner.save_graph(graph("long", steps, list(zip(path, path[1:])), max_steps=3))
    run = await bounded(runner.wait(await runner.start("long")))
    assert (run.status, run.steps, run.current_node) == ("failed", 3, "s2")
    assert "3" in run.error and "step" in run.error


def test_the_type_stubs_name_what_the_classes_have():
    import ast
    from pathlib import Path

    import roomkit_graph.durable as durable

    stub = ast.parse(Path(durable.__file__).with_suffix(".pyi").read_text())
    classes = [node for node in stub.body if isinstance(node, ast.ClassDef) and hasattr(durable, node.name)]
    assert {c.name for c in classes} >= {"Runner", "Run", "Step", "Transcript", "Opening", "TranscriptEvent"}
    for cls in classes:
        for member in cls.body:
            if isinstance(member, ast.FunctionDef) and cls.name != "TranscriptEvent":
                assert hasattr(getattr(durable, cls.name), member.name), f"{cls.name}.{member.name}"
    assert set(durable.__all__) <= {*dir(durable)}
