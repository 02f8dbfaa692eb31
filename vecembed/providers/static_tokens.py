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
        types = _step_types(spec.get(part))
        if types is None:
            return f"{part} sequence not readable"
        for kind in types:
            if kind not in allowed:
                return f"{part} {kind!r} may act across whitespace"
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


def _step_types(step: Any) -> list[str] | None:
    """The step types of a normaliser / pre-tokeniser description, sequences flattened; None if unreadable."""
    if step is None:
        return []
    if not isinstance(step, dict):
        return None
    if step.get("type") != "Sequence":
        return [str(step.get("type"))]
    # a normaliser sequence lists "normalizers", a pre-tokeniser sequence "pretokenizers"
    inner = step.get("normalizers", step.get("pretokenizers"))
    if not isinstance(inner, list):
        return None
    types: list[str] = []
    for item in inner:
        found = _step_types(item)
        if found is None:
            return None
        types += found
    return types


@dataclass(frozen=True)
class TokenIds:
    """Token ids of a list of texts: ``flat`` holds every text's ids in order, ``lengths[i]`` how many are text i's."""

    flat: NDArray[np.int64]
    lengths: NDArray[np.int64]


class _Sequences:
    """Ids of the multi-token (or zero-token) chunks: sequence k's are ``ids[start[k] : start[k] + length[k]]``.

    Appended to in place (capacity doubling), so learning a few new words costs what they hold, not a copy
    of everything cached. Entries below ``count`` never change, so a lock-free reader may index any k it
    got from a slot while a writer (holding the cache lock) appends above it.
    """

    def __init__(self, capacity: int = 1024, id_capacity: int = 4096) -> None:
        self.start = np.zeros(max(capacity, 1), dtype=np.int64)
        self.length = np.zeros(max(capacity, 1), dtype=np.int64)
        self.ids = np.zeros(max(id_capacity, 1), dtype=np.int64)
        self.count = 0  # sequences held
        self.used = 0  # ids held

    def append(self, seqs: Sequence[Sequence[int]]) -> _Sequences:
        """Append ``seqs`` (numbered from ``count`` on); returns ``self``, or a bigger copy when they do not fit."""
        if not seqs:
            return self
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        new_ids = np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(lengths.sum()))
        count, used = self.count, self.used
        target = self
        if count + len(seqs) > len(self.start) or used + len(new_ids) > len(self.ids):
            target = _Sequences(max(2 * len(self.start), count + len(seqs)),
                                max(2 * len(self.ids), used + len(new_ids)))
            target.start[:count] = self.start[:count]
            target.length[:count] = self.length[:count]
            target.ids[:used] = self.ids[:used]
        target.start[count : count + len(seqs)] = used + np.cumsum(lengths) - lengths
        target.length[count : count + len(seqs)] = lengths
        target.ids[used : used + len(new_ids)] = new_ids
        target.count, target.used = count + len(seqs), used + len(new_ids)
        return target


#: Slots from ``vocab + _LOCAL`` on number sequences that only one call sees (chunks it does not cache).
_LOCAL = 1 << 40


class _Generation:
    """One cache generation: chunk -> slot (a token id, or ``vocab + k`` for sequence k) and the sequences."""

    def __init__(self) -> None:
        self.sequences = _Sequences().append([()])  # sequence 0 is the separator chunk's: no ids
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
        local = self._learn(generation, chunks, missing, slots) if len(missing) else None
        # read after the lookup (and after learning): sequences are appended before the dict learns their slots
        return self._expand(slots, generation.sequences, local, n)

    def _learn(self, generation: _Generation, chunks: list[str], missing: NDArray[np.intp],
               slots: NDArray[np.int64]) -> _Sequences | None:
        """Tokenise the chunks not in the cache (once each), fill their ``slots``, and cache them if they fit.

        Chunks that are not cached (too long, the cache full, or this generation retired meanwhile) get
        sequences only this call sees, numbered from ``vocab + _LOCAL``: returned (``None`` when there are none).
        """
        missed = [chunks[i] for i in missing.tolist()]
        words = list(dict.fromkeys(missed))
        seqs = [e.ids for e in self._encode(words, add_special_tokens=False)]
        assigned: dict[str, int] = {}
        local: list[list[int]] = []
        with self._lock:
            # cached: short chunks, while this call's generation is current and has room for them
            cache_them = generation is self._generation
            fits = [len(w) <= self.max_chunk_chars for w in words]
            if cache_them and generation.chunks + sum(fits) > self.max_entries:
                # full: retire it (calls still on it finish unchanged); later calls fill a new one
                self._generation = self._new_generation()
                cache_them = False
            shared: list[list[int]] = []
            cached: list[str] = []
            for word, seq, fit in zip(words, seqs, fits, strict=True):
                if len(seq) == 1:
                    assigned[word] = seq[0]
                elif cache_them and fit:
                    assigned[word] = self._vocab + generation.sequences.count + len(shared)
                    shared.append(seq)
                else:
                    assigned[word] = self._vocab + _LOCAL + len(local)
                    local.append(seq)
                if cache_them and fit:
                    cached.append(word)
            if cache_them:
                # sequences first, then the slots that point into them (lock-free readers rely on that order)
                generation.sequences = generation.sequences.append(shared)
                generation.slots.update((w, assigned[w]) for w in cached)
                generation.chunks += len(cached)
        slots[missing] = np.fromiter(map(assigned.__getitem__, missed), dtype=np.int64, count=len(missed))
        return _Sequences(len(local), sum(map(len, local))).append(local) if local else None

    def _expand(self, slots: NDArray[np.int64], shared: _Sequences, local: _Sequences | None, n: int) -> TokenIds:
        """Chunk slots (separators between texts) -> every text's token ids and lengths."""
        multi = np.flatnonzero(slots >= self._vocab)
        index = slots[multi] - self._vocab
        sources = [(multi, index, shared)]
        if local is not None:
            mine = index >= _LOCAL
            sources = [(multi[~mine], index[~mine], shared), (multi[mine], index[mine] - _LOCAL, local)]
        chunk_len = np.ones(len(slots), dtype=np.int64)
        for where, k, table in sources:
            chunk_len[where] = table.length[k]
        ends = np.cumsum(chunk_len)
        total = int(ends[-1]) if len(ends) else 0
        # a separator has no tokens: the running count at separator j is where text j + 1 starts
        bounds = np.concatenate(([0], ends[slots == self._vocab], [total]))
        starts = ends - chunk_len
        flat = np.empty(total, dtype=np.int64)
        single = slots < self._vocab
        flat[starts[single]] = slots[single]
        for where, k, table in sources:
            # every multi-token chunk's ids copied in one vectorised gather/scatter
            lengths = table.length[k]
            if lengths.any():
                within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
                source = np.repeat(table.start[k], lengths) + within
                flat[np.repeat(starts[where], lengths) + within] = table.ids[source]
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
