"""C lowering of BatchNormalization (inference), LayerNormalization, Softmax and LogSoftmax."""
from __future__ import annotations

from onnx2mcu.codegen.context import MISC, NORM, axis_view, c_float
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.codegen.emit.misc import emit_moments
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_output, norm_axis


def _float_only(node: Node, ctx) -> None:
    for name in node.inputs:
        if name and ctx.dtype(name) is not DType.FLOAT32:
            ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(name).value}")


def _emit_batch_norm(node: Node, ctx) -> list[str]:
    _float_only(node, ctx)
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    if len(shape) < 2:
        ctx.refuse(node, "input of rank < 2")
    n, c = shape[0], shape[1]
    hw = ctx.numel(x) // (n * c) if n * c else 0
    gamma, beta, mean, var = (ctx.ptr(name) for name in node.inputs[1:5])
    ctx.need(NORM)
    return [f"o2m_batchnorm_stats_f32({n}, {c}, {hw}, {ctx.ptr(x)}, {gamma}, {beta}, {mean}, {var}, "
            f"{c_float(node.attr('epsilon', 1e-5))}, {ctx.ptr(y)});"]


def _emit_layer_norm(node: Node, ctx) -> list[str]:
    _float_only(node, ctx)
    stats = any(has_output(node, i) and ctx.is_used(node.outputs[i]) for i in (1, 2))
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attr("axis", -1), len(shape))
    outer, n, _ = axis_view(shape, axis, len(shape) - 1)
    params = [node.inputs[i] if len(node.inputs) > i else "" for i in (1, 2)]
    for name in params:
        if name and ctx.numel(name) != n:
            ctx.refuse(node, f"scale/bias '{name}' broadcast over the normalised axes")
    ctx.need(NORM)
    # the Mean / InvStdDev outputs first: y may take x's bytes
    code = emit_moments(node, ctx, outer, n) if stats else []
    return code + [f"o2m_layernorm_f32({outer}, {n}, {ctx.ptr(x)}, {ctx.ptr(params[0])}, "
            f"{ctx.ptr(params[1])}, {c_float(node.attr('epsilon', 1e-5))}, {ctx.ptr(y)});"]


def _emit_softmax(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        _float_only(node, ctx)
        x, y = node.inputs[0], node.outputs[0]
        shape = ctx.shape(x)
        axis = norm_axis(node.attr("axis", -1), len(shape))
        outer, n, inner = axis_view(shape, axis, axis) if shape else (1, 1, 1)
        ctx.need(NORM)
        return [f"o2m_{kernel}_f32({outer}, {n}, {inner}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    return emit


register_kernel("BatchNormalization", _emit_batch_norm, sources=(NORM,))
register_kernel("LayerNormalization", _emit_layer_norm, sources=(NORM, MISC))
register_kernel("Softmax", _emit_softmax("softmax"), dtypes=(DType.FLOAT32,), sources=(NORM,))
register_kernel("LogSoftmax", _emit_softmax("logsoftmax"), sources=(NORM,))
