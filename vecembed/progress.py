"""The one progress bar of vecembed: rich when installed, plain lines otherwise, only where a person watches.

::

    with Progress("qdrant: docs", total=len(docs), enabled=show_progress) as bar:
        ...
        bar.advance(128)

``enabled``: ``True`` draws a bar, ``False`` never does, ``None`` (auto) draws
one only when stderr is a terminal. ``VECEMBED_NO_PROGRESS`` (any non-empty
value) switches every bar off, asked for or not. Library calls pass ``False``
unless their caller asks; the command line passes ``None``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from vecembed._deps import importable

__all__ = ["NO_PROGRESS_ENV", "Progress", "progress_enabled"]

NO_PROGRESS_ENV = "VECEMBED_NO_PROGRESS"

#: Seconds between two lines of the plain (no rich) bar.
_PLAIN_INTERVAL = 2.0


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_enabled(enabled: bool | None = None, stream: TextIO | None = None) -> bool:
    """Whether to draw: never with ``VECEMBED_NO_PROGRESS``; else ``enabled``, or (None) when stderr is a terminal."""
    if os.environ.get(NO_PROGRESS_ENV):
        return False
    if enabled is not None:
        return bool(enabled)
    return _is_tty(stream or sys.stderr)


class Progress:
    """A progress bar on stderr; a silent no-op when disabled. Use it as a context manager."""

    def __init__(self, description: str, total: int | None = None, *, enabled: bool | None = None) -> None:
        self.description = description
        self.total = total
        self.enabled = progress_enabled(enabled)
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def __enter__(self) -> Progress:
        if self.enabled and importable("rich"):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                # stderr: stdout may be a pipe carrying the caller's own output
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        now = time.monotonic()
        if now - self._last_line >= _PLAIN_INTERVAL:
            self._last_line = now
            self._plain_line()

    def _plain_line(self) -> None:
        total = f"/{self.total}" if self.total is not None else ""
        print(f"{self.description}: {self.done}{total}", file=sys.stderr, flush=True)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.enabled and self.done:
            self._plain_line()
