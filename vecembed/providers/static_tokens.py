"""Token ids for the static backend at more than tokenizer speed: a bounded chunk cache in front of the tokenizer.

A static model's vector is a mean of token vectors, so embedding is almost all tokenising, and for short texts
most of the Rust tokenizer's time goes to per-text work (an ``Encoding`` each, a Python list of ids each), not
to WordPiece itself. Natural text repeats its words, so :class:`ChunkTokenizer` tokenises each distinct
whitespace-separated chunk ("The", "mat.", "(see") once and remembers its ids:

- the whole batch is split in one C call (``str.split`` on the texts joined by a separator chunk),
- every chunk is looked up in a dict in one C call (``map(dict.get, ...)``) into an int array,
- only chunks never seen before go to the tokenizer, all in one ``encode_batch_fast`` call,
- numpy expands multi-token chunks and finds each text's ids: one flat id array plus per-text lengths.

This gives exactly the tokenizer's ids when every step of the tokenizer is local to a whitespace-separated
chunk — BERT's normaliser (clean-up, CJK spacing, accents, lower case), its pre-tokeniser (whitespace and
punctuation) and the model applied word by word — which :func:`chunk_local` checks from the tokenizer's
own description. Where the two could differ, the text goes to the tokenizer whole:

- Python's ``str.split`` and the tokenizer disagree on what whitespace is for ``\\x1c``-``\\x1f`` (Python
  splits there, Unicode does not), and BERT's clean-up deletes ``\\x0b``, ``\\x0c`` and ``\\x85`` as control
  characters *before* splitting, joining the words around them; texts holding any of these, or the NUL used
  as the separator chunk, are tokenised whole;
- a tokenizer with other steps (byte-level BPE's leading spaces, Metaspace's "first word" rule, a Replace
  normaliser, BPE dropout, an added token with a space in it) is never chunked.

The cache holds at most ``max_entries`` chunks of at most ``max_chunk_chars`` characters; when full it is
emptied and fills again with what the next batches use (an LRU's bookkeeping would cost more per chunk
than the lookup itself). Lookups take no lock: a cache generation is only added to under the lock while it
is current, and a retired generation is never changed, so a call finishes on the generation it started
with.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_CACHE_ENTRIES", "ChunkTokenizer", "TokenIds", "chunk_local"]

#: Chunks the cache holds by default: ~15 MB, and the distinct words of a large English corpus mostly fit.
DEFAULT_CACHE_ENTRIES = 100_000
#: Longer chunks (URLs, base64, run-on strings) are tokenised every time instead of filling the cache.
DEFAULT_MAX_CHUNK_CHARS = 64

_SEPARATOR = "\x00"  # the chunk between texts; texts holding a NUL themselves are tokenised whole
_JOIN = f" {_SEPARATOR} "
# where str.split and the tokenizer disagree (see the module docstring): such texts are tokenised whole.
# Seven `in` scans (memchr) of a batch cost a tenth of one regex search.
_SPLIT_DIFFERS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"


def _split_differs(text: str) -> bool:
    return any(c in text for c in _SPLIT_DIFFERS)

# Tokenizer steps that act on each whitespace-separated chunk on its own (tokenizer.json "type" names).
_LOCAL_NORMALIZERS = frozenset({"BertNormalizer", "Lowercase", "NFD", "NFKD", "NFC", "NFKC", "StripAccents",
                                "Strip"})
_LOCAL_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits"})
_LOCAL_MODELS = frozenset({"WordPiece", "WordLevel", "BPE", "Unigram"})


def chunk_local(tokenizer: Any) -> str | None:
    """``None`` when ``tokenizer`` tokenises every whitespace-separated chunk independently; else why not.

    Read from the tokenizer's own JSON description, so a tokenizer with any step not known to be local
    (or a newer step this code has never seen) is tokenised text by text, never approximated.
    """
    try:
        spec = json.loads(tokenizer.to_str())
    except (AttributeError, TypeError, ValueError) as exc:
        return f"tokenizer description not readable ({exc})"
    for part, allowed in (("normalizer", _LOCAL_NORMALIZERS), ("pre_tokenizer", _LOCAL_PRE_TOKENIZERS)):
        step = spec.get(part)
        steps = [] if step is None else step.get(part + "s", []) if step.get("type") == "Sequence" else [step]
        for s in steps:
            if s.get("type") not in allowed:
                return f"{part} {s.get('type')!r} may act across whitespace"
    if spec.get("pre_tokenizer") is None:
        return "no pre-tokenizer: the model sees whole texts"
    model = spec.get("model") or {}
    if model.get("type") not in _LOCAL_MODELS:
        return f"model {model.get('type')!r} is not known to tokenise word by word"
    if model.get("dropout"):
        return "BPE dropout makes tokenisation random"
    for token in spec.get("added_tokens") or []:
        content = str(token.get("content", ""))
        if not content or any(c.isspace() for c in content):
            return f"added token {content!r} spans whitespace"
    return None


@dataclass(frozen=True)
class TokenIds:
    """Token ids of a list of texts: ``flat`` holds every text's ids in order, ``lengths[i]`` how many are text i's."""

    flat: NDArray[np.int64]
    lengths: NDArray[np.int64]


@dataclass(frozen=True)
class _Sequences:
    """Ids of the multi-token (or zero-token) chunks: chunk k's ids are ``ids[start[k] : start[k] + length[k]]``."""

    start: NDArray[np.int64]
    length: NDArray[np.int64]
    ids: NDArray[np.int64]

    def extended(self, seqs: Sequence[Sequence[int]]) -> _Sequences:
        """A copy with ``seqs`` appended (numbered from ``len(self.length)`` on)."""
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        new_ids = np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(lengths.sum()))
        starts = len(self.ids) + np.cumsum(lengths) - lengths
        return _Sequences(np.concatenate((self.start, starts)), np.concatenate((self.length, lengths)),
                          np.concatenate((self.ids, new_ids)))


