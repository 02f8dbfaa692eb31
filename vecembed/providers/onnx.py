"""OnnxProvider: the shared text pipeline with the transformer forward pass on ONNX Runtime.

Where the graph comes from, in order:

1. ``model.onnx`` or ``onnx/model.onnx`` shipped in the model directory;
2. a previous export in vecembed's cache (:mod:`vecembed.cache`), keyed by the
   weights' digest and checked against its sha256 sidecar;
3. a fresh export of vecembed's own BERT encoder (:mod:`vecembed.providers.bert`,
   the torch backend's) with ``torch.onnx.export``, dynamic batch and sequence
   axes, opset 17. The export is compared with the torch forward on a probe
   batch before it is cached; one that disagrees is an error, never a cache entry.

``quantize="int8"`` adds ONNX Runtime dynamic quantisation (int8 weights,
per-channel), cached beside the fp32 graph together with its measured
agreement with fp32 on the probe batch.

With a shipped or cached graph nothing here imports torch or transformers:
loading and embedding need only onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed import cache
from vecembed._deps import require
from vecembed.errors import InvalidInputError, ModelLoadError, ProviderUnavailableError
from vecembed.pipeline import Batch, TextPipeline
from vecembed.providers.transformer import TransformerProvider
from vecembed.resolve import weights_digest

__all__ = ["EXPORT_OPSET", "PROBE_TEXTS", "OnnxProvider", "build_counts", "physical_cores"]

log = logging.getLogger("vecembed")

#: The opset of exported graphs (17: LayerNormalization is a standard op).
EXPORT_OPSET = 17
#: Bump when the exported graph changes: old cache entries are then ignored, not reused.
EXPORT_VERSION = 1
#: Minimum cosine between an export and the torch forward on :data:`PROBE_TEXTS`.
EXPORT_MIN_COSINE = 0.9999
#: Below this min cosine vs fp32 an int8 graph is refused (a per-tensor quantisation measured 0.80).
INT8_MIN_COSINE = 0.95
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

_SHIPPED = ("model.onnx", "onnx/model.onnx")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_HIDDEN_OUTPUTS = ("last_hidden_state", "token_embeddings")

_build_lock = threading.Lock()
_builds: dict[str, int] = {"export": 0, "quantize": 0}


def build_counts() -> dict[str, int]:
    """How many ONNX exports and int8 quantisations this process has built (the cache avoids repeats)."""
    with _build_lock:
        return dict(_builds)


def _count(kind: str) -> None:
    with _build_lock:
        _builds[kind] += 1


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings counted once); at least 1."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)
    cores: set[str] = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(len(cores), 1)


def _min_cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    # both sides are L2-normalised rows (the probe pipelines normalise); an all-zero row counts as agreeing
    cos = np.sum(a * b, axis=1)
    zero = (np.linalg.norm(a, axis=1) < 1e-6) & (np.linalg.norm(b, axis=1) < 1e-6)
    return float(np.where(zero, 1.0, cos).min())


def _graph_io(session: Any, path: Path, hidden_size: int | None) -> tuple[tuple[str, ...], str, int]:
    """The inputs a graph takes, its token-embedding output, and the output dimension."""
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


def _run(session: Any, inputs: tuple[str, ...], output: str, batch: Batch) -> NDArray[Any]:
    arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
              "token_type_ids": batch.token_type_ids}
    out: NDArray[Any] = session.run([output], {name: arrays[name] for name in inputs})[0]
    return out


class OnnxProvider(TransformerProvider):
    """Embeddings on ONNX Runtime (``pip install 'vecembed[onnx]'``; exporting a model also needs ``[torch]``).

    Options beyond :class:`~vecembed.providers.transformer.TransformerProvider`'s:
    ``quantize`` (``None`` or ``"int8"``: dynamic int8 weights, per-channel),
    ``device`` (``auto``: the CUDA execution provider when onnxruntime has it,
    else CPU; ``cpu``; ``cuda``), ``threads`` (intra-op threads; default the
    number of physical cores). Sessions are shared by all threads: ONNX
    Runtime's ``run`` is thread-safe.
    """

    backend = "onnx"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        quantize: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        **options: Any,
    ) -> None:
        if quantize not in QUANTIZATIONS:
            raise InvalidInputError(f"quantize must be None or 'int8', got {quantize!r}")
        if threads is not None and (not isinstance(threads, int) or threads <= 0):
            raise InvalidInputError(f"threads must be a positive int, got {threads!r}")
        self._ort: Any = require("onnxruntime", "onnx", "the onnx backend")
        self._quantize = quantize
        self._threads = threads or physical_cores()
        if not isinstance(device, str) or (device.startswith("cuda:") and not device[5:].isdigit()):
            raise InvalidInputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
        self._ep = self._pick_execution_provider(device)
        self._device_id = int(device[5:]) if device.startswith("cuda:") else 0
        self._session: Any = None
        self._input_names: tuple[str, ...] = ()
        self._output_name = ""
        self._agreement_value: float | None = None
        self.model_file: Path | None = None
        # 32 texts / 4096 padded tokens per run: on a 2-core CPU none of 16/2048, 64/8192, 128/16384 did
        # better (within noise); a smaller token budget keeps the activations of a long batch in cache.
        options.setdefault("batch_size", 32)
        options.setdefault("max_batch_tokens", 4096)
        super().__init__(model, **options)

    # -- execution provider and session --------------------------------------------------------

    def _pick_execution_provider(self, device: str) -> str:
        available = set(self._ort.get_available_providers())
        if device == "auto":
            return "CUDAExecutionProvider" if "CUDAExecutionProvider" in available else "CPUExecutionProvider"
        kind = device.split(":")[0]
        if kind == "cpu":
            return "CPUExecutionProvider"
        if kind == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise ProviderUnavailableError(
                    f"device {device!r} was asked for but onnxruntime has no CUDA execution provider here "
                    f"(available: {', '.join(sorted(available))}); install onnxruntime-gpu"
                )
            return "CUDAExecutionProvider"
        raise InvalidInputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")

    def _new_session(self, path: Path) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = self._threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers: list[Any] = ["CPUExecutionProvider"]
        if self._ep == "CUDAExecutionProvider":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self._device_id}))
        return ort.InferenceSession(str(path), so, providers=providers)

    def _use_session(self, session: Any, path: Path) -> int:
        self._input_names, self._output_name, dim = _graph_io(session, path, self.config.hidden_size)
        self._session = session
        self.model_file = path
        return dim

    # -- the backend hooks ---------------------------------------------------------------------

    def _load_backend(self) -> int:
        def locate() -> tuple[Path, Path | None]:
            if self._quantize == "int8":
                path = self._int8_graph()
                return path, path.parent
            return self._fp32_graph()

        path, entry = locate()
        try:
            session = self._new_session(path)
        except Exception as exc:
            if entry is None or path.parent != entry:
                raise ModelLoadError(f"onnxruntime could not load {path}: {exc}", path=str(path)) from exc
            # A cached file that passed its checksum yet does not load (e.g. a sidecar rewritten by hand):
            # rebuild it once rather than fail forever.
            log.warning("cached ONNX graph %s does not load (%s); rebuilding it", path, exc)
            path.unlink(missing_ok=True)
            path, entry = locate()
            try:
                session = self._new_session(path)
            except Exception as again:
                raise ModelLoadError(f"onnxruntime could not load {path}, even rebuilt: {again}",
                                     path=str(path)) from again
        dim = self._use_session(session, path)
        if dim <= 0:
            raise ModelLoadError(f"{path}: cannot tell the output dimension", path=str(path))
        return dim

    def _forward(self, batch: Batch) -> NDArray[Any]:
        return _run(self._session, self._input_names, self._output_name, batch)

    def _device_name(self) -> str:
        return "cuda" if self._ep == "CUDAExecutionProvider" else "cpu"

    def _quantization(self) -> str | None:
        return self._quantize

    def _agreement(self) -> float | None:
        return self._agreement_value

    def close(self) -> None:
        if not self._closed:
            self._session = None
        super().close()

    # -- where the graph comes from ------------------------------------------------------------

    def _shipped_graph(self) -> Path | None:
        for root in dict.fromkeys((self.config.transformer_path, self.config.path)):
            for rel in _SHIPPED:
                if (root / rel).is_file():
                    return root / rel
        return None

    def _fp32_graph(self, *, build: bool = True) -> tuple[Path, Path | None]:
        """The fp32 graph, and the cache entry folder derived files go to (None: nothing cached for it).

        With ``build=False`` the cached graph's path is returned unchecked (used when only the int8
        graph is needed and it is already cached: hashing 90 MB would cost cold-start time for nothing).
        """
        shipped = self._shipped_graph()
        if shipped is not None:
            key = "shipped-" + cache.file_sha256(shipped)[:32] if self._quantize else ""
            return shipped, (cache.entry_dir("onnx", key) if key else None)
        digest = weights_digest(self.config.transformer_path).split(":", 1)[-1]
        entry = cache.entry_dir("onnx", f"{digest}-v{EXPORT_VERSION}-opset{EXPORT_OPSET}")
        target = entry / "model.onnx"
        if build and cache.is_verified(target) is None:
            self._export(target)
        return target, entry

    def _int8_graph(self) -> Path:
        fp32, entry = self._fp32_graph(build=False)
        if entry is None:  # pragma: no cover - _fp32_graph gives an entry whenever quantize is set
            raise RuntimeError("no cache entry for the int8 graph")
        target = entry / "model-int8.onnx"
        record = cache.is_verified(target)
        if record is None:
            fp32, _ = self._fp32_graph()  # now checked (and exported if need be): it is the source
            self._quantize_int8(fp32, target)
            record = cache.is_verified(target) or {}
        agreement = record.get("agreement")
        self._agreement_value = float(agreement) if isinstance(agreement, int | float) else None
        return target

    # -- building: export and quantisation -----------------------------------------------------

    def _probe(self, forward: Any, dimension: int) -> NDArray[np.float32]:
        """Probe vectors through the shared pipeline (normalised, so cosine is a dot product)."""
        pipe = TextPipeline(
            self.tokenizer, forward, dimension=dimension, max_tokens=self.config.max_seq_length,
            pooling=self.config.pooling, normalize=True, batch_size=4,
        )
        try:
            return pipe.embed(list(PROBE_TEXTS))
        finally:
            pipe.close()

    def _session_forward(self, path: Path) -> tuple[Any, int]:
        """A forward function over a fresh session on ``path`` (for checking a build), and its dimension."""
        session = self._new_session(path)
        inputs, output, dim = _graph_io(session, path, self.config.hidden_size)
        return functools.partial(_run, session, inputs, output), dim

    def _export(self, target: Path) -> None:
        torch = require("torch", "torch", "exporting the model to ONNX (it ships no model.onnx)")
        module, reference = self._exportable(torch)
        log.info("exporting %s to ONNX (once; cached at %s)", self.resolved.name, target)
        with cache.atomic_path(target) as tmp:
            ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]], dtype=torch.long)
            mask = (ids != 0).long()
            types = torch.zeros_like(ids)
            dynamic = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                # the legacy TorchScript exporter: deterministic, no onnxscript needed, and the graph it
                # writes is the classic BERT pattern that ONNX Runtime's attention fusions recognise
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module, (ids, mask, types), str(tmp),
                    input_names=list(_INPUTS), output_names=["last_hidden_state"],
                    dynamic_axes=dynamic, opset_version=EXPORT_OPSET, do_constant_folding=True, dynamo=False,
                )
            forward, dim = self._session_forward(tmp)
            got = self._probe(forward, dim)
            want = self._probe(reference, dim)
            agreement = _min_cosine(got, want)
            if agreement < EXPORT_MIN_COSINE:
                raise ProviderUnavailableError(
                    f"the ONNX export of {self.resolved.name} disagrees with the torch forward "
                    f"(min cosine {agreement:.6f} < {EXPORT_MIN_COSINE}); nothing was cached"
                )
        _count("export")
        cache.write_checksum(target, agreement_vs_torch=agreement, opset=EXPORT_OPSET, model=self.resolved.name,
                             torch=str(torch.__version__))

    def _exportable(self, torch: Any) -> tuple[Any, Any]:
        """An export-friendly module for the model, and the torch forward it must agree with."""
        from vecembed.providers import _onnx_export

        return _onnx_export.build(self.config, torch)

    def _quantize_int8(self, fp32: Path, target: Path) -> None:
        require("onnx", "onnx", "int8 quantisation")
        quantization = require("onnxruntime.quantization", "onnx", "int8 quantisation")
        log.info("quantising %s to int8 (once; cached at %s)", fp32, target)
        with cache.atomic_path(target) as tmp:
            quantization.quantize_dynamic(
                str(fp32), str(tmp), per_channel=True, weight_type=quantization.QuantType.QInt8,
                # MatMul weights only: the embedding Gather stays fp32 (measured on STS-B: closer to fp32
                # — mean cosine 0.9933 vs 0.9930 — and faster, no dequantise on lookup)
                op_types_to_quantize=["MatMul"],
            )
            got_fwd, dim = self._session_forward(tmp)
            ref_fwd, _ = self._session_forward(fp32)
            agreement = _min_cosine(self._probe(got_fwd, dim), self._probe(ref_fwd, dim))
            if agreement < INT8_MIN_COSINE:
                raise ProviderUnavailableError(
                    f"int8 quantisation of {self.resolved.name} disagrees with fp32 too much "
                    f"(min cosine {agreement:.4f} < {INT8_MIN_COSINE}); use quantize=None"
                )
        _count("quantize")
        cache.write_checksum(target, agreement=agreement, source=cache.file_sha256(fp32))
