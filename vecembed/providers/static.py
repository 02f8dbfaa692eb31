"""StaticProvider: model2vec-style static embeddings — token-vector lookup, mean, L2 — and :func:`distill`.

A static model is one matrix (a vector per vocabulary token) plus a
tokenizer. Embedding a text is: tokenize without special tokens, drop unknown
tokens, average the rows of the matrix, normalise. There is no network forward,
so it runs at tokenizer speed.

Reading a model2vec directory needs only ``safetensors`` (the ``static``
extra); the ``model2vec`` package is needed only to *distil* a static model
from a transformer (:func:`distill`), which runs offline on the local model and
is cached in vecembed's cache (:mod:`vecembed.cache`).

The embedding follows ``model2vec.StaticModel.encode`` exactly: text cut to
``max_length * median token length`` characters before tokenising, tokens
truncated to ``max_length`` (config ``max_length``, default 512), unknown
tokens removed, plain mean, normalisation as the config's ``normalize`` says.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed import cache
from vecembed._deps import require
from vecembed.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from vecembed.pipeline import Batch, TextPipeline, l2_normalize, validate_texts
from vecembed.progress import third_party_quiet
from vecembed.providers.base import ProviderBase
from vecembed.resolve import resolve_model, weights_digest
from vecembed.types import Embeddings, EmbedResult, ModelInfo, make_fingerprint

__all__ = ["StaticProvider", "distill", "is_static_model_dir"]

log = logging.getLogger(__name__)

#: Bump when the distillation recipe changes: older cache entries are then rebuilt.
DISTILL_VERSION = 1
#: model2vec's default ``max_length`` when a config gives none.
DEFAULT_MAX_LENGTH = 512
_NO_LIMIT = 1_000_000  # config max_length null: model2vec does not truncate
_CHUNK = 256  # texts per gather in the mean (see StaticProvider._mean_into)

# (embeddings file, tokenizer file, config file, tensor name): model2vec's own folder layouts
_LAYOUTS = (
    ("model.safetensors", "tokenizer.json", "config.json", "embeddings"),
    ("model.safetensors", "tokenizer.json", "config_sentence_transformers.json", "embedding.weight"),
    ("0_StaticEmbedding/model.safetensors", "0_StaticEmbedding/tokenizer.json",
     "config_sentence_transformers.json", "embedding.weight"),
)


def _layout(path: Path) -> tuple[Path, Path, Path, str] | None:
    """The static-model files in ``path``, or ``None`` when it is not a static model directory."""
    for weights, tokenizer, config, tensor in _LAYOUTS:
        w, t, c = path / weights, path / tokenizer, path / config
        if w.is_file() and t.is_file() and c.is_file() and tensor in _tensor_names(w):
            return w, t, c, tensor
    return None


def _tensor_names(weights: Path) -> set[str]:
    # The safetensors header is 8 bytes of length then JSON: reading it needs no library and no tensor data,
    # so telling a static model from a transformer (whose safetensors also sits beside a tokenizer.json) is cheap.
    try:
        with open(weights, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if not 0 < size < 100_000_000:
                return set()
            header = json.loads(fh.read(size))
    except (OSError, ValueError):
        return set()
    return {k for k in header if k != "__metadata__"} if isinstance(header, dict) else set()


def is_static_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a model2vec-format static model (embedding matrix, tokenizer, config)."""
    return _layout(Path(path)) is not None


def distill(
    model: str | os.PathLike[str] | None = None,
    dim: int | None = 256,
    *,
    allow_download: bool | None = None,
    force: bool = False,
    show_progress: bool | None = False,
) -> Path:
    """Distil a static model from transformer ``model`` (offline) and return its directory.

    Runs ``model2vec.distill`` (``pip install 'vecembed[static]'``) on the local
    model files — the hub is never asked — with PCA to ``dim`` dimensions
    (``None``: keep the transformer's). The result is cached in vecembed's
    cache, keyed by the weights' digest and ``dim``; a later call returns the
    cached directory at once (``force=True`` rebuilds it). model2vec's own
    progress bars show only when ``show_progress`` asks for them (``None``: on
    a terminal), as every vecembed bar does.
    """
    if dim is not None and (not isinstance(dim, int) or dim <= 0):
        raise InvalidInputError(f"dim must be a positive int or None, got {dim!r}")
    resolved = resolve_model(model, allow_download=allow_download)
    if is_static_model_dir(resolved.path):
        raise InvalidInputError(f"{resolved.path} is already a static model; load it with load_provider('static')")
    from vecembed.model_config import load_model_config

    config = load_model_config(resolved.path)
    hidden = config.hidden_size
    if dim is not None and hidden is not None and dim > hidden:
        raise InvalidInputError(f"dim={dim} exceeds the transformer's hidden size {hidden}")
    digest = weights_digest(config.transformer_path).split(":", 1)[-1]
    entry = cache.cache_dir() / "static" / f"{digest}-d{dim or 'full'}-v{DISTILL_VERSION}"
    if not force and _verified_static_dir(entry):
        return entry
    distillation = require("model2vec.distill", "static", "distilling a static model")
    log.info("distilling a static model from %s (dim %s; once, cached at %s)", resolved.name, dim, entry)
    with cache.atomic_dir(entry) as tmp:
        # A local path makes model2vec load with from_pretrained(path) and skip its hub look-up of the model card.
        with third_party_quiet(show_progress):
            static = distillation.distill(str(config.transformer_path), pca_dims=dim, trust_remote_code=False)
        static.save_pretrained(str(tmp))
        meta = {"source_model": resolved.name, "source_weights": digest, "dim": dim, "version": DISTILL_VERSION}
        cache.atomic_write_text(tmp / "vecembed-distill.json", json.dumps(meta, indent=1))
        # the checksum is written last: a folder without it is an unfinished build
        cache.write_checksum(tmp / "model.safetensors", **meta)
    return entry


