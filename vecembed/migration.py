"""Model migration: re-embed a live collection into another model's space, catch up, then switch an alias.

::

    report = vecembed.migrate("qdrant", "docs", vecembed.load_provider("onnx"), path="./data")
    # "docs" is an alias (or give alias="docs" for a plain collection):
    #   1. copy      every record of the collection "docs" points at is read back (ids, texts, metadata:
    #                every store keeps them) and written through the one ingest engine into the target
    #                collection, whose identity is the new model (default name: <source>__<model>-<backend>-<hash>)
    #   2. catch-up  the source is read again: documents added or changed meanwhile (content hash) are
    #                embedded, documents deleted meanwhile are deleted from the target, until a pass finds
    #                nothing to do (at most MAX_CATCH_UP_PASSES)
    #   3. switch    the alias moves to the target in one atomic step; the old collection stays
    vecembed.migrate("qdrant", "docs", rollback=True, path="./data")    # the alias back at the old collection
    vecembed.migrate("qdrant", "docs", drop_old=True, path="./data")    # the old collection dropped

Resumable: the target's name is derived from the source and the model, so a re-run after a crash
finds the target it began and the engine embeds only documents missing from it (or changed);
a re-run after the switch finishes the catch-up and reports the migration done. The target records
the collection it was copied from (``vecembed:migrated_from``): that is what a rollback points the
alias back at and what ``drop_old`` drops.

Readers that open the alias keep their collection until the switch; Chroma and Qdrant Edge re-check
the alias on search, so a reader with the old provider gets :class:`~vecembed.errors.ModelMismatchError`
after the switch naming the alias and the new model, never another model's vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from vecembed.collection import Store
from vecembed.errors import CollectionNotFoundError, InvalidInputError, UnsupportedError
from vecembed.identity import CollectionIdentity, sparse_provider_name
from vecembed.ingest import DEFAULT_BATCH_SIZE
from vecembed.progress import Progress
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Document
from vecembed.sparse import SparseEmbeddingProvider, check_sparse_argument, load_sparse_provider
from vecembed.store import AliasStore, DropStore, VectorStore, store_factory
from vecembed.types import ModelInfo

__all__ = ["KILL_ENV", "MAX_CATCH_UP_PASSES", "MigrationReport", "default_target_name", "migrate"]

#: Catch-up passes at most: each re-reads the source; writers that never pause would otherwise keep it going.
MAX_CATCH_UP_PASSES = 3

#: For crash tests only: ``copy:N`` (after N documents read), ``catch-up`` or ``switch`` (as each begins)
#: makes the migrating process SIGKILL itself there.
KILL_ENV = "VECEMBED_MIGRATE_KILL_AT"

#: Records per page read from the source (at least the engine's batch size).
SCAN_BATCH_SIZE = 512

#: Called with each phase's name as it begins ("copy", "catch-up", "switch"): tests use it to act mid-migration.
phase_hooks: list[Callable[[str], None]] = []


@dataclass(frozen=True, kw_only=True)
class MigrationReport:
    """What one :func:`migrate` call did.

    ``source`` / ``target``: the collection the alias pointed at before and points at after (for a
    rollback: the migrated collection and the one restored). ``documents``: records in the target
    at the end. ``embedded``: documents this call embedded (copy and catch-up); ``skipped``: found
    already in the target, unchanged (a resumed run); ``deleted``: removed from the target because
    the source lost them during the copy. ``switched``: the alias moved; ``dropped``: the collection
    dropped (``drop_old``), or None.
    """

    db: str
    alias: str | None
    source: str
    target: str
    source_model: str
    target_model: str
    documents: int = 0
    embedded: int = 0
    skipped: int = 0
    deleted: int = 0
    catch_up_passes: int = 0
    switched: bool = False
    rolled_back: bool = False
    dropped: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out

    def __str__(self) -> str:
        if self.rolled_back:
            head = f"{self.db}: alias {self.alias!r} rolled back from {self.source!r} to {self.target!r}"
        elif self.embedded or self.catch_up_passes or self.switched:
            moved = f"; alias {self.alias!r} -> {self.target!r}" if self.switched else ""
            head = (
                f"{self.db}: migrated {self.source!r} ({self.source_model}) -> {self.target!r} ({self.target_model}): "
                f"{self.documents} documents, {self.embedded} embedded, {self.skipped} already there, "
                f"{self.deleted} deleted, {self.catch_up_passes} catch-up passes{moved}"
            )
        else:
            head = f"{self.db}: alias {self.alias!r} points at {self.target!r}"
        dropped = f"; dropped {self.dropped!r}" if self.dropped else ""
        return f"{head}{dropped} ({self.seconds:.2f} s)"


def default_target_name(source: str, info: ModelInfo) -> str:
    """The target collection of a migration of ``source`` to the model of ``info``: stable, so a re-run resumes.

    ``<source>__<model>-<backend>-<8 hex of the fingerprint>``; a source that an earlier migration
    made (``docs__...``) gives its original name's prefix (``docs``), so names do not grow.
    """
    base = source.split("__", 1)[0] or source
    model = re.sub(r"[^a-z0-9]+", "-", info.name.rsplit("/", 1)[-1].lower()).strip("-") or "model"
    digest = hashlib.sha256(info.fingerprint.encode()).hexdigest()[:8]
    return f"{base}__{model}-{info.backend}-{digest}"


def _phase(name: str) -> None:
    for hook in list(phase_hooks):
        hook(name)
    if os.environ.get(KILL_ENV) == name:
        _kill()


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_after() -> int | None:
    point, _, count = os.environ.get(KILL_ENV, "").partition(":")
    return int(count) if point == "copy" and count.isdigit() else None


class _Database:
    """One connection to the database and the collections opened through it (closed in reverse order)."""

    def __init__(
        self, db: str, first: str, provider: EmbeddingProvider | None, path: str | None, url: str | None, client: Any
    ) -> None:
        given = [n for n, v in (("path", path), ("url", url), ("client", client)) if v is not None]
        if len(given) > 1:
            raise InvalidInputError(f"give one of path=, url= or client=, not {' and '.join(given)}")
        self.db = db
        # Opening the first name validates it like a collection name (aliases obey the same rule). The new
        # provider goes to the store so that a Chroma target carries its embedding function.
        self.anchor: VectorStore = store_factory(db)(
            first, provider=provider, path=None if path is None else str(path), url=url, client=client
        )
        self.opened: list[VectorStore] = []
        if not isinstance(self.anchor, AliasStore):
            self.anchor.close()
            raise UnsupportedError(
                f"the {db} store keeps no aliases, so it cannot migrate a collection behind one; stores that can: "
                "memory, chroma, qdrant, qdrant-edge, pgvector"
            )
        self.aliases: AliasStore = self.anchor

    def open(self, collection: str) -> VectorStore:
        """A store of ``collection`` on the anchor's connection (a Qdrant folder or memory allows only one)."""
        store = self.aliases.for_collection(collection)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in reversed(self.opened):
            store.close()
        self.anchor.close()


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} must be a non-empty str, got {value!r}")
    return value


