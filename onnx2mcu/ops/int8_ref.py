"""numpy references of the int8 kernels (runtime_c/o2m_s8_*), in ONNX (NCHW) layout.

Each op takes int8 arrays and a Params dataclass computed once, at compile
time, from the float scales and zero points (the ``*_params`` builders).  The
arithmetic is TFLite's integer-only scheme by default (``mode="fixed"``,
see onnx2mcu.qmath) and onnxruntime's float32 requantization with
``mode="float"``.  Results are bit-exact references for the C kernels:
accumulation is exact in int64 here and in int32 in C, so the order of the
sums never matters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from onnx2mcu import qmath
from onnx2mcu.qmath import (AddParams, MulParams, SoftmaxParams, add_params, add_s8, apply_lut_s8,
                            lut_s8, mul_params, mul_s8, softmax_params, softmax_s8)

__all__ = [
    "AddParams", "ConvParams", "FCParams", "MeanParams", "MulParams", "PoolParams",
    "RequantParams", "SoftmaxParams", "add", "add_params", "avgpool", "conv2d", "conv_params",
    "fc_params", "fully_connected", "lut", "lut_s8", "matmul", "maxpool", "mean", "mean_params",
    "mul", "mul_params", "pool_params", "requantize", "requant_params", "softmax", "softmax_params",
    "sub",
]


def _pair(v, default: int) -> tuple[int, int]:
    if v is None:
        return default, default
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[1])


def _pads(pads) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from None, an int, (h, w) or ONNX's (top, left, bottom, right)."""
    if pads is None:
        return 0, 0, 0, 0
    if isinstance(pads, int):
        return pads, pads, pads, pads
    pads = [int(p) for p in pads]
    if len(pads) == 2:
        return pads[0], pads[1], pads[0], pads[1]
    return tuple(pads)  # type: ignore[return-value]


def _requant(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, scale: np.ndarray, zp: int,
             lo: int, hi: int, mode: str, axis: int) -> np.ndarray:
    shape = [1] * acc.ndim
    shape[axis] = -1
    if mode == "float":
        return qmath.requantize_float(acc, np.asarray(scale).reshape(shape), zp, lo, hi)
    if mode != "fixed":
        raise ValueError(f"unknown requant mode {mode!r} (expected one of {qmath.REQUANT_MODES})")
    return qmath.requantize_fixed(acc, np.asarray(mult).reshape(shape), np.asarray(shift).reshape(shape),
                                  zp, lo, hi)


# ----------------------------------------------------------------- Conv
@dataclass(frozen=True)
class ConvParams:
    """Geometry and requantization of an int8 convolution (regular, grouped, depthwise, pointwise).

    multipliers/shifts/float_scales hold one value per output channel (a
    per-tensor filter scale is repeated).  The input is padded with its own
    zero point, i.e. padding is a real 0.
    """
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    groups: int
    input_offset: int   # -input zero point
    output_offset: int  # output zero point
    multipliers: np.ndarray = field(repr=False)
    shifts: np.ndarray = field(repr=False)
    float_scales: np.ndarray = field(repr=False)
    act_min: int = -128
    act_max: int = 127
    filter_offset: int = 0  # -weight zero point (per tensor: onnxruntime's asymmetric weights)


def conv_params(input_scale: float, input_zero_point: int, filter_scales, output_scale: float,
                output_zero_point: int, out_channels: int, *, act: str = "none", stride=None,
                dilation=None, pads=None, groups: int = 1, filter_zero_point: int = 0) -> ConvParams:
    fs = np.broadcast_to(np.asarray(filter_scales, dtype=np.float32).ravel(), (out_channels,))
    mult, shift = qmath.quantize_multipliers(qmath.conv_real_multipliers(input_scale, fs, output_scale))
    qmath.check_shift(shift, "Conv requant")
    lo, hi = qmath.activation_range(act, output_scale, output_zero_point)
    return ConvParams(_pair(stride, 1), _pair(dilation, 1), _pads(pads), int(groups),
                      -int(input_zero_point), int(output_zero_point), mult, shift,
                      qmath.float_rescale(input_scale, fs, output_scale), lo, hi, -int(filter_zero_point))


