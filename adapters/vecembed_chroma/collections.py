"""Collections that know which model wrote them: create/open helpers, the identity check, GuardedCollection.

:func:`create_collection` records ``vecembed:fingerprint``, ``vecembed:model``
and ``vecembed:dimension`` in the collection's metadata (and, through the
embedding function's ``default_space``, a cosine HNSW index).
:func:`get_collection` and :func:`get_or_create_collection` compare what was
recorded with the provider at hand and raise
:class:`~vecembed.errors.DimensionMismatchError` /
:class:`~vecembed.errors.ModelMismatchError` *before* handing the collection
back — so nothing can be written or queried with the wrong model through them.
They read a collection as the ``chroma`` store of :func:`vecembed.open_store`
does (one reader, :func:`vecembed.identity.read_chroma_identity`) and decide as it
does (one policy, :func:`vecembed.identity.verify_identity`): a collection made
with chromadb's own ``create_collection(..., embedding_function=ChromaEmbeddingFunction(p))``
is ``p``'s (its stored config names it; the first open copies it into the
metadata); one made without vecembed is checked by the dimension of a stored
vector, and refused when it holds vectors unless ``adopt=True`` says they come
from this model.

The collection they return is a :class:`GuardedCollection`: a real
``chromadb`` ``Collection`` (every method works as usual) whose ``add``,
``upsert``, ``update`` and ``query`` first check their input — a ``None`` or
non-``str`` document raises :class:`~vecembed.errors.InvalidInputError` naming
its index, a vector of the wrong size :class:`DimensionMismatchError` — and
write nothing when a check fails.

chromadb's own ``client.get_collection(name, embedding_function=other)`` (and
``get_or_create_collection``) is guarded too, though Chroma compares
embedding-function names only: a :class:`ChromaEmbeddingFunction` checks the
collection that calls it and refuses, before anything is embedded or written, one
that records another fingerprint. What no vecembed code can see: vectors passed
precomputed (``add(embeddings=...)``) to a collection opened without these helpers.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import QueryResult, normalize_embeddings
from chromadb.errors import InternalError, NotFoundError, UniqueConstraintError

from vecembed.errors import DimensionMismatchError, InvalidInputError, ModelMismatchError
from vecembed.identity import (
    DIMENSION_KEY,
    FINGERPRINT_KEY,
    MODEL_KEY,
    CollectionIdentity,
    RecordedIdentity,
    Verdict,
    claiming,
    read_chroma_identity,
    verify_identity,
)
from vecembed.pipeline import validate_texts
from vecembed.protocol import EmbeddingProvider
from vecembed_chroma._state import claim_metadata, collection_state, stored_dimension
from vecembed_chroma.embedding_function import EF_NAME, ChromaEmbeddingFunction, checked_calls, claim_key

__all__ = [
    "META_DIMENSION",
    "META_FINGERPRINT",
    "META_MODEL",
    "GuardedCollection",
    "RecordedIdentity",
    "as_embedding_function",
    "check_collection",
    "create_collection",
    "get_collection",
    "get_or_create_collection",
    "recorded_identity",
    "stored_dimension",
]

# The keys themselves are defined once, in vecembed.identity; these names stay for existing users.
META_FINGERPRINT = FINGERPRINT_KEY
META_MODEL = MODEL_KEY
META_DIMENSION = DIMENSION_KEY


def as_embedding_function(provider_or_ef: EmbeddingProvider | ChromaEmbeddingFunction) -> ChromaEmbeddingFunction:
    """A :class:`ChromaEmbeddingFunction` for a provider (wrapped) or an embedding function (as is)."""
    if isinstance(provider_or_ef, ChromaEmbeddingFunction):
        return provider_or_ef
    return ChromaEmbeddingFunction(provider_or_ef)


def recorded_identity(collection: Collection) -> RecordedIdentity:
    """The model identity recorded in ``collection``: vecembed metadata first, then a stored vecembed EF config.

    The one Chroma reader, :func:`vecembed.identity.read_chroma_identity`, which
    ``vecembed.open_store("chroma", ...)``, :func:`health_check` and
    :class:`ChromaEmbeddingFunction` use too.
    """
    return read_chroma_identity(collection.metadata, collection.configuration_json)


def _identity(ef: ChromaEmbeddingFunction) -> CollectionIdentity:
    return ef.identity


def _verify(collection: Collection, ef: ChromaEmbeddingFunction, *, adopt: bool) -> tuple[RecordedIdentity, Verdict]:
    state = collection_state(collection)
    verdict = verify_identity(
        collection.name,
        _identity(ef),
        recorded=state.identity,
        source=state.source,
        stored_dimension=state.dimension,
        stored_distance=state.distance,
        count=state.count,
        normalized=ef.normalized,
        adopt=adopt,
    )
    return RecordedIdentity(state.identity, state.source), verdict


def check_collection(
    collection: Collection, provider_or_ef: EmbeddingProvider | ChromaEmbeddingFunction, *, adopt: bool = False
) -> RecordedIdentity:
    """Raise unless ``provider_or_ef`` embeds into the vector space ``collection`` holds; return what was recorded.

    The one check of :func:`vecembed.identity.verify_identity`, on the state the
    ``chroma`` store reads: the recorded fingerprint and dimension (metadata, else a
    stored vecembed embedding-function config), the size and space of the vectors
    stored, and — for a collection that records no model but holds vectors (made
    without vecembed) — a refusal unless ``adopt=True`` says they come from this model.
    """
    return _verify(collection, as_embedding_function(provider_or_ef), adopt=adopt)[0]


def _identity_metadata(ef: ChromaEmbeddingFunction) -> dict[str, Any]:
    return dict(_identity(ef).to_metadata())


# -- the guarded collection ----------------------------------------------------------------------

_ADD_SIG = inspect.signature(Collection.add)
_UPSERT_SIG = inspect.signature(Collection.upsert)
_UPDATE_SIG = inspect.signature(Collection.update)
_QUERY_SIG = inspect.signature(Collection.query)


class GuardedCollection(Collection):
    """A chromadb ``Collection`` bound to a checked :class:`ChromaEmbeddingFunction`.

    Everything works as on the collection chromadb returns; ``add``, ``upsert``,
    ``update`` and ``query`` validate documents, query texts and vectors first and
    raise a vecembed error (nothing written) instead of writing what cannot be right.
    """

    _vecembed_ef: ChromaEmbeddingFunction

    @classmethod
    def wrap(cls, collection: Collection, ef: ChromaEmbeddingFunction) -> GuardedCollection:
        """A guarded view of ``collection`` (same client, same server-side collection) embedding with ``ef``."""
        # The Collection constructor is chromadb's public way to bind a model to a client; in chromadb 1.5.9
        # the server client and the data loader are only reachable through the collection's _client and
        # _data_loader attributes, and client.get_collection(name, embedding_function=ef) refuses ef for a
        # collection that stores another function's name ("default" when made without one).
        guarded = cls(
            client=collection._client,
            model=collection.get_model(),
            embedding_function=ef,  # type: ignore[arg-type]  # chromadb types the EF over every Embeddable
            data_loader=collection._data_loader,
        )
        guarded._vecembed_ef = ef
        return guarded

    @property
    def embedding_function(self) -> ChromaEmbeddingFunction:
        """The checked embedding function documents and queries go through."""
        return self._vecembed_ef

    @property
    def provider(self) -> EmbeddingProvider:
        """The provider behind :attr:`embedding_function`."""
        return self._vecembed_ef.provider

    def _check_documents(self, documents: Any, what: str) -> None:
        if documents is None:
            return
        # Chroma accepts one str for one record; validate_texts wants a sequence.
        validate_texts([documents] if isinstance(documents, str) else documents, what=what)

    def _check_embeddings(self, embeddings: Any, what: str) -> None:
        if embeddings is None:
            return
        try:
            rows = normalize_embeddings(embeddings)
        except (ValueError, TypeError, IndexError) as exc:
            raise InvalidInputError(f"{what}: {exc}; nothing was written") from None
        for i, row in enumerate(rows or []):
            size = len(row)
            if size != self._vecembed_ef.dimension:
                raise DimensionMismatchError(
                    f"{what}[{i}] has dimension {size} but collection {self.name!r} holds "
                    f"{self._vecembed_ef.dimension}-dimensional vectors of model {self._vecembed_ef.model!r}; "
                    f"nothing was written",
                    expected=self._vecembed_ef.dimension,
                    got=size,
                )

    def _check_write(self, sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        bound = sig.bind(self, *args, **kwargs).arguments
        self._check_documents(bound.get("documents"), "documents")
        self._check_embeddings(bound.get("embeddings"), "embeddings")

    def add(self, *args: Any, **kwargs: Any) -> None:
        """``Collection.add``, after checking documents and vectors."""
        self._check_write(_ADD_SIG, args, kwargs)
        with checked_calls(self._vecembed_ef):
            super().add(*args, **kwargs)

    def upsert(self, *args: Any, **kwargs: Any) -> None:
        """``Collection.upsert``, after checking documents and vectors."""
        self._check_write(_UPSERT_SIG, args, kwargs)
        with checked_calls(self._vecembed_ef):
            super().upsert(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``Collection.update``, after checking documents and vectors."""
        self._check_write(_UPDATE_SIG, args, kwargs)
        with checked_calls(self._vecembed_ef):
            super().update(*args, **kwargs)

    def modify(
        self,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        configuration: Any = None,
    ) -> None:
        """``Collection.modify``, keeping the vecembed record and refusing a change of model.

        Chroma replaces the whole metadata on ``modify``; the ``vecembed:*`` keys are
        carried over so the collection stays guarded. A new embedding function must
        embed into the same vector space: chromadb checks that only *after* the
        server has stored the new configuration, so it is checked here first.
        """
        ef = self._vecembed_ef
        if configuration is not None and configuration.get("embedding_function") is not None:
            new_ef = configuration["embedding_function"]
            if not isinstance(new_ef, ChromaEmbeddingFunction):
                new_name = new_ef.name() if hasattr(new_ef, "name") else type(new_ef).__name__
                raise ModelMismatchError(
                    f"collection {self.name!r} holds vectors of model {ef.model!r} ({ef.fingerprint}); it cannot "
                    f"switch to the embedding function {new_name!r}: re-embed into a new collection instead",
                    expected=ef.fingerprint,
                )
            ef.validate_config_update(ef.get_config(), new_ef.get_config())
        if metadata is not None:
            record = _identity_metadata(ef)
            for key, value in record.items():
                if key in metadata and metadata[key] != value:
                    raise ModelMismatchError(
                        f"{key} of collection {self.name!r} is {value!r}; modify() cannot change it to "
                        f"{metadata[key]!r} — the stored vectors would no longer match their record",
                        expected=str(value),
                        got=str(metadata[key]),
                    )
            metadata = {**dict(metadata), **record}
        super().modify(name=name, metadata=metadata, configuration=configuration)
        if configuration is not None and isinstance(configuration.get("embedding_function"), ChromaEmbeddingFunction):
            self._vecembed_ef = configuration["embedding_function"]
            self._embedding_function = self._vecembed_ef  # type: ignore[assignment]

    def query(self, *args: Any, **kwargs: Any) -> QueryResult:
        """``Collection.query``, after checking query texts and query vectors."""
        bound = _QUERY_SIG.bind(self, *args, **kwargs).arguments
        self._check_documents(bound.get("query_texts"), "query_texts")
        self._check_embeddings(bound.get("query_embeddings"), "query_embeddings")
        with checked_calls(self._vecembed_ef):
            return super().query(*args, **kwargs)


