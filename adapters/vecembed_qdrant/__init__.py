"""Qdrant adapter for vecembed: a collection made for the provider, pipelined idempotent ingest, search by text.

::

    from qdrant_client import QdrantClient
    import vecembed
    from vecembed_qdrant import QdrantIngestor

    ingestor = QdrantIngestor(QdrantClient(path="./qdrant"), "docs", vecembed.load_provider("onnx"))
    report = ingestor.ingest(texts, ids=ids, metadata=metadata)
    hits = ingestor.search("how do I reset it?", limit=5, query_filter={"lang": "en"})

Needs ``pip install 'vecembed[qdrant]'`` (qdrant-client >= 1.16; servers >= 1.16
for the collection metadata that records the model).
"""

from vecembed._deps import require

# Checked once, here, so that a missing extra says what to install instead of a bare ImportError below.
require("qdrant_client", "qdrant", "the Qdrant adapter")

from vecembed_qdrant.collection import FINGERPRINT_KEY, MODEL_KEY  # noqa: E402
from vecembed_qdrant.ingestor import DEFAULT_BATCH_SIZE, QdrantIngestor, to_filter  # noqa: E402
from vecembed_qdrant.points import POINT_ID_NAMESPACE, point_id  # noqa: E402
from vecembed_qdrant.records import Hit, IngestError, IngestReport  # noqa: E402

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FINGERPRINT_KEY",
    "MODEL_KEY",
    "POINT_ID_NAMESPACE",
    "Hit",
    "IngestError",
    "IngestReport",
    "QdrantIngestor",
    "point_id",
    "to_filter",
]
