"""Peak memory of one migration, in a process of its own: ``python migrate_rss.py N`` prints ru_maxrss (KiB).

The source is a synthetic store that makes its N records on the fly (text ~60 characters, metadata) and the
target a store that keeps only ``{id: content hash}``: the figure is the migration's own memory (scan pages,
engine chunks, the catch-up), not a database's. Registered as the ``synthetic`` store for this process only.
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any

import vecembed
from vecembed.identity import CollectionIdentity
from vecembed.records import Record, content_hash
from vecembed.store import STORE_ENTRY_POINTS, CollectionState, Hit, _entry_points
from vecembed.types import Embeddings, HealthReport


def record(i: int) -> Record:
    text = f"document {i} says something about topic {i % 97} and number {i}"
    meta = {"n": i, "topic": f"t{i % 97}"}
    return Record(id=f"d{i}", text=text, metadata=meta, content_hash=content_hash(text.encode(), meta))


class Database:
    def __init__(self, n: int, identity: CollectionIdentity) -> None:
        self.n, self.source_identity = n, identity
        self.aliases: dict[str, str] = {"docs": "source"}
        self.targets: dict[str, dict[str, str]] = {}
        self.identities: dict[str, CollectionIdentity] = {}


class SyntheticStore:
    db = "synthetic"
    nested_metadata = True
    location = "synthetic"

    def __init__(self, database: Database, collection: str) -> None:
        self.database, self.collection = database, collection

    # source ("source") or target (any other name): the target keeps id -> hash only
    def _kept(self) -> dict[str, str] | None:
        return self.database.targets.get(self.collection)

    def state(self) -> CollectionState | None:
        if self.collection == "source":
            return CollectionState(identity=self.database.source_identity, dimension=8, distance="cosine")
        identity = self.database.identities.get(self.collection)
        return (
            None
            if identity is None
            else CollectionState(identity=identity, dimension=identity.dimension, distance="cosine")
        )

    def create(self, identity: CollectionIdentity) -> None:
        self.database.targets.setdefault(self.collection, {})
        self.database.identities.setdefault(self.collection, identity)

    def record_identity(self, identity: CollectionIdentity) -> None:
        self.database.identities[self.collection] = identity

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        kept = self._kept()
        assert kept is not None
        kept.update((r.id, r.content_hash) for r in records)

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        if self.collection == "source":
            n = self.database.n
            return {i: record(int(i[1:])).content_hash for i in ids if i[:1] == "d" and int(i[1:]) < n}
        kept = self._kept() or {}
        return {i: kept[i] for i in ids if i in kept}

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        if self.collection == "source":
            for lo in range(0, self.database.n, batch_size):
                yield [record(i) for i in range(lo, min(lo + batch_size, self.database.n))]
            return
        ids = list(self._kept() or {})
        for lo in range(0, len(ids), batch_size):
            yield [record(int(i[1:])) for i in ids[lo : lo + batch_size]]

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        return [[] for _ in vectors]

    def count(self) -> int:
        return self.database.n if self.collection == "source" else len(self._kept() or {})

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            (self._kept() or {}).pop(i, None)

    def health(self) -> HealthReport:
        return HealthReport(ok=True, latency_ms=0.0, detail="synthetic")

    def is_transient(self, exc: BaseException) -> bool:
        return False

    def close(self) -> None:
        pass

    def aliases(self) -> dict[str, str]:
        return dict(self.database.aliases)

    def set_alias(self, alias: str, collection: str) -> None:
        self.database.aliases[alias] = collection

    def drop_alias(self, alias: str) -> bool:
        return self.database.aliases.pop(alias, None) is not None

    def for_collection(self, collection: str) -> SyntheticStore:
        return SyntheticStore(self.database, collection)


def open_synthetic(collection: str, *, client: Database, **_: Any) -> SyntheticStore:
    return SyntheticStore(client, collection)


def main() -> None:
    n = int(sys.argv[1])
    _entry_points()["synthetic"] = metadata.EntryPoint(
        name="synthetic", value="migrate_rss:open_synthetic", group=STORE_ENTRY_POINTS
    )
    with vecembed.load_provider("mock", dimension=8) as old, vecembed.load_provider("mock", dimension=16) as new:
        database = Database(n, CollectionIdentity.of(old.info))
        report = vecembed.migrate("synthetic", "docs", new, client=database)
    assert report.documents == n == report.embedded, report
    print(
        json.dumps(
            {
                "n": n,
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "seconds": round(report.seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
