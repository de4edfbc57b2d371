"""The exceptions roomkit_graph raises."""

from __future__ import annotations

__all__ = [
    "AnswerRefusedError",
    "ConditionError",
    "DurableError",
    "ExecutionError",
    "GraphError",
    "GraphValidationError",
    "NoValidTransitionError",
    "NotWaitingError",
    "RunFinishedError",
    "RunNotFoundError",
    "StoreError",
    "TemplateError",
    "WorkerTakenError",
]


class GraphError(Exception):
    """The base of every error the engine raises."""


class GraphValidationError(GraphError):
    """A graph is not valid; the message lists every problem found."""


class ConditionError(GraphError):
    """A condition cannot be read or evaluated."""


class TemplateError(GraphError):
    """A template cannot be rendered."""


class ExecutionError(GraphError):
    """A run cannot go on: a node failed or the run is not in a state to step."""


class NoValidTransitionError(ExecutionError):
    """No edge out of a node matched and the node is not an end."""


class DurableError(GraphError):
    """A durable runner (``roomkit_graph.durable``) refused a request; nothing changed."""


class RunNotFoundError(DurableError, LookupError):
    """No run, graph or graph version has that id in the database."""


class NotWaitingError(DurableError):
    """An answer came for a run that is not waiting on that node."""


class AnswerRefusedError(DurableError):
    """An answer does not fit what the node asks (an action it does not offer, say)."""


class RunFinishedError(DurableError):
    """The run is over (completed, failed or cancelled): nothing more can happen to it."""


class WorkerTakenError(DurableError):
    """Another live process is registered with the same worker id."""


class StoreError(DurableError):
    """The database failed or refused: locked, out of reach, full, or not a runs database."""
