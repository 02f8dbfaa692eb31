"""Locating a GGUF file: a ``.gguf`` path, a folder or Hugging Face repository holding one, or a transformer converted.

What ``load_provider("gguf", model=..., filename=..., quantize=...)`` loads, found without llama.cpp: a
file is checked for the ``GGUF`` magic, a folder or hub repository gives the one file ``filename=`` names
(or its only one), and a transformer (a folder, an installed model package, a hub id) is converted once
to GGUF by :func:`vecembed.providers.gguf_convert.ensure_gguf` and cached. Hub lookups go through
:mod:`vecembed.resolve` (:func:`~vecembed.resolve.find_hub_file`, :func:`~vecembed.resolve.resolve_model`).

It lives beside :mod:`vecembed.resolve` rather than in it because it converts: it imports
:mod:`vecembed.providers.gguf_convert`, which itself imports :mod:`vecembed.resolve`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecembed.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from vecembed.model_config import load_model_config
from vecembed.providers.gguf_convert import ensure_gguf
from vecembed.resolve import find_hub_file, is_model_dir, resolve_model

__all__ = ["locate_gguf"]

_GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class _Located:
    """A GGUF file found, what users call it, where it came from, and how to find it again."""

    path: Path
    name: str  # what users know the model by
    source: str  # "file", "converted", "hf-cache", "download"
    #: the load_provider("gguf", ...) options that find this file again (in another process, on another machine)
    options: dict[str, Any]


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def _pick(files: list[Path], filename: str | None, where: str) -> Path:
    if filename is not None:
        chosen = [f for f in files if f.name == filename or str(f).endswith("/" + filename)]
        if not chosen:
            raise ModelNotFoundError(where, [f"{where}: no file {filename!r} (GGUF files there: "
                                            f"{', '.join(sorted(f.name for f in files)) or 'none'})"])
        return chosen[0]
    if len(files) > 1:
        raise InvalidInputError(f"{where} holds {len(files)} GGUF files ({', '.join(sorted(f.name for f in files))}); "
                                "pass filename= to choose one")
    return files[0]


def locate_gguf(
    model: str | os.PathLike[str] | None, *, filename: str | None, quantize: str | None,
    allow_download: bool | None,
) -> _Located:
    """The GGUF file ``model`` names: a file, a folder or hub repository holding one, or a transformer converted."""
    if model is not None:
        path = Path(os.fspath(model)).expanduser()
        if path.is_file():
            if not _is_gguf(path):
                raise ModelLoadError(f"{path}: not a GGUF file (it does not start with 'GGUF')", path=str(path))
            if quantize is not None:
                raise InvalidInputError(f"quantize={quantize!r} converts a transformer; {path.name} is a GGUF file "
                                        "already (its type is what it is)")
            return _Located(path.resolve(), path.name, "file", {"model": str(path.resolve())})
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.gguf") if p.is_file())
            # a folder of GGUF files gives one; a transformer's folder is converted when quantize= asks for it
            if files and (quantize is None or not is_model_dir(path)):
                if quantize is not None:
                    raise InvalidInputError(f"quantize={quantize!r} converts a transformer; {path} holds GGUF files "
                                            "and no transformer")
                chosen = _pick(files, filename, str(path))
                return _Located(chosen.resolve(), f"{path.name}/{chosen.name}", "file",
                                {"model": str(chosen.resolve())})
            if filename is not None:
                raise ModelNotFoundError(str(path), [f"{path}: no GGUF file {filename!r} (none there)"])
        elif filename is not None:
            text = os.fspath(model)
            found = find_hub_file(text, filename, allow_download=allow_download)
            return _Located(found.path, f"{text}/{filename}", found.source, {"model": text, "filename": filename})
    if filename is not None:
        raise InvalidInputError("filename= picks a GGUF file in a folder or hub repository; give model= too")
    resolved = resolve_model(model, allow_download=allow_download)
    gguf_files = sorted(resolved.path.glob("*.gguf"))
    if gguf_files and quantize is None:
        chosen = _pick(gguf_files, None, str(resolved.path))
        return _Located(chosen.resolve(), f"{resolved.name}/{chosen.name}", resolved.source,
                        {"model": str(chosen.resolve())})
    config = load_model_config(resolved.path)
    # a model found on disk by path is referred to by that path; one found by id by its id
    ref = str(resolved.path) if resolved.source == "local" else resolved.name
    return _Located(ensure_gguf(config, quantize or "f16", name=resolved.name), resolved.name, "converted",
                    {"model": ref, "quantize": quantize or "f16"})
