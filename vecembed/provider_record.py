"""How a collection records the provider that wrote it, so that it can load that provider again.

A :class:`ProviderRecord` is the ``load_provider`` call that gives a provider back:
the backend and the options that change vectors (model, quantize, dimension, ...).
It is recorded in every collection's identity (``vecembed:provider``, see
:mod:`vecembed.identity`) and in the configuration of a Chroma embedding function,
so that ``vecembed.open_store(db, name)`` with no provider, and ``client.get_collection(name)``
in plain chromadb, load the same provider through one path: :meth:`ProviderRecord.load`.

What is never recorded: secrets (an API key comes from the loading process, e.g.
``$VECEMBED_API_KEY``), and process settings (``allow_download``). A model found by its
local folder is recorded by that path and named in ``local_paths``, so the error on
another machine says it is a path of the machine that wrote the collection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vecembed.errors import (
    DimensionMismatchError,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
    ModelNotFoundError,
)
from vecembed.protocol import EmbeddingProvider
from vecembed.registry import PROVIDERS
from vecembed.types import ModelInfo

__all__ = ["PROCESS_OPTIONS", "ProviderRecord"]

#: Options a record never carries: they belong to the process that loads it.
PROCESS_OPTIONS = frozenset({"allow_download"})
#: Option names that hold secrets (these, or ending in ``_`` + one of them): never recorded. (Not a substring
#: test: ``max_tokens`` is a vector-changing option, not a token.)
_SECRET_NAMES = ("api_key", "apikey", "token", "password", "secret", "headers")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(lowered == part or lowered.endswith("_" + part) for part in _SECRET_NAMES)


def _jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as plain JSON values (paths become str); refuse what JSON cannot hold."""
    out = {str(k): os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"provider options must be JSON-serialisable to be recorded with the collection: {exc}"
        ) from None
    return out


