"""The latency estimate: instructions per inference x cycles per instruction / the board's clock.

Without a run on the target, instructions come from the model's MACs times an instructions-per-MAC
figure measured in this repository's benchmarks (benchmarks/latency.md, pooled over the five
MLPerf Tiny + MCUNet models: the kind of model and kernels, float32 / int8 portable / int8
arm-dsp, on a core with an FPU (measured on the Cortex-M4F) or without (on the Cortex-M3)).
Cycles per instruction are an assumption per core with the document it rests on.  The result
is an estimate and every report says so: caches, flash wait states, the actual kernels' mix
and the compiler move real figures; `onnx2mcu run DIR --qemu` counts the instructions exactly
and a board's DWT cycle counter (`-DMODEL_PROFILE`) measures the cycles.
"""
from __future__ import annotations

from dataclasses import dataclass

from onnx2mcu.targets import Board

SOURCE = "benchmarks/latency.md"


@dataclass(frozen=True)
class Figure:
    instr_per_mac: float
    measured: str  # where the instructions were counted
    source: str  # the file that holds the measurement


# (kind, with FPU) -> instructions per MAC; tests/test_reports.py checks them against SOURCE
_M4 = "Cortex-M4F, QEMU mps2-an386"
_M3 = "Cortex-M3, QEMU mps2-an385"
INSTR_PER_MAC: dict[tuple[str, bool], Figure] = {
    ("float32", True): Figure(5.85, _M4, SOURCE + " (from benchmarks/c_backend.md)"),
    ("int8 portable", True): Figure(35.54, _M4, SOURCE + " (from benchmarks/int8.md)"),
    ("int8 arm-dsp", True): Figure(2.13, _M4, SOURCE + " (from benchmarks/int8.md)"),
    ("float32", False): Figure(75.03, _M3 + ", soft float", SOURCE),
    ("int8 portable", False): Figure(35.53, _M3, SOURCE),
    # a DSP core without FPU (a custom board): the arm-dsp kernels are integer code
    ("int8 arm-dsp", False): Figure(2.13, _M4, SOURCE + " (from benchmarks/int8.md)"),
}

# cycles per instruction, per core: an assumption (1: what the cores' instruction timing tables
# give most data-processing instructions at zero wait states) with the document it rests on
CPI: dict[str, tuple[float, str]] = {
    "cortex-m0plus": (1.0, "assumed; Cortex-M0+ TRM: most instructions 1 cycle, loads/stores 2, taken branches 2"),
    "cortex-m3": (1.0, "assumed; Cortex-M3 TRM instruction timing (zero wait states): most 1 cycle, "
                       "loads 2, branches 1 + refill"),
    "cortex-m4": (1.0, "assumed; Cortex-M4 TRM instruction timing (zero wait states): most 1 cycle, "
                       "loads 2, VMLA.F32 3, branches 1 + refill"),
    "cortex-m7": (1.0, "assumed; Cortex-M7 TRM: dual issue can go below 1, caches and flash wait states above"),
    "cortex-m33": (1.0, "assumed; Cortex-M33 TRM: single issue, most instructions 1 cycle at zero wait states"),
    "cortex-m55": (1.0, "assumed; Cortex-M55 TRM: most scalar instructions 1 cycle at zero wait states"),
}


def model_kind(quantized: bool, backends: set[str]) -> str:
    """float32, int8 portable or int8 arm-dsp: what the figures are measured for."""
    if not quantized:
        return "float32"
    return "int8 arm-dsp" if "arm-dsp" in backends else "int8 portable"


def estimate(total_macs: int, quantized: bool, backends: set[str], board: Board,
             own_ops: list[str] | None = None) -> dict:
    """{"estimated": True, seconds, instructions, figures and their sources} or
    {"estimated": False, "reason": ...} when the board has no clock or no figure fits it."""
    if board.is_host:
        return {"estimated": False, "reason": "the host has no clock figure; give --board for a latency estimate"}
    if not board.clock_hz:
        return {"estimated": False, "reason": f"board {board.name} has no clock_hz"}
    kind = model_kind(quantized, backends)
    figure = INSTR_PER_MAC.get((kind, bool(board.fpu)))
    if figure is None or figure.instr_per_mac <= 0:
        return {"estimated": False, "reason": f"no instructions-per-MAC figure measured for {kind} on a core "
                                              f"{'with' if board.fpu else 'without'} FPU"}
    cpi, cpi_source = CPI.get(board.core, (1.0, f"assumed; no timing figure recorded for {board.core}"))
    instructions = total_macs * figure.instr_per_mac
    cycles = instructions * cpi
    data = {"estimated": True, "kind": kind, "macs": int(total_macs), "instr_per_mac": figure.instr_per_mac,
            "instructions": int(round(instructions)), "cycles_per_instruction": cpi, "cycles": int(round(cycles)),
            "clock_hz": board.clock_hz, "seconds": cycles / board.clock_hz,
            "figure_measured_on": figure.measured, "figure_source": figure.source, "cpi_source": cpi_source}
    caveats = []
    if board.core == "cortex-m0plus":
        caveats.append("the figure is the Cortex-M3's (ARMv7-M); the M0+'s ARMv6-M code takes more instructions")
    if own_ops:
        caveats.append(f"{', '.join(sorted(set(own_ops)))} (our own kernels) counted at the {kind} figure; "
                        "their instructions per MAC differ (benchmarks/binary.md)")
    if caveats:
        data["caveat"] = "; ".join(caveats)
    return data


def format_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


# Instructions per MAC of one node by (dtype, backend), for comparing two forms of the same model
# on one board (the memory rewrites' speed guard, graph_opt/memrw.py), not for absolute latency:
# measured on the Cortex-M4F (QEMU mps2-an386), benchmarks/int8.md: float Conv portable 6.3-7.6
# and arm-dsp (tiled) 2.1-2.9 per MAC on ResNet-8's 3x3 layers; int8 as INSTR_PER_MAC.
NODE_INSTR_PER_MAC: dict[tuple[str, str], float] = {
    ("float32", "portable"): 6.5,
    ("float32", "arm-dsp"): 2.5,
    ("int8", "portable"): INSTR_PER_MAC[("int8 portable", True)].instr_per_mac,
    ("int8", "arm-dsp"): INSTR_PER_MAC[("int8 arm-dsp", True)].instr_per_mac,
}


def instructions_of(graph, selections: dict) -> float:
    """Estimated instructions of one inference: each node's MACs (OpDef.macs) times the figure of
    its dtype and of the backend of its selected kernel (`selections`: node name -> a kernel
    selection with `.kernel.backend`, or a reason string: portable, or the Python reference)."""
    from onnx2mcu.ir import DType
    from onnx2mcu.ops import lookup

    total = 0.0
    for node in graph.nodes:
        op = lookup(node.op_type, node.domain)
        macs = int(op.macs(node, graph)) if op is not None else 0
        if not macs:
            continue
        chosen = selections.get(node.name)
        backend = getattr(getattr(chosen, "kernel", None), "backend", "portable")
        first = next((graph.tensors[n] for n in list(node.inputs) + list(node.outputs) if n), None)
        dtype = "int8" if first is not None and first.dtype in (DType.INT8, DType.UINT8) else "float32"
        total += macs * NODE_INSTR_PER_MAC.get((dtype, backend), NODE_INSTR_PER_MAC[(dtype, "portable")])
    return total
