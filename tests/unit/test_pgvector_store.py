"""The pgvector store without a server: naming, redaction, what the factory refuses, what counts as transient."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("psycopg", reason="pip install 'vecembed[pgvector]'")
pytest.importorskip("pgvector", reason="pip install 'vecembed[pgvector]'")

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from vecembed_pgvector import REGISTRY_TABLE, PgvectorStore, is_transient, open_pgvector_store, redact, table_name

import vecembed
from vecembed.errors import InvalidInputError
from vecembed.store import VectorStore


def test_registered_as_a_store() -> None:
    assert "pgvector" in vecembed.available_stores()
    pool: ConnectionPool = ConnectionPool("", open=False)
    store = open_pgvector_store("docs", client=pool)
    assert isinstance(store, VectorStore) and isinstance(store, PgvectorStore)
    assert (store.db, store.nested_metadata, store.collection) == ("pgvector", True, "docs")
    store.close()  # a pool passed in stays the caller's: not closed (it was never opened either)


@pytest.mark.parametrize(
    ("collection", "table"),
    [("docs", "vecembed_docs"), ('a"; DROP TABLE x; --', 'vecembed_a"; DROP TABLE x; --')],
)
def test_table_names(collection: str, table: str) -> None:
    assert table_name(collection) == table


def test_long_names_are_cut_with_a_hash_and_collections_is_not_the_registry() -> None:
    one, two = "é" * 40 + "one", "é" * 40 + "two"
    assert table_name(one) != table_name(two)
    assert all(len(table_name(n).encode()) <= 63 for n in (one, two))
    assert table_name(one) == table_name(one)  # deterministic: the same collection finds its table again
    assert table_name("collections") != REGISTRY_TABLE


@pytest.mark.parametrize(
    ("conninfo", "shown"),
    [
        ("postgresql://user:secret@db.example:5432/vec", "postgresql://user@db.example:5432/vec"),
        ("postgresql://user@host/vec?password=secret&sslmode=require", "postgresql://user@host/vec?sslmode=require"),
        ("postgresql://postgres:@/postgres?host=/tmp/pg", "postgresql://postgres@/postgres?host=/tmp/pg"),
        ("host=db user=u password=secret dbname=vec", "host=db user=u dbname=vec"),
    ],
)
def test_redact_drops_the_password(conninfo: str, shown: str) -> None:
    got = redact(conninfo)
    # key=value strings come back in libpq's order, so compare their pairs
    assert got == shown if "://" in conninfo else set(got.split()) == set(shown.split())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "/tmp/x"}, r"pgvector is a server: it needs url= .* not path="),
        ({}, "give url="),
        ({"url": "http://127.0.0.1:6333"}, "postgresql:// URL"),
        ({"url": "postgresql://h/db", "vector_name": "v"}, r"no options \['vector_name'\]"),
        ({"client": object()}, "ConnectionPool or a psycopg.Connection"),
        ({"url": "postgresql://h/db", "pool_size": 0}, "pool_size"),
        ({"client": ConnectionPool("", open=False), "m": 1}, "m must be an int from 2"),
        ({"client": ConnectionPool("", open=False), "ef_search": 5000}, "ef_search must be"),
    ],
)
def test_the_factory_refuses_with_a_reason(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        open_pgvector_store("docs", **kwargs)


def test_transient_errors() -> None:
    assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_transient(PoolTimeout("couldn't get a connection after 10.00 sec"))
    assert is_transient(psycopg.errors.SerializationFailure("could not serialize access"))
    assert is_transient(ConnectionResetError())
    assert not is_transient(psycopg.errors.UndefinedTable("relation does not exist"))
    assert not is_transient(psycopg.DataError("NUL bytes"))
    assert not is_transient(ValueError("bad"))