@dataclass(frozen=True, kw_only=True)
class ProviderRecord:
    """``vecembed.load_provider(backend, **options)``, as a collection records it.

    ``local_paths``: the option names whose values are folders on the machine that wrote
    the collection (a model found by its path). ``rebuildable`` False: a provider vecembed
    cannot load again (a user's own class): the record only names it.
    """

    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)
    local_paths: tuple[str, ...] = ()
    rebuildable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise InvalidInputError(f"ProviderRecord.backend must be a non-empty str, got {self.backend!r}")
        # Secrets and process settings are dropped, not refused: a record is written for every collection and
        # the loading process supplies them itself.
        kept = {k: v for k, v in _jsonable(self.options).items() if k not in PROCESS_OPTIONS and not _is_secret(k)}
        object.__setattr__(self, "options", kept)
        object.__setattr__(self, "local_paths", tuple(p for p in self.local_paths if p in kept))

    @classmethod
    def of(cls, info: ModelInfo) -> ProviderRecord:
        """Best guess at the ``load_provider`` call that gives a provider with ``info`` back.

        The guess is checked when it is used: :meth:`load` refuses a provider whose fingerprint
        differs from the one the collection records.
        """
        if info.backend not in PROVIDERS:
            return cls(backend=info.backend or "unknown", rebuildable=False)
        if info.backend == "remote":
            # the server's address gives it back; the API key is a secret: $VECEMBED_API_KEY where it is loaded
            url = info.extra.get("url")
            return cls(backend="remote", options={"url": url}) if url else cls(backend="remote", rebuildable=False)
        if info.backend == "mock":
            opts: dict[str, Any] = {"dimension": info.dimension}
            seed = info.extra.get("seed", 0)
            if seed:
                opts["seed"] = seed
            if info.max_tokens != 256:
                opts["max_tokens"] = info.max_tokens
            if info.name != "vecembed/mock":
                opts["name"] = info.name
            if info.query_prompt:
                opts["query_prompt"] = info.query_prompt
            return cls(backend="mock", options=opts)
        if isinstance(info.extra.get("load_options"), dict):  # a backend that says how it is found again (gguf, static)
            return cls(
                backend=info.backend,
                options=dict(info.extra["load_options"]),
                local_paths=("model",) if info.extra.get("source") == "local" else (),
            )
        # Model-backed backends: a model found by id (package, Hugging Face cache, download) is recorded by its
        # id, which resolves on another machine too; one found on disk by path is recorded by that path, marked.
        model: str = info.name
        local: tuple[str, ...] = ()
        if info.extra.get("source") == "local" and info.extra.get("path"):
            model, local = str(info.extra["path"]), ("model",)
        opts = {"model": model}
        if info.quantization:
            opts["quantize"] = info.quantization
        return cls(backend=info.backend, options=opts, local_paths=local)

    # -- how it is stored -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ``{"backend", "options", "local_paths", "rebuildable"}``."""
        return {
            "backend": self.backend,
            "options": dict(self.options),
            "local_paths": list(self.local_paths),
            "rebuildable": self.rebuildable,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as one JSON string (a flat metadata value every database takes)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_value(cls, value: Any) -> ProviderRecord | None:
        """The record in a stored value (a JSON string or a dict); None when there is none or it is unreadable."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, Mapping) or not isinstance(value.get("backend"), str) or not value["backend"]:
            return None
        options = value.get("options")
        local = value.get("local_paths")
        try:
            return cls(
                backend=value["backend"],
                options=dict(options) if isinstance(options, Mapping) else {},
                local_paths=tuple(str(p) for p in local) if isinstance(local, list) else (),
                rebuildable=bool(value.get("rebuildable", True)),
            )
        except InvalidInputError:
            return None

    def describe(self) -> str:
        """``load_provider('onnx', model='...')`` — how messages name it."""
        args = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"load_provider({self.backend!r}{args})"

    # -- loading it -----------------------------------------------------------------------------

    def load(self, *, fingerprint: str, dimension: int, model: str, where: str, advice: str) -> EmbeddingProvider:
        """Load the recorded provider and check that it is the one ``where`` records (fingerprint, dimension).

        ``where``: what records it, for messages (``"collection 'docs'"``); ``advice``: what to do
        instead (pass a provider). Raises :class:`~vecembed.errors.MissingDependencyError` naming
        the extra, :class:`~vecembed.errors.ModelNotFoundError` naming the model (and saying when it
        was a local path of the machine that wrote it), or ``ModelMismatchError`` /
        ``DimensionMismatchError`` when what loads here is another vector space.
        """
        # Looked up when called (not bound at import), so a test's spy on the registry sees the call.
        import vecembed.registry as registry

        what = f"{where} records its provider as {self.describe()} (model {model!r})"
        loading = f"loading {self.describe()}, the provider {where} records (model {model!r}),"
        if not self.rebuildable:
            raise ModelNotFoundError(
                model,
                [f"{what}: a provider vecembed cannot load again (backend {self.backend!r} is not one of its own)"],
                hint=advice,
            )
        try:
            provider = registry.load_provider(self.backend, **self.options)
        except MissingDependencyError as exc:
            raise MissingDependencyError(exc.module, exc.extra, purpose=loading) from None
        except ModelNotFoundError as exc:
            local = (
                f" {self.options[self.local_paths[0]]!r} is a local path on the machine that wrote the collection:"
                " copy the model there, or"
                if self.local_paths
                else ""
            )
            raise ModelNotFoundError(exc.model, [*exc.tried], hint=f"{what}.{local} {advice}") from None
        got = provider.info
        if got.dimension != dimension:
            provider.close()
            raise DimensionMismatchError(
                f"{what}, {dimension}-dimensional, but here it loads {got.name!r} with dimension {got.dimension}; "
                f"{advice}",
                expected=dimension,
                got=got.dimension,
            )
        if got.fingerprint != fingerprint:
            provider.close()
            raise ModelMismatchError(
                f"{what} with fingerprint {fingerprint}, but here it loads {got.name!r} with fingerprint "
                f"{got.fingerprint} (other weights, pooling, prompts or quantisation): its vectors would not be "
                f"comparable with the stored ones; install the original model, or {advice}",
                expected=fingerprint,
                got=got.fingerprint,
            )
        return provider
