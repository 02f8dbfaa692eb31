"""ChromaStore: Chroma's side of the vecembed store contract (embedded, in memory, or a server).

Only Chroma calls live here; identity policy, validation, batching, retries and
progress are the shared engine's (:mod:`vecembed.store`, :mod:`vecembed.ingest`).
Registered as the ``chroma`` entry point of ``vecembed.stores``::

    vecembed.open_store("chroma", "docs", provider, path="./db")          # chromadb.PersistentClient
    vecembed.open_store("chroma", "docs", provider, url="http://127.0.0.1:8000")   # chromadb.HttpClient
    vecembed.open_store("chroma", "docs", provider, client=my_client)     # any chromadb client
    await vecembed.aopen_store("chroma", "docs", provider, client=await chromadb.AsyncHttpClient(...))
    vecembed.open_store("chroma", "docs", provider)                       # chromadb.EphemeralClient

A collection it creates uses the cosine space, records the identity in its
metadata and carries a :class:`~vecembed_chroma.ChromaEmbeddingFunction` for the
provider, so plain chromadb code (after ``import vecembed_chroma``) can query it
by text with the same model. An async client (``AsyncClientAPI``) is used through a
:class:`vecembed.aio.LoopBridge`: its calls, and those of the async collections it
returns, run on its event loop.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import chromadb
from chromadb.api import AsyncClientAPI, ClientAPI
from chromadb.api.models.AsyncCollection import AsyncCollection
from chromadb.api.models.Collection import Collection
from chromadb.errors import InternalError, NotFoundError, UniqueConstraintError

from vecembed.aio import LoopBridge, bridge_async_client
from vecembed.errors import InvalidInputError, ProviderUnavailableError
from vecembed.health import timed_check
from vecembed.identity import RECORD_HASH_KEY, CollectionIdentity
from vecembed.protocol import EmbeddingProvider
from vecembed.records import Record, content_hash
from vecembed.retry import is_transient_default
from vecembed.store import CollectionState, Hit
from vecembed.types import Embeddings, HealthReport
from vecembed_chroma._state import claim_metadata, collection_state, space
from vecembed_chroma.embedding_function import ChromaEmbeddingFunction

__all__ = ["ALIASES_KEY", "ALIAS_COLLECTION", "ChromaStore", "check_collection_name", "open_chroma_store"]


def _similarity(distance: float, space: str | None) -> float:
    # Chroma answers distances; vecembed's hits carry similarities. cosine: 1 - cos; ip: 1 - dot;
    # l2: squared euclidean, which is 2 - 2 cos on the unit vectors a normalised model writes.
    if space == "l2":
        return 1.0 - distance / 2.0
    return 1.0 - distance


def _where(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not where:
        return None
    clauses = [{key: value} for key, value in where.items()]
    # Chroma takes one clause as is and several under "$and".
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _client_for_url(url: str) -> ClientAPI:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        raise InvalidInputError(f"url {url!r} is not a URL like http://127.0.0.1:8000")
    ssl = parsed.scheme == "https"
    try:
        return chromadb.HttpClient(host=parsed.hostname, port=parsed.port or (443 if ssl else 8000), ssl=ssl)
    except Exception as exc:  # chromadb checks the server when the client is made
        raise ProviderUnavailableError(
            f"no Chroma server answers at {url} ({type(exc).__name__}: {exc}); start one with "
            f"`chroma run --path DIR --host {parsed.hostname} --port {parsed.port or 8000}`, or use a path instead"
        ) from None


#: Documents per write into an embedded Chroma (the engine's default is 128). Its write is CPU work in this
#: process; measured on 2 cores (2,000 STS-B sentences, 384-d, persistent): 0.91 s CPU in writes of 128,
#: 0.75 s in writes of 1,024 — less per-call work that no overlap could hide.
EMBEDDED_BATCH_SIZE = 1024


class ChromaStore:
    """One Chroma collection as a :class:`~vecembed.store.VectorStore`."""

    db = "chroma"
    #: Chroma stores str, int, float and bool metadata values only.
    nested_metadata = False

    def __init__(
        self,
        client: ClientAPI,
        collection: str,
        *,
        location: str,
        provider: EmbeddingProvider | None = None,
        owns_client: bool = False,
        preferred_batch_size: int | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.location = location
        self.provider = provider
        self.preferred_batch_size = preferred_batch_size
        self._owns_client = owns_client
        #: The event loop of a bridged async client (the Store refuses sync calls on it); None otherwise.
        self.loop = client.loop if isinstance(client, LoopBridge) else None
        self._native: Collection | None = None

    # -- the collection ---------------------------------------------------------------------------

    def _get(self) -> Collection | None:
        try:
            # embedding_function=None: chromadb would refuse ours when the stored name differs; vecembed
            # compares the recorded identity instead, which is the stricter test.
            return self.client.get_collection(self.collection, embedding_function=None)
        except NotFoundError:
            return None

    def _col(self) -> Collection:
        if self._native is None:
            self._native = self._get()
            if self._native is None:
                raise ProviderUnavailableError(f"chroma collection {self.collection!r} at {self.location} is gone")
        return self._native

    def state(self) -> CollectionState | None:
        native = self._get()
        self._native = native
        if native is None:
            return None
        # The one Chroma reader: vecembed's metadata, else a stored vecembed embedding-function config (a
        # collection made with plain chromadb + ChromaEmbeddingFunction is that provider's, no adopt needed).
        return collection_state(native)

    def create(self, identity: CollectionIdentity) -> None:
        kwargs: dict[str, Any] = {"metadata": identity.to_metadata()}
        if self.provider is not None:
            # The function's default space is cosine; it lets plain chromadb code query by text.
            kwargs["embedding_function"] = ChromaEmbeddingFunction(self.provider)
        else:
            kwargs["configuration"] = {"hnsw": {"space": "cosine"}}
        try:
            self._native = self.client.create_collection(self.collection, **kwargs)
        except UniqueConstraintError:
            self._native = None  # created by someone else meanwhile: the caller reads it back and checks it
        except InternalError as exc:
            if "already exists" not in str(exc):
                raise
            self._native = None

    def record_identity(self, identity: CollectionIdentity) -> None:
        native = self._col()
        native.modify(metadata=claim_metadata(native, identity))

    # -- records ----------------------------------------------------------------------------------

    def write(self, records: Sequence[Record], vectors: Embeddings) -> None:
        self._col().upsert(
            ids=[r.id for r in records],
            embeddings=vectors,
            documents=[r.text for r in records],
            metadatas=[{**r.metadata, RECORD_HASH_KEY: r.content_hash} for r in records],
        )

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        got = self._col().get(ids=list(ids), include=["metadatas"])
        metas: list[Any] = list(got.get("metadatas") or [])
        metas += [None] * (len(got["ids"]) - len(metas))
        return {
            str(i): str(m[RECORD_HASH_KEY])
            for i, m in zip(got["ids"], metas, strict=True)
            if m and RECORD_HASH_KEY in m
        }

    def query(self, vectors: Embeddings, k: int, where: Mapping[str, Any] | None) -> list[list[Hit]]:
        native = self._col()
        result = native.query(
            query_embeddings=vectors,
            n_results=k,
            where=_where(where),
            include=["documents", "metadatas", "distances"],
        )
        distance = space(native)
        out: list[list[Hit]] = []
        for row, ids in enumerate(result["ids"]):
            docs = (result.get("documents") or [])[row] if result.get("documents") else [None] * len(ids)
            metas = (result.get("metadatas") or [])[row] if result.get("metadatas") else [None] * len(ids)
            dists = (result.get("distances") or [])[row] if result.get("distances") else [0.0] * len(ids)
            out.append(
                [
                    Hit(str(i), _similarity(float(d), distance), t or "", CollectionIdentity.without_identity(m))
                    for i, t, m, d in zip(ids, docs, metas, dists, strict=True)
                ]
            )
        return out

    def count(self) -> int:
        native = self._get()
        return 0 if native is None else int(native.count())

    def delete(self, ids: Sequence[str]) -> None:
        self._col().delete(ids=list(ids))

    def scan(self, batch_size: int) -> Iterator[list[Record]]:
        native = self._get()
        if native is None:
            return
        # Chroma pages by offset in its own (insertion) order; a page is at most its 5,461-record batch limit.
        size = min(batch_size, 5461)
        offset = 0
        while True:
            got = native.get(limit=size, offset=offset, include=["documents", "metadatas"])
            ids = list(got["ids"])
            if not ids:
                return
            none: list[Any] = [None] * len(ids)
            docs: list[Any] = list(got.get("documents") or none)
            metas: list[Any] = list(got.get("metadatas") or none)
            batch = []
            for i, text, meta in zip(ids, docs, metas, strict=True):
                metadata = CollectionIdentity.without_identity(meta)
                stored = (meta or {}).get(RECORD_HASH_KEY)
                body = text or ""
                digest = str(stored) if stored else content_hash(body.encode("utf-8", "surrogatepass"), metadata)
                batch.append(Record(id=str(i), text=body, metadata=metadata, content_hash=digest))
            yield batch
            if len(ids) < size:
                return
            offset += len(ids)

    def drop(self) -> None:
        self._native = None
        with contextlib.suppress(NotFoundError):  # already gone: dropping is idempotent
            self.client.delete_collection(self.collection)


    # -- the database -----------------------------------------------------------------------------

    def health(self) -> HealthReport:
        def check() -> tuple[bool, str, dict[str, bool]]:
            beat = self.client.heartbeat()  # nanoseconds since the epoch on the server
            if not (isinstance(beat, int) and beat > 0):
                return False, f"unexpected heartbeat {beat!r}", {"heartbeat": False}
            return True, f"heartbeat ok (chroma {self.client.get_version()})", {"heartbeat": True}

        return timed_check("chroma", check)

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient_default(exc)

    def close(self) -> None:
        self._native = None
        if self._owns_client:
            # chromadb clients have no close(); dropping the reference releases an embedded database.
            self.client = None  # type: ignore[assignment]

    # -- aliases (AliasStore): one reserved collection whose metadata holds them ----------------------
    # Chroma has no aliases. The record is the metadata of one collection, ALIAS_COLLECTION: {ALIASES_KEY: JSON
    # {alias: collection}}. A change is one modify(metadata=...) call, which replaces that collection's metadata
    # row in Chroma's system database in one transaction (sqlite embedded, the server's sysdb behind one
    # request): a reader sees the old mapping or the new one, never a mix. Two writers in one process take
    # turns (a lock); two processes changing aliases at the same moment may lose one change (no
    # compare-and-set in Chroma): change aliases from one place at a time.

    def _alias_record(self) -> Collection | None:
        try:
            return self.client.get_collection(ALIAS_COLLECTION, embedding_function=None)
        except NotFoundError:
            return None

    def aliases(self) -> dict[str, str]:
        record = self._alias_record()
        return _aliases_of(record.metadata if record is not None else None)

    def _change_aliases(self, change: Callable[[dict[str, str]], object]) -> None:
        with _ALIAS_LOCK:
            record = self._alias_record()
            current = _aliases_of(record.metadata if record is not None else None)
            change(current)
            metadata = {ALIASES_KEY: json.dumps(current, sort_keys=True)}
            if record is None:
                try:
                    self.client.create_collection(
                        ALIAS_COLLECTION, metadata=metadata, configuration={"hnsw": {"space": "cosine"}}
                    )
                    return
                except (UniqueConstraintError, InternalError):
                    record = self._alias_record()  # created meanwhile: change it instead
                    if record is None:
                        raise
            record.modify(metadata=metadata)

    def set_alias(self, alias: str, collection: str) -> None:
        self._change_aliases(lambda current: current.__setitem__(alias, collection))

    def drop_alias(self, alias: str) -> bool:
        if alias not in self.aliases():
            return False
        self._change_aliases(lambda current: current.pop(alias, None))
        return True

    def for_collection(self, collection: str) -> ChromaStore:
        check_collection_name(collection)
        return ChromaStore(self.client, collection, location=self.location, provider=self.provider,
                           preferred_batch_size=self.preferred_batch_size)


#: The collection whose metadata holds a Chroma database's aliases (a name open_store refuses for a collection).
ALIAS_COLLECTION = "vecembed.aliases"
#: Its one metadata key: ``{alias: collection}`` as JSON.
ALIASES_KEY = "vecembed:aliases"
_ALIAS_LOCK = threading.Lock()


def _aliases_of(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    try:
        value = json.loads(str((metadata or {}).get(ALIASES_KEY) or "{}"))
    except ValueError:
        raise ProviderUnavailableError(
            f"the alias record (collection {ALIAS_COLLECTION!r}, metadata {ALIASES_KEY!r}) is not JSON; fix or "
            "delete it"
        ) from None
    if not isinstance(value, dict):
        raise ProviderUnavailableError(f"the alias record (collection {ALIAS_COLLECTION!r}) is not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


#: Chroma 1.5's rule for collection names (checked when a collection is created, in its Rust core).
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]\Z")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")


def check_collection_name(collection: str) -> None:
    """Refuse, before anything is opened or embedded, a name Chroma would refuse when the collection is created.

    Also refused: :data:`ALIAS_COLLECTION`, where vecembed keeps the aliases.
    """
    if not _NAME.match(collection) or ".." in collection or _IPV4.match(collection):
        raise InvalidInputError(
            f"{collection[:80]!r} is not a Chroma collection name: a name has 3 to 512 characters from "
            "a-z A-Z 0-9 . _ -, starts and ends with a letter or digit, has no '..' and is not an IPv4 address"
        )
    if collection == ALIAS_COLLECTION:
        raise InvalidInputError(
            f"{collection!r} is reserved: vecembed keeps the database's aliases in that collection; choose another name"
        )


def open_chroma_store(
    collection: str,
    *,
    provider: EmbeddingProvider | None = None,
    path: str | None = None,
    url: str | None = None,
    client: ClientAPI | AsyncClientAPI | None = None,
    **options: Any,
) -> ChromaStore:
    """The ``chroma`` entry point: a :class:`ChromaStore` on ``client``, a server ``url``, a ``path``, or in memory.

    An async client (``await chromadb.AsyncHttpClient(...)``) needs :func:`vecembed.aopen_store` (its calls
    run on that event loop); a sync ``open_store`` refuses it with :class:`~vecembed.errors.EventLoopError`.
    """
    if options:
        raise InvalidInputError(f"the chroma store takes no options {sorted(options)}; it takes path=, url=, client=")
    check_collection_name(collection)
    if client is not None:
        if isinstance(client, AsyncClientAPI):
            # The bridge has ClientAPI's method names, each waiting for the async client's coroutine; the
            # AsyncCollections it returns are bridged the same way.
            client = cast(ClientAPI, bridge_async_client(client, db="chroma", wrap=(AsyncCollection,)))
        return ChromaStore(client, collection, location="client", provider=provider)
    if url is not None:
        return ChromaStore(_client_for_url(url), collection, location=url, provider=provider, owns_client=True)
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        return ChromaStore(
            chromadb.PersistentClient(path=str(path)), collection, location=str(path), provider=provider,
            owns_client=True, preferred_batch_size=EMBEDDED_BATCH_SIZE,
        )
    return ChromaStore(chromadb.EphemeralClient(), collection, location="memory", provider=provider, owns_client=True,
                       preferred_batch_size=EMBEDDED_BATCH_SIZE)
