"""What a Chroma collection says about itself, read one way for the store, the helpers, health and the function.

:func:`collection_state` turns a chromadb collection into the contract's
:class:`~vecembed.store.CollectionState` through the one Chroma identity reader
(:func:`vecembed.identity.read_chroma_identity`: vecembed's metadata, else a stored
``vecembed`` embedding-function config); :func:`claim_metadata` is the metadata that
records an identity in a collection while keeping the user's own keys. Only chromadb's
public collection API is used here (a chromadb ``Collection``, or an ``AsyncCollection`` behind
:class:`vecembed.aio.LoopBridge`: hence ``Any``).
"""

from __future__ import annotations

from typing import Any

from vecembed.identity import CollectionIdentity, read_chroma_identity
from vecembed.store import CollectionState

__all__ = ["claim_metadata", "collection_state", "space", "stored_dimension"]


def space(collection: Any) -> str | None:
    """The HNSW space the collection was created with ("cosine", "ip", "l2"), when it says."""
    hnsw = (collection.configuration_json or {}).get("hnsw") or {}
    found = hnsw.get("space") or (collection.metadata or {}).get("hnsw:space")
    return str(found) if found else None


def stored_dimension(collection: Any) -> int | None:
    """The size of the vectors the collection holds (fixed by its first write), or None when it never had one."""
    dim = getattr(collection.get_model(), "dimension", None)
    if isinstance(dim, int) and dim > 0:
        return dim
    # Older servers do not report the dimension: look at one stored vector.
    peek = collection.get(limit=1, include=["embeddings"])
    embeddings = peek.get("embeddings")
    if embeddings is not None and len(embeddings) > 0:
        return len(embeddings[0])
    return None


def collection_state(collection: Any) -> CollectionState:
    """The recorded identity (and where it was read), vector size, space and, when nothing is recorded, count."""
    recorded = read_chroma_identity(collection.metadata, collection.configuration_json)
    return CollectionState(
        identity=recorded.identity,
        dimension=stored_dimension(collection),
        distance=space(collection),
        count=None if recorded.identity is not None else int(collection.count()),
        source=recorded.source,
    )


def claim_metadata(collection: Any, identity: CollectionIdentity) -> dict[str, Any]:
    """The metadata to ``modify()`` a collection with so that it records ``identity``, keeping the user's keys."""
    # modify() replaces the metadata, so the user's keys are sent again. "hnsw:*" keys must not be (Chroma
    # refuses any "change" of the distance); the space itself lives in the configuration and is kept.
    kept = {
        k: v for k, v in CollectionIdentity.without_identity(collection.metadata).items() if not k.startswith("hnsw:")
    }
    return {**kept, **identity.to_metadata()}
