"""Integer matrix products with zero points: MatMulInteger and ConvInteger (int32 outputs).

These are the integer half of onnxruntime's dynamic quantization
(`onnxruntime.quantization.quantize_dynamic`): DynamicQuantizeLinear (onnx2mcu/ops/quant.py)
turns a float activation into uint8 with a scale computed at run time, MatMulInteger or
ConvInteger multiplies it by int8/uint8 weights, and the model's own float nodes (Cast to
float, Mul by the two scales, Add of the bias) bring the result back to float.  So there is
no requantization here: the output is the exact int32 sum of (a - a_zero_point) *
(b - b_zero_point).

The references compute in int64 (exact; numpy integer matmul does not use BLAS).  The C
kernels accumulate in int32, so `check` refuses a node whose worst-case sum could leave the
int32 range (inner size over INT32_MAX / 255^2 = 33025), where the C would overflow.

Zero points, as onnxruntime takes them: A's (and x's) one value per tensor; B's one per
tensor or one per column (MatMulInteger, a [N] vector) and w's one per tensor or one per
output channel (ConvInteger, [M]).  Padded conv taps contribute 0 (ONNX pads the centred
values, onnxruntime pads with the zero point: the same).

They are QUANT_INTEGER ops (they run on the integers whatever `Tensor.quant` says), counted
as int8 nodes in the precision report (onnx2mcu/ops/int8.py `node_precision`).
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import has_input, input_or_none
from onnx2mcu.ops.conv import WindowParams, conv_sum, node_window, prepare_window, window_check
from onnx2mcu.ops.registry import QUANT, QUANT_INTEGER, register

INTEGER_PRODUCTS = ("MatMulInteger", "ConvInteger")
"""Counted as int8 nodes by the precision report (onnx2mcu/ops/int8.py node_precision)."""

MAX_INNER = (2**31 - 1) // (255 * 255)
"""Largest inner size (K, or C/group x kernel taps) whose int32 sum cannot overflow."""


def _centred(values: np.ndarray, zero_point, per_value_shape: tuple[int, ...] = ()) -> np.ndarray:
    """values - zero_point in int64; a zero point of several values is reshaped to
    `per_value_shape` (empty: numpy broadcasting, i.e. along the last axis)."""
    out = values.astype(np.int64)
    if zero_point is None:
        return out
    zp = np.asarray(zero_point).astype(np.int64)
    if zp.size == 1:
        return out - zp.reshape(())
    return out - (zp.reshape(per_value_shape) if per_value_shape else zp)


# ----- MatMulInteger -------------------------------------------------------
def _matmul_integer(node: Node, inputs: list) -> list:
    a = _centred(inputs[0], input_or_none(inputs, 2))
    b = _centred(inputs[1], input_or_none(inputs, 3))  # a [N] zero point broadcasts over columns
    return [np.matmul(a, b).astype(np.int32)]


def _matmul_integer_check(node: Node, graph: Graph) -> str | None:
    a = graph.tensors[node.inputs[0]]
    b = graph.tensors[node.inputs[1]]
    if not a.shape or not b.shape:
        return "MatMulInteger of a scalar"
    k = a.shape[-1]
    n = b.shape[-1] if len(b.shape) > 1 else 1
    if has_input(node, 2) and graph.tensors[node.inputs[2]].numel != 1:
        return "a_zero_point with more than one value (per-row) not supported (onnxruntime: scalar)"
    if has_input(node, 3):
        zp = graph.tensors[node.inputs[3]]
        if zp.numel != 1 and (len(zp.shape) != 1 or zp.numel != n or len(b.shape) < 2):
            return f"b_zero_point of shape {list(zp.shape)}: one value or one per column ({n}) expected"
    if k > MAX_INNER:
        return f"inner size {k} > {MAX_INNER}: the int32 sum could overflow"
    return None


def _matmul_integer_macs(node: Node, graph: Graph) -> int:
    a = graph.tensors[node.inputs[0]]
    return graph.tensors[node.outputs[0]].numel * (a.shape[-1] if a.shape else 1)


register("MatMulInteger", _matmul_integer, dtypes=(QUANT, QUANT, QUANT, QUANT),
         check=_matmul_integer_check, macs=_matmul_integer_macs, quantized=QUANT_INTEGER)


# ----- ConvInteger ---------------------------------------------------------
def _conv_integer(node: Node, inputs: list, params: WindowParams | None = None) -> list:
    x, w = inputs[0], inputs[1]
    per_channel = (w.shape[0],) + (1,) * (w.ndim - 1)
    xc = _centred(x, input_or_none(inputs, 2))
    wc = _centred(w, input_or_none(inputs, 3), per_channel)
    win = node_window(node, x, params, tuple(w.shape[2:]))
    return [conv_sum(xc, wc, node.attr("group", 1), win).astype(np.int32)]


def _conv_integer_check(node: Node, graph: Graph) -> str | None:
    reason = window_check(node, graph)
    if reason:
        return reason
    w = graph.tensors[node.inputs[1]]
    if has_input(node, 2) and graph.tensors[node.inputs[2]].numel != 1:
        return "x_zero_point with more than one value not supported (onnxruntime: scalar)"
    if has_input(node, 3):
        zp = graph.tensors[node.inputs[3]]
        if zp.numel not in (1, w.shape[0]) or len(zp.shape) > 1:
            return (f"w_zero_point of shape {list(zp.shape)}: one value or one per output channel "
                    f"({w.shape[0]}) expected")
    inner = math.prod(w.shape[1:])
    if inner > MAX_INNER:
        return f"inner size {inner} > {MAX_INNER}: the int32 sum could overflow"
    return None


def _conv_integer_macs(node: Node, graph: Graph) -> int:
    w = graph.tensors[node.inputs[1]]
    return graph.tensors[node.outputs[0]].numel * math.prod(w.shape[1:])


register("ConvInteger", _conv_integer, dtypes=(QUANT, QUANT, QUANT, QUANT), check=_conv_integer_check,
         macs=_conv_integer_macs, prepare=prepare_window, quantized=QUANT_INTEGER)
