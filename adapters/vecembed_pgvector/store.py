"""PgvectorStore: PostgreSQL + pgvector's side of the vecembed store contract (a server only).

Only SQL lives here; identity policy, validation, batching, retries and progress
are the shared engine's (:mod:`vecembed.store`, :mod:`vecembed.ingest`).
Registered as the ``pgvector`` entry point of ``vecembed.stores``::

    vecembed.open_store("pgvector", "docs", provider, url="postgresql://user:pass@127.0.0.1:5432/db")
    vecembed.open_store("pgvector", "docs", provider, client=my_pool)   # a psycopg_pool.ConnectionPool
    vecembed.open_store("pgvector", "docs", provider, client=my_conn)   # or a psycopg.Connection

What is stored where: the ``vector`` extension; one table ``vecembed_collections``
(``name``, ``metadata`` jsonb) holding each collection's identity; and a table per
collection, ``vecembed_<collection>`` (``id`` text primary key, ``content_hash``,
``text``, ``metadata`` jsonb, ``embedding vector(dim)``) with an HNSW index
(``vector_cosine_ops``). A collection created with a sparse provider (its identity
names a ``sparse_fingerprint``) also has a ``sparse sparsevec(1000000000)`` column (with
an HNSW index, ``sparsevec_ip_ops``, when opened with ``sparse_hnsw=True``) and a document-frequency table
(:func:`sparse_stats_table_name`) kept in the same transaction as every write and
delete, from which queries are weighted by IDF. The aliases live in ``"vecembed-aliases"`` (``alias``,
``collection``), created by the first alias. Every name reaches SQL as a :mod:`psycopg.sql` identifier
and every value as a parameter; nothing a caller gives is formatted into SQL.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from numpy.typing import NDArray
from pgvector.psycopg.sparsevec import SparseVectorBinaryLoader, SparseVectorLoader
from pgvector.psycopg.vector import register_vector_info
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from vecembed.errors import InvalidInputError, ProviderUnavailableError, UnsupportedError
from vecembed.health import timed_check
from vecembed.identity import CollectionIdentity
from vecembed.records import Record
from vecembed.retry import is_transient_default
from vecembed.sparse import SparseVector, idf
from vecembed.store import CollectionState, Hit
from vecembed.types import Embeddings, HealthReport

__all__ = [
    "ALIAS_TABLE",
    "REGISTRY_TABLE",
    "SPARSE_DIMENSION",
    "SPARSE_HNSW_MAX_NNZ",
    "SPARSE_MAX_NNZ",
    "PgvectorStore",
    "check_collection_name",
    "is_transient",
    "open_pgvector_store",
    "redact",
    "sparse_index",
    "sparse_stats_table_name",
    "table_name",
]

#: The table that records each collection's identity (one row per collection).
REGISTRY_TABLE = "vecembed_collections"
#: The table of aliases (alias -> collection). Not ``vecembed_...``: every collection's table starts so
#: (:func:`table_name`), and a user's collection "aliases" must not meet it.
ALIAS_TABLE = "vecembed-aliases"
_TABLE_PREFIX = "vecembed_"
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1 bytes; longer names are cut silently, so two could collide
#: pg_advisory_xact_lock key ("vece" in hex) that serialises creating tables: CREATE ... IF NOT EXISTS alone
#: still races on the catalog (a duplicate key in pg_type) when two writers create one collection at once.
_CREATE_LOCK = 0x76656365
#: HNSW parameters: pgvector's build defaults (m=16, ef_construction=64); ef_search 100, not pgvector's 40 —
#: measured on 2,000 STS-B sentences (all-MiniLM-L6-v2, 200 queries), recall@10 against exact numpy top-10 was
#: 0.987 at ef_search 40, 0.997 at 60, 0.9995 at 80, 1.000 at 100. Each query raises it to k when k is larger.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 100
_MAX_EF_SEARCH = 1000  # pgvector's upper bound; beyond it the iterative scan supplies the rest

#: pgvector's largest ``sparsevec`` dimension (SPARSEVEC_MAX_DIM in pgvector 0.7-0.8.5). Term ids span 2**32, so
#: they are mapped into it by ``term_id % SPARSE_DIMENSION`` (:func:`sparse_index`) — the same map for documents,
#: statistics and queries; two ids 10**9 apart share a slot (their weights add), which the 32-bit hash of the
#: stems already allows for.
SPARSE_DIMENSION = 1_000_000_000
#: pgvector's most non-zero elements in one ``sparsevec`` (SPARSEVEC_MAX_NNZ); a longer vector is refused before
#: anything is written.
SPARSE_MAX_NNZ = 16_000
#: pgvector's most non-zero elements of a ``sparsevec`` in an HNSW index (HNSW_MAX_NNZ): in a collection created
#: with ``sparse_hnsw=True`` a document with more distinct terms is refused by the index, so the write is refused,
#: naming it (without the index — the default — the limit is SPARSE_MAX_NNZ).
SPARSE_HNSW_MAX_NNZ = 1_000
#: The least candidates a sparse HNSW search considers. Measured on SciFact (5,183 documents, BM25, 809 queries,
#: k=100): ef_search 100 lost 0.013 nDCG@10 and 0.021 Recall@100 against the exact ranking (62 % of top-10 lists
#: identical); 400 and 1,000 matched it (99.6 %), at 51 and 56 queries/s against the exact scan's 72.
SPARSE_EF_SEARCH = 400
#: The row of the document-frequency table that holds the number of documents (term ids are >= 0).
_DOCUMENTS_TERM = -1


#: How a shortened table name ends: ``_`` and 26 base32 characters of the SHA-256 of the whole collection name.
_DIGEST_CHARS = 26
_SHORTENED = re.compile(rf"_[a-z2-7]{{{_DIGEST_CHARS}}}\Z")


def table_name(collection: str) -> str:
    """The table of ``collection``: ``vecembed_<collection>``, or a cut name + digest when that cannot be used.

    Injective, so that two collections never share a table (with ``adopt=True`` one would write into
    the other): a name too long for PostgreSQL (63 bytes), the registry's own name, or a name that
    ends the way shortened names end (``_`` + 26 base32 characters) is cut and given that ending — the
    first 130 bits of the SHA-256 of the whole name, which nobody can craft a second name to match. A
    name kept as it is never has that ending, so the two kinds never meet.
    """
    name = _TABLE_PREFIX + collection
    if len(name.encode()) <= _MAX_IDENTIFIER and name != REGISTRY_TABLE and not _SHORTENED.search(collection):
        return name
    digest = base64.b32encode(hashlib.sha256(collection.encode()).digest()).decode().lower()[:_DIGEST_CHARS]
    room = _MAX_IDENTIFIER - len(_TABLE_PREFIX) - _DIGEST_CHARS - 1
    head = collection.encode()[:room].decode("utf-8", "ignore")
    return f"{_TABLE_PREFIX}{head}_{digest}"


def sparse_stats_table_name(collection: str) -> str:
    """The document-frequency table of ``collection``'s sparse vectors: ``vecembed_df_<head>_<digest>``.

    It always ends like a shortened :func:`table_name` (``_`` + 26 base32 characters), with the digest of
    ``collection + "\\x00df"``: no collection table kept as it is has that ending, and a shortened one
    hashes a name without NUL (collection names cannot hold one), so the two never meet.
    """
    digest = base64.b32encode(hashlib.sha256(f"{collection}\x00df".encode()).digest()).decode().lower()
    prefix = f"{_TABLE_PREFIX}df_"
    room = _MAX_IDENTIFIER - len(prefix) - _DIGEST_CHARS - 1
    head = collection.encode()[:room].decode("utf-8", "ignore")
    return f"{prefix}{head}_{digest[:_DIGEST_CHARS]}"


def sparse_index(vector: SparseVector) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """``vector`` in pgvector's term space: ids modulo :data:`SPARSE_DIMENSION`, weights of ids that meet added."""
    mapped = (vector.indices % np.uint32(SPARSE_DIMENSION)).astype(np.int32)
    if mapped.size < 2 or (np.diff(mapped) > 0).all():
        return mapped, vector.values
    unique, inverse = np.unique(mapped, return_inverse=True)
    summed = np.zeros(unique.size, np.float64)
    np.add.at(summed, inverse, vector.values)
    return unique.astype(np.int32), summed.astype(np.float32)


