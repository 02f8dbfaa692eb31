"""The table of backends by name, :func:`load_provider`, and the one rule for the default backend.

Backends are registered as import strings and imported only when asked for, so
``import vecembed`` never pulls in torch or onnxruntime.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from vecembed._deps import importable
from vecembed.errors import InvalidInputError, MissingDependencyError, UnknownProviderError
from vecembed.protocol import EmbeddingProvider

__all__ = [
    "AUTO",
    "PROVIDERS",
    "UnknownProviderError",
    "auto_backend",
    "available_providers",
    "default_backend",
    "load_provider",
    "provider_class",
]

#: name -> "module:Class". The extra that a backend needs is checked when its provider is built.
PROVIDERS: dict[str, str] = {
    "torch": "vecembed.providers.torch:TorchProvider",
    "onnx": "vecembed.providers.onnx:OnnxProvider",
    "openvino": "vecembed.providers.openvino:OpenVinoProvider",
    "gguf": "vecembed.providers.gguf:GgufProvider",
    "static": "vecembed.providers.static:StaticProvider",
    "mock": "vecembed.providers.mock:MockProvider",
    "remote": "vecembed.providers.remote:RemoteProvider",
}

#: The name that asks :func:`auto_backend` to choose (only when asked: the default stays :func:`default_backend`).
AUTO = "auto"

log = logging.getLogger(__name__)


def available_providers() -> list[str]:
    """The backend names :func:`load_provider` accepts."""
    return sorted(PROVIDERS)


def default_backend() -> str:
    """The backend used when none is named: ``onnx`` when onnxruntime is installed, else ``torch``.

    The one place this choice is made: :func:`load_provider` without a name, the
    CLI without ``--backend`` and the demo all ask here. Only the runtime is
    checked (a look-up, no import): torch alone can run every model, onnxruntime
    is the faster choice when present. With neither installed it raises
    :class:`~vecembed.errors.MissingDependencyError` naming the ``onnx`` extra.
    """
    if importable("onnxruntime"):
        return "onnx"
    if importable("torch"):
        return "torch"
    raise MissingDependencyError("onnxruntime", "onnx", "the default backend")


def auto_backend(options: dict[str, Any]) -> tuple[str, str]:
    """The backend ``load_provider("auto", **options)`` picks on this CPU, and why (one sentence).

    Only int8 on the CPU is chosen by CPU: with int8 dot-product instructions (VNNI/AMX, as oneDNN sees
    them) and OpenVINO installed, ``openvino`` int8 (measured the fastest backend there); without them
    ``onnx`` int8 (measured faster than OpenVINO int8 on AVX2 code paths). Everything else — fp32, another
    device, a missing runtime — gets :func:`default_backend`. Never raises for the CPU's sake.
    """
    from vecembed.cpu import onednn_cpu_info

    fallback = default_backend()
    if options.get("quantize") != "int8":
        return fallback, f"no int8 asked for: the default backend {fallback!r}"
    if str(options.get("device", "auto")).lower() not in {"auto", "cpu"}:
        return fallback, f"device {options['device']!r} is not the CPU: the default backend {fallback!r}"
    cpu = onednn_cpu_info()
    if cpu.int8_dot_product and importable("openvino") and importable("nncf"):
        return "openvino", f"this CPU has int8 dot-product instructions ({cpu.isa}): OpenVINO int8 is fastest"
    if importable("onnxruntime"):
        reason = "no VNNI/AMX on this CPU" if not cpu.int8_dot_product else "OpenVINO/NNCF not installed"
        return "onnx", f"{reason} ({cpu.isa}): onnx int8"
    return fallback, f"onnxruntime is not installed: the default backend {fallback!r}"


def provider_class(name: str) -> type[Any]:
    """The provider class registered under ``name`` (imports its module)."""
    try:
        target = PROVIDERS[name]
    except (KeyError, TypeError):
        raise UnknownProviderError(
            f"unknown backend {name!r}; valid backends: {', '.join(available_providers())} (or {AUTO!r})"
        ) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_provider(
    name: str | None = None, /, *, cache: Any = None, cache_max_bytes: int | None = None, **options: Any
) -> EmbeddingProvider:
    """Build the provider registered as ``name`` with backend ``options``.

    ``load_provider("onnx", model="sentence-transformers/all-MiniLM-L6-v2")``;
    see each provider class for its options. Without a name the backend is
    :func:`default_backend`'s; ``"auto"`` lets :func:`auto_backend` choose by CPU and logs its choice
    and why. Unknown names list the valid ones; a missing
    extra raises :class:`~vecembed.errors.MissingDependencyError`.
    ``cache=DIR`` (or ``True`` for the default directory) wraps the provider in a
    :class:`~vecembed.embedding_cache.CachedProvider` keyed by its fingerprint;
    ``cache_max_bytes`` bounds its size.
    """
    backend = default_backend() if name is None else name
    if backend == AUTO:
        backend, why = auto_backend(options)
        log.info("backend='auto' chose %r: %s", backend, why)
    cls = provider_class(backend)
    accepted = _options_of(cls)
    unknown = sorted(set(options) - accepted) if accepted is not None else []
    if unknown:
        # A misspelt option would otherwise surface as a bare TypeError from the constructor.
        raise InvalidInputError(
            f"backend {backend!r} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(sorted(accepted or ())) or 'none'}; nothing was loaded"
        )
    provider: EmbeddingProvider = cls(**options)
    if cache is None or cache is False:
        return provider
    from vecembed.embedding_cache import cached

    try:
        return cached(provider, cache, max_bytes=cache_max_bytes)
    except BaseException:
        provider.close()
        raise


def _options_of(cls: type[Any]) -> set[str] | None:
    """The keyword options ``cls`` accepts (following ``**kwargs`` up to the base classes), None when any goes."""
    names: set[str] = set()
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]  # less self
        names |= {p.name for p in params if p.kind in keyword}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return names
    return None