def conv_output_hw(h: int, w: int, k_h: int, k_w: int, p: ConvParams) -> tuple[int, int]:
    t, l, b, r = p.pads
    h_out = (h + t + b - p.dilation[0] * (k_h - 1) - 1) // p.stride[0] + 1
    w_out = (w + l + r - p.dilation[1] * (k_w - 1) - 1) // p.stride[1] + 1
    return h_out, w_out


def _windows(x: np.ndarray, k_h: int, k_w: int, stride, dilation, h_out: int, w_out: int) -> np.ndarray:
    """[N, C, h_out, w_out, k_h, k_w] view of every window of a padded NCHW input."""
    n, c, _, _ = x.shape
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, h_out, w_out, k_h, k_w),
        (s[0], s[1], s[2] * stride[0], s[3] * stride[1], s[2] * dilation[0], s[3] * dilation[1]),
        writeable=False)


def conv2d_acc(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, p: ConvParams) -> np.ndarray:
    """int32 accumulators [N, C_out, H_out, W_out]: sum (x - zp_in) * (w - zp_w) + bias."""
    n, c_in, h, wd = x.shape
    c_out, cin_g, k_h, k_w = w.shape
    g = p.groups
    if c_in != cin_g * g or c_out % g:
        raise ValueError(f"conv: input channels {c_in}, weights {w.shape}, groups {g} do not agree")
    h_out, w_out = conv_output_hw(h, wd, k_h, k_w, p)
    t, l, b, r = p.pads
    centred = np.pad(x.astype(np.int64) + p.input_offset, ((0, 0), (0, 0), (t, max(b, 0)), (l, max(r, 0))))
    win = _windows(np.ascontiguousarray(centred), k_h, k_w, p.stride, p.dilation, h_out, w_out)
    cout_g = c_out // g
    acc = np.empty((n, c_out, h_out, w_out), dtype=np.int64)
    w64 = w.astype(np.int64) + p.filter_offset
    for gi in range(g):
        xs = win[:, gi * cin_g:(gi + 1) * cin_g]
        ws = w64[gi * cout_g:(gi + 1) * cout_g]
        acc[:, gi * cout_g:(gi + 1) * cout_g] = np.einsum("nchwij,ocij->nohw", xs, ws, optimize=True)
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64).reshape(1, -1, 1, 1)
    return acc


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, p: ConvParams,
           mode: str = "fixed") -> np.ndarray:
    """int8 Conv, NCHW input, weights [C_out, C_in/groups, kH, kW] (depthwise: groups = C_in)."""
    acc = conv2d_acc(x, w, bias, p)
    return _requant(acc, p.multipliers, p.shifts, p.float_scales, p.output_offset, p.act_min, p.act_max,
                    mode, axis=1)


# ----------------------------------------------------------------- FC / MatMul
@dataclass(frozen=True)
class FCParams:
    """int8 fully connected / MatMul: y[m, n] = requant(sum_k (x - zp_x)(w - zp_w) + bias[n])."""
    input_offset: int
    filter_offset: int
    output_offset: int
    multipliers: np.ndarray = field(repr=False)  # one per output feature n (or a single value)
    shifts: np.ndarray = field(repr=False)
    float_scales: np.ndarray = field(repr=False)
    act_min: int = -128
    act_max: int = 127


def fc_params(input_scale: float, input_zero_point: int, filter_scales, output_scale: float,
              output_zero_point: int, *, act: str = "none", filter_zero_point: int = 0) -> FCParams:
    """Per-tensor filter scale: TFLite's fully-connected factor (scale product in float32);
    per-channel: the conv formula, as TFLite's per-channel fully connected uses."""
    fs = np.asarray(filter_scales, dtype=np.float32).ravel()
    if fs.size == 1:
        mult, shift = qmath.quantize_multipliers(
            [qmath.fc_real_multiplier(input_scale, float(fs[0]), output_scale)])
    else:
        mult, shift = qmath.quantize_multipliers(qmath.conv_real_multipliers(input_scale, fs, output_scale))
    qmath.check_shift(shift, "FullyConnected requant")
    lo, hi = qmath.activation_range(act, output_scale, output_zero_point)
    return FCParams(-int(input_zero_point), -int(filter_zero_point), int(output_zero_point), mult, shift,
                    qmath.float_rescale(input_scale, fs, output_scale), lo, hi)


