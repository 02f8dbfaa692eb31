"""vecembed's on-disk cache: where derived model files live, and how they are written and checked.

Exported ONNX graphs, their int8 versions and distilled static models are
costly to build and cheap to keep. They live under :func:`cache_dir`
(``$VECEMBED_CACHE``, else the user cache directory), one folder per entry,
keyed by a digest of what they were built from.

Every file is written atomically (a temporary file in the same folder, then
``os.replace``), so a reader sees the old file or the complete new one, never
half of one — even when two processes build the same entry at once. A
``.sha256`` sidecar, written after the file it describes, lets a later reader
tell a complete file from a truncated or damaged one and rebuild it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_dir",
    "atomic_path",
    "atomic_write_text",
    "cache_dir",
    "entry_dir",
    "file_sha256",
    "is_verified",
    "read_json",
    "write_checksum",
]

_SIDECAR = ".sha256"


def cache_dir() -> Path:
    """The root of vecembed's cache: ``$VECEMBED_CACHE``, else the platform's user cache dir + ``vecembed``."""
    env = os.environ.get("VECEMBED_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vecembed"


def entry_dir(kind: str, key: str) -> Path:
    """The folder of one cache entry, e.g. ``entry_dir("onnx", digest)``; created if absent."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    path = cache_dir() / kind / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content (read in 4 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; when the block succeeds it becomes ``dest`` atomically.

    On an exception the temporary file is removed and ``dest`` is untouched.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; when the block succeeds it replaces ``dest``.

    A folder cannot be swapped in one system call when the destination
    exists, so an old ``dest`` is first renamed aside, then removed: readers
    see the old folder or the new one, or briefly none (which they treat as
    a cache miss), never a mix.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.replace(dest, old / "entry")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(dest: Path, text: str) -> None:
    """Write ``text`` to ``dest`` atomically (UTF-8)."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_checksum(path: Path, **meta: Any) -> None:
    """Record ``path``'s size and sha256 (and any JSON-able ``meta``) in its ``.sha256`` sidecar.

    Call it after ``path`` is in place: a file without a sidecar counts as unfinished.
    """
    record = {"sha256": file_sha256(path), "size": path.stat().st_size, **meta}
    atomic_write_text(path.with_name(path.name + _SIDECAR), json.dumps(record, indent=1, sort_keys=True))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or ``None`` when it is absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_verified(path: Path) -> dict[str, Any] | None:
    """The sidecar record of ``path`` when the file is complete and unchanged, else ``None``.

    Complete means: the sidecar exists, and the file's size and sha256 match it.
    A ``None`` tells the caller to rebuild the entry.
    """
    record = read_json(path.with_name(path.name + _SIDECAR))
    if record is None:
        return None
    try:
        if path.stat().st_size != record.get("size"):
            return None
    except OSError:
        return None
    if file_sha256(path) != record.get("sha256"):
        return None
    return record
