"""The identity of a collection's vector space, its metadata keys, and the one check made before any write.

Every store records the provider's vector space in the collection's own
metadata under the keys below, and every store, the CLI, the Chroma helpers and
the health checks compare it through :func:`verify_identity` — the only place
that decides whether a collection and a provider fit::

    vecembed:fingerprint   ModelInfo.fingerprint (what is compared)
    vecembed:model         ModelInfo.name        (what the messages show)
    vecembed:dimension     ModelInfo.dimension
    vecembed:distance      the distance the collection was created with ("cosine")
    vecembed:quantization  ModelInfo.quantization, "" for none (shown when two variants of one model meet)
    vecembed:vector_name   the named vector ("" for the unnamed one; Qdrant)
    vecembed:sparse_fingerprint  SparseModelInfo.fingerprint of the sparse provider ("" for none)
    vecembed:sparse_model        SparseModelInfo.name (what the messages show)
    vecembed:sparse_idf          1 when query terms are weighted by the collection's IDF (BM25), else 0
    vecembed:migrated_from the collection a migration copied this one from (vecembed.migrate; absent otherwise)
    vecembed:provider      how to load the provider again: a ProviderRecord as JSON (backend, options
                           that change vectors, which of them are local paths; never secrets)

The keys of each stored record that vecembed owns (``vecembed:id``,
``vecembed:text``, ``vecembed:hash``) are defined here too, so that no other
module spells a ``vecembed:`` key.

One reader per database format turns what a database stores into a
:class:`RecordedIdentity`: :meth:`CollectionIdentity.from_metadata` for the
metadata keys above (Qdrant, Qdrant Edge, pgvector, and Chroma first), and
:func:`read_chroma_identity` for a Chroma collection, whose stored
embedding-function configuration also names the model when it is a
``vecembed`` function (``client.create_collection(name,
embedding_function=ChromaEmbeddingFunction(provider))``, no metadata).

Policy, the same for every store, the CLI, the Chroma helpers and the Chroma
embedding function:

* identity in the metadata: that model's collection; another model is refused;
* no metadata, but a stored ``vecembed`` embedding-function config: that
  config's provider is the collection's identity (no ``adopt`` needed); the
  first claim copies it into the metadata; another model is refused;
* neither (made by plain chromadb or qdrant-client): an empty one is claimed —
  its identity is recorded by the first ingest; one that holds vectors is
  refused unless ``adopt=True`` says they come from this provider's model (and
  their dimension matches).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from vecembed.errors import DimensionMismatchError, InvalidInputError, ModelMismatchError
from vecembed.provider_record import ProviderRecord
from vecembed.sparse import SparseModelInfo, registered_sparse_name
from vecembed.types import ModelInfo

__all__ = [
    "CHROMA_EF_NAME",
    "DIMENSION_KEY",
    "DISTANCE_KEY",
    "FINGERPRINT_KEY",
    "MIGRATED_FROM_KEY",
    "MODEL_KEY",
    "PROVIDER_KEY",
    "QUANTIZATION_KEY",
    "RECORD_HASH_KEY",
    "RECORD_ID_KEY",
    "RECORD_TEXT_KEY",
    "RESERVED_PREFIX",
    "SPARSE_FINGERPRINT_KEY",
    "SPARSE_IDF_KEY",
    "SPARSE_MODEL_KEY",
    "VECTOR_NAME_KEY",
    "CollectionIdentity",
    "IdentitySource",
    "RecordedIdentity",
    "Verdict",
    "claiming",
    "read_chroma_identity",
    "verify_identity",
]

#: Every key vecembed writes into a collection's or a record's metadata starts with this.
RESERVED_PREFIX = "vecembed:"

FINGERPRINT_KEY = "vecembed:fingerprint"
MODEL_KEY = "vecembed:model"
DIMENSION_KEY = "vecembed:dimension"
DISTANCE_KEY = "vecembed:distance"
QUANTIZATION_KEY = "vecembed:quantization"
VECTOR_NAME_KEY = "vecembed:vector_name"
SPARSE_FINGERPRINT_KEY = "vecembed:sparse_fingerprint"
SPARSE_MODEL_KEY = "vecembed:sparse_model"
SPARSE_IDF_KEY = "vecembed:sparse_idf"
#: The collection a migration copied this one from: what a rollback points the alias back at.
MIGRATED_FROM_KEY = "vecembed:migrated_from"
PROVIDER_KEY = "vecembed:provider"

#: Per record: the caller's id (where the database's own id cannot hold it), the text, the content hash.
RECORD_ID_KEY = "vecembed:id"
RECORD_TEXT_KEY = "vecembed:text"
RECORD_HASH_KEY = "vecembed:hash"

#: The name a Chroma collection's configuration stores for a :class:`vecembed_chroma.ChromaEmbeddingFunction`
#: (and chromadb's registry looks up): how :func:`read_chroma_identity` knows the config is one of ours.
CHROMA_EF_NAME = "vecembed"

#: Distance names as the databases spell them -> one vocabulary.
_DISTANCE_ALIASES = {
    "cosine": "cosine",
    "cos": "cosine",
    "dot": "dot",
    "ip": "dot",
    "l2": "euclid",
    "euclid": "euclid",
    "euclidean": "euclid",
    "manhattan": "manhattan",
}


def canonical_distance(name: str) -> str:
    """``"Cosine"``, ``"ip"``, ``"l2"`` ... as ``"cosine"``, ``"dot"``, ``"euclid"``; unknown names as given."""
    return _DISTANCE_ALIASES.get(name.lower(), name.lower())


@dataclass(frozen=True, kw_only=True)
class CollectionIdentity:
    """The vector space a collection holds: what is recorded in it and compared before every write.

    ``sparse_fingerprint`` / ``sparse_model``: the sparse provider whose vectors the collection holds beside the
    dense ones ("" for none: a dense-only collection); ``sparse_idf``: whether its query terms are weighted by
    the collection's inverse document frequencies (BM25), which decides how the store creates its sparse field.
    ``provider``: how to load the provider that wrote it (None: not recorded, e.g. a collection
    written before vecembed recorded it); never compared — the fingerprint decides.
    """

    fingerprint: str
    model: str
    dimension: int
    distance: str = "cosine"
    quantization: str = ""
    vector_name: str = ""
    sparse_fingerprint: str = ""
    sparse_model: str = ""
    sparse_idf: bool = False
    #: The collection :func:`vecembed.migrate` copied this one from ("" for a collection written directly).
    #: Not part of the vector space: never compared.
    migrated_from: str = ""
    provider: ProviderRecord | None = None

    def __post_init__(self) -> None:
        if not self.fingerprint:
            raise InvalidInputError("CollectionIdentity.fingerprint must not be empty")
        if isinstance(self.dimension, bool) or not isinstance(self.dimension, int) or self.dimension <= 0:
            raise InvalidInputError(f"CollectionIdentity.dimension must be a positive int, got {self.dimension!r}")
        object.__setattr__(self, "distance", canonical_distance(self.distance))

    @classmethod
    def of(
        cls,
        info: ModelInfo,
        *,
        distance: str = "cosine",
        vector_name: str | None = None,
        sparse: SparseModelInfo | None = None,
    ) -> CollectionIdentity:
        """The identity of a collection written by a provider with ``info`` (and a sparse provider with ``sparse``)."""
        return cls(
            fingerprint=info.fingerprint,
            model=info.name,
            dimension=info.dimension,
            distance=distance,
            quantization=info.quantization or "",
            vector_name=vector_name or "",
            sparse_fingerprint=sparse.fingerprint if sparse is not None else "",
            sparse_model=sparse.name if sparse is not None else "",
            sparse_idf=bool(sparse.idf) if sparse is not None else False,
            provider=ProviderRecord.of(info),
        )

    @property
    def has_sparse(self) -> bool:
        """Whether the collection holds sparse vectors beside the dense ones."""
        return bool(self.sparse_fingerprint)

    def describe_sparse(self) -> str:
        """``'bm25' (fingerprint sp1-...)`` — how messages name the sparse provider; "no sparse vectors" for none."""
        if not self.has_sparse:
            return "no sparse vectors"
        return f"{self.sparse_model or 'unknown sparse provider'!r} (fingerprint {self.sparse_fingerprint})"

    def to_metadata(self) -> dict[str, str | int]:
        """The collection metadata that records this identity (flat str/int values: every database takes them)."""
        out: dict[str, str | int] = {
            FINGERPRINT_KEY: self.fingerprint,
            MODEL_KEY: self.model,
            DIMENSION_KEY: self.dimension,
            DISTANCE_KEY: self.distance,
            QUANTIZATION_KEY: self.quantization,
            VECTOR_NAME_KEY: self.vector_name,
            SPARSE_FINGERPRINT_KEY: self.sparse_fingerprint,
            SPARSE_MODEL_KEY: self.sparse_model,
            SPARSE_IDF_KEY: int(self.sparse_idf),
        }
        if self.provider is not None:
            out[PROVIDER_KEY] = self.provider.to_json()
        if self.migrated_from:  # only on a migration's target: other collections' metadata stays as it was
            out[MIGRATED_FROM_KEY] = self.migrated_from
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> CollectionIdentity | None:
        """The identity recorded in ``metadata``, or None when it records none (no fingerprint)."""
        meta = metadata or {}
        fingerprint = meta.get(FINGERPRINT_KEY)
        if not fingerprint:
            return None
        dimension = _int_or_none(meta.get(DIMENSION_KEY)) or 0
        return cls(
            fingerprint=str(fingerprint),
            model=str(meta.get(MODEL_KEY) or "unknown model"),
            # A record without a usable dimension still names its model; 1 keeps the object valid and
            # the fingerprint comparison (which comes first for such a record) still decides.
            dimension=dimension if dimension > 0 else 1,
            distance=str(meta.get(DISTANCE_KEY) or "cosine"),
            quantization=str(meta.get(QUANTIZATION_KEY) or ""),
            vector_name=str(meta.get(VECTOR_NAME_KEY) or ""),
            sparse_fingerprint=str(meta.get(SPARSE_FINGERPRINT_KEY) or ""),
            sparse_model=str(meta.get(SPARSE_MODEL_KEY) or ""),
            sparse_idf=_int_or_none(meta.get(SPARSE_IDF_KEY)) == 1,
            migrated_from=str(meta.get(MIGRATED_FROM_KEY) or ""),
            provider=ProviderRecord.from_value(meta.get(PROVIDER_KEY)),
        )

    @staticmethod
    def without_identity(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        """``metadata`` less every key vecembed owns (what a user's own collection metadata is)."""
        return {k: v for k, v in (metadata or {}).items() if not str(k).startswith(RESERVED_PREFIX)}

    def describe(self) -> str:
        """``'all-MiniLM-L6-v2' (int8, 384-d, fingerprint ve1-...)`` — how messages name it."""
        variant = f"{self.quantization}, " if self.quantization else ""
        return f"{self.model!r} ({variant}{self.dimension}-d, fingerprint {self.fingerprint})"


class IdentitySource(str, Enum):
    """Where a collection's identity was read."""

    #: vecembed's keys in the collection's metadata.
    METADATA = "metadata"
    #: Only a stored ``vecembed`` embedding-function config (Chroma): it names the provider; the first claim
    #: copies it into the metadata.
    EMBEDDING_FUNCTION = "embedding_function"
    #: Nothing: a collection made without vecembed (or not yet claimed).
    NONE = "none"


@dataclass(frozen=True)
class RecordedIdentity:
    """What a collection records about the model that wrote it (``identity`` None: nothing) and where."""

    identity: CollectionIdentity | None
    source: IdentitySource = IdentitySource.METADATA

    def __post_init__(self) -> None:
        if (self.identity is None) != (self.source is IdentitySource.NONE):
            raise InvalidInputError(
                f"RecordedIdentity: source {self.source.value!r} does not fit identity {self.identity!r}"
            )

    @property
    def fingerprint(self) -> str | None:
        """The recorded fingerprint, or None."""
        return None if self.identity is None else self.identity.fingerprint

    @property
    def model(self) -> str | None:
        """The recorded model name, or None."""
        return None if self.identity is None else self.identity.model

    @property
    def dimension(self) -> int | None:
        """The recorded vector size, or None."""
        return None if self.identity is None else self.identity.dimension


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def read_chroma_identity(
    metadata: Mapping[str, Any] | None, configuration: Mapping[str, Any] | None
) -> RecordedIdentity:
    """The identity a Chroma collection records: its metadata first, else its stored embedding-function config.

    ``metadata`` / ``configuration``: the collection's ``metadata`` and ``configuration_json``
    as chromadb returns them. A config whose ``name`` is :data:`CHROMA_EF_NAME` and that
    carries a fingerprint (what :meth:`ChromaEmbeddingFunction.get_config` stores) names the
    provider that wrote the collection, as vecembed's metadata would; any other config (chromadb's
    ``"default"``, another library's function, none) records nothing.
    """
    recorded = CollectionIdentity.from_metadata(metadata)
    stored = (configuration or {}).get("embedding_function") or {}
    config = stored.get("config") if isinstance(stored, Mapping) else None
    ours = isinstance(stored, Mapping) and stored.get("name") == CHROMA_EF_NAME and isinstance(config, Mapping)
    fingerprint = config.get("fingerprint") if ours and isinstance(config, Mapping) else None
    if recorded is not None:
        if recorded.provider is None and fingerprint == recorded.fingerprint and isinstance(config, Mapping):
            # Recorded before the metadata named its provider: the function's config names it (the same recipe).
            recorded = replace(recorded, provider=ProviderRecord.from_value(config))
        return RecordedIdentity(recorded, IdentitySource.METADATA)
    if not isinstance(config, Mapping) or not isinstance(fingerprint, str) or not fingerprint:
        return RecordedIdentity(None, IdentitySource.NONE)
    dimension = _int_or_none(config.get("dimension"))
    hnsw = (configuration or {}).get("hnsw")
    space = hnsw.get("space") if isinstance(hnsw, Mapping) else None
    options = config.get("options")
    quantization = options.get("quantize") if isinstance(options, Mapping) else None
    identity = CollectionIdentity(
        fingerprint=fingerprint,
        model=str(config.get("model") or "unknown model"),
        # as in from_metadata: a config without a usable dimension still names its model; the fingerprint decides
        dimension=dimension if dimension is not None and dimension > 0 else 1,
        distance=str(space or "cosine"),
        quantization=str(quantization or ""),
        provider=ProviderRecord.from_value(config),
    )
    return RecordedIdentity(identity, IdentitySource.EMBEDDING_FUNCTION)


class Verdict(Enum):
    """What :func:`verify_identity` decided."""

    #: The collection records this identity: read and write.
    MATCH = "match"
    #: The collection records nothing in its metadata and may be claimed (empty, ``adopt=True``, or a stored
    #: embedding-function config that names this provider): record it before writing.
    RECORD = "record"


def _compatible_distance(stored: str, wanted: str, normalized: bool) -> bool:
    if stored == wanted:
        return True
    # On unit vectors cosine, dot and euclidean distance rank alike; the stores turn each into a cosine score.
    return normalized and {stored, wanted} <= {"cosine", "dot", "euclid"}


def verify_identity(
    collection: str,
    wanted: CollectionIdentity,
    *,
    recorded: CollectionIdentity | None,
    source: IdentitySource = IdentitySource.METADATA,
    stored_dimension: int | None = None,
    stored_distance: str | None = None,
    count: int | None = None,
    normalized: bool = True,
    adopt: bool = False,
    stored_sparse: bool | None = None,
    writing: bool = False,
) -> Verdict:
    """Decide whether a provider with identity ``wanted`` may use ``collection``; raise before anything is written.

    ``recorded``: what the collection records (None: nothing); ``source``: where it was read
    (an identity vouched for by an embedding-function config only is :attr:`Verdict.RECORD`:
    copy it into the metadata at the claim). ``stored_dimension`` /
    ``stored_distance``: the size and distance of the vectors the database holds or
    was configured with, when known. ``count``: records in it (needed only when nothing
    is recorded). Raises :class:`~vecembed.errors.DimensionMismatchError` for another
    vector size, :class:`~vecembed.errors.ModelMismatchError` for another fingerprint, an
    incompatible distance, or unrecorded vectors without ``adopt=True``.

    Sparse vectors (``wanted.sparse_fingerprint``): a collection recorded without them cannot gain them (its
    records have none), one recorded with another sparse provider's is refused like another model's, and
    ``stored_sparse`` False (the database's collection has no sparse field) refuses a sparse provider too.
    ``writing``: the check before a write, which also refuses a provider *without* the collection's sparse
    provider (the records it wrote would have no sparse vectors); a dense search of such a collection is fine.
    """
    ours = wanted.describe()
    advice = (
        f"use the model collection {collection!r} was written with, or write to another collection; "
        "nothing was written"
    )
    if recorded is not None and recorded.fingerprint != wanted.fingerprint:
        if recorded.dimension != wanted.dimension:
            raise DimensionMismatchError(
                f"collection {collection!r} holds {recorded.dimension}-dimensional vectors of model "
                f"{recorded.describe()}, but the provider is {ours}: {advice}",
                expected=recorded.dimension,
                got=wanted.dimension,
            )
        differs = " (the same model name: another variant — quantisation, revision, pooling or prompts)" if (
            recorded.model == wanted.model
        ) else ""
        raise ModelMismatchError(
            f"collection {collection!r} was written with model {recorded.describe()}, but the provider is "
            f"{ours}{differs}; vectors of two vector spaces cannot be compared: {advice}",
            expected=recorded.fingerprint,
            got=wanted.fingerprint,
        )
    if stored_dimension is not None and stored_dimension != wanted.dimension:
        whose = f"of model {recorded.describe()}" if recorded is not None else "(written without a vecembed record)"
        raise DimensionMismatchError(
            f"collection {collection!r} holds {stored_dimension}-dimensional vectors {whose}, but the provider "
            f"is {ours}: {advice}",
            expected=stored_dimension,
            got=wanted.dimension,
        )
    if stored_distance is not None and not _compatible_distance(
        canonical_distance(stored_distance), wanted.distance, normalized
    ):
        raise ModelMismatchError(
            f"collection {collection!r} uses the {stored_distance} distance, but the provider's vectors are "
            f"compared by {wanted.distance}; use another collection; nothing was written",
            expected=stored_distance,
            got=wanted.distance,
        )
    _verify_sparse(collection, wanted, recorded=recorded, stored_sparse=stored_sparse, count=count, writing=writing)
    if recorded is not None:
        return Verdict.RECORD if source is IdentitySource.EMBEDDING_FUNCTION else Verdict.MATCH
    if count and not adopt:
        raise ModelMismatchError(
            f"collection {collection!r} holds {count} records but no vecembed record of the model that wrote "
            f"them, so nothing says they were embedded with {ours}; if they were, adopt it "
            f"(open_store(..., adopt=True), or --adopt on the command line) to record the model; otherwise use "
            "another collection; nothing was written",
            expected=None,
            got=wanted.fingerprint,
        )
    return Verdict.RECORD


def sparse_provider_name(identity: CollectionIdentity) -> str:
    """The registered sparse provider (:func:`vecembed.load_sparse_provider`'s name) that wrote ``identity``'s
    sparse vectors, for messages: the name its ``sparse_model`` starts with (``bm25-english`` -> ``bm25``)."""
    model = identity.sparse_model
    return registered_sparse_name(model) or model or "bm25"


#: How every "cannot gain sparse vectors" message says what to do.
REINGEST_ADVICE = (
    "a collection gains sparse vectors only by re-ingesting its documents into a new collection: open a new "
    "collection with sparse= (open_store(db, 'new-name', provider, sparse='bm25'), or `vecembed ingest ... "
    "--sparse bm25`) and ingest the documents again, or, when moving to another model anyway, let "
    "`vecembed migrate` (vecembed.migrate(..., sparse='bm25')) copy them into one"
)


def _verify_sparse(
    collection: str,
    wanted: CollectionIdentity,
    *,
    recorded: CollectionIdentity | None,
    stored_sparse: bool | None,
    count: int | None,
    writing: bool,
) -> None:
    """The sparse half of :func:`verify_identity` (the dense half passed): raise what does not fit."""
    if wanted.has_sparse:
        if recorded is not None and not recorded.has_sparse:
            raise ModelMismatchError(
                f"collection {collection!r} was created without sparse vectors (dense only, model "
                f"{recorded.describe()}), so it cannot be searched or written with the sparse provider "
                f"{wanted.describe_sparse()}: {REINGEST_ADVICE}; or open it without sparse= for dense search; "
                "nothing was written",
                expected=None,
                got=wanted.sparse_fingerprint,
            )
        if recorded is not None and recorded.sparse_fingerprint != wanted.sparse_fingerprint:
            raise ModelMismatchError(
                f"collection {collection!r} holds sparse vectors of {recorded.describe_sparse()}, but the sparse "
                f"provider is {wanted.describe_sparse()}; sparse vectors of two term spaces cannot be compared: "
                "use the sparse provider (and options) the collection was written with, or write to another "
                "collection; nothing was written",
                expected=recorded.sparse_fingerprint,
                got=wanted.sparse_fingerprint,
            )
        if recorded is None and (stored_sparse is False or count):
            why = ("has no sparse field" if stored_sparse is False
                   else f"holds {count} records written without vecembed, so without sparse vectors")
            raise ModelMismatchError(
                f"collection {collection!r} {why}: it cannot take the sparse provider {wanted.describe_sparse()}; "
                f"{REINGEST_ADVICE}; nothing was written",
                expected=None,
                got=wanted.sparse_fingerprint,
            )
    elif writing and recorded is not None and recorded.has_sparse:
        name = sparse_provider_name(recorded)
        raise ModelMismatchError(
            f"collection {collection!r} holds sparse vectors of {recorded.describe_sparse()} beside the dense ones; "
            f"an ingest without them would leave records without sparse vectors: pass the sparse provider "
            f"(open_store(..., sparse={name!r}), or --sparse {name} on the command line, with the options it was "
            "written with); dense search works without it; nothing was written",
            expected=recorded.sparse_fingerprint,
            got=None,
        )


_claim_locks: dict[tuple[str, ...], threading.Lock] = {}
_claim_locks_guard = threading.Lock()


@contextmanager
def claiming(*key: str) -> Iterator[None]:
    """Make "check that nothing is recorded, record ours, read it back" one step for the collection ``key``.

    No database offers a compare-and-set on collection metadata, so two writers that both saw an unrecorded
    collection would both record their model and both write. Within one process this lock serialises the
    claim: the second writer, re-checking inside it, finds the first one's identity and is refused. (Across
    processes the read-back after recording still catches most races, not all: say so where it matters.)
    """
    with _claim_locks_guard:
        lock = _claim_locks.setdefault(key, threading.Lock())
    with lock:
        yield
