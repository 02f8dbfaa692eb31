"""Dataset rows -> the engine's records (:mod:`vecembed.records`), with each row's state, and back to columns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from ray.data.block import BlockAccessor

from vecembed.errors import InvalidInputError
from vecembed.records import Record, document_id, prepare_records
from vecembed.types import Embeddings

__all__ = [
    "CHANGED",
    "HASH_COLUMN",
    "ID_COLUMN",
    "METADATA_COLUMN",
    "NEW",
    "PENDING",
    "REPEAT",
    "STATE_COLUMN",
    "TEXT_COLUMN",
    "TO_EMBED",
    "TRUNCATED_COLUMN",
    "UNCHANGED",
    "classify",
    "prepare_rows",
    "record_columns",
    "table_records",
]


#: Columns of a prepared (validated, looked-up, embedded) dataset, as :func:`ingest_dataset` passes it on.
ID_COLUMN = "id"
TEXT_COLUMN = "text"
METADATA_COLUMN = "vecembed_metadata"  # the validated metadata as canonical JSON text
HASH_COLUMN = "vecembed_hash"
STATE_COLUMN = "vecembed_state"
#: Texts of the actor's batch truncated to the model's max_tokens, on the batch's first row (the column sums up)
TRUNCATED_COLUMN = "vecembed_truncated"

#: What a prepared row is: not yet looked up / new / stored with other content / stored unchanged / a repeat.
PENDING, NEW, CHANGED, UNCHANGED, REPEAT = 0, 1, 2, 3, 4
#: The states whose rows are embedded (and written).
TO_EMBED = (PENDING, NEW, CHANGED)


def _describe(row: Mapping[str, Any], id_column: str, text_column: str) -> str:
    doc_id = row.get(id_column)
    if doc_id is not None:
        return f"document id={doc_id!r}"
    text = row.get(text_column)
    if isinstance(text, str):
        return f"document {text[:60] + ('…' if len(text) > 60 else '')!r} (no id)"
    return f"a document without an id (text {text!r})"


def prepare_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    id_column: str = "id",
    text_column: str = "text",
    metadata_columns: Sequence[str] | None = None,
    nested: bool = True,
) -> tuple[list[Record], list[int]]:
    """Validate one batch of rows into records (:func:`vecembed.ingest.prepare_records`), with each row's state.

    A row is a document: its ``id_column`` (missing or None: derived from the text), ``text_column``, and
    metadata — the ``metadata_columns`` (None values dropped) or, when that is None, a ``metadata`` column
    holding a dict. States are :data:`PENDING` (to look up) or :data:`REPEAT` (the same id and content as an
    earlier row of the batch). A bad row raises :class:`~vecembed.errors.InvalidInputError` naming it by
    its id (or its text when it has none).
    """
    records: list[Record] = []
    states: list[int] = []
    seen: dict[str, tuple[int, str]] = {}
    first: dict[str, Record] = {}
    for index, row in enumerate(rows):
        if metadata_columns is None:
            metadata = row.get("metadata")
        else:
            metadata = {column: row.get(column) for column in metadata_columns}
        doc = {"id": row.get(id_column), "text": row.get(text_column), "metadata": metadata}
        try:
            prepared, repeats = prepare_records([doc], start=index, nested=nested, seen=seen)
        except InvalidInputError as exc:

            def name(match: re.Match[str]) -> str:
                return _describe(rows[int(match.group(1))], id_column, text_column)

            raise InvalidInputError(re.sub(r"documents\[(\d+)\]", name, str(exc))) from None
        if repeats:
            records.append(first[_doc_id(doc)])
            states.append(REPEAT)
        else:
            records.append(prepared[0])
            first[prepared[0].id] = prepared[0]
            states.append(PENDING)
    return records, states


def _doc_id(doc: Mapping[str, Any]) -> str:
    """The id of a validated document: its own, normalised, or the one its text derives."""
    return document_id(doc["id"], doc["text"], "id")


def classify(records: Sequence[Record], states: Sequence[int], stored: Mapping[str, str]) -> list[int]:
    """Resolve :data:`PENDING` states against ``stored`` (``{id: content_hash}``): NEW, CHANGED or UNCHANGED."""
    out = list(states)
    for i, (record, state) in enumerate(zip(records, states, strict=True)):
        if state == PENDING:
            known = stored.get(record.id)
            out[i] = NEW if known is None else UNCHANGED if known == record.content_hash else CHANGED
    return out


def record_columns(records: Sequence[Record], states: Sequence[int], vectors: Embeddings,
                   output_column: str = "embedding") -> dict[str, np.ndarray]:
    """Prepared records as the columns :class:`VecembedDatasink` reads back without validating again."""
    def strings(values: Iterable[str]) -> np.ndarray:
        return np.array(list(values), dtype=object)

    return {
        ID_COLUMN: strings(r.id for r in records),
        TEXT_COLUMN: strings(r.text for r in records),
        METADATA_COLUMN: strings(json.dumps(dict(r.metadata), sort_keys=True, ensure_ascii=False) for r in records),
        HASH_COLUMN: strings(r.content_hash for r in records),
        STATE_COLUMN: np.asarray(states, dtype=np.int8),
        output_column: vectors,
    }


def table_records(
    table: Any,  # a pyarrow.Table
    *,
    embedding_column: str = "embedding",
    id_column: str = "id",
    text_column: str = "text",
    metadata_columns: Sequence[str] | None = None,
    nested: bool = True,
) -> tuple[list[Record], list[int], Embeddings]:
    """A block's records, states and vectors: read back when prepared by :func:`ingest_dataset`, else validated."""
    if embedding_column not in table.column_names:
        raise InvalidInputError(
            f"the dataset has no column {embedding_column!r} (columns: {', '.join(table.column_names)}); "
            "embed it first with embed_dataset(), or use ingest_dataset()"
        )
    raw: Any = BlockAccessor.for_block(table).to_numpy(embedding_column)
    if raw.dtype == object:  # a list column (vectors computed elsewhere) rather than Ray's tensor column
        raw = np.stack([np.asarray(v, dtype=np.float32) for v in raw]) if len(raw) else np.zeros((0, 0))
    vectors = np.ascontiguousarray(raw, dtype=np.float32)
    if STATE_COLUMN in table.column_names:
        ids, texts, metas, hashes = (table.column(c).to_pylist()
                                     for c in (ID_COLUMN, TEXT_COLUMN, METADATA_COLUMN, HASH_COLUMN))
        records = [Record(id=i, text=t, metadata=json.loads(m), content_hash=h)
                   for i, t, m, h in zip(ids, texts, metas, hashes, strict=True)]
        return records, [int(s) for s in table.column(STATE_COLUMN).to_pylist()], vectors
    rows = table.drop_columns([embedding_column]).to_pylist()
    records, states = prepare_rows(rows, id_column=id_column, text_column=text_column,
                                   metadata_columns=metadata_columns, nested=nested)
    return records, states, vectors
