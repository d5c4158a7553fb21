"""Lowering of adder (L1) layers: Sub -> Abs -> ReduceSum -> Neg patterns -> AdderMatMul / AdderConv.

Recognised (all exact):
- linear:  Neg(ReduceSum(Abs(Sub(A, W)), axes=[-1]))  (or ReduceL1(Sub(A, W)), or
  Sub(W, A)), W a constant [N, K] (leading 1s allowed), A = X[..., 1, K] (or
  X[..., K] broadcast against a W of shape [N, K] with N in the axis before K)
  -> AdderMatMul(X, W).
- conv, through its unfold (im2col) export: the same core with
  A [B, 1, K, L] (K = C*kh*kw, L = OH*OW), W [M, K, 1] and the sum over axis 2,
  where A is computed from a 4-D tensor X by index-only ops (Pad, Gather with
  constant indices, Transpose, Reshape, Slice...).  Which convolution those
  ops implement is found by running them on a probe X whose elements are
  their own positions (1, 2, 3, ...): the result must equal our im2col of
  the probe for some kernel, stride, dilation and padding (searched), and
  then the whole subgraph becomes AdderConv(X, W[M, C, kh, kw]).
Then the batch norm (and any per-channel Mul/Add) that follows folds into
the op's scale and bias, as for binary layers.

No rewrite here can change results beyond float rounding (the kernels sum
the same |a - w| terms in another order; the folded affine rounds once to
float32), for every input including 0, -0 and padding: unlike Sign in
binarize.py there is no approximation to opt into.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from typing import TYPE_CHECKING

from onnx2mcu.graph_opt.binarize import DOMAIN, absorb_affine
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.adder import im2col
from onnx2mcu.ops.conv import Window
from onnx2mcu.rewrite import Rewriter, is_standard, positions, run_index_ops, scalar

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext

ADDER_OPS = {"AdderMatMul", "AdderConv"}
INDEX_OPS = {"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Pad", "Gather", "Slice",
             "Identity", "Expand"}
MAX_PROBE_ELEMENTS = 1 << 22


def _reduce_axes(ed: Rewriter, node: Node, rank: int) -> list[int] | None:
    axes = None
    if len(node.inputs) > 1 and node.inputs[1]:
        value = ed.const(node.inputs[1])
        if value is None:
            return None
        axes = [int(a) for a in np.asarray(value).reshape(-1)]
    elif node.attr("axes") is not None:
        axes = [int(a) for a in node.attr("axes")]
    if not axes:
        return None
    return sorted({a % rank for a in axes})


def _core(ed: Rewriter, neg: Node):
    """(sub node, A name, W constant, reduction axis, keepdims, nodes) of an adder core, or None."""
    if neg.op_type == "Neg":
        red = ed.producer(neg.inputs[0])
    else:
        return None
    if red is None or not is_standard(red) or ed.sole_consumer(red.outputs[0]) is not neg:
        return None
    chain = [neg, red]
    if red.op_type == "ReduceSum":
        absn = ed.producer(red.inputs[0])
        if absn is None or absn.op_type != "Abs" or ed.sole_consumer(absn.outputs[0]) is not red:
            return None
        chain.append(absn)
        sub = ed.producer(absn.inputs[0])
    elif red.op_type == "ReduceL1":
        sub = ed.producer(red.inputs[0])
    else:
        return None
    if sub is None or sub.op_type != "Sub" or not is_standard(sub) or \
            ed.sole_consumer(sub.outputs[0]) is not chain[-1]:
        return None
    chain.append(sub)
    rank = len(ed.graph.tensors[sub.outputs[0]].shape)
    axes = _reduce_axes(ed, red, rank)
    if axes is None or len(axes) != 1 or red.attr("noop_with_empty_axes", 0):
        return None
    a, b = sub.inputs
    if ed.const(b) is not None and ed.const(a) is None:
        act, w = a, ed.const(b)
    elif ed.const(a) is not None and ed.const(b) is None:
        act, w = b, ed.const(a)  # |W - A| = |A - W|
    else:
        return None
    if w.dtype != np.float32 or ed.graph.tensors[act].dtype is not DType.FLOAT32:
        return None
    return act, w, axes[0], int(red.attr("keepdims", 1)), chain


def _padded(shape, rank) -> tuple[int, ...]:
    return (1,) * (rank - len(shape)) + tuple(shape)


def _linear(ed: Rewriter, neg: Node, act: str, w: np.ndarray, axis: int, chain, stats) -> bool:
    g = ed.graph
    diff = g.tensors[chain[-1].outputs[0]].shape
    rank = len(diff)
    if rank < 2 or axis != rank - 1:
        return False
    ws = _padded(w.shape, rank)
    a_shape = _padded(g.tensors[act].shape, rank)
    if any(d != 1 for d in ws[:rank - 2]) or a_shape[rank - 2] != 1 or a_shape[:rank - 2] != diff[:rank - 2]:
        return False
    n, k = ws[rank - 2], ws[rank - 1]
    if a_shape[-1] != k:
        return False
    lead = list(diff[:rank - 2])
    x = act
    source = ed.producer(act)
    if source is not None and source.op_type in ("Unsqueeze", "Reshape") and \
            list(g.tensors[source.inputs[0]].shape) == lead + [k]:
        x = source.inputs[0]  # skip the exporter's unsqueeze
    if list(g.tensors[x].shape) != lead + [k]:
        x = ed.add_tensor(act + "_rows", lead + [k], DType.FLOAT32)
        shape = ed.add_const(act + "_rows_shape", np.array(lead + [k], dtype=np.int64))
        ed.insert_before(neg, ed.new_node(act + "_rows", "Reshape", [act, shape], [x]))
    out = neg.outputs[0]
    wname = ed.add_const(neg.name + "_w", np.ascontiguousarray(w.reshape(n, k)))
    y = out
    if list(g.tensors[out].shape) != lead + [n]:
        y = ed.add_tensor(out + "_adder", lead + [n], DType.FLOAT32)
    nodes = [ed.new_node(neg.name + "_adder", "AdderMatMul", [x, wname], [y], {}, DOMAIN)]
    if y != out:
        shape = ed.add_const(out + "_shape", np.array(g.tensors[out].shape, dtype=np.int64))
        nodes.append(ed.new_node(out + "_reshape", "Reshape", [y, shape], [out]))
    ed.replace(neg, nodes)
    stats["adder_linear"] += 1
    return True


# ----------------------------------------------------------------- conv through unfold
def _index_path(ed: Rewriter, act: str) -> list[tuple[str, list[Node]]]:
    """Candidate sources: (4-D tensor, index-only nodes from it to `act` in order), farthest first."""
    nodes: list[Node] = []
    candidates: list[tuple[str, list[Node]]] = []
    name = act
    while True:
        t = ed.graph.tensors[name]
        if len(t.shape) == 4 and nodes:
            candidates.append((name, list(reversed(nodes))))
        node = ed.producer(name)
        if node is None or not is_standard(node) or node.op_type not in INDEX_OPS:
            break
        runtime = [i for i in node.inputs if i and ed.const(i) is None]
        if len(runtime) != 1 or node.op_type == "Pad" and (
                node.attr("mode", "constant") != "constant" or
                (len(node.inputs) > 2 and node.inputs[2] and
                 scalar(ed.const(node.inputs[2]), uniform=True) != 0.0)):
            break
        nodes.append(node)
        name = runtime[0]
    return list(reversed(candidates))


def _probe(ed: Rewriter, source: str, nodes: list[Node]) -> np.ndarray | None:
    """The index ops run on X's positions 1, 2, ... (0 is left for padding)."""
    shape = ed.shape(source)
    if math.prod(shape) >= MAX_PROBE_ELEMENTS:
        return None
    return run_index_ops(ed, source, positions(shape, first=1, dtype=np.float32), nodes)


