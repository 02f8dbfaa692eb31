"""The table of backends by name, and :func:`load_provider`.

Backends are registered as import strings and imported only when asked for, so
``import vecembed`` never pulls in torch or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

from vecembed.errors import UnknownProviderError
from vecembed.protocol import EmbeddingProvider

__all__ = ["PROVIDERS", "UnknownProviderError", "available_providers", "load_provider", "provider_class"]

#: name -> "module:Class". The extra that a backend needs is checked when its provider is built.
PROVIDERS: dict[str, str] = {
    "torch": "vecembed.providers.torch:TorchProvider",
    "onnx": "vecembed.providers.onnx:OnnxProvider",
    "static": "vecembed.providers.static:StaticProvider",
    "mock": "vecembed.providers.mock:MockProvider",
}


def available_providers() -> list[str]:
    """The backend names :func:`load_provider` accepts."""
    return sorted(PROVIDERS)


def provider_class(name: str) -> type[Any]:
    """The provider class registered under ``name`` (imports its module)."""
    try:
        target = PROVIDERS[name]
    except (KeyError, TypeError):
        raise UnknownProviderError(
            f"unknown backend {name!r}; valid backends: {', '.join(available_providers())}"
        ) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_provider(name: str = "onnx", /, **options: Any) -> EmbeddingProvider:
    """Build the provider registered as ``name`` with backend ``options``.

    ``load_provider("onnx", model="sentence-transformers/all-MiniLM-L6-v2")``;
    see each provider class for its options. Unknown names list the valid ones;
    a missing extra raises :class:`~vecembed.errors.MissingDependencyError`.
    """
    provider: EmbeddingProvider = provider_class(name)(**options)
    return provider
