"""Exact rewrites that let quantized nodes run on the integers (before graph_opt/float_islands.py).

frontend/qdq.py leaves the ops between a model's Q/DQ pairs as they are, so a QDQ model reads

    MatMul(x_q, W_q) -> t ; Add(t, b_q) -> u ; Relu(u) -> y_q      (tf2onnx's fully connected)
    Conv(x_q, w_q, b_q) -> c ; Relu(c) / Clip(c, 0, 6) -> y_q     (a fused activation)

This pass makes them what an int8 kernel computes:

* MatMul + Add of an int32 bias constant -> Gemm(x_q, W_q transposed [N, K], b_q, transB=1):
  the same real values (the bias joins the int32 accumulator, as in TFLite); a Gemm with
  transB=0 and an int8 constant B gets the transposed constant too;
* a Relu or Clip (constant bounds) following Conv / Gemm / MatMul / Add / Sub / Mul moves into
  the producer's quantized output bounds (attribute ops.int8.ACT_ATTR): exact, because
  quantization is monotone, so Q(clip(v, lo, hi)) == clip(Q(v), Q(lo), Q(hi)).

* a float bias constant of a Conv / Gemm whose input and weights are quantized int8 (PyTorch's
  PT2E quantizers leave biases float: DQ(x) -> Conv(., DQ(w), b) -> Q) becomes int32 at the
  accumulator's scale, input scale x weight scale per channel, zero point 0, rounded half to
  even: what TFLite's converter and XNNPACK do with such a bias.  Not exact: each output moves
  by at most half an accumulator step (input scale x weight scale / 2, far below one output
  step); reported as the count "float_bias" and a note.

Each rewrite is kept only when the rewritten node runs on the integers (its op's
`int8_check`); otherwise the graph is left as it was.  Reported as counts.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, QuantParams, Tensor
from onnx2mcu.ops import lookup
from onnx2mcu.ops.int8 import ACT_ATTR, FUSABLE_ACT_OPS


def fuse_quantized(graph: Graph, ctx=None) -> dict | None:
    if not any(t.quant is not None for t in graph.tensors.values()):
        return None
    counts = {"bias": 0, "transposed_weights": 0, "activation": 0, "float_bias": 0}
    counts["bias"] = _fuse_bias(graph)
    counts["transposed_weights"] = _transpose_gemm_weights(graph)
    biases: list[str] = []
    counts["activation"] = _fuse_activations(graph, biases)
    _quantize_biases(graph, biases)
    counts["float_bias"] = len(biases)
    graph.validate()
    if biases and ctx is not None:
        shown = ", ".join(f"'{n}'" for n in biases[:4]) + (f" and {len(biases) - 4} more" if len(biases) > 4 else "")
        ctx.report.note(f"{len(biases)} float bias(es) of int8 Conv/Gemm quantized to int32 at input scale x "
                        f"weight scale (the model left them float; within half an accumulator step): {shown}")
    return {k: v for k, v in counts.items() if v} or None


def _integer_ok(graph: Graph, node: Node) -> bool:
    op = lookup(node.op_type, node.domain)
    return op is not None and op.int8_check is not None and op.int8_check(node, graph) is None


def _only_reader(graph: Graph, name: str) -> Node | None:
    readers = graph.consumers().get(name, [])
    if len(readers) != 1 or name in graph.outputs:
        return None
    return readers[0]


def _fresh(graph: Graph, base: str) -> str:
    name, i = base, 1
    while name in graph.tensors:
        i += 1
        name = f"{base}_{i}"
    return name


def _transposed_constant(graph: Graph, name: str) -> str:
    """A [N, K] copy of the 2-D int8 constant `name` ([K, N]), its per-axis quantization moved."""
    tensor = graph.tensors[name]
    q = tensor.quant
    axis = None if q.axis is None else 1 - q.axis
    new = _fresh(graph, f"{name}_transposed")
    graph.tensors[new] = Tensor(new, tuple(tensor.shape[::-1]), tensor.dtype,
                                np.ascontiguousarray(tensor.data.T),
                                quant=QuantParams(q.scale, q.zero_point, axis))
    return new


def _int8_const_2d(graph: Graph, name: str) -> bool:
    tensor = graph.tensors.get(name)
    return (tensor is not None and tensor.is_const and tensor.dtype is DType.INT8
            and tensor.quant is not None and len(tensor.shape) == 2)


def _try_replace(graph: Graph, old: list[Node], new: Node, drop: list[str], added: list[str]) -> bool:
    """Replace the nodes `old` by `new` (at the first one's place) if `new` runs on integers."""
    nodes = list(graph.nodes)
    at = nodes.index(old[0])
    graph.nodes[:] = [n for n in nodes if n not in old]
    graph.nodes.insert(at, new)
    if _integer_ok(graph, new):
        for name in drop:
            del graph.tensors[name]
        return True
    graph.nodes[:] = nodes
    for name in added:
        del graph.tensors[name]
    return False


def _fuse_bias(graph: Graph) -> int:
    done = 0
    for node in list(graph.nodes):
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or node not in graph.nodes:
            continue
        a, w = node.inputs[0], node.inputs[1]
        t = node.outputs[0]
        if len(graph.tensors[a].shape) != 2 or not _int8_const_2d(graph, w):
            continue
        if graph.tensors[t].quant is not None:
            continue
        add = _only_reader(graph, t)
        if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx"):
            continue
        bias = add.inputs[1] if add.inputs[0] == t else add.inputs[0]
        b = graph.tensors[bias]
        n = graph.tensors[w].shape[1]
        if not (b.is_const and b.dtype is DType.INT32 and b.quant is not None and b.numel == n
                and b.quant.axis in (None, len(b.shape) - 1)):
            continue
        flat = bias
        added = []
        if len(b.shape) != 1:
            flat = _fresh(graph, f"{bias}_flat")
            axis = None if b.quant.axis is None else 0
            graph.tensors[flat] = Tensor(flat, (n,), DType.INT32, b.data.reshape(n).copy(),
                                         quant=QuantParams(b.quant.scale, b.quant.zero_point, axis))
            added.append(flat)
        wt = _transposed_constant(graph, w)
        added.append(wt)
        old, drop, attrs, out = [node, add], [t], {"transB": 1}, add.outputs[0]
        act = _only_reader(graph, out) if graph.tensors[out].quant is None else None
        bounds = _act_range(graph, act) if act is not None and act.inputs[0] == out else None
        if bounds is not None:  # MatMul + bias + Relu: one Gemm with fused bounds
            old, drop, attrs[ACT_ATTR], out = old + [act], drop + [out], bounds, act.outputs[0]
        gemm = Node(node.name, "Gemm", [a, wt, flat], [out], attrs)
        if _try_replace(graph, old, gemm, drop=drop, added=added):
            done += 1
    return done


def _transpose_gemm_weights(graph: Graph) -> int:
    done = 0
    for node in list(graph.nodes):
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx") or node.attr("transB", 0):
            continue
        if node.attr("transA", 0) or not _int8_const_2d(graph, node.inputs[1]):
            continue
        wt = _transposed_constant(graph, node.inputs[1])
        attrs = dict(node.attrs, transB=1)
        new = Node(node.name, "Gemm", [node.inputs[0], wt, *node.inputs[2:]], list(node.outputs), attrs)
        if _try_replace(graph, [node], new, drop=[], added=[wt]):
            done += 1
    return done


def _act_range(graph: Graph, node: Node) -> tuple[float, float] | None:
    """Real bounds of a Relu or a Clip with constant (or absent) bounds."""
    if node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Relu":
        return 0.0, math.inf
    if node.op_type != "Clip":
        return None
    bounds = []
    for index, attr, default in ((1, "min", -math.inf), (2, "max", math.inf)):
        name = node.inputs[index] if len(node.inputs) > index else ""
        if name:
            tensor = graph.tensors[name]
            if not tensor.is_const or tensor.dtype is not DType.FLOAT32 or tensor.numel != 1:
                return None
            bounds.append(float(tensor.data.reshape(-1)[0]))
        else:
            value = node.attr(attr)
            bounds.append(default if value is None else float(value))
    return bounds[0], bounds[1]


# ----- float biases -------------------------------------------------------------------
BIAS_OPS = ("Conv", "Gemm")
INT32_LIMIT = 2.0 ** 31 - 1


def _int32_bias(graph: Graph, node: Node) -> str | None:
    """Add the int32 twin of the node's float bias constant (see the module docstring) and
    return its name, or None when the node has no such bias or its inputs are not int8."""
    if node.op_type not in BIAS_OPS or node.domain not in ("", "ai.onnx") or len(node.inputs) < 3:
        return None
    x, w, b = (graph.tensors.get(n) if n else None for n in node.inputs[:3])
    if x is None or w is None or b is None or not b.is_const or b.dtype is not DType.FLOAT32:
        return None
    if x.dtype is not DType.INT8 or x.quant is None or x.quant.per_axis or x.is_const:
        return None
    if not w.is_const or w.dtype is not DType.INT8 or w.quant is None:
        return None
    channel_axis = 0 if node.op_type == "Conv" or node.attr("transB", 0) else 1
    channels = w.shape[channel_axis]
    if len(b.shape) != 1 or b.shape[0] != channels:
        return None
    if w.quant.per_axis and w.quant.axis != channel_axis:
        return None
    scales = np.float32(x.quant.scale) * np.broadcast_to(np.asarray(w.quant.scale, np.float32), (channels,))
    with np.errstate(all="ignore"):
        values = np.rint(b.data.astype(np.float64) / scales.astype(np.float64))
    if not np.all(np.abs(values) <= INT32_LIMIT):
        return None
    name = _fresh(graph, f"{b.name}_int32")
    graph.tensors[name] = Tensor(name, (channels,), DType.INT32, values.astype(np.int32),
                                 quant=QuantParams(scales.astype(np.float32), np.zeros(channels, np.int32), 0))
    return name


def _unused_after(graph: Graph, name: str, old: list[Node]) -> list[str]:
    """[name] when only the nodes `old` read it (so it goes with them), else []."""
    readers = graph.consumers().get(name, [])
    return [name] if all(r in old for r in readers) and name not in graph.outputs else []


def _quantize_biases(graph: Graph, done: list[str]) -> None:
    """The Conv / Gemm nodes already quantized on both sides (DQ -> Conv -> Q) with a float bias."""
    for node in list(graph.nodes):
        bias = _int32_bias(graph, node)
        if bias is None:
            continue
        old_bias = node.inputs[2]
        inputs = [*node.inputs[:2], bias, *node.inputs[3:]]
        new = Node(node.name, node.op_type, inputs, list(node.outputs), dict(node.attrs), node.domain)
        if _try_replace(graph, [node], new, drop=_unused_after(graph, old_bias, [node]), added=[bias]):
            done.append(old_bias)


def _fuse_activations(graph: Graph, biases: list[str]) -> int:
    """Relu / Clip into the producer's bounds; a float bias of the producer is quantized with it
    (the node runs on the integers only with both), and its name added to `biases`."""
    done = 0
    for node in list(graph.nodes):
        if node.op_type not in FUSABLE_ACT_OPS or node.domain not in ("", "ai.onnx") or node not in graph.nodes:
            continue
        t = node.outputs[0]
        if graph.tensors[t].quant is not None or graph.tensors[t].dtype is not DType.FLOAT32:
            continue
        act = _only_reader(graph, t)
        if act is None or act.inputs[0] != t:
            continue
        bounds = _act_range(graph, act)
        y = act.outputs[0]
        if bounds is None or graph.tensors[y].quant is None:
            continue
        low, high = bounds
        old_low, old_high = node.attr(ACT_ATTR, (-math.inf, math.inf))
        attrs = dict(node.attrs)
        attrs[ACT_ATTR] = (max(low, old_low), min(high, old_high))
        inputs, added, drop = list(node.inputs), [], [t]
        bias = _int32_bias(graph, node)
        if bias is not None:
            drop += _unused_after(graph, inputs[2], [node])
            inputs[2], added = bias, [bias]
        new = Node(node.name, node.op_type, inputs, [y, *node.outputs[1:]], attrs, node.domain)
        if _try_replace(graph, [node, act], new, drop=drop, added=added):
            done += 1
            if bias is not None:
                biases.append(node.inputs[2])
    return done
