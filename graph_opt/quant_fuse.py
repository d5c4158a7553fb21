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

Each rewrite is kept only when the rewritten node runs on the integers (its op's
`int8_check`); otherwise the graph is left as it was.  Reported as counts.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, QuantParams, Tensor
from onnx2mcu.ops import lookup
from onnx2mcu.ops.int8 import ACT_ATTR, FUSABLE_ACT_OPS


def fuse_quantized(graph: Graph, options=None) -> dict | None:
    if not any(t.quant is not None for t in graph.tensors.values()):
        return None
    counts = {"bias": 0, "transposed_weights": 0, "activation": 0}
    counts["bias"] = _fuse_bias(graph)
    counts["transposed_weights"] = _transpose_gemm_weights(graph)
    counts["activation"] = _fuse_activations(graph)
    graph.validate()
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


def _fuse_activations(graph: Graph) -> int:
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
        new = Node(node.name, node.op_type, list(node.inputs), [y, *node.outputs[1:]], attrs, node.domain)
        if _try_replace(graph, [node, act], new, drop=[t], added=[]):
            done += 1
    return done
