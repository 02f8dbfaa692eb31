"""What the Qdrant adapter hands back: :class:`IngestReport`, :class:`Hit`, and :class:`IngestError`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vecembed.errors import ProviderUnavailableError

__all__ = ["Hit", "IngestError", "IngestReport"]

#: A caller's document id: a string or an integer, as the caller gave it.
DocId = str | int


@dataclass(frozen=True, kw_only=True)
class IngestReport:
    """The outcome of one :meth:`~vecembed_qdrant.QdrantIngestor.ingest` call.

    ``points``: points upserted (embedded and written) by this call.
    ``skipped``: documents already stored with the same text and metadata, left alone.
    ``duplicates``: repeated texts collapsed into one point (only when no ids were given).
    ``batches``: upsert batches sent. ``retries``: transient failures that a retry absorbed.
    ``truncated``: texts cut to the model's ``max_tokens`` (``None`` when the provider keeps no stats).
    ``seconds``/``texts_per_second``: wall time of the whole call, and documents handled per second.
    """

    collection: str
    documents: int
    points: int
    skipped: int = 0
    duplicates: int = 0
    batches: int
    retries: int = 0
    truncated: int | None
    seconds: float
    texts_per_second: float

    def __str__(self) -> str:
        truncated = "n/a" if self.truncated is None else str(self.truncated)
        return (
            f"ingested {self.documents} documents into {self.collection!r}: {self.points} points written, "
            f"{self.skipped} unchanged, {self.duplicates} duplicates, {self.batches} batches, "
            f"{self.retries} retries, {truncated} truncated, {self.seconds:.2f} s "
            f"({self.texts_per_second:.1f} texts/s)"
        )


@dataclass(frozen=True, kw_only=True)
class Hit:
    """One search result: the caller's own id, the score, the stored text and metadata.

    ``point_id`` is the Qdrant point id (a UUID string) the adapter derived from ``id``.
    """

    id: DocId
    score: float
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    point_id: str = ""


class IngestError(ProviderUnavailableError):
    """An ingest stopped part-way because Qdrant (or the provider) kept failing.

    ``committed`` points were confirmed written before the failure and stay
    written; ``total`` is how many the call meant to write. Re-running the same
    call finishes the job: point ids are deterministic, so points already
    written are overwritten (or skipped when unchanged), never duplicated.
    """

    def __init__(self, message: str, *, committed: int, total: int, collection: str) -> None:
        self.committed = committed
        self.total = total
        self.collection = collection
        super().__init__(message)
