"""Types of roomkit_graph.durable (its classes are native)."""

import datetime
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Literal, Protocol, TypedDict

from roomkit_graph.errors import (
    AnswerRefusedError as AnswerRefusedError,
    DurableError as DurableError,
    NotWaitingError as NotWaitingError,
    RunFinishedError as RunFinishedError,
    RunNotFoundError as RunNotFoundError,
    StoreError as StoreError,
    WorkerTakenError as WorkerTakenError,
)

RunStatus = Literal["running", "queued", "waiting", "completed", "failed", "cancelled"]

class TranscriptEvent(TypedDict, total=False):
    """One event of a run's transcript; the fields beyond the first four depend on ``type``."""

    run_id: str
    seq: int
    at: int
    type: Literal[
        "run_started", "node_started", "node_completed", "node_waiting", "answer_received",
        "notification_sent", "agent_message", "custom", "node_failed", "error_routed",
        "waiting_closed", "retry_scheduled", "run_completed", "run_failed", "run_cancelled",
    ]
    node_id: str
    node_type: str
    attempt: int
    output: Any
    prompt: str | None
    actions: list[str]
    by: str | None
    data: Any
    payload: Any
    error: str
    target: str
    retry_at: int
    reason: str | None
    graph_id: str
    graph_version: int
    trigger: Any

class _NodeHandler(Protocol):
    async def execute(self, node: Any, context: Any, engine: Step) -> Any: ...

class _Functions(Protocol):
    def has(self, name: str) -> bool: ...
    def get(self, name: str) -> Callable[[Any, dict[str, Any]], Any]: ...

class Step:
    """What a handler is given as ``engine``."""

    @property
    def run_id(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def graph(self) -> Any: ...
    @property
    def context(self) -> Any: ...
    @property
    def template_resolver(self) -> Any: ...
    def emit(self, payload: Any) -> None: ...

class Run:
    """A durable run: which graph it runs and where it stands."""

    @property
    def run_id(self) -> str: ...
    @property
    def graph_id(self) -> str: ...
    @property
    def graph_version(self) -> int: ...
    @property
    def status(self) -> RunStatus: ...
    @property
    def is_over(self) -> bool: ...
    @property
    def waiting_on(self) -> list[str]: ...
    @property
    def current_node(self) -> str | None: ...
    @property
    def previous_node(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def steps(self) -> int: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def created_at(self) -> datetime.datetime: ...
    @property
    def updated_at(self) -> datetime.datetime: ...
    @property
    def wake_at(self) -> datetime.datetime | None: ...
    @property
    def context(self) -> dict[str, Any] | None: ...
    def to_dict(self) -> dict[str, Any]: ...

class Transcript(AsyncIterator[TranscriptEvent]):
    """A run's transcript, event by event."""

    def __aiter__(self) -> Transcript: ...
    def __anext__(self) -> Awaitable[TranscriptEvent]: ...
    def aclose(self) -> Awaitable[None]: ...

class Opening(Awaitable[Runner]):
    """What ``Runner.open`` returns: awaitable, or an async context manager."""

    def __await__(self) -> Generator[Any, None, Runner]: ...
    def __aenter__(self) -> Awaitable[Runner]: ...
    def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Awaitable[None]: ...

class Runner:
    """Runs stored graphs durably on SQLite or PostgreSQL."""

    @classmethod
    def open(
        cls,
        database: str | os.PathLike[str],
        *,
        handlers: Mapping[str, _NodeHandler | Callable[..., Any]] | None = None,
        functions: _Functions | Mapping[str, Callable[[Any, dict[str, Any]], Any]] | None = None,
        lease: float = 30.0,
        recover_every: float | None = 5.0,
        max_steps: int | None = None,
        worker: str | None = None,
        connections: int = 8,
    ) -> Opening: ...
    def save_graph(self, graph: Any) -> Awaitable[int]: ...
    def start(
        self, graph_id: str, trigger_data: Mapping[str, Any] | None = None, *, version: int | None = None
    ) -> Awaitable[str]: ...
    def answer(
        self, run_id: str, data: Mapping[str, Any] | None = None, *, node: str | None = None, by: str | None = None
    ) -> Awaitable[None]: ...
    def cancel(self, run_id: str, reason: str | None = None) -> Awaitable[None]: ...
    def run(self, run_id: str) -> Awaitable[Run]: ...
    def wait(self, run_id: str) -> Awaitable[Run]: ...
    def runs(
        self, *, status: RunStatus | None = None, graph: str | None = None, limit: int = 100
    ) -> Awaitable[list[Run]]: ...
    def transcript(self, run_id: str, *, follow: bool = False, after: int = 0) -> Transcript: ...
    def recover(self) -> Awaitable[int]: ...
    def close(self) -> Awaitable[None]: ...
    def __aenter__(self) -> Awaitable[Runner]: ...
    def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Awaitable[None]: ...
    @property
    def owner(self) -> str: ...
    @property
    def lease(self) -> float: ...
    @property
    def closed(self) -> bool: ...
