"""Where a transformer's ONNX graph comes from: shipped, cached, or exported — and int8-quantised — then checked.

:func:`ensure_onnx_graph` is the one entry point. It returns the ``.onnx`` file
a runtime should load; the onnx backend (:mod:`vecembed.providers.onnx`) calls
it, so can any other runtime that reads ONNX. In order:

1. ``model.onnx`` or ``onnx/model.onnx`` shipped in the model directory;
2. a previous export in vecembed's cache (:mod:`vecembed.artifact_cache`), keyed by the
   weights' digest and checked against its sha256 sidecar;
3. a fresh export of vecembed's own BERT encoder (:mod:`vecembed.providers.bert`,
   the torch backend's) with ``torch.onnx.export``, dynamic batch and sequence
   axes, opset :data:`EXPORT_OPSET`. The export is compared with the torch
   forward on :data:`PROBE_TEXTS` before it is cached; one that disagrees is an
   error, never a cache entry.

``quantize="int8"`` adds ONNX Runtime dynamic quantisation (int8 weights,
per-channel), cached beside the fp32 graph together with its measured
agreement with fp32 on the probe batch.

With a shipped or cached graph nothing here imports torch or transformers:
only building one does (``pip install 'vecembed[torch]'``); checking one needs
onnxruntime (``vecembed[onnx]``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed import artifact_cache as cache
from vecembed._deps import require
from vecembed.errors import InvalidInputError, ModelLoadError, ProviderUnavailableError
from vecembed.model_config import ModelConfig, load_model_config, load_tokenizer
from vecembed.pipeline import Batch, TextPipeline
from vecembed.resolve import weights_digest

__all__ = [
    "EXPORT_OPSET",
    "INT8_METHOD",
    "PROBE_TEXTS",
    "QUANTIZATIONS",
    "OnnxGraph",
    "check_runtime_options",
    "down_projections",
    "ensure_onnx_graph",
    "export_onnx",
    "graph_cache_entry",
    "graph_io",
    "probe_agreement",
    "quantize_int8",
    "run_graph",
]

log = logging.getLogger(__name__)

#: The opset of exported graphs (17: LayerNormalization is a standard op).
EXPORT_OPSET = 17
#: Bump when the exported graph changes: old cache entries are then ignored, not reused.
EXPORT_VERSION = 1
#: Minimum cosine between an export and the torch forward on :data:`PROBE_TEXTS`.
EXPORT_MIN_COSINE = 0.9999
#: Below this min cosine vs fp32 an int8 graph is refused (a per-tensor quantisation measured 0.80).
INT8_MIN_COSINE = 0.95
#: Bump when the int8 recipe changes: the graph's file name carries it, so an old graph is never reused.
#: v2: 7-bit weights (``reduce_range``) and the feed-forward output projections kept in fp32 (:func:`quantize_int8`).
INT8_VERSION = 2
#: The int8 recipe, recorded in the fingerprint of int8 vectors (it changes them).
INT8_METHOD = f"ort-dynamic-u8s8-7bit-ffn-out-fp32-v{INT8_VERSION}"
QUANTIZATIONS = (None, "int8")

#: Texts the export and the quantisation are checked on: short, long (truncated), empty, non-ASCII, numbers.
PROBE_TEXTS = (
    "A man is playing a guitar.",
    "The new movie is awesome!",
    "",
    "Zwei Hunde spielen im Schnee; 東京タワー; émigré café naïve — ¿qué tal?",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY 2 DESC LIMIT 10;",
    "3.14159 2.71828 1.41421 1e-12 0x7fffffff",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "Embeddings turn text into vectors so that similar meanings end up close together, "
    "which lets a vector database find passages by meaning rather than by exact words.",
)

#: Seconds per MB of weights for a one-off build, measured on a 2-core AMD EPYC VM: all-MiniLM-L6-v2 (87 MB)
#: exports and is checked in ~17 s, its int8 quantisation takes ~6 s. The messages round them up.
_EXPORT_S_PER_MB = 0.2
_QUANTIZE_S_PER_MB = 0.08

_SHIPPED = ("model.onnx", "onnx/model.onnx")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_HIDDEN_OUTPUTS = ("last_hidden_state", "token_embeddings")

#: Builds an onnxruntime ``InferenceSession`` for a graph file (the runtime's own options: threads, device).
SessionFactory = Callable[[Path], Any]


@dataclass(frozen=True)
class OnnxGraph:
    """An ONNX graph ready to load: where it is, and what is known about it.

    ``cached``: the file lives in vecembed's cache (a runtime that cannot load it
    may delete it and call :func:`ensure_onnx_graph` again to rebuild it); a
    shipped graph is not cached and is never touched. ``agreement``: for an int8
    graph, its min cosine with fp32 on :data:`PROBE_TEXTS`.
    """

    path: Path
    quantization: str | None = None
    cached: bool = False
    agreement: float | None = None


def ensure_onnx_graph(
    model: ModelConfig | str | os.PathLike[str],
    *,
    quantize: str | None = None,
    tokenizer: Any = None,
    name: str | None = None,
    session_factory: SessionFactory | None = None,
) -> OnnxGraph:
    """The ONNX graph of ``model`` (a :class:`~vecembed.model_config.ModelConfig` or a model directory).

    Shipped, cached, or exported now and cached (see the module docstring);
    ``quantize="int8"`` gives the int8 graph, built from the fp32 one. Building
    checks the result on :data:`PROBE_TEXTS` through ``session_factory`` (default:
    a plain CPU onnxruntime session) with ``tokenizer`` (default: the model's).
    ``name`` is what logs and errors call the model. Safe to call from several
    processes at once: files are written atomically.
    """
    if quantize not in QUANTIZATIONS:
        raise InvalidInputError(f"quantize must be None or 'int8', got {quantize!r}")
    config = model if isinstance(model, ModelConfig) else load_model_config(Path(model))
    build = {"tokenizer": tokenizer, "name": name, "session_factory": session_factory}
    if quantize is None:
        path, entry = _fp32_graph(config, keyed=False, build=build)
        return OnnxGraph(path, None, cached=entry is not None)
    # Only the int8 graph is needed: when it is cached, the fp32 path is taken unchecked (hashing 90 MB
    # would cost cold-start time for nothing); it is checked, and exported if need be, only to build int8.
    _, entry = _fp32_graph(config, keyed=True, build=None)
    if entry is None:  # pragma: no cover - keyed=True always gives an entry
        raise ProviderUnavailableError(f"no cache entry for the int8 graph of {config.path}")
    target = entry / f"model-int8-v{INT8_VERSION}.onnx"
    record = cache.is_verified(target)
    if record is None:
        fp32, _ = _fp32_graph(config, keyed=True, build=build)
        quantize_int8(config, fp32, target, **build)
        record = cache.is_verified(target) or {}
    agreement = record.get("agreement")
    return OnnxGraph(target, "int8", cached=True,
                     agreement=float(agreement) if isinstance(agreement, int | float) else None)


def check_runtime_options(quantize: str | None, threads: int | None) -> None:
    """The options every runtime over these graphs shares: ``quantize`` in :data:`QUANTIZATIONS`, a positive
    int ``threads`` (or None); anything else raises :class:`~vecembed.errors.InvalidInputError`."""
    if quantize not in QUANTIZATIONS:
        raise InvalidInputError(f"quantize must be None or 'int8', got {quantize!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0):
        raise InvalidInputError(f"threads must be a positive int, got {threads!r}")


def graph_cache_entry(model: ModelConfig | str | os.PathLike[str]) -> Path:
    """The cache folder of ``model``'s fp32 graph, where files derived from it (int8 versions) are cached.

    Keyed like the graph itself (the weights' digest, or a shipped graph's sha256), so a derived file is
    rebuilt whenever the graph it came from changes. Another runtime (the openvino backend) keeps its own
    derived files here too.
    """
    config = model if isinstance(model, ModelConfig) else load_model_config(Path(model))
    _, entry = _fp32_graph(config, keyed=True, build=None)
    if entry is None:  # pragma: no cover - keyed=True always gives an entry
        raise ProviderUnavailableError(f"no cache entry for the graph of {config.path}")
    return entry


def probe_agreement(config: ModelConfig, tokenizer: Any, forward: Any, reference: Any,
                    dimension: int) -> tuple[float, float]:
    """``(min, mean)`` cosine between two forwards' vectors of :data:`PROBE_TEXTS` through the shared pipeline."""
    a = _probe(config, tokenizer, forward, dimension)
    b = _probe(config, tokenizer, reference, dimension)
    return _min_cosine(a, b), float(np.mean(_cosines(a, b)))


def graph_io(session: Any, path: Path, hidden_size: int | None) -> tuple[tuple[str, ...], str, int]:
    """The inputs a graph takes, its token-embedding output, and the output dimension (0: unknown)."""
    inputs = [i.name for i in session.get_inputs()]
    unknown = [n for n in inputs if n not in _INPUTS]
    if unknown or "input_ids" not in inputs:
        raise ModelLoadError(
            f"{path}: graph inputs {inputs} are not a text encoder's (expected a subset of {list(_INPUTS)})",
            path=str(path),
        )
    outputs = session.get_outputs()
    by_name = {o.name: o for o in outputs}
    chosen = next((by_name[n] for n in _HIDDEN_OUTPUTS if n in by_name), None)
    if chosen is None:
        chosen = next((o for o in outputs if len(o.shape) == 3), None)
    if chosen is None:
        raise ModelLoadError(
            f"{path}: no token-embedding output (batch, seq, hidden) among {[o.name for o in outputs]}",
            path=str(path),
        )
    dim = chosen.shape[-1]
    return tuple(inputs), chosen.name, int(dim) if isinstance(dim, int) else int(hidden_size or 0)


def run_graph(session: Any, inputs: tuple[str, ...], output: str, batch: Batch) -> NDArray[Any]:
    """Token vectors ``(batch, seq, hidden)`` of a padded batch through ``session``."""
    arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
              "token_type_ids": batch.token_type_ids}
    out: NDArray[Any] = session.run([output], {name: arrays[name] for name in inputs})[0]
    return out


