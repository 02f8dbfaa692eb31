"""Chroma adapter for vecembed: an embedding function Chroma can rebuild, and collections that refuse another model.

::

    import chromadb
    import vecembed
    import vecembed_chroma          # also registers the "vecembed" embedding function with chromadb

    client = chromadb.PersistentClient("./db")
    provider = vecembed.load_provider("onnx")
    docs = vecembed_chroma.get_or_create_collection(client, "docs", provider)
    docs.add(ids=["1", "2"], documents=["first text", "second text"])
    docs.query(query_texts=["a question"], n_results=1)

    # any later process, after `import vecembed_chroma`:
    docs = client.get_collection("docs")        # the embedding function is rebuilt from the stored config
    vecembed_chroma.health_check(client, "docs", provider).ok

``import vecembed_chroma`` is the one line a process needs before it opens a
vecembed collection without passing the embedding function: it registers
:class:`ChromaEmbeddingFunction` under the name ``"vecembed"`` in chromadb's
registry (otherwise Chroma answers "Embedding function vecembed not found").

Needs ``pip install 'vecembed[chroma]'`` (chromadb >= 1.0; written against 1.5.9).
"""

from __future__ import annotations

from vecembed._deps import require

require("chromadb", "chroma", "the Chroma adapter")

from vecembed_chroma.collections import (  # noqa: E402  (after the dependency check, on purpose)
    META_DIMENSION,
    META_FINGERPRINT,
    META_MODEL,
    GuardedCollection,
    RecordedIdentity,
    as_embedding_function,
    check_collection,
    create_collection,
    get_collection,
    get_or_create_collection,
    recorded_identity,
    stored_dimension,
)
from vecembed_chroma.embedding_function import (  # noqa: E402
    EF_NAME,
    ChromaEmbeddingFunction,
    clear_provider_cache,
)
from vecembed_chroma.health import health_check  # noqa: E402
from vecembed_chroma.store import ChromaStore, open_chroma_store  # noqa: E402

__all__ = [
    "EF_NAME",
    "META_DIMENSION",
    "META_FINGERPRINT",
    "META_MODEL",
    "ChromaEmbeddingFunction",
    "ChromaStore",
    "GuardedCollection",
    "RecordedIdentity",
    "as_embedding_function",
    "check_collection",
    "clear_provider_cache",
    "create_collection",
    "get_collection",
    "get_or_create_collection",
    "health_check",
    "open_chroma_store",
    "recorded_identity",
    "stored_dimension",
]
