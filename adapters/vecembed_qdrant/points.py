"""From the caller's documents, ids and metadata to Qdrant point ids and payloads — validated up front.

Point ids are deterministic so that re-running an ingest overwrites instead of
duplicating:

* a caller id that already is a canonical UUID string is used as it is (so a
  Qdrant user's own UUIDs stay recognisable, and a :class:`~vecembed_qdrant.Hit`
  id round-trips through :meth:`~vecembed_qdrant.QdrantIngestor.delete`);
* any other ``str`` or ``int`` id becomes ``uuid5(POINT_ID_NAMESPACE, ...)`` of it;
* with no ids at all, a document is addressed by its text: the id is
  ``uuid5`` of the text, and that UUID string is the document's id.
"""

from __future__ import annotations

import json
import numbers
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecembed.errors import InvalidInputError
from vecembed.pipeline import validate_texts
from vecembed_qdrant.records import DocId

__all__ = ["POINT_ID_NAMESPACE", "PreparedDocs", "point_id", "prepare_documents", "validate_ids"]

#: The namespace of every point id vecembed derives. Fixed forever: changing it would orphan stored points.
POINT_ID_NAMESPACE = uuid.UUID("8d4f6e2a-31c5-5b0e-9a57-6c1e0b7d2f94")


def _canonical_uuid(value: str) -> str | None:
    # Only the 36-character hyphenated form counts: uuid.UUID also parses "{...}", "urn:uuid:" and bare hex,
    # and treating those as UUIDs would make two different caller ids collide.
    if len(value) != 36 or value.count("-") != 4:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def point_id(doc_id: DocId) -> str:
    """The Qdrant point id for a caller's id (see the module docstring)."""
    if isinstance(doc_id, str):
        return _canonical_uuid(doc_id) or str(uuid.uuid5(POINT_ID_NAMESPACE, "id:str:" + doc_id))
    return str(uuid.uuid5(POINT_ID_NAMESPACE, f"id:int:{doc_id}"))


def text_id(text: str) -> str:
    """The document id of a text ingested without an id: ``uuid5`` of the text."""
    return str(uuid.uuid5(POINT_ID_NAMESPACE, "text:" + text))


def validate_ids(ids: Any, *, what: str = "ids") -> list[DocId]:
    """``ids`` as a list of non-empty ``str`` / ``int`` (not ``bool``), unique by point id; else InvalidInputError."""
    if isinstance(ids, str | bytes | Mapping):
        raise InvalidInputError(f"{what} must be a list of str or int, got {type(ids).__name__}")
    try:
        ids = list(ids)  # also a range, a numpy array, a generator
    except TypeError:
        raise InvalidInputError(f"{what} must be a list of str or int, got {type(ids).__name__}") from None
    out: list[DocId] = []
    seen: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if isinstance(doc_id, numbers.Integral) and not isinstance(doc_id, bool | np.bool_):
            doc_id = int(doc_id)  # numpy integers are ids too, stored as plain ints
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
            kind = "None" if doc_id is None else type(doc_id).__name__
            raise InvalidInputError(f"{what}[{i}] must be str or int, got {kind}; nothing was written", index=i)
        if doc_id == "":
            raise InvalidInputError(f"{what}[{i}] is an empty string; nothing was written", index=i)
        pid = point_id(doc_id)
        if pid in seen:
            raise InvalidInputError(
                f"{what} must be unique: {what}[{i}] = {doc_id!r} repeats {what}[{seen[pid]}] = "
                f"{ids[seen[pid]]!r}; nothing was written",
                index=i,
            )
        seen[pid] = i
        out.append(doc_id)
    return out


