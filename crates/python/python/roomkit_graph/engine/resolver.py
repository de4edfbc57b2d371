"""``TemplateResolver``: ``{{path}}`` placeholders resolved from a context."""

from __future__ import annotations

from roomkit_graph._core import TemplateResolver

__all__ = ["TemplateResolver"]
