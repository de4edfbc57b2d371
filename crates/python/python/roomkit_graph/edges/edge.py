"""Edges: ``Edge``."""

from __future__ import annotations

from roomkit_graph._core import Edge

__all__ = ["Edge"]