def _documents(store: VectorStore, size: int, bar: Progress | None = None) -> Iterator[Document]:
    """The source's records as documents, one scan page at a time (memory bounded by a page)."""
    kill_after = _kill_after() if bar is not None else None
    read = 0
    for batch in store.scan(size):
        for record in batch:
            yield Document(record.id, record.text, record.metadata)
        read += len(batch)
        if bar is not None:
            bar.advance(len(batch))
        if kill_after is not None and read >= kill_after:
            _kill()


def _delete_missing(source: VectorStore, target: Store, size: int) -> int:
    """Delete from ``target`` what ``source`` no longer holds; return how many."""
    gone: list[str] = []
    for batch in target.backend.scan(size):
        ids = [r.id for r in batch]
        present = source.stored_hashes(ids)
        gone += [i for i in ids if i not in present]
    # Deleted after the scan, not during it: an offset-paged scan (Chroma) would skip records otherwise.
    for lo in range(0, len(gone), size):
        target.delete(gone[lo : lo + size])
    return len(gone)


def _drop(database: _Database, collection: str, aliases: dict[str, str]) -> str:
    still = sorted(a for a, c in aliases.items() if c == collection)
    if still:
        raise InvalidInputError(
            f"collection {collection!r} is still what alias {still[0]!r} points at; move or drop the alias first; "
            "nothing was dropped"
        )
    store = database.open(collection)
    if not isinstance(store, DropStore):
        raise UnsupportedError(f"the {database.db} store cannot drop a collection; drop {collection!r} yourself")
    store.drop()
    return collection


