"""Binary (XNOR-popcount) layers: ops of the `onnx2mcu` domain.

Sign mapping (the same here, in graph_opt and in runtime_c/o2m_binary.c):
    sign(v) = -1 if v < 0 else +1
so 0.0, -0.0 and NaN binarize to +1.  ONNX's `Sign` returns 0 for 0; when
graph_opt lowers a `Sign` pattern it uses this mapping, which differs from
onnxruntime only where an activation is exactly 0.  Packed, -1 is bit 1 and
+1 bit 0; bits run along the last axis, LSB first, in 32-bit words
(DType.BIT), with unused high bits 0.

Ops as they may appear in an ONNX file (float tensors):

    BinaryMatMul(X[..., K], W[N, K], scale[N]?, bias[N]?) -> Y[..., N] float32
        Y[.., n] = scale[n] * sum_k sign(X[.., k]) * sign(W[n, k]) + bias[n]
    BinaryConv(X[N, C, H, W], W[M, C, kh, kw], scale[M]?, bias[M]?) -> Y[N, M, OH, OW]
        attributes as ONNX Conv: kernel_shape, strides, pads, dilations,
        auto_pad; group must be 1.  Zero padding, as in Conv(Sign(X), ...):
        padded taps contribute 0.  Y = scale * conv + bias per channel.

    In both, `scale * dot` and `+ bias` are float32 operations on the exact
    integer dot product (one rounding each).

Lowered ops (what graph_opt produces; packed operands):

    PackSigns(X float) -> BIT; attribute axis (default -1): the axis to pack,
        moved to the end (axis=1 turns NCHW into channel-packed NHWC).
    XnorGemm(X BIT[..., K], W BIT[N, K], P[N, 2]) -> Y[..., N]
        attribute k (bits per row), output ("float" or "bits").
        float: P float32 (multiplier, bias), Y = float(dot) * P[n,0] + P[n,1]
        bits:  P int32 (direction, threshold), Y BIT, bit n = P[n,0]*dot < P[n,1]
    XnorConv(X BIT[N, H, W, C], W BIT[M, kh, kw, C], P[M, 2])
        attributes kernel_shape, strides, pads (4 values), dilations,
        channels (C), output ("float": Y NCHW float32 [N, M, OH, OW];
        "bits": Y BIT [N, OH, OW, M]).
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops._util import input_or_none
from onnx2mcu.ops.conv import Window, window
from onnx2mcu.ops.registry import FLOAT, register

BIT = frozenset({DType.BIT})
PARAMS = frozenset({DType.FLOAT32, DType.INT32})
DOMAIN = "onnx2mcu"


# ----------------------------------------------------------------- bit helpers
def words(k: int) -> int:
    return (int(k) + 31) // 32


def sign_bits(x: np.ndarray) -> np.ndarray:
    """True where the value binarizes to -1 (x < 0)."""
    return np.asarray(x) < 0


def signs(x: np.ndarray) -> np.ndarray:
    """The +-1 values (float32) of the sign mapping."""
    return np.where(sign_bits(x), np.float32(-1.0), np.float32(1.0)).astype(np.float32)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool [..., K] -> uint32 [..., ceil(K/32)], element a in bit a%32 of word a//32."""
    bits = np.asarray(bits, dtype=bool)
    k = bits.shape[-1]
    pad = words(k) * 32 - k
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), dtype=bool)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder="little")  # [..., 4 * words]
    return np.ascontiguousarray(packed).view("<u4").astype(np.uint32)


def unpack_bits(packed: np.ndarray, k: int) -> np.ndarray:
    """uint32 [..., words] -> bool [..., k]."""
    packed = np.ascontiguousarray(np.asarray(packed, dtype="<u4"))
    raw = packed.view(np.uint8)
    return np.unpackbits(raw, axis=-1, bitorder="little")[..., :k].astype(bool)


