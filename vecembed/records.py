"""Documents -> records: the one id rule, the text and metadata rules, and the content hash.

Every way into a collection — :meth:`vecembed.Store.ingest`, ``vecembed ingest`` (local
engine and ``--engine ray``) and :mod:`vecembed.distributed` — turns what the caller gave
into :class:`Record` values here, so the same input gives the same ids, texts, metadata
and hashes whichever path it takes.

The id rule (:func:`document_id`): an explicit id wins (``1``, ``np.int64(1)`` and ``"1"``
are one id); a document without one is addressed by its text (:func:`text_id`, a
``uuid5`` in :data:`ID_NAMESPACE`). A text is the only thing every engine sees the same
way: a file's path depends on the working directory and a line's number on the lines
above it, while the API gets no path at all. So re-ingesting a file from another folder,
with lines added or reordered, or through Ray, finds the documents already stored.

Text input (a ``.txt`` file, stdin) is read the same way by the CLI's local engine and by
its Ray engine: :func:`decode_text`, :func:`text_lines`, :func:`line_document`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vecembed.errors import InvalidInputError
from vecembed.identity import RESERVED_PREFIX
from vecembed.pipeline.validate import lone_surrogate

__all__ = [
    "ID_NAMESPACE",
    "Document",
    "Record",
    "check_text",
    "content_hash",
    "decode_text",
    "document_id",
    "documents_iterable",
    "line_document",
    "normalize_id",
    "prepare_records",
    "source_name",
    "text_id",
    "text_lines",
    "validate_metadata",
]

#: The namespace of every id vecembed derives from a text. Fixed forever: changing it would orphan stored data.
ID_NAMESPACE = uuid.UUID("8d4f6e2a-31c5-5b0e-9a57-6c1e0b7d2f94")

_DOC_KEYS = frozenset({"id", "text", "metadata"})


@dataclass(frozen=True)
class Document:
    """One document to ingest: the caller's id (None: derived from the text), the text, flat metadata."""

    id: str | int | None
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Record:
    """A validated document as a store writes it: normalised id, text, metadata and content hash."""

    id: str
    text: str
    metadata: Mapping[str, Any]
    content_hash: str


def text_id(text: str) -> str:
    """The id of a document given without one: ``uuid5`` of its text (the same text, the same id)."""
    return str(uuid.uuid5(ID_NAMESPACE, "text:" + text))


def document_id(doc_id: Any, text: str, where: str) -> str:
    """The one id rule: the caller's id (normalised by :func:`normalize_id`) when given, else :func:`text_id`."""
    return text_id(text) if doc_id is None else normalize_id(doc_id, where)


def normalize_id(value: Any, where: str) -> str:
    """A caller's id as the one string every store keeps: ``str`` as is, an integer as its decimal digits.

    ``1``, ``np.int64(1)`` and ``"1"`` are the same document. Anything else (``None``, a float, a bool,
    an empty string) raises :class:`~vecembed.errors.InvalidInputError` naming ``where``.
    """
    if isinstance(value, str):
        if not value:
            raise InvalidInputError(f"{where}: the id is an empty string; nothing was written")
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    kind = "None" if value is None else type(value).__name__
    raise InvalidInputError(f"{where}: an id must be a str or an int, got {kind} ({value!r}); nothing was written")


def check_text(text: Any, where: str) -> bytes:
    """``text`` as UTF-8; :class:`~vecembed.errors.InvalidInputError` naming ``where`` if not a str or not Unicode."""
    if not isinstance(text, str):
        kind = "None" if text is None else type(text).__name__
        hint = " (decode bytes first)" if isinstance(text, bytes | bytearray) else ""
        raise InvalidInputError(f"{where}: the text must be a str, got {kind}{hint}; nothing was written")
    nul = text.find("\x00")
    if nul >= 0:
        # One rule for every store: PostgreSQL refuses NUL in text, and in Chroma or Qdrant it is binary junk.
        raise InvalidInputError(f"{where}: the text has a NUL character at {nul}; nothing was written")
    try:
        return text.encode("utf-8")  # the bytes are hashed next: encode once, and let a failure say where
    except UnicodeEncodeError:
        bad = lone_surrogate(text)
        raise InvalidInputError(
            f"{where}: the text is not valid Unicode at character {bad} ({text[bad or 0]!r} is a lone surrogate); "
            "fix the text or decode its source with errors='replace'; nothing was written"
        ) from None


def _json_value(value: Any, path: str, nested: bool) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInputError(f"{path} has a NUL character (no store keeps it as text)")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise InvalidInputError(f"{path} is {value!r}: metadata numbers must be finite")
        return float(value)
    if nested and isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{path}.{k}", nested) for k, v in value.items() if isinstance(k, str)}
    if nested and isinstance(value, list | tuple):
        return [_json_value(v, f"{path}[{i}]", nested) for i, v in enumerate(value)]
    allowed = "str, int, float, bool, and lists and dicts of those" if nested else "str, int, float or bool"
    raise InvalidInputError(
        f"{path} is a {type(value).__name__}; this database stores {allowed} metadata values"
        + ("" if nested else " (encode other values as JSON text)")
    )


