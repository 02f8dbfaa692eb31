"""Which Snowball stemmer the bm25 provider uses (issue 24): py-rust-stemmers against snowballstemmer.

On the words of the SciFact corpus (title + text, lower-cased, split as the provider splits them), in
interleaved rounds:

* ``words/s``: every word stemmed one call per word (``stem_word`` / ``stemWord``) and the whole list in one
  call (``stem_words`` / ``stemWords``);
* ``distinct words/s``: the distinct words only, once each — what the provider's cache leaves to stem;
* agreement: how many distinct words the two stem differently, with examples.

``snowballstemmer`` runs pure Python unless PyStemmer (its optional C accelerator) is installed: the report says
which. Every result carries the CPU line. Run ``python benchmarks/stemmers.py --help``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, cpu_line, texts_of  # noqa: E402
from vecembed.evaluate import load_beir  # noqa: E402
from vecembed.providers.bm25 import _WORD  # noqa: E402


def timed(fn: Callable[[], Any], rounds: list[float]) -> Any:
    started = time.perf_counter()
    out = fn()
    rounds.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="a BEIR folder (default: SciFact train)")
    parser.add_argument("--language", default="english")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args()

    import py_rust_stemmers
    import snowballstemmer

    _, texts = texts_of(load_beir(args.data), title=True)
    words = [w for t in texts for w in _WORD.findall(t.lower())]
    distinct = sorted(set(words))
    rust = py_rust_stemmers.SnowballStemmer(args.language)
    snow = snowballstemmer.stemmer(args.language)
    times: dict[str, list[float]] = {
        k: [] for k in ("rust_word", "rust_list", "rust_distinct", "snow_word", "snow_list", "snow_distinct")
    }
    for _ in range(args.rounds):
        timed(lambda: [rust.stem_word(w) for w in words], times["rust_word"])
        timed(lambda: rust.stem_words(words), times["rust_list"])
        a = timed(lambda: rust.stem_words(distinct), times["rust_distinct"])
        timed(lambda: [snow.stemWord(w) for w in words], times["snow_word"])
        timed(lambda: snow.stemWords(words), times["snow_list"])
        b = timed(lambda: snow.stemWords(distinct), times["snow_distinct"])
    differ = [(w, x, y) for w, x, y in zip(distinct, a, b, strict=True) if x != y]
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "cpu": cpu_line(),
        "language": args.language,
        "words": len(words),
        "distinct_words": len(distinct),
        "py_rust_stemmers": version("py-rust-stemmers"),
        "snowballstemmer": version("snowballstemmer"),
        "snowballstemmer_c_accelerator": importlib.util.find_spec("Stemmer") is not None,
        "seconds": {k: round(v, 3) for k, v in med.items()},
        "rust_words_per_s": round(len(words) / med["rust_list"]),
        "snow_words_per_s": round(len(words) / med["snow_list"]),
        "speedup_list": round(med["snow_list"] / med["rust_list"], 1),
        "speedup_distinct": round(med["snow_distinct"] / med["rust_distinct"], 1),
        "distinct_words_stemmed_differently": len(differ),
        "examples": differ[:12],
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
