"""backend="auto": which backend it picks on which CPU, that it says why, and that it is only used when asked."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import vecembed
from vecembed import registry
from vecembed.cli import main as cli_main
from vecembed.cpu import CpuInfo

VNNI = CpuInfo(model="VNNI CPU", flags=frozenset({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"}),
               source="test", machine="x86_64")
AVX2 = CpuInfo(model="AVX2 CPU", flags=frozenset({"avx", "avx2", "fma"}), source="test", machine="x86_64")


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(info: CpuInfo, installed: set[str] | None = None) -> None:
        monkeypatch.setattr("vecembed.cpu.onednn_cpu_info", lambda: info)
        if installed is not None:
            monkeypatch.setattr(registry, "importable", lambda name: name in installed)
    return use


def test_int8_on_a_vnni_cpu_is_openvino(cpu: Any) -> None:
    cpu(VNNI, {"onnxruntime", "openvino", "nncf"})
    name, why = registry.auto_backend({"quantize": "int8"})
    assert name == "openvino" and "avx512_vnni" in why


def test_int8_without_vnni_is_onnx(cpu: Any) -> None:
    cpu(AVX2, {"onnxruntime", "openvino", "nncf"})
    name, why = registry.auto_backend({"quantize": "int8"})
    assert name == "onnx" and "no VNNI/AMX" in why and "avx2" in why


def test_int8_on_vnni_without_openvino_is_onnx(cpu: Any) -> None:
    cpu(VNNI, {"onnxruntime"})
    assert registry.auto_backend({"quantize": "int8"}) == ("onnx", "OpenVINO/NNCF not installed (avx512_vnni): "
                                                                   "onnx int8")


def test_fp32_or_another_device_is_the_default(cpu: Any) -> None:
    cpu(VNNI, {"onnxruntime", "openvino", "nncf"})
    assert registry.auto_backend({})[0] == "onnx"
    name, why = registry.auto_backend({"quantize": "int8", "device": "cuda"})
    assert name == "onnx" and "'cuda' is not the CPU" in why
    cpu(AVX2, {"torch"})
    assert registry.auto_backend({"quantize": "int8"}) == ("torch", "onnxruntime is not installed: the default "
                                                                    "backend 'torch'")


def test_load_provider_auto_logs_its_choice(cpu: Any, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    # mock stands in for the backend auto picks, so no model is loaded
    monkeypatch.setattr(registry, "auto_backend", lambda options: ("mock", "a test said so"))
    with caplog.at_level(logging.INFO, logger="vecembed.registry"):
        p = vecembed.load_provider("auto", dimension=8)
    assert p.info.backend == "mock" and p.info.dimension == 8
    assert "backend='auto' chose 'mock': a test said so" in caplog.text


def test_auto_is_never_the_default(cpu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "auto_backend", lambda options: pytest.fail("auto was consulted"))
    assert registry.default_backend() in {"onnx", "torch"}


def test_unknown_backend_mentions_auto() -> None:
    with pytest.raises(vecembed.errors.UnknownProviderError, match=r"\(or 'auto'\)"):
        vecembed.load_provider("onnxx")


def test_cli_says_what_auto_chose(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(registry, "auto_backend", lambda options: ("mock", "a test said so"))
    monkeypatch.setattr("vecembed.cli._common.auto_backend", registry.auto_backend)
    assert cli_main(["info", "--backend", "auto", "--opt", "dimension=8"]) == 0
    out, err = capsys.readouterr()
    assert "backend auto: mock (a test said so)" in err
    assert "mock on cpu" in out and "isa " in out  # `vecembed info` names the CPU's ISA class
