"""vecembed.cpu: the CPU's model and ISA classes, read once; oneDNN's cap; platforms without /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecembed import cpu
from vecembed.cpu import CpuInfo, cpu_info, onednn_cpu_info

SKYLAKE_SP = {"sse2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"}


def _info(flags: set[str], machine: str = "x86_64") -> CpuInfo:
    return CpuInfo(model="Test CPU", flags=frozenset(flags), source="test", machine=machine)


@pytest.mark.parametrize(("flags", "isa", "dot"), [
    ({"sse2", "avx", "avx2", "fma"}, "avx2", False),
    (SKYLAKE_SP, "avx512", False),
    (SKYLAKE_SP | {"avx512_vnni"}, "avx512_vnni", True),
    ({"avx", "avx2", "avx_vnni"}, "avx_vnni", True),
    (SKYLAKE_SP | {"avx512_vnni", "amx_tile", "amx_int8"}, "amx", True),
    ({"sse2", "sse4_2"}, "x86", False),
    (set(), "unknown", False),
])
def test_isa_classes(flags: set[str], isa: str, dot: bool) -> None:
    info = _info(flags)
    assert info.isa == isa and info.int8_dot_product is dot
    assert info.summary.startswith(f"Test CPU · isa {isa} · flags: ")


def test_arm_is_its_own_class() -> None:
    assert _info(set(), machine="arm64").isa == "arm64"
    assert _info(set(), machine="aarch64").int8_dot_product is False


def test_this_machine_is_read_once() -> None:
    first = cpu_info()
    assert cpu_info() is first  # cached: benchmarks and providers ask often
    if Path("/proc/cpuinfo").is_file():
        text = Path("/proc/cpuinfo").read_text()
        assert first.source == "/proc/cpuinfo"
        assert first.model and first.model in text
        assert ("avx2" in first.flags) == (" avx2" in text)


def test_proc_cpuinfo_is_parsed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = ("processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
            "processor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n")
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: text)
    assert cpu._linux_cpu() == ("AMD EPYC 7B12", frozenset({"fpu", "sse2", "avx", "avx2", "fma"}))
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: (_ for _ in ()).throw(OSError("no procfs")))
    assert cpu._linux_cpu() is None


def test_other_platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: the flags are unknown, which every caller treats as 'no VNNI' (the recipe right everywhere)."""
    cpu.cpu_info.cache_clear()
    try:
        monkeypatch.setattr(cpu.platform, "system", lambda: "Windows")
        monkeypatch.setattr(cpu.platform, "machine", lambda: "AMD64")
        info = cpu_info()
        assert info.source == "unknown" and info.isa == "unknown" and not info.int8_dot_product
        cpu.cpu_info.cache_clear()
        monkeypatch.setattr(cpu.platform, "system", lambda: "Darwin")
        monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
        answers = {"machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H",
                   "machdep.cpu.features": "FPU SSE2 AVX1.0 FMA F16C",
                   "machdep.cpu.leaf7_features": "AVX2 BMI2 AVX512F AVX512VNNI"}
        monkeypatch.setattr(cpu, "_sysctl", lambda name: answers[name])
        mac = cpu_info()
        assert mac.source == "sysctl" and mac.model == "Intel(R) Core(TM) i9-9880H"
        assert {"avx", "avx2", "avx512_vnni"} <= mac.flags and mac.int8_dot_product
    finally:
        cpu.cpu_info.cache_clear()


def test_onednn_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    full = _info(SKYLAKE_SP | {"avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "sse4_2"})
    monkeypatch.setattr(cpu, "cpu_info", lambda: full)
    assert onednn_cpu_info({}) is full
    avx2 = onednn_cpu_info({"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert avx2.isa == "avx2" and not avx2.int8_dot_product and avx2.source == "ONEDNN_MAX_CPU_ISA=AVX2"
    assert "sse4_2" in avx2.flags  # only the ISA levels above the cap go
    assert onednn_cpu_info({"ONEDNN_MAX_CPU_ISA": "avx512_core"}).isa == "avx512"
    assert onednn_cpu_info({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}).isa == "avx512_vnni"
    assert onednn_cpu_info({"ONEDNN_MAX_CPU_ISA": "ALL"}) is full
