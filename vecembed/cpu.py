"""What this CPU can do for int8 and fp32 inference: its model name and the x86 ISA classes that matter.

Which int8 recipe is right and which backend is fastest depend on a handful of
instruction-set extensions:

- **AVX2** without VNNI: int8 dot products go through ``vpmaddubsw``, which adds two
  u8×s8 products into a *saturating* int16; 8-bit weights can overflow it (ONNX
  Runtime's u8s8 kernels and OpenVINO's int8 kernels both do this), so int8 recipes
  for these CPUs keep products small enough (7-bit weights) or use u8u8.
- **VNNI** (``avx512_vnni`` / ``avx_vnni``) and **AMX** (``amx_int8``): int8 dot
  products accumulate straight into int32 — no saturation, and much faster.
- **AVX-512** (``avx512f``/``bw``/``vl``) without VNNI: wider, but the same saturation.

:func:`cpu_info` reads the flags once per process. On Linux they come from
``/proc/cpuinfo``; on macOS from ``sysctl`` (Intel Macs list the same names in
upper case; Apple silicon has none of these: ``isa`` is ``"arm64"``); elsewhere
(Windows, or an unreadable file) the flags are unknown (``source == "unknown"``)
and every caller treats the CPU as having no int8 dot-product instructions,
which picks the recipe that is right everywhere.

:func:`onednn_cpu_info` is the CPU as oneDNN (OpenVINO's CPU kernels) will use it:
``ONEDNN_MAX_CPU_ISA=AVX2`` caps it below VNNI/AMX, which is how an AVX2-only CPU
is emulated on a newer one (``benchmarks/run.py --isa avx2``).

:func:`physical_cores` is how many cores this process may run on, SMT siblings counted once: the default
thread count of the onnx, openvino and gguf backends.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["INT8_DOT_PRODUCT_FLAGS", "ONEDNN_ISA_VARIABLE", "REPORTED_FLAGS", "CpuInfo", "cpu_info", "onednn_cpu_info",
           "physical_cores"]

#: Flags of int8 dot-product instructions that accumulate into int32 without saturating.
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: The variable oneDNN (and so OpenVINO's CPU plugin) reads to cap the instruction set it uses.
ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"

#: The flags reported in :attr:`CpuInfo.summary` and benchmark headers, lowest ISA first.
REPORTED_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                  "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")

#: oneDNN's ISA names (``ONEDNN_MAX_CPU_ISA``) → the flags each level still allows, lowest first. A cap removes
#: every reported flag that is not allowed at or below it.
_ONEDNN_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("SSE41", frozenset()),
    ("AVX", frozenset({"avx"})),
    ("AVX2", frozenset({"avx", "avx2", "fma", "f16c"})),
    ("AVX2_VNNI", frozenset({"avx", "avx2", "fma", "f16c", "avx_vnni"})),
    ("AVX2_VNNI_2", frozenset({"avx", "avx2", "fma", "f16c", "avx_vnni"})),
    ("AVX512_CORE", frozenset({"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"})),
    ("AVX512_CORE_VNNI", frozenset({"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                    "avx_vnni"})),
    ("AVX512_CORE_BF16", frozenset({"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                    "avx_vnni", "avx512_bf16"})),
)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and feature flags, and the ISA classes derived from them.

    ``source`` says where the flags came from: ``"/proc/cpuinfo"``, ``"sysctl"``,
    ``"unknown"`` (no flags could be read: every ``has_*`` is False), or
    ``"ONEDNN_MAX_CPU_ISA=..."`` for a view capped by :func:`onednn_cpu_info`.
    """

    model: str
    flags: frozenset[str]
    source: str
    machine: str

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return {"avx512f", "avx512bw", "avx512vl"} <= self.flags

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def amx(self) -> bool:
        return "amx_int8" in self.flags

    @property
    def int8_dot_product(self) -> bool:
        """Whether int8 products accumulate without int16 saturation (VNNI or AMX)."""
        return self.vnni or self.amx

    @property
    def isa(self) -> str:
        """The highest class that matters here: ``amx``, ``avx512_vnni``, ``avx_vnni``, ``avx512``, ``avx2``,
        ``x86`` (older), ``arm64``, or ``unknown``."""
        if self.machine in {"arm64", "aarch64"}:
            return "arm64"
        if not self.flags:
            return "unknown"
        for name, present in (("amx", self.amx), ("avx512_vnni", "avx512_vnni" in self.flags),
                              ("avx_vnni", "avx_vnni" in self.flags), ("avx512", self.avx512),
                              ("avx2", self.avx2)):
            if present:
                return name
        return "x86"

    @property
    def summary(self) -> str:
        """One line for logs and benchmark headers: model, ISA class and the flags that matter."""
        flags = " ".join(f for f in REPORTED_FLAGS if f in self.flags) or "none known"
        return f"{self.model} · isa {self.isa} · flags: {flags} ({self.source})"


def _linux_cpu() -> tuple[str, frozenset[str]] | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model, flags


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _mac_cpu() -> tuple[str, frozenset[str]]:
    model = _sysctl("machdep.cpu.brand_string")
    raw = " ".join(_sysctl(k) for k in ("machdep.cpu.features", "machdep.cpu.leaf7_features")).lower()
    # Intel Macs spell them AVX2 AVX512F AVX512VNNI ...: map to the Linux names
    names = {"avx1.0": "avx", "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16"}
    return model, frozenset(names.get(f, f) for f in raw.split())


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (read once per process; see the module docstring for each platform)."""
    machine = platform.machine().lower()
    system = platform.system()
    model, flags, source = platform.processor() or machine or "unknown CPU", frozenset[str](), "unknown"
    if system == "Linux":
        found = _linux_cpu()
        if found is not None:
            model, flags, source = found[0] or model, found[1], "/proc/cpuinfo"
    elif system == "Darwin":
        found_model, flags = _mac_cpu()
        model, source = found_model or model, "sysctl"
    return CpuInfo(model=model, flags=flags, source=source, machine=machine)


def onednn_cpu_info(environ: dict[str, str] | None = None) -> CpuInfo:
    """:func:`cpu_info` as oneDNN will use it: capped by ``ONEDNN_MAX_CPU_ISA`` when that is set.

    An unknown level (oneDNN's ``ALL``/``DEFAULT``, newer AVX10/AMX names) leaves the flags as they are.
    """
    env = os.environ if environ is None else environ
    level = env.get(ONEDNN_ISA_VARIABLE, "").strip().upper()
    info = cpu_info()
    for name, allowed in _ONEDNN_LEVELS:
        if level == name:
            removed = frozenset(REPORTED_FLAGS) - allowed
            return replace(info, flags=info.flags - removed, source=f"{ONEDNN_ISA_VARIABLE}={name}")
    return info


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
