"""Qdrant Edge for vecembed (beta): the ``qdrant-edge`` store of :func:`vecembed.open_store`.

Qdrant's embedded engine (segments, WAL, HNSW) in this process, one shard per
collection in a folder::

    import vecembed

    provider = vecembed.load_provider("onnx")
    with vecembed.open_store("qdrant-edge", "docs", provider, path="./edge") as store:
        report = store.ingest(docs)                      # deterministic ids: a re-run writes nothing twice
        store.backend.optimize()                         # build the HNSW index now (else before the next search)
        hits = store.search("how do I reset it?", k=5, where={"lang": "en"})

Needs ``pip install 'vecembed[qdrant-edge]'`` (``qdrant-edge-py``, beta, pinned to
0.9.x); point ids and dict filters are shared with the Qdrant store, so
``qdrant-client`` is imported too.
"""

from vecembed._deps import require

# Checked once, here, so that a missing extra says what to install instead of a bare ImportError below.
require("qdrant_edge", "qdrant-edge", "the Qdrant Edge store")
require("qdrant_client", "qdrant", "the Qdrant Edge store's point ids and filters (shared with the Qdrant store)")

from vecembed_qdrant_edge.store import (  # noqa: E402
    EdgeShards,
    QdrantEdgeStore,
    open_qdrant_edge_store,
    to_edge_filter,
)

__all__ = ["EdgeShards", "QdrantEdgeStore", "open_qdrant_edge_store", "to_edge_filter"]
