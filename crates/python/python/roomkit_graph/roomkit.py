"""Agent, human and notification nodes run with RoomKit rooms.

A workflow run acts in the room its trigger data names (``room_id``), for the
organization it names (``organization_id``), as the description's "How It Maps
to RoomKit" table says:

- an **agent** node delegates its prompt to a RoomKit agent in a child room of
  that room (``kit.delegate``) and outputs the agent's answer;
- a **notification** node posts its text into the room in the application's
  own name (``kit.post``), so the room's transports (SMS, chat...) carry it;
- a **human** node posts its question the same way and pauses the run until
  an answer arrives in that room: :class:`RoomRuns` keeps the paused runs and
  resumes the right one when :meth:`RoomRuns.answer` is given the answer.

::

    kit = RoomKit()
    engine = WorkflowEngine(graph, handlers=room_handlers(kit))
    runs = RoomRuns()
    await runs.start(engine, {"room_id": room.id, "amount": 120})
    ...
    await runs.answer(room.id, {"text": "yes"})  # from the room's inbound message

Node settings (every text may hold ``{{...}}`` templates):

- agent: ``agent`` (the agent's channel id), ``prompt``, ``room`` (default
  ``{{trigger.room_id}}``), ``structured`` (the agent must hand its work back
  through RoomKit's ``submit_result`` tool; the node outputs that payload
  instead of ``{"text": answer}``);
- notification: ``text``, ``room``; outputs ``{"room", "text"}``;
- human: ``text``, ``room``; outputs ``{"room"}`` and waits.

Each agent turn and message is logged on the ``roomkit_graph`` loggers
(``agent.start``, ``agent.done``, ``message.sent``, ``question.sent`` at INFO;
what was asked, answered or written at DEBUG only), which
:func:`roomkit_graph.verbose` prints.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from roomkit import EventFilter, EventType, HookExecution, HookTrigger
from roomkit.models.enums import TaskStatus
from roomkit.realtime import EphemeralEvent, EphemeralEventType

from roomkit_graph import NodeHandler, NodeResult

if TYPE_CHECKING:
    from roomkit import RoomKit

    from roomkit_graph import Node, WorkflowContext, WorkflowEngine

__all__ = ["AgentHandler", "AskHandler", "NotifyHandler", "RoomRuns", "room_handlers"]

_logger = logging.getLogger(__name__)

_FIELDS = "roomkit_graph"
"""The record attribute holding a run record's fields, as the engine's records."""

_DEFAULT_ROOM = "{{trigger.room_id}}"

_TOOL_EVENTS_READ = 1000
"""How many tool calls of one agent turn are read back to name them in its record."""

_FLUSH_WAIT_S = 5.0
"""How long an agent node waits for the live text already published to reach it."""


def room_handlers(kit: RoomKit) -> dict[str, NodeHandler]:
    """The handlers that run agent, notification and human nodes with *kit*.

    Give them to :class:`~roomkit_graph.WorkflowEngine` (merged with any of
    the application's own)::

        WorkflowEngine(graph, handlers=room_handlers(kit))
    """
    return {
        "agent": AgentHandler(kit),
        "notification": NotifyHandler(kit),
        "human": AskHandler(kit),
    }


class RoomRuns:
    """Runs paused on human nodes, by the room each waits for an answer in.

    :meth:`start` runs an engine until it ends or pauses; a run paused on a
    human node (whose output names its room, as :class:`AskHandler`'s does) is
    kept under that room. :meth:`answer` resumes the run of a room that has
    waited longest with the answer and runs it on, until it ends or pauses
    again (then it is kept again, under the room of its new question).
    """

    def __init__(self) -> None:
        self._waiting: dict[str, deque[WorkflowEngine]] = {}

    async def start(
        self, engine: WorkflowEngine, trigger_data: dict[str, Any] | None = None
    ) -> WorkflowContext:
        """Start *engine*'s run with *trigger_data* and run it until it ends or
        pauses; return its context.

        Raises:
            ValueError: the run paused on a node whose output names no room.
        """
        context = await engine.run(trigger_data)
        self._keep(engine)
        return context

    async def answer(self, room_id: str, data: Any) -> bool:
        """Resume, with *data* as its answer, the run that has waited longest
        for an answer in room *room_id*, and run it until it ends or pauses.

        Returns ``False`` when no run waits in that room. A run kept here
        that was resumed by other means meanwhile is let go.
        """
        engine = self._next_waiting(room_id)
        if engine is None:
            return False
        await engine.resume(engine.current_node_id, data)
        while await engine.step():
            pass
        self._keep(engine)
        return True

    def _next_waiting(self, room_id: str) -> WorkflowEngine | None:
        """Take the run that has waited longest in *room_id* and still waits."""
        queue = self._waiting.get(room_id)
        engine = None
        while queue and engine is None:
            candidate = queue.popleft()
            if candidate.waiting:
                engine = candidate
        if queue is not None and not queue:
            del self._waiting[room_id]
        return engine

    def _keep(self, engine: WorkflowEngine) -> None:
        """Keep *engine* under the room it waits in, when it waits."""
        if not engine.waiting:
            return
        node_id = engine.current_node_id
        room = engine.context.get(f"{node_id}.output.room")
        if not isinstance(room, str) or not room:
            msg = (
                f"the run waits on node '{node_id}', whose output names no room: "
                "RoomRuns keeps runs paused by human nodes that ask in a room"
            )
            raise ValueError(msg)
        self._waiting.setdefault(room, deque()).append(engine)


class NotifyHandler(NodeHandler):
    """Posts the node's ``text`` into its ``room`` in the application's name
    (``kit.post``); outputs ``{"room", "text"}``."""

    _event = "message.sent"

    def __init__(self, kit: RoomKit) -> None:
        self.kit = kit

    async def execute(
        self, node: Node, context: WorkflowContext, engine: WorkflowEngine
    ) -> NodeResult:
        room = _setting(node, engine, "room", _DEFAULT_ROOM)
        text = _setting(node, engine, "text")
        if isinstance(room, NodeResult):
            return room
        if isinstance(text, NodeResult):
            return text
        await self.kit.post(
            room,
            text,
            metadata={
                "workflow": {"graph": engine.graph.id, "run": engine.run_id, "node": node.id}
            },
            organization_id=context.get("trigger.organization_id"),
        )
        _log(
            logging.INFO,
            engine,
            node,
            self._event,
            "%s: posted into room %s",
            node.id,
            room,
            room=room,
        )
        _log(logging.DEBUG, engine, node, "message.text", "%s: text: %s", node.id, text, text=text)
        return self._result(room, text)

    def _result(self, room: str, text: str) -> NodeResult:
        return NodeResult(output={"room": room, "text": text})


class AskHandler(NotifyHandler):
    """Posts the node's question (``text``) into its ``room`` as
    :class:`NotifyHandler` does, and pauses the run: outputs ``{"room"}``,
    the room :class:`RoomRuns` waits for the answer in."""

    _event = "question.sent"

    def _result(self, room: str, text: str) -> NodeResult:
        return NodeResult(output={"room": room}, status="waiting")


class AgentHandler(NodeHandler):
    """Delegates the node's ``prompt`` to the RoomKit agent ``agent`` in a
    child room of its ``room`` and waits for the agent's answer.

    Outputs ``{"text": answer}``, or with ``structured`` the payload the agent
    handed back through ``submit_result``. A task that ends other than
    completed fails the node with the task's error.
    """

    def __init__(self, kit: RoomKit) -> None:
        self.kit = kit

    async def execute(
        self, node: Node, context: WorkflowContext, engine: WorkflowEngine
    ) -> NodeResult:
        agent = _setting(node, engine, "agent")
        prompt = _setting(node, engine, "prompt")
        room = _setting(node, engine, "room", _DEFAULT_ROOM)
        for value in (agent, prompt, room):
            if isinstance(value, NodeResult):
                return value
        structured = bool(node.config.get("structured", False))
        channel = self.kit.get_channel(agent)
        role = getattr(channel, "role", None)
        _log(
            logging.INFO,
            engine,
            node,
            "agent.start",
            "%s: agent %s working",
            node.id,
            agent,
            agent=agent,
            role=role if isinstance(role, str) else None,
        )
        _log(
            logging.DEBUG,
            engine,
            node,
            "agent.prompt",
            "%s: asked: %s",
            node.id,
            prompt,
            text=prompt,
        )

        started = time.monotonic()
        live = _LiveText.for_step(self.kit, engine, node, room, agent)
        token = _LIVE.set(live)
        try:
            task = await self.kit.delegate(
                room,
                agent,
                prompt,
                wait=True,
                require_structured_result=structured,
                organization_id=context.get("trigger.organization_id"),
            )
            result = await task.wait()
            if live is not None:
                await live.flush()
        finally:
            _LIVE.reset(token)
            if live is not None:
                await live.close()
        seconds = time.monotonic() - started

        status = str(result.status)
        await self._log_done(engine, node, agent, result, status, seconds)
        answer = result.output or ""
        _log(
            logging.DEBUG,
            engine,
            node,
            "agent.answer",
            "%s: answer: %s",
            node.id,
            answer,
            text=answer,
        )
        if result.status != TaskStatus.COMPLETED:
            reason = f": {result.error}" if result.error else ""
            return NodeResult(status="failed", error=f"agent {agent} ended {status}{reason}")
        if not structured:
            return NodeResult(output={"text": answer})
        try:
            payload = json.loads(answer)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return NodeResult(status="failed", error=f"agent {agent} handed back no result object")
        return NodeResult(output=payload)

    async def _log_done(
        self,
        engine: WorkflowEngine,
        node: Node,
        agent: str,
        result: Any,
        status: str,
        seconds: float,
    ) -> None:
        """The ``agent.done`` record: how long, the tokens and the tools of the turn."""
        if not _logger.isEnabledFor(logging.INFO):
            return
        events = await self.kit.store.list_events(
            result.child_room_id,
            limit=_TOOL_EVENTS_READ,
            event_filter=EventFilter(
                event_types=[EventType.TOOL_CALL_START], source_channel_id=agent
            ),
        )
        tools = [
            name for e in events if isinstance(name := getattr(e.content, "tool_name", None), str)
        ]
        usage = result.metadata.get("turns", {}).get(agent, {}).get("ai_usage")
        fields = {"agent": agent, "seconds": seconds, "status": status, "tools": tools}
        message = "%s: agent %s answered in %.1f s (%s)"
        args = (node.id, agent, seconds, status)
        _log(logging.INFO, engine, node, "agent.done", message, *args, **fields, **_tokens(usage))


def _setting(
    node: Node, engine: WorkflowEngine, key: str, default: str | None = None
) -> str | NodeResult:
    """The node's text setting *key* (*default* when absent), its templates
    rendered; a failed result naming the setting when it is missing or not text."""
    value = node.config.get(key, default)
    if value is None:
        return NodeResult(
            status="failed", error=f"{node.type} node '{node.id}' needs the setting '{key}'"
        )
    if not isinstance(value, str):
        return NodeResult(
            status="failed", error=f"{node.type} node '{node.id}': '{key}' must be text"
        )
    return engine.template_resolver.resolve(value)


def _tokens(usage: Any) -> dict[str, int]:
    """A turn's token counts from RoomKit's usage record, whose counters are
    disjoint: the input is the sum of the fresh, cached and cache-written ones."""
    if not isinstance(usage, dict):
        return {}

    def count(*names: str) -> int:
        return sum(n for name in names if isinstance(n := usage.get(name), int))

    if not any(isinstance(v, int) for v in usage.values()):
        return {}
    return {
        "tokens_in": count(
            "input_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "input_image_tokens",
        ),
        "tokens_out": count("output_tokens", "output_image_tokens"),
        "tokens_cached": count("cache_read_input_tokens"),
    }


def _log(
    level: int,
    engine: WorkflowEngine,
    node: Node,
    event: str,
    message: str,
    *args: Any,
    **fields: Any,
) -> None:
    """Log *event* of *engine*'s run at *node*, as the engine logs its own."""
    if not _logger.isEnabledFor(level):
        return
    record = {"event": event, "run": engine.run_id, "graph": engine.graph.id, "node": node.id}
    _logger.log(level, message, *args, extra={_FIELDS: record | fields})


class _LiveText:
    """An agent's text as it writes it in its child room, logged as
    ``agent.text`` records (DEBUG), for an agent that publishes it
    (``publish_text_deltas=True``).

    RoomKit opens the child room inside ``kit.delegate`` and announces it
    (``ON_TASK_DELEGATED``) before the agent's turn: a hook of the kit, run in
    the delegating task's context, finds this step there and subscribes to the
    child room's ephemeral events.
    """

    def __init__(
        self, kit: RoomKit, engine: WorkflowEngine, node: Node, room: str, agent: str
    ) -> None:
        self.kit, self.engine, self.node = kit, engine, node
        self.room, self.agent = room, agent
        self.child_room: str | None = None
        self._subscription: str | None = None
        self._marker = uuid.uuid4().hex
        self._flushed = asyncio.Event()

    @classmethod
    def for_step(
        cls, kit: RoomKit, engine: WorkflowEngine, node: Node, room: str, agent: str
    ) -> _LiveText | None:
        """One for this step when its text would be logged, else ``None``."""
        if not _logger.isEnabledFor(logging.DEBUG):
            return None
        if kit not in _HOOKED:
            kit.hook(
                HookTrigger.ON_TASK_DELEGATED,
                execution=HookExecution.ASYNC,
                name="roomkit_graph_live_text",
            )(_on_task_delegated)
            _HOOKED.add(kit)
        return cls(kit, engine, node, room, agent)

    async def follow(self, child_room: str) -> None:
        """Subscribe to *child_room*, the task's room, once."""
        if self.child_room is not None:
            return
        self.child_room = child_room
        self._subscription = await self.kit.subscribe_room(child_room, self._on_event)

    async def _on_event(self, event: EphemeralEvent) -> None:
        if event.type == EphemeralEventType.CUSTOM and event.data.get(_FIELDS) == self._marker:
            self._flushed.set()
        elif (
            event.type == EphemeralEventType.TEXT_DELTA
            and event.data.get("channel_id") == self.agent
        ):
            text = event.data.get("text")
            if isinstance(text, str) and text:
                node = self.node
                _log(
                    logging.DEBUG,
                    self.engine,
                    node,
                    "agent.text",
                    "%s: %s",
                    node.id,
                    text,
                    text=text,
                )

    async def flush(self) -> None:
        """Wait until the text published so far has reached this step: a
        marker published after it comes back (events arrive in order)."""
        if self._subscription is None or self.child_room is None:
            return
        marker = EphemeralEvent(
            room_id=self.child_room,
            type=EphemeralEventType.CUSTOM,
            user_id=_FIELDS,
            data={_FIELDS: self._marker},
        )
        await self.kit.realtime.publish_to_room(self.child_room, marker)
        try:
            await asyncio.wait_for(self._flushed.wait(), timeout=_FLUSH_WAIT_S)
        except TimeoutError:
            _logger.debug(
                "the live text of node %s may be cut: its room did not echo", self.node.id
            )

    async def close(self) -> None:
        if self._subscription is not None:
            await self.kit.unsubscribe_room(self._subscription)
            self._subscription = None


_LIVE: contextvars.ContextVar[_LiveText | None] = contextvars.ContextVar(
    "roomkit_graph_live_text", default=None
)
"""The agent node step being run by this task, whose agent's text is followed."""

_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()
"""The kits whose delegations :func:`_on_task_delegated` watches."""


async def _on_task_delegated(event: Any, _context: Any) -> None:
    """Follow the child room of the delegation an agent node step is making."""
    live = _LIVE.get()
    meta = getattr(event, "metadata", None) or {}
    if (
        live is None
        or meta.get("parent_room_id") != live.room
        or meta.get("agent_id") != live.agent
    ):
        return
    child_room = meta.get("child_room_id")
    if isinstance(child_room, str):
        await live.follow(child_room)
