"""vecembed: text to vectors, offline and fast, plugged straight into Chroma, Qdrant, Qdrant Edge and pgvector.

::

    import vecembed

    with vecembed.load_provider("onnx") as p:      # all-MiniLM-L6-v2 by default
        vectors = p.embed_documents(["first text", "second text"])   # float32 (2, 384)
        print(p.info.fingerprint, p.health_check().ok)

Importing this package imports none of torch, onnxruntime, transformers,
chromadb or qdrant_client: backends and adapters import them when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vecembed.collection import Store, aliases, aopen_store, drop_alias, open_store, set_alias
from vecembed.errors import (
    CollectionNotFoundError,
    DimensionMismatchError,
    EventLoopError,
    IngestError,
    InvalidInputError,
    InvalidVectorsError,
    MissingDependencyError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFoundError,
    ProviderNotRecordedError,
    ProviderUnavailableError,
    UnknownProviderError,
    UnsupportedError,
    VecembedError,
)
from vecembed.identity import CollectionIdentity
from vecembed.migration import MigrationReport, migrate
from vecembed.protocol import EmbeddingProvider
from vecembed.provider_record import ProviderRecord
from vecembed.records import Document
from vecembed.registry import available_providers, load_provider
from vecembed.sparse import (
    Fusion,
    SparseEmbeddingProvider,
    SparseModelInfo,
    SparseVector,
    available_sparse_providers,
    load_sparse_provider,
)
from vecembed.store import Hit, IngestReport, VectorStore, available_stores
from vecembed.types import Embeddings, EmbeddingStats, EmbedResult, HealthReport, ModelInfo

if TYPE_CHECKING:
    from vecembed.embedding_cache import CachedProvider
    from vecembed.providers.delegating import DelegatingProvider
    from vecembed.resolve import DEFAULT_MODEL

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "CachedProvider",
    "CollectionIdentity",
    "CollectionNotFoundError",
    "DelegatingProvider",
    "DimensionMismatchError",
    "Document",
    "EmbedResult",
    "EmbeddingProvider",
    "EmbeddingStats",
    "Embeddings",
    "EventLoopError",
    "Fusion",
    "HealthReport",
    "Hit",
    "IngestError",
    "IngestReport",
    "InvalidInputError",
    "InvalidVectorsError",
    "MigrationReport",
    "MissingDependencyError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "ProviderNotRecordedError",
    "ProviderRecord",
    "ProviderUnavailableError",
    "SparseEmbeddingProvider",
    "SparseModelInfo",
    "SparseVector",
    "Store",
    "UnknownProviderError",
    "UnsupportedError",
    "VecembedError",
    "VectorStore",
    "__version__",
    "aliases",
    "aopen_store",
    "available_providers",
    "available_sparse_providers",
    "available_stores",
    "distill",
    "drop_alias",
    "load_provider",
    "load_sparse_provider",
    "migrate",
    "open_store",
    "set_alias",
]


def __getattr__(name: str) -> Any:
    # Lazy members: they live in modules that are cheap but not needed by everyone.
    if name == "DEFAULT_MODEL":
        from vecembed.resolve import DEFAULT_MODEL

        return DEFAULT_MODEL
    if name == "CachedProvider":
        from vecembed.embedding_cache import CachedProvider

        return CachedProvider
    if name == "DelegatingProvider":
        from vecembed.providers.delegating import DelegatingProvider

        return DelegatingProvider
    if name == "distill":
        from vecembed.providers.static import distill

        return distill
    raise AttributeError(f"module 'vecembed' has no attribute {name!r}")
