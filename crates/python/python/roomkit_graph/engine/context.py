"""``WorkflowContext``: a run's outputs, read with dot paths and scopes."""

from __future__ import annotations

from roomkit_graph._core import WorkflowContext

__all__ = ["WorkflowContext"]
