"""``verbose()``: every run's progress on a terminal, one line per thing it does.

The engine and the RoomKit handlers log each step on the ``roomkit_graph``
logger; this handler prints those records as short lines (rendered by the
engine's ``progress_line``), each prefixed by its graph and run::

    [triage 0190a4c2-...] ▶ classify (agent)
    [triage 0190a4c2-...] ✓ classify · 2.1 s
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from roomkit_graph._core import printable, progress_line

__all__ = ["verbose"]

_LOGGER = "roomkit_graph"
_FIELDS = "roomkit_graph"
_DIM = "2"


class _Progress(logging.Handler):
    """Prints the ``roomkit_graph`` logger's run records as progress lines.

    With *messages*, an agent's text (``agent.text`` records) is printed as it
    arrives, on lines of its own under its run's prefix; any other line ends it.
    """

    def __init__(self, stream: TextIO, logger: logging.Logger, *, messages: bool) -> None:
        super().__init__()
        self._stream = stream
        self._colour = stream.isatty()
        self._logger = logger
        self._previous = (logger.level, logger.propagate)
        self._messages = messages
        self._open: tuple[str, str] | None = None  # the run and node whose text line is open
        self._shown: set[tuple[str, str]] = set()  # nodes whose text was printed live

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, _FIELDS, None)
        if not isinstance(fields, dict):
            return
        try:
            self._print(fields)
            self._stream.flush()
        except Exception:  # a display must not break the run it shows
            self.handleError(record)

    def _print(self, fields: dict[str, Any]) -> None:
        event = fields.get("event")
        if event == "agent.text":
            if self._messages:
                self._print_text(fields)
            return
        if fields.get("type") == "start":  # "run started" says it
            return
        if event == "agent.answer" and (fields.get("run"), fields.get("node")) in self._shown:
            return  # shown as it was written
        line = progress_line(fields)
        if line is None:
            return
        self._close_text()
        text, colour = line
        self._stream.write(f"{self._prefix(fields)} {self._paint(text, colour)}\n")

    def _print_text(self, fields: dict[str, Any]) -> None:
        key = (fields["run"], fields["node"])
        self._shown.add(key)
        for i, part in enumerate(str(fields["text"]).split("\n")):
            if i:
                self._close_text()
            if not part:
                continue
            if self._open != key:
                self._close_text()
                self._stream.write(f"{self._prefix(fields)} {self._paint('  ✎', _DIM)} ")
                self._open = key
            self._stream.write(printable(part))

    def _close_text(self) -> None:
        if self._open is not None:
            self._stream.write("\n")
            self._open = None

    def _prefix(self, fields: dict[str, Any]) -> str:
        return self._paint(printable(f"[{fields['graph']} {fields['run']}]"), _DIM)

    def _paint(self, text: str, colour: str | None) -> str:
        if not self._colour or colour is None:
            return text
        return f"\033[{colour}m{text}\033[0m"

    def close(self) -> None:
        """Stops printing and gives the logger back its level and propagation."""
        self._close_text()
        self._logger.removeHandler(self)
        self._logger.setLevel(self._previous[0])
        self._logger.propagate = self._previous[1]
        super().close()


def verbose(
    *, content: bool = True, messages: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Prints every run's progress on *stream* (stderr by default) as it happens.

    Each step, each agent's turn and each message sent is a line; with
    *content*, what agents were asked and answered and the text of messages
    too, cut to one line; with *messages*, an agent's text as it is written.
    The ``roomkit_graph`` logger then prints here only (it stops propagating);
    ``close()`` on the returned handler restores it. A second call replaces
    the first display.
    """
    logger = logging.getLogger(_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _Progress):
            handler.close()
    handler = _Progress(stream or sys.stderr, logger, messages=messages)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if content or messages else logging.INFO)
    logger.propagate = False
    return handler
