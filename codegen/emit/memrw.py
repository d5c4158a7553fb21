"""C lowering of the memory-rewrite kernels (onnx2mcu/ops/memrw.py): FusedKernel and
AccumulateKernel over a Conv, with an activation prologue, a batch-norm epilogue and
accumulate-into-output, as one `o2m_memrw_conv2d_f32` call (runtime_c/o2m_memrw.c).

runtime_c/o2m_memrw.c has no header (every runtime_c header is copied into every
project, which would change the bytes of models that never use it), so model.c
declares its prototype once, among its declarations.  Pool and Gemm kernels with a
prologue have no C yet: they are refused, and `compile` then keeps the graph without
those rewrites (graph_opt/memrw.py, rewrite_check).
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.codegen.context import c_scalar
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops.memrw import ACCUMULATE, DOMAIN, FUSED, inplace_kind, kernel_node

MEMRW = "o2m_memrw.c"
PROTOTYPE = ("void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps, "
             "const float *x, const float *w, const float *bias, const float *bn_scale, "
             "const float *bn_bias, const float *bn_mean, const float *bn_var, const float *acc, float *y, "
             "float *scratch);")
PROLOGUE_KIND = {"": 0, "Relu": 1, "Clip": 3}  # O2M_ACT_* of o2m_common.h
FLT_MAX = float(np.finfo(np.float32).max)


def _float(value: float) -> str:
    return c_scalar(np.float32(value), DType.FLOAT32)


def _window(inner: Node, ctx, kernel: tuple) -> tuple:
    """The 2-D window of the conv a memory-rewrite node wraps (`inner` is not in the graph,
    so it has no prepared Params: compute it from the same rule, onnx2mcu/ops/conv.py)."""
    from onnx2mcu.ops.conv import Window, window

    shape = ctx.shape(inner.inputs[0])
    if ctx.dtype(inner.inputs[0]) is not DType.FLOAT32:
        ctx.refuse(inner, f"no C kernel for dtype {ctx.dtype(inner.inputs[0]).value}")
    if len(shape) not in (3, 4):
        ctx.refuse(inner, f"{len(shape) - 2}-D Conv has no C kernel (1-D and 2-D only)")
    win = window(inner, tuple(shape[2:]), kernel)
    if len(shape) == 4:
        return win, tuple(shape[2:])
    return Window((1,) + win.kernel, (1,) + win.strides, (1,) + win.dilations, (0,) + win.pads_begin,
                  (0,) + win.pads_end, (1,) + win.out), (1, shape[2])


def _emit(node: Node, ctx) -> list[str]:
    inner = kernel_node(node)
    if inner.op_type != "Conv":
        ctx.refuse(node, f"no C kernel for a {inner.op_type} with a prologue or accumulation (Conv only)")
    x, w = inner.inputs[0], inner.inputs[1]
    bias = inner.inputs[2] if len(inner.inputs) > 2 else ""
    y = node.outputs[0]
    w_shape = ctx.shape(w)
    win, (h_in, w_in) = _window(inner, ctx, tuple(w_shape[2:]))
    n, c_in = ctx.shape(x)[:2]
    geometry = [n, c_in, h_in, w_in, w_shape[0], win.out[0], win.out[1], win.kernel[0], win.kernel[1],
                win.strides[0], win.strides[1], win.dilations[0], win.dilations[1], win.pads_begin[0],
                win.pads_begin[1], node.attr("group", 1)]
    g = ctx.int_array(geometry, "memrw_geometry")
    kind = node.attr("prologue", "")
    lo = node.attr("clip_min")
    hi = node.attr("clip_max")
    first = 1 if node.op_type == ACCUMULATE else 0
    bn = node.inputs[first + int(node.attr("n_kernel")):][:4] if node.attr("epilogue") else ["", "", "", ""]
    acc = node.inputs[0] if node.op_type == ACCUMULATE else ""
    scratch = "NULL"
    if ctx.same_bytes(x, y):  # in place over the data input (onnx2mcu/ops/memrw.py, inplace_rule)
        if inplace_kind(node, ctx.graph) is None:
            ctx.refuse(node, "output placed over the input of a conv that cannot run in place")
        scratch = ctx.scratch(node)
    if PROTOTYPE not in ctx.declarations:
        ctx.declarations.append(PROTOTYPE)
    ctx.need(MEMRW)
    args = [g, str(PROLOGUE_KIND[kind]), _float(-FLT_MAX if lo is None else lo),
            _float(FLT_MAX if hi is None else hi), _float(node.attr("epsilon", 1e-5)),
            ctx.ptr(x), ctx.ptr(w), ctx.ptr(bias)] + [ctx.ptr(t) for t in bn] + [ctx.ptr(acc), ctx.ptr(y), scratch]
    return [f"o2m_memrw_conv2d_f32({', '.join(args)});"]


register_kernel(FUSED, _emit, domain=DOMAIN, dtypes=(DType.FLOAT32,), sources=(MEMRW,))
register_kernel(ACCUMULATE, _emit, domain=DOMAIN, dtypes=(DType.FLOAT32,), sources=(MEMRW,))
