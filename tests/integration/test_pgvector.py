"""The pgvector store against a real PostgreSQL (``pg_url``): what the conformance suite cannot say for every store.

Names and metadata keys that look like SQL reach PostgreSQL as identifiers and
parameters only; a failed batch leaves nothing; pools and connections passed in
stay the caller's; long collection names do not collide; concurrent creates agree.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pg_fixtures import PgRaw, pg_url  # noqa: F401
from psycopg import sql
from psycopg_pool import ConnectionPool
from vecembed_pgvector import REGISTRY_TABLE, open_pgvector_store, table_name

import vecembed
from vecembed.errors import IngestError, InvalidInputError, ProviderUnavailableError
from vecembed.identity import CollectionIdentity
from vecembed.records import Record

pytestmark = pytest.mark.integration

HOSTILE = 'docs"; DROP TABLE canary; --'


@pytest.fixture
def provider() -> Iterator[Any]:
    with vecembed.load_provider("mock", dimension=16) as p:
        yield p


@pytest.fixture
def raw(pg_url: str) -> PgRaw:  # noqa: F811
    return PgRaw(pg_url)


@pytest.fixture
def canary(pg_url: str) -> Iterator[str]:  # noqa: F811
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS canary (x int)")
    yield "canary"
    with psycopg.connect(pg_url) as conn:
        conn.execute("DROP TABLE IF EXISTS canary")


def _canary_alive(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass('canary') IS NOT NULL").fetchone() == (True,)


def test_names_and_keys_with_quotes_and_semicolons_are_data(
    pg_url: str, raw: PgRaw, provider: Any, canary: str  # noqa: F811
) -> None:
    name = f"{HOSTILE} {uuid.uuid4().hex[:6]}"
    key = "lang'); DROP TABLE canary; --"
    docs = [{"id": f"x'; DROP TABLE canary; --{i}", "text": f"text {i}", "metadata": {key: "en" if i % 2 else "de",
             'a"b': i}} for i in range(10)]
    with vecembed.open_store("pgvector", name, provider, url=pg_url) as store:
        assert store.ingest(docs).written == 10
        hits = store.search("text 3", k=10, where={key: "en"})
        assert sorted(h.id for h in hits) == sorted(d["id"] for d in docs[1::2])
        assert hits[0].metadata[key] == "en" and set(hits[0].metadata) == {key, 'a"b'}
        assert store.search("text 3", k=3, where={'a"b': 4})[0].id == docs[4]["id"]
        assert store.delete([docs[0]["id"]]) == 1 and store.count() == 9
    assert _canary_alive(pg_url)
    assert raw.count(name) == 9  # the table is named exactly after the collection, quotes and all
    assert raw.registry(name) is not None
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT relname FROM pg_class WHERE relname = %s", [table_name(name)]).fetchone()
    assert row == (f"vecembed_{name}",)
    raw.delete_collection(name)


def test_a_failed_batch_leaves_nothing(pg_url: str, raw: PgRaw, provider: Any) -> None:  # noqa: F811
    name = f"atomic-{uuid.uuid4().hex[:8]}"
    # Texts of one length keep their order (the engine sorts by length, stably): batch 2 is d10..d19.
    docs = [{"id": f"d{i}", "text": f"text {i:02d}"} for i in range(20)]
    docs[15]["text"] = "boom 15"
    with vecembed.open_store("pgvector", name, provider, url=pg_url) as store:
        store.ingest([("seed", "creates the table")])
        store.delete(["seed"])
        with psycopg.connect(pg_url, autocommit=True) as conn:  # a row the database itself refuses, mid-batch
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT no_boom CHECK (text NOT LIKE 'boom%%')").format(
                sql.Identifier(table_name(name))))
        with pytest.raises(IngestError, match="no_boom"):
            store.ingest(docs, batch_size=10)
        # The first batch of 10 committed; of the second, which failed at its 6th record, nothing.
        assert store.count() == 10 == raw.count(name)
        assert store.backend.stored_hashes([f"d{i}" for i in range(20)]).keys() == {f"d{i}" for i in range(10)}
    raw.delete_collection(name)


def test_a_pool_or_a_connection_passed_in_stays_the_callers(
    pg_url: str, raw: PgRaw, provider: Any  # noqa: F811
) -> None:
    name = f"client-{uuid.uuid4().hex[:8]}"
    with ConnectionPool(pg_url, min_size=1, max_size=2, open=True) as pool:
        with vecembed.open_store("pgvector", name, provider, client=pool) as store:
            assert store.ingest(["one", "two", "three"]).written == 3
            assert "password" not in store.location
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table_name(name)))
                                ).fetchone() == (3,)
    with psycopg.connect(pg_url) as conn:
        with vecembed.open_store("pgvector", name, provider, client=conn) as store:
            assert store.ingest(["one", "four"]).written == 1
            assert store.search("four", k=1)[0].text == "four"
        assert not conn.closed
    assert raw.count(name) == 4
    raw.delete_collection(name)


def test_long_names_do_not_collide_and_collections_is_not_the_registry(
    pg_url: str, raw: PgRaw, provider: Any  # noqa: F811
) -> None:
    stem = "a-very-long-collection-name-" * 3
    names = [f"{stem}one-{uuid.uuid4().hex[:4]}", f"{stem}two-{uuid.uuid4().hex[:4]}", "collections"]
    assert len({table_name(n) for n in names}) == 3 and REGISTRY_TABLE not in {table_name(n) for n in names}
    assert all(len(table_name(n).encode()) <= 63 for n in names)
    for i, name in enumerate(names):
        with vecembed.open_store("pgvector", name, provider, url=pg_url) as store:
            store.ingest([f"doc {j}" for j in range(i + 1)])
    assert [raw.count(n) for n in names] == [1, 2, 3]
    for name in names:
        raw.delete_collection(name)


def test_concurrent_creates_agree(pg_url: str, raw: PgRaw) -> None:  # noqa: F811
    name = f"race-{uuid.uuid4().hex[:8]}"
    identity = CollectionIdentity(fingerprint="fp-race", model="m", dimension=8)
    stores = [open_pgvector_store(name, url=pg_url) for _ in range(4)]
    errors: list[BaseException] = []

    def create(store: Any) -> None:
        try:
            store.create(identity)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = stores[0].state()
    assert state is not None and state.identity == identity and state.dimension == 8
    for store in stores:
        store.close()
    raw.delete_collection(name)


def test_a_registry_row_without_its_table_is_not_a_collection(pg_url: str, raw: PgRaw) -> None:  # noqa: F811
    name = f"stale-{uuid.uuid4().hex[:8]}"
    old = CollectionIdentity(fingerprint="fp-old", model="old", dimension=8)
    new = CollectionIdentity(fingerprint="fp-new", model="new", dimension=4)
    store = open_pgvector_store(name, url=pg_url)
    store.create(old)
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table_name(name))))
    assert store.state() is None and store.count() == 0
    store.create(new)
    state = store.state()
    assert state is not None and state.identity == new and state.dimension == 4
    store.record_identity(new)  # upsert: idempotent
    assert raw.registry(name) == new.to_metadata()
    store.close()
    raw.delete_collection(name)


def test_filtered_search_past_ef_search_returns_every_match(pg_url: str, raw: PgRaw) -> None:  # noqa: F811
    name = f"iter-{uuid.uuid4().hex[:8]}"
    store = open_pgvector_store(name, url=pg_url, ef_search=10)
    store.create(CollectionIdentity(fingerprint="fp", model="m", dimension=8))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 8)).astype(np.float32)
    records = [Record(id=str(i), text=str(i), metadata={"rare": i % 50 == 0, "tags": ["x", i]},
                      content_hash=str(i)) for i in range(600)]
    store.write(records, vectors)
    rare = store.query(vectors[:1], k=100, where={"rare": True})[0]
    assert sorted(int(h.id) for h in rare) == list(range(0, 600, 50))
    assert len(store.query(vectors[:1], k=250, where=None)[0]) == 250  # more than ef_search: raised to k
    assert store.query(vectors[3:4], k=1, where=None)[0][0].metadata == {"rare": False, "tags": ["x", 3]}
    store.close()
    raw.delete_collection(name)


def test_health_and_an_unreachable_server(pg_url: str, provider: Any) -> None:  # noqa: F811
    store = open_pgvector_store("health", url=pg_url)
    report = store.health()
    assert report.ok and report.checks == {"reachable": True, "vector": True} and "vector 0." in report.detail
    store.close()
    with pytest.raises(ProviderUnavailableError, match=r"no PostgreSQL server answers at postgresql://u@127\.0\.0\.1:9/"):
        open_pgvector_store("x", url="postgresql://u:secret@127.0.0.1:9/db", timeout=1)
    with pytest.raises(InvalidInputError, match=r"needs url= .* or client="):
        vecembed.open_store("pgvector", "x", provider, path="/tmp/somewhere")


def test_a_connection_killed_by_the_server_is_retried(pg_url: str, raw: PgRaw, provider: Any) -> None:  # noqa: F811
    name = f"killed-{uuid.uuid4().hex[:8]}"
    with ConnectionPool(pg_url, min_size=1, max_size=1, open=True) as pool, vecembed.open_store(
        "pgvector", name, provider, client=pool, retry_backoff=0.0
    ) as store:
        store.ingest([f"first {i}" for i in range(5)])
        with pool.connection() as conn:  # the pool's one connection
            pid = conn.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        report = store.ingest([f"second {i}" for i in range(5)])
        assert (report.written, report.retries) == (5, 1)  # the dead connection failed once, a new one wrote
        assert store.count() == 10 == raw.count(name)
    raw.delete_collection(name)