def validate_metadata(raw: Any, where: str, *, nested: bool) -> dict[str, Any]:
    """One rule for metadata, before anything is written.

    A dict (or None) with non-empty ``str`` keys that do not start with ``vecembed:``
    (vecembed's own); values ``str``/``int``/``float`` (finite)/``bool`` — and, where the
    store keeps them (``nested``), lists and dicts of those. ``None`` values mean "no
    value" and are dropped. Anything else raises :class:`~vecembed.errors.InvalidInputError`.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: metadata must be a dict (or None), got {type(raw).__name__}; "
                                "nothing was written")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{where}: metadata key {key!r} must be a non-empty str; nothing was written")
        if key.startswith(RESERVED_PREFIX):
            raise InvalidInputError(f"{where}: metadata key {key!r} is reserved (keys starting with "
                                    f"{RESERVED_PREFIX!r} are vecembed's own); rename it; nothing was written")
        if value is None:
            continue
        try:
            out[key] = _json_value(value, f"metadata[{key!r}]", nested)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: {exc}; nothing was written") from None
    return out


def content_hash(text_bytes: bytes, metadata: Mapping[str, Any]) -> str:
    """What says "already stored, unchanged": a hash of the text and the metadata (canonical JSON)."""
    digest = hashlib.sha256(text_bytes)
    digest.update(b"\x00")
    digest.update(json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    return digest.hexdigest()[:32]


def _record(doc: Any, index: int, *, nested: bool) -> Record:
    where = f"documents[{index}]"
    metadata: Any = None
    doc_id: Any = None
    if isinstance(doc, str):
        text: Any = doc
    elif isinstance(doc, Document):
        doc_id, text, metadata = doc.id, doc.text, doc.metadata
    elif isinstance(doc, Mapping):
        unknown = set(doc) - _DOC_KEYS
        if "text" not in doc or unknown:
            found = ", ".join(repr(k) for k in doc) or "none"
            raise InvalidInputError(
                f'{where}: a document dict has the keys "text" (required), "id" and "metadata"; '
                f"found {found}; nothing was written",
                index=index,
            )
        doc_id, text, metadata = doc.get("id"), doc["text"], doc.get("metadata")
    elif isinstance(doc, tuple) and len(doc) == 2:
        doc_id, text = doc
    else:
        raise InvalidInputError(
            f"{where}: a document is a str, an (id, text) pair, a dict with \"text\" (and \"id\", \"metadata\") or "
            f"a vecembed.Document; got {type(doc).__name__}"
            + (" (decode bytes first)" if isinstance(doc, bytes | bytearray) else "")
            + "; nothing was written",
            index=index,
        )
    try:
        text_bytes = check_text(text, where)
        meta = validate_metadata(metadata, where, nested=nested)
        rid = document_id(doc_id, text, where)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc), index=index) from None
    return Record(id=rid, text=text, metadata=meta, content_hash=content_hash(text_bytes, meta))


def prepare_records(
    docs: Sequence[Any], *, start: int = 0, nested: bool = True, seen: dict[str, tuple[int, str]] | None = None
) -> tuple[list[Record], int]:
    """Validate ``docs`` (numbered from ``start``) into records; return them and how many repeats were collapsed.

    The same id twice with the same content is one record (a repeated text without ids);
    the same id with other content is refused, naming both positions. ``seen`` carries the
    ids (and hashes) across calls when the caller wants one check over several chunks.
    """
    seen = {} if seen is None else seen
    out: list[Record] = []
    duplicates = 0
    for offset, doc in enumerate(docs):
        index = start + offset
        record = _record(doc, index, nested=nested)
        first = seen.get(record.id)
        if first is not None:
            if first[1] != record.content_hash:
                raise InvalidInputError(
                    f"documents[{index}] has the id {record.id!r} of documents[{first[0]}] but other text or "
                    "metadata; ids must be unique (without ids, a document is addressed by its text); "
                    "nothing was written",
                    index=index,
                )
            duplicates += 1
            continue
        seen[record.id] = (index, record.content_hash)
        out.append(record)
    return out, duplicates


def documents_iterable(documents: Any) -> Iterable[Any]:
    """``documents`` if it is an ordered iterable of documents; a str, dict or set is refused."""
    if isinstance(documents, str | bytes | Mapping | Set) or not isinstance(documents, Iterable):
        raise InvalidInputError(
            f"documents must be a list or an iterable of documents, got {type(documents).__name__} (a set or dict "
            "has no order, a str is one document: wrap it in a list); nothing was written"
        )
    return documents


# -- text input: one document a line, read alike by the CLI's local engine and its Ray engine --------


def source_name(path: str | os.PathLike[str]) -> str:
    """How metadata names a file: its path from the working directory (absolute when outside it)."""
    full = Path(path).resolve()
    try:
        return full.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return full.as_posix()


def decode_text(data: bytes, name: str) -> str:
    """The bytes of file ``name`` as UTF-8 text; a NUL byte or invalid UTF-8 is refused naming the byte offset."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InvalidInputError(f"{name}: not a text file (a NUL byte at byte offset {nul}); nothing was read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{name}: not UTF-8 text (invalid byte {data[exc.start:exc.start + 1]!r} at byte offset {exc.start}); "
            "convert it to UTF-8 first; nothing was read"
        ) from None


def text_lines(text: str | Iterable[str]) -> Iterator[tuple[int, str]]:
    """The lines of ``text`` (a str or a stream of lines), numbered from 1, without their ends (``\\n``, ``\\r``)."""
    stream = io.StringIO(text, newline="") if isinstance(text, str) else text
    for number, line in enumerate(stream, 1):
        yield number, line.rstrip("\r\n")


def line_document(line: str, source: str) -> Document | None:
    """One line of text input as a document; None for a blank line (a separator, not a document).

    No id: the line is addressed by its text (:func:`document_id`), whichever engine reads it and
    wherever the file lies. The metadata names the ``source`` (:func:`source_name`, or ``"stdin"``).
    A line number is not recorded: the same line twice is one document, not two that disagree.
    """
    if not line.strip():
        return None
    return Document(None, line, {"source": source})
