"""Database commands, ``ingest`` and ``search``, on :func:`vecembed.open_store` and the one ingest engine.

The database is embedded by default — ``<data>/<db>`` where ``<data>`` is
``--path``, else ``$VECEMBED_DATA``, else ``./vecembed-data`` — or a server with
``--url`` (without ``--path``, ``$VECEMBED_CHROMA_URL`` / ``$VECEMBED_QDRANT_URL``
select one). Which databases exist is the store registry's answer
(:func:`vecembed.available_stores`): this module imports no adapter.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from vecembed.cli._common import (
    CliError,
    add_provider_options,
    data_dir,
    dropped_stderr_lines,
    echo,
    open_provider,
    parse_key_values,
    parse_options,
    positive_int,
)
from vecembed.cli.inputs import read_documents
from vecembed.collection import Store, open_store
from vecembed.errors import CollectionNotFoundError, InvalidInputError, ProviderNotRecordedError
from vecembed.protocol import EmbeddingProvider
from vecembed.registry import default_backend
from vecembed.sparse import SparseEmbeddingProvider, available_sparse_providers, load_sparse_provider
from vecembed.store import Hit, available_stores, needs_server, store_factory

__all__ = ["DATABASES", "add_location_options", "cli_store", "format_hits", "location_of", "parse_where", "register"]

#: The databases the CLI offers: every installed store (chroma, pgvector, qdrant, qdrant-edge with vecembed[all])
#: but ``memory``, whose collections end with the process: one CLI command could not see what the previous one wrote.
DATABASES = tuple(db for db in available_stores() if db != "memory") or ("chroma", "qdrant")


#: The ERROR line Ray 2.60's core worker prints for every Ray Data actor pool (ray-project/ray#57733): Ray Data
#: passes its own DataContext and map function to each actor as object-store references, and its actors restart
#: (max_restarts=-1), which a killed actor needs. The references are the driver's and live as long as the job, so
#: the restart the line warns about works (tests/integration/test_distributed.py kills an actor mid-job).
RAY_ACTOR_ARGS_LINE = re.compile(rb"core_worker\.cc:\d+: Actor with class name: 'MapWorker\(.*has constructor "
                                 rb"arguments in the object store and max_restarts > 0")


def url_env(db: str) -> str:
    """The environment variable naming a server for ``db``: ``VECEMBED_<DB>_URL``."""
    return f"VECEMBED_{db.upper().replace('-', '_')}_URL"


def location_of(args: argparse.Namespace, db: str) -> tuple[Path | None, str | None]:
    """``(path, url)`` of database ``db`` from ``--path`` / ``--url`` and the environment (one of them None)."""
    return _location(args, db)


def _location(args: argparse.Namespace, db: str) -> tuple[Path | None, str | None]:
    url = getattr(args, "url", None)
    path = getattr(args, "path", None)
    if url and path:
        raise CliError("give either --path (embedded database) or --url (server), not both")
    if not url and not path:
        url = os.environ.get(url_env(db)) or None
    if url:
        return None, url
    if path is None and needs_server(db):
        raise CliError(f"{db} is a database server: give --url or set ${url_env(db)}")
    return data_dir(path) / db, None


def _no_collection(db: str, collection: str, location: str) -> str:
    return (f"{db} has no collection {collection!r} at {location}; "
            f"create it with: vecembed ingest INPUT --db {db} --collection {collection}")


def cli_store(db: str, collection: str, provider: EmbeddingProvider | None, *, path: Path | None = None,
              url: str | None = None, create: bool = True, adopt: bool = False,
              sparse: str | SparseEmbeddingProvider | None = None) -> Store:
    """:func:`vecembed.open_store` with the CLI's words for a collection that is not there."""
    try:
        return open_store(db, collection, provider, path=None if path is None else str(path), url=url,
                          create=create, adopt=adopt, sparse=sparse)
    except CollectionNotFoundError as exc:
        raise CliError(_no_collection(exc.db, exc.collection, exc.location)) from None


