"""The workflow graph: ``Graph``."""

from __future__ import annotations

from roomkit_graph._core import Graph

__all__ = ["Graph"]
