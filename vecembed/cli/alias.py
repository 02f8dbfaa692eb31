"""``vecembed alias list|set|drop``: a database's aliases, on :func:`vecembed.aliases`, :func:`vecembed.set_alias`
and :func:`vecembed.drop_alias`.

The database is found as ``ingest`` and ``search`` find it (``--path``, ``--url``,
``$VECEMBED_DATA``, ``$VECEMBED_<DB>_URL``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from vecembed.cli._common import echo
from vecembed.cli.db import add_location_options, location_of
from vecembed.collection import aliases, drop_alias, set_alias

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``alias`` and its sub-commands to the CLI."""
    alias = commands.add_parser(
        "alias",
        help="list, set or drop collection aliases (a name that points at one collection and moves atomically)",
    )
    actions = alias.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="every alias of the database and the collection it names")
    add_location_options(listing)
    listing.add_argument("--json", action="store_true", help="print {alias: collection} as JSON")
    listing.set_defaults(handler=cmd_list)

    setting = actions.add_parser("set", help="point ALIAS at COLLECTION (create it, or move it in one step)")
    setting.add_argument("alias", help="the alias (a valid collection name of the database, not a collection's)")
    setting.add_argument("collection", help="the collection it names (must exist)")
    add_location_options(setting)
    setting.set_defaults(handler=cmd_set)

    dropping = actions.add_parser("drop", help="remove ALIAS (its collection stays)")
    dropping.add_argument("alias", help="the alias to remove")
    add_location_options(dropping)
    dropping.set_defaults(handler=cmd_drop)


def _where(args: argparse.Namespace) -> dict[str, Any]:
    path, url = location_of(args, args.db)
    return {"path": None if path is None else str(path), "url": url}


def cmd_list(args: argparse.Namespace) -> int:
    """Print ``alias -> collection`` lines (or JSON)."""
    path, url = location_of(args, args.db)
    # Listing must not leave an empty embedded database folder behind.
    found = (
        {}
        if path is not None and not path.exists()
        else aliases(args.db, path=None if path is None else str(path), url=url)
    )
    if args.json:
        echo(json.dumps(found))
    else:
        for name, collection in found.items():
            echo(f"{name} -> {collection}")
        if not found:
            echo(f"(no aliases in {args.db} at {url or path})")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    """Point the alias at the collection."""
    set_alias(args.db, args.alias, args.collection, **_where(args))
    echo(f"{args.db}: alias {args.alias!r} -> collection {args.collection!r}")
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    """Remove the alias; exit 1 when there was none."""
    if drop_alias(args.db, args.alias, **_where(args)):
        echo(f"{args.db}: alias {args.alias!r} dropped")
        return 0
    echo(f"vecembed: error: {args.db} has no alias {args.alias!r}", err=True)
    return 1