# -- where the graph is ----------------------------------------------------------------------------


def _shipped_graph(config: ModelConfig) -> Path | None:
    for root in dict.fromkeys((config.transformer_path, config.path)):
        for rel in _SHIPPED:
            if (root / rel).is_file():
                return root / rel
    return None


def _fp32_graph(config: ModelConfig, *, keyed: bool, build: dict[str, Any] | None) -> tuple[Path, Path | None]:
    """The fp32 graph, and the cache entry folder it or its derived files live in (None: none).

    ``keyed``: give a shipped graph a cache entry too (where its int8 version goes).
    ``build``: export the graph when the cache has no verified one, with these arguments of
    :func:`export_onnx`; ``None``: return the cached graph's path unchecked.
    """
    shipped = _shipped_graph(config)
    if shipped is not None:
        key = "shipped-" + cache.file_sha256(shipped)[:32] if keyed else ""
        return shipped, (cache.entry_dir("onnx", key) if key else None)
    digest = weights_digest(config.transformer_path).split(":", 1)[-1]
    entry = cache.entry_dir("onnx", f"{digest}-v{EXPORT_VERSION}-opset{EXPORT_OPSET}")
    target = entry / "model.onnx"
    if build is not None and cache.is_verified(target) is None:
        export_onnx(config, target, **build)
    return target, entry


