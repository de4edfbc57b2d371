"""Edges and their conditions."""

from __future__ import annotations

from roomkit_graph.edges.condition import Condition
from roomkit_graph.edges.edge import Edge

__all__ = ["Condition", "Edge"]
