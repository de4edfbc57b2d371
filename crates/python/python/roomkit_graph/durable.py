"""Durable runs on SQLite or PostgreSQL.

A :class:`Runner` runs stored graphs so that they outlive the process that
drives them: every step is committed to the database before the next begins,
a run that waits for a person holds no task and no memory, and a run whose
process died is taken over by another runner on the same database.

.. code-block:: python

    from roomkit_graph.durable import Runner

    async with Runner.open("runs.db", handlers={"agent": MyAgent()}) as runner:
        await runner.save_graph(graph)
        run_id = await runner.start("bug-triage", {"title": "DB down"})
        run = await runner.wait(run_id)          # waits for a person, or is over
        if run.status == "waiting":
            await runner.answer(run_id, {"action": "approve"})
        async for event in runner.transcript(run_id, follow=True):
            print(event["seq"], event["type"])

Handlers are the same ``NodeHandler`` objects ``WorkflowEngine`` takes
(``async def execute(node, context, engine)`` returning a ``NodeResult``, a
dict output or None), and functions the same ``f(context, config)``, sync or
async; they are awaited on the asyncio loop the runner was opened on. A
handler gets a ``Node``, the run's ``WorkflowContext`` as the step began (its
``input`` scope set) and a :class:`Step` as ``engine``: ``run_id``,
``graph``, ``node_id``, ``attempt``, ``idempotency_key``, ``context``,
``template_resolver`` and ``emit(payload)`` (a custom transcript entry). The
node's output is what the handler returns: writes to the context are not
kept. A step whose process dies before it is committed runs again in the
process that takes the run over: make outside effects idempotent with
``engine.idempotency_key``. RoomKit's handlers (``room_handlers(kit)`` of
``roomkit_graph.roomkit``) run agent, human and notification nodes of
durable runs as they are: a human node's question goes to its room and the
answer comes back through :meth:`Runner.answer`.

Refusals raise :class:`~roomkit_graph.errors.DurableError` subclasses with
the reason in plain words; an invalid graph raises
:class:`~roomkit_graph.errors.GraphValidationError`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from roomkit_graph._core import Opening, Run, Runner, Step, Transcript
from roomkit_graph.errors import (
    AnswerRefusedError,
    DurableError,
    NotWaitingError,
    RunFinishedError,
    RunNotFoundError,
    StoreError,
    WorkerTakenError,
)

__all__ = [
    "AnswerRefusedError",
    "DurableError",
    "NotWaitingError",
    "Opening",
    "Run",
    "RunFinishedError",
    "RunNotFoundError",
    "RunStatus",
    "Runner",
    "Step",
    "StoreError",
    "Transcript",
    "TranscriptEvent",
    "WorkerTakenError",
]

#: Where a run stands (``Run.status``).
RunStatus = Literal["running", "queued", "waiting", "completed", "failed", "cancelled"]


class TranscriptEvent(TypedDict, total=False):
    """One event of a run's transcript, as ``roomkit-graph show --json`` prints
    it: ``run_id``, ``seq`` (1, 2, 3... with no gap), ``at`` (milliseconds
    since the epoch) and ``type``, then the fields of that type (``node_id``,
    ``output``, ``prompt``, ``actions``, ``data``, ``payload``, ``error``...)."""

    run_id: str
    seq: int
    at: int
    type: str
    node_id: str


async def _execute(handler: Any, node: Any, context: Any, step: Step, call: Any) -> Any:
    """Executes ``node`` with the application's ``handler`` on the runner's loop
    (``call`` cancels it when the run stops waiting for it)."""
    call.running(asyncio.current_task())
    execute = getattr(handler, "execute", handler)
    return await _awaited(execute(node, context, step))


async def _call_function(functions: Any, name: str, context: Any, config: dict, call: Any) -> tuple[bool, Any]:
    """Calls the registered function ``name``: ``(False, None)`` when there is none."""
    call.running(asyncio.current_task())
    if isinstance(functions, Mapping):
        function = functions.get(name)
    else:
        function = functions.get(name) if functions.has(name) else None
    if function is None:
        return False, None
    return True, await _awaited(function(context, config))


async def _awaited(result: Any) -> Any:
    """What a sync or async callable returned, awaited when it is awaitable."""
    if inspect.isawaitable(result):
        return await result
    return result
