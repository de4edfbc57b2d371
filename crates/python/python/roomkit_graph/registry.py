"""The functions ``custom`` function nodes call: ``FunctionRegistry`` and
the module's own ``graph_registry``."""

from __future__ import annotations

from roomkit_graph._core import FunctionRegistry, graph_registry

__all__ = ["FunctionRegistry", "graph_registry"]
