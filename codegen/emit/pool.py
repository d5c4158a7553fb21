"""C lowering of the pools: 2-D (and 1-D) Max/AveragePool, GlobalAverage/MaxPool (float32)."""
from __future__ import annotations

from onnx2mcu.codegen.context import CONV, MISC
from onnx2mcu.codegen.emit.conv import c_struct, window_2d
from onnx2mcu.codegen.emit.misc import emit_pool_nd
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_output


def emit_pool(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        if (has_output(node, 1) and ctx.is_used(node.outputs[1])) or len(ctx.shape(node.inputs[0])) == 5:
            return emit_pool_nd(node, ctx)  # Indices, 3-D: o2m_misc.c
        x, y = node.inputs[0], node.outputs[0]
        win, (h_in, w_in) = window_2d(node, ctx)
        n, c = ctx.shape(x)[:2]
        params = {"n": n, "c": c, "h_in": h_in, "w_in": w_in, "h_out": win.out[0],
                  "w_out": win.out[1], "k_h": win.kernel[0], "k_w": win.kernel[1],
                  "stride_h": win.strides[0], "stride_w": win.strides[1],
                  "dil_h": win.dilations[0], "dil_w": win.dilations[1],
                  "pad_top": win.pads_begin[0], "pad_left": win.pads_begin[1],
                  "pad_bottom": win.pads_end[0], "pad_right": win.pads_end[1],
                  "count_include_pad": int(bool(node.attr("count_include_pad", 0)))}
        name = ctx.declare("o2m_pool2d_params", c_struct(params), "pool")
        ctx.need(CONV)
        return [f"o2m_{kernel}_f32(&{name}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    return emit


def emit_global(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        x, y = node.inputs[0], node.outputs[0]
        if ctx.dtype(x) is not DType.FLOAT32:
            ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(x).value}")
        shape = ctx.shape(x)
        nc = shape[0] * shape[1]
        hw = ctx.numel(x) // nc if nc else 0
        ctx.need(CONV)
        return [f"o2m_{kernel}_f32({nc}, {hw}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    return emit


F32 = (DType.FLOAT32,)
register_kernel("MaxPool", emit_pool("maxpool2d"), dtypes=F32, sources=(CONV, MISC))
register_kernel("AveragePool", emit_pool("avgpool2d"), dtypes=F32, sources=(CONV, MISC))
register_kernel("GlobalAveragePool", emit_global("global_avgpool"), dtypes=F32, sources=(CONV,))
register_kernel("GlobalMaxPool", emit_global("global_maxpool"), dtypes=F32, sources=(CONV,))
