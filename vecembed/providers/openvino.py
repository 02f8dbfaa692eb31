"""OpenVinoProvider: the shared text pipeline with the transformer forward pass on OpenVINO.

OpenVINO reads ONNX directly, so this backend runs the very graph the onnx
backend runs: :func:`~vecembed.providers.onnx_build.ensure_onnx_graph` finds it
(shipped, cached, or exported once and checked — the check runs here on
OpenVINO, so no onnxruntime is needed). ``quantize="int8"`` adds an NNCF
post-training (static) quantisation of that graph, calibrated on real sentences
(:func:`calibration_texts`), checked against fp32 on the probe texts and cached
as OpenVINO IR in the graph's own cache folder (:func:`~vecembed.providers.onnx_build.graph_cache_entry`).

At run time nothing here imports torch, transformers, onnxruntime or optimum:
loading and embedding need openvino, tokenizers and numpy (building int8 once
also needs nncf; both come with ``pip install 'vecembed[openvino]'``).

Which backend is faster depends on the CPU: measured on a 2-core AMD EPYC with
AVX-512 VNNI and BF16 (docs/performance.md, "Speed and quality"), OpenVINO int8 was the
fastest backend; without int8 dot-product instructions (VNNI, AMX) it falls
back to AVX2 code and was slower than ONNX Runtime int8 and than its own fp32
(:data:`~vecembed.cpu.INT8_DOT_PRODUCT_FLAGS`; the provider warns). ``benchmarks/run.py``
prints the CPU's flags and tells on yours.

Which int8 recipe is built depends on the CPU too (:func:`int8_recipe`). Both keep
the feed-forward output projections in fp32 (NNCF's ignored scope; the same
MatMuls the onnx backend keeps, :func:`~vecembed.providers.onnx_build.down_projections`):
quantising their input, the GELU output with its outliers, is the largest error.
On a CPU without VNNI/AMX, OpenVINO's int8 kernels add u8×s8 products in
saturating int16 (``vpmaddubsw``) and 8-bit weights overflow it, so there NNCF's
``overflow_fix`` (7-bit weights in every layer) is used as well; with VNNI/AMX
the full 8-bit weights are kept. Measured on all-MiniLM-L6-v2 (mean cosine to fp32
on the probe texts / on STS-B dev; STS-B Spearman, fp32 0.8672), VNNI CPU natively
and with oneDNN capped to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``):

- NNCF's default, everything int8 (v1): VNNI 0.9912; AVX2 0.9878 (refused) / 0.9958, 0.8646;
- overflow fix, everything int8: 0.9874 / 0.9955 on both (7-bit weights: no saturation, same numbers);
- default, FFN output fp32 (**VNNI recipe**): VNNI 0.9978 / 0.9991, 0.8669; AVX2 0.9951 / 0.9970, 0.8646;
- overflow fix, FFN output fp32 (**AVX2 recipe**): 0.9947 / 0.9977, 0.8675 on both.

The two recipes are cached under different names and carry different fingerprints,
so neither is ever reused for the other.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vecembed import artifact_cache as cache
from vecembed._deps import require
from vecembed.cpu import INT8_DOT_PRODUCT_FLAGS, CpuInfo, onednn_cpu_info, physical_cores
from vecembed.errors import InvalidInputError, ModelLoadError, ProviderUnavailableError
from vecembed.pipeline import Batch, TextPipeline
from vecembed.progress import progress_enabled
from vecembed.providers.onnx_build import (
    check_runtime_options,
    down_projections,
    ensure_onnx_graph,
    graph_cache_entry,
    graph_io,
    probe_agreement,
    run_graph,
)
from vecembed.providers.transformer import TransformerProvider

__all__ = [
    "INT8_DOT_PRODUCT_FLAGS",
    "INT8_MIN_MEAN_COSINE",
    "OpenVinoProvider",
    "calibration_texts",
    "int8_recipe",
    "quantize_int8_openvino",
]

log = logging.getLogger(__name__)

#: Below this mean cosine vs fp32 on the probe texts an int8 model is refused (nothing is cached).
INT8_MIN_MEAN_COSINE = 0.99
#: Bump when the int8 recipe changes (calibration set, NNCF options): old cache entries are then ignored.
#: v2: the recipe depends on the CPU (:func:`int8_recipe`); a refusal is recorded so the next load fails at once.
INT8_VERSION = 2
#: The calibration set (``vecembed/data/calibration.txt``): 250 sentences, 10 of three words or fewer, and 40
#: paragraphs of consecutive sentences (~1,000 characters: long inputs have activation ranges of their own).
#: 300 items is NNCF's default subset size; the build takes ~20-40 s for all-MiniLM-L6-v2 on 2 cores.
CALIBRATION_SENTENCES = 260
CALIBRATION_PARAGRAPHS = 40
_DEVICES = {"auto": "CPU", "cpu": "CPU", "gpu": "GPU"}
#: The int8 recipes (both keep the FFN output projections fp32): NNCF's default overflow handling (on the first
#: layer only) for CPUs with VNNI/AMX, and the overflow fix everywhere (7-bit weights) for the others.
RECIPE_DEFAULT = "nncf-static-ffn-out-fp32"
RECIPE_OVERFLOW_FIX = "nncf-static-ffn-out-fp32-overflow-fix"


def int8_recipe(device: str = "CPU", cpu: CpuInfo | None = None) -> str:
    """Which NNCF int8 recipe suits ``device`` on this CPU (as oneDNN sees it: ``ONEDNN_MAX_CPU_ISA`` counts).

    :data:`RECIPE_OVERFLOW_FIX` where the CPU has no int8 dot-product instructions (VNNI/AMX) or its flags
    cannot be read — 7-bit weights, so the saturating AVX2 int8 path cannot overflow; :data:`RECIPE_DEFAULT`
    elsewhere (and on a GPU), where full 8-bit weights are closer to fp32.
    """
    if device != "CPU":
        return RECIPE_DEFAULT
    cpu = cpu if cpu is not None else onednn_cpu_info()
    return RECIPE_DEFAULT if cpu.int8_dot_product else RECIPE_OVERFLOW_FIX


def calibration_texts() -> list[str]:
    """The int8 calibration set: STS Benchmark *train* sentences shipped in ``vecembed/data/calibration.txt``.

    One text a line; source, licence and how it was selected in ``vecembed/data/README.md``. No sentence of
    the dev split (which the tests and benchmarks evaluate on) is among them.
    """
    ref = resources.files("vecembed") / "data" / "calibration.txt"
    return [line for line in ref.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class _Port:
    """What :func:`~vecembed.providers.onnx_build.graph_io` reads of an input or output: its name and shape."""

    name: str
    shape: tuple[int | str, ...]


class _OvSession:
    """An OpenVINO compiled model behind the two calls vecembed's graph helpers make: ports and ``run``.

    An infer request is not thread-safe; a compiled model is. Each ``run`` takes a request from a pool
    (a new one when all are busy) and puts it back after, so concurrent callers never share one.
    """

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @staticmethod
    def _port(port: Any) -> _Port:
        shape = tuple(int(d.get_length()) if d.is_static else "?" for d in port.get_partial_shape())
        return _Port(port.get_any_name(), shape)

    def get_inputs(self) -> list[_Port]:
        return [self._port(p) for p in self.compiled.inputs]

    def get_outputs(self) -> list[_Port]:
        return [self._port(p) for p in self.compiled.outputs]

    def run(self, outputs: Sequence[str], feeds: dict[str, NDArray[Any]]) -> list[NDArray[Any]]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            # outputs are copied out of the request (share_outputs=False) before it goes back to the pool
            result = request.infer(feeds, share_inputs=True, share_outputs=False)
            return [np.asarray(result[self.compiled.output(name)]) for name in outputs]
        finally:
            self._idle.put(request)


class OpenVinoProvider(TransformerProvider):
    """Embeddings on OpenVINO (``pip install 'vecembed[openvino]'``; exporting a model also needs ``[torch]``).

    Options beyond :class:`~vecembed.providers.transformer.TransformerProvider`'s:
    ``quantize`` (``None``, or ``"int8"``: NNCF static quantisation calibrated on
    real sentences, built once and cached), ``device`` (``auto`` or ``cpu``: the
    CPU; ``gpu``: an Intel GPU, when OpenVINO sees one), ``threads`` (CPU
    inference threads; default the number of physical cores). fp32 runs with OpenVINO's
    f32 precision hint: on CPUs with bf16 units OpenVINO would otherwise compute
    in bf16 and the vectors would no longer be sentence-transformers'. Inputs
    keep dynamic shapes (batches are length-sorted already). Safe to call from
    many threads: each forward takes its own infer request from a pool.
    """

    backend = "openvino"

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
        if not isinstance(device, str) or device.lower() not in _DEVICES:
            raise InvalidInputError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
        self._ov: Any = require("openvino", "openvino", "the openvino backend")
        self._core: Any = self._ov.Core()
        self._device = _DEVICES[device.lower()]
        if self._device not in self._core.available_devices:
            raise ProviderUnavailableError(
                f"device {device!r} was asked for but OpenVINO sees no {self._device} here "
                f"(available: {', '.join(self._core.available_devices)})"
            )
        self._quantize = quantize
        self._recipe = int8_recipe(self._device) if quantize == "int8" else None
        self._threads = threads or physical_cores()
        self._session: _OvSession | None = None
        self._input_names: tuple[str, ...] = ()
        self._output_name = ""
        self._agreement_value: float | None = None
        self.model_file: Path | None = None
        # the onnx backend's batch shape (32 texts / 4096 padded tokens), measured there on 2 cores
        options.setdefault("batch_size", 32)
        options.setdefault("max_batch_tokens", 4096)
        super().__init__(model, **options)

    # -- compiled models -------------------------------------------------------------------------

    def _compile(self, path: Path) -> _OvSession:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if self._device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self._threads
        return _OvSession(self._core.compile_model(self._core.read_model(str(path)), self._device, config))

    def _forward_of(self, session: _OvSession, path: Path) -> tuple[Any, int]:
        inputs, output, dim = graph_io(session, path, self.config.hidden_size)

        def forward(batch: Batch) -> NDArray[Any]:
            return run_graph(session, inputs, output, batch)

        return forward, dim

    # -- the backend hooks ---------------------------------------------------------------------

    def _load_backend(self) -> int:
        # the fp32 graph is checked, when it is exported, through OpenVINO itself (no onnxruntime needed)
        graph = ensure_onnx_graph(self.config, tokenizer=self.tokenizer, name=self.resolved.name,
                                  session_factory=self._compile)
        path = graph.path
        if self._quantize == "int8":
            path, self._agreement_value = self._int8_model(graph.path)
            cpu = onednn_cpu_info()
            if self._device == "CPU" and cpu.flags and not cpu.int8_dot_product:
                log.warning(
                    "this CPU has no int8 dot-product instructions (%s; %s): OpenVINO int8 runs on AVX2 code "
                    "paths here, measured slower than onnx int8; load_provider('onnx', quantize='int8') is the "
                    "faster int8 backend on such CPUs", " / ".join(INT8_DOT_PRODUCT_FLAGS), cpu.source)
        try:
            session = self._compile(path)
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO could not load {path}: {exc}", path=str(path)) from exc
        self._input_names, self._output_name, dim = graph_io(session, path, self.config.hidden_size)
        if dim <= 0:
            raise ModelLoadError(f"{path}: cannot tell the output dimension", path=str(path))
        self._session = session
        self.model_file = path
        return dim

    def _int8_model(self, fp32: Path) -> tuple[Path, float | None]:
        """The cached int8 IR of ``fp32`` (built now if absent or damaged) and its agreement with fp32.

        Each recipe has its own folder. A build that failed the quality gate leaves a ``.refused`` record
        beside it, so the next load with the same recipe, OpenVINO and NNCF refuses at once instead of
        quantising (tens of seconds) to the same verdict.
        """
        suffix = "-overflow-fix" if self._recipe == RECIPE_OVERFLOW_FIX else ""
        folder = graph_cache_entry(self.config) / f"openvino-int8-v{INT8_VERSION}{suffix}"
        xml, weights = folder / "model.xml", folder / "model.bin"
        record = cache.is_verified(weights) if cache.is_verified(xml) is not None else None
        if record is None:
            refused = _refusal(folder, str(self._ov.get_version()))
            if refused is not None:
                raise ProviderUnavailableError(
                    f"int8 quantisation of {self.resolved.name} was refused on this CPU before ({refused}); "
                    f"use quantize=None, or delete {_refusal_path(folder)} to try again")
            try:
                quantize_int8_openvino(self, fp32, folder)
            except ProviderUnavailableError as exc:
                _record_refusal(folder, str(self._ov.get_version()), str(exc))
                raise
            record = cache.is_verified(weights) or {}
        agreement = record.get("agreement")
        return xml, float(agreement) if isinstance(agreement, int | float) else None

    def _forward(self, batch: Batch) -> NDArray[Any]:
        if self._session is None:  # pragma: no cover - embed checks closed first
            raise ProviderUnavailableError("OpenVinoProvider is closed; load a new provider")
        return run_graph(self._session, self._input_names, self._output_name, batch)

    def _device_name(self) -> str:
        return self._device.lower()

    def _quantization(self) -> str | None:
        return self._quantize

    def _agreement(self) -> float | None:
        return self._agreement_value

    def _fingerprint_extra(self) -> dict[str, Any]:
        extra = super()._fingerprint_extra()
        if self._quantize == "int8":
            # NNCF's static int8 is another approximation than onnxruntime's dynamic int8: its vectors are a
            # vector space of their own (fp32 is the same space on every backend, so it adds nothing)
            # (and the overflow-fix recipe of CPUs without VNNI is another one again)
            extra["int8_method"] = f"{self._recipe}-v{INT8_VERSION}"
        return extra

    def close(self) -> None:
        if not self._closed:
            self._session = None
        super().close()


def quantize_int8_openvino(provider: OpenVinoProvider, fp32: Path, folder: Path) -> float:
    """NNCF-quantise ``fp32`` (an ONNX graph) to int8 OpenVINO IR in ``folder`` and cache it if it agrees.

    Calibrated on :func:`calibration_texts` through the provider's own tokenizer and batching; checked
    against the fp32 graph on the probe texts; a mean cosine below :data:`INT8_MIN_MEAN_COSINE` raises and
    caches nothing. Returns the min cosine (recorded in the sidecar with the mean).
    """
    nncf = require("nncf", "openvino", "int8 quantisation on the openvino backend")
    ov = provider._ov
    name = provider.resolved.name
    log.info("quantising %s to int8 with NNCF once (about 40 s on 2 CPU cores), then every load reuses %s",
             name, folder)
    reference = provider._compile(fp32)
    inputs, _, dim = graph_io(reference, fp32, provider.config.hidden_size)
    pipe = TextPipeline(provider.tokenizer, lambda b: b.input_ids, dimension=dim,
                        max_tokens=provider.config.max_seq_length)
    tokenized = pipe.tokenize(calibration_texts())
    items = []
    for i in range(len(tokenized.lengths)):
        batch = tokenized.batch(np.array([i], dtype=np.intp), pipe.pad_id)
        arrays = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                  "token_type_ids": batch.token_type_ids}
        items.append({n: arrays[n] for n in inputs})
    with _nncf_quiet():
        fix = nncf.OverflowFix.ENABLE if provider._recipe == RECIPE_OVERFLOW_FIX else nncf.OverflowFix.FIRST_LAYER
        quantized = nncf.quantize(provider._core.read_model(str(fp32)), nncf.Dataset(items),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items),
                                  ignored_scope=nncf.IgnoredScope(names=down_projections(fp32)),
                                  advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=fix))
    with cache.atomic_dir(folder) as tmp:
        # compress_to_fp16=False: save_model would otherwise store the remaining fp32 weights as fp16
        ov.save_model(quantized, str(tmp / "model.xml"), compress_to_fp16=False)
        got, _ = provider._forward_of(provider._compile(tmp / "model.xml"), tmp / "model.xml")
        ref, _ = provider._forward_of(reference, fp32)
        low, mean = probe_agreement(provider.config, provider.tokenizer, got, ref, dim)
        if mean < INT8_MIN_MEAN_COSINE:
            raise ProviderUnavailableError(
                f"int8 quantisation of {name} disagrees with fp32 too much (mean cosine {mean:.4f} < "
                f"{INT8_MIN_MEAN_COSINE}); nothing was cached; use quantize=None"
            )
        cache.write_checksum(tmp / "model.xml", model=name)
        cache.write_checksum(tmp / "model.bin", agreement=low, mean_agreement=mean, model=name,
                             calibration="STS-B train, vecembed/data/calibration.txt", recipe=provider._recipe,
                             cpu=onednn_cpu_info().summary,
                             openvino=str(ov.get_version()), nncf=str(nncf.__version__))
    return low


def _refusal_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".refused.json")


def _refusal(folder: Path, openvino_version: str) -> str | None:
    """The reason recorded by an earlier refused build of ``folder`` with this OpenVINO and NNCF, if any."""
    try:
        record = json.loads(_refusal_path(folder).read_text(encoding="utf-8"))
        nncf_version = _nncf_version()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("openvino") != openvino_version or \
            record.get("nncf") != nncf_version:
        return None  # another OpenVINO or NNCF may do better: build again
    return str(record.get("reason", "no reason recorded"))


def _record_refusal(folder: Path, openvino_version: str, reason: str) -> None:
    try:
        record = {"reason": reason, "openvino": openvino_version, "nncf": _nncf_version(),
                  "cpu": onednn_cpu_info().summary}
        folder.parent.mkdir(parents=True, exist_ok=True)
        _refusal_path(folder).write_text(json.dumps(record), encoding="utf-8")
    except OSError as exc:  # a read-only cache: the next load just tries again
        log.debug("could not record the int8 refusal beside %s: %s", folder, exc)


def _nncf_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nncf")
    except PackageNotFoundError:  # not installed: a refusal then stands for the same (absent) NNCF
        return None


@contextlib.contextmanager
def _nncf_quiet() -> Iterator[None]:
    """NNCF logs INFO lines and draws rich progress bars on stdout: only where a person watches."""
    logger = logging.getLogger("nncf")
    level = logger.level
    if progress_enabled():
        yield
        return
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
