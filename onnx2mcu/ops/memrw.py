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

In-place convolution (TinyEngine's in-place depthwise, and the same for a
pointwise conv): when the wrapped Conv is depthwise or 1x1, of stride 1, and
its output has its data input's shape, the output may also take the data
input's bytes when that input dies there (`inplace_rule`).  An output element
reads only its own channel (depthwise) or its own pixel (1x1), so the kernel
needs only a small scratch (`conv_scratch`: one channel's padded input plane,
or two pixels' inputs), which it uses in every case so that the prologue runs
once per input element.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import DType, Graph, Node
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


def conv_path(node: Node, graph: Graph) -> str | None:
    """"depthwise" (groups == C_in == C_out) or "pointwise" (1x1, stride 1, no pads, group 1)
    for a wrapped 2-D float Conv with constant weights: the C kernel's fast paths, which take a
    scratch (`conv_scratch`) and may run in place; None otherwise."""
    if node.attr("kernel") != "Conv":
        return None
    first = 1 if node.op_type == ACCUMULATE else 0
    if len(node.inputs) < first + 2 or not node.inputs[first] or not node.inputs[first + 1]:
        return None
    x, w = graph.tensors[node.inputs[first]], graph.tensors[node.inputs[first + 1]]
    y = graph.tensors[node.outputs[0]]
    if x.is_const or not w.is_const or len(x.shape) != 4 or len(w.shape) != 4 \
            or x.dtype is not DType.FLOAT32 or y.dtype is not DType.FLOAT32:
        return None
    channels = x.shape[1]
    group = node.attr("group", 1)
    if group == channels and w.shape[0] == channels and w.shape[1] == 1:
        return "depthwise"
    win = _conv_window(node, graph)
    if group == 1 and tuple(w.shape[2:]) == (1, 1) and win.strides == (1, 1) and win.pads_begin == (0, 0) \
            and win.out == tuple(x.shape[2:]):
        return "pointwise"
    return None


def _conv_window(node: Node, graph: Graph):
    from onnx2mcu.ops.conv import window

    first = 1 if node.op_type == ACCUMULATE else 0
    x, w = graph.tensors[node.inputs[first]], graph.tensors[node.inputs[first + 1]]
    return window(kernel_node(node), tuple(x.shape[2:]), tuple(w.shape[2:]))


def inplace_kind(node: Node, graph: Graph) -> str | None:
    """`conv_path` when the conv can also overwrite its data input (output shaped as the
    input: stride 1 for a depthwise conv, C_out == C_in for a 1x1), else None."""
    path = conv_path(node, graph)
    first = 1 if node.op_type == ACCUMULATE else 0
    if path is None or graph.tensors[node.inputs[first]].shape != graph.tensors[node.outputs[0]].shape:
        return None
    if path == "depthwise" and _conv_window(node, graph).strides != (1, 1):
        return None
    return path


def _inplace_rule(node: Node, graph: Graph) -> tuple[int, ...]:
    # AccumulateKernel: ACC (input 0), which dies here in the rewritten graphs, first
    accumulator = (0,) if node.op_type == ACCUMULATE else ()
    if inplace_kind(node, graph) is None:
        return accumulator
    return accumulator + (1 if node.op_type == ACCUMULATE else 0,)


def conv_scratch(node: Node, graph: Graph) -> int:
    """Bytes of the conv's fast path (runtime_c/o2m_memrw.c): one channel's padded input plane
    (depthwise) or two pixels' C_in inputs (1x1)."""
    path = conv_path(node, graph)
    if path is None:
        return 0
    first = 1 if node.op_type == ACCUMULATE else 0
    if path == "pointwise":
        return 8 * graph.tensors[node.inputs[first]].shape[1]
    win = _conv_window(node, graph)
    rows, cols = ((o - 1) * s + (k - 1) * d + 1 for o, s, k, d in
                  zip(win.out, win.strides, win.kernel, win.dilations))
    return 4 * rows * cols


register(FUSED, _fused, domain=DOMAIN, dtypes=(FLOAT,), check=_check, macs=_macs,
         inplace_rule=_inplace_rule, scratch_bytes=conv_scratch)
register(ACCUMULATE, _accumulate, domain=DOMAIN, dtypes=(FLOAT,), check=_check, macs=_macs,
         inplace_rule=_inplace_rule, scratch_bytes=conv_scratch)
