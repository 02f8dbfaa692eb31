"""Helpers of the distributed tests: documents from STS-B, and reading vectors back from Chroma."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def sts_docs(sentences: Sequence[str], n: int) -> list[dict[str, Any]]:
    """``n`` documents with ids and metadata from the STS-B sentences (repeated with a suffix when short)."""
    docs = []
    for i in range(n):
        text = sentences[i % len(sentences)] + ("" if i < len(sentences) else f" ({i // len(sentences)})")
        docs.append({"id": f"sts-{i}", "text": text, "metadata": {"n": i, "half": "a" if i % 2 else "b"}})
    return docs


def chroma_vectors(client: Any, collection: str) -> dict[str, np.ndarray]:
    """``{id: vector}`` of every record in a Chroma collection."""
    col = client.get_collection(collection)
    out: dict[str, np.ndarray] = {}
    offset = 0
    while True:
        got = col.get(include=["embeddings"], limit=1000, offset=offset)
        if not got["ids"]:
            return out
        for doc_id, vector in zip(got["ids"], got["embeddings"], strict=True):
            out[doc_id] = np.asarray(vector, dtype=np.float32)
        offset += len(got["ids"])


def chroma_hashes(client: Any, collection: str) -> dict[str, Any]:
    """``{id: metadata}`` of every record (the content hash and the user's metadata)."""
    col = client.get_collection(collection)
    got = col.get(include=["metadatas"], limit=100_000)
    return dict(zip(got["ids"], got["metadatas"], strict=True))


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert set(a) == set(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
