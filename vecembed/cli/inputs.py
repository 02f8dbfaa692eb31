"""Reading what the CLI embeds or ingests: a .txt (one text a line), a .jsonl, a folder of files, or stdin.

Every document gets a deterministic id (from the file, the line or the relative
path), so that ingesting the same input twice updates instead of duplicating.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from vecembed.errors import InvalidInputError
from vecembed.store import Document

__all__ = ["FOLDER_SUFFIXES", "Document", "read_documents", "read_texts"]

#: File types taken from a folder (one document per file).
FOLDER_SUFFIXES = (".txt", ".md")

#: Metadata values the databases store as is; anything else is written as JSON text.
_SCALARS = (str, int, float, bool)


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


def _lines(stream: Iterable[str]) -> Iterable[tuple[int, str]]:
    for number, line in enumerate(stream, 1):
        yield number, line.rstrip("\r\n")


def _read_jsonl(lines: Iterable[tuple[int, str]], name: str) -> list[Document]:
    docs: list[Document] = []
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
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: \"text\" must be a string, got {type(text).__name__}",
                                    index=number - 1)
        doc_id = record.get("id")
        doc_id = f"{name}:{number}" if doc_id is None else str(doc_id)
        docs.append(Document(doc_id, text, _flat_metadata(record.get("metadata"), where)))
    return docs


def _read_txt(lines: Iterable[tuple[int, str]], name: str) -> list[Document]:
    # Blank lines are separators, not documents; the id keeps the line number so it stays stable.
    return [Document(f"{name}:{number}", line, {"source": name, "line": number})
            for number, line in lines if line.strip()]


def _read_folder(folder: Path) -> list[Document]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    docs: list[Document] = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            docs.append(Document(rel, text, {"source": rel}))
    return docs


def _check_unique(docs: list[Document], name: str) -> list[Document]:
    seen: dict[str | int | None, int] = {}
    for index, doc in enumerate(docs):
        if doc.id in seen:
            raise InvalidInputError(
                f"{name}: id {doc.id!r} appears twice (documents {seen[doc.id]} and {index}); ids must be unique",
                index=index,
            )
        seen[doc.id] = index
    return docs


def read_documents(source: str | Path, *, stdin: TextIO | None = None) -> list[Document]:
    """Documents from ``source``: ``-`` (stdin, text lines or JSONL), a .jsonl, a text file or a folder."""
    if str(source) == "-":
        stream = stdin or sys.stdin
        lines = list(_lines(stream))
        first = next((line for _, line in lines if line.strip()), "")
        if first.lstrip().startswith("{"):
            return _check_unique(_read_jsonl(lines, "stdin"), "stdin")
        return _read_txt(lines, "stdin")
    path = Path(source)
    if path.is_dir():
        docs = _read_folder(path)
        if not docs:
            raise InvalidInputError(f"{path}: no non-empty {'/'.join(FOLDER_SUFFIXES)} files in this folder")
        return docs
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    with open(path, encoding="utf-8", errors="replace") as fh:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            return _check_unique(_read_jsonl(_lines(fh), path.name), path.name)
        return _read_txt(_lines(fh), path.name)


def read_texts(source: str | Path, *, stdin: TextIO | None = None) -> list[str]:
    """Just the texts of :func:`read_documents`, in order."""
    return [doc.text for doc in read_documents(source, stdin=stdin)]