class _Sparse:
    """A ``sparsevec`` in pgvector's binary format (dimension, nnz, 0, int32 ids, float32 weights, big-endian)."""

    __slots__ = ("data",)

    def __init__(self, indices: NDArray[np.int32], values: NDArray[np.float32]) -> None:
        self.data = (
            struct.pack(">iii", SPARSE_DIMENSION, indices.size, 0)
            + indices.astype(">i4").tobytes()
            + values.astype(">f4").tobytes()
        )


class _SparseDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer | None:
        data: bytes = obj.data
        return data


def check_collection_name(collection: str) -> None:
    """Refuse a collection name PostgreSQL cannot hold (it has no NUL in identifiers or text); any other is quoted."""
    if "\x00" in collection:
        raise InvalidInputError(
            f"collection {collection!r}: a PostgreSQL name cannot contain NUL (\\x00); any other character is allowed"
        )


def redact(conninfo: str) -> str:
    """``conninfo`` (a URL or ``key=value`` string) without its password, for messages."""
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        netloc = parts.netloc.rpartition("@")
        userinfo = netloc[0].partition(":")[0]
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"], safe="/")
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[2]}" if userinfo else netloc[2], query=query))
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(an unreadable connection string)"
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the call that raised ``exc`` may succeed.

    psycopg's ``OperationalError`` covers a lost or refused connection, a server shutting
    down, a pool timeout (``PoolTimeout`` subclasses it), serialisation failures and
    deadlocks; a ``ProgrammingError`` or ``DataError`` (bad SQL, bad data) is not transient.
    """
    return isinstance(exc, psycopg.OperationalError) or is_transient_default(exc)


class PgvectorStore:
    """One pgvector collection (a table) as a :class:`~vecembed.store.VectorStore`."""

    db = "pgvector"
    #: jsonb keeps lists and nested dicts.
    nested_metadata = True
    #: pgvector has no IDF of its own: the store keeps document frequencies (:func:`sparse_stats_table_name`).
    sparse_idf = "store"

    def __init__(
        self,
        client: ConnectionPool | psycopg.Connection[Any],
        collection: str,
        *,
        location: str,
        owns_client: bool = False,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_search: int = HNSW_EF_SEARCH,
        sparse_hnsw: bool = False,
        sparse_ef_search: int = SPARSE_EF_SEARCH,
    ) -> None:
        for key, value, low in (
            ("m", m, 2),
            ("ef_construction", ef_construction, 4),
            ("ef_search", ef_search, 1),
            ("sparse_ef_search", sparse_ef_search, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1000:
                raise InvalidInputError(f"{key} must be an int from {low} to 1000, got {value!r}")
        self.client = client
        self.collection = collection
        self.location = location
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.sparse_hnsw = bool(sparse_hnsw)
        self.sparse_ef_search = sparse_ef_search
        self._owns_client = owns_client
        self._table = sql.Identifier(table_name(collection))
        self._vector_type: TypeInfo | None = None
        self._sparse_type: TypeInfo | None = None
        self._stats = sql.Identifier(sparse_stats_table_name(collection))
        self._registered: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        # One connection passed in cannot hold two transactions: the engine's writer thread and its caller take turns.
        self._lock = threading.Lock() if isinstance(client, psycopg.Connection) else None

    # -- connections --------------------------------------------------------------------------------

    @contextmanager
    def _tx(self, *, vectors: bool = False, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction (committed at the end, rolled back on an error)."""
        if isinstance(self.client, ConnectionPool):
            with self.client.connection(timeout=timeout) as conn, conn.transaction():
                if vectors:
                    self._register(conn)
                yield conn
            return
        assert self._lock is not None
        with self._lock, self.client.transaction():
            if vectors:
                self._register(self.client)
            yield self.client

    def _register(self, conn: psycopg.Connection[Any]) -> None:
        # numpy rows go out in pgvector's binary format. The type is looked up once per store, not per
        # connection (register_vector() would run four catalogue queries on each new pooled connection).
        if conn in self._registered:
            return
        if self._vector_type is None:
            self._vector_type = TypeInfo.fetch(conn, "vector")
            if self._vector_type is None:
                raise ProviderUnavailableError(
                    f"the pgvector extension is not installed in {self.location}; "
                    "run CREATE EXTENSION vector (or let the first ingest create it)"
                )
        register_vector_info(conn, self._vector_type)
        if self._sparse_type is None:
            self._sparse_type = TypeInfo.fetch(conn, "sparsevec")
        if self._sparse_type is not None:  # pgvector < 0.7 has none: sparse collections need 0.7
            oid = self._sparse_type.oid
            conn.adapters.register_dumper(_Sparse, type("_SparsevecDumper", (_SparseDumper,), {"oid": oid}))
            conn.adapters.register_loader(oid, SparseVectorLoader)
            conn.adapters.register_loader(oid, SparseVectorBinaryLoader)
        self._registered.add(conn)

    # -- the collection ---------------------------------------------------------------------------

    def _exists(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [table_name(self.collection)]).fetchone()
        return bool(row and row[0])

    def state(self) -> CollectionState | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL, "
                "(SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s)) "
                "AND attname = 'embedding' AND NOT attisdropped)",
                [REGISTRY_TABLE, table_name(self.collection)],
            ).fetchone()
            has_registry, typmod = (bool(row[0]), row[1]) if row else (False, None)
            if typmod is None:
                # No table (a registry row without its table is left over from a drop: not a collection).
                return None
            metadata = None
            if has_registry:
                found = conn.execute(
                    sql.SQL("SELECT metadata FROM {} WHERE name = %s").format(sql.Identifier(REGISTRY_TABLE)),
                    [self.collection],
                ).fetchone()
                metadata = found[0] if found else None
            identity = CollectionIdentity.from_metadata(metadata)
            count = None
            if identity is None:
                found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table)).fetchone()
                count = int(found[0]) if found else 0
            sparse_field = self._sparse_layout(conn)[0]
        # pgvector keeps a vector column's dimension as its typmod (-1: declared without one).
        dimension = int(typmod) if int(typmod) > 0 else (identity.dimension if identity else None)
        # Queries here always rank by the cosine operator (<=>), whatever index a foreign table carries.
        return CollectionState(
            identity=identity, dimension=dimension, distance="cosine", count=count, sparse_field=sparse_field
        )

    def _ensure_registry(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK])
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, metadata jsonb NOT NULL)").format(
                sql.Identifier(REGISTRY_TABLE)
            )
        )

    def create(self, identity: CollectionIdentity) -> None:
        registry = sql.Identifier(REGISTRY_TABLE)
        with self._tx() as conn:
            self._ensure_registry(conn)
            if self._exists(conn):
                # Created by someone else meanwhile (under the same lock): keep theirs; the caller checks it.
                conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s) ON CONFLICT (name) DO NOTHING").format(registry),
                    [self.collection, Jsonb(identity.to_metadata())],
                )
                return
            # DDL takes no parameters: the sizes are validated ints, rendered as literals; names are identifiers.
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (id text PRIMARY KEY, content_hash text NOT NULL, text text NOT NULL, "
                    "metadata jsonb NOT NULL DEFAULT '{{}}', embedding vector({}) NOT NULL)"
                ).format(self._table, sql.Literal(identity.dimension))
            )
            # No index name: PostgreSQL picks one that is free (any suffix of ours could be another table's name).
            conn.execute(
                sql.SQL(
                    "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = {}, ef_construction = {})"
                ).format(self._table, sql.Literal(self.m), sql.Literal(self.ef_construction))
            )
            if identity.has_sparse:
                self._create_sparse(conn, idf=identity.sparse_idf)
            # A row left over from a dropped table is stale: the new table's identity replaces it.
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET metadata = EXCLUDED.metadata")
                .format(registry),
                [self.collection, Jsonb(identity.to_metadata())],
            )

    def _create_sparse(self, conn: psycopg.Connection[Any], *, idf: bool) -> None:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN sparse sparsevec({})").format(self._table, sql.Literal(SPARSE_DIMENSION))
        )
        if self.sparse_hnsw:
            conn.execute(
                sql.SQL(
                    "CREATE INDEX ON {} USING hnsw (sparse sparsevec_ip_ops) WITH (m = {}, ef_construction = {})"
                ).format(self._table, sql.Literal(self.m), sql.Literal(self.ef_construction))
            )
        # A table left over from a dropped collection of that name holds stale counts: start again.
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._stats))
        if idf:  # a sparse provider whose queries need no IDF (SPLADE-like) gets no statistics to keep
            conn.execute(
                sql.SQL("CREATE TABLE {} (term integer PRIMARY KEY, df bigint NOT NULL)").format(self._stats)
            )

    def _sparse_layout(self, conn: psycopg.Connection[Any]) -> tuple[bool, bool]:
        """``(the table has the sparse column, the document-frequency table exists)``."""
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s)) "
            "AND attname = 'sparse' AND NOT attisdropped), to_regclass(quote_ident(%s)) IS NOT NULL",
            [table_name(self.collection), sparse_stats_table_name(self.collection)],
        ).fetchone()
        return (bool(row[0]), bool(row[1])) if row else (False, False)

    def _require_sparse(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether document frequencies are kept; :class:`UnsupportedError` for a collection without sparse vectors."""
        column, stats = self._sparse_layout(conn)
        if not column:
            raise self._no_sparse()
        return stats

    def _no_sparse(self) -> UnsupportedError:
        return UnsupportedError(
            f"pgvector collection {self.collection!r} in {self.location} was created without sparse vectors; "
            "a collection gains them only by re-ingesting its documents into a new collection opened with sparse="
        )

    def record_identity(self, identity: CollectionIdentity) -> None:
        with self._tx() as conn:
            self._ensure_registry(conn)
            # jsonb || merges: a row's other keys (the user's own) stay.
            conn.execute(
                sql.SQL(
                    "INSERT INTO {0} VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET metadata = {0}.metadata || "
                    "EXCLUDED.metadata"
                ).format(sql.Identifier(REGISTRY_TABLE)),
                [self.collection, Jsonb(identity.to_metadata())],
            )

    # -- records ----------------------------------------------------------------------------------

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        # executemany (psycopg pipelines it: one round trip per batch) inside one transaction, so a failed batch
        # leaves nothing. Measured on the 2-core VM, 128 records of 384-d a batch, PostgreSQL 18 + pgvector 0.8.5,
        # without the HNSW index: executemany with binary vectors 11,800 records/s, COPY (binary) into a temp table
        # + INSERT ... SELECT ... ON CONFLICT 8,400/s, executemany with vectors as text 2,000/s. With the index,
        # its inserts dominate (~2-3 ms a vector): 300-500/s whichever way the rows travel.
        rows = [
            (r.id, r.content_hash, r.text, Jsonb(dict(r.metadata)), row)
            for r, row in zip(records, vectors, strict=True)
        ]
        with self._tx(vectors=True) as conn, conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (id, content_hash, text, metadata, embedding) VALUES (%s, %s, %s, %s, %b) "
                    "ON CONFLICT (id) DO UPDATE SET content_hash = EXCLUDED.content_hash, text = EXCLUDED.text, "
                    "metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding"
                ).format(self._table),
                rows,
            )

    def write_sparse(self, records: Sequence[Record], vectors: Embeddings, sparse: Sequence[SparseVector]) -> None:
        """:meth:`write` with each record's sparse vector, and the document frequencies, in one transaction."""
        if len(sparse) != len(records):
            raise InvalidInputError(f"write_sparse: {len(sparse)} sparse vectors for {len(records)} records")
        mapped = [sparse_index(v) for v in sparse]
        for record, (indices, _) in zip(records, mapped, strict=True):
            if indices.size > SPARSE_MAX_NNZ:
                raise InvalidInputError(
                    f"record {record.id!r}: its sparse vector has {indices.size} terms; pgvector's sparsevec holds "
                    f"at most {SPARSE_MAX_NNZ} (split the text)"
                )
        rows = [
            (r.id, r.content_hash, r.text, Jsonb(dict(r.metadata)), row, _Sparse(*m))
            for r, row, m in zip(records, vectors, mapped, strict=True)
        ]
        ids = [r.id for r in records]
        try:
            with self._tx(vectors=True) as conn:
                counted = self._require_sparse(conn)
                # The rows replaced lose their terms' counts: read (and lock) them before they change.
                old = conn.execute(
                    sql.SQL("SELECT sparse FROM {} WHERE id = ANY(%s) AND sparse IS NOT NULL FOR UPDATE").format(
                        self._table
                    ),
                    [ids],
                ).fetchall()
                with conn.cursor() as cur:
                    cur.executemany(
                        sql.SQL(
                            "INSERT INTO {} (id, content_hash, text, metadata, embedding, sparse) "
                            "VALUES (%s, %s, %s, %s, %b, %b) ON CONFLICT (id) DO UPDATE SET "
                            "content_hash = EXCLUDED.content_hash, text = EXCLUDED.text, metadata = EXCLUDED.metadata, "
                            "embedding = EXCLUDED.embedding, sparse = EXCLUDED.sparse"
                        ).format(self._table),
                        rows,
                    )
                if counted:
                    added = [m[0] for m in mapped]
                    removed = [np.asarray(o[0].indices(), np.int32) for o in old]
                    self._count_terms(conn, added, removed)
        except pg_errors.ProgramLimitExceeded as exc:
            # The HNSW index refuses a vector with more than SPARSE_HNSW_MAX_NNZ terms (the batch is rolled back).
            long = [r.id for r, (i, _) in zip(records, mapped, strict=True) if i.size > SPARSE_HNSW_MAX_NNZ]
            raise InvalidInputError(
                f"pgvector collection {self.collection!r}: record(s) {long[:5]!r} have more than "
                f"{SPARSE_HNSW_MAX_NNZ} distinct terms, the most pgvector's HNSW index on sparsevec takes ({exc}); "
                "nothing was written. Split long texts, or create the collection without sparse_hnsw=True "
                "(exact sparse search, up to 16,000 terms)"
            ) from None

    def _count_terms(
        self,
        conn: psycopg.Connection[Any],
        added: Sequence[NDArray[np.int32]],
        removed: Sequence[NDArray[np.int32]],
    ) -> None:
        """Add one to each term's document frequency per vector ``added``, less one per vector ``removed``.

        The number of documents (row :data:`_DOCUMENTS_TERM`) counts the vectors with a term, as Qdrant's
        ``Modifier.IDF`` does, so that both give a query the same weights.
        """
        # Documents count as Qdrant's Modifier.IDF counts them: those with at least one term.
        plus, minus = sum(a.size > 0 for a in added), sum(r.size > 0 for r in removed)
        terms = np.concatenate([*added, *removed, np.full(plus + minus, _DOCUMENTS_TERM, np.int32)])
        signs = np.concatenate(
            [
                np.ones(sum(a.size for a in added), np.int64),
                -np.ones(sum(r.size for r in removed), np.int64),
                np.ones(plus, np.int64),
                -np.ones(minus, np.int64),
            ]
        )
        unique, inverse = np.unique(terms, return_inverse=True)
        delta = np.zeros(unique.size, np.int64)
        np.add.at(delta, inverse, signs)
        changed = delta != 0
        unique, delta = unique[changed], delta[changed]
        if not unique.size:
            return
        # Sorted terms: concurrent writers lock the rows in the same order, so they wait instead of deadlocking.
        conn.execute(
            sql.SQL(
                "INSERT INTO {0} AS s (term, df) SELECT * FROM unnest(%s::integer[], %s::bigint[]) ORDER BY 1 "
                "ON CONFLICT (term) DO UPDATE SET df = s.df + EXCLUDED.df"
            ).format(self._stats),
            [unique.tolist(), delta.tolist()],
        )
        if (delta < 0).any():
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE term = ANY(%s) AND df <= 0").format(self._stats),
                [unique[delta < 0].tolist()],
            )

    def sparse_statistics(self) -> tuple[int, dict[int, int]]:
        """``(documents with a term, {term: document frequency})`` as stored (ids as :func:`sparse_index` maps them)."""
        with self._tx() as conn:
            if not self._require_sparse(conn):
                return 0, {}
            rows = conn.execute(sql.SQL("SELECT term, df FROM {}").format(self._stats)).fetchall()
        counts = {int(t): int(d) for t, d in rows}
        return counts.pop(_DOCUMENTS_TERM, 0), counts

    def query_sparse(self, queries: Sequence[SparseVector], k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        """The ``k`` best records by inner product with each IDF-weighted query (records sharing no term left out)."""
        _check_where(where)
        filtered = sql.SQL("AND metadata @> %s ") if where else sql.SQL("")
        statement = sql.SQL(
            "SELECT id, -(sparse <#> %b) AS score, text, metadata FROM {} WHERE sparse IS NOT NULL {}"
            "ORDER BY sparse <#> %b LIMIT %s"
        ).format(self._table, filtered)
        out: list[list[Hit]] = []
        with self._tx(vectors=True) as conn:
            counted = self._require_sparse(conn)
            self._search_settings(conn, k, self.sparse_ef_search)
            for query in queries:
                indices, values = sparse_index(query)
                if not indices.size:  # no terms: nothing shares one
                    out.append([])
                    continue
                weights = values
                if counted:
                    found = conn.execute(
                        sql.SQL("SELECT term, df FROM {} WHERE term = ANY(%s)").format(self._stats),
                        [[_DOCUMENTS_TERM, *indices.tolist()]],
                    ).fetchall()
                    counts = {int(t): int(d) for t, d in found}
                    documents = counts.pop(_DOCUMENTS_TERM, 0)
                    weights = values * np.array([idf(counts.get(int(t), 0), documents) for t in indices], np.float32)
                vector = _Sparse(indices, weights)
                params = [vector, Jsonb(dict(where)), vector, k] if where else [vector, vector, k]
                hits = conn.execute(statement, params).fetchall()
                # Inner-product order also reaches records without a common term (score 0): not matches.
                out.append([Hit(str(i), float(s), str(t), dict(m or {})) for i, s, t, m in hits if s > 0])
        return out

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        with self._tx() as conn:
            found = conn.execute(
                sql.SQL("SELECT id, content_hash FROM {} WHERE id = ANY(%s)").format(self._table), [list(ids)]
            ).fetchall()
        return {str(i): str(h) for i, h in found}

    def _search_settings(self, conn: psycopg.Connection[Any], k: int, ef_search: int | None = None) -> None:
        # HNSW returns at most ef_search rows; with a filter, the iterative scan (pgvector >= 0.8) keeps
        # reading the graph until k rows pass it, in exact distance order.
        conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'strict_order', true)",
            [str(max(ef_search or self.ef_search, min(k, _MAX_EF_SEARCH)))],
        )

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        _check_where(where)
        filtered = sql.SQL("WHERE metadata @> %s ") if where else sql.SQL("")
        statement = sql.SQL(
            "SELECT id, 1 - (embedding <=> %b) AS score, text, metadata FROM {} {}ORDER BY embedding <=> %b LIMIT %s"
        ).format(self._table, filtered)
        out: list[list[Hit]] = []
        with self._tx(vectors=True) as conn:
            self._search_settings(conn, k)
            for row in vectors:
                params = [row, Jsonb(dict(where)), row, k] if where else [row, row, k]
                found = conn.execute(statement, params).fetchall()
                out.append([Hit(str(i), float(s), str(t), dict(m or {})) for i, s, t, m in found])
        return out

    def count(self) -> int:
        with self._tx() as conn:
            if not self._exists(conn):
                return 0
            found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table)).fetchone()
        return int(found[0]) if found else 0

    def delete(self, ids: Sequence[str]) -> None:
        with self._tx(vectors=True) as conn:
            if not self._sparse_layout(conn)[1]:
                conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self._table), [list(ids)])
                return
            # The deleted rows' terms leave the document frequencies in the same transaction.
            gone = conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%s) RETURNING sparse").format(self._table), [list(ids)]
            ).fetchall()
            removed = [np.asarray(g[0].indices(), np.int32) for g in gone if g[0] is not None]
            self._count_terms(conn, [], removed)

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        # Keyset pagination on the primary key: each page is one short query (no cursor held open between
        # pages, no OFFSET that rereads what came before).
        first = sql.SQL("SELECT id, content_hash, text, metadata FROM {} ORDER BY id LIMIT %s").format(self._table)
        after = sql.SQL(
            "SELECT id, content_hash, text, metadata FROM {} WHERE id > %s ORDER BY id LIMIT %s"
        ).format(self._table)
        last: str | None = None
        while True:
            with self._tx() as conn:
                if not self._exists(conn):
                    return
                page = conn.execute(first, [batch_size]) if last is None else conn.execute(after, [last, batch_size])
                rows = page.fetchall()
            if not rows:
                return
            yield [Record(id=str(i), text=str(t), metadata=dict(m or {}), content_hash=str(h)) for i, h, t, m in rows]
            if len(rows) < batch_size:
                return
            last = str(rows[-1][0])

    def drop(self) -> None:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK])
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._table))
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [REGISTRY_TABLE]).fetchone() == (True,):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE name = %s").format(sql.Identifier(REGISTRY_TABLE)), [self.collection]
                )


    # -- the database -----------------------------------------------------------------------------

    def health(self) -> HealthReport:
        def check() -> tuple[bool, str, dict[str, bool]]:
            with self._tx(timeout=5.0) as conn:
                row = conn.execute(
                    "SELECT 1, current_setting('server_version'), "
                    "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                    "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
                ).fetchone()
            assert row is not None
            _, version, installed, available = row
            checks = {"reachable": True, "vector": installed is not None}
            if installed is not None:
                return True, f"reachable, PostgreSQL {version}, vector {installed}", checks
            if available:
                return True, (f"reachable, PostgreSQL {version}; the vector extension is available, not yet "
                              "installed (the first ingest runs CREATE EXTENSION vector)"), checks
            return False, (f"reachable, PostgreSQL {version}, but the server has no pgvector extension: install "
                           "it (e.g. the pgvector/pgvector image)"), checks

        return timed_check("pgvector", check)

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient(exc)

    def close(self) -> None:
        if self._owns_client and isinstance(self.client, ConnectionPool):
            self.client.close()

    # -- aliases (AliasStore): a table, changed in one transaction -----------------------------------

    def aliases(self) -> dict[str, str]:
        with self._tx() as conn:
            row = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [ALIAS_TABLE]).fetchone()
            if not (row and row[0]):
                return {}
            found = conn.execute(sql.SQL("SELECT alias, collection FROM {}").format(sql.Identifier(ALIAS_TABLE)))
            return {str(a): str(c) for a, c in found.fetchall()}

    def set_alias(self, alias: str, collection: str) -> None:
        check_collection_name(alias)
        with self._tx() as conn:
            self._ensure_registry(conn)  # the advisory lock that serialises DDL, then the tables
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (alias text PRIMARY KEY, collection text NOT NULL)").format(
                    sql.Identifier(ALIAS_TABLE)
                )
            )
            # One statement, in the transaction that checked the tables: readers see the old row or the new one.
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s, %s) ON CONFLICT (alias) DO UPDATE SET collection = EXCLUDED.collection"
                ).format(sql.Identifier(ALIAS_TABLE)),
                [alias, collection],
            )

    def drop_alias(self, alias: str) -> bool:
        with self._tx() as conn:
            row = conn.execute("SELECT to_regclass(quote_ident(%s)) IS NOT NULL", [ALIAS_TABLE]).fetchone()
            if not (row and row[0]):
                return False
            gone = conn.execute(
                sql.SQL("DELETE FROM {} WHERE alias = %s").format(sql.Identifier(ALIAS_TABLE)), [alias]
            )
            return gone.rowcount > 0

    def for_collection(self, collection: str) -> PgvectorStore:
        check_collection_name(collection)
        store = PgvectorStore(self.client, collection, location=self.location, m=self.m,
                              ef_construction=self.ef_construction, ef_search=self.ef_search,
                              sparse_hnsw=self.sparse_hnsw, sparse_ef_search=self.sparse_ef_search)
        # One connection passed in holds one transaction at a time: both stores take turns on the same lock.
        store._lock = self._lock
        store._vector_type = self._vector_type
        return store


