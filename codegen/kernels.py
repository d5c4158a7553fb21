"""The kernel registry: which C lowering runs a node, for which dtype, on which backend.

An op's semantics (reference, memory use, shape rule) live in the core
(`onnx2mcu.ops`); how a node becomes C is a `Kernel` registered here by the
modules of `codegen/emit/`.  A kernel is keyed by (domain, op_type, dtype,
backend):

* dtype is the DType of the node's first non-omitted input (the first
  output's dtype for an op without inputs): see `node_dtype`;
* backend names a family of implementations: "portable" (plain C99, every
  board) today; a board lists the backends it prefers, best first
  (`onnx2mcu.targets.Board.kernels`, e.g. ("arm-dsp", "portable")).

Selection (`select_kernel`, `select_kernels`) takes, for each node, the first
backend of the board's preference that has a kernel for the node whose
`applies(node, graph)` says nothing against it.  It runs BEFORE scheduling:
`select_kernels` records each selected node's scratch bytes on the IR
(`Graph.scratch`), which the core memory model reads.  `render_model` checks
that the schedule reserved exactly that scratch (see docs/ARCHITECTURE.md,
"kernels").

`c_support` is the one question "does this node run in C, and with which
kernel" (compile, inspect and simulate all ask it).

Adding a kernel is one `register_kernel(...)` call in its family module.
"""
from __future__ import annotations

from onnx2mcu.ir import Graph, Node
from onnx2mcu.codegen import emit  # noqa: F401  (fills the table: every family registers)
from onnx2mcu.codegen.kernel_registry import (BACKENDS, PORTABLE, Applies, Emit, Kernel,  # noqa: F401
                                              KernelSelectionMismatch, Scratch, Selection, _KERNELS,
                                              all_kernels, kernel_for, node_dtype, preference_of,
                                              register_kernel, select_kernel)
from onnx2mcu.ops import unsupported_reason


def select_kernels(graph: Graph, board) -> dict[str, Selection]:
    """Select every node's kernel for `board` (a Board or a preference tuple) and record
    the selected nodes' scratch on the IR (`Graph.scratch`), for the scheduler.

    Nodes without a C kernel are left out (the simulator still runs them; they keep
    their op's scratch formula)."""
    preference = preference_of(board)
    selected = {}
    graph.scratch.clear()
    for node in graph.nodes:
        found = select_kernel(node, graph, preference)
        if isinstance(found, Selection):
            selected[node.name] = found
            graph.scratch[node.name] = found.scratch
    return selected


def c_support(graph: Graph, board=(PORTABLE,), tolerant: bool = False) -> dict[str, Selection | str]:
    """Per node (in graph order): the kernel that runs it in C, or why it runs only in the
    Python reference.

    Besides the registry and each kernel's `applies`, the selected emitters are run once
    against a placeholder layout, so refusals that depend on shapes inside an emitter
    (`ctx.refuse`) are reported here too.  `tolerant` (inspect, whose graphs may hold
    placeholder shapes): an emitter failing otherwise is reported as the reason instead of
    raised."""
    from onnx2mcu.codegen.context import CContext, NotSupportedInC
    from onnx2mcu.codegen.weights import layout_weights

    preference = preference_of(board)
    result: dict[str, Selection | str] = {}
    weight_offsets, _ = layout_weights(graph)
    distinct = {name: 16 * i for i, name in enumerate(sorted(graph.tensors))}
    scratch = {node.name: 16 * (len(distinct) + i) for i, node in enumerate(graph.nodes)}
    ctx = CContext(graph, distinct, dict(distinct, **weight_offsets), scratch)
    for node in graph.nodes:
        reason = unsupported_reason(node, graph)
        found = select_kernel(node, graph, preference) if reason is None else reason
        if isinstance(found, Selection):
            try:
                ctx.check_size(node, *node.inputs, *node.outputs)
                found.kernel.emit(node, ctx)
            except NotSupportedInC as exc:
                found = str(exc).split("): ", 1)[-1]
            except Exception as exc:  # noqa: BLE001 - only when asked to be tolerant
                if not tolerant:
                    raise
                found = f"cannot tell ({type(exc).__name__} lowering a node of unknown shape)"
        result[node.name] = found
    return result


def python_only(graph: Graph, board=(PORTABLE,)) -> dict[str, str]:
    """{node name: why} for the nodes only the Python reference can run."""
    return {name: found for name, found in c_support(graph, board).items()
            if not isinstance(found, Selection)}
