"""Qdrant for vecembed: the ``qdrant`` store of :func:`vecembed.open_store`.

::

    import vecembed

    provider = vecembed.load_provider("onnx")
    with vecembed.open_store("qdrant", "docs", provider, path="./qdrant") as store:   # or url=..., client=...
        report = store.ingest(docs)                      # deterministic ids: a re-run writes nothing twice
        hits = store.search("how do I reset it?", k=5, where={"lang": "en"})

Plain dict filters given to :func:`to_filter` (what ``where=`` becomes) also take a
list (any of) and a range dict (``{"year": {"gte": 2020}}``).

Needs ``pip install 'vecembed[qdrant]'`` (qdrant-client >= 1.16; servers >= 1.16
for the collection metadata that records the model).
"""

from vecembed._deps import require

# Checked once, here, so that a missing extra says what to install instead of a bare ImportError below.
require("qdrant_client", "qdrant", "the Qdrant store")

from vecembed_qdrant.store import QdrantStore, is_transient, open_qdrant_store, point_id, to_filter  # noqa: E402

__all__ = ["QdrantStore", "is_transient", "open_qdrant_store", "point_id", "to_filter"]
