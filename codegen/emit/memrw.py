"""C lowering of the memory-rewrite kernels (onnx2mcu/ops/memrw.py): FusedKernel and
AccumulateKernel over a Conv, a Max/AveragePool or a Gemm, with an activation prologue, a
batch-norm epilogue and accumulate-into-output, as one `o2m_memrw_{conv2d,pool2d,gemm}_f32`
call (runtime_c/o2m_memrw.c); the conv also runs in place over its input (depthwise or 1x1).

runtime_c/o2m_memrw.c has no header (every runtime_c header is copied into every
project, which would change the bytes of models that never use it), so model.c
declares the prototypes it calls, among its declarations.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.codegen.context import CONV, c_scalar
from onnx2mcu.codegen.emit.linalg import gemm_geometry
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops.memrw import ACCUMULATE, DOMAIN, FUSED, conv_scratch, inplace_kind, kernel_node

MEMRW = "o2m_memrw.c"
PROTOTYPE = ("void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, "
             "const float *x, const float *w, const float *bias, const float *bn_mul, "
             "const float *bn_bias, const float *bn_mean, const float *acc, float *y, "
             "float *scratch);")
POOL_PROTOTYPE = ("void o2m_memrw_pool2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, "
                  "const float *x, const float *bn_mul, const float *bn_bias, const float *bn_mean, "
                  "const float *acc, float *y);")
GEMM_PROTOTYPE = ("void o2m_memrw_gemm_f32(const int32_t *g, float alpha, float beta, int32_t prologue, float lo, "
                  "float hi, const float *a, const float *b, const float *c, const float *bn_mul, "
                  "const float *bn_bias, const float *bn_mean, const float *acc, float *y);")
PROLOGUE_KIND = {"": 0, "Relu": 1, "Clip": 3}  # O2M_ACT_* of o2m_common.h
FLT_MAX = float(np.finfo(np.float32).max)


def _float(value: float) -> str:
    return c_scalar(np.float32(value), DType.FLOAT32)


def _window(inner: Node, ctx, kernel: tuple | None = None) -> tuple:
    """The 2-D window of the conv or pool a memory-rewrite node wraps (`inner` is not in the
    graph, so it has no prepared Params: compute it from the same rule, onnx2mcu/ops/conv.py)."""
    from onnx2mcu.ops.conv import Window, window

    shape = ctx.shape(inner.inputs[0])
    if ctx.dtype(inner.inputs[0]) is not DType.FLOAT32:
        ctx.refuse(inner, f"no C kernel for dtype {ctx.dtype(inner.inputs[0]).value}")
    if len(shape) not in (3, 4):
        ctx.refuse(inner, f"{len(shape) - 2}-D {inner.op_type} has no C kernel (1-D and 2-D only)")
    win = window(inner, tuple(shape[2:]), kernel, ceil_mode=bool(inner.attr("ceil_mode", 0)))
    if len(shape) == 4:
        return win, tuple(shape[2:])
    return Window((1,) + win.kernel, (1,) + win.strides, (1,) + win.dilations, (0,) + win.pads_begin,
                  (0,) + win.pads_end, (1,) + win.out), (1, shape[2])


def _epilogue(node: Node, ctx) -> str:
    """The batch norm's three C arguments: scale / sqrt(var + eps) folded in float32 (as
    o2m_batchnorm_stats_f32 computes it), bias, mean; NULLs without an epilogue."""
    if not node.attr("epilogue"):
        return "NULL, NULL, NULL"
    first = 1 if node.op_type == ACCUMULATE else 0
    scale, bias, mean, var = node.inputs[first + int(node.attr("n_kernel")):][:4]
    values = [np.asarray(ctx.tensor(t).data, np.float32).reshape(-1) for t in (scale, var)]
    eps = np.float32(node.attr("epsilon", 1e-5))
    with np.errstate(all="ignore"):
        mul = values[0] / np.sqrt(values[1] + eps)
    return f"{ctx.float_array(mul, 'memrw_bn')}, {ctx.ptr(bias)}, {ctx.ptr(mean)}"


def _common(node: Node, ctx, prototype: str) -> tuple[list[str], str, str]:
    """The prologue arguments (kind, lo, hi), the epilogue's three arguments, ACC."""
    kind = node.attr("prologue", "")
    lo, hi = node.attr("clip_min"), node.attr("clip_max")
    acc = node.inputs[0] if node.op_type == ACCUMULATE else ""
    if prototype not in ctx.declarations:
        ctx.declarations.append(prototype)
    ctx.need(MEMRW, CONV)  # o2m_memrw.c's depthwise path runs o2m_conv2d_depthwise_f32
    prologue = [str(PROLOGUE_KIND[kind]), _float(-FLT_MAX if lo is None else lo),
                _float(FLT_MAX if hi is None else hi)]
    return prologue, _epilogue(node, ctx), ctx.ptr(acc)


