"""The exceptions roomkit_graph raises."""

from __future__ import annotations

__all__ = [
    "ConditionError",
    "ExecutionError",
    "GraphError",
    "GraphValidationError",
    "NoValidTransitionError",
    "TemplateError",
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
