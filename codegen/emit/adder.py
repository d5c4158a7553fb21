"""C lowering of the adder (L1) layers: AdderMatMul and AdderConv, float32 or int8.

AdderConv's scratch (two im2col columns) is the op's formula in the core
(`OpDef.scratch_bytes` of AdderConv, onnx2mcu/ops/adder.py), which the memory model also uses."""
from __future__ import annotations

import math

from onnx2mcu.codegen.context import ADDER
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import Node
from onnx2mcu.ops.binary import DOMAIN, conv_window


def _adder_matmul_emit(node: Node, ctx) -> list[str]:
    x = ctx.tensor(node.inputs[0])
    w = ctx.tensor(node.inputs[1])
    m = math.prod(x.shape[:-1])
    params = ctx.declare("o2m_adder_gemm_params", f"{{{m}, {w.shape[0]}, {w.shape[1]}}}", "agemm")
    ctx.need(ADDER)
    scale = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = node.inputs[3] if len(node.inputs) > 3 else ""
    return [f"o2m_adder_gemm_{x.dtype.suffix}(&{params}, {ctx.ptr(node.inputs[0])}, "
            f"{ctx.ptr(node.inputs[1])}, {ctx.ptr(scale)}, {ctx.ptr(bias)}, {ctx.ptr(node.outputs[0])});"]


def _adder_conv_emit(node: Node, ctx) -> list[str]:
    x = ctx.tensor(node.inputs[0])
    w = ctx.tensor(node.inputs[1])
    kernel = tuple(w.shape[2:])
    win = conv_window(node, tuple(x.shape[2:]), kernel)
    fields = [x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], win.out[0], win.out[1],
              kernel[0], kernel[1], win.strides[0], win.strides[1], win.dilations[0],
              win.dilations[1], win.pads_begin[0], win.pads_begin[1], int(node.attr("pad_value", 0))]
    params = ctx.declare("o2m_adder_conv_params", "{" + ", ".join(str(int(f)) for f in fields) + "}",
                         "aconv")
    ctx.need(ADDER)
    scale = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = node.inputs[3] if len(node.inputs) > 3 else ""
    return [f"o2m_adder_conv_{x.dtype.suffix}(&{params}, {ctx.ptr(node.inputs[0])}, "
            f"{ctx.ptr(node.inputs[1])}, {ctx.ptr(scale)}, {ctx.ptr(bias)}, "
            f"{ctx.scratch(node, x.dtype)}, {ctx.ptr(node.outputs[0])});"]


register_kernel("AdderMatMul", _adder_matmul_emit, domain=DOMAIN, sources=(ADDER,))
register_kernel("AdderConv", _adder_conv_emit, domain=DOMAIN, sources=(ADDER,))