def pack_signs(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Signs of x packed along `axis`, which moves to the end."""
    return pack_bits(np.moveaxis(sign_bits(x), axis, -1))


def packed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Storage shape (uint32 words) of a BIT tensor of logical `shape`."""
    return tuple(shape[:-1]) + (words(shape[-1]),)


def popcount(v: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.asarray(v, dtype=np.uint32)).astype(np.int32)


def xnor_dot(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """x: uint32 [..., W], w: uint32 [N, W] -> int32 [..., N] = k - 2 * popcount(x ^ w)."""
    x = np.asarray(x, dtype=np.uint32)
    w = np.asarray(w, dtype=np.uint32)
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty((rows.shape[0], w.shape[0]), dtype=np.int32)
    step = max(1, (1 << 22) // max(1, w.size))
    for start in range(0, rows.shape[0], step):
        chunk = rows[start:start + step]
        pops = popcount(chunk[:, None, :] ^ w[None, :, :]).sum(axis=-1, dtype=np.int32)
        out[start:start + step] = k - 2 * pops
    return out.reshape(lead + (w.shape[0],))


def finish_float(dot: np.ndarray, mult, bias) -> np.ndarray:
    """float32(dot) * mult + bias, one float32 rounding per operation (as the C kernels)."""
    y = dot.astype(np.float32)
    if mult is not None:
        y = (y * np.asarray(mult, dtype=np.float32)).astype(np.float32)
    if bias is not None:
        y = (y + np.asarray(bias, dtype=np.float32)).astype(np.float32)
    return y


def finish_bits(dot: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Packed bits (dir * dot < thr) along the last (channel) axis."""
    thr = np.asarray(thr, dtype=np.int64)
    return pack_bits(thr[:, 0] * dot.astype(np.int64) < thr[:, 1])


def conv_window(node: Node, spatial: tuple[int, ...], kernel: tuple[int, ...]) -> Window:
    return window(node, spatial, kernel)


def xnor_conv_dot(x: np.ndarray, w: np.ndarray, channels: int, win: Window) -> np.ndarray:
    """x: uint32 [N, H, W, cw], w: uint32 [M, kh, kw, cw] -> int32 [N, OH, OW, M].

    Only taps inside the input count (zero padding): dot = taps * C - 2 * popcount."""
    n, h, wd, cw = x.shape
    m, kh, kw = w.shape[:3]
    oh, ow = win.out
    count = np.zeros((oh, ow), dtype=np.int32)
    pops = np.zeros((n, oh, ow, m), dtype=np.int32)
    for i, j, ih, iw, valid in win.taps_2d(h, wd, (kh, kw)):
        if not valid.any():
            continue
        patch = x[:, ih][:, :, iw]  # [N, OH, OW, cw]
        tap = popcount(patch[:, :, :, None, :] ^ w[None, None, None, :, i, j, :]).sum(
            axis=-1, dtype=np.int32)
        pops += np.where(valid[None, :, :, None], tap, 0)
        count += valid.astype(np.int32)
    return count[None, :, :, None] * channels - 2 * pops


# ----------------------------------------------------------------- user-facing ops
def _binary_matmul(node: Node, inputs: list) -> list:
    x, w = inputs[0], inputs[1]
    scale, bias = input_or_none(inputs, 2), input_or_none(inputs, 3)
    k = x.shape[-1]
    dot = xnor_dot(pack_signs(x), pack_signs(w), k)
    return [finish_float(dot, scale, bias)]


def _binary_matmul_infer(node: Node, inputs: list[Tensor]) -> list:
    x, w = inputs[0], inputs[1]
    if len(w.shape) != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError("BinaryMatMul: W must be [N, K] with K = X's last dim")
    return [(tuple(x.shape[:-1]) + (w.shape[0],), DType.FLOAT32)]


def _binary_matmul_check(node: Node, graph: Graph) -> str | None:
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if len(w.shape) != 2 or not x.shape or x.shape[-1] != w.shape[1]:
        return f"W must be [N, K] with K = X's last dim (X {list(x.shape)}, W {list(w.shape)})"
    return _per_channel_check(node, graph, w.shape[0])


def _per_channel_check(node: Node, graph: Graph, channels: int) -> str | None:
    for index in (2, 3):
        if len(node.inputs) > index and node.inputs[index]:
            t = graph.tensors[node.inputs[index]]
            if t.numel != channels:
                return f"input {index} must have {channels} values (one per output channel)"
    return None


def _macs_matmul(node: Node, graph: Graph) -> int:
    x = graph.tensors[node.inputs[0]]
    out = graph.tensors[node.outputs[0]]
    return out.numel * (x.shape[-1] if x.shape else 1)


register("BinaryMatMul", _binary_matmul, domain=DOMAIN, dtypes=(FLOAT,), macs=_macs_matmul,
         infer=_binary_matmul_infer, check=_binary_matmul_check)


def _binary_conv(node: Node, inputs: list) -> list:
    x, w = inputs[0], inputs[1]
    scale, bias = input_or_none(inputs, 2), input_or_none(inputs, 3)
    win = conv_window(node, tuple(x.shape[2:]), tuple(w.shape[2:]))
    xb = pack_signs(x, axis=1)  # [N, H, W, cw]
    wb = pack_signs(np.transpose(w, (0, 2, 3, 1)))  # [M, kh, kw, cw]
    dot = xnor_conv_dot(xb, wb, x.shape[1], win)
    y = finish_float(dot, scale, bias)  # [N, OH, OW, M]
    return [np.ascontiguousarray(np.transpose(y, (0, 3, 1, 2)))]


def _binary_conv_infer(node: Node, inputs: list[Tensor]) -> list:
    x, w = inputs[0], inputs[1]
    win = conv_window(node, tuple(x.shape[2:]), tuple(w.shape[2:]))
    return [((x.shape[0], w.shape[0]) + tuple(win.out), DType.FLOAT32)]


def _conv_common_check(node: Node, x_shape, w_shape, channels_x: int) -> str | None:
    if node.attr("group", 1) != 1:
        return "only group=1 is supported"
    if len(x_shape) != 4 or len(w_shape) != 4:
        return "only 2-D convolutions (4-D X and W) are supported"
    if node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        return f"auto_pad '{node.attr('auto_pad')}' not supported"
    if any(p < 0 for p in node.attr("pads") or ()):
        return "negative pads not supported"
    return None


def _binary_conv_check(node: Node, graph: Graph) -> str | None:
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    reason = _conv_common_check(node, x.shape, w.shape, x.shape[1] if x.shape else 0)
    if reason:
        return reason
    if w.shape[1] != x.shape[1]:
        return f"W has {w.shape[1]} input channels, X has {x.shape[1]}"
    return _per_channel_check(node, graph, w.shape[0])


def _macs_conv(node: Node, graph: Graph) -> int:
    w = graph.tensors[node.inputs[1]]
    out = graph.tensors[node.outputs[0]]
    return out.numel * math.prod(w.shape[1:])


register("BinaryConv", _binary_conv, domain=DOMAIN, dtypes=(FLOAT,), macs=_macs_conv,
         infer=_binary_conv_infer, check=_binary_conv_check)


# ----------------------------------------------------------------- PackSigns
def _pack_axis(node: Node, rank: int) -> int:
    axis = int(node.attr("axis", -1))
    return axis % rank


def _pack_signs(node: Node, inputs: list) -> list:
    x = inputs[0]
    return [pack_signs(x, _pack_axis(node, x.ndim))]


def _pack_infer(node: Node, inputs: list[Tensor]) -> list:
    shape = list(inputs[0].shape)
    axis = _pack_axis(node, len(shape))
    moved = shape[:axis] + shape[axis + 1:] + [shape[axis]]
    return [(tuple(moved), DType.BIT)]


register("PackSigns", _pack_signs, domain=DOMAIN, dtypes=(FLOAT,), infer=_pack_infer)


# ----------------------------------------------------------------- XnorGemm
def _output_mode(node: Node) -> str:
    mode = node.attr("output", "float")
    return mode.decode() if isinstance(mode, bytes) else str(mode)


def _xnor_gemm(node: Node, inputs: list) -> list:
    x, w, p = inputs[0], inputs[1], inputs[2]
    dot = xnor_dot(x, w, int(node.attr("k")))
    if _output_mode(node) == "bits":
        return [finish_bits(dot, p)]
    return [finish_float(dot, p[:, 0], p[:, 1])]


def _xnor_gemm_infer(node: Node, inputs: list[Tensor]) -> list:
    x, w = inputs[0], inputs[1]
    dtype = DType.BIT if _output_mode(node) == "bits" else DType.FLOAT32
    return [(tuple(x.shape[:-1]) + (w.shape[0],), dtype)]


def _xnor_gemm_check(node: Node, graph: Graph) -> str | None:
    x, w, p = (graph.tensors[n] for n in node.inputs[:3])
    k = node.attr("k")
    if k is None or x.shape[-1] != k or w.shape[-1] != k:
        return "attribute k must equal the packed reduction length of X and W"
    if not w.is_const or not p.is_const:
        return "W and P must be constants"
    want = DType.INT32 if _output_mode(node) == "bits" else DType.FLOAT32
    if p.dtype is not want or p.shape != (w.shape[0], 2):
        return f"P must be {want.value} [{w.shape[0]}, 2]"
    return None


register("XnorGemm", _xnor_gemm, domain=DOMAIN, dtypes=(BIT, BIT, PARAMS), macs=_macs_matmul,
         infer=_xnor_gemm_infer, check=_xnor_gemm_check)


# ----------------------------------------------------------------- XnorConv
def _xnor_conv(node: Node, inputs: list) -> list:
    x, w, p = inputs[0], inputs[1], inputs[2]
    channels = int(node.attr("channels"))
    kernel = tuple(node.attr("kernel_shape"))
    win = conv_window(node, (x.shape[1], x.shape[2]), kernel)
    dot = xnor_conv_dot(x, w, channels, win)  # [N, OH, OW, M]
    if _output_mode(node) == "bits":
        return [finish_bits(dot, p)]
    y = finish_float(dot, p[:, 0], p[:, 1])
    return [np.ascontiguousarray(np.transpose(y, (0, 3, 1, 2)))]


def _xnor_conv_infer(node: Node, inputs: list[Tensor]) -> list:
    x, w = inputs[0], inputs[1]
    win = conv_window(node, (x.shape[1], x.shape[2]), tuple(node.attr("kernel_shape")))
    if _output_mode(node) == "bits":
        return [((x.shape[0],) + tuple(win.out) + (w.shape[0],), DType.BIT)]
    return [((x.shape[0], w.shape[0]) + tuple(win.out), DType.FLOAT32)]


def _xnor_conv_check(node: Node, graph: Graph) -> str | None:
    x, w, p = (graph.tensors[n] for n in node.inputs[:3])
    if len(x.shape) != 4 or len(w.shape) != 4 or x.shape[-1] != node.attr("channels") \
            or w.shape[-1] != node.attr("channels"):
        return "X must be [N, H, W, C] and W [M, kh, kw, C] packed, C = attribute channels"
    if tuple(w.shape[1:3]) != tuple(node.attr("kernel_shape")):
        return "kernel_shape must match W"
    if not w.is_const or not p.is_const:
        return "W and P must be constants"
    want = DType.INT32 if _output_mode(node) == "bits" else DType.FLOAT32
    if p.dtype is not want or p.shape != (w.shape[0], 2):
        return f"P must be {want.value} [{w.shape[0]}, 2]"
    return None


def _macs_xnor_conv(node: Node, graph: Graph) -> int:
    w = graph.tensors[node.inputs[1]]
    out = graph.tensors[node.outputs[0]]
    return out.numel * math.prod(w.shape[1:])


register("XnorConv", _xnor_conv, domain=DOMAIN, dtypes=(BIT, BIT, PARAMS), macs=_macs_xnor_conv,
         infer=_xnor_conv_infer, check=_xnor_conv_check)