def _fc_requant(acc: np.ndarray, p: FCParams, mode: str) -> np.ndarray:
    n = acc.shape[-1]
    mult = np.broadcast_to(p.multipliers, (n,))
    shift = np.broadcast_to(p.shifts, (n,))
    scale = np.broadcast_to(p.float_scales, (n,))
    return _requant(acc, mult, shift, scale, p.output_offset, p.act_min, p.act_max, mode, axis=acc.ndim - 1)


def fully_connected(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, p: FCParams,
                    mode: str = "fixed") -> np.ndarray:
    """x [..., K] int8, w [N, K] int8 (TFLite / Gemm transB layout), bias [N] int32 -> [..., N]."""
    acc = (x.astype(np.int64) + p.input_offset) @ (w.astype(np.int64) + p.filter_offset).T
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _fc_requant(acc, p, mode)


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None, p: FCParams,
           mode: str = "fixed") -> np.ndarray:
    """Batched int8 MatMul (numpy broadcasting of batch dims): a [..., M, K], b [..., K, N]."""
    acc = np.matmul(a.astype(np.int64) + p.input_offset, b.astype(np.int64) + p.filter_offset)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return _fc_requant(acc, p, mode)


# ----------------------------------------------------------------- elementwise
def add(a: np.ndarray, b: np.ndarray, p: AddParams, mode: str = "fixed") -> np.ndarray:
    return add_s8(a, b, p, subtract=False, mode=mode)


def sub(a: np.ndarray, b: np.ndarray, p: AddParams, mode: str = "fixed") -> np.ndarray:
    return add_s8(a, b, p, subtract=True, mode=mode)


def mul(a: np.ndarray, b: np.ndarray, p: MulParams, mode: str = "fixed") -> np.ndarray:
    return mul_s8(a, b, p, mode=mode)


