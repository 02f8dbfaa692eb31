"""Files as one Ray dataset through Ray's own readers: JSONL/JSON, CSV, Parquet, text."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ray
import ray.data

from vecembed.distributed.rows import ID_COLUMN, TEXT_COLUMN
from vecembed.errors import InvalidInputError
from vecembed.records import decode_text, line_document, source_name, text_lines

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["read_dataset"]


_READERS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
            ".txt": "text", ".md": "text"}


def read_dataset(paths: Sequence[str | os.PathLike[str]], *, num_cpus: float = 0) -> Dataset:
    """Files as one dataset through Ray's readers: JSONL/JSON, CSV, Parquet, text (one document a line).

    JSONL/CSV/Parquet rows keep their columns (``id``, ``text``, ``metadata``...); a text file gives one row
    a non-blank line, read as the CLI's local engine reads it (:func:`vecembed.records.line_document`: no
    id, so the id derives from the text; metadata ``{"source": PATH}``, PATH as seen from here).
    Read tasks take ``num_cpus`` (default 0): reading is light next to embedding, and embedding actors that
    hold every CPU would otherwise leave the reads, and so the whole job, waiting forever.
    """
    if isinstance(paths, str | os.PathLike) or not paths:
        raise InvalidInputError("read_dataset takes a non-empty list of files")
    groups: dict[str, list[str]] = {}
    for p in paths:
        suffix = os.path.splitext(str(p))[1].lower()
        if suffix not in _READERS:
            raise InvalidInputError(f"{p}: unknown file type {suffix or '(none)'}; known: {', '.join(_READERS)}")
        if not os.path.exists(p):
            raise InvalidInputError(f"{p}: no such file")
        groups.setdefault(_READERS[suffix], []).append(os.path.abspath(p))
    parts: list[Dataset] = []
    for kind, files in groups.items():
        if kind == "json":
            parts.append(ray.data.read_json(files, lines=True, num_cpus=num_cpus))
        elif kind == "csv":
            parts.append(ray.data.read_csv(files, num_cpus=num_cpus))
        elif kind == "parquet":
            parts.append(_read_parquet(files, num_cpus))
        else:
            parts.append(_read_text_lines(files, num_cpus))
    if len(parts) == 1:
        return parts[0]
    # Files of several kinds: one block format (Ray's readers give Arrow or pandas blocks, and a batch cannot
    # mix them) and one type for ids (``7`` in JSON, ``"a7"`` in CSV: both are str ids, as the engine has it).
    first, *rest = (part.map_batches(_arrow_with_str_ids, batch_format="pyarrow", num_cpus=num_cpus)
                    for part in parts)
    return first.union(*rest)


def _read_text_lines(files: list[str], num_cpus: float) -> Dataset:
    # Ray's read_text splits lines its own way (str.splitlines also breaks at \x0b, \x1c, \u2028...) and forgets
    # the file: read the bytes and split them with the local engine's functions, so both give the same records.
    sources = {path: source_name(path) for path in files}  # named from the driver's working directory
    raw = ray.data.read_binary_files(files, include_paths=True, num_cpus=num_cpus)
    return raw.flat_map(functools.partial(_line_rows, sources), num_cpus=num_cpus)


def _line_rows(sources: dict[str, str], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The documents of one text file (a ``read_binary_files`` row) as dataset rows."""
    source = sources.get(row["path"]) or source_name(row["path"])
    docs = (line_document(line, source) for _, line in text_lines(decode_text(row["bytes"], source)))
    return [{TEXT_COLUMN: doc.text, "metadata": dict(doc.metadata)} for doc in docs if doc is not None]


def _read_parquet(files: list[str], num_cpus: float) -> Dataset:
    # Ray 2.60's datasource v2 lists Parquet files in a task of its own that takes one CPU whatever num_cpus
    # says: with actors on every CPU it never runs. The v1 reader honours num_cpus.
    context = ray.data.DataContext.get_current()
    saved = getattr(context, "use_datasource_v2", None)
    if saved is not None:
        context.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(files, num_cpus=num_cpus)
    finally:
        if saved is not None:
            context.use_datasource_v2 = saved


def _arrow_with_str_ids(table: Any) -> Any:
    import pyarrow as pa

    if ID_COLUMN in table.column_names and not pa.types.is_string(table.schema.field(ID_COLUMN).type):
        index = table.column_names.index(ID_COLUMN)
        table = table.set_column(index, ID_COLUMN, table.column(ID_COLUMN).cast(pa.string()))
    return table
