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
    x, scale, bias = inputs[0], inputs[1], input_or_none(inputs, 2)
    axes = _trailing_axes(node, x)
    x64 = f64(x)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + node.attr("epsilon", 1e-5))
    y = (x64 - mean) * inv_std * f64(scale)
    if bias is not None:
        y = y + f64(bias)
    return [y.astype(x.dtype), mean.astype(np.float32), inv_std.astype(np.float32)]


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


def _softmax(node: Node, inputs: list) -> list:
    return [np.exp(_log_softmax64(node, inputs[0])).astype(inputs[0].dtype)]


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