def lut(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Unary op through its 256-entry table (qmath.lut_s8)."""
    return apply_lut_s8(x, table)


def softmax(x: np.ndarray, p: SoftmaxParams, axis: int = -1) -> np.ndarray:
    return softmax_s8(x, p, axis)


@dataclass(frozen=True)
class RequantParams:
    """int8 -> int8 rescale (QuantizeLinear of a dequantized int8, TFLite's int8 Quantize)."""
    input_offset: int
    output_offset: int
    multiplier: int
    shift: int
    float_scale: float


def requant_params(input_scale: float, input_zero_point: int, output_scale: float,
                   output_zero_point: int) -> RequantParams:
    m, s = qmath.quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    qmath.check_shift(s, "Requantize")
    fs = float(np.float32(input_scale) / np.float32(output_scale))
    return RequantParams(-int(input_zero_point), int(output_zero_point), m, s, fs)


def requantize(x: np.ndarray, p: RequantParams, mode: str = "fixed") -> np.ndarray:
    centred = x.astype(np.int64) + p.input_offset
    if mode == "float":
        return qmath.requantize_float(centred, p.float_scale, p.output_offset, -128, 127)
    return qmath.requantize_fixed(centred, p.multiplier, p.shift, p.output_offset, -128, 127)


# ----------------------------------------------------------------- pooling
@dataclass(frozen=True)
class PoolParams:
    """int8 Max/AveragePool: input and output share scale and zero point (TFLite's contract)."""
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    act_min: int = -128
    act_max: int = 127
    count_include_pad: bool = False


def pool_params(kernel, *, stride=None, pads=None, act_min: int = -128, act_max: int = 127,
                count_include_pad: bool = False) -> PoolParams:
    k = _pair(kernel, 1)
    return PoolParams(k, _pair(stride, 1) if stride is not None else k, _pads(pads), int(act_min),
                      int(act_max), bool(count_include_pad))


def _pool_windows(x: np.ndarray, p: PoolParams, fill: int):
    n, c, h, w = x.shape
    t, l, b, r = p.pads
    h_out = (h + t + b - p.kernel[0]) // p.stride[0] + 1
    w_out = (w + l + r - p.kernel[1]) // p.stride[1] + 1
    padded = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)
    valid = np.pad(np.ones((1, 1, h, w), np.int64), ((0, 0), (0, 0), (t, b), (l, r)))
    win = _windows(np.ascontiguousarray(padded), *p.kernel, p.stride, (1, 1), h_out, w_out)
    vwin = _windows(np.ascontiguousarray(valid), *p.kernel, p.stride, (1, 1), h_out, w_out)
    return win, vwin


def maxpool(x: np.ndarray, p: PoolParams) -> np.ndarray:
    win, vwin = _pool_windows(x, p, -(1 << 20))
    y = win.max(axis=(4, 5))
    if np.any(vwin.sum(axis=(4, 5)) == 0):
        raise ValueError("MaxPool: a window lies entirely in the padding")
    return np.clip(y, p.act_min, p.act_max).astype(np.int8)


def rounded_divide(total: np.ndarray, count) -> np.ndarray:
    """TFLite's int8 average: total / count rounded half away from zero (C truncating division)."""
    total, count = np.asarray(total, np.int64), np.asarray(count, np.int64)
    num = np.where(total > 0, total + count // 2, total - count // 2)
    q = np.abs(num) // count
    return np.where(num < 0, -q, q)


def avgpool(x: np.ndarray, p: PoolParams, input_zero_point: int = 0) -> np.ndarray:
    """Average of the raw int8 values over the valid taps, rounded half away from zero.

    count_include_pad=True counts padded taps too, each holding the zero
    point (a real 0; onnx's count_include_pad=1).
    """
    win, vwin = _pool_windows(x, p, int(input_zero_point) if p.count_include_pad else 0)
    total = win.sum(axis=(4, 5))
    if p.count_include_pad:
        count = np.full(total.shape, p.kernel[0] * p.kernel[1], np.int64)
    else:
        count = vwin.sum(axis=(4, 5))
        if np.any(count == 0):
            raise ValueError("AveragePool: a window lies entirely in the padding")
    return np.clip(rounded_divide(total, count), p.act_min, p.act_max).astype(np.int8)


@dataclass(frozen=True)
class MeanParams:
    """int8 Mean over some axes (GlobalAveragePool is the mean over H, W).

    method "rescale": TFLite's 4-D spatial mean: sum (x - zp_in), fixed-point
    rescale by s_in/s_out, rounded divide by the count, + zp_out.
    method "same": TFLite's mean for equal input/output quantization (any
    axes): the raw sum divided by the count, rounded half away from zero
    (checked against TFLite Micro on MCUNet's two MEANs).
    method "float" (--requant float): onnxruntime's QLinearGlobalAveragePool (MLAS),
    sum (x - zp_in) requantized in float32 by s_in / (s_out * count), half to even.
    """
    method: str
    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int
    float_scale: float = 0.0  # method "float": float32(s_in / float32(s_out * count))


def mean_params(input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int,
                method: str = "rescale", count: int = 0) -> MeanParams:
    """`count` (the number of values averaged) is needed by method "float" only."""
    if method not in ("rescale", "same", "float"):
        raise ValueError(f"unknown int8 mean method {method!r}")
    if method == "float":
        if count <= 0:
            raise ValueError("int8 Mean 'float' needs the count of averaged values")
        scale = np.float32(input_scale) / (np.float32(output_scale) * np.float32(count))
        return MeanParams(method, int(input_zero_point), int(output_zero_point), 0, 0, float(scale))
    if method == "same" and (np.float32(input_scale) != np.float32(output_scale)
                                 or int(input_zero_point) != int(output_zero_point)):
        raise ValueError("int8 Mean 'same' needs equal input and output quantization")
    m, s = qmath.quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    qmath.check_shift(s, "Mean rescale")
    return MeanParams(method, int(input_zero_point), int(output_zero_point), m, s)


def mean(x: np.ndarray, axes, p: MeanParams, keepdims: bool = True) -> np.ndarray:
    axes = tuple(int(a) % x.ndim for a in np.atleast_1d(axes))
    count = int(np.prod([x.shape[a] for a in axes]))
    x64 = x.astype(np.int64)
    if p.method == "same":
        total = x64.sum(axis=axes, keepdims=keepdims)
        return np.clip(rounded_divide(total, count), -128, 127).astype(np.int8)
    total = (x64 - p.input_zero_point).sum(axis=axes, keepdims=keepdims)
    if p.method == "float":
        return qmath.requantize_float(total, np.float32(p.float_scale), p.output_zero_point, -128, 127)
    scaled = qmath.multiply_by_quantized_multiplier(total, p.multiplier, p.shift)
    y = rounded_divide(scaled, count) + p.output_zero_point
    return np.clip(y, -128, 127).astype(np.int8)
