"""ChromaEmbeddingFunction: any vecembed provider as a complete chromadb (>= 1.0) embedding function.

Matches the protocol of ``chromadb.api.types.EmbeddingFunction`` as shipped in
chromadb 1.5.9: ``__call__(input)`` for documents, ``embed_query(input)`` for
queries, ``name()``, ``get_config()`` / ``build_from_config()`` for the
collection's stored configuration, ``default_space()`` / ``supported_spaces()``,
``validate_config()`` / ``validate_config_update()`` and ``is_legacy()``.

The class is registered with chromadb's ``register_embedding_function`` when
``vecembed_chroma`` is imported, so a collection created with it can be opened
with ``client.get_collection(name)`` in another process, without passing the
function again: Chroma finds the name ``"vecembed"`` in the stored
configuration and calls :meth:`ChromaEmbeddingFunction.build_from_config`.

Chroma calls ``build_from_config`` about ten times per create/add/query
sequence (every read of ``collection.configuration`` rebuilds it), so building
is cheap and lazy: it never loads a model and never fails for a config that
``get_config`` produced. The provider is found or loaded on first use, through
a small process-wide table of live providers keyed by fingerprint; a provider
loaded from the config must have the fingerprint the config recorded, or the
call raises :class:`~vecembed.errors.ModelMismatchError` before anything is
embedded.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType
from typing import Any

from chromadb.api.models.Collection import Collection
from chromadb.api.models.CollectionCommon import CollectionCommon
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

import vecembed
from vecembed.errors import (
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
    ProviderUnavailableError,
)
from vecembed.identity import (
    CHROMA_EF_NAME,
    CollectionIdentity,
    Verdict,
    claiming,
    read_chroma_identity,
    verify_identity,
)
from vecembed.protocol import EmbeddingProvider
from vecembed.provider_record import ProviderRecord
from vecembed.registry import PROVIDERS
from vecembed.types import ModelInfo
from vecembed.vectors import check_embeddings, provider_label
from vecembed_chroma._state import claim_metadata

__all__ = ["EF_NAME", "ChromaEmbeddingFunction", "checked_calls", "claim_key", "clear_provider_cache"]

#: The name Chroma stores in a collection's configuration and looks up in its registry (defined with the
#: identity keys, where the one Chroma identity reader recognises it).
EF_NAME = CHROMA_EF_NAME

#: How far up the stack the calling collection is looked for (Chroma wraps ``__call__`` once or twice).
_CALLER_FRAMES = 6

#: The function whose calls are running for a collection vecembed has already checked (a GuardedCollection's
#: add/upsert/update/query): those calls need not look for their collection.
_checked: ContextVar[ChromaEmbeddingFunction | None] = ContextVar("vecembed_chroma_checked", default=None)


@contextmanager
def checked_calls(ef: ChromaEmbeddingFunction) -> Iterator[None]:
    """Within this block, calls of ``ef`` come from a collection already checked against it (no stack search)."""
    token = _checked.set(ef)
    try:
        yield
    finally:
        _checked.reset(token)


def claim_key(collection: Any) -> tuple[str, str]:
    """The key of :func:`vecembed.identity.claiming` for a Chroma collection (its id: one per collection)."""
    return ("chroma", str(collection.id))

#: Keys every config produced by :meth:`ChromaEmbeddingFunction.get_config` carries, with their types.
_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "backend": str,
    "model": str,
    "options": dict,
    "fingerprint": str,
    "dimension": int,
    "normalized": bool,
    "rebuildable": bool,
}

# Live providers by fingerprint. Chroma rebuilds the embedding function many times per
# call; all of those must share one loaded model, and a provider the user built in this
# process is re-used by a collection opened without passing the function. Bounded so a
# long-running process that cycles through models does not keep them all.
_CACHE_SIZE = 8
_live: OrderedDict[str, EmbeddingProvider] = OrderedDict()
_live_lock = threading.RLock()


def _is_closed(provider: EmbeddingProvider) -> bool:
    # `closed` is ProviderBase's public property; a user's own provider may not have one (then it never closes)
    return bool(getattr(provider, "closed", False))


def _remember(provider: EmbeddingProvider) -> None:
    with _live_lock:
        fingerprint = provider.info.fingerprint
        _live[fingerprint] = provider
        _live.move_to_end(fingerprint)
        while len(_live) > _CACHE_SIZE:
            _live.popitem(last=False)


def _recall(fingerprint: str) -> EmbeddingProvider | None:
    with _live_lock:
        provider = _live.get(fingerprint)
        if provider is None:
            return None
        if _is_closed(provider):
            del _live[fingerprint]
            return None
        _live.move_to_end(fingerprint)
        return provider


def clear_provider_cache() -> None:
    """Forget every provider remembered for rebuilding embedding functions (does not close them)."""
    with _live_lock:
        _live.clear()


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """A vecembed provider as a chromadb embedding function.

    ::

        import chromadb, vecembed_chroma

        ef = vecembed_chroma.ChromaEmbeddingFunction.load("onnx")   # or ChromaEmbeddingFunction(provider)
        col = client.create_collection("docs", embedding_function=ef)
        col.add(ids=["1"], documents=["hello"])        # provider.embed_documents
        col.query(query_texts=["hi"], n_results=1)     # provider.embed_queries (query prompt applies)

        # later, in any process that has run `import vecembed_chroma`:
        col = client.get_collection("docs")            # the function is rebuilt from the stored config

    ``backend`` and ``options`` say how to rebuild the provider with
    :func:`vecembed.load_provider`; when left out they are inferred from
    ``provider.info`` and checked against the recorded fingerprint at rebuild.
    A provider of your own (a backend vecembed does not know) works for
    ``add``/``query`` in the process that holds it, but cannot be rebuilt from
    the stored configuration elsewhere: open such a collection by passing the
    function again (``embedding_function=ChromaEmbeddingFunction(my_provider)``).
    """

    _provider: EmbeddingProvider | None
    _config: dict[str, Any]

    def __init__(
        self,
        provider: EmbeddingProvider,
        *,
        backend: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"ChromaEmbeddingFunction needs an EmbeddingProvider (info, embed_documents, embed_queries, ...), "
                f"got {type(provider).__name__}; build one with vecembed.load_provider(...)"
            )
        info = provider.info
        # The record every collection keeps of its provider (vecembed.provider_record): one guess, one loader.
        if options is None:
            record = ProviderRecord.of(info)
            if backend is not None and backend != record.backend:
                record = ProviderRecord(backend=backend, options=record.options, local_paths=record.local_paths,
                                        rebuildable=backend in PROVIDERS and record.rebuildable)
        else:
            record = ProviderRecord(backend=backend or info.backend, options=options,
                                    rebuildable=(backend or info.backend) in PROVIDERS)
        self._provider = provider
        self._lock = threading.Lock()
        self._config = self._make_config(info, record)
        _remember(provider)

    @classmethod
    def load(cls, backend: str = "onnx", /, **options: Any) -> ChromaEmbeddingFunction:
        """Load a provider with ``vecembed.load_provider(backend, **options)`` and record exactly those options."""
        provider = vecembed.load_provider(backend, **options)
        return cls(provider, backend=backend, options=options)

    @staticmethod
    def _make_config(info: ModelInfo, record: ProviderRecord) -> dict[str, Any]:
        config = {
            **record.to_dict(),
            "model": info.name,
            "fingerprint": info.fingerprint,
            "dimension": info.dimension,
            "normalized": info.normalized,
        }
        if not record.local_paths:
            del config["local_paths"]  # optional: configs stored before it existed have none
        return config

    # -- the provider, bound now or loaded on first use ---------------------------------------

    @property
    def provider(self) -> EmbeddingProvider:
        """The provider this function embeds with (loaded from the stored config on first use)."""
        provider = self._provider
        if provider is not None and not _is_closed(provider):
            return provider
        with self._lock:
            if self._provider is None or _is_closed(self._provider):
                self._provider = self._load()
            return self._provider

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the vector space this function embeds into (no model load needed)."""
        return str(self._config["fingerprint"])

    @property
    def dimension(self) -> int:
        """The vector size this function produces (no model load needed)."""
        return int(self._config["dimension"])

    @property
    def model(self) -> str:
        """The model name recorded for this function (no model load needed)."""
        return str(self._config["model"])

    @property
    def identity(self) -> CollectionIdentity:
        """The collection identity this function records: its vector space and how to load its provider again."""
        return CollectionIdentity(
            fingerprint=self.fingerprint,
            model=self.model,
            dimension=self.dimension,
            provider=ProviderRecord.from_value(self._config),
        )

    @property
    def normalized(self) -> bool:
        """Whether the model's vectors are unit length (no model load needed)."""
        return bool(self._config["normalized"])

    def _load(self) -> EmbeddingProvider:
        cfg = self._config
        live = _recall(cfg["fingerprint"])
        if live is not None:
            return live
        if not cfg["rebuildable"]:
            raise ProviderUnavailableError(
                f"this collection was created with a provider that vecembed cannot rebuild from the stored "
                f"configuration (backend {cfg['backend']!r}, model {cfg['model']!r}, fingerprint "
                f"{cfg['fingerprint']}). Pass it again: client.get_collection(name, "
                f"embedding_function=ChromaEmbeddingFunction(your_provider)) or "
                f"vecembed_chroma.get_collection(client, name, your_provider)"
            )
        with _live_lock:  # one load per fingerprint even when several threads ask at once
            live = _recall(cfg["fingerprint"])
            if live is not None:
                return live
            # A configuration read from a database is input, not an instruction: whether models may be
            # downloaded is this process's decision (VECEMBED_OFFLINE / HF_HUB_OFFLINE, or the default), never
            # the stored options' (ProviderRecord drops allow_download). The model resolves as any user call does.
            record = ProviderRecord.from_value(cfg)
            if record is None:
                raise InvalidInputError(f"unreadable vecembed embedding-function config {cfg!r}")
            provider = record.load(
                fingerprint=cfg["fingerprint"],
                dimension=cfg["dimension"],
                model=cfg["model"],
                where="this Chroma collection's embedding function",
                advice="pass the original provider with embedding_function=ChromaEmbeddingFunction(provider)",
            )
            _remember(provider)
            return provider

    # -- embedding --------------------------------------------------------------------------------

    def _rows(self, vectors: Any, n: int) -> Embeddings:
        # The dimension this function is recorded with, not the provider's own: a provider swapped for one of
        # another size is refused here, before Chroma writes anything.
        info = self.provider.info
        array = check_embeddings(
            vectors, expected_rows=n, dimension=self.dimension, normalized=info.normalized,
            where=provider_label(info), outcome=f"nothing was written (model {self.model!r})", provider=info.name,
        )
        # A list of 1-D float32 arrays: what Chroma's own functions return, and the only
        # form that survives HttpClient for queries (lists of lists crash in .tolist()).
        return list(array)

    def _calling_collection(self) -> CollectionCommon[Any] | None:
        """The chromadb collection whose ``_embed`` is calling this function, or None when there is none.

        chromadb 1.5.9 calls an embedding function as ``ef(input=...)`` / ``ef.embed_query(input=...)``
        from ``CollectionCommon._embed`` and hands it nothing else: not the collection, not its stored
        configuration (``get_collection(name, embedding_function=ef)`` compares ``ef.name()`` only, in
        ``validate_embedding_function_conflict_on_get``), and it has no hook that binds a function to a
        collection. So where vecembed did not open the collection itself (:func:`checked_calls`), the
        caller is found on the stack, a few frames up (Chroma may wrap ``__call__``).
        """
        frame: FrameType | None = sys._getframe(2)
        for _ in range(_CALLER_FRAMES):
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            if isinstance(owner, CollectionCommon):
                return owner
            frame = frame.f_back
        return None

    def _check_bound_collection(self) -> None:
        """Refuse to embed for a collection of another vector space — before Chroma writes anything.

        The policy of ``open_store`` and the helpers, on the same reader
        (:func:`vecembed.identity.read_chroma_identity`): a collection that records another model
        (metadata, else its stored function config) is refused; one that records nothing but holds
        vectors is refused too (``vecembed_chroma.get_collection(..., adopt=True)`` adopts it); an empty
        unrecorded one is claimed: this function's identity is recorded in its metadata first.
        A :class:`~vecembed_chroma.GuardedCollection` was checked when it was opened: its calls skip this.
        """
        if _checked.get() is self:
            return
        owner = self._calling_collection()
        if owner is None:
            return
        identity = self.identity
        # An AsyncCollection calls this function synchronously from its coroutine: its count() and modify()
        # cannot be awaited here, so for it only the recorded identity is compared.
        sync = owner if isinstance(owner, Collection) else None

        def verdict() -> tuple[Verdict, bool]:
            # The collection object's own snapshot: no database call unless nothing is recorded (then a count).
            recorded = read_chroma_identity(owner.metadata, owner.configuration_json)
            decided = verify_identity(
                owner.name,
                identity,
                recorded=recorded.identity,
                source=recorded.source,
                count=int(sync.count()) if sync is not None and recorded.identity is None else None,
                normalized=self.normalized,
            )
            return decided, recorded.identity is None

        # A stored config that names this function is a record already (every reader reads it): nothing to
        # write from inside chromadb's call. An empty, unrecorded collection is claimed as the helpers do.
        if verdict() == (Verdict.RECORD, True) and sync is not None:
            with claiming(*claim_key(sync)):
                if verdict() == (Verdict.RECORD, True):
                    sync.modify(metadata=claim_metadata(sync, identity))

    def __call__(self, input: Documents) -> Embeddings:
        """Document vectors via ``provider.embed_documents``; bad items raise InvalidInputError naming the index."""
        self._check_bound_collection()
        texts = list(input)
        return self._rows(self.provider.embed_documents(texts), len(texts))

    def embed_query(self, input: Documents) -> Embeddings:
        """Query vectors via ``provider.embed_queries``, so the model's query prompt applies."""
        self._check_bound_collection()
        texts = list(input)
        return self._rows(self.provider.embed_queries(texts), len(texts))

    # -- the configuration Chroma stores ---------------------------------------------------------

    @staticmethod
    def name() -> str:
        return EF_NAME

    def get_config(self) -> dict[str, Any]:
        """backend, model, options, fingerprint, dimension, normalized, rebuildable — plain JSON values."""
        return copy.deepcopy(self._config)

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        """Rebuild from a stored config. Cheap: the provider is re-used or loaded on first use, not here."""
        ChromaEmbeddingFunction.validate_config(config)
        ef = ChromaEmbeddingFunction.__new__(ChromaEmbeddingFunction)
        ef._config = {key: copy.deepcopy(config[key]) for key in (*_CONFIG_KEYS, "local_paths") if key in config}
        ef._lock = threading.Lock()
        ef._provider = _recall(config["fingerprint"])
        return ef

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Refuse a config that :meth:`get_config` could not have produced (ValueError naming the key)."""
        if not isinstance(config, Mapping):
            raise InvalidInputError(f"a vecembed embedding-function config must be a dict, got {type(config).__name__}")
        for key, kind in _CONFIG_KEYS.items():
            if key not in config:
                raise InvalidInputError(f"vecembed embedding-function config lacks {key!r}: {config!r}")
            value = config[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InvalidInputError(
                    f"vecembed embedding-function config: {key!r} must be {getattr(kind, '__name__', kind)}, "
                    f"got {value!r}"
                )
        if config["dimension"] <= 0:
            raise InvalidInputError(f"vecembed embedding-function config: dimension must be positive, got {config}")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Allow a change of backend or options (device, batch size); refuse a change of model."""
        old_dim, new_dim = old_config.get("dimension"), new_config.get("dimension")
        what = (
            f"model {old_config.get('model')!r} (fingerprint {old_config.get('fingerprint')}, dimension {old_dim}) "
            f"-> {new_config.get('model')!r} (fingerprint {new_config.get('fingerprint')}, dimension {new_dim})"
        )
        advice = "the stored vectors belong to the old model: re-embed into a new collection instead"
        if old_dim != new_dim:
            raise DimensionMismatchError(
                f"cannot change the embedding function's model: {what}; {advice}",
                expected=old_dim if isinstance(old_dim, int) else None,
                got=new_dim if isinstance(new_dim, int) else None,
            )
        if old_config.get("fingerprint") != new_config.get("fingerprint"):
            raise ModelMismatchError(
                f"cannot change the embedding function's model: {what}; {advice}",
                expected=old_config.get("fingerprint"),
                got=new_config.get("fingerprint"),
            )

    def default_space(self) -> Space:
        # Unit vectors: cosine, inner product and L2 rank alike; cosine is what the
        # sentence-transformers models are trained and evaluated with.
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        if self._config["normalized"]:
            return ["cosine", "ip", "l2"]
        # Without normalisation, inner product and L2 reward vector length, which the model
        # was not trained to encode: only cosine ranks as the model means.
        return ["cosine"]

    def is_legacy(self) -> bool:
        return False

    def __repr__(self) -> str:
        state = "loaded" if self._provider is not None else "not loaded"
        return (
            f"ChromaEmbeddingFunction(model={self.model!r}, backend={self._config['backend']!r}, "
            f"dimension={self.dimension}, {state})"
        )
