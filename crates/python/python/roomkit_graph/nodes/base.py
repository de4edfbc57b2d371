"""Nodes: ``Node`` and the ``NodeType`` enum of the built-in node types."""

from __future__ import annotations

from enum import StrEnum

from roomkit_graph import _core

#: The built-in node types (``NodeType.AGENT == "agent"``), one member for
#: each type the engine knows; any other string is a custom type.
NodeType = StrEnum(
    "NodeType",
    [(name.upper(), name) for name in _core.NODE_TYPES],
    module=__name__,
)

Node = _core.Node

__all__ = ["Node", "NodeType"]
