"""roomkit_graph: workflow graphs as data, run by a Rust engine.

The API is roomkit-graph's, name for name; ``roomkit_graph.durable`` adds
durable runs on SQLite or PostgreSQL.
"""

from __future__ import annotations

from roomkit_graph._core import __version__
from roomkit_graph.errors import (
    ConditionError,
    ExecutionError,
    GraphError,
    GraphValidationError,
    NoValidTransitionError,
    TemplateError,
)

__all__ = [
    "ConditionError",
    "ExecutionError",
    "GraphError",
    "GraphValidationError",
    "NoValidTransitionError",
    "TemplateError",
    "__version__",
]