# -- helpers -------------------------------------------------------------------------------------


def create_collection(
    client: ClientAPI,
    name: str,
    provider_or_ef: EmbeddingProvider | ChromaEmbeddingFunction,
    *,
    metadata: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> GuardedCollection:
    """Create collection ``name`` embedding with ``provider_or_ef``, recording its model, fingerprint and dimension.

    ``metadata`` is merged with the vecembed record; other keyword arguments
    (``configuration``, ``data_loader``, ...) go to ``client.create_collection``.
    The HNSW space defaults to the embedding function's (cosine).
    """
    ef = as_embedding_function(provider_or_ef)
    merged = {**dict(metadata or {}), **_identity_metadata(ef)}
    native = client.create_collection(
        name,
        metadata=merged,
        embedding_function=ef,  # type: ignore[arg-type]
        **kwargs,
    )
    return GuardedCollection.wrap(native, ef)


def get_collection(
    client: ClientAPI,
    name: str,
    provider_or_ef: EmbeddingProvider | ChromaEmbeddingFunction | None = None,
    *,
    adopt: bool = False,
) -> GuardedCollection:
    """Open collection ``name`` and check it against ``provider_or_ef`` before returning it.

    With no provider, the embedding function is rebuilt from the collection's stored
    vecembed configuration. Raises ``DimensionMismatchError`` / ``ModelMismatchError``
    for another model, chromadb's ``NotFoundError`` when there is no such collection.
    The claim policy of ``open_store``: an empty collection with no vecembed record is
    claimed — the record is written to its metadata (Chroma fixes the dimension at the
    first write anyway); so is one created with chromadb's own
    ``create_collection(..., embedding_function=ef)`` (its stored config names the
    provider), and one holding vectors of the right size when ``adopt=True``.
    """
    # embedding_function=None: chromadb would refuse ours when the stored name differs
    # ("default" for a collection made without one); the check below is the stricter test.
    native = client.get_collection(name, embedding_function=None)
    if provider_or_ef is None:
        ef_config = (native.configuration_json or {}).get("embedding_function") or {}
        if ef_config.get("name") != EF_NAME:
            raise InvalidInputError(
                f"collection {name!r} was not created with a vecembed embedding function (stored: "
                f"{ef_config.get('name') or ef_config.get('type')!r}); pass the provider to use"
            )
        ef = ChromaEmbeddingFunction.build_from_config(ef_config["config"])
    else:
        ef = as_embedding_function(provider_or_ef)
    # Record the identity in the metadata when verify_identity says so: the stored EF config vouches for it,
    # the collection is empty (its first write would fix the vector space anyway), or the caller adopts it.
    if _verify(native, ef, adopt=adopt)[1] is Verdict.RECORD:
        with claiming(*claim_key(native)):  # two threads claiming at once: the second is checked after
            native = client.get_collection(name, embedding_function=None)
            if _verify(native, ef, adopt=adopt)[1] is Verdict.RECORD:
                native.modify(metadata=claim_metadata(native, _identity(ef)))
                native = client.get_collection(name, embedding_function=None)
    return GuardedCollection.wrap(native, ef)


def get_or_create_collection(
    client: ClientAPI,
    name: str,
    provider_or_ef: EmbeddingProvider | ChromaEmbeddingFunction,
    *,
    metadata: Mapping[str, Any] | None = None,
    adopt: bool = False,
    **kwargs: Any,
) -> GuardedCollection:
    """Open ``name`` checked against ``provider_or_ef`` (see :func:`get_collection`), or create it recorded.

    ``metadata`` and ``kwargs`` are used only when the collection is created, as in chromadb.
    """
    ef = as_embedding_function(provider_or_ef)
    try:
        return get_collection(client, name, ef, adopt=adopt)
    except NotFoundError:
        pass
    try:
        return create_collection(client, name, ef, metadata=metadata, **kwargs)
    except (UniqueConstraintError, InternalError) as exc:
        # Another client created it between our get and create: open and check theirs.
        if "already exists" not in str(exc) and not isinstance(exc, UniqueConstraintError):
            raise
        return get_collection(client, name, ef, adopt=adopt)
