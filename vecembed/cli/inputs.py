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
and byte offset, before anything is read further. Files and stdin are read a
block at a time (:data:`BLOCK_SIZE`), checked and decoded as they stream, so a
binary file is refused from its first block whatever its size (a 2 GB file of
zeros costs one block of memory, not the file) and a text file is never held
as bytes, text and lines at once.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from vecembed.errors import InvalidInputError
from vecembed.records import Document, line_document, source_name

__all__ = ["BLOCK_SIZE", "FOLDER_SUFFIXES", "Document", "Documents", "read_documents", "read_text_file", "read_texts"]

#: File types taken from a folder (one document per file).
FOLDER_SUFFIXES = (".txt", ".md")

#: Bytes (files) or characters (stdin) read at a time: a binary input is refused after its first block.
BLOCK_SIZE = 1 << 20

#: Where a line ends: as Python's own ``newline=""`` reading (``\n``, ``\r\n`` or a lone ``\r``).
_NEWLINE = re.compile(r"\r\n|\r|\n")

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


def _lines(chunks: Iterable[str], nul_error: Callable[[int], InvalidInputError] | None = None
           ) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) from text arriving in chunks that may split a line anywhere.

    Lines end as in Python's ``newline=""`` reading (``\\n``, ``\\r\\n``, a lone ``\\r``); a last line without
    an end counts when it is not empty. ``nul_error``: called with the line number of the first NUL character
    (for stdin, whose bytes are not ours to check), raised before that chunk is split.
    """
    number = 0
    parts: list[str] = []  # the current line so far: a long line across chunks is joined once, not per chunk
    held_cr = False  # the last chunk ended with "\r": the next one may start with its "\n"
    for chunk in chunks:
        if not chunk:
            continue
        if nul_error is not None and (nul := chunk.find("\x00")) >= 0:
            before = ("\r" if held_cr else "") + chunk[:nul]
            raise nul_error(number + 1 + len(_NEWLINE.findall(before)))
        if held_cr:
            held_cr = False
            number += 1
            yield number, "".join(parts)
            parts = []
            if chunk.startswith("\n"):
                chunk = chunk[1:]
        pos = 0
        for match in _NEWLINE.finditer(chunk):
            parts.append(chunk[pos : match.start()])
            pos = match.end()
            if pos == len(chunk) and match.group() == "\r":
                held_cr = True
                break
            number += 1
            yield number, "".join(parts)
            parts = []
        if pos < len(chunk):
            parts.append(chunk[pos:])
    last = "".join(parts)
    if held_cr or last:
        yield number + 1, last


def _file_chunks(path: Path) -> Iterator[str]:
    """``path`` as UTF-8 text, a block at a time; a NUL byte or invalid UTF-8 is refused naming its byte offset.

    A block is checked before it is decoded or kept, so a binary file (a NUL in its first block: any
    executable, image or sparse file) is refused after reading one block, whatever its size.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # of the block in the file
    with path.open("rb") as fh:
        while True:
            block = fh.read(BLOCK_SIZE)
            nul = block.find(b"\x00")
            if nul >= 0:
                raise InvalidInputError(
                    f"{path}: not a text file (a NUL byte at byte offset {offset + nul}); nothing was read"
                )
            pending = len(decoder.getstate()[0])  # bytes of a character split by the last block
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                # exc.start counts from the split character's first byte, carried over from the last block
                at = offset - pending + exc.start
                bad = (exc.object[exc.start : exc.start + 1] if isinstance(exc.object, bytes) else b"")
                raise InvalidInputError(
                    f"{path}: not UTF-8 text (invalid byte {bad!r} at byte offset {at}); "
                    "convert it to UTF-8 first; nothing was read"
                ) from None
            if text:
                yield text
            if not block:
                return
            offset += len(block)


def _stdin_chunks(stream: TextIO) -> Iterator[str]:
    """``stream`` (text) a block at a time; a stream that is not UTF-8 is refused."""
    while True:
        try:
            chunk = stream.read(BLOCK_SIZE)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"stdin: not UTF-8 text (byte offset {exc.start}); nothing was read") from None
        if not chunk:
            return
        yield chunk


def _stdin_nul(line: int) -> InvalidInputError:
    return InvalidInputError(f"stdin: not text (a NUL byte on line {line}); nothing was read")


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
    """``path`` as UTF-8 text; a binary file (a NUL byte, invalid UTF-8) is refused naming the byte offset.

    Read a block at a time: a binary file is refused after its first block, not after reading all of it.
    """
    return "".join(_file_chunks(path))


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
        lines = _lines(_stdin_chunks(stdin or sys.stdin), _stdin_nul)
        # JSONL or text, decided by the first non-blank line; the lines before it are blank either way.
        head: list[tuple[int, str]] = []
        for item in lines:
            head.append(item)
            if item[1].strip():
                break
        rest = itertools.chain(head, lines)
        if head and head[-1][1].lstrip().startswith("{"):
            return _check_unique(_read_jsonl(rest, "stdin"))
        return _read_txt(rest, "stdin")
    path = Path(source)
    if path.is_dir():
        docs = _read_folder(path)
        if not docs:
            raise InvalidInputError(f"{path}: no non-empty {'/'.join(FOLDER_SUFFIXES)} files in this folder")
        return docs
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder")
    name = source_name(path)
    file_lines = _lines(_file_chunks(path))
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        return _check_unique(_read_jsonl(file_lines, name))
    return _read_txt(file_lines, name)


def read_texts(source: str | Path, *, stdin: TextIO | None = None) -> list[str]:
    """Just the texts of :func:`read_documents`, in order."""
    return [doc.text for doc in read_documents(source, stdin=stdin)]
