"""The kernel table: `Kernel` entries keyed by (domain, op_type, dtype, backend).

Only the data and `register_kernel`; the modules of codegen/emit/ fill it at
import, and codegen/kernels.py (which imports them) answers the questions
(selection, support).  Kept apart so that the emitter modules and the selection
code do not import each other (docs/ARCHITECTURE.md, kernels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops import lookup

Emit = Callable[[Node, "object"], "str | list[str]"]
"""(node, codegen.context.CContext) -> the C statements of one step."""
Applies = Callable[[Node, Graph], "str | None"]
"""Why this kernel cannot serve this node (an attribute or rank it does not cover), or None."""
Scratch = Callable[[Node, Graph], int]

PORTABLE = "portable"
BACKENDS = ("portable", "arm-dsp")
"""Backend names a board may list (see onnx2mcu/targets.py)."""


class KernelSelectionMismatch(RuntimeError):
    """Internal error: a schedule's scratch disagrees with the kernels codegen would call.

    The face must call `select_kernels(graph, board)` before `schedule(graph)`."""


@dataclass(frozen=True)
class Kernel:
    """One C lowering of one op for one input dtype on one backend.

    `sources`: the runtime_c files its statements may call into (the emitter
    asks for the ones a particular node needs with `ctx.need`; codegen checks
    they are among these).  `scratch_bytes`: None means the op's own formula
    (`OpDef.scratch_bytes`, shared with graph_opt); a variant needing other
    scratch gives its own."""

    domain: str
    op_type: str
    dtype: DType
    backend: str
    emit: Emit
    sources: tuple[str, ...] = ()
    applies: Applies | None = None
    scratch_bytes: Scratch | None = None

    @property
    def name(self) -> str:
        op = f"{self.domain}.{self.op_type}" if self.domain else self.op_type
        return f"{op}/{self.dtype.value}/{self.backend}"

    def scratch(self, node: Node, graph: Graph) -> int:
        if self.scratch_bytes is not None:
            return int(self.scratch_bytes(node, graph))
        op = lookup(node.op_type, node.domain)
        return int(op.scratch_bytes(node, graph)) if op is not None else 0


_KERNELS: dict[tuple[str, str, DType, str], Kernel] = {}


def register_kernel(op_type: str, emit: Emit, *, domain: str = "",
                    dtypes: Iterable[DType] | None = None, backend: str = PORTABLE,
                    sources: Sequence[str] = (), applies: Applies | None = None,
                    scratch_bytes: Scratch | None = None) -> list[Kernel]:
    """Register `emit` as the kernel of `op_type` for each of `dtypes` on `backend`.

    `dtypes` None: every dtype the op accepts at input 0 (the emitter then
    refuses the ones it does not cover with `ctx.refuse`)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend '{backend}' (known: {', '.join(BACKENDS)})")
    if dtypes is None:
        op = lookup(op_type, domain)
        if op is None:
            raise ValueError(f"kernel for unknown op {domain}.{op_type}")
        dtypes = sorted(op.dtypes[0], key=lambda d: d.value)
    made = []
    for dtype in dtypes:
        key = (domain, op_type, dtype, backend)
        if key in _KERNELS:
            raise ValueError(f"kernel {op_type}/{dtype.value}/{backend} registered twice")
        entry = Kernel(domain, op_type, dtype, backend, emit, tuple(sources), applies,
                       scratch_bytes)
        _KERNELS[key] = entry
        made.append(entry)
    return made


def kernel_for(op_type: str, dtype: DType, backend: str = PORTABLE, domain: str = "") -> Kernel | None:
    if domain == "ai.onnx":
        domain = ""
    return _KERNELS.get((domain, op_type, dtype, backend))


def all_kernels() -> list[Kernel]:
    return sorted(_KERNELS.values(), key=lambda k: (k.domain, k.op_type, k.dtype.value, k.backend))


def register_int8_kernel(op_type: str, emit: Emit, runs_int8: Callable[[Node, Graph], bool],
                         sources: Sequence[str]) -> Kernel:
    """The INT8 portable kernel of `op_type`: `emit` for the nodes that run on quantized
    integers (`runs_int8`), the op's plain int8 kernel (if any: integer arithmetic on
    unquantized int8 values, data movement) for the others."""
    key = ("", op_type, DType.INT8, PORTABLE)
    before = _KERNELS.get(key)

    def dispatch(node: Node, ctx) -> "str | list[str]":
        if runs_int8(node, ctx.graph):
            return emit(node, ctx)
        if before is None:
            ctx.refuse(node, "no C kernel for int8 values without quantization")
        return before.emit(node, ctx)

    merged = tuple(dict.fromkeys((*(before.sources if before else ()), *sources)))
    entry = Kernel("", op_type, DType.INT8, PORTABLE, dispatch, merged,
                   before.applies if before else None, before.scratch_bytes if before else None)
    _KERNELS[key] = entry
    return entry


@dataclass(frozen=True)
class Selection:
    """The kernel chosen for one node and the scratch bytes it needs."""

    node: str
    kernel: Kernel
    scratch: int


def node_dtype(node: Node, graph: Graph) -> DType:
    """The dtype a node's kernel is keyed by: its first non-omitted input's (else first output's)."""
    for name in list(node.inputs) + list(node.outputs):
        if name:
            return graph.tensors[name].dtype
    return DType.FLOAT32


def preference_of(board_or_preference) -> tuple[str, ...]:
    """A board's kernel preference (`Board.kernels`), or a preference given directly."""
    if isinstance(board_or_preference, str):
        return (board_or_preference,)
    kernels = getattr(board_or_preference, "kernels", None)
    return tuple(kernels if kernels is not None else board_or_preference)


def select_kernel(node: Node, graph: Graph, preference: Sequence[str]) -> Selection | str:
    """The first backend of `preference` with a kernel that applies to `node`, or why none does."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    dtype = node_dtype(node, graph)
    reasons = []
    for backend in preference:
        kernel = kernel_for(node.op_type, dtype, backend, domain)
        if kernel is None:
            continue
        reason = kernel.applies(node, graph) if kernel.applies is not None else None
        if reason is None:
            return Selection(node.name, kernel, kernel.scratch(node, graph))
        reasons.append(f"{backend}: {reason}")
    if reasons:
        return "; ".join(reasons)
    if any(k[:2] == (domain, node.op_type) for k in _KERNELS):
        return f"no C kernel for dtype {dtype.value}"
    return "no C kernel yet"
