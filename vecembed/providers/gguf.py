"""GgufProvider: GGUF models on llama.cpp (through llama-cpp-python's C API), over the shared text pipeline.

``model=`` is a ``.gguf`` file, a folder or Hugging Face repository holding one
(``filename=`` picks it), or a transformer (BERT), which is converted once to
GGUF in ``quantize`` (``f16`` by default, ``q8_0``, ``f32``) and cached like the
ONNX export (:mod:`vecembed.providers.gguf_convert`); finding the file is
:mod:`vecembed.gguf_files`' job (:func:`~vecembed.gguf_files.locate_gguf`, re-exported here), and the
ctypes calls into llama.cpp live in :mod:`vecembed.providers._llama_cpp`.

What is shared with the other backends: validation, prompts, truncation (the
text is cut to ``max_tokens`` keeping the model's begin/end tokens, and counted),
length-sorted batching, L2 normalisation, statistics, health — the
:class:`~vecembed.pipeline.TextPipeline`. The tokenizer is llama.cpp's own,
from the GGUF file, so a file gives the same vectors wherever it is copied;
llama.cpp runs the forward pass and the pooling (mean, cls or last, from the
file's ``{arch}.pooling_type``), so a model's own output layers after pooling
(sentence-transformers Dense modules that llama.cpp reads) apply as llama.cpp
applies them.

The GGUF keys read: ``{arch}.pooling_type``, ``{arch}.context_length``,
``general.file_type``, ``general.name``, and the ``vecembed.*`` keys this
project's converter writes (normalisation, max_seq_length, prompts). A file
without them gets the other backends' defaults: L2-normalised, no prompts,
``max_tokens`` = the model's context length (at most 8,192) — each overridable.

Threads: a llama.cpp context is not thread-safe. The provider keeps a pool of
``contexts`` contexts (1 by default) sharing one copy of the weights; each
forward takes one, so calls from many threads are serialised (1) or run
``contexts`` at once, each context using ``n_threads`` threads.

The fingerprint covers the file's sha256 and its quantisation type, pooling,
normalisation, dimension, max_tokens and prompts: Q8_0 and F16 of one model are
different vector spaces (their vectors differ by ~1e-2 in cosine).
"""

from __future__ import annotations

import ctypes
import os
import queue
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed._deps import require
from vecembed.cpu import physical_cores
from vecembed.errors import InvalidInputError, ModelLoadError, ProviderUnavailableError
from vecembed.gguf_files import _Located, locate_gguf
from vecembed.pipeline import Batch, TextPipeline
from vecembed.providers._llama_cpp import LlamaContext, LlamaTokenizer, built_with_amx, init_backend
from vecembed.providers.base import PipelineProvider
from vecembed.providers.gguf_convert import (
    GGUF_TYPES,
    META_DOCUMENT_PROMPT,
    META_MAX_SEQ_LENGTH,
    META_NORMALIZE,
    META_QUERY_PROMPT,
)
from vecembed.resolve import file_digest
from vecembed.types import POOLING_MODES, ModelInfo, make_fingerprint

__all__ = ["LLAMA_POOLING", "GgufProvider", "LlamaTokenizer", "locate_gguf"]


#: vecembed's pooling names -> llama.cpp's enum llama_pooling_type (what llama.cpp can pool)
LLAMA_POOLING = {"mean": 1, "cls": 2, "last": 3}
_POOLING_NAMES = {v: k for k, v in LLAMA_POOLING.items()}
#: llama.cpp's enum llama_ftype (general.file_type) -> the name users know (the common ones)
_FILE_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k",
               11: "q3_k_s", 12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s",
               17: "q5_k_m", 18: "q6_k", 32: "bf16"}
#: llama.cpp holds at most this many sequences in one batch (LLAMA_MAX_SEQ)
_MAX_SEQ = 256
#: The file types llama.cpp's AMX int8 path leaves alone; with a quantised type (Q8_0 seen, llama-cpp-python
#: 0.3.36 on a Sapphire Rapids CPU) a build with AMX segfaults on the first embedding, killing the process.
_AMX_SAFE_TYPES = frozenset({"f32", "f16", "bf16"})
_DEFAULT_MAX_TOKENS_CAP = 8192


