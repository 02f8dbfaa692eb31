"""Reading what the CLI embeds or ingests: a .txt (one text a line), a .jsonl, a folder of files, or stdin.

Every document gets a deterministic id, so that ingesting the same input twice
updates instead of duplicating — the one id rule of :func:`vecembed.records.document_id`,
the same as the API's and the Ray engine's:

- a ``.jsonl`` line with an ``id``: that id;
- a ``.txt`` / ``.jsonl`` / stdin line without one: addressed by its text (the same
  line is the same document in every run, from any folder, through either engine),
  with the metadata ``{"source": PATH}``, PATH as seen from the working directory;
- a folder: each file's path inside the folder (``cooking/pasta.md``).

Files must be UTF-8 text: a NUL byte or invalid UTF-8 is refused with the file
and byte offset, before anything is read further.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from vecembed.errors import InvalidInputError
from vecembed.records import Document, decode_text, line_document, source_name, text_lines

__all__ = ["FOLDER_SUFFIXES", "Document", "Documents", "read_documents", "read_texts"]

#: File types taken from a folder (one document per file).
FOLDER_SUFFIXES = (".txt", ".md")

#: Metadata values the databases store as is; anything else is written as JSON text.
_SCALARS = (str, int, float, bool)


class Documents(list[Document]):
    """The documents read from an input, with where each came from (``origins[i]``: "docs.jsonl line 701")."""

    def __init__(self, pairs: Iterable[tuple[str, Document]] = ()) -> None:
        pairs = list(pairs)
        super().__init__(doc for _, doc in pairs)
        self.origins = [origin for origin, _ in pairs]

    def located(self, exc: InvalidInputError) -> InvalidInputError:
        """``exc`` with each ``documents[N]`` it names replaced by that document's origin in the input.

        The ingest engine numbers documents as they reach it; a person fixes a file by its line.
        """
        def origin(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return self.origins[index] if 0 <= index < len(self.origins) else match.group(0)

        return InvalidInputError(re.sub(r"documents\[(\d+)\]", origin, str(exc)), index=exc.index)


def _flat_metadata(raw: Any, where: str) -> dict[str, Any]:
    # Chroma accepts only str/int/float/bool values; nested values become JSON text so both databases agree.
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: 'metadata' must be an object, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        out[str(key)] = value if isinstance(value, _SCALARS) else json.dumps(value, ensure_ascii=False)
    return out


def _read_jsonl(lines: Iterable[tuple[int, str]], name: str) -> Documents:
    docs: list[tuple[str, Document]] = []
    for number, line in lines:
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})", index=number - 1) from None
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict):
            raise InvalidInputError(f"{where}: expected an object with \"text\", got {type(record).__name__}")
        text = record.get("text")
        if "text" not in record:
            found = ", ".join(repr(k) for k in record) or "none"
            raise InvalidInputError(f'{where}: no "text" field (fields found: {found})', index=number - 1)
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: \"text\" must be a string, got {type(text).__name__}",
                                    index=number - 1)
        doc_id = record.get("id")
        if doc_id is not None:  # without one, the engine addresses the document by its text
            doc_id = str(doc_id)
        docs.append((where, Document(doc_id, text, _flat_metadata(record.get("metadata"), where))))
    return Documents(docs)


def _read_txt(lines: Iterable[tuple[int, str]], name: str) -> Documents:
    # One rule with the Ray engine's reader (vecembed.records.line_document): blank lines are separators.
    docs = ((f"{name} line {number}", line_document(line, name)) for number, line in lines)
    return Documents((where, doc) for where, doc in docs if doc is not None)


def read_text_file(path: Path) -> str:
    """``path`` as UTF-8 text; a binary file (a NUL byte, invalid UTF-8) is refused naming the byte offset."""
    return decode_text(path.read_bytes(), str(path))


def _read_folder(folder: Path) -> Documents:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    docs: list[tuple[str, Document]] = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        text = read_text_file(path).strip()
        if text:
            docs.append((str(path), Document(rel, text, {"source": rel})))
    return Documents(docs)


def _check_unique(docs: Documents) -> Documents:
    seen: dict[str | int, int] = {}
    for index, doc in enumerate(docs):
        if doc.id is None:  # addressed by its text: a repeat is the same document, collapsed by the engine
            continue
        if doc.id in seen:
            raise InvalidInputError(
                f"id {doc.id!r} appears twice: {docs.origins[seen[doc.id]]} and {docs.origins[index]}; "
                "ids must be unique",
                index=index,
            )
        seen[doc.id] = index
    return docs


def read_documents(source: str | Path, *, stdin: TextIO | None = None) -> Documents:
    """Documents from ``source``: ``-`` (stdin, text lines or JSONL), a .jsonl, a text file or a folder.

    The list also says where each document came from (:class:`Documents`), for errors a person can act on.
    """
    if str(source) == "-":
        stream = stdin or sys.stdin
        try:
            lines = list(text_lines(stream))
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"stdin: not UTF-8 text (byte offset {exc.start}); nothing was read") from None
        nul = next((number for number, line in lines if "\x00" in line), None)
        if nul is not None:
            raise InvalidInputError(f"stdin: not text (a NUL byte on line {nul}); nothing was read")
        first = next((line for _, line in lines if line.strip()), "")
        if first.lstrip().startswith("{"):
            return _check_unique(_read_jsonl(lines, "stdin"))
        return _read_txt(lines, "stdin")
    path = Path(source)
    if path.is_dir():
        docs = _read_folder(path)
        if not docs:
            raise InvalidInputError(f"{path}: no non-empty {'/'.join(FOLDER_SUFFIXES)} files in this folder")
        return docs
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    name = source_name(path)
    file_lines = text_lines(read_text_file(path))
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        return _check_unique(_read_jsonl(file_lines, name))
    return _read_txt(file_lines, name)


def read_texts(source: str | Path, *, stdin: TextIO | None = None) -> list[str]:
    """Just the texts of :func:`read_documents`, in order."""
    return [doc.text for doc in read_documents(source, stdin=stdin)]
