"""What travels to Ray's workers: descriptions of the providers and the store, not the objects themselves."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from vecembed.errors import InvalidInputError, ModelMismatchError, UnsupportedError, VecembedError
from vecembed.ingest import no_sparse_vectors
from vecembed.protocol import EmbeddingProvider
from vecembed.registry import load_provider
from vecembed.retry import StoreCaller
from vecembed.sparse import (
    SparseEmbeddingProvider,
    available_sparse_providers,
    check_sparse_argument,
    load_sparse_provider,
    registered_sparse_name,
)
from vecembed.store import VectorStore, keeps_sparse, store_factory

__all__ = [
    "FORWARDED_ENV",
    "ProviderSpec",
    "SparseSpec",
    "StoreSpec",
    "apply_env",
    "forwarded_env",
    "load_sparse_on_driver",
]


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
        _check_loaded(f"{self.backend} model {self.model!r}", provider.info.fingerprint, self.fingerprint,
                      "install the same model (and version) on every node", provider.close)
        return provider

    def with_threads(self, cpus: float) -> ProviderSpec:
        """This spec with ``threads=`` set from an actor's CPUs, for backends that take it (unless given)."""
        if self.backend not in _THREADED_BACKENDS or "threads" in self.options:
            return self
        return ProviderSpec(backend=self.backend, model=self.model, fingerprint=self.fingerprint,
                            options={**self.options, "threads": max(1, int(cpus))})


def _check_loaded(what: str, got: str, expected: str | None, fix: str, close: Callable[[], None]) -> None:
    """A worker's loaded provider has the driver's fingerprint ``expected`` (None: unchecked); else close it and
    raise :class:`~vecembed.errors.ModelMismatchError` saying ``fix``."""
    if expected is not None and got != expected:
        close()
        raise ModelMismatchError(f"this worker loaded {what} with fingerprint {got}, the driver {expected}: {fix}",
                                 expected=expected, got=got)


@dataclass(frozen=True, kw_only=True)
class SparseSpec:
    """How a worker builds the sparse provider: ``load_sparse_provider(name, **options)``.

    As with :class:`ProviderSpec`, a description travels, never the driver's provider; the worker checks that
    what it loaded has ``fingerprint`` (the driver's, which the collection's identity records), so a node whose
    stemmer or vecembed version gives other term ids fails loudly instead of writing them.
    """

    name: str = "bm25"
    options: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    def load(self) -> SparseEmbeddingProvider:
        provider = load_sparse_provider(self.name, **self.options)
        _check_loaded(f"sparse provider {self.name!r} (options {dict(self.options)})", provider.info.fingerprint,
                      self.fingerprint, "install the same vecembed version (and its stemmer package) on every node",
                      provider.close)
        return provider

    @classmethod
    def of(cls, provider: SparseEmbeddingProvider) -> SparseSpec:
        """The spec that rebuilds ``provider`` in a worker: its registered name and the options its info records.

        Workers build the sparse provider by name, as they build the dense one (a provider object does not
        travel): one that the registry does not rebuild with the same fingerprint (a class of your own) raises
        :class:`~vecembed.errors.UnsupportedError`, naming what to pass instead.
        """
        info = provider.info
        name = registered_sparse_name(info.name)
        spec = cls(name=name or info.name, options=dict(info.options), fingerprint=info.fingerprint)
        try:
            spec.load().close()
        except (VecembedError, TypeError) as exc:
            raise UnsupportedError(
                f"the sparse provider {info.name!r} ({type(provider).__name__}, fingerprint {info.fingerprint}) "
                f"cannot be rebuilt in Ray's workers, which load the sparse provider by name, as they load the "
                f"dense one (load_sparse_provider({spec.name!r}, **its info.options): {type(exc).__name__}: {exc}); "
                f"pass sparse= a registered name ({', '.join(available_sparse_providers())}) with its options as "
                "sparse_options=, or ingest in one process (vecembed.open_store(..., sparse=provider)); "
                "nothing was written"
            ) from None
        return spec


def load_sparse_on_driver(
    db: str, sparse: str | SparseEmbeddingProvider | None, options: Mapping[str, Any] | None = None
) -> tuple[SparseSpec, SparseEmbeddingProvider, bool] | None:
    """A ``sparse=`` argument on the driver: the workers' spec, the driver's provider, and whether it was loaded
    here (then the caller closes it); None for no sparse provider.

    ``sparse``: a registered name (loaded with ``options``) or a provider (its spec from :meth:`SparseSpec.of`),
    checked as :func:`vecembed.open_store` checks it (:func:`~vecembed.sparse.check_sparse_argument`). Store
    ``db`` must keep sparse vectors (else :class:`~vecembed.errors.UnsupportedError`, before any model loads).
    """
    sparse = check_sparse_argument(sparse)
    options = dict(options or {})
    if sparse is None:
        if options:
            raise InvalidInputError("sparse_options needs sparse= (a sparse provider's name, e.g. 'bm25'); "
                                    "nothing was written")
        return None
    if not keeps_sparse(db):  # Chroma: refused here, before the driver loads the dense model
        raise no_sparse_vectors(db)
    if not isinstance(sparse, str):
        if options:
            raise InvalidInputError(
                f"sparse_options go with a sparse provider's name (sparse='bm25'); sparse= is a provider already "
                f"built ({sparse.info.name!r}): pass its name with the options, or the provider alone; "
                "nothing was written"
            )
        return SparseSpec.of(sparse), sparse, False
    provider = load_sparse_provider(sparse, **options)
    return SparseSpec(name=sparse, options=options, fingerprint=provider.info.fingerprint), provider, True


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