# -- building: export and quantisation, each checked before it is cached -----------------------------


def export_onnx(config: ModelConfig, target: Path, *, tokenizer: Any = None, name: str | None = None,
                session_factory: SessionFactory | None = None) -> float:
    """Export ``config``'s transformer to ``target`` (fp32) and cache it if it agrees with the torch forward.

    Returns the agreement (min cosine on :data:`PROBE_TEXTS`); one below
    :data:`EXPORT_MIN_COSINE` raises and caches nothing.
    """
    torch = require("torch", "torch", (
        f"exporting the model to ONNX once (it ships no model.onnx and the cache {cache.cache_dir()} holds no "
        "export; or run `vecembed export` where torch is and copy that cache here as $VECEMBED_CACHE)"))
    from vecembed.providers import _onnx_traced_bert

    name = name or str(config.path)
    module, reference = _onnx_traced_bert.build(config, torch)
    log.info("exporting %s to ONNX once: %s, then every load reuses %s", name,
             _duration_hint(config.transformer_path, _EXPORT_S_PER_MB), target)
    with cache.atomic_path(target) as tmp:
        ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]], dtype=torch.long)
        mask = (ids != 0).long()
        types = torch.zeros_like(ids)
        dynamic = {axis: {0: "batch", 1: "sequence"} for axis in (*_INPUTS, "last_hidden_state")}
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # the legacy TorchScript exporter: deterministic, no onnxscript needed, and the graph it
            # writes is the classic BERT pattern that ONNX Runtime's attention fusions recognise
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (ids, mask, types), str(tmp),
                input_names=list(_INPUTS), output_names=["last_hidden_state"],
                dynamic_axes=dynamic, opset_version=EXPORT_OPSET, do_constant_folding=True, dynamo=False,
            )
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config)
        forward, dim = _session_forward(config, tmp, session_factory)
        agreement = _min_cosine(_probe(config, tokenizer, forward, dim), _probe(config, tokenizer, reference, dim))
        if agreement < EXPORT_MIN_COSINE:
            raise ProviderUnavailableError(
                f"the ONNX export of {name} disagrees with the torch forward "
                f"(min cosine {agreement:.6f} < {EXPORT_MIN_COSINE}); nothing was cached"
            )
    cache.write_checksum(target, agreement_vs_torch=agreement, opset=EXPORT_OPSET, model=name,
                         torch=str(torch.__version__))
    return agreement


