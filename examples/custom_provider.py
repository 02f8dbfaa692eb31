"""A provider of your own: implement the protocol, and both adapters take it — guards included.

    python examples/custom_provider.py                 # temporary folders
    python examples/custom_provider.py ./custom-data   # keep the databases

vecembed's adapters accept any object that fits :class:`vecembed.EmbeddingProvider`
(a runtime-checkable ``typing.Protocol``): nothing to inherit. This one embeds
character trigrams by feature hashing — no model, typo-tolerant, good for short
product names or ids — in 30 lines of numpy. What it shows:

1. the members the protocol needs: ``info`` (a :class:`vecembed.ModelInfo` with a
   fingerprint that identifies the vector space), ``embed_documents``,
   ``embed_queries``, ``embed_query``, ``health_check``, ``close`` and the
   context manager;
2. the same provider in Chroma's own API (``vecembed_chroma.get_or_create_collection``)
   and in a vecembed store (``vecembed.open_store("qdrant", ...)``), with misspelt queries;
3. the guard: the collections record this provider's fingerprint, and opening
   them with another provider raises ``ModelMismatchError`` before anything is written.

Needs ``pip install 'vecembed[chroma,qdrant]'``; no model, no network.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import vecembed_chroma

import vecembed
from vecembed.health import probe_provider
from vecembed.pipeline import validate_texts
from vecembed.types import Embeddings, HealthReport, ModelInfo, make_fingerprint


class TrigramProvider:
    """Character-trigram vectors (feature hashing into ``dimension`` buckets), L2-normalised."""

    def __init__(self, dimension: int = 512) -> None:
        self.dimension = dimension
        self.closed = False
        self._info = ModelInfo(
            name="example/char-trigrams",
            dimension=dimension,
            max_tokens=10_000,
            pooling="mean",
            normalized=True,
            backend="custom",
            # The fingerprint names everything that changes the vectors: change one, get another space.
            fingerprint=make_fingerprint(weights_id="char-trigrams:blake2b:v1", pooling="mean", normalized=True,
                                         dimension=dimension),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _vector(self, text: str) -> np.ndarray[Any, Any]:
        padded = f"  {text.lower()}  "
        vector = np.zeros(self.dimension, dtype=np.float32)
        for i in range(len(padded) - 2):
            digest = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest, "little")
            vector[bucket % self.dimension] += 1.0 if bucket >> 63 else -1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def embed_documents(self, texts: Sequence[str]) -> Embeddings:
        if self.closed:
            raise vecembed.ProviderUnavailableError("TrigramProvider is closed")
        items = validate_texts(texts, what="documents")  # vecembed's own check: None/bytes -> InvalidInputError
        return np.array([self._vector(t) for t in items], dtype=np.float32).reshape(len(items), self.dimension)

    def embed_queries(self, texts: Sequence[str]) -> Embeddings:
        return self.embed_documents(texts)  # a symmetric model: no query prompt

    def embed_query(self, text: str) -> Embeddings:
        return self.embed_queries([text])[0]

    def health_check(self) -> HealthReport:
        return probe_provider(self)  # the probe every vecembed backend uses: shape, dtype, finite, unit norm

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> TrigramProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


PRODUCTS = {
    "sku-1": "Stainless steel espresso machine with milk frother",
    "sku-2": "Wireless noise-cancelling headphones",
    "sku-3": "Cast iron skillet, 26 cm",
    "sku-4": "Mechanical keyboard with hot-swappable switches",
    "sku-5": "Ergonomic office chair with lumbar support",
}
MISSPELT = ["expresso machine", "noise canceling headphone", "ergonomic chiar"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="folder for the databases (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vecembed-custom-") as tmp, TrigramProvider() as provider:
        root = Path(args.path or tmp)
        # 1: it is an EmbeddingProvider without inheriting from anything vecembed ships
        print(f"isinstance(provider, vecembed.EmbeddingProvider): {isinstance(provider, vecembed.EmbeddingProvider)}")
        print(f"provider: {provider.info.name}, dim {provider.info.dimension}, {provider.info.fingerprint}")
        print(f"health: {provider.health_check().detail}")

        # 2a: Chroma — the collection records the provider's fingerprint and dimension
        client = chromadb.PersistentClient(path=str(root / "chroma"))
        products = vecembed_chroma.get_or_create_collection(client, "products", provider)
        products.upsert(ids=list(PRODUCTS), documents=list(PRODUCTS.values()))
        result = products.query(query_texts=MISSPELT, n_results=1)
        print("\nChroma:")
        for query, ids, distances in zip(MISSPELT, result["ids"], result["distances"] or [], strict=True):
            print(f"  {query!r:<30} -> {ids[0]}  {PRODUCTS[ids[0]]!r}  (cosine {1 - distances[0]:.3f})")

        # 2b: Qdrant — the same provider behind a vecembed store (local mode here; url= for a server)
        with vecembed.open_store("qdrant", "products", provider, path=str(root / "qdrant")) as store:
            report = store.ingest(list(PRODUCTS.items()))
            print(f"\n{report}")
            for query in MISSPELT:
                hit = store.search(query, k=1)[0]
                print(f"  {query!r:<30} -> {hit.id}  {hit.text!r}  (score {hit.score:.3f})")
            store.close()  # local mode locks its folder: free it for the guard below

            # 3: the guard — another vector space is refused before anything is written
            with vecembed.load_provider("mock", dimension=512) as other:
                for name, open_with_other in [
                    ("Chroma", lambda: vecembed_chroma.get_collection(client, "products", other)),
                    ("Qdrant", lambda: vecembed.open_store("qdrant", "products", other, path=str(root / "qdrant"))),
                ]:
                    try:
                        open_with_other()
                    except vecembed.ModelMismatchError as exc:
                        print(f"\n{name} refused another model: {str(exc)[:110]}…")
                    else:
                        print(f"\n{name} accepted another model: this should not happen", file=sys.stderr)
                        return 1
        with vecembed.open_store("qdrant", "products", provider, path=str(root / "qdrant"), create=False) as store:
            print(f"\nQdrant still holds {store.count()} points; Chroma {products.count()} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
