"""The ctypes layer over llama.cpp (llama-cpp-python's C API) that :mod:`vecembed.providers.gguf` runs on.

Private: the process-wide backend set-up with llama.cpp's log routed to Python logging
(:func:`init_backend`), the build check for AMX int8 (:func:`built_with_amx`), llama.cpp's tokenizer
behind the calls the text pipeline makes of one (:class:`LlamaTokenizer`), and one context with the
arrays its batches are built in (:class:`LlamaContext`). The ``llama`` argument everywhere is the
imported ``llama_cpp`` module, which the provider imports only when it loads (it is an optional extra).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecembed.errors import ModelLoadError

__all__ = ["LlamaContext", "LlamaTokenizer", "built_with_amx", "init_backend"]

_backend_lock = threading.Lock()
_backend_ready = False


def init_backend(llama: Any) -> None:
    """Once per process: llama.cpp's backend, and its log lines routed to Python logging (not printed)."""
    global _backend_ready
    with _backend_lock:
        if _backend_ready:
            return
        llama.llama_backend_init()
        llama.llama_log_set(_log_callback(llama), ctypes.c_void_p(0))
        _backend_ready = True


def built_with_amx(llama: Any) -> bool:
    """Whether this llama.cpp build uses AMX int8 (its system info says ``AMX_INT8 = 1``)."""
    info = llama.llama_print_system_info()
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" in text


_callback_ref: Any = None
_llama_log = logging.getLogger("vecembed.providers.gguf.llama_cpp")
#: ggml's enum ggml_log_level (NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5: goes on the last line)
_LOG_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
#: llama.cpp warnings that say nothing wrong about embedding: n_ctx is the room of a whole batch of sequences
#: (each one still within the model's context), not one sequence's length
_HARMLESS = ("possible training context overflow",)


def _log_callback(llama: Any) -> Any:
    """llama.cpp's log as Python logging: its INFO chatter at DEBUG, warnings and errors as they are."""
    global _callback_ref
    last = [logging.DEBUG]

    @llama.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: Any) -> None:
        lvl = last[0] if level == 5 else _LOG_LEVELS.get(level, logging.DEBUG)
        last[0] = lvl
        message = text.decode("utf-8", "replace").rstrip()
        if lvl >= logging.WARNING and any(h in message for h in _HARMLESS):
            lvl = logging.DEBUG
        if message and _llama_log.isEnabledFor(lvl):
            _llama_log.log(lvl, "%s", message)

    _callback_ref = callback  # ctypes callbacks must outlive every call into llama.cpp
    return callback


@dataclass
class _Encoding:
    ids: list[int]
    overflowing: list[int]


class LlamaTokenizer:
    """llama.cpp's tokenizer (from the GGUF file) behind the calls the text pipeline makes of a tokenizer.

    Truncation keeps the model's begin/end tokens (``[CLS] … [SEP]`` for a BERT) as Hugging Face
    tokenizers do; what was cut is reported as overflowing, so the pipeline counts it.
    """

    padding = None

    def __init__(self, llama: Any, vocab: Any) -> None:
        self._llama = llama
        self._vocab = vocab
        self.max_length = 512
        plain = self._tokenize("a", special=False)
        marked = self._tokenize("a", special=True)
        at = next((i for i in range(len(marked) - len(plain) + 1) if marked[i:i + len(plain)] == plain), 0)
        self.prefix, self.suffix = marked[:at], marked[at + len(plain):]

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        while True:
            buf = (ctypes.c_int32 * size)()
            n = int(self._llama.llama_tokenize(self._vocab, data, len(data), buf, size, special, False))
            if n >= 0:
                return list(buf[:n])
            size = -n

    def no_padding(self) -> None:
        """The pipeline pads; llama.cpp takes unpadded sequences anyway."""

    def enable_truncation(self, max_length: int) -> None:
        self.max_length = max_length

    def token_to_id(self, token: str) -> int | None:
        return None

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[_Encoding]:
        out = []
        room = self.max_length - (len(self.prefix) + len(self.suffix) if add_special_tokens else 0)
        for text in texts:
            ids = self._tokenize(text, special=False)
            cut = ids[max(room, 0):]
            ids = ids[:max(room, 0)]
            if add_special_tokens:
                ids = self.prefix + ids + self.suffix
            out.append(_Encoding(ids, cut))
        return out


class LlamaContext:
    """One llama.cpp context and the arrays its batches are built in."""

    def __init__(self, llama: Any, model: Any, params: Any, capacity: int, n_seq: int) -> None:
        self.llama = llama
        self.ctx = llama.llama_init_from_model(model, params)
        if not self.ctx:
            raise ModelLoadError("llama.cpp could not create a context (out of memory?)")
        self.memory = llama.llama_get_memory(self.ctx)
        self.tokens = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.logits = np.ones(capacity, dtype=np.int8)
        self.seq_values = np.arange(n_seq, dtype=np.int32)
        self.seq_ptrs = np.zeros(capacity, dtype=np.uintp)

    def free(self) -> None:
        if self.ctx:
            self.llama.llama_free(self.ctx)
            self.ctx = None