def _check_where(where: Mapping[str, Any] | None) -> None:
    for key, value in (where or {}).items():
        if "\x00" in key or (isinstance(value, str) and "\x00" in value):
            # jsonb holds no NUL: no stored value can match, and PostgreSQL would answer with a raw error
            raise InvalidInputError(f"where[{key!r}] = {value!r}: PostgreSQL's jsonb holds no NUL (\\x00)")


def _open_pool(url: str, *, pool_size: int, timeout: float) -> ConnectionPool:
    location = redact(url)
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise InvalidInputError(f"url {location!r} is not a PostgreSQL URL like "
                                f"postgresql://user:password@127.0.0.1:5432/db ({exc})") from None
    pool: ConnectionPool = ConnectionPool(
        url, min_size=1, max_size=pool_size, timeout=timeout, open=True, name=f"vecembed {location}"
    )
    try:
        pool.wait(timeout)
    except Exception:
        pool.close()
        try:  # the pool only says it timed out; one plain connection says why
            psycopg.connect(url, connect_timeout=max(int(timeout), 1)).close()
            reason = "it did not answer in time"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).strip()}"
        raise ProviderUnavailableError(
            f"no PostgreSQL server answers at {location} ({reason}); start one, e.g. "
            "`docker compose -f docker/compose.yaml up -d pgvector`, or check the URL"
        ) from None
    return pool