def migrate(
    db: str,
    source: str,
    new_provider: EmbeddingProvider | None = None,
    *,
    path: str | None = None,
    url: str | None = None,
    client: Any = None,
    target: str | None = None,
    alias: str | None = None,
    batch_size: int | None = None,
    drop_old: bool = False,
    rollback: bool = False,
    show_progress: bool | None = False,
    sparse: str | SparseEmbeddingProvider | None = None,
) -> MigrationReport:
    """Re-embed collection (or alias) ``source`` of ``db`` with ``new_provider`` and switch the alias to it.

    ``source``: an alias (it moves to the new collection) or a collection (then ``alias`` names
    the alias to point at the new collection: the name your application opens). ``path`` /
    ``url`` / ``client``: where the database is, as for :func:`vecembed.open_store`. ``target``:
    the new collection's name (default :func:`default_target_name`). ``batch_size``: documents per
    write. ``drop_old``: drop the old collection after the switch (else it stays, for a rollback).
    ``show_progress``: a bar with documents/s and an ETA (None: on a terminal).
    ``sparse``: the sparse provider (or its registered name) whose vectors the target holds beside the
    dense ones. None: the source's own — a source written with ``sparse=`` keeps its sparse vectors in
    the target (its recorded provider is loaded by name with its default options and must give the
    recorded fingerprint, else pass it here). Given for a dense-only source: the target gains them.

    Without ``new_provider``: ``rollback=True`` points alias ``source`` back at the collection its
    current one was migrated from; ``drop_old=True`` drops that previous collection.

    Raises :class:`~vecembed.errors.InvalidInputError` when the source already holds the new model's
    vectors (nothing is written), :class:`~vecembed.errors.CollectionNotFoundError` when the source
    (or the collection an alias names) does not exist, :class:`~vecembed.errors.ModelMismatchError`
    when ``target`` exists with a third model's vectors.
    """
    start = time.perf_counter()
    _check_name("source", source)
    for what, value in (("alias", alias), ("target", target)):
        if value is not None:
            _check_name(what, value)
    if new_provider is None and not (rollback or drop_old):
        raise InvalidInputError(
            "give new_provider (the model to migrate to), or rollback=True / drop_old=True for alias "
            f"{source!r}; nothing was done"
        )
    if rollback and (new_provider is not None or drop_old or target is not None):
        raise InvalidInputError(
            "rollback=True takes the alias as source and nothing else (no provider, target, drop_old); nothing was done"
        )
    if new_provider is not None and not isinstance(new_provider, EmbeddingProvider):
        raise InvalidInputError(f"new_provider must be an EmbeddingProvider, got {type(new_provider).__name__}")
    database = _Database(db, source, new_provider, path, url, client)
    try:
        aliases = database.aliases.aliases()
        if source in aliases:
            if alias is not None and alias != source:
                raise InvalidInputError(
                    f"{source!r} is an alias (of {aliases[source]!r}): it is the alias that moves; leave alias= out"
                )
            alias, source_col = source, aliases[source]
        else:
            source_col = source
        if new_provider is None:
            return _finish(database, aliases, alias, source, source_col, rollback=rollback, start=start)
        return _migrate(
            database,
            aliases,
            alias,
            source_col,
            new_provider,
            target=target,
            batch_size=batch_size,
            drop_old=drop_old,
            show_progress=show_progress,
            start=start,
            sparse=sparse,
        )
    finally:
        database.close()


def _state_of(database: _Database, collection: str, alias: str | None) -> Any:
    state = database.open(collection).state()
    if state is None:
        via = f"alias {alias!r} names collection {collection!r}, which" if alias else f"collection {collection!r}"
        raise CollectionNotFoundError(
            f"{database.db}: {via} does not exist; nothing was done",
            db=database.db,
            collection=collection,
            location=database.anchor.location,
        )
    return state


def _finish(
    database: _Database,
    aliases: dict[str, str],
    alias: str | None,
    source: str,
    current: str,
    *,
    rollback: bool,
    start: float,
) -> MigrationReport:
    """Rollback or drop_old for alias ``alias`` (pointing at ``current``)."""
    if alias is None:
        raise InvalidInputError(
            f"{source!r} is not an alias of {database.db}; rollback and drop_old act on the alias a migration moved"
        )
    identity = _state_of(database, current, alias).identity
    previous = identity.migrated_from if identity is not None else ""
    if not previous:
        raise InvalidInputError(
            f"alias {alias!r} points at collection {current!r}, which no migration made: there is no previous "
            f"collection to {'roll back to' if rollback else 'drop'}; nothing was done"
        )
    model = identity.model if identity is not None else "unknown model"
    if rollback:
        old = _state_of(database, previous, None).identity
        database.aliases.set_alias(alias, previous)
        return MigrationReport(
            db=database.db,
            alias=alias,
            source=current,
            target=previous,
            source_model=model,
            target_model=old.model if old is not None else "unknown model",
            documents=database.open(previous).count(),
            switched=True,
            rolled_back=True,
            seconds=time.perf_counter() - start,
        )
    dropped = _drop(database, previous, aliases)
    return MigrationReport(
        db=database.db,
        alias=alias,
        source=previous,
        target=current,
        source_model="",
        target_model=model,
        documents=database.open(current).count(),
        dropped=dropped,
        seconds=time.perf_counter() - start,
    )