def _extend(sequences: _Sequences, seqs: Sequence[Sequence[int]]) -> _Sequences:
    return sequences.extended(seqs) if seqs else sequences


class _Generation:
    """One cache generation: chunk -> slot (a token id, or ``vocab + k`` for sequence k) and the sequences."""

    def __init__(self) -> None:
        # sequence 0 is the separator chunk's: no ids
        self.sequences = _Sequences(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64))
        self.slots: dict[str, int] = {}
        self.chunks = 0  # cached chunks, the separator not counted


class ChunkTokenizer:
    """Token ids of texts, as ``tokenizer`` gives them without special tokens, through a bounded chunk cache.

    ``tokenizer`` is a ``tokenizers.Tokenizer``; it is copied, and the copy neither pads nor truncates (the
    caller truncates, knowing each text's full length). ``max_entries=0`` switches the cache off: every text
    then goes to the tokenizer whole, as it does anyway when :func:`chunk_local` refuses the tokenizer.
    Thread-safe.
    """

    def __init__(self, tokenizer: Any, *, max_entries: int = DEFAULT_CACHE_ENTRIES,
                 max_chunk_chars: int = DEFAULT_MAX_CHUNK_CHARS) -> None:
        self._tokenizer = type(tokenizer).from_str(tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        # slots below this are token ids themselves; from it on they number sequences
        self._vocab = max(vocab.values(), default=-1) + 1
        self.max_entries = max(int(max_entries), 0)
        self.max_chunk_chars = int(max_chunk_chars)
        #: Why texts are not chunked (``None``: they are, with the cache on).
        self.not_chunked: str | None = "cache switched off (0 entries)" if not self.max_entries else (
            chunk_local(self._tokenizer))
        self._lock = threading.Lock()
        self._generation = self._new_generation()

    def _new_generation(self) -> _Generation:
        generation = _Generation()
        generation.slots[_SEPARATOR] = self._vocab  # sequence 0
        return generation

    def __len__(self) -> int:
        """Chunks cached now (at most ``max_entries``)."""
        return self._generation.chunks

    def clear(self) -> None:
        """Forget every cached chunk."""
        with self._lock:
            self._generation = self._new_generation()

    # -- token ids -----------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> TokenIds:
        """Every text's token ids (no special tokens, not truncated), in order; ``texts`` already validated."""
        n = len(texts)
        if not n:
            return TokenIds(np.zeros(0, np.int64), np.zeros(0, np.int64))
        if self.not_chunked is not None:
            return self._whole(texts)
        joined = _JOIN.join(texts)
        if joined.count(_SEPARATOR) == n - 1 and not _split_differs(joined):
            return self._chunked(joined, n)
        odd = [i for i, t in enumerate(texts) if _SEPARATOR in t or _split_differs(t)]
        odd_set = set(odd)
        plain = [i for i in range(n) if i not in odd_set]
        parts = [(np.asarray(odd, np.int64), self._whole([texts[i] for i in odd]))]
        if plain:
            parts.append((np.asarray(plain, np.int64), self._chunked(_JOIN.join([texts[i] for i in plain]),
                                                                     len(plain))))
        return _merge(n, parts)

    def _whole(self, texts: Sequence[str]) -> TokenIds:
        """The tokenizer on each whole text (its Rust threads across the batch)."""
        ids = [e.ids for e in self._encode(list(texts), add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for seq in ids for i in seq), dtype=np.int64, count=int(lengths.sum()))
        return TokenIds(flat, lengths)

    def _chunked(self, joined: str, n: int) -> TokenIds:
        """Ids of the ``n`` texts joined by :data:`_JOIN` in ``joined``, chunk by chunk through the cache."""
        chunks = joined.split()
        generation = self._generation
        slots = np.fromiter(map(generation.slots.get, chunks, repeat(-1)), dtype=np.int64, count=len(chunks))
        missing = np.flatnonzero(slots < 0)
        # read after the lookup: a generation's sequences are replaced before its dict learns their slots
        sequences = generation.sequences
        if len(missing):
            sequences = self._learn(generation, chunks, missing, slots)
        return self._expand(slots, sequences, n)

    def _learn(self, generation: _Generation, chunks: list[str], missing: NDArray[np.intp],
               slots: NDArray[np.int64]) -> _Sequences:
        """Tokenise the chunks not in the cache (once each), fill their ``slots``, and cache them if they fit.

        Returns the sequences this call must expand with: the generation's, or a copy extended just for this
        call when the chunks are not cached (too long, the cache full, or the generation retired meanwhile).
        """
        missed = [chunks[i] for i in missing.tolist()]
        words = list(dict.fromkeys(missed))
        seqs = [e.ids for e in self._encode(words, add_special_tokens=False)]
        with self._lock:
            # cached: short chunks, while this call's generation is current and has room for them
            cache_them = generation is self._generation
            cached = [(w, s) for w, s in zip(words, seqs, strict=True) if len(w) <= self.max_chunk_chars]
            if cache_them and generation.chunks + len(cached) > self.max_entries:
                # full: retire it (calls still on it finish unchanged); later calls fill a new one
                self._generation = self._new_generation()
                cache_them = False
            if not cache_them:
                cached = []
            cached_words = {w for w, _ in cached}
            local = [(w, s) for w, s in zip(words, seqs, strict=True) if w not in cached_words]
            # sequences numbered in the order they are appended: the cached ones (into the generation),
            # then this call's own (a copy that only this call sees, so the generation never grows with them)
            assigned: dict[str, int] = {}
            k = len(generation.sequences.length)
            for word, seq in (*cached, *local):
                if len(seq) == 1:
                    assigned[word] = seq[0]
                else:
                    assigned[word] = self._vocab + k
                    k += 1
            shared = _extend(generation.sequences, [s for _, s in cached if len(s) != 1])
            if cache_them:
                # sequences first, then the slots that point into them (lock-free readers rely on that order)
                generation.sequences = shared
                generation.slots.update((w, assigned[w]) for w, _ in cached)
                generation.chunks += len(cached)
        slots[missing] = np.fromiter(map(assigned.__getitem__, missed), dtype=np.int64, count=len(missed))
        return _extend(shared, [s for _, s in local if len(s) != 1])

    def _expand(self, slots: NDArray[np.int64], sequences: _Sequences, n: int) -> TokenIds:
        """Chunk slots (separators between texts) -> every text's token ids and lengths."""
        multi = slots >= self._vocab
        index = slots[multi] - self._vocab
        chunk_len = np.ones(len(slots), dtype=np.int64)
        seq_len = sequences.length[index]
        chunk_len[multi] = seq_len
        ends = np.cumsum(chunk_len)
        total = int(ends[-1]) if len(ends) else 0
        # a separator has no tokens: the running count at separator j is where text j + 1 starts
        bounds = np.concatenate(([0], ends[slots == self._vocab], [total]))
        starts = ends - chunk_len
        flat = np.empty(total, dtype=np.int64)
        single = ~multi
        flat[starts[single]] = slots[single]
        if seq_len.any():
            # every multi-token chunk's ids copied in one vectorised gather/scatter
            within = np.arange(int(seq_len.sum())) - np.repeat(np.cumsum(seq_len) - seq_len, seq_len)
            flat[np.repeat(starts[multi], seq_len) + within] = sequences.ids[
                np.repeat(sequences.start[index], seq_len) + within]
        return TokenIds(flat, np.diff(bounds))


def _merge(n: int, parts: list[tuple[NDArray[np.int64], TokenIds]]) -> TokenIds:
    """One :class:`TokenIds` for ``n`` texts from parts covering disjoint text positions."""
    lengths = np.zeros(n, dtype=np.int64)
    for where, part in parts:
        lengths[where] = part.lengths
    starts = np.cumsum(lengths) - lengths
    flat = np.empty(int(lengths.sum()), dtype=np.int64)
    for where, part in parts:
        within = np.arange(len(part.flat)) - np.repeat(np.cumsum(part.lengths) - part.lengths, part.lengths)
        flat[np.repeat(starts[where], part.lengths) + within] = part.flat
    return TokenIds(flat, lengths)
