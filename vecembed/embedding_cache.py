"""CachedProvider: a persistent embedding cache keyed by the vector space's fingerprint, not by a model name.

The cache most pipelines use (LangChain's ``CacheBackedEmbeddings``, LlamaIndex's
ingestion cache) keys a vector by its text and at best a model name, so a new
revision, another pooling or an int8 variant silently returns the old model's
vectors. Here every entry lives under the wrapped provider's
:attr:`~vecembed.types.ModelInfo.fingerprint`: two providers whose vectors are not
comparable never read each other's entries.

Storage: one SQLite file (``embeddings.sqlite3``) in the cache directory, in WAL
mode. SQLite is in the standard library, its transactions are atomic on a crash
(a process killed mid-write leaves the last committed state), WAL lets readers in
any number of processes run while one writes, and ``busy_timeout`` queues
writers instead of failing them. (diskcache is SQLite underneath with pickling on
top; LMDB needs a fixed map size and a C extension.) Layout:

* ``spaces(id, fingerprint, dimension)`` — one row per vector space;
* ``vectors(space, key, vector, used)`` — ``key`` is the SHA-256 of the role
  (document or query: a model's query prompt makes them differ) and the text;
  ``vector`` the little-endian float32 bytes, exactly as the provider returned
  them; ``used`` the last use, in seconds, for least-recently-used eviction;
* ``meta`` — the schema version and the running size, kept by triggers in the
  same transaction as the rows, so it is never out of step after a crash (writes
  are upserts: ``INSERT OR REPLACE`` would delete without firing the trigger).

Size: ``max_bytes`` bounds the running size (each vector plus :data:`ENTRY_OVERHEAD`,
measured against the file), evicted least recently used first down to
:data:`EVICT_TO` of it. On disk that is, between writes: the database file about
``max_bytes`` (measured at most 1.07x: evicted pages go back to the file system
through incremental auto-vacuum, on files created by this version), its WAL at most
``max_bytes / WAL_SHARE`` (1,000 pages at most) or, when larger, the pages the last
write changed (its rows and, when it evicted, about a tenth of ``max_bytes``), and the
32 KB WAL index. ``CacheStats.disk_bytes`` says what the files
take now.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vecembed.errors import DimensionMismatchError, InvalidInputError
from vecembed.health import timed_check
from vecembed.pipeline import validate_texts
from vecembed.protocol import EmbeddingProvider
from vecembed.providers.delegating import DelegatingProvider
from vecembed.types import Embeddings, EmbedResult, HealthReport, ModelInfo
from vecembed.vectors import check_embeddings, provider_label

__all__ = ["DB_NAME", "DEFAULT_MAX_BYTES", "CacheStats", "CachedProvider", "EmbeddingCache", "default_cache_path"]

log = logging.getLogger(__name__)

#: The file in the cache directory.
DB_NAME = "embeddings.sqlite3"
#: 1 GiB: about 600,000 vectors of 384 dimensions.
DEFAULT_MAX_BYTES = 1 << 30
#: Bytes counted per entry beyond the vector itself (key twice — row and index —, row and page slack), so
#: that ``max_bytes`` is close to the size of the file on disk (measured: 1,703 bytes a 384-d vector).
ENTRY_OVERHEAD = 170
#: A hit refreshes an entry's last-use time only when it is older than this: repeated hits stay read-only.
TOUCH_AFTER_S = 300
#: Evicting stops at this share of ``max_bytes``, so that every write near the limit does not evict again.
EVICT_TO = 0.9
#: The WAL may hold this share of ``max_bytes`` (at most SQLite's default 1,000 pages) before it is checkpointed.
WAL_SHARE = 16
_PAGE_SIZE = 8192
_SCHEMA = 1
_CHUNK = 500  # parameters per IN (...) query, below every SQLite's variable limit

_DDL = f"""
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(name, value) VALUES ('schema', {_SCHEMA}), ('bytes', 0);
CREATE TABLE IF NOT EXISTS spaces(
    id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, dimension INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vectors(
    space INTEGER NOT NULL, key BLOB NOT NULL, vector BLOB NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (space, key));
CREATE INDEX IF NOT EXISTS vectors_used ON vectors(used);
CREATE TRIGGER IF NOT EXISTS vectors_added AFTER INSERT ON vectors BEGIN
    UPDATE meta SET value = value + length(NEW.vector) + {ENTRY_OVERHEAD} WHERE name = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS vectors_removed AFTER DELETE ON vectors BEGIN
    UPDATE meta SET value = value - length(OLD.vector) - {ENTRY_OVERHEAD} WHERE name = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS vectors_replaced AFTER UPDATE OF vector ON vectors BEGIN
    UPDATE meta SET value = value + length(NEW.vector) - length(OLD.vector) WHERE name = 'bytes'; END;
"""

_DOCUMENT, _QUERY = b"d", b"q"


def default_cache_path() -> Path:
    """``$VECEMBED_CACHE/embeddings`` (or the user cache directory's): where ``cache=True`` puts the cache."""
    from vecembed.artifact_cache import cache_dir

    return cache_dir() / "embeddings"


def text_key(role: bytes, text: str) -> bytes:
    """The entry key of ``text`` in a role: SHA-256 of the role and the UTF-8 text."""
    return hashlib.sha256(role + b"\x00" + text.encode("utf-8")).digest()


@dataclass(frozen=True)
class CacheStats:
    """What a :class:`CachedProvider` served: ``hits``/``misses`` of this object, ``entries``/``bytes`` of the file.

    ``entries`` and ``bytes`` cover every vector space in the cache directory;
    ``bytes`` counts vectors plus a fixed overhead per entry (what ``max_bytes`` bounds).
    """

    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int
    path: str
    #: What the files take on disk now (database, WAL, WAL index); see the module docstring for its bound.
    disk_bytes: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class EmbeddingCache:
    """The SQLite store under :class:`CachedProvider`: (vector space, key) -> float32 bytes.

    Thread-safe (one connection per process, used under a lock) and process-safe
    (SQLite's locks, WAL). A process started by ``fork`` opens its own connection.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
                 timeout: float = 30.0) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise InvalidInputError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self.path = Path(path)
        self.file = self.path / DB_NAME
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._spaces: dict[tuple[str, int], int] = {}
        self.path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._connection()

    # -- connection ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The connection of this process (called under the lock); opens, and if need be repairs, the file."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # After fork the parent's connection must not be used (nor closed) here: SQLite forbids it.
        self._spaces = {}
        try:
            conn = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, busy, no space: not the file's fault
                raise
            # Not a database (or damaged beyond SQLite's own recovery): a cache can be rebuilt, so set it aside.
            aside = self.file.with_name(f"{DB_NAME}.corrupt-{int(time.time())}-{os.getpid()}")
            log.warning("embedding cache %s is unreadable (%s); moved it to %s and started afresh",
                        self.file, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.file}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
            conn = self._open()
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.file, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            # 8 KiB pages hold four 384-d rows with little slack: 1,700 bytes a vector on disk against 2,100 with
            # the default 4 KiB (benchmarks/cache.py). It only takes effect when the file is created.
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            # Evicted rows leave free pages that a plain SQLite file keeps for ever (the file stays at its
            # high-water mark, max_bytes plus one write): incremental auto-vacuum lets _evict give them back.
            # Like page_size, it only takes effect when the file is created.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            # The WAL grows to wal_autocheckpoint pages (8 MB by default) before it is copied back, and a file
            # once grown stays that size: both are scaled to max_bytes, so a 1 MB cache has no 8 MB WAL beside it.
            wal_pages = min(1000, max(16, self.max_bytes // WAL_SHARE // _PAGE_SIZE))
            conn.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
            conn.execute(f"PRAGMA journal_size_limit = {wal_pages * _PAGE_SIZE}")
            # In WAL mode NORMAL is safe against a crash of the process (not of the OS): a cache can afford that.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript("BEGIN IMMEDIATE;" + _DDL + "COMMIT;")
            schema = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except BaseException:
            conn.close()
            raise
        if schema is None or int(schema[0]) != _SCHEMA:
            conn.close()
            raise sqlite3.DatabaseError(f"schema {schema} where {_SCHEMA} was expected")
        return conn

    def _space(self, conn: sqlite3.Connection, info: ModelInfo) -> int:
        """The row id of ``info``'s vector space, created on first use (called under the lock)."""
        space = self._spaces.get((info.fingerprint, info.dimension))
        if space is not None:
            return space
        conn.execute("INSERT OR IGNORE INTO spaces(fingerprint, dimension) VALUES (?, ?)",
                     (info.fingerprint, info.dimension))
        row = conn.execute("SELECT id, dimension FROM spaces WHERE fingerprint = ?", (info.fingerprint,)).fetchone()
        if int(row[1]) != info.dimension:
            raise DimensionMismatchError(
                f"the embedding cache at {self.path} holds {row[1]}-d vectors for fingerprint {info.fingerprint}, "
                f"the provider gives {info.dimension}-d ones; the fingerprint is not unique to its vector space"
            )
        self._spaces[(info.fingerprint, info.dimension)] = int(row[0])
        return int(row[0])

    # -- reads and writes ---------------------------------------------------------------------

    def get_many(self, info: ModelInfo, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored vectors of those ``keys`` that are in ``info``'s vector space (refreshing their last use)."""
        width = info.dimension * 4
        found: dict[bytes, bytes] = {}
        stale: list[bytes] = []
        now = int(time.time())
        unique = list(dict.fromkeys(keys))
        with self._lock:
            conn = self._connection()
            space = self._space(conn, info)
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, vector, used FROM vectors WHERE space = ? AND key IN ({marks})", (space, *chunk)
                ).fetchall()
                for key, vector, used in rows:
                    if len(vector) != width:  # cannot happen short of a hand-edited file: a miss, then overwritten
                        continue
                    found[key] = vector
                    if now - used > TOUCH_AFTER_S:
                        stale.append(key)
            if stale:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("UPDATE vectors SET used = ? WHERE space = ? AND key = ?",
                                     [(now, space, key) for key in stale])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        return found

    def put_many(self, info: ModelInfo, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Store ``(key, float32 bytes)`` pairs in ``info``'s space in one transaction; evict beyond ``max_bytes``.

        Returns how many entries were evicted.
        """
        now = int(time.time())
        with self._lock:
            conn = self._connection()
            space = self._space(conn, info)
            conn.execute("BEGIN IMMEDIATE")
            try:
                # An upsert, not INSERT OR REPLACE: REPLACE deletes without firing the delete trigger, and
                # two processes storing the same text at once would count it twice.
                conn.executemany(
                    "INSERT INTO vectors(space, key, vector, used) VALUES (?, ?, ?, ?) ON CONFLICT(space, key) "
                    "DO UPDATE SET vector = excluded.vector, used = excluded.used",
                    [(space, key, vector, now) for key, vector in items],
                )
                evicted = self._evict(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if evicted:
                # The pages the evicted rows held go back to the file system, in a transaction of its own
                # (executescript steps the pragma to the end; execute would free one page). A no-op on a file
                # made before auto-vacuum was on: there the next writes reuse them.
                conn.executescript("PRAGMA incremental_vacuum;")
        return evicted

    def _evict(self, conn: sqlite3.Connection) -> int:
        """Delete the least recently used entries until the size is under ``EVICT_TO`` of ``max_bytes``."""
        total = self._bytes(conn)
        if total <= self.max_bytes:
            return 0
        target = int(self.max_bytes * EVICT_TO)
        evicted = 0
        while total > target:
            count = int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            if count == 0:
                break
            per_entry = max(1, total // count)
            n = max(1, -(-(total - target) // per_entry))
            conn.execute("DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors ORDER BY used LIMIT ?)", (n,))
            evicted += n
            total = self._bytes(conn)
        return evicted

    @staticmethod
    def _bytes(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT value FROM meta WHERE name = 'bytes'").fetchone()[0])

    def size(self) -> tuple[int, int]:
        """``(entries, bytes)`` of the whole cache."""
        with self._lock:
            conn = self._connection()
            entries = int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
            return entries, self._bytes(conn)

    def disk_bytes(self) -> int:
        """What the cache's files take on disk now: the database, its WAL and the WAL index."""
        return sum(Path(f"{self.file}{suffix}").stat().st_size for suffix in ("", "-wal", "-shm")
                   if Path(f"{self.file}{suffix}").exists())

    def fingerprints(self) -> dict[str, int]:
        """Entries per fingerprint."""
        with self._lock:
            conn = self._connection()
            rows = conn.execute(
                "SELECT s.fingerprint, COUNT(v.key) FROM spaces s LEFT JOIN vectors v ON v.space = s.id "
                "GROUP BY s.id ORDER BY s.id"
            ).fetchall()
        return {str(fp): int(n) for fp, n in rows}

    def clear(self, fingerprint: str | None = None) -> int:
        """Delete every entry (of one fingerprint when given); returns how many."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if fingerprint is None:
                    cur = conn.execute("DELETE FROM vectors")
                else:
                    cur = conn.execute(
                        "DELETE FROM vectors WHERE space IN (SELECT id FROM spaces WHERE fingerprint = ?)",
                        (fingerprint,),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(cur.rowcount)

    def check(self) -> tuple[bool, str, dict[str, bool]]:
        """A cheap readability check for health reports: SQLite's ``quick_check`` is too slow for a large file."""
        entries, size = self.size()
        return True, f"{entries} vectors, {size / 1e6:.1f} of {self.max_bytes / 1e6:.1f} MB at {self.path}", {
            "readable": True}

    def close(self) -> None:
        """Close this process's connection. Safe to call twice; a later call reopens it."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()


class CachedProvider(DelegatingProvider):
    """Any :class:`~vecembed.protocol.EmbeddingProvider` with a persistent cache in front of it.

    ::

        provider = vecembed.CachedProvider(vecembed.load_provider("onnx"), path="./embeddings")
        # or: vecembed.load_provider("onnx", cache="./embeddings")
        provider.embed_documents(texts)   # first time: embedded and stored
        provider.embed_documents(texts)   # again: read back, byte for byte the same
        provider.cache_stats()            # CacheStats(hits=..., misses=..., entries=..., bytes=...)

    Entries are keyed by ``provider.info.fingerprint``, the role (documents and
    queries are kept apart: a query prompt makes them differ) and the SHA-256 of
    the text. Each call reads every text's entry at once, embeds only the misses —
    each distinct text once, in one call, in input order — and stores them in one
    transaction. Vectors come back as the wrapped provider returned them, byte for
    byte; what it returns is checked first (:func:`~vecembed.vectors.check_embeddings`:
    shape, finite, unit norm when ``info.normalized``), so a bad vector is refused and
    never cached. Many threads and processes may share one ``path``. ``max_bytes`` bounds
    the size (least recently used entries go first). A cache that cannot be opened (a
    ``path`` that is a file, a folder without write access), read or written (disk full,
    locked past ``timeout``) logs a warning and the call is served by the provider.
    ``close()`` closes the wrapped provider too unless ``close_provider=False``.
    """

    def __init__(
        self,
        provider: EmbeddingProvider,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        close_provider: bool = True,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(provider, close_provider=close_provider)
        self._info = provider.info
        self._path = Path(default_cache_path() if path is None else path)
        self._max_bytes = max_bytes
        self._cache: EmbeddingCache | None = None
        self._unavailable = ""
        try:
            self._cache = EmbeddingCache(self._path, max_bytes=max_bytes, timeout=timeout)
        except (OSError, sqlite3.Error) as exc:
            # What the docs promise: no cache, a warning, and the provider serves every call.
            self._unavailable = f"{type(exc).__name__}: {exc}"
            log.warning("embedding cache at %s cannot be opened (%s); embedding without a cache", self._path,
                        self._unavailable)
        self._counts_lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    # -- identity -----------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """The wrapped provider's, read once: every entry is keyed by this fingerprint."""
        return self._info

    @property
    def cache(self) -> EmbeddingCache | None:
        """The SQLite store (``clear()``, ``fingerprints()``, ``size()``); ``None`` when it could not be opened."""
        return self._cache

    @property
    def path(self) -> Path:
        """The cache directory."""
        return self._path

    @property
    def hits(self) -> int:
        """Texts this object served from the cache."""
        return self._hits

    @property
    def misses(self) -> int:
        """Texts this object had the wrapped provider embed."""
        return self._misses

    def cache_stats(self) -> CacheStats:
        """Hits and misses of this object; entries and bytes of the whole cache file (0 without a cache)."""
        entries, size, disk = 0, 0, 0
        if self._cache is not None:
            (entries, size), disk = self._cache.size(), self._cache.disk_bytes()
        return CacheStats(hits=self._hits, misses=self._misses, entries=entries, bytes=size,
                          max_bytes=self._max_bytes, path=str(self._path), disk_bytes=disk)

    # -- embedding ----------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Document vectors, from the cache where present, else from the wrapped provider (then stored)."""
        return self._embed(texts, _DOCUMENT, "documents").vectors

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`embed_documents` with the wrapped provider's counts for the texts it embedded (0 on all hits)."""
        return self._embed(texts, _DOCUMENT, "documents")

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """Query vectors (cached apart from document vectors of the same text)."""
        return self._embed(texts, _QUERY, "queries").vectors

    def _forward(self, role: bytes, texts: list[str]) -> EmbedResult:
        if role == _QUERY:
            return EmbedResult(self._provider.embed_queries(texts))
        return self.forward_documents(texts)

    def _embed(self, texts: Sequence[str], role: bytes, what: str) -> EmbedResult:
        self._check_open()
        items = validate_texts(texts, what=what)
        info = self._info
        out = np.empty((len(items), info.dimension), dtype=np.float32)
        if not items:
            return EmbedResult(out, tokens=0, truncated=0)
        cache = self._cache
        keys = [text_key(role, text) for text in items]
        found: dict[bytes, bytes] = {}
        if cache is not None:
            try:
                found = cache.get_many(info, keys)
            except sqlite3.Error as exc:
                self._cache_failed("read", exc)
        # Misses in first-seen order, each distinct text once; the rows each one fills.
        missing: dict[bytes, list[int]] = {}
        texts_to_embed: list[str] = []
        for row, key in enumerate(keys):
            vector = found.get(key)
            if vector is not None:
                out[row] = np.frombuffer(vector, dtype="<f4")
                continue
            rows = missing.get(key)
            if rows is None:
                missing[key] = [row]
                texts_to_embed.append(items[row])
            else:
                rows.append(row)
        hits = len(items) - sum(len(rows) for rows in missing.values())
        tokens: int | None = 0
        truncated: int | None = 0
        if texts_to_embed:
            result = self._forward(role, texts_to_embed)
            first_rows = [rows[0] for rows in missing.values()]
            vectors = check_embeddings(
                result.vectors, expected_rows=len(texts_to_embed), dimension=info.dimension,
                normalized=info.normalized, where=provider_label(info), outcome="nothing was cached",
                row_name=lambda i: f"text {first_rows[i]}", provider=info.name,
            )
            stored = vectors.astype("<f4", copy=False)
            for i, rows in enumerate(missing.values()):
                out[rows] = vectors[i]
            if cache is not None:
                try:
                    cache.put_many(info, [(key, stored[i].tobytes()) for i, key in enumerate(missing)])
                except sqlite3.Error as exc:
                    self._cache_failed("write", exc)
            tokens, truncated = result.tokens, result.truncated
        with self._counts_lock:
            self._hits += hits
            self._misses += len(items) - hits
        return EmbedResult(out, tokens=tokens, truncated=truncated)

    def _cache_failed(self, what: str, exc: sqlite3.Error) -> None:
        log.warning("embedding cache %s failed at %s (%s); embedding without it", what, self._path, exc)

    # -- health and lifetime ------------------------------------------------------------------

    def health_check(self) -> HealthReport:
        """The wrapped provider's health and the cache file's, in one report. Never raises."""
        if self._closed:
            return HealthReport(ok=False, latency_ms=0.0, detail="provider is closed", component="provider")
        cache = self._cache
        if cache is None:
            part = HealthReport(ok=False, latency_ms=0.0, component="embedding-cache",
                                detail=f"no cache at {self._path} ({self._unavailable}); every call is embedded")
        else:
            part = timed_check("embedding-cache", cache.check)
        return HealthReport.combine("cached-provider", [self._provider.health_check(), part])

    def close(self) -> None:
        """Close the cache file and (unless ``close_provider=False``) the wrapped provider. Safe to call twice."""
        if not self._closed and self._cache is not None:
            self._cache.close()
        super().close()

    def __repr__(self) -> str:
        return f"<CachedProvider {self._info.name} fingerprint={self._info.fingerprint} at {self._path}>"


def cached(provider: EmbeddingProvider, cache: Any, *, max_bytes: int | None = None) -> CachedProvider:
    """``load_provider(..., cache=...)``: ``True`` for :func:`default_cache_path`, else a directory."""
    path = None if cache is True else cache
    return CachedProvider(provider, path, max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)
