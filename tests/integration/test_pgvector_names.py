"""pgvector against a real PostgreSQL (``pg_url``): table names that cannot collide, errors instead of raw psycopg."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pg_fixtures import PgRaw, pg_url  # noqa: F401

pytest.importorskip("psycopg", reason="pip install 'vecembed[pgvector]'")

from vecembed_pgvector import table_name

import vecembed
from vecembed.errors import InvalidInputError

pytestmark = pytest.mark.integration


@pytest.fixture
def provider() -> Iterator[Any]:
    with vecembed.load_provider("mock", dimension=16) as p:
        yield p


def test_a_crafted_name_cannot_reach_a_long_names_table(pg_url: str, provider: Any) -> None:  # noqa: F811
    raw = PgRaw(pg_url)
    long = f"{uuid.uuid4().hex}-" + "a" * 170
    crafted = table_name(long).removeprefix("vecembed_")  # 54 characters: its plain table would be the long one's
    try:
        with vecembed.open_store("pgvector", long, provider, url=pg_url) as store:
            assert store.ingest([("1", "the long name's document")]).written == 1
        with vecembed.open_store("pgvector", crafted, provider, url=pg_url, adopt=True) as store:
            assert store.count() == 0  # a collection of its own, not the long name's table
            store.ingest([("2", "the crafted name's document")])
        assert raw.count(long) == 1 and raw.count(crafted) == 1
    finally:
        raw.delete_collection(long)
        raw.delete_collection(crafted)


def test_nul_names_and_nan_filters_are_clear_errors(pg_url: str, provider: Any) -> None:  # noqa: F811
    with pytest.raises(InvalidInputError, match="cannot contain NUL"):
        vecembed.open_store("pgvector", "a\x00b", provider, url=pg_url)
    name = f"filters-{uuid.uuid4().hex[:8]}"
    try:
        with vecembed.open_store("pgvector", name, provider, url=pg_url) as store:
            store.ingest([{"id": "1", "text": "x", "metadata": {"n": 1, "s": "a"}}])
            with pytest.raises(InvalidInputError, match="no stored value equals NaN"):
                store.search("x", where={"n": float("nan")})
            with pytest.raises(InvalidInputError, match="jsonb holds no NUL"):
                store.search("x", where={"s": "a\x00"})
            assert [h.id for h in store.search("x", where={"n": 1})] == ["1"]
    finally:
        PgRaw(pg_url).delete_collection(name)
