"""Lowering of binary (XNOR-popcount) layers: patterns -> BinaryMatMul/BinaryConv -> packed ops.

1. Patterns.  A MatMul / Gemm / Conv whose activation input is binarized and
   whose constant weight holds one magnitude per output channel (+-alpha_j,
   e.g. folded from sign(W) * mean|W|) becomes a float-form `BinaryMatMul` /
   `BinaryConv` (ops/binary.py) with scale alpha_j (times the activation's
   scale) and the Gemm/Conv bias.  A binarized activation is
       Sign(x)                          (ONNX: Sign(0) = 0, see "Sign(0)" below)
       Where(Less(x, 0), -c, c)         (0 -> +c: the packed mapping, exact)
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

Packed mapping (ops/binary.py, runtime_c): -1 where x < 0, +1 elsewhere, so
0, -0 and NaN give +1.  The Where forms and onnx2mcu's BinaryMatMul/BinaryConv
mean exactly that.  ONNX Sign(0) is 0, so a `Sign` layer is lowered, by
default (`binary_sign_zero="exact"`), in one of two exact ways:
- one bit-plane when the compiler proves its input is never exactly 0: the
  input is the float output of a binary layer lowered here whose float32
  finish, evaluated over every dot product it can reach, is never 0 (the
  same exhaustive check as the thresholds);
- otherwise the ternary form, from two bit-planes with the same packed
  weights: with p(x) the packed mapping, Sign(x) = (p(x) - p(-x)) / 2 (x > 0:
  1 + 1, x < 0: -1 - 1, x = 0: 1 - 1), so the layer is
      D = XnorGemm(pack(x)) - XnorGemm(pack(-x))   (each exactly float(dot))
      y = D * (scale / 2) + bias                    (D = 2 * dot, exact)
  which costs a Neg, a second pack and popcount pass, and a Sub/Mul/Add on
  the output; zero padding of a convolution stays zero (padded taps count
  in neither plane).  D * (scale/2) rounds like dot * scale, so a ternary
  layer's output is proven nonzero (or not) for the next layer the same way.
`binary_sign_zero="plus-one"` (CLI `--binary-sign-zero plus-one`) maps
Sign(0) to +1 instead: one bit-plane always, results differ from ONNX
wherever an input is exactly 0; the report counts those layers and adds a
note.  NaN inputs: the GreaterOrEqual form gives -c for NaN where the packed
mapping gives +c; everything else here is exact in real arithmetic, and
folded constants round once to float32.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from onnx2mcu.ir import DType, Graph, GraphError, Node
from onnx2mcu.ops.binary import pack_signs, words
from onnx2mcu.ops.conv import window
from onnx2mcu.rewrite import Rewriter, affine_consumer, as_projection, channel_vector, is_standard, scalar

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext

DOMAIN = "onnx2mcu"
FLOAT_FORM = {"BinaryMatMul", "BinaryConv"}


# ----------------------------------------------------------------- 1. patterns
class BinarizedSource(NamedTuple):
    """Tensor `x` binarized, times `gain`; `zero_is_zero`: ONNX Sign (0 -> 0), else 0 -> +1."""

    x: str
    gain: float
    zero_is_zero: bool


def binarized_source(ed: Rewriter, name: str) -> BinarizedSource | None:
    """If tensor `name` is c * sign(x) (ONNX Sign or the packed mapping), how."""
    node = ed.producer(name)
    if node is None or not is_standard(node):
        return None
    if node.op_type == "Sign":
        return BinarizedSource(node.inputs[0], 1.0, True)
    if node.op_type == "Mul":
        for a, b in ((0, 1), (1, 0)):
            c = scalar(ed.const(node.inputs[b]), uniform=True)
            if c is not None and c > 0 and ed.const(node.inputs[a]) is None \
                    and ed.shape(node.outputs[0]) == ed.shape(node.inputs[a]):
                inner = binarized_source(ed, node.inputs[a])
                if inner is not None:
                    return inner._replace(gain=inner.gain * c)
        return None
    if node.op_type == "Where" and len(node.inputs) == 3:
        cond = ed.producer(node.inputs[0])
        hi = scalar(ed.const(node.inputs[1]), uniform=True)
        lo = scalar(ed.const(node.inputs[2]), uniform=True)
        if cond is None or hi is None or lo is None or not is_standard(cond):
            return None
        zero = scalar(ed.const(cond.inputs[1]), uniform=True) if len(cond.inputs) == 2 else None
        if zero != 0.0 or ed.const(cond.inputs[0]) is not None:
            return None
        x = cond.inputs[0]
        if ed.shape(x) != ed.shape(name):
            return None  # a constant widened the result
        if cond.op_type == "Less" and hi < 0 and lo == -hi:  # x < 0 -> -c, else c
            return BinarizedSource(x, lo, False)
        if cond.op_type == "GreaterOrEqual" and lo < 0 and hi == -lo:  # x >= 0 -> c, else -c
            return BinarizedSource(x, hi, False)
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


def _conv_pattern(ed: Rewriter, node: Node, src: BinarizedSource) -> Node | None:
    w = ed.const(node.inputs[1])
    if w is None or node.attr("group", 1) != 1 or w.ndim != 4:
        return None
    alpha = per_channel_magnitude(w, 0)
    if alpha is None:
        return None
    bias = ed.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if len(node.inputs) > 2 and node.inputs[2] and bias is None:
        return None
    wt = np.where(w < 0, np.float32(-1), np.float32(1)).astype(np.float32)
    scale = (alpha * src.gain).astype(np.float32)
    inputs = [src.x, ed.add_const(node.name + "_wsign", wt), ed.add_const(node.name + "_scale", scale)]
    if bias is not None:
        inputs.append(ed.add_const(node.name + "_bias", bias.astype(np.float32)))
    attrs = {k: v for k, v in node.attrs.items()
             if k in ("kernel_shape", "strides", "pads", "dilations", "auto_pad")}
    return ed.new_node(node.name, "BinaryConv", inputs, [node.outputs[0]], attrs, DOMAIN)


def _matmul_pattern(ed: Rewriter, node: Node, src: BinarizedSource) -> Node | None:
    proj = as_projection(ed, node)
    if proj is None:
        return None
    wk = proj.weight_in_out(ed)  # [K, N]
    alpha = per_channel_magnitude(wk, 1)
    if alpha is None:
        return None
    out = node.outputs[0]
    bias = None
    if proj.bias:
        out_shape = ed.shape(out)
        bias = channel_vector(ed.const(proj.bias), out_shape, len(out_shape) - 1)
        if bias is None:
            return None
        bias = bias * proj.beta
    wt = np.where(wk.T < 0, np.float32(-1), np.float32(1)).astype(np.float32)  # [N, K]
    scale = (alpha * src.gain * proj.alpha).astype(np.float32)
    inputs = [src.x, ed.add_const(node.name + "_wsign", wt), ed.add_const(node.name + "_scale", scale)]
    if bias is not None:
        inputs.append(ed.add_const(node.name + "_bias", bias.astype(np.float32)))
    return ed.new_node(node.name, "BinaryMatMul", inputs, [out], {}, DOMAIN)


def _patterns(ed: Rewriter, stats: Counter) -> set[str]:
    """Float-form nodes for the recognised layers; returns the names of those whose input
    comes from ONNX Sign (Sign(0) = 0)."""
    g = ed.graph
    from_sign: set[str] = set()
    for node in list(g.nodes):
        if not is_standard(node) or node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        src = binarized_source(ed, node.inputs[0])
        if src is None or ed.const(node.inputs[1]) is None or \
                g.tensors[src.x].dtype is not DType.FLOAT32:
            continue
        new = _conv_pattern(ed, node, src) if node.op_type == "Conv" else _matmul_pattern(ed, node, src)
        if new is None:
            continue
        ed.replace(node, [new])
        if src.zero_is_zero:
            from_sign.add(new.name)
        stats["binary_patterns"] += 1
    return from_sign


# ----------------------------------------------------------------- 2. affine absorption
def channel_axis(ed: Rewriter, node: Node) -> int:
    """Axis of output channels in the output of a float-form binary/adder op."""
    rank = len(ed.shape(node.outputs[0]))
    return 1 if node.op_type.endswith("Conv") else rank - 1


def absorb_affine(ed: Rewriter, ops: set[str], stats: Counter, key: str) -> None:
    """Fold Mul/Div/Add/Sub/BatchNormalization after `ops` nodes into their scale and bias."""
    for node in list(ed.graph.nodes):
        if node.domain != DOMAIN or node.op_type not in ops:
            continue
        while True:
            affine = affine_consumer(ed, node.outputs[0], channel_axis(ed, node))
            if affine is None:
                break
            scale, bias = _scale_bias(ed, node)
            if affine.mul is not None:
                scale, bias = scale * affine.mul, bias * affine.mul
            if affine.add is not None:
                bias = bias + affine.add
            _set_scale_bias(ed, node, scale, bias)
            node.outputs[0] = affine.node.outputs[0]
            ed.remove(affine.node)
            stats[key] += 1


def _optional_const(ed: Rewriter, node: Node, index: int) -> np.ndarray | None:
    return ed.const(node.inputs[index]) if len(node.inputs) > index and node.inputs[index] else None


def _scale_bias(ed: Rewriter, node: Node) -> tuple[np.ndarray, np.ndarray]:
    channels = ed.shape(node.outputs[0])[channel_axis(ed, node)]
    scale, bias = _optional_const(ed, node, 2), _optional_const(ed, node, 3)
    scale = np.ones(channels) if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
    bias = np.zeros(channels) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    return scale, bias


def _set_scale_bias(ed: Rewriter, node: Node, scale: np.ndarray, bias: np.ndarray) -> None:
    while len(node.inputs) < 4:
        node.inputs.append("")
    node.inputs[2] = ed.add_const(node.name + "_scale", scale.astype(np.float32))
    node.inputs[3] = ed.add_const(node.name + "_bias", bias.astype(np.float32))
    ed.changed()


# ----------------------------------------------------------------- 3. lowering
def _p_table(ed: Rewriter, node: Node, channels: int) -> np.ndarray:
    scale, bias = _optional_const(ed, node, 2), _optional_const(ed, node, 3)
    table = np.empty((channels, 2), dtype=np.float32)
    table[:, 0] = 1.0 if scale is None else np.asarray(scale, dtype=np.float32).reshape(-1)
    # -0.0 adds nothing to any value, so "no bias" and this table agree bit for bit
    table[:, 1] = -0.0 if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    return table


def never_zero(mult: np.ndarray, bias: np.ndarray | None, dots: np.ndarray) -> bool:
    """Whether float32(float32(d) * mult[c]) (+ bias[c]) is finite and nonzero for every d, c."""
    df = np.asarray(dots).astype(np.float32)[None, :]
    mult = np.asarray(mult, dtype=np.float32).reshape(-1)
    bias = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    rows = max(1, (1 << 22) // max(1, df.size))
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0: NaN, which is no proof
        for start in range(0, mult.size, rows):
            y = (df * mult[start:start + rows, None]).astype(np.float32)
            if bias is not None:
                y = (y + bias[start:start + rows, None]).astype(np.float32)
            if not np.all(np.isfinite(y) & (y != 0)):
                return False
    return True


class _Lowering:
    """Stage 3 state: shared packs, the outputs proven never 0, what the report needs."""

    def __init__(self, ed: Rewriter, stats: Counter, from_sign: set[str], plus_one: bool):
        self.ed, self.stats, self.from_sign, self.plus_one = ed, stats, from_sign, plus_one
        self.packs: dict[tuple[str, int], str] = {}
        self.negated: dict[str, str] = {}
        self.nonzero: set[str] = set()
        self.plus_one_layers: list[str] = []

    def pack(self, x: str, axis: int, nodes: list[Node]) -> str:
        key = (x, axis)
        if key not in self.packs:
            shape = self.ed.shape(x)
            moved = list(shape[:axis]) + list(shape[axis + 1:]) + [shape[axis]]
            packed = self.ed.add_tensor(x + "_bits", moved, DType.BIT)
            nodes.append(self.ed.new_node(x + "_pack", "PackSigns", [x], [packed], {"axis": axis}, DOMAIN))
            self.packs[key] = packed
            self.stats["packed_activations"] += 1
        return self.packs[key]

    def negative(self, x: str, nodes: list[Node]) -> str:
        if x not in self.negated:
            neg = self.ed.add_tensor(x + "_neg", self.ed.shape(x), DType.FLOAT32)
            nodes.append(self.ed.new_node(x + "_neg", "Neg", [x], [neg]))
            self.negated[x] = neg
        return self.negated[x]

    def lower(self, node: Node) -> None:
        ed, g = self.ed, self.ed.graph
        x, w = node.inputs[0], ed.const(node.inputs[1])
        xt = g.tensors[x]
        conv = node.op_type == "BinaryConv"
        axis = 1 if conv else len(xt.shape) - 1
        zero_is_zero = node.name in self.from_sign
        if zero_is_zero and x in self.nonzero:
            self.stats["sign_inputs_proven_nonzero"] += 1
            zero_is_zero = False
        elif zero_is_zero and self.plus_one:
            self.plus_one_layers.append(node.name)
            zero_is_zero = False
        out = node.outputs[0]
        if conv:
            wt = np.transpose(w, (0, 2, 3, 1))  # [M, kh, kw, C]
            kernel = tuple(int(d) for d in w.shape[2:])
            win = window(node, tuple(xt.shape[2:]), kernel)
            attrs = {"kernel_shape": list(kernel), "strides": list(win.strides),
                     "pads": list(win.pads_begin) + list(win.pads_end), "dilations": list(win.dilations),
                     "channels": int(xt.shape[1]), "output": "float"}
            op_type, kmax = "XnorConv", int(math.prod(w.shape[1:]))
        else:
            wt = w
            attrs = {"k": int(xt.shape[-1]), "output": "float"}
            op_type, kmax = "XnorGemm", int(xt.shape[-1])
        new_nodes: list[Node] = []
        packed = self.pack(x, axis, new_nodes)
        wbits = ed.add_const(node.name + "_wbits", pack_signs(wt), DType.BIT, tuple(wt.shape))
        table = _p_table(ed, node, w.shape[0])
        if zero_is_zero:
            self._ternary(node, op_type, attrs, axis, packed, wbits, table, new_nodes)
            # y = float32(float32(2d) * (m / 2)) + b over every integer dot |d| <= kmax
            half = (table[:, 0] * np.float32(0.5)).astype(np.float32)
            dots = 2 * np.arange(-kmax, kmax + 1, dtype=np.int64)
            proven = never_zero(half, _optional_const(ed, node, 3), dots)
        else:
            tname = ed.add_const(node.name + "_affine", table)
            new_nodes.append(ed.new_node(node.name, op_type, [packed, wbits, tname], [out], attrs, DOMAIN))
            # a binary GEMM's dot has the parity of k; a convolution's depends on its valid taps
            dots = np.arange(-kmax, kmax + 1, 1 if conv else 2, dtype=np.int64)
            proven = never_zero(table[:, 0], table[:, 1], dots)
        if proven:
            self.nonzero.add(out)
        self.stats["float_weight_bytes"] += int(w.size) * 4
        self.stats["packed_weight_bytes"] += g.tensors[wbits].nbytes
        self.stats["binary_layers"] += 1
        ed.replace(node, new_nodes)

    def _ternary(self, node: Node, op_type: str, attrs: dict, axis: int, packed: str, wbits: str,
                 table: np.ndarray, new_nodes: list[Node]) -> None:
        """Sign(x) with Sign(0) = 0 from two bit-planes (see the module docstring)."""
        ed = self.ed
        x, out = node.inputs[0], node.outputs[0]
        shape = ed.shape(out)
        channels = table.shape[0]
        packed_neg = self.pack(self.negative(x, new_nodes), axis, new_nodes)
        unit = np.zeros((channels, 2), dtype=np.float32)
        unit[:, 0], unit[:, 1] = 1.0, -0.0
        unit_name = ed.add_const(node.name + "_unit", unit)
        pos = ed.add_tensor(out + "_pos", shape, DType.FLOAT32)
        neg = ed.add_tensor(out + "_negpart", shape, DType.FLOAT32)
        twice = ed.add_tensor(out + "_twice", shape, DType.FLOAT32)
        new_nodes.append(ed.new_node(node.name, op_type, [packed, wbits, unit_name], [pos], attrs, DOMAIN))
        new_nodes.append(ed.new_node(node.name + "_neg", op_type, [packed_neg, wbits, unit_name], [neg],
                                     dict(attrs), DOMAIN))
        new_nodes.append(ed.new_node(node.name + "_ternary", "Sub", [pos, neg], [twice]))
        per_channel = (channels,) + (1,) * (len(shape) - 2) if op_type == "XnorConv" else (channels,)
        half = (table[:, 0] * np.float32(0.5)).astype(np.float32).reshape(per_channel)
        bias = _optional_const(ed, node, 3)
        scaled = out if bias is None else ed.add_tensor(out + "_scaled", shape, DType.FLOAT32)
        new_nodes.append(ed.new_node(node.name + "_scale", "Mul",
                                     [twice, ed.add_const(node.name + "_half_scale", half)], [scaled]))
        if bias is not None:
            b = np.asarray(bias, dtype=np.float32).reshape(per_channel)
            new_nodes.append(ed.new_node(node.name + "_bias", "Add",
                                         [scaled, ed.add_const(node.name + "_bias", b)], [out]))
        self.stats["sign_zero_exact_layers"] += 1


def _lowerable(ed: Rewriter, node: Node) -> bool:
    x = ed.graph.tensors[node.inputs[0]]
    consts = all(not n or ed.const(n) is not None for n in node.inputs[1:4])
    if ed.const(node.inputs[1]) is None or x.dtype is not DType.FLOAT32 or not consts:
        return False
    return node.op_type != "BinaryConv" or (node.attr("group", 1) == 1 and len(x.shape) == 4)


def _lower(ed: Rewriter, stats: Counter, from_sign: set[str], plus_one: bool) -> list[str]:
    """Stage 3; returns the Sign layers lowered with the opt-in Sign(0) = +1 mapping."""
    lowering = _Lowering(ed, stats, from_sign, plus_one)
    for node in list(ed.graph.nodes):
        if node.domain == DOMAIN and node.op_type in FLOAT_FORM and _lowerable(ed, node):
            lowering.lower(node)
    return lowering.plus_one_layers


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


def _fuse_thresholds(ed: Rewriter, stats: Counter) -> None:
    g = ed.graph
    for node in list(g.nodes):
        if node.domain != DOMAIN or node.op_type not in ("XnorGemm", "XnorConv") or \
                node.attr("output", "float") != "float":
            continue
        nxt = ed.sole_consumer(node.outputs[0])
        if nxt is None or nxt.domain != DOMAIN or nxt.op_type != "PackSigns":
            continue
        rank = len(ed.shape(node.outputs[0]))
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
def lower_binary(graph: Graph, ctx: PassContext) -> dict | None:
    ed = Rewriter(graph, ctx.names)
    stats: Counter = Counter()
    from_sign = _patterns(ed, stats)
    unlowerable = [n.name for n in graph.nodes if n.name in from_sign and not _lowerable(ed, n)]
    if unlowerable:  # BinaryMatMul/BinaryConv mean 0 -> +1: a Sign layer left in that form would lie
        raise GraphError(f"binary Sign layers that cannot be lowered: {', '.join(unlowerable)}")
    if not any(n.domain == DOMAIN and n.op_type in FLOAT_FORM for n in graph.nodes):
        return None
    ed.remove_dead()
    absorb_affine(ed, FLOAT_FORM, stats, "absorbed_affine")
    plus_one = _lower(ed, stats, from_sign, ctx.options.binary_sign_zero == "plus-one")
    ed.remove_dead()
    _fuse_thresholds(ed, stats)
    ed.remove_dead()
    report = dict(stats)
    if plus_one:
        report["sign_zero"] = "plus-one"
        report["sign_zero_plus_one_layers"] = plus_one
        ctx.report.note(f"binary: --binary-sign-zero plus-one lowered Sign(0) as +1 in {len(plus_one)} "
                        f"layer(s) ({', '.join(plus_one)}): outputs differ from ONNX wherever one of "
                        "their inputs is exactly 0")
    return report or None


__all__ = ["lower_binary", "absorb_affine", "binarized_source", "never_zero", "thresholds", "words"]
