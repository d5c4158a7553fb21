"""C lowering of the binarized ops (PackSigns, XnorGemm, XnorConv): runtime_c/o2m_binary.c."""
from __future__ import annotations

import math

from onnx2mcu.codegen.context import BINARY
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import Node
from onnx2mcu.ops.binary import DOMAIN, _output_mode, _pack_axis, conv_window


def _pack_emit(node: Node, ctx) -> list[str]:
    shape = ctx.shape(node.inputs[0])
    axis = _pack_axis(node, len(shape))
    outer, length, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    ctx.need(BINARY)
    return [f"o2m_pack_bits_f32({outer}, {length}, {inner}, {ctx.ptr(node.inputs[0])}, "
            f"{ctx.ptr(node.outputs[0])});"]


def _xnor_gemm_emit(node: Node, ctx) -> list[str]:
    x = ctx.tensor(node.inputs[0])
    w = ctx.tensor(node.inputs[1])
    m = math.prod(x.shape[:-1])
    params = ctx.declare("o2m_binary_gemm_params", f"{{{m}, {w.shape[0]}, {int(node.attr('k'))}}}",
                         "bgemm")
    ctx.need(BINARY)
    kind = "bits" if _output_mode(node) == "bits" else "f32"
    return [f"o2m_binary_gemm_{kind}(&{params}, {ctx.ptr(node.inputs[0])}, {ctx.ptr(node.inputs[1])}, "
            f"{ctx.ptr(node.inputs[2])}, {ctx.ptr(node.outputs[0])});"]


def _xnor_conv_emit(node: Node, ctx) -> list[str]:
    x = ctx.tensor(node.inputs[0])
    w = ctx.tensor(node.inputs[1])
    kernel = tuple(node.attr("kernel_shape"))
    win = conv_window(node, (x.shape[1], x.shape[2]), kernel)
    fields = [x.shape[0], x.shape[3], x.shape[1], x.shape[2], w.shape[0], win.out[0], win.out[1],
              kernel[0], kernel[1], win.strides[0], win.strides[1], win.dilations[0],
              win.dilations[1], win.pads_begin[0], win.pads_begin[1]]
    params = ctx.declare("o2m_binary_conv_params", "{" + ", ".join(str(int(f)) for f in fields) + "}",
                         "bconv")
    ctx.need(BINARY)
    kind = "bits" if _output_mode(node) == "bits" else "f32"
    return [f"o2m_binary_conv_{kind}(&{params}, {ctx.ptr(node.inputs[0])}, {ctx.ptr(node.inputs[1])}, "
            f"{ctx.ptr(node.inputs[2])}, {ctx.ptr(node.outputs[0])});"]


register_kernel("PackSigns", _pack_emit, domain=DOMAIN, sources=(BINARY,))
register_kernel("XnorGemm", _xnor_gemm_emit, domain=DOMAIN, sources=(BINARY,))
register_kernel("XnorConv", _xnor_conv_emit, domain=DOMAIN, sources=(BINARY,))
