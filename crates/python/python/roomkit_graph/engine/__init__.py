"""The engine: ``WorkflowEngine``, ``WorkflowContext`` and ``TemplateResolver``."""

from __future__ import annotations

from roomkit_graph.engine.context import WorkflowContext
from roomkit_graph.engine.executor import WorkflowEngine
from roomkit_graph.engine.resolver import TemplateResolver

__all__ = ["TemplateResolver", "WorkflowContext", "WorkflowEngine"]