class GgufProvider(PipelineProvider):
    """Embeddings from a GGUF model on llama.cpp (``pip install 'vecembed[gguf]'``).

    Options: ``model`` (a ``.gguf`` file, a folder or hub repository holding one, or a BERT transformer to
    convert; default all-MiniLM-L6-v2, converted), ``filename`` (which ``.gguf`` of a folder/repository),
    ``quantize`` (for a conversion: ``f16`` (default), ``q8_0``, ``f32``), ``n_threads`` (per context; default
    the physical cores), ``n_ctx`` (tokens one forward holds; default ``max_batch_tokens``), ``contexts``
    (how many forwards may run at once; 1), ``batch_size`` (16) and ``max_batch_tokens`` (512): llama.cpp attends
    across every token of a batch (masked per sequence), so small batches waste the least; measured on 2 cores,
    16 / 512 was ~10 % faster on short texts and ~25 % on long ones than 32 / 1024, ``max_tokens``,
    ``pooling`` (``mean``, ``cls``, ``last``), ``normalize``, ``query_prompt``, ``document_prompt``,
    ``allow_download``.
    """

    backend = "gguf"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        filename: str | None = None,
        quantize: str | None = None,
        n_threads: int | None = None,
        n_ctx: int | None = None,
        contexts: int = 1,
        batch_size: int = 16,
        max_batch_tokens: int = 512,
        max_tokens: int | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        allow_download: bool | None = None,
    ) -> None:
        if quantize is not None and quantize not in GGUF_TYPES:
            raise InvalidInputError(f"quantize must be one of {', '.join(GGUF_TYPES)} (or None), got {quantize!r}")
        for label, value in (("n_threads", n_threads), ("n_ctx", n_ctx), ("max_tokens", max_tokens),
                             ("batch_size", batch_size), ("max_batch_tokens", max_batch_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidInputError(f"{label} must be a positive int, got {value!r}")
        if isinstance(contexts, bool) or not isinstance(contexts, int) or contexts < 1:
            raise InvalidInputError(f"contexts must be a positive int, got {contexts!r}")
        if pooling is not None and pooling not in LLAMA_POOLING:
            extra = f" ({pooling!r} is not one llama.cpp pools)" if pooling in POOLING_MODES else ""
            raise InvalidInputError(f"pooling must be one of {', '.join(LLAMA_POOLING)} on the gguf backend, "
                                    f"got {pooling!r}{extra}")
        llama: Any = require("llama_cpp", "gguf", "the gguf backend")
        self._llama = llama
        init_backend(llama)
        located = locate_gguf(model, filename=filename, quantize=quantize, allow_download=allow_download)
        self.model_file: Path = located.path
        self._model: Any = None
        self._contexts: queue.SimpleQueue[LlamaContext] = queue.SimpleQueue()
        self._all_contexts: list[LlamaContext] = []
        params = llama.llama_model_default_params()
        self._model = llama.llama_model_load_from_file(str(located.path).encode(), params)
        if not self._model:
            raise ModelLoadError(f"llama.cpp could not load {located.path} (an architecture it does not know, or "
                                 "a damaged file; its log lines are on the vecembed.providers.gguf logger)",
                                 path=str(located.path))
        try:
            self._setup(located, n_threads=n_threads, n_ctx=n_ctx, contexts=contexts, batch_size=batch_size,
                        max_batch_tokens=max_batch_tokens, max_tokens=max_tokens, pooling=pooling,
                        normalize=normalize, query_prompt=query_prompt, document_prompt=document_prompt)
        except BaseException:
            self._free()
            raise

    def _setup(self, located: _Located, *, n_threads: int | None, n_ctx: int | None, contexts: int,
               batch_size: int, max_batch_tokens: int, max_tokens: int | None, pooling: str | None,
               normalize: bool | None, query_prompt: str | None, document_prompt: str | None) -> None:
        llama = self._llama
        meta = self._metadata()
        arch = meta.get("general.architecture", "")
        file_type = _FILE_TYPES.get(int(meta.get("general.file_type", "-1") or -1), meta.get("general.file_type"))
        if file_type not in _AMX_SAFE_TYPES and built_with_amx(llama):
            # refused here: a segfault in llama.cpp would end the whole process, not only this call
            raise ProviderUnavailableError(
                f"{located.path} is {file_type or 'quantised'}, and this llama-cpp-python was built with AMX int8, "
                "whose quantised path crashes the process (llama-cpp-python 0.3.36); rebuild it without AMX: "
                "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_INT8=OFF' "
                "pip install --force-reinstall --no-cache-dir llama-cpp-python, or use an f16 file")
        if llama.llama_model_has_decoder(self._model) is False and llama.llama_model_has_encoder(self._model):
            self._run = llama.llama_encode
        else:
            self._run = llama.llama_decode
        pool_name = pooling or _POOLING_NAMES.get(int(meta.get(f"{arch}.pooling_type", "1") or 1))
        if pool_name is None:
            raise ModelLoadError(f"{located.path}: its pooling type {meta.get(f'{arch}.pooling_type')} is not one "
                                 f"vecembed reads ({', '.join(LLAMA_POOLING)}); pass pooling=", path=str(located.path))
        n_ctx_train = int(llama.llama_model_n_ctx_train(self._model))
        limit = max_tokens or int(meta.get(META_MAX_SEQ_LENGTH) or min(n_ctx_train, _DEFAULT_MAX_TOKENS_CAP))
        if limit > n_ctx_train > 0:
            raise InvalidInputError(f"max_tokens={limit} exceeds the model's context length {n_ctx_train}")
        self._normalize = _meta_bool(meta.get(META_NORMALIZE), True) if normalize is None else bool(normalize)
        self._document_prompt = meta.get(META_DOCUMENT_PROMPT, "") if document_prompt is None else document_prompt
        self._query_prompt = meta.get(META_QUERY_PROMPT, "") if query_prompt is None else query_prompt
        capacity = max(n_ctx or max_batch_tokens, limit)
        n_seq = min(batch_size, _MAX_SEQ)
        threads = n_threads or physical_cores()
        params = llama.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = capacity
        params.n_seq_max = n_seq
        params.n_threads = params.n_threads_batch = threads
        params.embeddings = True
        params.pooling_type = LLAMA_POOLING[pool_name]
        params.no_perf = True
        if hasattr(params, "kv_unified"):
            params.kv_unified = True  # one cache all sequences share: a long one may use the whole n_ctx
        for _ in range(contexts):
            context = LlamaContext(llama, self._model, params, capacity, n_seq)
            self._all_contexts.append(context)
            self._contexts.put(context)
        vocab = llama.llama_model_get_vocab(self._model)
        self.tokenizer = LlamaTokenizer(llama, vocab)
        dim = int(getattr(llama, "llama_model_n_embd_out", llama.llama_model_n_embd)(self._model))
        self.pipeline = TextPipeline(
            self.tokenizer, self._forward, dimension=dim, max_tokens=limit, pooling="none",
            normalize=self._normalize, batch_size=n_seq, max_batch_tokens=capacity, stats=self.stats,
        )
        quantization = None if file_type == "f32" else (str(file_type) if file_type is not None else "unknown")
        self._info = ModelInfo(
            name=(meta.get("general.name") if located.source == "file" else None) or located.name,
            dimension=dim,
            max_tokens=limit,
            pooling=pool_name,
            normalized=self._normalize,
            backend=self.backend,
            device="cpu",
            dtype=str(file_type or "unknown"),
            fingerprint=make_fingerprint(
                weights_id=file_digest(located.path),
                pooling=pool_name,
                normalized=self._normalize,
                dimension=dim,
                quantization=f"gguf-{file_type}",
                extra={"max_tokens": limit, "query_prompt": self._query_prompt,
                       "document_prompt": self._document_prompt},
            ),
            quantization=quantization,
            query_prompt=self._query_prompt,
            document_prompt=self._document_prompt,
            extra={"source": located.source, "path": str(located.path), "architecture": arch,
                   "contexts": contexts, "n_threads": threads, "load_options": located.options},
        )

    def _metadata(self) -> dict[str, str]:
        llama, out = self._llama, {}
        buf = ctypes.create_string_buffer(4096)
        for i in range(int(llama.llama_model_meta_count(self._model))):
            if llama.llama_model_meta_key_by_index(self._model, i, buf, len(buf)) < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            if key.startswith("tokenizer.ggml.") and key not in ("tokenizer.ggml.model",):
                continue  # token lists: long, and not needed here
            n = llama.llama_model_meta_val_str_by_index(self._model, i, buf, len(buf))
            if n >= len(buf):
                big = ctypes.create_string_buffer(n + 1)
                llama.llama_model_meta_val_str_by_index(self._model, i, big, len(big))
                out[key] = big.value.decode("utf-8", "replace")
            elif n >= 0:
                out[key] = buf.value.decode("utf-8", "replace")
        return out

    @property
    def document_prompt(self) -> str:
        return self._document_prompt

    @property
    def query_prompt(self) -> str:
        return self._query_prompt

    # -- the forward pass: one llama.cpp batch per pipeline batch, pooled by llama.cpp -------------------

    def _forward(self, batch: Batch) -> NDArray[Any]:
        context = self._contexts.get()
        try:
            return self._decode(context, batch)
        finally:
            self._contexts.put(context)

    def _decode(self, c: LlamaContext, batch: Batch) -> NDArray[np.float32]:
        llama = self._llama
        if c.ctx is None:
            raise ProviderUnavailableError("GgufProvider is closed; load a new provider")
        mask = batch.attention_mask.astype(bool)
        lengths = mask.sum(axis=1)
        n = int(lengths.sum())
        rows = len(lengths)
        c.tokens[:n] = batch.input_ids[mask]
        c.pos[:n] = np.concatenate([np.arange(k, dtype=np.int32) for k in lengths]) if n else []
        seq = np.repeat(np.arange(rows), lengths)
        c.seq_ptrs[:n] = c.seq_values.ctypes.data + seq * c.seq_values.itemsize
        i32p = ctypes.POINTER(ctypes.c_int32)
        native = llama.llama_batch(
            n_tokens=n,
            token=c.tokens.ctypes.data_as(i32p),
            embd=None,
            pos=c.pos.ctypes.data_as(i32p),
            n_seq_id=c.n_seq_id.ctypes.data_as(i32p),
            seq_id=ctypes.cast(c.seq_ptrs.ctypes.data, ctypes.POINTER(i32p)),
            logits=c.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        if c.memory:
            llama.llama_memory_clear(c.memory, True)
        status = int(self._run(c.ctx, native))
        if status != 0:
            raise ProviderUnavailableError(f"llama.cpp failed on a batch of {rows} texts / {n} tokens "
                                           f"(status {status}); its log is on the vecembed.providers.gguf logger")
        dim = self.pipeline.dimension
        out = np.empty((rows, dim), dtype=np.float32)
        for row in range(rows):
            ptr = llama.llama_get_embeddings_seq(c.ctx, row)
            if not ptr:
                raise ProviderUnavailableError("llama.cpp returned no pooled embedding (was pooling disabled?)")
            out[row] = np.ctypeslib.as_array(ptr, shape=(dim,))
        return out

    # -- closing --------------------------------------------------------------------------------------

    def _free(self) -> None:
        for context in self._all_contexts:
            context.free()
        self._all_contexts = []
        if self._model:
            self._llama.llama_model_free(self._model)
            self._model = None

    def close(self) -> None:
        if self._closed:
            return
        super().close()  # refuse new calls first, then wait for the forwards in flight to hand their contexts back
        for _ in range(len(self._all_contexts)):
            self._contexts.get()
        self._free()

    def __del__(self) -> None:
        try:
            if not self._closed and getattr(self, "_model", None):
                self._free()
        except Exception:  # interpreter shutdown: llama_cpp may be gone already
            pass


def _meta_bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("true", "1")
