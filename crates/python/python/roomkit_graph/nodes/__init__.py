"""Nodes: ``Node`` and ``NodeType``."""

from __future__ import annotations

from roomkit_graph.nodes.base import Node, NodeType

__all__ = ["Node", "NodeType"]
