"""C lowering of dynamic quantization: DynamicQuantizeLinear, MatMulInteger, ConvInteger
(runtime_c/o2m_dynquant.c; semantics in onnx2mcu/ops/quant.py and onnx2mcu/ops/integer.py).

The kernel is keyed by input 0's dtype; the C function's suffix names both operands' element
types (o2m_matmul_integer_u8s8: uint8 activations, int8 weights, as quantize_dynamic writes).
"""
from __future__ import annotations

from onnx2mcu.codegen.context import DYNQUANT
from onnx2mcu.codegen.emit.conv import c_struct, window_2d
from onnx2mcu.codegen.emit.linalg import matmul_geometry
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_output

OPERANDS = (DType.UINT8, DType.INT8)


def _emit_dynamic_quantize(node: Node, ctx) -> list[str]:
    x = node.inputs[0]
    y, scale, zero = (node.outputs + ["", ""])[:3]
    if ctx.dtype(y) is not DType.UINT8:
        ctx.refuse(node, f"output of dtype {ctx.dtype(y).value} (ONNX: uint8)")
    ctx.check_size(node, x)
    ctx.need(DYNQUANT)
    scale = scale if has_output(node, 1) else ""
    zero = zero if has_output(node, 2) else ""
    return [f"o2m_dynamic_quantize_u8({ctx.numel(x)}, {ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.ptr(scale)}, "
            f"{ctx.ptr(zero)});"]


def _operands(node: Node, ctx) -> str:
    """The C suffix of the two operands, after checking each zero point has its operand's dtype."""
    for operand, zero in ((0, 2), (1, 3)):
        if len(node.inputs) > zero and node.inputs[zero]:
            if ctx.dtype(node.inputs[zero]) is not ctx.dtype(node.inputs[operand]):
                ctx.refuse(node, f"zero point {zero} of another dtype than input {operand}")
    a, b = ctx.dtype(node.inputs[0]), ctx.dtype(node.inputs[1])
    if a not in OPERANDS or b not in OPERANDS:
        ctx.refuse(node, f"no C kernel for {a.value} x {b.value}")
    return a.suffix + b.suffix


def _zero_points(node: Node, ctx) -> tuple[str, str]:
    return tuple(ctx.ptr(node.inputs[i]) if len(node.inputs) > i else "NULL" for i in (2, 3))


def _per_value(node: Node, ctx, index: int) -> int:
    return int(len(node.inputs) > index and bool(node.inputs[index]) and ctx.numel(node.inputs[index]) > 1)


def _emit_matmul_integer(node: Node, ctx) -> list[str]:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    suffix = _operands(node, ctx)
    params = {**matmul_geometry(node, ctx), "b_zp_per_column": _per_value(node, ctx, 3)}
    name = ctx.declare("o2m_matmul_integer_params", c_struct(params), "matmul_integer")
    a_zp, b_zp = _zero_points(node, ctx)
    ctx.need(DYNQUANT)
    return [f"o2m_matmul_integer_{suffix}(&{name}, {ctx.ptr(a)}, {ctx.ptr(b)}, {a_zp}, {b_zp}, "
            f"{ctx.ptr(y)});"]


def _emit_conv_integer(node: Node, ctx) -> list[str]:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    suffix = _operands(node, ctx)
    win, (h_in, w_in) = window_2d(node, ctx, dtypes=OPERANDS)
    n, c_in = ctx.shape(x)[:2]
    params = {"n": n, "c_in": c_in, "h_in": h_in, "w_in": w_in, "c_out": ctx.shape(w)[0],
              "h_out": win.out[0], "w_out": win.out[1], "k_h": win.kernel[0], "k_w": win.kernel[1],
              "stride_h": win.strides[0], "stride_w": win.strides[1],
              "dil_h": win.dilations[0], "dil_w": win.dilations[1],
              "pad_top": win.pads_begin[0], "pad_left": win.pads_begin[1],
              "groups": node.attr("group", 1), "w_zp_per_channel": _per_value(node, ctx, 3)}
    name = ctx.declare("o2m_conv_integer_params", c_struct(params), "conv_integer")
    x_zp, w_zp = _zero_points(node, ctx)
    ctx.need(DYNQUANT)
    return [f"o2m_conv_integer_{suffix}(&{name}, {ctx.ptr(x)}, {ctx.ptr(w)}, {x_zp}, {w_zp}, "
            f"{ctx.ptr(y)});"]


register_kernel("DynamicQuantizeLinear", _emit_dynamic_quantize, dtypes=(DType.FLOAT32,),
                sources=(DYNQUANT,))
register_kernel("MatMulInteger", _emit_matmul_integer, dtypes=OPERANDS, sources=(DYNQUANT,))
register_kernel("ConvInteger", _emit_conv_integer, dtypes=OPERANDS, sources=(DYNQUANT,))
