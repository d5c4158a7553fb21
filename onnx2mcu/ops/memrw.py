"""Memory-rewrite kernels of the `onnx2mcu` domain: a standard kernel with an
activation applied on load, a batch norm applied on store, and an
"accumulate into the output" mode (docs/ARCHITECTURE.md, memory model; the
rewrites are graph_opt/act_on_load.py, graph_opt/eager_accumulation.py and
graph_opt/partial_conv.py).

    FusedKernel(kernel inputs..., [bn scale, bn bias, bn mean, bn var]) -> Y
    AccumulateKernel(ACC, kernel inputs..., [bn ...]) -> Y = ACC + FusedKernel(...)

Attributes: `kernel` (the standard op: Conv, MaxPool, AveragePool, Gemm,
BatchNormalization, Identity), `n_kernel` (how many of the inputs are the
kernel's), the kernel's own attributes unchanged, `prologue` ("" | "Relu" |
"Clip") with `clip_min`/`clip_max`, applied elementwise to the kernel's
first input as it is loaded (padding is not an input element: the kernel's
own padding rule applies after it), `epilogue` ("" | "BatchNormalization")
with `epsilon`, applied to the kernel's result before it is stored.

The memory rules (onnx2mcu/memory.py) follow from the flags: the
pre-activation tensor is the only one stored (the activation's output does
not exist), and AccumulateKernel's output takes ACC's bytes when ACC dies
there (its in-place input 0), so an accumulation costs no new buffer.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops.registry import FLOAT, lookup, register

DOMAIN = "onnx2mcu"
FUSED, ACCUMULATE = "FusedKernel", "AccumulateKernel"
OWN_ATTRS = frozenset({"kernel", "n_kernel", "prologue", "clip_min", "clip_max", "epilogue"})
PROLOGUES = ("", "Relu", "Clip")


def kernel_node(node: Node) -> Node:
    """The standard node this fused node runs (its inputs without ACC and the epilogue's)."""
    first = 1 if node.op_type == ACCUMULATE else 0
    n_kernel = int(node.attr("n_kernel"))
    attrs = {k: v for k, v in node.attrs.items() if k not in OWN_ATTRS}
    if node.attr("epilogue"):
        attrs.pop("epsilon", None)
    return Node(node.name, node.attr("kernel"), node.inputs[first:first + n_kernel], list(node.outputs[:1]),
                attrs)


def apply_prologue(node: Node, x: np.ndarray) -> np.ndarray:
    kind = node.attr("prologue", "")
    if kind == "Relu":
        return np.maximum(x, 0).astype(x.dtype)
    if kind == "Clip":
        lo, hi = node.attr("clip_min"), node.attr("clip_max")
        y = x
        if lo is not None:
            y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
        if hi is not None:
            y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
        return y.astype(x.dtype)
    return x


def _fused_value(node: Node, inputs: list) -> np.ndarray:
    first = 1 if node.op_type == ACCUMULATE else 0
    n_kernel = int(node.attr("n_kernel"))
    inner = kernel_node(node)
    args = list(inputs[first:first + n_kernel])
    args[0] = apply_prologue(node, args[0])
    op = lookup(inner.op_type)
    y = op.reference(inner, args)[0]
    if node.attr("epilogue") == "BatchNormalization":
        bn = lookup("BatchNormalization")
        bn_node = Node(node.name, "BatchNormalization", [], [],
                       {"epsilon": node.attr("epsilon", 1e-5)})
        y = bn.reference(bn_node, [y] + list(inputs[first + n_kernel:first + n_kernel + 4]))[0]
    return y


def _fused(node: Node, inputs: list) -> list:
    return [_fused_value(node, inputs)]


def _accumulate(node: Node, inputs: list) -> list:
    acc = inputs[0]
    return [(acc + _fused_value(node, inputs)).astype(acc.dtype)]


def _check(node: Node, graph: Graph) -> str | None:
    if node.attr("prologue", "") not in PROLOGUES:
        return f"prologue '{node.attr('prologue')}' not supported"
    inner = lookup(node.attr("kernel", ""))
    if inner is None:
        return f"kernel '{node.attr('kernel')}' not supported"
    if inner.check is not None:
        return inner.check(kernel_node(node), graph)
    return None


def _macs(node: Node, graph: Graph) -> int:
    inner = lookup(node.attr("kernel", ""))
    out = graph.tensors[node.outputs[0]].numel
    extra = out if node.op_type == ACCUMULATE else 0
    return (inner.macs(kernel_node(node), graph) if inner is not None else out) + extra


register(FUSED, _fused, domain=DOMAIN, dtypes=(FLOAT,), check=_check, macs=_macs)
# input 0 (ACC) dies here in the rewritten graphs, so the output takes its bytes
register(ACCUMULATE, _accumulate, domain=DOMAIN, dtypes=(FLOAT,), check=_check, macs=_macs,
         inplace_inputs=(0,))