def _target_sparse(
    db: str, source_col: str, recorded: CollectionIdentity, sparse: str | SparseEmbeddingProvider | None
) -> tuple[SparseEmbeddingProvider | None, bool]:
    """The target's sparse provider (carried over from the source unless ``sparse`` names one) and whether it was
    loaded here (then the target store closes it)."""
    sparse = check_sparse_argument(sparse)
    if isinstance(sparse, SparseEmbeddingProvider):
        return sparse, False
    if sparse is None and not recorded.has_sparse:
        return None, False
    name = sparse if isinstance(sparse, str) else sparse_provider_name(recorded)
    loaded = load_sparse_provider(name)
    if sparse is None and loaded.info.fingerprint != recorded.sparse_fingerprint:
        loaded.close()
        raise InvalidInputError(
            f"{db} collection {source_col!r} holds sparse vectors of {recorded.describe_sparse()}, which "
            f"load_sparse_provider({name!r}) with its default options does not give: pass that provider as "
            "sparse= (vecembed.load_sparse_provider(name, **the options it was written with)); nothing was written"
        )
    return loaded, True


def _migrate(
    database: _Database,
    aliases: dict[str, str],
    alias: str | None,
    source_col: str,
    provider: EmbeddingProvider,
    *,
    target: str | None,
    batch_size: int | None,
    drop_old: bool,
    show_progress: bool | None,
    start: float,
    sparse: str | SparseEmbeddingProvider | None = None,
) -> MigrationReport:
    info = provider.info
    state = _state_of(database, source_col, alias)
    if state.identity is None:
        raise InvalidInputError(
            f"{database.db} collection {source_col!r} records no vecembed identity, so nothing says which model "
            "wrote it; adopt it first (open_store(..., adopt=True)); nothing was written"
        )
    if state.identity.fingerprint == info.fingerprint:
        previous = state.identity.migrated_from
        if not (alias and previous and database.open(previous).state() is not None):
            raise InvalidInputError(
                f"{database.db} collection {source_col!r} already holds vectors of {state.identity.describe()}, the "
                f"model to migrate to: there is nothing to migrate; nothing was written"
            )
        # The alias already moved (a re-run after the switch): finish from the collection it was copied from.
        target, source_col = source_col, previous
        state = _state_of(database, source_col, None)
        if state.identity is None or state.identity.fingerprint == info.fingerprint:
            raise InvalidInputError(f"{database.db} collection {source_col!r} holds the new model too; nothing to do")
    target_col = target or default_target_name(source_col, info)
    if target_col == source_col:
        raise InvalidInputError(f"target {target_col!r} is the source collection itself; name another")
    if alias is None:
        raise InvalidInputError(
            f"{source_col!r} is a collection, not an alias: give alias= (the name your application opens; it will "
            f"point at the new collection {target_col!r}), or migrate an alias; nothing was written"
        )
    if alias in (source_col, target_col) or (alias not in aliases and database.open(alias).state() is not None):
        raise InvalidInputError(
            f"alias {alias!r} is the name of a collection of {database.db}; an alias needs a name of its own; "
            "nothing was written"
        )
    source_store = database.open(source_col)
    backend = database.open(target_col)
    sparse_provider, owns_sparse = _target_sparse(database.db, source_col, state.identity, sparse)
    # Refuses a target of a third model (or another sparse provider), before any write.
    target_store = Store(backend, provider, create=True, sparse=sparse_provider, owns_sparse=owns_sparse)
    size = max(batch_size or DEFAULT_BATCH_SIZE, SCAN_BATCH_SIZE)

    _phase("copy")
    target_store.claim()  # created now even when the source is empty, so the alias has something to name
    recorded = backend.state()
    if recorded is not None and recorded.identity is not None and recorded.identity.migrated_from != source_col:
        # The target records where it came from: what a rollback points the alias back at.
        backend.record_identity(dataclasses.replace(recorded.identity, migrated_from=source_col))
    label = f"{database.db}: {source_col} -> {target_col}"
    with Progress(label, source_store.count(), enabled=show_progress, rate="documents") as bar:
        copy = target_store.ingest(_documents(source_store, size, bar), batch_size=batch_size)

    _phase("catch-up")
    embedded, deleted, passes = copy.written, 0, 0
    for passes in range(1, MAX_CATCH_UP_PASSES + 1):  # noqa: B007 - the count is reported
        again = target_store.ingest(_documents(source_store, size), batch_size=batch_size)
        gone = _delete_missing(source_store, target_store, size)
        embedded, deleted = embedded + again.written, deleted + gone
        if again.written == 0 and gone == 0:
            break

    _phase("switch")
    switched = aliases.get(alias) != target_col
    if switched:
        database.aliases.set_alias(alias, target_col)
    dropped = None
    if drop_old:
        dropped = _drop(database, source_col, {**aliases, alias: target_col})
    return MigrationReport(
        db=database.db,
        alias=alias,
        source=source_col,
        target=target_col,
        source_model=state.identity.model,
        target_model=info.name,
        documents=target_store.count(),
        embedded=embedded,
        skipped=copy.skipped,
        deleted=deleted,
        catch_up_passes=passes,
        switched=switched,
        dropped=dropped,
        seconds=time.perf_counter() - start,
    )
