"""The ``vecembed`` command line: info, embed, ingest, search, alias, migrate, export, distill, bench, demo, serve.

One module per command group: :mod:`~vecembed.cli.models` (model commands),
:mod:`~vecembed.cli.db` (database commands), :mod:`~vecembed.cli.demo`. Every
failure ends in one line on stderr saying what to do and a non-zero exit code;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from vecembed.cli._common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_UNHEALTHY, echo, error_line, status_lines

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_UNHEALTHY", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands register themselves from their modules)."""
    from vecembed import __version__
    from vecembed.cli import alias, db, demo, migrate, models, serve

    parser = argparse.ArgumentParser(
        prog="vecembed",
        description="Text to vectors, offline, straight into a vector database: Chroma, Qdrant, Qdrant Edge, "
        "pgvector, or any store another package plugs in.",
        epilog="Start with:  vecembed demo",
    )
    parser.add_argument("--version", action="version", version=f"vecembed {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    models.register(commands)
    db.register(commands)
    alias.register(commands)
    migrate.register(commands)
    demo.register(commands)
    serve.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    # Libraries we call print telemetry notices and tokenizer fork warnings; a CLI run wants neither.
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    # parse_known_args: `vecembed bench` hands options it does not know to the harness; others refuse them.
    args, extra = parser.parse_known_args(list(argv) if argv is not None else None)
    if extra:
        if not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.rest = [*args.rest, *extra]
    debug = bool(args.debug) or bool(os.environ.get("VECEMBED_DEBUG"))
    try:
        with status_lines():
            code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        resume = (" — what was written stays; run the same command again to finish (stored documents are skipped, "
                  "not embedded again)") if getattr(args, "command", None) == "ingest" else ""
        echo(f"vecembed: interrupted{resume}", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `vecembed embed ... | head` closes the pipe early: not an error worth a message.
        sys.stderr.close()
        return 0
    except Exception as exc:
        if debug:
            traceback.print_exc()
        echo(f"vecembed: error: {error_line(exc)}", err=True)
        if not debug and not _is_user_error(exc):
            # An unexpected error: the one line may not be enough to report it.
            echo("vecembed: run with --debug for the traceback", err=True)
        return EXIT_ERROR


def _is_user_error(exc: BaseException) -> bool:
    from vecembed.errors import VecembedError

    return isinstance(exc, (VecembedError, OSError))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