def _sparse_name_and_options(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """``--sparse NAME`` and its ``--sparse-opt``s; ``--mode sparse/hybrid`` alone: bm25."""
    name = getattr(args, "sparse", None)
    if name is None and getattr(args, "mode", "dense") != "dense":
        name = "bm25"  # the one sparse provider vecembed ships; the collection's identity check catches another
    options = parse_key_values(getattr(args, "sparse_opt", None), "--sparse-opt", "language=german")
    if name is None and options:
        raise CliError("--sparse-opt needs --sparse NAME (or --mode sparse/hybrid)")
    return name, options


def _sparse_from_args(args: argparse.Namespace) -> str | SparseEmbeddingProvider | None:
    """``--sparse NAME`` (with ``--sparse-opt``s): the sparse provider, loaded here only when it has options."""
    name, options = _sparse_name_and_options(args)
    if name is None:
        return None
    return load_sparse_provider(name, **options) if options else name


def _names_a_provider(args: argparse.Namespace) -> bool:
    return any(getattr(args, flag, None) for flag in ("backend", "model", "opt"))


@contextmanager
def _store_from_args(args: argparse.Namespace, *, create: bool) -> Iterator[tuple[Store, EmbeddingProvider]]:
    path, url = _location(args, args.db)
    if not create and path is not None and not path.exists():
        # Opening an embedded database creates its folder: a search must not leave one behind.
        raise CliError(_no_collection(args.db, args.collection, str(path)))
    adopt = getattr(args, "adopt", False)
    sparse = _sparse_from_args(args)
    try:
        if not _names_a_provider(args):
            # No --backend/--model/--opt: the provider the collection (or the alias's collection) records. A new
            # collection, or one that records none, gets the default provider, as before.
            try:
                store = open_store(args.db, args.collection, path=None if path is None else str(path), url=url,
                                   create=create, adopt=adopt, sparse=sparse)
            except (CollectionNotFoundError, ProviderNotRecordedError):
                pass
            else:
                with store:
                    yield store, store.provider
                return
        with open_provider(args) as provider, cli_store(
            args.db, args.collection, provider, path=path, url=url, create=create, adopt=adopt, sparse=sparse,
        ) as store:
            yield store, provider
    finally:
        if isinstance(sparse, SparseEmbeddingProvider):  # loaded here with options; a name is the store's to close
            sparse.close()


def _add_sparse_option(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group("sparse vectors (hybrid search)")
    group.add_argument("--sparse", choices=available_sparse_providers(), default=None,
                       help=f"sparse provider {what}")
    group.add_argument("--sparse-opt", action="append", metavar="KEY=VALUE",
                       help="a sparse provider option, e.g. language=german (repeatable)")


# -- the commands -----------------------------------------------------------------------------


def add_location_options(parser: Any) -> None:
    """``--db``, ``--path`` and ``--url`` (read back by :func:`location_of`): where a command finds the database."""
    parser.add_argument("--db", required=True, choices=DATABASES, help="which vector database")
    parser.add_argument("--path", help="folder for the embedded database (default: $VECEMBED_DATA or ./vecembed-data)")
    parser.add_argument("--url", help="a server instead, e.g. http://127.0.0.1:6333 "
                                      "(default: $VECEMBED_<DB>_URL, e.g. $VECEMBED_QDRANT_URL, when set)")


def _add_db_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database")
    add_location_options(group)
    group.add_argument("--collection", "-c", required=True, help="collection name (3-512 characters for Chroma)")
    group.add_argument("--adopt", action="store_true",
                       help="record this model in a collection that holds vectors but no vecembed record")


def register(commands: Any) -> None:
    """Add this module's sub-commands to the CLI."""
    ingest = commands.add_parser("ingest", help="embed documents and upsert them into a vector database "
                                 f"({', '.join(DATABASES)})")
    ingest.add_argument("input", nargs="+",
                        help=".txt (one document a line), .jsonl ({\"id\",\"text\",\"metadata\"}), "
                             "a folder of .txt/.md files, or - for stdin (several files: --engine ray)")
    _add_db_options(ingest)
    add_provider_options(ingest, recorded=True)
    scale = ingest.add_argument_group("scaling out (Ray Data; vecembed[ray])")
    scale.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process (default); ray: embed on Ray actors, reading JSONL/CSV/Parquet/text "
                            "files with Ray's readers (a server --url is written from the workers, --path from here)")
    scale.add_argument("--address", default=None,
                       help="the Ray cluster to join: auto (one running here), ray://HOST:10001; "
                            "default: start a local one")
    scale.add_argument("--workers", type=positive_int, default=None,
                       help="embedding actors, one CPU each (default: one per CPU of the cluster)")
    _add_sparse_option(ingest, "whose vectors are written beside the dense ones, so that the collection can be "
                               "searched with --mode sparse or hybrid (chosen when the collection is created)")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.set_defaults(handler=cmd_ingest)

    search = commands.add_parser("search", help="search a collection by query text")
    search.add_argument("query", help="the query text")
    _add_db_options(search)
    search.add_argument("-k", "--limit", type=positive_int, default=5, help="number of results (default 5)")
    search.add_argument("--where", action="append", metavar="KEY=VALUE",
                        help="only documents whose metadata KEY equals VALUE (repeatable: all must hold)")
    search.add_argument("--mode", choices=("dense", "sparse", "hybrid"), default="dense",
                        help="dense: nearest vectors (default); sparse: the sparse provider's terms (BM25); "
                             "hybrid: both, fused by Reciprocal Rank Fusion (vecembed.sparse.RRF_K)")
    add_provider_options(search, recorded=True)
    _add_sparse_option(search, "the collection was ingested with (default with --mode sparse/hybrid: bm25)")
    search.add_argument("--json", action="store_true", help="print the hits as JSON")
    search.set_defaults(handler=cmd_search)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Read INPUT, embed it and upsert it through the ingest engine; print the report."""
    if args.engine == "ray":
        return _ingest_on_ray(args)
    if len(args.input) > 1:
        raise CliError("several inputs need --engine ray; the local engine reads one file, folder or stdin")
    docs = read_documents(args.input[0])
    with _store_from_args(args, create=True) as (store, provider):
        try:
            report = store.ingest(docs, show_progress=None)
        except InvalidInputError as exc:  # name the input line, not the engine's position
            raise docs.located(exc) from None
        total = store.count()
        if args.json:
            payload = {**report.to_dict(), "location": store.location, "count": total,
                       "model": provider.info.name, "fingerprint": provider.info.fingerprint}
            if store.sparse is not None:
                payload |= {"sparse": store.sparse.info.name, "sparse_fingerprint": store.sparse.info.fingerprint}
            echo(json.dumps(payload))
        else:
            echo(str(report))
            sparse = "" if store.sparse is None else f" + sparse {store.sparse.info.name}"
            echo(f"{store.db} collection {store.collection!r} at {store.location} now holds {total} documents "
                 f"({provider.info.name}, {provider.info.backend}{sparse})")
    return 0


def _ingest_on_ray(args: argparse.Namespace) -> int:
    """``--engine ray``: the files through Ray's readers into :func:`vecembed.distributed.ingest_dataset`."""
    import ray

    from vecembed import distributed  # first: a missing extra names `pip install 'vecembed[ray]'`

    path, url = _location(args, args.db)
    sparse, sparse_options = _sparse_name_and_options(args)
    joined = not ray.is_initialized()
    if joined:
        ray.init(address=args.address, logging_level=logging.WARNING)
    try:
        with dropped_stderr_lines(RAY_ACTOR_ARGS_LINE):
            report = distributed.ingest_dataset(
                distributed.read_dataset(args.input), db=args.db, collection=args.collection, url=url,
                path=None if path is None else str(path), backend=args.backend or default_backend(),
                model=args.model, provider_options=parse_options(args.opt), concurrency=args.workers,
                adopt=args.adopt, sparse=sparse, sparse_options=sparse_options)
    finally:
        if joined:
            ray.shutdown()
    backend = store_factory(args.db)(args.collection, provider=cast(Any, None), path=None if path is None else
                                     str(path), url=url, client=None)
    try:
        total = backend.count()
        state = backend.state()
    finally:
        backend.close()
    location = url or str(path)
    # the sparse provider as the collection records it (the local engine prints its provider's info: the same)
    recorded = None if state is None or state.identity is None or not state.identity.has_sparse else state.identity
    if args.json:
        payload = {**report.to_dict(), "location": location, "count": total, "engine": "ray"}
        if recorded is not None:
            payload |= {"sparse": recorded.sparse_model, "sparse_fingerprint": recorded.sparse_fingerprint}
        echo(json.dumps(payload))
    else:
        echo(str(report))
        with_sparse = "" if recorded is None else f" + sparse {recorded.sparse_model}"
        echo(f"{args.db} collection {args.collection!r} at {location} now holds {total} documents "
             f"(Ray Data{with_sparse})")
    return 0


def format_hits(hits: Sequence[Hit], width: int = 100, *, metadata: bool = True) -> list[str]:
    """Human-readable result lines: rank, score, id, text (shortened), and the metadata unless ``metadata=False``."""
    lines = []
    for rank, hit in enumerate(hits, 1):
        text = " ".join(hit.text.split())
        if len(text) > width:
            text = text[: width - 1] + "…"
        meta = f"  {json.dumps(dict(hit.metadata), ensure_ascii=False)}" if hit.metadata and metadata else ""
        lines.append(f"{rank:>2}. {hit.score:.4f}  [{hit.id}]  {text}{meta}")
    return lines


def parse_where(items: Sequence[str] | None) -> dict[str, Any]:
    """``["lang=en", "year=2024"]`` -> ``{"lang": "en", "year": 2024}`` (numbers and true/false typed)."""
    return parse_key_values(items, "--where", "lang=en")


def cmd_search(args: argparse.Namespace) -> int:
    """Search a collection; print the hits (or JSON)."""
    where = parse_where(args.where)
    with _store_from_args(args, create=False) as (store, _provider):
        hits = store.search(args.query, k=args.limit, where=where, mode=args.mode)
    if args.json:
        echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
    else:
        empty = "(no document matches --where)" if where else "(no results: the collection is empty)"
        for line in format_hits(hits) or [empty]:
            echo(line)
    return 0
