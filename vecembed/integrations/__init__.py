"""vecembed inside other frameworks: LangChain and LlamaIndex embedding classes, each an optional extra.

``vecembed.integrations.langchain.VecembedEmbeddings`` (``pip install 'vecembed[langchain]'``) and
``vecembed.integrations.llama_index.VecembedEmbedding`` (``pip install 'vecembed[llama-index]'``).
Importing this package imports neither framework; importing one of its modules
imports that framework, or raises :class:`~vecembed.errors.MissingDependencyError`
naming the extra. Both take a provider, or build one from ``backend``/``model``
and any :func:`~vecembed.load_provider` option (``cache=DIR`` included), and both
expose ``fingerprint``: what a vector store should record beside the vectors.
"""

from __future__ import annotations

from typing import Any

from vecembed.errors import InvalidInputError
from vecembed.protocol import EmbeddingProvider

__all__ = ["provider_for"]


def provider_for(
    provider: EmbeddingProvider | None, backend: str, model: str | None, options: dict[str, Any]
) -> tuple[EmbeddingProvider, bool]:
    """The provider to embed with and whether the caller owns it (built here from ``backend``, ``model``, options)."""
    if provider is not None:
        if model is not None or options:
            given = ", ".join(["model"] * (model is not None) + sorted(options))
            raise InvalidInputError(
                f"give either provider= or the options to build one ({given}), not both; nothing was loaded"
            )
        if not isinstance(provider, EmbeddingProvider):
            raise InvalidInputError(
                f"provider must be an EmbeddingProvider (e.g. vecembed.load_provider('onnx')), "
                f"got {type(provider).__name__}"
            )
        return provider, False
    from vecembed.registry import load_provider

    if model is not None:
        options = {**options, "model": model}
    return load_provider(backend, **options), True