def _verified_static_dir(entry: Path) -> bool:
    if not (entry / "tokenizer.json").is_file():
        return False
    if cache.is_verified(entry / "model.safetensors") is None:
        return False
    return is_static_model_dir(entry)


class StaticProvider(ProviderBase):
    """Static embeddings from a model2vec directory (``pip install 'vecembed[static]'``).

    ``model``: a model2vec directory (or hub id / packaged id resolving to one);
    given a transformer instead, a static model is distilled from it once
    (cached; see :func:`distill`) with ``dim`` dimensions. ``max_tokens`` and
    ``normalize`` override the model's config.
    """

    backend = "static"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        dim: int | None = 256,
        max_tokens: int | None = None,
        normalize: bool | None = None,
        allow_download: bool | None = None,
    ) -> None:
        resolved = resolve_model(model, allow_download=allow_download)
        path = resolved.path
        name = resolved.name
        distilled = False
        if _layout(path) is None:
            path = distill(path, dim=dim, allow_download=allow_download)
            name = f"{resolved.name}@static-d{dim or 'full'}"
            distilled = True
        layout = _layout(path)
        if layout is None:  # pragma: no cover - distill() only returns checked folders
            raise ModelNotFoundError(str(path), [f"{path}: no static model files"])
        weights_file, tokenizer_file, config_file, tensor = layout
        safetensors_numpy = require("safetensors.numpy", "static", "reading a static model's vectors")
        try:
            tensors = safetensors_numpy.load_file(str(weights_file))
        except Exception as exc:  # safetensors' own error type for a truncated file
            raise ModelLoadError(f"{weights_file}: not readable as safetensors ({exc})",
                                 path=str(weights_file)) from exc
        self.embeddings: NDArray[np.float32] = np.ascontiguousarray(tensors[tensor], dtype=np.float32)
        weights = tensors.get("weights")
        mapping = tensors.get("mapping")
        self._weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self._mapping = None if mapping is None else np.asarray(mapping, dtype=np.int64)
        config = cache.read_json(config_file) or {}
        if tensor == "embedding.weight" and (path / "config.json").is_file():
            config = {**(cache.read_json(path / "config.json") or {}), **config}

        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
            raise ModelLoadError(f"{tokenizer_file}: not a tokenizer file ({exc})", path=str(tokenizer_file)) from exc
        vocab_size = tokenizer.get_vocab_size()
        if self._mapping is None and len(self.embeddings) != vocab_size:
            raise ModelLoadError(
                f"{weights_file}: {len(self.embeddings)} vectors for a vocabulary of {vocab_size} tokens",
                path=str(weights_file),
            )
        max_length = config.get("max_length", DEFAULT_MAX_LENGTH) if max_tokens is None else max_tokens
        self._max_length = int(max_length) if max_length else _NO_LIMIT
        self._normalize = bool(config.get("normalize", False)) if normalize is None else bool(normalize)
        # model2vec cuts each text to max_length * median token length characters before tokenising
        tokens = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
        self._char_limit = self._max_length * int(np.median([len(t) for t in tokens])) if tokens else _NO_LIMIT
        self._unk_id = _unk_token_id(tokenizer)
        self._dimension = int(self.embeddings.shape[1])
        # The shared pipeline owns tokenizer setup (no padding, truncation) and tokenisation; static models
        # add no special tokens. Its forward is never called: pooling here is a lookup, done in embed().
        self.pipeline = TextPipeline(
            tokenizer, _no_forward, dimension=self._dimension, max_tokens=self._max_length,
            add_special_tokens=False, stats=self.stats,
        )
        self.path = path
        self._info = ModelInfo(
            name=name,
            dimension=self._dimension,
            max_tokens=self._max_length,
            pooling="mean",
            normalized=self._normalize,
            backend="static",
            device="cpu",
            dtype="float32",
            fingerprint=make_fingerprint(
                weights_id=weights_digest(path),
                pooling="mean",
                normalized=self._normalize,
                dimension=self._dimension,
                extra={"static": True, "max_tokens": self._max_length},
            ),
            extra={"path": str(path), "source": resolved.source, "distilled": distilled},
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _embed(self, texts: Sequence[str], what: str) -> EmbedResult:
        self._check_open()
        items = validate_texts(texts, what=what)
        n = len(items)
        out = np.zeros((n, self._dimension), dtype=np.float32)
        if not n:
            return EmbedResult(out, tokens=0, truncated=0)
        cut = [t[: self._char_limit] for t in items]
        # the shared pipeline set the tokenizer up (no padding, truncation) and picked the fastest batch call
        encodings = self.pipeline.encode_batch(cut, add_special_tokens=False)
        ids = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        counts = lengths
        if self._unk_id is not None:
            # model2vec drops unknown tokens (word-level vocabularies map every unseen word to [UNK])
            unk = flat == self._unk_id
            if unk.any():
                counts = lengths - np.bincount(np.repeat(np.arange(n), lengths)[unk], minlength=n)
                flat = flat[~unk]
        self._mean_into(out, flat, counts)
        empty = counts == 0
        if empty.any():
            # No known token (an empty string, emoji, a zero-width space): not a zero vector, which scores 0
            # against everything and breaks "normalized", but the vocabulary's mean — the "average text".
            out[empty] = self._no_token_vector()
        limit = self._char_limit
        truncated = sum(1 for e, t in zip(encodings, items, strict=True) if e.overflowing or len(t) > limit)
        if self._normalize:
            out = l2_normalize(out)
        self.stats.add(texts=n, tokens=int(lengths.sum()), truncated=truncated, batches=1)
        return EmbedResult(np.ascontiguousarray(out), tokens=int(lengths.sum()), truncated=truncated)

    def _no_token_vector(self) -> NDArray[np.float32]:
        """The vector of a text with no known token: the mean of all token vectors (computed once)."""
        vector: NDArray[np.float32] | None = getattr(self, "_no_token", None)
        if vector is None:
            vector = np.asarray(self.embeddings.mean(axis=0), dtype=np.float32)
            self._no_token = vector
        return vector

    def _mean_into(self, out: NDArray[np.float32], flat: NDArray[np.int64], counts: NDArray[np.int64]) -> None:
        """``out[i]`` = mean of the vectors of text i's tokens (``flat`` holds every text's ids, in order).

        Texts go in chunks so the gathered ``(tokens, dim)`` block stays cache-sized: one gather of all
        tokens at once measured 2.5x slower (page faults on a fresh 40 MB array, then a cold reduceat).
        """
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for start in range(0, len(counts), _CHUNK):
            stop = min(start + _CHUNK, len(counts))
            chunk_counts = counts[start:stop]
            filled = np.flatnonzero(chunk_counts)
            if not len(filled):
                continue
            ids = flat[bounds[start] : bounds[stop]]
            vectors = np.take(self.embeddings, ids if self._mapping is None else self._mapping[ids], axis=0)
            if self._weights is not None:
                vectors = vectors * self._weights[ids][:, None]
            # rows are contiguous runs: one reduceat sums every text's vectors of the chunk at once
            starts = np.concatenate(([0], np.cumsum(chunk_counts[filled])[:-1]))
            sums = np.add.reduceat(vectors, starts, axis=0)
            out[start + filled] = sums / chunk_counts[filled, None].astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        """Mean token vectors of ``texts``, float32 ``(n, dimension)``.

        A text with no known token (``""``, ``" "``, an emoji, a zero-width space) gets the mean of all token
        vectors — the same vector for every such text, unit norm when the model normalises — never zeros.
        """
        return self._embed(texts, "documents").vectors

    def embed_documents_counted(self, texts: Sequence[str]) -> EmbedResult:
        """:meth:`embed_documents` with this call's token and truncation counts."""
        return self._embed(texts, "documents")

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        """As :meth:`embed_documents` (static models have no query prompt)."""
        return self._embed(texts, "queries").vectors


def _no_forward(batch: Batch) -> NDArray[np.float32]:  # pragma: no cover - never called
    raise RuntimeError("a static model has no forward pass")


def _unk_token_id(tokenizer: Any) -> int | None:
    """The unknown token's id, as model2vec finds it (WordPiece/BPE/WordLevel ``unk_token``, Unigram ``unk_id``)."""
    model = tokenizer.model
    if hasattr(model, "unk_token"):
        token = model.unk_token
        return None if token is None else tokenizer.token_to_id(token)
    unk = json.loads(tokenizer.to_str())["model"].get("unk_id")
    return int(unk) if unk is not None else None