def quantize_int8(config: ModelConfig, fp32: Path, target: Path, *, tokenizer: Any = None, name: str | None = None,
                  session_factory: SessionFactory | None = None) -> float:
    """Quantise ``fp32`` to int8 into ``target`` and cache it if it agrees with fp32.

    The recipe (:data:`INT8_METHOD`) gives the same vectors on every x86 CPU, with or without VNNI:

    - dynamic int8 of the MatMul weights, per channel, with **7-bit weights** (``reduce_range``).
      Without VNNI, onnxruntime's u8s8 kernels add pairs of u8×s8 products in a saturating int16
      (``vpmaddubsw``): with 8-bit weights that overflows (measured on an AVX2-only CPU: STS-B Spearman
      -0.28 points, mean cosine 0.9913, min 0.961). 255·64·2 < 2^15, so 7-bit weights cannot overflow,
      and the integer results are the ones a VNNI CPU computes;
    - the feed-forward output projections (the MatMuls that project *down*, from the wide GELU output)
      stay fp32: per-tensor dynamic quantisation of the GELU output's outliers is the largest error
      source. Measured on STS-B dev (all-MiniLM-L6-v2, mean cosine to fp32): every MatMul int8 0.9923,
      without the attention output 0.9925, without Q/K/V 0.9938, without the FFN input 0.9949, without
      the FFN output **0.9959** (Spearman 0.8681 vs fp32 0.8672).

    Returns the agreement (min cosine on :data:`PROBE_TEXTS`, recorded in the sidecar); one below
    :data:`INT8_MIN_COSINE` raises and caches nothing.
    """
    require("onnx", "onnx", "int8 quantisation")
    quantization = require("onnxruntime.quantization", "onnx", "int8 quantisation")
    name = name or str(config.path)
    log.info("quantising %s to int8 once: %s, then every load reuses %s", name,
             _duration_hint(fp32, _QUANTIZE_S_PER_MB), target)
    with cache.atomic_path(target) as tmp, _root_logger_untouched():
        quantization.quantize_dynamic(
            str(fp32), str(tmp), per_channel=True, reduce_range=True, weight_type=quantization.QuantType.QInt8,
            # MatMul weights only: the embedding Gather stays fp32 (measured on STS-B: closer to fp32
            # — mean cosine 0.9933 vs 0.9930 — and faster, no dequantise on lookup)
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=down_projections(fp32),
        )
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config)
        got_fwd, dim = _session_forward(config, tmp, session_factory)
        ref_fwd, _ = _session_forward(config, fp32, session_factory)
        agreement = _min_cosine(_probe(config, tokenizer, got_fwd, dim), _probe(config, tokenizer, ref_fwd, dim))
        if agreement < INT8_MIN_COSINE:
            raise ProviderUnavailableError(
                f"int8 quantisation of {name} disagrees with fp32 too much "
                f"(min cosine {agreement:.4f} < {INT8_MIN_COSINE}); use quantize=None"
            )
    cache.write_checksum(target, agreement=agreement, source=cache.file_sha256(fp32), recipe=INT8_METHOD)
    return agreement


