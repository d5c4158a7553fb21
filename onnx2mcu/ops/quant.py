"""QuantizeLinear / DequantizeLinear, per tensor or per axis, int8/uint8 (and
int32 for dequantizing biases).  Arithmetic in float32, as runtimes do, with
round-half-to-even and saturation.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops._util import input_or_none, norm_axis
from onnx2mcu.ops.registry import FLOAT, QUANT, register

INT32 = frozenset({DType.INT32})


def _per_axis(node: Node, param: np.ndarray, rank: int) -> np.ndarray:
    """Scale or zero point shaped to broadcast against a rank-`rank` tensor."""
    param = np.asarray(param)
    if param.ndim == 0 or param.size == 1 and rank == 0:
        return param.reshape(())
    axis = norm_axis(node.attr("axis", 1), rank)
    shape = [1] * rank
    shape[axis] = param.size
    return param.reshape(shape)


def _output_dtype(node: Node, zero_point) -> np.dtype:
    from onnx import TensorProto

    if zero_point is not None:
        return zero_point.dtype
    table = {0: np.uint8, TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
    return np.dtype(table[node.attr("output_dtype", 0)])


def _quantize(node: Node, inputs: list) -> list:
    x, scale, zero_point = inputs[0], inputs[1], input_or_none(inputs, 2)
    dtype = _output_dtype(node, zero_point)
    info = np.iinfo(dtype)
    scale = _per_axis(node, scale, x.ndim).astype(np.float32)
    with np.errstate(all="ignore"):
        y = np.rint(x.astype(np.float32) / scale)
    if zero_point is not None:
        y = y + _per_axis(node, zero_point, x.ndim).astype(np.float32)
    return [np.clip(y, info.min, info.max).astype(dtype)]


def _dequantize(node: Node, inputs: list) -> list:
    x, scale, zero_point = inputs[0], inputs[1], input_or_none(inputs, 2)
    scale = _per_axis(node, scale, x.ndim).astype(np.float32)
    centred = x.astype(np.int64)
    if zero_point is not None:
        centred = centred - _per_axis(node, zero_point, x.ndim).astype(np.int64)
    return [(centred.astype(np.float32) * scale).astype(np.float32)]


def _check(node: Node, graph: Graph) -> str | None:
    from onnx import TensorProto

    if node.attr("block_size", 0):
        return f"{node.op_type} blocked quantization (block_size) not supported"
    if node.attr("output_dtype", 0) not in (0, TensorProto.INT8, TensorProto.UINT8):
        return f"{node.op_type} output_dtype {node.attr('output_dtype')} not supported"
    scale = graph.tensors[node.inputs[1]]
    x = graph.tensors[node.inputs[0]]
    if len(scale.shape) > 1:
        return f"{node.op_type} scale of rank {len(scale.shape)} not supported"
    if scale.numel > 1:
        rank = len(x.shape)
        axis = node.attr("axis", 1)
        if not -rank <= axis < rank:
            return f"{node.op_type} axis {axis} out of range for a rank-{rank} input"
        if scale.numel != x.shape[axis % rank]:
            return (f"{node.op_type} per-axis scale has {scale.numel} values, "
                    f"axis {axis} has {x.shape[axis % rank]}")
    return None


def _quantize_shrink(node: Node, graph: Graph) -> tuple[int, ...]:
    """float32 -> int8/uint8 runs in place over its dying input: the kernels (runtime_c/o2m_quant.c,
    o2m_s8_quantize.c) go forward, and writing output byte i destroys only float element i // 4,
    already read (the numpy reference reads a copy, simulator/execute.py)."""
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    if x.dtype is DType.FLOAT32 and y.dtype in (DType.INT8, DType.UINT8):
        return (0,)
    return ()


register("QuantizeLinear", _quantize, dtypes=(FLOAT | INT32, FLOAT, QUANT),
         check=_check, inplace_shrink=_quantize_shrink)
register("DequantizeLinear", _dequantize, dtypes=(QUANT | INT32, FLOAT, QUANT | INT32),
         check=_check)


# ----- DynamicQuantizeLinear ------------------------------------------------
def dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    """ONNX DynamicQuantizeLinear on float32, as onnxruntime computes it (float32 throughout).

    The range [lo, hi] is the data's, widened to include 0; scale = (hi - lo) / 255 (1.0
    when the range is empty: every value is 0, onnxruntime's choice; the ONNX spec leaves
    it open and its reference uses 1/255, which quantizes the zeros identically);
    zero point = saturate(round_half_even(0 - lo / scale)); y = saturate(round_half_even(x /
    scale) + zero point).  Inputs are assumed finite (NaN/Inf: unspecified, as in ONNX)."""
    x = np.asarray(x, dtype=np.float32)
    zero = np.float32(0.0)
    lo = min(zero, x.min()) if x.size else zero
    hi = max(zero, x.max()) if x.size else zero
    scale = np.float32(1.0) if hi == lo else np.float32(np.float32(hi - lo) / np.float32(255.0))
    with np.errstate(all="ignore"):
        zero_point = np.rint(np.clip(zero - np.float32(lo / scale), 0, 255)).astype(np.float32)
        y = np.clip(np.rint(x / scale) + zero_point, 0, 255)
    return y.astype(np.uint8), scale, np.uint8(zero_point)


def _dynamic_quantize(node: Node, inputs: list) -> list:
    y, scale, zero_point = dynamic_quantize(inputs[0])
    return [y, np.array(scale, dtype=np.float32), np.array(zero_point, dtype=np.uint8)]


register("DynamicQuantizeLinear", _dynamic_quantize, dtypes=(FLOAT,))
