"""Normalizations (batch, layer, RMS, instance, group, Lp, mean-variance, LRN)
and the softmax family.  Statistics are computed in float64 and the results
returned in the input's dtype.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import f64, has_output, input_or_none, norm_axis
from onnx2mcu.ops.registry import FLOAT, register


def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2) if x.ndim > 1 else (x.shape[0],)


# ----- BatchNormalization (inference) ------------------------------------
def _batch_norm(node: Node, inputs: list) -> list:
    x, scale, bias, mean, var = inputs[:5]
    shape = _channel_shape(x)
    eps = node.attr("epsilon", 1e-5)
    inv = 1.0 / np.sqrt(f64(var).reshape(shape) + eps)
    y = (f64(x) - f64(mean).reshape(shape)) * inv * f64(scale).reshape(shape)
    y = y + f64(bias).reshape(shape)
    return [y.astype(x.dtype)]


def _batch_norm_check(node: Node, graph: Graph) -> str | None:
    if node.attr("training_mode", 0):
        return "BatchNormalization training_mode=1 not supported (inference only)"
    if any(has_output(node, i) for i in range(1, len(node.outputs))):
        return "BatchNormalization running-statistics outputs not supported (inference only)"
    return None


register("BatchNormalization", _batch_norm, dtypes=(FLOAT,), inplace_inputs=(0,),
         check=_batch_norm_check)


# ----- LayerNormalization / RMSNormalization -----------------------------
def _trailing_axes(node: Node, x: np.ndarray) -> tuple[int, ...]:
    axis = norm_axis(node.attr("axis", -1), x.ndim)
    return tuple(range(axis, x.ndim))


def _layer_norm(node: Node, inputs: list) -> list:
    """What o2m_layernorm_f32 computes, operation for operation in float32 (sums in order, then
    sqrtf and the divisions, all correctly rounded): the simulator equals the C bit for bit, so a
    LayerNorm float island of an int8 model quantizes to the same integers on both."""
    x, scale, bias = inputs[0], inputs[1], input_or_none(inputs, 2)
    axes = _trailing_axes(node, x)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    rows = np.asarray(x, dtype=np.float32).reshape(-1, n)
    total = np.zeros(rows.shape[0], dtype=np.float32)
    for k in range(n):
        total = total + rows[:, k]
    mean = total / np.float32(n)
    sq = np.zeros(rows.shape[0], dtype=np.float32)
    for k in range(n):
        d = rows[:, k] - mean
        sq = sq + d * d
    eps = np.float32(node.attr("epsilon", 1e-5))
    inv_std = np.float32(1.0) / np.sqrt(sq / np.float32(n) + eps)
    y = (rows - mean[:, None]) * inv_std[:, None]
    y = y * np.asarray(scale, dtype=np.float32).reshape(1, n)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float32).reshape(1, n)
    stat_shape = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
    return [y.reshape(x.shape).astype(x.dtype), mean.reshape(stat_shape), inv_std.reshape(stat_shape)]


def _rms_norm(node: Node, inputs: list) -> list:
    x, scale = inputs[0], inputs[1]
    axes = _trailing_axes(node, x)
    x64 = f64(x)
    rms = np.sqrt((x64 ** 2).mean(axis=axes, keepdims=True) + node.attr("epsilon", 1e-5))
    return [(x64 / rms * f64(scale)).astype(x.dtype)]


register("LayerNormalization", _layer_norm, dtypes=(FLOAT,), inplace_inputs=(0,))
register("RMSNormalization", _rms_norm, dtypes=(FLOAT,), inplace_inputs=(0,))


# ----- InstanceNormalization / GroupNormalization ------------------------
def _instance_norm(node: Node, inputs: list) -> list:
    x, scale, bias = inputs[:3]
    axes = tuple(range(2, x.ndim))
    x64 = f64(x)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = _channel_shape(x)
    y = (x64 - mean) / np.sqrt(var + node.attr("epsilon", 1e-5))
    y = y * f64(scale).reshape(shape) + f64(bias).reshape(shape)
    return [y.astype(x.dtype)]


def _group_norm(node: Node, inputs: list) -> list:
    x, scale, bias = inputs[:3]
    groups = node.attr("num_groups")
    n, c = x.shape[:2]
    grouped = f64(x).reshape(n, groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=2, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + node.attr("epsilon", 1e-5))).reshape(x.shape)
    scale, bias = f64(scale), f64(bias)
    if scale.size != c:  # opset 18: one scale and bias per group
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    shape = _channel_shape(x)
    return [(y * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)]


register("InstanceNormalization", _instance_norm, dtypes=(FLOAT,), inplace_inputs=(0,))


def _same_as_input(node: Node, inputs: list) -> list:
    return [(inputs[0].shape, inputs[0].dtype)]


# onnx's shape inference has no rule for GroupNormalization-21: give our own
register("GroupNormalization", _group_norm, dtypes=(FLOAT,), inplace_inputs=(0,),
         infer=_same_as_input)


# ----- LpNormalization / MeanVarianceNormalization / LRN -----------------
def _lp_norm(node: Node, inputs: list) -> list:
    x = inputs[0]
    axis = norm_axis(node.attr("axis", -1), x.ndim)
    p = node.attr("p", 2)
    x64 = f64(x)
    if p == 1:
        norm = np.abs(x64).sum(axis=axis, keepdims=True)
    else:
        norm = np.sqrt((x64 ** 2).sum(axis=axis, keepdims=True))
    with np.errstate(all="ignore"):
        return [(x64 / norm).astype(x.dtype)]


def _lp_norm_check(node: Node, graph: Graph) -> str | None:
    return None if node.attr("p", 2) in (1, 2) else "LpNormalization p must be 1 or 2"


def _mvn(node: Node, inputs: list) -> list:
    x = inputs[0]
    axes = tuple(norm_axis(a, x.ndim) for a in (node.attr("axes") or (0, 2, 3)))
    x64 = f64(x)
    mean = x64.mean(axis=axes, keepdims=True)
    std = np.sqrt((x64 ** 2).mean(axis=axes, keepdims=True) - mean ** 2)
    return [((x64 - mean) / (std + 1e-9)).astype(x.dtype)]


def _lrn(node: Node, inputs: list) -> list:
    x = inputs[0]
    size = node.attr("size")
    alpha, beta, bias = node.attr("alpha", 1e-4), node.attr("beta", 0.75), node.attr("bias", 1.0)
    sq = f64(x) ** 2
    channels = x.shape[1]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    padded = np.pad(sq, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    total = sum(padded[:, i:i + channels] for i in range(size))
    return [(f64(x) / (bias + alpha / size * total) ** beta).astype(x.dtype)]


register("LpNormalization", _lp_norm, dtypes=(FLOAT,), inplace_inputs=(0,), check=_lp_norm_check)
register("MeanVarianceNormalization", _mvn, dtypes=(FLOAT,), inplace_inputs=(0,))
register("LRN", _lrn, dtypes=(FLOAT,))


# ----- Softmax / LogSoftmax / Hardmax ------------------------------------
# Opset 13+ semantics (one axis, default -1).  Older models are lifted to
# opset 13 by the frontend, whose version converter rewrites the coerce-to-2D
# form of opset < 13 into Flatten -> Softmax(axis=-1) -> Reshape.
def _log_softmax64(node: Node, x: np.ndarray) -> np.ndarray:
    axis = norm_axis(node.attr("axis", -1), x.ndim)
    x64 = f64(x)
    shifted = x64 - x64.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# softmax_exp's constants, as runtime_c/o2m_norm.c spells them (the same decimal -> the same float)
EXP_FLOOR = "-86.0"  # below: 0 (keeps every result a normal float: the scaling by 2^k is exact)
EXP_LOG2E, EXP_LN2_HI, EXP_LN2_LO = "1.44269504", "0.693145752", "1.42860677e-6"
EXP_POLY = ("1.38888889e-3", "8.33333333e-3", "4.16666667e-2", "1.66666667e-1", "0.5", "1.0", "1.0")


def softmax_exp(x: np.ndarray) -> np.ndarray:
    """exp in float32 operations only, in o2m_norm.c's order (softmax_exp): k = floor(x log2e +
    0.5), r = (x - k ln2_hi) - k ln2_lo, a degree-6 polynomial of r, times 2^k; about 2 ulp from
    the true exp.  Defined this way (not by the C library's expf) so that the simulator and the C
    give the same bits, and an int8 model's Softmax float island the same integers."""
    f = np.float32
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        kf = np.floor(x * f(EXP_LOG2E) + f(0.5))
        r = (x - kf * f(EXP_LN2_HI)) - kf * f(EXP_LN2_LO)
        p = np.full(x.shape, f(EXP_POLY[0]), dtype=np.float32)
        for c in EXP_POLY[1:]:
            p = p * r + f(c)
        k = np.where(np.isfinite(kf), kf, 0).astype(np.int32)
        y = (p * np.ldexp(f(1.0), k).astype(np.float32)).astype(np.float32)
    y = np.where(x < f(EXP_FLOOR), f(0.0), y)
    return np.where(np.isnan(x), x, y).astype(np.float32)


def _softmax(node: Node, inputs: list) -> list:
    """What o2m_softmax_f32 computes, in float32: the row's max, softmax_exp of x - max, the sum
    in order, one reciprocal, the products."""
    x = np.asarray(inputs[0])
    if x.dtype != np.float32:
        return [np.exp(_log_softmax64(node, x)).astype(x.dtype)]
    axis = norm_axis(node.attr("axis", -1), x.ndim)
    rows = np.moveaxis(x, axis, -1)
    e = softmax_exp(rows - rows.max(axis=-1, keepdims=True))
    total = np.zeros(e.shape[:-1], dtype=np.float32)
    for k in range(e.shape[-1]):
        total = total + e[..., k]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = e * (np.float32(1.0) / total)[..., None]
    return [np.moveaxis(y.astype(np.float32), -1, axis)]


def _log_softmax(node: Node, inputs: list) -> list:
    return [_log_softmax64(node, inputs[0]).astype(inputs[0].dtype)]


def _hardmax(node: Node, inputs: list) -> list:
    x = inputs[0]
    axis = norm_axis(node.attr("axis", -1), x.ndim)
    index = np.expand_dims(np.argmax(x, axis=axis), axis)  # first maximum wins
    out = np.zeros_like(x)
    np.put_along_axis(out, index, 1, axis=axis)
    return [out]


register("Softmax", _softmax, dtypes=(FLOAT,), inplace_inputs=(0,))
register("LogSoftmax", _log_softmax, dtypes=(FLOAT,), inplace_inputs=(0,))
register("Hardmax", _hardmax, dtypes=(FLOAT,), inplace_inputs=(0,))