def down_projections(graph: Path) -> list[str]:
    """Names of the MatMul nodes of ``graph`` whose weight projects down (more input than output features).

    In a BERT-family encoder these are the feed-forward output projections (``intermediate → hidden``),
    found by the weight's shape rather than by node names, which differ between exporters.
    """
    onnx = require("onnx", "onnx", "int8 quantisation")
    model = onnx.load(str(graph), load_external_data=False)
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names: list[str] = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2:
            continue
        shape = shapes.get(node.input[1])
        if shape is not None and len(shape) == 2 and shape[0] > shape[1]:
            names.append(node.name)
    return names


def _duration_hint(weights: Path, seconds_per_mb: float) -> str:
    """"about 20 s …" for a one-off build over ``weights`` (a file, or a folder of weight files), from its size."""
    try:
        files = [weights] if weights.is_file() else [
            f for f in weights.iterdir() if f.suffix in (".safetensors", ".bin", ".onnx") and f.is_file()]
        megabytes = sum(f.stat().st_size for f in files) / 1e6
    except OSError:
        megabytes = 0.0
    if not megabytes:
        return "this takes a while"
    seconds = max(5, 5 * math.ceil(megabytes * seconds_per_mb / 5))
    spent = f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"
    return f"about {spent} on 2 CPU cores"


class _DropRecordsFrom(logging.Filter):
    def __init__(self, *packages: str) -> None:
        super().__init__()
        self.markers = tuple(f"{os.sep}{p}{os.sep}" for p in packages)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(marker in record.pathname for marker in self.markers)


@contextlib.contextmanager
def _root_logger_untouched() -> Iterator[None]:
    """Run third-party code that logs through the *root* logger without it printing or configuring logging.

    onnxruntime's quantiser calls ``logging.warning(...)`` ("Please consider to run pre-processing before
    quantization"): with no root handler that runs ``basicConfig()``, which leaves a handler on the user's root
    logger so that their own records start printing. Here a NullHandler stands in for the duration, the
    records from onnxruntime and onnx are dropped, and the root logger is left exactly as it was.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet, stand_in = _DropRecordsFrom("onnxruntime", "onnx"), logging.NullHandler()
    root.addFilter(quiet)
    if not handlers:
        root.addHandler(stand_in)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _cpu_session(path: Path) -> Any:
    ort = require("onnxruntime", "onnx", "checking an ONNX graph")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _session_forward(config: ModelConfig, path: Path, session_factory: SessionFactory | None) -> tuple[Any, int]:
    """A forward function over a fresh session on ``path`` (for checking a build), and its dimension."""
    session = (session_factory or _cpu_session)(path)
    inputs, output, dim = graph_io(session, path, config.hidden_size)
    return functools.partial(run_graph, session, inputs, output), dim


def _probe(config: ModelConfig, tokenizer: Any, forward: Any, dimension: int) -> NDArray[np.float32]:
    """Probe vectors through the shared pipeline (normalised, so cosine is a dot product)."""
    pipe = TextPipeline(
        tokenizer, forward, dimension=dimension, max_tokens=config.max_seq_length,
        pooling=config.pooling, normalize=True, batch_size=4,
    )
    try:
        return pipe.embed(list(PROBE_TEXTS))
    finally:
        pipe.close()


def _cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    # both sides are L2-normalised rows (the probe pipelines normalise); an all-zero row counts as agreeing
    cos = np.sum(a * b, axis=1)
    zero = (np.linalg.norm(a, axis=1) < 1e-6) & (np.linalg.norm(b, axis=1) < 1e-6)
    out: NDArray[np.float32] = np.where(zero, np.float32(1.0), cos).astype(np.float32)
    return out


def _min_cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    return float(_cosines(a, b).min())
