"""PostgreSQL + pgvector for vecembed: the ``pgvector`` store of :func:`vecembed.open_store`.

::

    import vecembed

    provider = vecembed.load_provider("onnx")
    url = "postgresql://postgres:secret@127.0.0.1:5432/postgres"
    with vecembed.open_store("pgvector", "docs", provider, url=url) as store:   # or client=pool / connection
        report = store.ingest(docs)                      # deterministic ids: a re-run writes nothing twice
        hits = store.search("how do I reset it?", k=5, where={"lang": "en"})

Needs ``pip install 'vecembed[pgvector]'`` (psycopg 3, psycopg-pool and the pgvector
adapter) and a PostgreSQL server with the pgvector extension available.
"""

from vecembed._deps import require

# Checked once, here, so that a missing extra says what to install instead of a bare ImportError below.
require("psycopg", "pgvector", "the pgvector store")
require("psycopg_pool", "pgvector", "the pgvector store")
require("pgvector", "pgvector", "the pgvector store")

from vecembed_pgvector.store import (  # noqa: E402
    REGISTRY_TABLE,
    PgvectorStore,
    is_transient,
    open_pgvector_store,
    redact,
    sparse_stats_table_name,
    table_name,
)

__all__ = [
    "REGISTRY_TABLE",
    "PgvectorStore",
    "is_transient",
    "open_pgvector_store",
    "redact",
    "sparse_stats_table_name",
    "table_name",
]
