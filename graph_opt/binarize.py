"""Lowering of binary (XNOR-popcount) layers: patterns -> BinaryMatMul/BinaryConv -> packed ops.

1. Patterns.  A MatMul / Gemm / Conv whose activation input is binarized and
   whose constant weight holds one magnitude per output channel (+-alpha_j,
   e.g. folded from sign(W) * mean|W|) becomes a float-form `BinaryMatMul` /
   `BinaryConv` (ops/binary.py) with scale alpha_j (times the activation's
   scale) and the Gemm/Conv bias.  A binarized activation is
       Sign(x)                          (0 -> +1 here, see the mapping below)
       Where(Less(x, 0), -c, c)         (exact, c > 0 a scalar constant)
       Where(GreaterOrEqual(x, 0), c, -c)
   optionally times a positive scalar constant.
2. Affine absorption (shared with graph_opt/adder.py): Mul / Div / Add / Sub
   by per-channel or scalar constants and BatchNormalization that follow the
   layer alone fold into its per-channel scale and bias (float64, then
   float32).
3. Lowering.  Float-form ops with constant weights become PackSigns (one per
   activation tensor and axis, shared) + XnorGemm / XnorConv: weights packed
   to 32-bit words along the reduction dimension (1/32 of the float bytes),
   scale and bias into one [channels, 2] float table.
4. Thresholds.  When a layer's only consumer is the next layer's PackSigns,
   the float output is never needed: the layer writes packed bits directly,
   bit = dir * dot < thr, with (dir, thr) chosen by evaluating the float32
   finish exactly over every possible dot product, so the result equals
   "float output < 0" bit for bit.

Sign mapping: -1 where x < 0, +1 elsewhere (0, -0 and NaN give +1), in the
simulator and in the C kernels alike.  ONNX's Sign(0) is 0, so a lowered
`Sign` pattern differs from onnxruntime only where an activation is exactly
0; the Where forms above are exact.  Everything else here is exact in real
arithmetic; folded constants round once to float32.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops.binary import pack_signs, words
from onnx2mcu.ops.conv import window

DOMAIN = "onnx2mcu"
FLOAT_FORM = {"BinaryMatMul", "BinaryConv"}


# ----------------------------------------------------------------- graph editing helpers
class Editor:
    """Small helpers to rewrite an IR graph in place."""

    def __init__(self, graph: Graph):
        self.g = graph
        self._maps: tuple[dict, dict] | None = None

    # maps are recomputed after every change (graphs here have at most a few thousand nodes)
    def changed(self) -> None:
        self._maps = None

    def _get(self) -> tuple[dict, dict]:
        if self._maps is None:
            self._maps = (self.g.producers(), self.g.consumers())
        return self._maps

    def producer(self, name: str) -> Node | None:
        return self._get()[0].get(name)

    def consumers(self, name: str) -> list[Node]:
        return self._get()[1].get(name, [])

    def sole_consumer(self, name: str) -> Node | None:
        users = self.consumers(name)
        if len(users) == 1 and name not in self.g.outputs:
            return users[0]
        return None

    def const(self, name: str) -> np.ndarray | None:
        if not name or name not in self.g.tensors:
            return None
        return self.g.tensors[name].data

    def fresh(self, base: str) -> str:
        taken = set(self.g.tensors) | {n.name for n in self.g.nodes}
        name, i = base, 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        return name

    def add_const(self, base: str, data: np.ndarray, dtype: DType | None = None,
                  shape: tuple[int, ...] | None = None) -> str:
        name = self.fresh(base)
        data = np.ascontiguousarray(data)
        dtype = dtype or DType.from_numpy(data.dtype)
        self.g.tensors[name] = Tensor(name, tuple(shape if shape is not None else data.shape), dtype, data)
        return name

    def add_tensor(self, base: str, shape, dtype: DType) -> str:
        name = self.fresh(base)
        self.g.tensors[name] = Tensor(name, tuple(int(d) for d in shape), dtype)
        return name

    def insert_before(self, anchor: Node, node: Node) -> None:
        self.g.nodes.insert(self.g.nodes.index(anchor), node)
        self.changed()

    def replace(self, old: Node, new: list[Node]) -> None:
        index = self.g.nodes.index(old)
        self.g.nodes[index:index + 1] = new
        self.changed()

    def remove(self, node: Node) -> None:
        self.g.nodes.remove(node)
        self.changed()

    def new_node(self, base: str, op_type: str, inputs, outputs, attrs=None, domain: str = "") -> Node:
        names = {n.name for n in self.g.nodes}
        name, i = base, 0
        while name in names:
            i += 1
            name = f"{base}_{i}"
        return Node(name, op_type, list(inputs), list(outputs), dict(attrs or {}), domain)

    def remove_dead(self) -> None:
        """Drop nodes whose outputs nobody reads, then tensors nothing refers to."""
        outputs = set(self.g.outputs)
        while True:
            used = {n for node in self.g.nodes for n in node.inputs if n} | outputs
            dead = [node for node in self.g.nodes
                    if not any(o in used for o in node.outputs if o)]
            if not dead:
                break
            for node in dead:
                self.g.nodes.remove(node)
        referenced = {n for node in self.g.nodes for n in node.inputs + node.outputs if n}
        referenced |= set(self.g.inputs) | outputs
        for name in [t for t in self.g.tensors if t not in referenced]:
            del self.g.tensors[name]
        self.changed()


def scalar(value: np.ndarray | None) -> float | None:
    """The value of a constant whose elements are all equal (a scalar in effect), else None."""
    if value is None or np.asarray(value).size == 0:
        return None
    flat = np.asarray(value).reshape(-1)
    if not np.all(flat == flat[0]):
        return None
    return float(flat[0])


def channel_vector(value: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """A constant that broadcasts along `axis` only (or is a scalar) as a [C] float64 vector."""
    value = np.asarray(value, dtype=np.float64)
    rank = len(out_shape)
    channels = out_shape[axis]
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    for i, d in enumerate(shape):
        if i != axis and d != 1:
            return None
    if shape[axis] != channels:
        return None
    return value.reshape(-1)


# ----------------------------------------------------------------- 1. patterns
def binarized_source(ed: Editor, name: str) -> tuple[str, float] | None:
    """If tensor `name` is c * sign(x) under our mapping, return (x, c)."""
    node = ed.producer(name)
    if node is None or node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type == "Sign":
        return node.inputs[0], 1.0
    if node.op_type == "Mul":
        for a, b in ((0, 1), (1, 0)):
            c = scalar(ed.const(node.inputs[b]))
            if c is not None and c > 0 and ed.const(node.inputs[a]) is None:
                inner = binarized_source(ed, node.inputs[a])
                if inner is not None:
                    return inner[0], inner[1] * c
        return None
    if node.op_type == "Where" and len(node.inputs) == 3:
        cond = ed.producer(node.inputs[0])
        hi, lo = scalar(ed.const(node.inputs[1])), scalar(ed.const(node.inputs[2]))
        if cond is None or hi is None or lo is None or cond.domain not in ("", "ai.onnx"):
            return None
        zero = scalar(ed.const(cond.inputs[1])) if len(cond.inputs) == 2 else None
        if zero != 0.0 or ed.const(cond.inputs[0]) is not None:
            return None
        x = cond.inputs[0]
        if ed.g.tensors[x].shape != ed.g.tensors[name].shape:
            return None  # a constant widened the result
        if cond.op_type == "Less" and hi < 0 and lo == -hi:  # x < 0 -> -c, else c
            return x, lo
        if cond.op_type == "GreaterOrEqual" and lo < 0 and hi == -lo:  # x >= 0 -> c, else -c
            return x, hi
    return None


def per_channel_magnitude(w: np.ndarray, axis: int) -> np.ndarray | None:
    """alpha[c] when every entry of slice c (along `axis`) has magnitude alpha[c], else None."""
    w = np.asarray(w)
    if w.dtype != np.float32 or w.size == 0:
        return None
    mags = np.moveaxis(np.abs(w.astype(np.float64)), axis, 0).reshape(w.shape[axis], -1)
    alpha = mags[:, 0]
    if not np.all(mags == alpha[:, None]) or not np.all(np.isfinite(alpha)):
        return None
    return alpha


def _patterns(ed: Editor, stats: Counter) -> None:
    g = ed.g
    for node in list(g.nodes):
        if node.domain not in ("", "ai.onnx") or node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        if node not in g.nodes:
            continue
        src = binarized_source(ed, node.inputs[0])
        if src is None:
            continue
        x, c = src
        w = ed.const(node.inputs[1])
        if w is None or g.tensors[x].dtype is not DType.FLOAT32:
            continue
        out = node.outputs[0]
        if node.op_type == "Conv":
            if node.attr("group", 1) != 1 or w.ndim != 4:
                continue
            alpha = per_channel_magnitude(w, 0)
            if alpha is None:
                continue
            bias = ed.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
            if len(node.inputs) > 2 and node.inputs[2] and bias is None:
                continue
            wt = np.where(w < 0, np.float32(-1), np.float32(1)).astype(np.float32)
            scale = (alpha * c).astype(np.float32)
            inputs = [x, ed.add_const(node.name + "_wsign", wt), ed.add_const(node.name + "_scale", scale)]
            if bias is not None:
                inputs.append(ed.add_const(node.name + "_bias", bias.astype(np.float32)))
            attrs = {k: v for k, v in node.attrs.items()
                     if k in ("kernel_shape", "strides", "pads", "dilations", "auto_pad")}
            new = ed.new_node(node.name, "BinaryConv", inputs, [out], attrs, DOMAIN)
        else:
            if w.ndim != 2 or (node.op_type == "Gemm" and node.attr("transA", 0)):
                continue
            wk = w.T if node.op_type == "Gemm" and node.attr("transB", 0) else w  # [K, N]
            alpha = per_channel_magnitude(wk, 1)
            if alpha is None:
                continue
            gain = float(node.attr("alpha", 1.0)) if node.op_type == "Gemm" else 1.0
            bias = None
            if node.op_type == "Gemm" and len(node.inputs) > 2 and node.inputs[2]:
                cval = ed.const(node.inputs[2])
                if cval is None:
                    continue
                bias = channel_vector(cval, g.tensors[out].shape, len(g.tensors[out].shape) - 1)
                if bias is None:
                    continue
                bias = bias * float(node.attr("beta", 1.0))
            wt = np.where(wk.T < 0, np.float32(-1), np.float32(1)).astype(np.float32)  # [N, K]
            scale = (alpha * c * gain).astype(np.float32)
            inputs = [x, ed.add_const(node.name + "_wsign", wt), ed.add_const(node.name + "_scale", scale)]
            if bias is not None:
                inputs.append(ed.add_const(node.name + "_bias", bias.astype(np.float32)))
            new = ed.new_node(node.name, "BinaryMatMul", inputs, [out], {}, DOMAIN)
        ed.replace(node, [new])
        stats["binary_patterns"] += 1


# ----------------------------------------------------------------- 2. affine absorption
def channel_axis(ed: Editor, node: Node) -> int:
    """Axis of output channels in the output of a float-form binary/adder op."""
    rank = len(ed.g.tensors[node.outputs[0]].shape)
    return 1 if node.op_type.endswith("Conv") else rank - 1


def absorb_affine(ed: Editor, ops: set[str], stats: Counter, key: str) -> None:
    """Fold Mul/Div/Add/Sub/BatchNormalization after `ops` nodes into their scale and bias."""
    g = ed.g
    for node in list(g.nodes):
        if node.domain != DOMAIN or node.op_type not in ops:
            continue
        while True:
            out = node.outputs[0]
            nxt = ed.sole_consumer(out)
            if nxt is None or nxt.domain not in ("", "ai.onnx"):
                break
            shape = g.tensors[out].shape
            axis = channel_axis(ed, node)
            if not nxt.outputs or g.tensors[nxt.outputs[0]].shape != shape:
                break
            mul = add = None
            op = nxt.op_type
            if op in ("Mul", "Add", "Sub", "Div") and len(nxt.inputs) == 2:
                other = nxt.inputs[1] if nxt.inputs[0] == out else nxt.inputs[0]
                value = ed.const(other)
                if value is None or (op in ("Sub", "Div") and nxt.inputs[0] != out):
                    break
                vec = channel_vector(value, shape, axis)
                if vec is None:
                    break
                if op == "Mul":
                    mul = vec
                elif op == "Div":
                    if np.any(vec == 0):
                        break
                    mul = 1.0 / vec
                elif op == "Add":
                    add = vec
                else:
                    add = -vec
            elif op == "BatchNormalization" and not any(nxt.outputs[1:]):
                if axis != 1 or len(shape) < 2:
                    break
                params = [ed.const(n) for n in nxt.inputs[1:5]]
                if any(p is None for p in params):
                    break
                gamma, beta, mean, var = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
                s = gamma / np.sqrt(var + float(nxt.attr("epsilon", 1e-5)))
                mul, add = s, beta - mean * s
            else:
                break
            scale, bias = _scale_bias(ed, node)
            if mul is not None:
                scale, bias = scale * mul, bias * mul
            if add is not None:
                bias = bias + add
            _set_scale_bias(ed, node, scale, bias)
            node.outputs[0] = nxt.outputs[0]
            ed.remove(nxt)
            stats[key] += 1


def _scale_bias(ed: Editor, node: Node) -> tuple[np.ndarray, np.ndarray]:
    channels = ed.g.tensors[node.outputs[0]].shape[channel_axis(ed, node)]
    scale = ed.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    bias = ed.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    scale = np.ones(channels) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
    bias = np.zeros(channels) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    return scale, bias


def _set_scale_bias(ed: Editor, node: Node, scale: np.ndarray, bias: np.ndarray) -> None:
    while len(node.inputs) < 4:
        node.inputs.append("")
    node.inputs[2] = ed.add_const(node.name + "_scale", scale.astype(np.float32))
    node.inputs[3] = ed.add_const(node.name + "_bias", bias.astype(np.float32))
    ed.changed()


# ----------------------------------------------------------------- 3. lowering
def _p_table(ed: Editor, node: Node, channels: int) -> np.ndarray:
    scale = ed.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    bias = ed.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    table = np.empty((channels, 2), dtype=np.float32)
    table[:, 0] = 1.0 if scale is None else np.asarray(scale, dtype=np.float32).reshape(-1)
    # -0.0 adds nothing to any value, so "no bias" and this table agree bit for bit
    table[:, 1] = -0.0 if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    return table


def _lower(ed: Editor, stats: Counter) -> None:
    g = ed.g
    packs: dict[tuple[str, int], str] = {}
    for node in list(g.nodes):
        if node.domain != DOMAIN or node.op_type not in FLOAT_FORM:
            continue
        x, wname = node.inputs[0], node.inputs[1]
        w = ed.const(wname)
        xt = g.tensors[x]
        scale_ok = all(not n or ed.const(n) is not None for n in node.inputs[2:4])
        if w is None or xt.dtype is not DType.FLOAT32 or not scale_ok:
            continue
        conv = node.op_type == "BinaryConv"
        if conv and (node.attr("group", 1) != 1 or len(xt.shape) != 4):
            continue
        axis = 1 if conv else len(xt.shape) - 1
        key = (x, axis)
        new_nodes: list[Node] = []
        if key not in packs:
            moved = list(xt.shape[:axis]) + list(xt.shape[axis + 1:]) + [xt.shape[axis]]
            packed = ed.add_tensor(x + "_bits", moved, DType.BIT)
            new_nodes.append(ed.new_node(x + "_pack", "PackSigns", [x], [packed], {"axis": axis}, DOMAIN))
            packs[key] = packed
            stats["packed_activations"] += 1
        out = node.outputs[0]
        if conv:
            wt = np.transpose(w, (0, 2, 3, 1))  # [M, kh, kw, C]
            kernel = tuple(int(d) for d in w.shape[2:])
            win = window(node, tuple(xt.shape[2:]), kernel)
            attrs = {"kernel_shape": list(kernel), "strides": list(win.strides),
                     "pads": list(win.pads_begin) + list(win.pads_end), "dilations": list(win.dilations),
                     "channels": int(xt.shape[1]), "output": "float"}
            op_type = "XnorConv"
        else:
            wt = w
            attrs = {"k": int(xt.shape[-1]), "output": "float"}
            op_type = "XnorGemm"
        wbits = ed.add_const(node.name + "_wbits", pack_signs(wt), DType.BIT, tuple(wt.shape))
        table = ed.add_const(node.name + "_affine", _p_table(ed, node, w.shape[0]))
        new_nodes.append(ed.new_node(node.name, op_type, [packs[key], wbits, table], [out], attrs, DOMAIN))
        stats["float_weight_bytes"] += int(w.size) * 4
        stats["packed_weight_bytes"] += g.tensors[wbits].nbytes
        stats["binary_layers"] += 1
        ed.replace(node, new_nodes)


# ----------------------------------------------------------------- 4. thresholds
def thresholds(table: np.ndarray, kmax: int) -> np.ndarray | None:
    """int32 [C, 2] (dir, thr) with (dir * d < thr) == (float32(d) * m + b < 0) for all |d| <= kmax."""
    d = np.arange(-kmax, kmax + 1, dtype=np.int64)
    df = d.astype(np.float32)
    out = np.empty((table.shape[0], 2), dtype=np.int32)
    for c, (m, b) in enumerate(table.astype(np.float32)):
        neg = ((df * np.float32(m)).astype(np.float32) + np.float32(b)).astype(np.float32) < 0
        if not neg.any():
            out[c] = (1, -kmax - 1)
        elif neg.all():
            out[c] = (1, kmax + 1)
        else:
            s = int(np.argmax(neg != neg[0]))  # first index where the value changes
            if neg[0]:  # true below the switch
                if neg[s:].any():
                    return None
                out[c] = (1, int(d[s]))
            else:  # true from the switch on
                if not neg[s:].all():
                    return None
                out[c] = (-1, int(-d[s] + 1))
    return out


def _fuse_thresholds(ed: Editor, stats: Counter) -> None:
    g = ed.g
    for node in list(g.nodes):
        if node.domain != DOMAIN or node.op_type not in ("XnorGemm", "XnorConv") or \
                node.attr("output", "float") != "float":
            continue
        nxt = ed.sole_consumer(node.outputs[0])
        if nxt is None or nxt.domain != DOMAIN or nxt.op_type != "PackSigns":
            continue
        rank = len(g.tensors[node.outputs[0]].shape)
        axis = int(nxt.attr("axis", -1)) % rank
        if axis != (1 if node.op_type == "XnorConv" else rank - 1):
            continue
        table = ed.const(node.inputs[2])
        w = g.tensors[node.inputs[1]]
        kmax = int(node.attr("k")) if node.op_type == "XnorGemm" else int(math.prod(w.shape[1:]))
        thr = thresholds(table, kmax)
        if thr is None:
            continue
        node.inputs[2] = ed.add_const(node.name + "_thresholds", thr)
        node.attrs["output"] = "bits"
        node.outputs[0] = nxt.outputs[0]
        ed.remove(nxt)
        stats["threshold_layers"] += 1


# ----------------------------------------------------------------- the pass
def lower_binary(graph: Graph, options=None) -> dict | None:
    ed = Editor(graph)
    stats: Counter = Counter()
    _patterns(ed, stats)
    if not any(n.domain == DOMAIN and n.op_type in FLOAT_FORM for n in graph.nodes):
        return None
    ed.remove_dead()
    absorb_affine(ed, FLOAT_FORM, stats, "absorbed_affine")
    _lower(ed, stats)
    ed.remove_dead()
    _fuse_thresholds(ed, stats)
    ed.remove_dead()
    graph.validate()
    return dict(stats) or None


__all__ = ["lower_binary", "Editor", "absorb_affine", "thresholds", "words"]
