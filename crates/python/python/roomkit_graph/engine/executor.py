"""``WorkflowEngine``: runs a graph step by step on the Rust engine."""

from __future__ import annotations

from roomkit_graph._core import WorkflowEngine

__all__ = ["WorkflowEngine"]