def _find_window(probe_x: np.ndarray, cols: np.ndarray, kk: int) -> tuple[Window, tuple[int, int]] | None:
    """The window whose im2col of probe_x (values 1..n in order) equals cols [B, K, L], or None.

    Each entry of cols names the input element it copies (0: padding), so the
    kernel shape, dilation, stride and padding can be read off directly; the
    result is then checked against a full im2col."""
    _, _, h, w = probe_x.shape
    pixels = cols.shape[2]
    first = cols[0, :kk, :].astype(np.int64) - 1  # channel 0 of batch 0: [kk, L], -1 = padding
    pos_h, pos_w = first // w, first % w
    valid = first >= 0
    full = np.flatnonzero(valid.all(axis=0))
    if full.size == 0:
        return None
    hs, ws_ = pos_h[:, full[0]], pos_w[:, full[0]]
    kw = int(np.argmax(hs != hs[0])) if np.any(hs != hs[0]) else kk
    if kw == 0 or kk % kw:
        return None
    kh = kk // kw
    dw = int(ws_[1] - ws_[0]) if kw > 1 else 1
    dh = int(hs[kw] - hs[0]) if kh > 1 else 1
    if dw < 1 or dh < 1:
        return None
    taps_i = np.repeat(np.arange(kh), kw)
    taps_j = np.tile(np.arange(kw), kh)
    # top-left tap of every pixel, from its first tap inside the input
    top = np.full(pixels, np.iinfo(np.int64).min)
    left = np.full(pixels, np.iinfo(np.int64).min)
    for pix in range(pixels):
        inside = np.flatnonzero(valid[:, pix])
        if inside.size:
            t = inside[0]
            top[pix] = pos_h[t, pix] - taps_i[t] * dh
            left[pix] = pos_w[t, pix] - taps_j[t] * dw
    if top[0] == np.iinfo(np.int64).min:
        return None
    same_row = np.flatnonzero(top != top[0])
    ow = int(same_row[0]) if same_row.size else pixels
    if ow == 0 or pixels % ow:
        return None
    oh = pixels // ow
    sw = int(left[1] - left[0]) if ow > 1 else 1
    sh = int(top[ow] - top[0]) if oh > 1 else 1
    pt, pl = int(-top[0]), int(-left[0])
    if min(sw, sh) < 1 or min(pt, pl) < 0:
        return None
    pb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt)
    pr = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl)
    win = Window((kh, kw), (sh, sw), (dh, dw), (pt, pl), (pb, pr), (oh, ow))
    if not np.array_equal(np.transpose(im2col(probe_x, win, (kh, kw), 0), (0, 2, 1)), cols):
        return None
    return win, (kh, kw)


