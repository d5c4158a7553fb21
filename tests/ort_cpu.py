"""Which QLinearAdd kernel onnxruntime runs on this CPU, for the tests that compare with it bit
for bit.

onnxruntime's QLinearAdd (com.microsoft, and the QDQ Add it fuses into one) is MLAS's
MlasQLinearAdd, whose kernel MLAS picks at start-up (core/mlas/lib/platform.cpp): on x86-64 with
AVX2 and FMA3, MlasQLinearAdd{S8,U8}KernelAvx2, which rounds as two fused multiply-adds; on
other x86-64, the SSE2 kernel (separate multiplies and adds, three roundings); on ARM64, a
fixed-point kernel.  The three differ in the last bit on about 1 element in 10^4, so
onnxruntime's QLinearAdd is not one function across CPUs.  `--requant float` reproduces the
AVX2/FMA3 one (onnx2mcu.qmath.add_params); on any other CPU a bit-exact comparison with
onnxruntime is a comparison with another function, and those tests skip saying so.
"""
from __future__ import annotations

import platform
from pathlib import Path

import pytest


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def host_has_fma() -> bool:
    """An x86-64 host whose CPU has FMA3 (so a -mfma build runs here)."""
    flags = _cpu_flags()
    return platform.machine().lower() in ("x86_64", "amd64") and flags is not None and "fma" in flags


def runs_avx2_qlinear_add() -> bool:
    """True when onnxruntime runs its AVX2/FMA3 QLinearAdd kernel here (x86-64 with AVX2 and FMA3
    enabled, as Linux reports them)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    flags = _cpu_flags()
    return flags is not None and {"avx2", "fma"} <= flags


AVX2_QLINEAR_ADD = runs_avx2_qlinear_add()
REASON = (f"onnxruntime's QLinearAdd here is not its AVX2/FMA3 kernel (machine {platform.machine()}, "
          "no avx2+fma in /proc/cpuinfo): its SSE2 or ARM64 kernel rounds differently in the last bit, "
          "and --requant float reproduces the AVX2/FMA3 one (tests/ort_cpu.py)")
needs_avx2_qlinear_add = pytest.mark.skipif(not AVX2_QLINEAR_ADD, reason=REASON)
