"""StaticProvider: model2vec-style static embeddings — token-vector lookup, mean, L2 — and :func:`distill`.

A static model is one matrix (a vector per vocabulary token) plus a
tokenizer. Embedding a text is: tokenize without special tokens, drop unknown
tokens, average the rows of the matrix, normalise. There is no network forward,
so it runs at tokenizer speed.

Reading a model2vec directory needs only ``safetensors`` (the ``static``
extra); the ``model2vec`` package is needed only to *distil* a static model
from a transformer (:func:`distill`), which runs offline on the local model and
is cached in vecembed's cache (:mod:`vecembed.artifact_cache`).

The embedding follows ``model2vec.StaticModel.encode`` exactly: text cut to
``max_length * median token length`` characters before tokenising, tokens
truncated to ``max_length`` (config ``max_length``, default 512), unknown
tokens removed, plain mean, normalisation as the config's ``normalize`` says.
Over-long texts are counted in ``stats.truncated`` and logged.

Speed: token ids come through a bounded word cache in front of the tokenizer
(:mod:`vecembed.providers.static_tokens`, the same ids), and the mean is one
position-by-position pass over a flat id array (:meth:`StaticProvider._mean_into`).
``benchmarks/static_speed.py`` compares it with model2vec.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed import artifact_cache as cache
from vecembed._deps import require
from vecembed.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from vecembed.pipeline import Batch, TextPipeline, validate_texts
from vecembed.progress import third_party_quiet
from vecembed.providers.base import ProviderBase
from vecembed.providers.static_tokens import DEFAULT_CACHE_ENTRIES, ChunkTokenizer
from vecembed.resolve import resolve_model, weights_digest
from vecembed.types import Embeddings, EmbedResult, ModelInfo, make_fingerprint

__all__ = ["StaticProvider", "distill", "is_static_model_dir"]

log = logging.getLogger(__name__)

#: Bump when the distillation recipe changes: older cache entries are then rebuilt.
DISTILL_VERSION = 1
#: model2vec's default ``max_length`` when a config gives none.
DEFAULT_MAX_LENGTH = 512
_NO_LIMIT = 1_000_000  # config max_length null: model2vec does not truncate
_GATHER_ROWS = 256  # texts per accumulator in the mean: 256 KB at 256 dimensions (see StaticProvider._mean_into)
#: Characters per part when a batch is split across threads: below ~2 parts' worth, one thread is faster.
_PART_CHARS = 65_536

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

    Texts longer than ``max_tokens`` (the model's ``max_length``, 512 for
    distilled models) are truncated as model2vec truncates them, counted in
    ``stats.truncated`` and logged; a static model has no position limit, so a
    larger ``max_tokens`` embeds long texts whole (then differing from
    model2vec's vectors for exactly those texts).

    ``word_cache``: how many distinct words (whitespace-separated chunks) to
    keep the token ids of (see :mod:`vecembed.providers.static_tokens`); the
    vectors are the same with any size, ``0`` switches the cache off.
    ``threads``: worker threads for big batches (``None``: one per CPU, at
    most 4). The default is 1: about half the work (splitting, dict look-ups)
    holds the GIL, and on a busy 2-core machine two threads measured slower
    than one. The vectors never depend on it.
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
        word_cache: int = DEFAULT_CACHE_ENTRIES,
        threads: int | None = 1,
    ) -> None:
        if isinstance(word_cache, bool) or not isinstance(word_cache, int) or word_cache < 0:
            raise InvalidInputError(f"word_cache must be an int >= 0 (0: no cache), got {word_cache!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidInputError(f"threads must be an int >= 1 or None (one per CPU, at most 4), got {threads!r}")
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
        self._tokens = ChunkTokenizer(tokenizer, max_entries=word_cache)
        # beyond 4 threads the GIL-held half of the work leaves extra workers idle
        self._threads = threads if threads is not None else max(1, min(os.cpu_count() or 1, 4))
        self._executor: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
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
            extra={"path": str(path), "source": resolved.source, "distilled": distilled,
                   "load_options": self._load_options(resolved, distilled, dim, max_tokens, normalize)},
        )

    @staticmethod
    def _load_options(resolved: Any, distilled: bool, dim: int | None, max_tokens: int | None,
                      normalize: bool | None) -> dict[str, Any]:
        """The ``load_provider("static", ...)`` options that give this provider back (what a collection records).

        A distilled model is named ``<id>@static-d256``, which no resolver finds: it is given back by its
        source model and ``dim``. Only options that change the vectors are kept.
        """
        options: dict[str, Any] = {"model": str(resolved.path) if resolved.source == "local" else resolved.name}
        if distilled:
            options["dim"] = dim
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if normalize is not None:
            options["normalize"] = normalize
        return options

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _embed(self, texts: Sequence[str], what: str) -> EmbedResult:
        self._check_open()
        items = validate_texts(texts, what=what)
        n = len(items)
        out = np.empty((n, self._dimension), dtype=np.float32)
        if not n:
            return EmbedResult(out, tokens=0, truncated=0)
        bounds = _parts(items, self._threads)
        if len(bounds) == 2:
            tokens, truncated = self._embed_into(items, out)
        else:
            # Tokenising holds the GIL, pooling mostly does not: on a thread pool, one part's lookups overlap
            # another's gathers. Each text's vector is computed the same way whatever part it lands in.
            pool = self._pool()
            futures = [pool.submit(self._embed_into, items[a:b], out[a:b])
                       for a, b in itertools.pairwise(bounds)]
            counted = [f.result() for f in futures]
            tokens, truncated = sum(c[0] for c in counted), sum(c[1] for c in counted)
        self.stats.add(texts=n, tokens=tokens, truncated=truncated, batches=1)
        if truncated:
            log.warning("%d of %d texts were longer than %d tokens and were truncated (pass a larger max_tokens "
                        "to embed them whole: a static model has no position limit)", truncated, n,
                        self._max_length)
        return EmbedResult(out, tokens=tokens, truncated=truncated)

    def _embed_into(self, items: list[str], out: NDArray[np.float32]) -> tuple[int, int]:
        """Write the vectors of ``items`` into ``out``; return (tokens embedded, texts truncated)."""
        n = len(items)
        limit = self._char_limit
        cut = max(map(len, items)) > limit
        # model2vec cuts each text to max_length * median token length characters before tokenising
        tokens = self._tokens.token_ids([t[:limit] for t in items] if cut else items)
        lengths = tokens.lengths
        over = lengths > self._max_length
        if cut:
            over |= np.fromiter((len(t) > limit for t in items), dtype=bool, count=n)
        flat, counts = _kept_tokens(tokens.flat, lengths, self._max_length, self._unk_id)
        self._mean_into(out, flat, counts)
        empty = counts == 0
        if empty.any():
            # No known token (an empty string, emoji, a zero-width space): not a zero vector, which scores 0
            # against everything and breaks "normalized", but the vocabulary's mean — the "average text".
            out[empty] = self._no_token_vector()
        if self._normalize:
            # l2_normalize's arithmetic, in place
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, np.float32(1e-12))
        return int(np.minimum(lengths, self._max_length).sum()), int(over.sum())

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="vecembed-static")
            return self._executor

    def close(self) -> None:
        """Release the worker threads (if a big batch started them); safe to call more than once."""
        with self._pool_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        super().close()

    def _no_token_vector(self) -> NDArray[np.float32]:
        """The vector of a text with no known token: the mean of all token vectors (computed once)."""
        vector: NDArray[np.float32] | None = getattr(self, "_no_token", None)
        if vector is None:
            vector = np.asarray(self.embeddings.mean(axis=0), dtype=np.float32)
            self._no_token = vector
        return vector

    def _mean_into(self, out: NDArray[np.float32], flat: NDArray[np.int64], counts: NDArray[np.int64]) -> None:
        """``out[i]`` = mean of the vectors of text i's tokens (``flat`` holds every text's ids, in order).

        Texts go longest first in blocks of :data:`_GATHER_ROWS`, and the sum runs position by position:
        at position p the texts with more than p tokens are a prefix of the block, so one gather of their
        p-th token vectors is added into one ``(texts, dim)`` accumulator. Python steps per block = its
        longest text; nothing bigger than the accumulator is built, and it stays in the L2 cache (one
        ``(tokens, dim)`` gather and ``np.add.reduceat`` measured 2-3x slower). Each text's vectors are added
        in token order, as ``np.add.reduceat`` and model2vec's ``sum`` add them, whichever texts share a
        block: batch composition and threads never change a vector.
        """
        table, mapping, weights = self.embeddings, self._mapping, self._weights
        if len(counts) == 1:
            # one text (a query): one gather and a sum over the tokens adds them in the same order, with a
            # third of the steps
            if counts[0]:
                vectors = table.take(flat if mapping is None else mapping[flat], axis=0)
                if weights is not None:
                    vectors *= weights[flat][:, None]
                out[0] = vectors.sum(axis=0) / np.float32(counts[0])
            return
        starts = np.cumsum(counts) - counts
        order = np.argsort(-counts, kind="stable")
        filled = int(np.count_nonzero(counts))
        for at in range(0, filled, _GATHER_ROWS):
            rows = order[at : min(at + _GATHER_ROWS, filled)]
            lengths = counts[rows]
            first = starts[rows]
            # how many texts have more than p tokens, for each position p (a prefix: longest first)
            alive = len(rows) - np.searchsorted(lengths[::-1], np.arange(int(lengths[0])), side="right")
            ids = flat[first]
            sums = table.take(ids if mapping is None else mapping[ids], axis=0)
            if weights is not None:
                sums *= weights[ids][:, None]
            row = np.empty_like(sums)
            for position, k in enumerate(alive[1:].tolist(), start=1):
                ids = flat[first[:k] + position]
                table.take(ids if mapping is None else mapping[ids], axis=0, out=row[:k])
                if weights is not None:
                    row[:k] *= weights[ids][:, None]
                sums[:k] += row[:k]
            out[rows] = sums / lengths[:, None].astype(np.float32)

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


def _parts(items: list[str], threads: int) -> list[int]:
    """Bounds of contiguous parts of ``items`` of about equal length, for ``threads`` workers ([0, n]: one part)."""
    n = len(items)
    if threads < 2 or n < 2:
        return [0, n]
    chars = np.cumsum(np.fromiter(map(len, items), dtype=np.int64, count=n))
    # a few parts per worker, so that one slow part does not leave the others idle
    count = min(4 * threads, int(chars[-1]) // _PART_CHARS, n)
    if count < 2:
        return [0, n]
    cuts = np.searchsorted(chars, chars[-1] * np.arange(1, count) / count)
    return sorted({0, n, *(int(c) for c in cuts if 0 < c < n)})


def _kept_tokens(flat: NDArray[np.int64], lengths: NDArray[np.int64], max_length: int,
                 unk_id: int | None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each text's first ``max_length`` token ids less the unknown token's (model2vec's order: cut, then drop).

    Returns the kept ids (still grouped by text, in order) and how many each text kept.
    """
    keep: NDArray[np.bool_] | None = None
    if len(lengths) and int(lengths.max()) > max_length:
        position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        keep = position < max_length
    if unk_id is not None:
        # model2vec drops unknown tokens (word-level vocabularies map every unseen word to [UNK])
        known = flat != unk_id
        if not known.all():
            keep = known if keep is None else keep & known
    if keep is None:
        return flat, lengths
    text = np.repeat(np.arange(len(lengths)), lengths)
    return flat[keep], np.bincount(text[keep], minlength=len(lengths)).astype(np.int64)


def _no_forward(batch: Batch) -> NDArray[np.float32]:  # pragma: no cover - never called
    raise NotImplementedError("a static model has no forward pass")


def _unk_token_id(tokenizer: Any) -> int | None:
    """The unknown token's id, as model2vec finds it (WordPiece/BPE/WordLevel ``unk_token``, Unigram ``unk_id``)."""
    model = tokenizer.model
    if hasattr(model, "unk_token"):
        token = model.unk_token
        return None if token is None else tokenizer.token_to_id(token)
    unk = json.loads(tokenizer.to_str())["model"].get("unk_id")
    return int(unk) if unk is not None else None
