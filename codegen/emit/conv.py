"""C lowering of Conv (1-D and 2-D, float32): one call of a runtime_c/o2m_conv.c kernel with a
params struct.

Two registered kernels share the emitter: the portable one calls `o2m_conv2d_f32` (which
dispatches at run time, the same bits on every path); the "arm-dsp" one (the Cortex-M4/M7
fast family, codegen/kernels.py) picks the function at compile time with `conv_function`,
the register-tiled `o2m_conv2d_tiled_f32` for dense and grouped convolutions and
`o2m_conv2d_depthwise_tiled_f32` for depthwise ones (fused multiply-adds on the FPU: the
last bits may differ from the portable kernel's, which the float checks' tolerance covers).
"""
from __future__ import annotations

from onnx2mcu.codegen.context import CONV
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops.conv import Window
from onnx2mcu.ops.registry import prepared


def window_2d(node: Node, ctx, dtypes=(DType.FLOAT32,)) -> tuple[Window, tuple]:
    """The prepared window of a 1-D or 2-D conv/pool node (the one the simulator's reference
    reads, onnx2mcu/ops/conv.py prepare_window), lifted to 2-D (H = 1 for 1-D); and (h, w) of x
    (whose dtype must be one of `dtypes`)."""
    x = node.inputs[0]
    shape = ctx.shape(x)
    if ctx.dtype(x) not in dtypes:
        ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(x).value}")
    if len(shape) not in (3, 4):
        ctx.refuse(node, f"{len(shape) - 2}-D {node.op_type} has no C kernel (1-D and 2-D only)")
    win = prepared(node, ctx.graph).window
    if len(shape) == 4:
        return win, tuple(shape[2:])
    lifted = Window((1,) + win.kernel, (1,) + win.strides, (1,) + win.dilations,
                    (0,) + win.pads_begin, (0,) + win.pads_end, (1,) + win.out)
    return lifted, (1, shape[2])


def c_struct(fields: dict) -> str:
    """A designated initializer {.a = 1, .b = 2} (nested dicts for nested structs)."""
    parts = []
    for key, value in fields.items():
        text = c_struct(value) if isinstance(value, dict) else str(value)
        parts.append(f".{key} = {text}")
    return "{" + ", ".join(parts) + "}"


NO_ACT = {"kind": "O2M_ACT_NONE", "min": "0.0f", "max": "0.0f"}


def conv_function(params: dict, fast: bool) -> str:
    """The runtime_c function that runs a conv of these params (the emitted struct's fields):
    the run-time dispatcher for the portable kernel; for the fast family, the fused depthwise
    kernel or the register-tiled one (a single input channel included: a dense conv, which
    the dispatcher would give to the depthwise kernel)."""
    if not fast:
        return "o2m_conv2d_f32"
    c_in, c_out, groups = params["c_in"], params["c_out"], params["groups"]
    if groups == c_in and groups > 1 and c_out % c_in == 0:
        return "o2m_conv2d_depthwise_tiled_f32"
    return "o2m_conv2d_tiled_f32"


def _emit(node: Node, ctx, fast: bool) -> list[str]:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    w_shape = ctx.shape(w)
    win, (h_in, w_in) = window_2d(node, ctx)
    n, c_in = ctx.shape(x)[:2]
    c_out = w_shape[0]
    if tuple(win.out) != tuple(ctx.shape(y)[2:]) and (1,) + tuple(ctx.shape(y)[2:]) != win.out:
        ctx.refuse(node, "output shape differs from the window rule")
    params = {"n": n, "c_in": c_in, "h_in": h_in, "w_in": w_in, "c_out": c_out,
              "h_out": win.out[0], "w_out": win.out[1], "k_h": win.kernel[0], "k_w": win.kernel[1],
              "stride_h": win.strides[0], "stride_w": win.strides[1],
              "dil_h": win.dilations[0], "dil_w": win.dilations[1],
              "pad_top": win.pads_begin[0], "pad_left": win.pads_begin[1],
              "groups": node.attr("group", 1), "act": NO_ACT}
    name = ctx.declare("o2m_conv2d_params", c_struct(params), "conv")
    ctx.need(CONV)
    fn = conv_function(params, fast)
    return [f"{fn}(&{name}, {ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(bias)}, {ctx.ptr(y)});"]


def _emit_conv(node: Node, ctx) -> list[str]:
    return _emit(node, ctx, fast=False)


def _emit_conv_fast(node: Node, ctx) -> list[str]:
    return _emit(node, ctx, fast=True)


register_kernel("Conv", _emit_conv, dtypes=(DType.FLOAT32,), sources=(CONV,))
register_kernel("Conv", _emit_conv_fast, dtypes=(DType.FLOAT32,), backend="arm-dsp", sources=(CONV,))
