"""The events ``WorkflowEngine.stream()`` yields: ``StreamMode`` and ``StreamEvent``."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

#: Which view of a run a stream shows: ``values`` (the whole context before
#: the first step and after each), ``updates`` (what each step wrote),
#: ``lifecycle`` (each node's start and end) and ``custom`` (``engine.emit``).
StreamMode = Literal["values", "updates", "lifecycle", "custom"]


class StreamEvent(TypedDict):
    """One event of a stream; ``seq`` counts from 0 in each stream."""

    mode: StreamMode
    payload: Any
    node_id: str | None
    seq: int


__all__ = ["StreamEvent", "StreamMode"]