def open_pgvector_store(
    collection: str,
    *,
    provider: Any = None,
    path: str | None = None,
    url: str | None = None,
    client: ConnectionPool | psycopg.Connection[Any] | None = None,
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    ef_search: int = HNSW_EF_SEARCH,
    sparse_hnsw: bool = False,
    sparse_ef_search: int = SPARSE_EF_SEARCH,
    pool_size: int = 4,
    timeout: float = 10.0,
    **options: Any,
) -> PgvectorStore:
    """The ``pgvector`` entry point: a :class:`PgvectorStore` on a server ``url`` or a ``client`` you made.

    ``m`` / ``ef_construction``: the HNSW index of a collection this store creates;
    ``ef_search``: the least candidates a query considers (raised to ``k``).
    ``sparse_hnsw``: whether a collection created with sparse vectors gets an HNSW index on them. Off by
    default: an exact scan ranks as BM25 is defined and, measured on SciFact (5,183 documents), answers
    faster than the index at the same quality while writes run ~30x faster (1,400 against 46 documents/s);
    the index pays on large collections. It takes at most 1,000 distinct terms a document (16,000 without).
    ``sparse_ef_search``: the least candidates a sparse HNSW search considers (400: see
    :data:`SPARSE_EF_SEARCH`).
    ``pool_size`` / ``timeout``: the connection pool made for ``url``. A ``client`` stays
    yours to close; each of its connections gets pgvector's numpy dumpers registered, and
    on a connection already inside a transaction the store's work becomes a savepoint
    that commits with yours.
    """
    check_collection_name(collection)
    hnsw: dict[str, Any] = {
        "m": m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "sparse_hnsw": sparse_hnsw,
        "sparse_ef_search": sparse_ef_search,
    }
    if options:
        raise InvalidInputError(
            f"the pgvector store takes no options {sorted(options)}; it takes url= or client=, m=, ef_construction=, "
            "ef_search=, sparse_hnsw=, sparse_ef_search=, pool_size=, timeout="
        )
    if path is not None:
        raise InvalidInputError(
            "pgvector is a server: it needs url= (postgresql://user:password@host:5432/db) or client= "
            f"(a psycopg_pool.ConnectionPool or psycopg.Connection), not path={path!r} (on the command line: --url "
            "or $VECEMBED_PGVECTOR_URL)"
        )
    if client is not None:
        if isinstance(client, ConnectionPool):
            location = redact(client.conninfo) if isinstance(client.conninfo, str) else "a connection pool"
        elif isinstance(client, psycopg.Connection):
            location = client.info.dsn  # libpq's own string, without the password
        else:
            raise InvalidInputError(
                f"client must be a psycopg_pool.ConnectionPool or a psycopg.Connection, got {type(client).__name__}"
            )
        return PgvectorStore(client, collection, location=location, **hnsw)
    if url is None:
        raise InvalidInputError(
            "pgvector is a server: give url= (postgresql://user:password@host:5432/db, or $VECEMBED_PGVECTOR_URL "
            "on the command line) or client="
        )
    if not isinstance(url, str) or ("://" in url and urlsplit(url).scheme not in ("postgresql", "postgres")):
        raise InvalidInputError(f"url must be a postgresql:// URL, got {redact(str(url))!r}")
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise InvalidInputError(f"pool_size must be a positive int, got {pool_size!r}")
    pool = _open_pool(url, pool_size=pool_size, timeout=float(timeout))
    try:
        return PgvectorStore(pool, collection, location=redact(url), owns_client=True, **hnsw)
    except BaseException:
        pool.close()
        raise


#: A server-only store: the CLI asks for --url instead of looking for a data folder.
open_pgvector_store.server_only = True  # type: ignore[attr-defined]
#: pgvector stores keep sparse vectors (see :class:`~vecembed.store.SparseCapable`).
open_pgvector_store.keeps_sparse = True  # type: ignore[attr-defined]