def _emit_pool(node: Node, inner: Node, ctx) -> list[str]:
    x, y = inner.inputs[0], node.outputs[0]
    win, (h_in, w_in) = _window(inner, ctx)
    n, c = ctx.shape(x)[:2]
    geometry = [n, c, h_in, w_in, win.out[0], win.out[1], win.kernel[0], win.kernel[1], win.strides[0],
                win.strides[1], win.dilations[0], win.dilations[1], win.pads_begin[0], win.pads_begin[1],
                win.pads_end[0], win.pads_end[1], int(bool(inner.attr("count_include_pad", 0))),
                int(inner.op_type == "AveragePool")]
    g = ctx.int_array(geometry, "memrw_pool")
    prologue, bn, acc = _common(node, ctx, POOL_PROTOTYPE)
    return [f"o2m_memrw_pool2d_f32({g}, {', '.join(prologue)}, {ctx.ptr(x)}, {bn}, {acc}, {ctx.ptr(y)});"]


def _emit_gemm(node: Node, inner: Node, ctx) -> list[str]:
    a, b, y = inner.inputs[0], inner.inputs[1], node.outputs[0]
    c = inner.inputs[2] if len(inner.inputs) > 2 else ""
    if any(ctx.dtype(t) is not DType.FLOAT32 for t in (a, b)) or len(ctx.shape(a)) != 2:
        ctx.refuse(node, "no C kernel for this Gemm (float32, 2-D A only)")
    geo = gemm_geometry(inner, ctx)
    g = ctx.int_array([geo[f] for f in ("m", "n", "k", "trans_a", "trans_b", "c_stride_m", "c_stride_n")],
                      "memrw_gemm")
    prologue, bn, acc = _common(node, ctx, GEMM_PROTOTYPE)
    return [f"o2m_memrw_gemm_f32({g}, {_float(inner.attr('alpha', 1.0))}, {_float(inner.attr('beta', 1.0))}, "
            f"{', '.join(prologue)}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(c)}, {bn}, {acc}, {ctx.ptr(y)});"]


def _emit(node: Node, ctx) -> list[str]:
    inner = kernel_node(node)
    if inner.op_type in ("MaxPool", "AveragePool"):
        return _emit_pool(node, inner, ctx)
    if inner.op_type == "Gemm":
        return _emit_gemm(node, inner, ctx)
    if inner.op_type != "Conv":
        ctx.refuse(node, f"no C kernel for a {inner.op_type} with a prologue or accumulation")
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
    # the fast paths take a scratch; in place over the data input (onnx2mcu/ops/memrw.py,
    # inplace_rule) only in the geometries that allow it
    scratch = ctx.scratch(node) if conv_scratch(node, ctx.graph) else "NULL"
    if ctx.same_bytes(x, y) and inplace_kind(node, ctx.graph) is None:
        ctx.refuse(node, "output placed over the input of a conv that cannot run in place")
    prologue, bn, acc = _common(node, ctx, PROTOTYPE)
    args = [g] + prologue + [ctx.ptr(x), ctx.ptr(w), ctx.ptr(bias), bn, acc, ctx.ptr(y), scratch]
    return [f"o2m_memrw_conv2d_f32({', '.join(args)});"]


register_kernel(FUSED, _emit, domain=DOMAIN, dtypes=(DType.FLOAT32,), sources=(MEMRW, CONV))
register_kernel(ACCUMULATE, _emit, domain=DOMAIN, dtypes=(DType.FLOAT32,), sources=(MEMRW, CONV))
