"""Edge conditions: ``Condition`` and the builder ``Condition.field(path)`` returns."""

from __future__ import annotations

from roomkit_graph._core import Condition, ConditionBuilder

__all__ = ["Condition", "ConditionBuilder"]
