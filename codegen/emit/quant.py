"""C lowering of QuantizeLinear / DequantizeLinear (per tensor or per axis)."""
from __future__ import annotations

from onnx2mcu.codegen.context import QUANT as QUANT_C
from onnx2mcu.codegen.context import axis_view, c_float
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import norm_axis
from onnx2mcu.ops.registry import prepared


S8_QUANTIZE = "o2m_s8_quantize.c"
Q_DTYPES = (DType.INT8, DType.UINT8, DType.INT32)  # o2m_(de)quantize_<suffix>; no quantize to s32


def _emit_quant(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        x, scale, y = node.inputs[0], node.inputs[1], node.outputs[0]
        zero = node.inputs[2] if len(node.inputs) > 2 else ""
        integer = y if kernel == "quantize" else x
        if kernel == "quantize" and ctx.dtype(x) is not DType.FLOAT32:
            ctx.refuse(node, f"no C kernel to quantize {ctx.dtype(x).value}")
        suffix = ctx.dtype(integer).suffix
        if ctx.dtype(integer) not in Q_DTYPES or (kernel == "quantize" and suffix == "s32"):
            ctx.refuse(node, f"no C kernel for {ctx.dtype(integer).value}")
        if zero and ctx.dtype(zero) is not ctx.dtype(integer):
            ctx.refuse(node, "zero point of another dtype")
        shape = ctx.shape(x)
        tflite = prepared(node, ctx.graph) if kernel == "quantize" else None
        if tflite is not None:  # --requant fixed: TFLite's rounding (onnx2mcu/ops/int8.py QuantizeInt8)
            ctx.need(S8_QUANTIZE)
            ctx.include("o2m_s8_quantize.h")
            return [f"o2m_quantize_away_s8({ctx.numel(x)}, {ctx.ptr(x)}, {c_float(tflite.scale)}, "
                    f"{tflite.zero_point}, {ctx.ptr(y)});"]
        if ctx.numel(scale) > 1:
            axis = norm_axis(node.attr("axis", 1), len(shape))
            outer, dim, inner = axis_view(shape, axis, axis)
        else:
            outer, dim, inner = 1, 1, ctx.numel(x)
        ctx.need(QUANT_C)
        return [f"o2m_{kernel}_{suffix}({outer}, {dim}, {inner}, {ctx.ptr(x)}, {ctx.ptr(scale)}, "
                f"{ctx.ptr(zero)}, {ctx.ptr(y)});"]
    return emit


register_kernel("QuantizeLinear", _emit_quant("quantize"), dtypes=(DType.FLOAT32,),
                sources=(QUANT_C, S8_QUANTIZE))
register_kernel("DequantizeLinear", _emit_quant("dequantize"), sources=(QUANT_C,))
