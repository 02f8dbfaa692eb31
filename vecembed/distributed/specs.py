"""What travels to Ray's workers: descriptions of the provider and the store, not the objects themselves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from vecembed.errors import ModelMismatchError
from vecembed.protocol import EmbeddingProvider
from vecembed.registry import load_provider
from vecembed.retry import StoreCaller
from vecembed.store import VectorStore, store_factory

__all__ = ["FORWARDED_ENV", "ProviderSpec", "StoreSpec", "apply_env", "forwarded_env"]


#: Environment forwarded to the actors (a ``ray start`` node does not inherit the driver's): the model cache,
#: the offline switches.
FORWARDED_ENV = ("VECEMBED_CACHE", "VECEMBED_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME",
                 "HF_HUB_CACHE")

#: Backends with a ``threads=`` option: ONNX Runtime ignores OMP_NUM_THREADS, so an actor passes its CPUs.
_THREADED_BACKENDS = ("onnx", "torch")


@dataclass(frozen=True, kw_only=True)
class ProviderSpec:
    """How a worker builds its provider: ``load_provider(backend, model=model, **options)``.

    A description travels to each actor (a loaded model does not pickle); the actor checks that what it
    loaded has ``fingerprint`` (the driver's), so a node with another copy of the model fails loudly.
    """

    backend: str = "onnx"
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    def load(self) -> EmbeddingProvider:
        options = dict(self.options)
        if self.model is not None:
            options["model"] = self.model
        provider = load_provider(self.backend, **options)
        if self.fingerprint is not None and provider.info.fingerprint != self.fingerprint:
            got = provider.info.fingerprint
            provider.close()
            raise ModelMismatchError(
                f"this worker loaded {self.backend} model {self.model!r} with fingerprint {got}, the driver "
                f"{self.fingerprint}: install the same model (and version) on every node",
                expected=self.fingerprint,
                got=got,
            )
        return provider

    def with_threads(self, cpus: float) -> ProviderSpec:
        """This spec with ``threads=`` set from an actor's CPUs, for backends that take it (unless given)."""
        if self.backend not in _THREADED_BACKENDS or "threads" in self.options:
            return self
        return ProviderSpec(backend=self.backend, model=self.model, fingerprint=self.fingerprint,
                            options={**self.options, "threads": max(1, int(cpus))})


@dataclass(frozen=True, kw_only=True)
class StoreSpec:
    """How a worker opens a server store: the registered ``db``, the ``collection`` and the server ``url``."""

    db: str
    collection: str
    url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    retry_backoff: float = 0.5

    def open(self, provider: EmbeddingProvider | None = None) -> tuple[VectorStore, StoreCaller]:
        """A database-only store (no identity policy) and its caller; the collection is checked separately."""
        backend = store_factory(self.db)(
            self.collection, provider=cast(Any, provider), path=None, url=self.url, client=None, **self.options
        )
        return backend, StoreCaller(backend, max_retries=self.max_retries, retry_backoff=self.retry_backoff)


def forwarded_env() -> dict[str, str]:
    """The driver's values of :data:`FORWARDED_ENV` that are set."""
    return {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}


def apply_env(env: Mapping[str, str] | None) -> None:
    """Set the forwarded variables in this worker, unless the worker's own environment sets them."""
    for name, value in (env or {}).items():
        os.environ.setdefault(name, value)