def _conv(ed: Rewriter, neg: Node, act: str, w: np.ndarray, axis: int, keepdims: int, chain,
          stats) -> bool:
    g = ed.graph
    diff = g.tensors[chain[-1].outputs[0]].shape
    if len(diff) != 4 or axis != 2:
        return False
    batch, m, k, pixels = diff
    ws = _padded(w.shape, 4)
    a_shape = _padded(g.tensors[act].shape, 4)
    if ws != (1, m, k, 1) or a_shape != (batch, 1, k, pixels):
        return False
    for source, nodes in _index_path(ed, act):
        xs = g.tensors[source].shape
        c = xs[1]
        if xs[0] != batch or k % c:
            continue
        probe = _probe(ed, source, nodes)
        if probe is None:
            continue
        cols = probe.reshape(batch, k, pixels)
        probe_x = positions(xs, first=1, dtype=np.float32)
        found = _find_window(probe_x, cols, k // c)
        if found is None:
            continue
        win, (kh, kw) = found
        out = neg.outputs[0]
        y_shape = [batch, m, win.out[0], win.out[1]]
        consumer = ed.sole_consumer(out)
        drop = None
        if consumer is not None and consumer.op_type in ("Reshape", "Unsqueeze", "Squeeze", "Flatten") \
                and list(g.tensors[consumer.outputs[0]].shape) == y_shape:
            y, drop = consumer.outputs[0], consumer  # the exporter's view back to NCHW
        else:
            y = ed.add_tensor(out + "_nchw", y_shape, DType.FLOAT32)
        wname = ed.add_const(neg.name + "_w", np.ascontiguousarray(w.reshape(m, c, kh, kw)))
        attrs = {"kernel_shape": [kh, kw], "strides": list(win.strides), "dilations": list(win.dilations),
                 "pads": list(win.pads_begin) + list(win.pads_end)}
        nodes_new = [ed.new_node(neg.name + "_adder", "AdderConv", [source, wname], [y], attrs, DOMAIN)]
        if drop is None:
            shape = ed.add_const(out + "_shape", np.array(g.tensors[out].shape, dtype=np.int64))
            nodes_new.append(ed.new_node(out + "_reshape", "Reshape", [y, shape], [out]))
        ed.replace(neg, nodes_new)
        if drop is not None:
            ed.remove(drop)
        stats["adder_conv"] += 1
        return True
    return False


def lower_adder(graph: Graph, ctx: PassContext) -> dict | None:
    """The graph_opt pass.  Exact: every rewrite here computes the same sums (in another
    order, within float rounding), so none needs an option (see the module docstring)."""
    ed = Rewriter(graph, ctx.names)
    stats: Counter = Counter()
    for node in list(graph.nodes):
        if not any(n is node for n in graph.nodes) or not is_standard(node) or node.op_type != "Neg":
            continue
        core = _core(ed, node)
        if core is None:
            continue
        act, w, axis, keepdims, chain = core
        if keepdims == 0 and _linear(ed, node, act, w, axis, chain, stats):
            continue
        if keepdims == 0:
            _conv(ed, node, act, w, axis, keepdims, chain, stats)
    if not any(n.domain == DOMAIN and n.op_type in ADDER_OPS for n in graph.nodes):
        return None
    ed.remove_dead()
    absorb_affine(ed, ADDER_OPS, stats, "absorbed_affine")
    ed.remove_dead()
    return dict(stats) or None
