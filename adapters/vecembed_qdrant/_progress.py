"""An optional progress bar (rich) for long ingests: on for a terminal, silent otherwise."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from vecembed._deps import importable, require

__all__ = ["IngestProgress", "want_progress"]


def want_progress(show_progress: bool | None) -> bool:
    """``None`` means auto: a bar only when stderr is a terminal and rich is installed."""
    if show_progress is None:
        return importable("rich") and sys.stderr.isatty()
    return bool(show_progress)


class IngestProgress:
    """A context manager counting documents written; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            progress = require("rich.progress", "progress", "the ingest progress bar")
            console = require("rich.console", "progress", "the ingest progress bar")
            self._progress = progress.Progress(
                progress.TextColumn("{task.description}"),
                progress.BarColumn(),
                progress.MofNCompleteColumn(),
                progress.TimeRemainingColumn(),
                # stderr, like the auto-detection: stdout may be a pipe carrying the caller's own output
                console=console.Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __enter__(self) -> IngestProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
