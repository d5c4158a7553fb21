"""C lowering of the reductions (one `o2m_reduce_f32` over an [outer, n, inner] view) and
ArgMax / ArgMin (float32)."""
from __future__ import annotations

from onnx2mcu.codegen.context import ELEMENTWISE, MISC, NORM, axis_view, prod
from onnx2mcu.codegen.emit.misc import emit_reduce_nd
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import norm_axis
from onnx2mcu.ops.reduce import _axes

# ----- C emission: one o2m_reduce_f32 call over an [outer, n, inner] view --
_KIND = {"ReduceSum": "SUM", "ReduceMean": "MEAN", "ReduceMax": "MAX", "ReduceMin": "MIN",
         "ReduceProd": "PROD", "ReduceL1": "L1", "ReduceL2": "L2", "ReduceSumSquare": "SUMSQUARE",
         "ReduceLogSum": "LOGSUM", "ReduceLogSumExp": "LOGSUMEXP"}


# what each reduction does to a tensor when there is nothing to reduce (noop_with_empty_axes)
_IDENTITY = {"ReduceL1": "abs", "ReduceL2": "abs", "ReduceLogSum": "log"}


def reduce_view(shape, axes) -> tuple[int, int, int] | None:
    """(outer, n, inner) when the reduced axes are one run once size-1 dims are dropped."""
    kept = [(int(d), a in axes) for a, d in enumerate(shape) if int(d) != 1]
    flags = [reduced for _, reduced in kept]
    if True not in flags:
        return prod(d for d, _ in kept), 1, 1
    first = flags.index(True)
    last = len(flags) - 1 - flags[::-1].index(True)
    if not all(flags[first:last + 1]):
        return None
    dims = [d for d, _ in kept]
    return axis_view(dims, first, last)


def _emit_reduce(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    if ctx.dtype(x) is not DType.FLOAT32:
        ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(x).value} reductions")
    shape = ctx.shape(x)
    axes_value = ctx.tensor(node.inputs[1]).data if len(node.inputs) > 1 and node.inputs[1] else None
    axes = _axes(node, [None, axes_value], len(shape))
    n_out = ctx.numel(y)
    if axes is None:  # noop_with_empty_axes: elementwise identity of this reduction
        if node.op_type == "ReduceSumSquare":
            ctx.need(ELEMENTWISE)
            return [f"o2m_mul_f32({n_out}, {ctx.ptr(x)}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
        if node.op_type in _IDENTITY:
            ctx.need(ELEMENTWISE)
            return [f"o2m_{_IDENTITY[node.op_type]}_f32({n_out}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
        return [f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, {ctx.nbytes(y)}u);"] if n_out else []
    view = reduce_view(shape, set(axes))
    if view is None:  # axes that are not one run: o2m_misc.c
        return emit_reduce_nd(node, ctx, _KIND[node.op_type], shape, set(axes))
    outer, n, inner = view
    ctx.need(NORM)
    return [f"o2m_reduce_f32(O2M_REDUCE_{_KIND[node.op_type]}, {outer}, {n}, {inner}, "
            f"{ctx.ptr(x)}, {ctx.ptr(y)});"]


def _emit_arg(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        x, y = node.inputs[0], node.outputs[0]
        if ctx.dtype(x) is not DType.FLOAT32:
            ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(x).value}")
        shape = ctx.shape(x)
        axis = norm_axis(node.attr("axis", 0), len(shape))
        outer, n, inner = axis_view(shape, axis, axis)
        ctx.need(NORM)
        return [f"o2m_{kernel}_f32({outer}, {n}, {inner}, {ctx.ptr(x)}, "
                f"{int(bool(node.attr('select_last_index', 0)))}, {ctx.ptr(y)});"]
    return emit


for _op in _KIND:
    register_kernel(_op, _emit_reduce, dtypes=(DType.FLOAT32,), sources=(ELEMENTWISE, NORM, MISC))
register_kernel("ArgMax", _emit_arg("argmax"), dtypes=(DType.FLOAT32,), sources=(NORM,))
register_kernel("ArgMin", _emit_arg("argmin"), dtypes=(DType.FLOAT32,), sources=(NORM,))