def _json_metadata(entry: Any, index: int, reserved: tuple[str, ...]) -> dict[str, Any]:
    if entry is None:
        return {}
    if not isinstance(entry, Mapping):
        raise InvalidInputError(
            f"metadata[{index}] must be a dict (or None), got {type(entry).__name__}; nothing was written",
            index=index,
        )
    for key in entry:
        if not isinstance(key, str):
            raise InvalidInputError(
                f"metadata[{index}] has a key of type {type(key).__name__} ({key!r}); keys must be str; "
                "nothing was written",
                index=index,
            )
        if key in reserved:
            raise InvalidInputError(
                f"metadata[{index}] uses the key {key!r}, which holds the adapter's own "
                f"{'text' if key == reserved[0] else 'document id'}; rename it, or pass "
                "text_key=/id_key= to QdrantIngestor; nothing was written",
                index=index,
            )
    try:
        # A JSON round trip is what a Qdrant server does to a payload; doing it here refuses what it would refuse
        # (NaN, sets, objects) before anything is written, and gives plain dicts/lists that compare equal to what
        # comes back, which is what the "unchanged" check relies on.
        normalised: dict[str, Any] = json.loads(json.dumps(dict(entry), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"metadata[{index}] is not JSON-serialisable ({exc}); use str, int, float, bool, None, "
            "lists and dicts of those; nothing was written",
            index=index,
        ) from None
    return normalised


@dataclass(frozen=True)
class PreparedDocs:
    """Validated documents, ready to embed and upsert (duplicates already collapsed)."""

    texts: list[str]
    doc_ids: list[DocId]
    point_ids: list[str]
    payloads: list[dict[str, Any]]
    duplicates: int


def prepare_documents(
    documents: Any,
    ids: Any = None,
    metadata: Any = None,
    *,
    text_key: str,
    id_key: str,
) -> PreparedDocs:
    """Validate everything before any work; raise :class:`InvalidInputError` naming the first bad index."""
    texts = validate_texts(documents, what="documents")
    doc_ids: list[DocId] | None = None
    if ids is not None:
        doc_ids = validate_ids(ids)
        if len(doc_ids) != len(texts):
            raise InvalidInputError(
                f"ids has {len(doc_ids)} items but documents has {len(texts)}; they must match one to one; "
                "nothing was written"
            )
    metas: list[dict[str, Any]]
    if metadata is None:
        metas = [{} for _ in texts]
    else:
        wrong = f"metadata must be a list with one dict (or None) per document, got {type(metadata).__name__}"
        if isinstance(metadata, Mapping | str | bytes):
            raise InvalidInputError(wrong)
        try:
            metadata = list(metadata)
        except TypeError:
            raise InvalidInputError(wrong) from None
        if len(metadata) != len(texts):
            raise InvalidInputError(
                f"metadata has {len(metadata)} items but documents has {len(texts)}; they must match one to one; "
                "nothing was written"
            )
        metas = [_json_metadata(m, i, (text_key, id_key)) for i, m in enumerate(metadata)]

    out_texts: list[str] = []
    out_ids: list[DocId] = []
    out_points: list[str] = []
    out_payloads: list[dict[str, Any]] = []
    first_index: dict[str, int] = {}
    duplicates = 0
    for i, text in enumerate(texts):
        doc_id: DocId = doc_ids[i] if doc_ids is not None else text_id(text)
        pid = point_id(doc_id)
        if doc_ids is None and pid in first_index:
            # The same text twice, addressed by its content: one point. Two different metadata for it would
            # silently lose one of them, so that is refused.
            j = first_index[pid]
            if metas[j] != metas[i]:
                raise InvalidInputError(
                    f"documents[{i}] repeats documents[{j}] with different metadata; without ids a document is "
                    "addressed by its text, so pass ids= to keep both; nothing was written",
                    index=i,
                )
            duplicates += 1
            continue
        first_index[pid] = i
        out_texts.append(text)
        out_ids.append(doc_id)
        out_points.append(pid)
        out_payloads.append({**metas[i], id_key: doc_id, text_key: text})
    return PreparedDocs(out_texts, out_ids, out_points, out_payloads, duplicates)
