"""OnnxProvider: the shared text pipeline with the transformer forward pass on ONNX Runtime.

This module runs a graph: it picks the execution provider, builds the session
and feeds it padded batches. Where the graph comes from — shipped with the
model, cached, or exported from the transformer and checked, optionally int8 —
is :mod:`vecembed.providers.onnx_build`'s job (:func:`~vecembed.providers.onnx_build.ensure_onnx_graph`).

With a shipped or cached graph nothing here imports torch or transformers:
loading and embedding need only onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from vecembed._deps import require
from vecembed.cpu import physical_cores  # re-exported: vecembed.providers.onnx.physical_cores stays importable
from vecembed.errors import InvalidInputError, ModelLoadError, ProviderUnavailableError
from vecembed.pipeline import Batch
from vecembed.providers.onnx_build import (
    INT8_METHOD,
    OnnxGraph,
    check_runtime_options,
    ensure_onnx_graph,
    graph_io,
    run_graph,
)
from vecembed.providers.transformer import TransformerProvider

__all__ = ["OnnxProvider", "physical_cores"]

log = logging.getLogger(__name__)


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
        check_runtime_options(quantize, threads)
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
        self._input_names, self._output_name, dim = graph_io(session, path, self.config.hidden_size)
        self._session = session
        self.model_file = path
        return dim

    # -- the backend hooks ---------------------------------------------------------------------

    def _graph(self) -> OnnxGraph:
        # the graph is checked, when it is built, through this provider's own sessions (device, threads)
        return ensure_onnx_graph(self.config, quantize=self._quantize, tokenizer=self.tokenizer,
                                 name=self.resolved.name, session_factory=self._new_session)

    def _load_backend(self) -> int:
        graph = self._graph()
        try:
            session = self._new_session(graph.path)
        except Exception as exc:
            if not graph.cached:
                raise ModelLoadError(f"onnxruntime could not load {graph.path}: {exc}", path=str(graph.path)) from exc
            # A cached file that passed its checksum yet does not load (e.g. a sidecar rewritten by hand):
            # rebuild it once rather than fail forever.
            log.warning("cached ONNX graph %s does not load (%s); rebuilding it", graph.path, exc)
            graph.path.unlink(missing_ok=True)
            graph = self._graph()
            try:
                session = self._new_session(graph.path)
            except Exception as again:
                raise ModelLoadError(f"onnxruntime could not load {graph.path}, even rebuilt: {again}",
                                     path=str(graph.path)) from again
        self._agreement_value = graph.agreement
        dim = self._use_session(session, graph.path)
        if dim <= 0:
            raise ModelLoadError(f"{graph.path}: cannot tell the output dimension", path=str(graph.path))
        return dim

    def _forward(self, batch: Batch) -> NDArray[Any]:
        return run_graph(self._session, self._input_names, self._output_name, batch)

    def _device_name(self) -> str:
        return "cuda" if self._ep == "CUDAExecutionProvider" else "cpu"

    def _quantization(self) -> str | None:
        return self._quantize

    def _fingerprint_extra(self) -> dict[str, Any]:
        extra = super()._fingerprint_extra()
        if self._quantize == "int8":
            # the int8 recipe changes the vectors (fp32 is the same space on every runtime: nothing added)
            extra["int8_method"] = INT8_METHOD
        return extra

    def _agreement(self) -> float | None:
        return self._agreement_value

    def close(self) -> None:
        if not self._closed:
            self._session = None
        super().close()
