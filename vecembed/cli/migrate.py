"""``vecembed migrate``: re-embed a collection into another model and switch its alias (:func:`vecembed.migrate`).

::

    vecembed migrate --db qdrant --collection docs --to-backend onnx --to-model all-MiniLM-L6-v2
    vecembed migrate --db qdrant --collection docs --rollback      # the alias back at the old collection
    vecembed migrate --db qdrant --collection docs --drop-old      # the old collection dropped

The database is found as ``ingest`` and ``search`` find it (``--path``, ``--url``,
``$VECEMBED_DATA``, ``$VECEMBED_<DB>_URL``). On a terminal a progress bar shows documents/s and an ETA.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from vecembed.cli._common import echo, open_provider, positive_int
from vecembed.cli.db import add_location_options, location_of
from vecembed.errors import CliError
from vecembed.migration import migrate
from vecembed.registry import AUTO, available_providers

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``migrate`` to the CLI."""
    parser = commands.add_parser(
        "migrate",
        help="re-embed a collection with another model into a new collection, catch up, then switch its alias",
    )
    add_location_options(parser)
    parser.add_argument(
        "--collection", "-c", required=True, help="the alias to migrate (it moves), or a collection (then give --alias)"
    )
    model = parser.add_argument_group("the model to migrate to")
    model.add_argument(
        "--to-backend",
        choices=[*available_providers(), AUTO],
        default=None,
        help="embedding backend of the new model (default: onnx when installed, else torch)",
    )
    model.add_argument("--to-model", default=None, help="the new model (local folder, Hugging Face id, packaged id)")
    model.add_argument(
        "--to-opt",
        action="append",
        metavar="KEY=VALUE",
        help="extra option of the new provider, repeatable (e.g. --to-opt quantize=int8)",
    )
    parser.add_argument("--alias", help="the alias to point at the new collection when --collection is a collection")
    parser.add_argument("--target", help="the new collection's name (default: <source>__<model>-<backend>-<hash>)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="documents per write")
    parser.add_argument(
        "--rollback",
        action="store_true",
        help="point the alias back at the collection it was migrated from (kept until --drop-old)",
    )
    parser.add_argument(
        "--drop-old",
        action="store_true",
        help="drop the previous collection (after the switch, or on its own once you are sure)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Migrate, roll back or drop the old collection; print the report."""
    path, url = location_of(args, args.db)
    if path is not None and not path.exists():
        raise CliError(f"{args.db} has no database at {path}; give --path (or --url) where the collection is")
    names_model = any((args.to_backend, args.to_model, args.to_opt))
    if args.rollback and (names_model or args.drop_old or args.target):
        raise CliError("--rollback takes the alias (--collection) and nothing else: no --to-*, --target, --drop-old")
    where: dict[str, Any] = {"path": None if path is None else str(path), "url": url}
    if args.rollback or (args.drop_old and not names_model):
        report = migrate(args.db, args.collection, rollback=args.rollback, drop_old=args.drop_old, **where)
    else:
        chosen = argparse.Namespace(backend=args.to_backend, model=args.to_model, opt=args.to_opt)
        with open_provider(chosen) as provider:
            report = migrate(
                args.db,
                args.collection,
                provider,
                target=args.target,
                alias=args.alias,
                batch_size=args.batch_size,
                drop_old=args.drop_old,
                show_progress=None,
                **where,
            )
    echo(json.dumps(report.to_dict()) if args.json else str(report))
    return 0
