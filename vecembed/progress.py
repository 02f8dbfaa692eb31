"""The one progress bar of vecembed: rich when installed, plain lines otherwise, only where a person watches.

::

    with Progress("qdrant: docs", total=len(docs), enabled=show_progress) as bar:
        ...
        bar.advance(128)

``enabled``: ``True`` draws a bar, ``False`` never does, ``None`` (auto) draws
one only when stderr is a terminal. ``VECEMBED_NO_PROGRESS`` (any non-empty
value) switches every bar off, asked for or not. Library calls pass ``False``
unless their caller asks; the command line passes ``None``.

:func:`third_party_quiet` holds other libraries to the same rule while vecembed
runs them (model2vec's and sentence-transformers' tqdm bars, transformers'
load reports).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from vecembed._deps import importable

__all__ = ["NO_PROGRESS_ENV", "Progress", "progress_enabled", "third_party_quiet"]

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

    def __init__(
        self, description: str, total: int | None = None, *, enabled: bool | None = None, rate: str | None = None
    ) -> None:
        """``rate``: the unit counted (``"documents"``): the bar then shows units/s and, with a ``total``, an ETA."""
        self.description = description
        self.total = total
        self.rate = rate
        self._started = time.monotonic()
        self.enabled = progress_enabled(enabled)
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def __enter__(self) -> Progress:
        if self.enabled and importable("rich"):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            # units/s and the ETA, computed here (one formula for the bar and the plain line)
            extra = [TextColumn("{task.fields[speed]}")] if self.rate else []
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                *extra,
                TimeElapsedColumn(),
                # stderr: stdout may be a pipe carrying the caller's own output
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, speed="")
        self._started = time.monotonic()
        return self

    def _speed(self) -> str:
        """``"1,234 documents/s, ETA 12 s"`` from the start (the plain line and the rich column)."""
        elapsed = time.monotonic() - self._started
        speed = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{speed:,.0f} {self.rate}/s"
        if self.total is not None and speed > 0 and self.done < self.total:
            text += f", ETA {(self.total - self.done) / speed:,.0f} s"
        return text

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, **({"speed": self._speed()} if self.rate else {}))
            return
        now = time.monotonic()
        if now - self._last_line >= _PLAIN_INTERVAL:
            self._last_line = now
            self._plain_line()

    def _plain_line(self) -> None:
        total = f"/{self.total}" if self.total is not None else ""
        rate = f" ({self._speed()})" if self.rate else ""
        print(f"{self.description}: {self.done}{total}{rate}", file=sys.stderr, flush=True)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.enabled and self.done:
            self._plain_line()


_quiet_lock = threading.Lock()
_quiet_depth = 0
_tqdm_init: Any = None


@contextlib.contextmanager
def third_party_quiet(show_progress: bool | None = False) -> Iterator[None]:
    """Run third-party work (model2vec, transformers, sentence-transformers) under vecembed's output rules.

    Inside, tqdm bars are drawn only when :func:`progress_enabled` says so for
    ``show_progress`` (library calls pass ``False``, the command line ``None``:
    a terminal), and transformers logs errors only — its "LOAD REPORT" of
    unexpected weights (a pooler a sentence model does not use) is a warning
    nobody can act on. Both are put back as they were on the way out.

    tqdm has no switch of its own but an environment variable read when it is
    imported, and libraries hold its class, so its ``__init__`` is wrapped for
    the duration: bars other threads open meanwhile are quiet too.
    """
    quiet_bars = not progress_enabled(show_progress)
    transformers_logging = _transformers_logging()
    verbosity = transformers_logging.get_verbosity() if transformers_logging is not None else None
    if transformers_logging is not None:
        transformers_logging.set_verbosity(logging.ERROR)
    if quiet_bars:
        _hold_tqdm(+1)
    try:
        yield
    finally:
        if quiet_bars:
            _hold_tqdm(-1)
        if transformers_logging is not None and verbosity is not None:
            transformers_logging.set_verbosity(verbosity)


def _hold_tqdm(step: int) -> None:
    """Count one more (+1) or one fewer (-1) quiet section; tqdm is quiet while any is open."""
    global _quiet_depth, _tqdm_init
    tqdm_class = _tqdm_class()
    if tqdm_class is None:
        return
    with _quiet_lock:
        _quiet_depth += step
        if step > 0 and _quiet_depth == 1:
            original = _tqdm_init = tqdm_class.__init__

            def quiet_init(self: Any, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True
                original(self, *args, **kwargs)

            tqdm_class.__init__ = quiet_init
        elif step < 0 and _quiet_depth == 0:
            tqdm_class.__init__ = _tqdm_init
            _tqdm_init = None


def _tqdm_class() -> Any:
    """tqdm's base class (every tqdm flavour calls its ``__init__``), when tqdm is installed."""
    if not importable("tqdm"):
        return None
    import tqdm.std

    return tqdm.std.tqdm


def _transformers_logging() -> Any:
    """transformers' logging module when transformers is installed (imported now: its import sets its level)."""
    if not importable("transformers"):
        return None
    with contextlib.suppress(Exception):  # a broken transformers install must not stop a quiet run
        import transformers.utils.logging as transformers_logging

        return transformers_logging
    return None
