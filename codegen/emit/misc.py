"""C lowering of the less common ops (runtime_c/o2m_misc.c, o2m_resize.c, o2m_convt.c).

These families were added after o2m_kernels.h; their headers reach a project
(and its model.c) only when a model calls them (codegen/generate.py,
ON_DEMAND_SOURCES), so the projects of other models stay byte-identical.
Geometry and tap tables are computed here, at compile time, from the same
functions the numpy references use (onnx2mcu/ops/), so the C cannot disagree
with the simulator on them.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.codegen.context import (CONVT, ELEMENTWISE, KERNEL_SUFFIX, MISC, RESIZE,
                                      broadcast_strides, c_float, dense_strides, prod,
                                      simplify_strided)
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_input, norm_axis
from onnx2mcu.ops.binary import DOMAIN as BINARY_DOMAIN
from onnx2mcu.ops.binary import conv_window
from onnx2mcu.ops.conv import _transpose_geometry, window
from onnx2mcu.ops.resize import _plan
from onnx2mcu.ops.resize import axis_taps as resize_axis_taps

F32 = (DType.FLOAT32,)
FI = (DType.FLOAT32, DType.INT32, DType.INT64)


def _f32(node: Node, ctx, name: str) -> None:
    if ctx.dtype(name) is not DType.FLOAT32:
        ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(name).value}")


def _suffix(node: Node, ctx, name: str, allowed=FI) -> str:
    dtype = ctx.dtype(name)
    if dtype not in allowed:
        ctx.refuse(node, f"no C kernel for dtype {dtype.value}")
    return KERNEL_SUFFIX[dtype]


def _const(node: Node, ctx, name: str, what: str) -> np.ndarray:
    if not ctx.is_const(name):
        ctx.refuse(node, f"{what} must be a constant (bind the inputs it depends on)")
    return np.asarray(ctx.tensor(name).data)


def _elem(ctx, name: str) -> int:
    return int(np.dtype(ctx.dtype(name).numpy).itemsize)


def _index_flag(node: Node, ctx, name: str) -> int:
    dtype = ctx.dtype(name)
    if dtype not in (DType.INT64, DType.INT32):
        ctx.refuse(node, f"indices of dtype {dtype.value} have no C kernel")
    return int(dtype is DType.INT64)


# ----- unary math -------------------------------------------------------------
def _unary(kernel: str, params=None):
    def emit(node: Node, ctx) -> list[str]:
        x, y = node.inputs[0], node.outputs[0]
        _f32(node, ctx, x)
        ctx.need(MISC)
        extra = "".join(", " + p for p in params(node)) if params else ""
        return [f"o2m_{kernel}_f32({ctx.numel(y)}, {ctx.ptr(x)}, {ctx.ptr(y)}{extra});"]
    return emit


def _attr_f(key: str, default: float):
    return lambda node: [c_float(node.attr(key, default))]


# ----- broadcasting helpers -----------------------------------------------------
def _strided(node: Node, ctx, out_shape, operand_shapes) -> tuple[list[int], list[list[int]]]:
    dims, strides = simplify_strided(out_shape, [broadcast_strides(s, out_shape)
                                                 for s in operand_shapes]
                                     + [dense_strides(out_shape)])
    if len(dims) > 6:
        ctx.refuse(node, f"broadcast over {len(dims)} dims (the C kernels take up to 6)")
    return dims, strides


def _emit_mod(node: Node, ctx) -> list[str]:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    suffix = _suffix(node, ctx, a)
    if ctx.dtype(b) is not ctx.dtype(a):
        ctx.refuse(node, "mixed input dtypes")
    dims, (sa, sb, _) = _strided(node, ctx, ctx.shape(y), [ctx.shape(a), ctx.shape(b)])
    ctx.need(MISC)
    return [f"o2m_mod_nd_{suffix}({len(dims)}, {ctx.int_array(dims)}, {ctx.int_array(sa, 'strides')}, "
            f"{ctx.int_array(sb, 'strides')}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)}, "
            f"{int(bool(node.attr('fmod', 0)))});"]


def _bc_call(node: Node, ctx, kernel: str, y: str, y_shape, other: str, other_shape) -> str:
    """y = y OP other (float32, in place) with `other` viewed as `other_shape`."""
    dims, (sa, sb, _) = _strided(node, ctx, y_shape, [y_shape, other_shape])
    ctx.need(ELEMENTWISE)
    return (f"o2m_{kernel}_nd_f32({len(dims)}, {ctx.int_array(dims)}, {ctx.int_array(sa, 'strides')}, "
            f"{ctx.int_array(sb, 'strides')}, {ctx.ptr(y)}, {ctx.ptr(other)}, {ctx.ptr(y)});")


# ----- axis ops -----------------------------------------------------------------
def _view(shape, axis: int) -> tuple[int, int, int]:
    return prod(shape[:axis]), int(shape[axis]), prod(shape[axis + 1:])


def _emit_cumsum(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    suffix = _suffix(node, ctx, x)
    shape = ctx.shape(x)
    flags = f"{int(bool(node.attr('exclusive', 0)))}, {int(bool(node.attr('reverse', 0)))}"
    if not ctx.is_const(node.inputs[1]):  # the axis is read at run time
        if ctx.dtype(node.inputs[1]) not in (DType.INT64, DType.INT32):
            ctx.refuse(node, "the CumSum axis must be int32 or int64")
        ctx.need(MISC)
        return [f"o2m_cumsum_dyn_{suffix}({len(shape)}, {ctx.int_array(shape)}, "
                f"(int64_t){ctx.scalar(node.inputs[1])}, {ctx.ptr(x)}, {ctx.ptr(y)}, {flags});"]
    axis = norm_axis(int(_const(node, ctx, node.inputs[1], "the CumSum axis").reshape(-1)[0]),
                     len(shape))
    outer, n, inner = _view(shape, axis)
    ctx.need(MISC)
    return [f"o2m_cumsum_{suffix}({outer}, {n}, {inner}, {ctx.ptr(x)}, {ctx.ptr(y)}, "
            f"{int(bool(node.attr('exclusive', 0)))}, {int(bool(node.attr('reverse', 0)))});"]


def _emit_topk(node: Node, ctx) -> list[str]:
    x = node.inputs[0]
    suffix = _suffix(node, ctx, x)
    shape = ctx.shape(x)
    axis = norm_axis(node.attr("axis", -1), len(shape))
    k = int(_const(node, ctx, node.inputs[1], "TopK's k").reshape(-1)[0])
    values, indices = node.outputs[0], node.outputs[1] if len(node.outputs) > 1 else ""
    if not values or not indices:
        ctx.refuse(node, "TopK needs both outputs in C")
    outer, n, inner = _view(shape, axis)
    ctx.need(MISC)
    return [f"o2m_topk_{suffix}({outer}, {n}, {inner}, {k}, {int(bool(node.attr('largest', 1)))}, "
            f"{ctx.ptr(x)}, {ctx.ptr(values)}, {ctx.ptr(indices)});"]


def _emit_hardmax(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    outer, n, inner = _view(shape, norm_axis(node.attr("axis", -1), len(shape)))
    ctx.need(MISC)
    return [f"o2m_hardmax_f32({outer}, {n}, {inner}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# ----- index / shape ops ----------------------------------------------------------
def _emit_trilu(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    if len(shape) < 2:
        ctx.refuse(node, "Trilu needs a rank >= 2 input")
    k = ctx.scalar(node.inputs[1]) if has_input(node, 1) else "0"
    if has_input(node, 1) and ctx.dtype(node.inputs[1]) is not DType.INT64:
        ctx.refuse(node, "Trilu k must be int64")
    ctx.need(MISC)
    return [f"o2m_trilu({prod(shape[:-2])}, {shape[-2]}, {shape[-1]}, (int64_t){k}, "
            f"{int(bool(node.attr('upper', 1)))}, {_elem(ctx, x)}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def _emit_eyelike(node: Node, ctx) -> list[str]:
    y = node.outputs[0]
    rows, cols = ctx.shape(y)
    one = ctx.const_value(1, ctx.dtype(y), "one")
    ctx.need(MISC)
    return [f"o2m_eyelike({rows}, {cols}, (int64_t){int(node.attr('k', 0))}, {_elem(ctx, y)}, "
            f"{one}, {ctx.ptr(y)});"]


_INDEX_KIND = {DType.FLOAT32: 0, DType.INT32: 1, DType.INT64: 2}


def _emit_onehot(node: Node, ctx) -> list[str]:
    indices, depth_name, values = node.inputs[:3]
    y = node.outputs[0]
    if ctx.dtype(indices) not in _INDEX_KIND:
        ctx.refuse(node, f"indices of dtype {ctx.dtype(indices).value} have no C kernel")
    depth = int(_const(node, ctx, depth_name, "OneHot's depth").reshape(-1)[0])
    rank_in = len(ctx.shape(indices))
    axis = norm_axis(node.attr("axis", -1), rank_in + 1)
    shape_in = ctx.shape(indices)
    outer, inner = prod(shape_in[:axis]), prod(shape_in[axis:])
    ctx.need(MISC)
    return [f"o2m_onehot({outer}, {depth}, {inner}, {ctx.ptr(indices)}, "
            f"{_INDEX_KIND[ctx.dtype(indices)]}, {_elem(ctx, y)}, {ctx.ptr(values)}, {ctx.ptr(y)});"]


def _emit_gather_elements(node: Node, ctx) -> list[str]:
    x, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape_x, shape_y = ctx.shape(x), ctx.shape(y)  # any rank: the kernel keeps no per-dim arrays
    axis = norm_axis(node.attr("axis", 0), len(shape_x))
    flag = _index_flag(node, ctx, indices)
    ctx.need(MISC)
    return [f"o2m_gather_elements({len(shape_y)}, {ctx.int_array(shape_y)}, "
            f"{ctx.int_array(dense_strides(shape_x), 'strides')}, {axis}, {shape_x[axis]}, "
            f"{_elem(ctx, x)}, {ctx.ptr(x)}, {ctx.ptr(indices)}, {flag}, {ctx.ptr(y)});"]


def _emit_gather_nd(node: Node, ctx) -> list[str]:
    x, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape_x, shape_i = ctx.shape(x), ctx.shape(indices)
    batch_dims = int(node.attr("batch_dims", 0))
    depth = shape_i[-1]
    batch = prod(shape_x[:batch_dims])
    groups = prod(shape_i[batch_dims:-1])
    strides = dense_strides(shape_x)
    slice_elems = prod(shape_x[batch_dims + depth:])
    batch_stride = prod(shape_x[batch_dims:])
    flag = _index_flag(node, ctx, indices)
    ctx.need(MISC)
    return [f"o2m_gather_nd({batch}, {groups}, {depth}, {slice_elems}, {batch_stride}, "
            f"{ctx.int_array(shape_x[batch_dims:batch_dims + depth])}, "
            f"{ctx.int_array(strides[batch_dims:batch_dims + depth], 'strides')}, {_elem(ctx, x)}, "
            f"{ctx.ptr(x)}, {ctx.ptr(indices)}, {flag}, {ctx.ptr(y)});"]


def _emit_static_values(values_of):
    """Ops whose output only depends on static shapes (Shape, Size): a copy of a table."""
    def emit(node: Node, ctx) -> list[str]:
        y = node.outputs[0]
        values = [int(v) for v in values_of(node, ctx)]
        if not values:
            return []
        table = ctx.int_array(values, "shape", "int64_t")
        return [f"memcpy({ctx.ptr(y)}, {table}, {ctx.nbytes(y)}u);"]
    return emit


def _shape_values(node: Node, ctx) -> list[int]:
    shape = list(ctx.shape(node.inputs[0]))
    return shape[node.attr("start", 0):node.attr("end", len(shape))]


def _emit_range(node: Node, ctx) -> list[str]:
    start, _, delta = node.inputs[:3]
    y = node.outputs[0]
    suffix = _suffix(node, ctx, start)
    ctx.need(MISC)
    return [f"o2m_range_{suffix}({ctx.numel(y)}, {ctx.scalar(start)}, {ctx.scalar(delta)}, "
            f"{ctx.ptr(y)});"]


# ----- normalizations -------------------------------------------------------------
def _normalize(node: Node, ctx, kind: str, shape, reduced, eps: float) -> str:
    """o2m_normalize_f32 of node.inputs[0] into node.outputs[0] over the `reduced` axes."""
    strides = dense_strides(shape)
    kept = [a for a in range(len(shape)) if a not in reduced]
    kdims, (kstr,) = simplify_strided([shape[a] for a in kept], [[strides[a] for a in kept]])
    rdims, (rstr,) = simplify_strided([shape[a] for a in reduced], [[strides[a] for a in reduced]])
    if len(kdims) > 6 or len(rdims) > 6:
        ctx.refuse(node, "more than 6 dims")
    ctx.need(MISC)
    return (f"o2m_normalize_f32(O2M_NORM_{kind}, {len(kdims)}, {ctx.int_array(kdims)}, "
            f"{ctx.int_array(kstr, 'strides')}, {len(rdims)}, {ctx.int_array(rdims)}, "
            f"{ctx.int_array(rstr, 'strides')}, {c_float(eps)}, {ctx.ptr(node.inputs[0])}, "
            f"{ctx.ptr(node.outputs[0])});")


def _emit_instance_norm(node: Node, ctx) -> list[str]:
    x, scale, bias = node.inputs[:3]
    y = node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    return [_normalize(node, ctx, "STANDARD", shape, list(range(2, len(shape))),
                       node.attr("epsilon", 1e-5)),
            _bc_call(node, ctx, "mul", y, shape, scale, channel),
            _bc_call(node, ctx, "add", y, shape, bias, channel)]


def _emit_group_norm(node: Node, ctx) -> list[str]:
    x, scale, bias = node.inputs[:3]
    y = node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    groups = int(node.attr("num_groups"))
    n, c = shape[:2]
    view = (n, groups, (c // groups) * prod(shape[2:]))
    code = [_normalize(node, ctx, "STANDARD", view, [2], node.attr("epsilon", 1e-5))]
    if ctx.numel(scale) == c:
        out, param = (n, c, prod(shape[2:])), (1, c, 1)
    else:  # opset 18: one scale and bias per group
        out, param = (n, groups, (c // groups) * prod(shape[2:])), (1, groups, 1)
    return code + [_bc_call(node, ctx, "mul", y, out, scale, param),
                   _bc_call(node, ctx, "add", y, out, bias, param)]


def _emit_rms_norm(node: Node, ctx) -> list[str]:
    x, scale = node.inputs[:2]
    y = node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    axis = norm_axis(node.attr("axis", -1), len(shape))
    return [_normalize(node, ctx, "RMS", shape, list(range(axis, len(shape))),
                       node.attr("epsilon", 1e-5)),
            _bc_call(node, ctx, "mul", y, shape, scale, ctx.shape(scale))]


def _emit_lp_norm(node: Node, ctx) -> list[str]:
    x = node.inputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    p = node.attr("p", 2)
    if p not in (1, 2):
        ctx.refuse(node, "LpNormalization p must be 1 or 2")
    axis = norm_axis(node.attr("axis", -1), len(shape))
    return [_normalize(node, ctx, "L1" if p == 1 else "L2", shape, [axis], 0.0)]


def _emit_mvn(node: Node, ctx) -> list[str]:
    x = node.inputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    axes = sorted({norm_axis(a, len(shape)) for a in (node.attr("axes") or (0, 2, 3))})
    return [_normalize(node, ctx, "MVN", shape, axes, 0.0)]


def _emit_lrn(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    ctx.need(MISC)
    return [f"o2m_lrn_f32({shape[0]}, {shape[1]}, {prod(shape[2:])}, {int(node.attr('size'))}, "
            f"{c_float(node.attr('alpha', 1e-4))}, {c_float(node.attr('beta', 0.75))}, "
            f"{c_float(node.attr('bias', 1.0))}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# ----- pools ------------------------------------------------------------------------
def _geometry3(node: Node, ctx, spatial, out, kernel, strides, dilations, begin) -> list[int]:
    rank = len(spatial)
    if rank > 3:
        ctx.refuse(node, f"{rank}-D {node.op_type} has no C kernel (1-D to 3-D)")
    pad = 3 - rank
    fields = []
    for i in range(3):
        if i < pad:
            fields += [1, 1, 1, 1, 1, 0]
        else:
            j = i - pad
            fields += [spatial[j], out[j], kernel[j], strides[j], dilations[j], begin[j]]
    return fields


def _emit_lppool(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    p = int(node.attr("p", 2))
    win = window(node, tuple(shape[2:]), ceil_mode=bool(node.attr("ceil_mode", 0)))
    if tuple(win.out) != tuple(ctx.shape(y)[2:]):
        ctx.refuse(node, "output shape differs from the window rule")
    geom = [shape[0] * shape[1], len(shape) - 2] + _geometry3(
        node, ctx, shape[2:], win.out, win.kernel, win.strides, win.dilations, win.pads_begin)
    ctx.need(MISC)
    return [f"o2m_lppool_f32({ctx.int_array(geom, 'lppool')}, {p}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def _emit_global_lppool(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    ctx.need(MISC)
    return [f"o2m_global_lppool_f32({shape[0] * shape[1]}, {prod(shape[2:])}, "
            f"{int(node.attr('p', 2))}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# ----- ConvTranspose ------------------------------------------------------------------
def _emit_conv_transpose(node: Node, ctx) -> list[str]:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    bias = node.inputs[2] if has_input(node, 2) else ""
    _f32(node, ctx, x)
    shape_x, shape_w = ctx.shape(x), ctx.shape(w)
    spatial, kernel = tuple(shape_x[2:]), tuple(shape_w[2:])
    groups = int(node.attr("group", 1))
    strides, dilations, begin, out = _transpose_geometry(node, spatial, kernel)
    if any(b < 0 for b in begin) or tuple(ctx.shape(y)[2:]) != tuple(out):
        ctx.refuse(node, "output shape outside the ConvTranspose rule")
    geom = [shape_x[0], groups, shape_x[1] // groups, shape_w[1]] + _geometry3(
        node, ctx, spatial, out, kernel, strides, dilations, begin)
    ctx.need(CONVT)
    return [f"o2m_conv_transpose_f32({ctx.int_array(geom, 'convt')}, {ctx.ptr(x)}, {ctx.ptr(w)}, "
            f"{ctx.ptr(bias)}, {ctx.ptr(y)});"]


# ----- Resize -------------------------------------------------------------------------
def resize_tables(node: Node, inputs: list, shape) -> tuple[list[int], list[int], list[int], list[float]]:
    """Per dim: (taps, output length) and the flat index / weight tables (o2m_resize.h)."""
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    plan = {axis: rest for axis, *rest in _plan(node, inputs, tuple(shape))}
    taps, outs, idx, weights = [], [], [], []
    for axis, length_in in enumerate(shape):
        if axis not in plan:
            taps.append(1)
            outs.append(length_in)
            idx += list(range(length_in))
            weights += [1.0] * length_in
            continue
        length_out, scale, start, end = plan[axis]
        coords, axis_taps, axis_w = resize_axis_taps(node, length_in, length_out, scale, start, end)
        outside = ((coords < 0) | (coords > length_in - 1)) if transform == "tf_crop_and_resize" \
            else np.zeros(length_out, dtype=bool)
        taps.append(len(axis_taps))
        outs.append(length_out)
        for o in range(length_out):
            for t, (tap, wt) in enumerate(zip(axis_taps, axis_w)):
                idx.append(-1 if (t == 0 and outside[o]) else int(tap[o]))
                weights.append(float(wt[o]))
    return taps, outs, idx, weights


def _emit_resize(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    _f32(node, ctx, x)
    shape = ctx.shape(x)
    if len(shape) > 6:
        ctx.refuse(node, "rank above 6")
    inputs = [None]
    for i in (1, 2, 3):
        inputs.append(_const(node, ctx, node.inputs[i], "Resize's roi / scales / sizes")
                      if has_input(node, i) else None)
    taps, outs, idx, weights = resize_tables(node, inputs, shape)
    if tuple(outs) != ctx.shape(y):
        ctx.refuse(node, f"resized shape {outs} differs from the inferred {list(ctx.shape(y))}")
    offsets, acc = [], 0
    for t, o in zip(taps, outs):
        offsets.append(acc)
        acc += t * o
    table_w = _float_array(ctx, weights, "resize_w")
    ctx.need(RESIZE)
    return [f"o2m_resize_f32({len(shape)}, {ctx.int_array(shape)}, {ctx.int_array(outs)}, "
            f"{ctx.int_array(taps, 'taps')}, {ctx.int_array(offsets, 'offsets')}, "
            f"{ctx.int_array(idx, 'resize_idx')}, {table_w}, "
            f"{c_float(node.attr('extrapolation_value', 0.0))}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def _float_array(ctx, values, hint: str) -> str:
    """A static const float table (interned like ctx.int_array)."""
    body = ", ".join(c_float(v) for v in values) or "0.0f"
    count = max(len(values), 1)

    def make() -> str:
        name = ctx._name(hint)
        ctx.declarations.append(f"static const float {name}[{count}] = {{{body}}};")
        return name
    return ctx._intern(f"float[]|{hint}|{body}", make)


# ----- the float forms of BinaryMatMul / BinaryConv -----------------------------------
def _emit_binary_matmul(node: Node, ctx) -> list[str]:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    mult = node.inputs[2] if has_input(node, 2) else ""
    bias = node.inputs[3] if has_input(node, 3) else ""
    k = ctx.shape(x)[-1]
    m = ctx.numel(x) // k if k else 0
    ctx.need(MISC)
    return [f"o2m_sign_matmul_f32({m}, {ctx.shape(w)[0]}, {k}, {ctx.ptr(x)}, {ctx.ptr(w)}, "
            f"{ctx.ptr(mult)}, {ctx.ptr(bias)}, {ctx.ptr(y)});"]


def _emit_binary_conv(node: Node, ctx) -> list[str]:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    mult = node.inputs[2] if has_input(node, 2) else ""
    bias = node.inputs[3] if has_input(node, 3) else ""
    n, c, h, wd = ctx.shape(x)
    m, _, kh, kw = ctx.shape(w)
    win = conv_window(node, (h, wd), (kh, kw))
    geom = [n, c, h, wd, m, win.out[0], win.out[1], kh, kw, win.strides[0], win.strides[1],
            win.dilations[0], win.dilations[1], win.pads_begin[0], win.pads_begin[1]]
    ctx.need(MISC)
    return [f"o2m_sign_conv_f32({ctx.int_array(geom, 'sconv')}, {ctx.ptr(x)}, {ctx.ptr(w)}, "
            f"{ctx.ptr(mult)}, {ctx.ptr(bias)}, {ctx.ptr(y)});"]


# ----- registrations ----------------------------------------------------------------------
for _op in ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
            "Atanh", "Mish"):
    register_kernel(_op, _unary(_op.lower()), dtypes=F32, sources=(MISC,))
register_kernel("Swish", _unary("swish", _attr_f("alpha", 1.0)), dtypes=F32, sources=(MISC,))
register_kernel("ThresholdedRelu", _unary("thresholded_relu", _attr_f("alpha", 1.0)), dtypes=F32,
                sources=(MISC,))
register_kernel("Shrink", _unary("shrink", lambda n: [c_float(n.attr("lambd", 0.5)),
                                                      c_float(n.attr("bias", 0.0))]),
                dtypes=F32, sources=(MISC,))
register_kernel("IsNaN", _unary("isnan"), dtypes=F32, sources=(MISC,))
register_kernel("IsInf", _unary("isinf", lambda n: [str(int(bool(n.attr("detect_positive", 1)))),
                                                    str(int(bool(n.attr("detect_negative", 1))))]),
                dtypes=F32, sources=(MISC,))
register_kernel("Mod", _emit_mod, dtypes=FI, sources=(MISC,))
register_kernel("CumSum", _emit_cumsum, dtypes=FI, sources=(MISC,))
register_kernel("TopK", _emit_topk, dtypes=FI, sources=(MISC,))
register_kernel("Hardmax", _emit_hardmax, dtypes=F32, sources=(MISC,))
register_kernel("Trilu", _emit_trilu, sources=(MISC,))
register_kernel("EyeLike", _emit_eyelike, sources=(MISC,))
register_kernel("OneHot", _emit_onehot, sources=(MISC,))
register_kernel("GatherElements", _emit_gather_elements, sources=(MISC,))
register_kernel("GatherND", _emit_gather_nd, sources=(MISC,))
register_kernel("Shape", _emit_static_values(_shape_values))
register_kernel("Size", _emit_static_values(lambda node, ctx: [ctx.numel(node.inputs[0])]))
register_kernel("Range", _emit_range, dtypes=FI, sources=(MISC,))
register_kernel("InstanceNormalization", _emit_instance_norm, dtypes=F32, sources=(MISC, ELEMENTWISE))
register_kernel("GroupNormalization", _emit_group_norm, dtypes=F32, sources=(MISC, ELEMENTWISE))
register_kernel("RMSNormalization", _emit_rms_norm, dtypes=F32, sources=(MISC, ELEMENTWISE))
register_kernel("LpNormalization", _emit_lp_norm, dtypes=F32, sources=(MISC,))
register_kernel("MeanVarianceNormalization", _emit_mvn, dtypes=F32, sources=(MISC,))
register_kernel("LRN", _emit_lrn, dtypes=F32, sources=(MISC,))
register_kernel("LpPool", _emit_lppool, dtypes=F32, sources=(MISC,))
register_kernel("GlobalLpPool", _emit_global_lppool, dtypes=F32, sources=(MISC,))
register_kernel("ConvTranspose", _emit_conv_transpose, dtypes=F32, sources=(CONVT,))
register_kernel("Resize", _emit_resize, dtypes=F32, sources=(RESIZE,))
register_kernel("BinaryMatMul", _emit_binary_matmul, domain=BINARY_DOMAIN, dtypes=F32,
                sources=(MISC,))
register_kernel("BinaryConv", _emit_binary_conv, domain=BINARY_DOMAIN, dtypes=F32, sources=(MISC,))


# ----- int8 / uint8 elementwise ops, generic casts, integer Pow ------------------------
KIND = {DType.FLOAT32: "O2M_KIND_F32", DType.INT8: "O2M_KIND_S8", DType.UINT8: "O2M_KIND_U8",
        DType.INT32: "O2M_KIND_S32", DType.INT64: "O2M_KIND_S64", DType.BOOL: "O2M_KIND_B8"}
SMALL_INT = (DType.INT8, DType.UINT8)


def _plain_integers(node: Node, ctx) -> None:
    """These kernels do integer arithmetic: a quantized tensor stands for real values."""
    for name in list(node.inputs) + list(node.outputs):
        if name and ctx.tensor(name).quant is not None:
            ctx.refuse(node, f"'{name}' is quantized (no integer kernel for this op)")


def _int_binary(op: str):
    def emit(node: Node, ctx) -> list[str]:
        _plain_integers(node, ctx)
        names = [name for name in node.inputs if name]
        y = node.outputs[0]
        dtype = ctx.dtype(names[0])
        if any(ctx.dtype(name) is not dtype for name in names):
            ctx.refuse(node, "mixed input dtypes")
        if len(names) > 2 and any(ctx.same_bytes(name, y) for name in names[2:]):
            ctx.refuse(node, "a later input shares the output's bytes")
        code, first = [], names[0]
        for other in names[1:] or names[:1]:
            dims, (sa, sb, _) = _strided(node, ctx, ctx.shape(y), [ctx.shape(first), ctx.shape(other)])
            code.append(f"o2m_int_binary_nd(O2M_IOP_{op}, {KIND[dtype]}, {len(dims)}, "
                        f"{ctx.int_array(dims)}, {ctx.int_array(sa, 'strides')}, "
                        f"{ctx.int_array(sb, 'strides')}, {ctx.ptr(first)}, {ctx.ptr(other)}, "
                        f"{ctx.ptr(y)});")
            first = y
        ctx.need(MISC)
        return code
    return emit


def _emit_int_clip(node: Node, ctx) -> list[str]:
    _plain_integers(node, ctx)
    x, y = node.inputs[0], node.outputs[0]
    lo = node.inputs[1] if has_input(node, 1) else ""
    hi = node.inputs[2] if has_input(node, 2) else ""
    ctx.need(MISC)
    return [f"o2m_int_clip({KIND[ctx.dtype(x)]}, {ctx.numel(y)}, {ctx.ptr(x)}, {ctx.ptr(lo)}, "
            f"{ctx.ptr(hi)}, {ctx.ptr(y)});"]


def emit_cast_any(node: Node, ctx) -> list[str]:
    """Cast between dtype pairs the o2m_tensor.c casts do not cover (e.g. float32 -> uint8)."""
    x, y = node.inputs[0], node.outputs[0]
    src, dst = ctx.dtype(x), ctx.dtype(y)
    if src not in KIND or dst not in KIND:
        ctx.refuse(node, f"no C kernel for a cast from {src.value} to {dst.value}")
    _plain_integers(node, ctx)
    ctx.need(MISC)
    return [f"o2m_cast_any({ctx.numel(y)}, {KIND[src]}, {KIND[dst]}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def emit_pow_any(node: Node, ctx) -> list[str]:
    """Pow whose base or exponent is an integer (the result has the base's dtype)."""
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    for name in (a, b):
        if ctx.dtype(name) not in KIND or ctx.dtype(name) is DType.BOOL:
            ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(name).value}")
    _plain_integers(node, ctx)
    dims, (sa, sb, _) = _strided(node, ctx, ctx.shape(y), [ctx.shape(a), ctx.shape(b)])
    ctx.need(MISC)
    return [f"o2m_pow_nd({KIND[ctx.dtype(a)]}, {KIND[ctx.dtype(b)]}, {len(dims)}, "
            f"{ctx.int_array(dims)}, {ctx.int_array(sa, 'strides')}, {ctx.int_array(sb, 'strides')}, "
            f"{ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)});"]


def emit_moments(node: Node, ctx, outer: int, n: int) -> list[str]:
    """LayerNormalization's Mean / InvStdDev outputs (before the normalization overwrites x)."""
    outs = [node.outputs[i] if len(node.outputs) > i and ctx.is_used(node.outputs[i]) else ""
            for i in (1, 2)]
    ctx.need(MISC)
    return [f"o2m_moments_f32({outer}, {n}, {ctx.ptr(node.inputs[0])}, "
            f"{c_float(node.attr('epsilon', 1e-5))}, {ctx.ptr(outs[0])}, {ctx.ptr(outs[1])});"]


for _op, _code in (("Add", "ADD"), ("Sub", "SUB"), ("Mul", "MUL"), ("Div", "DIV"), ("Max", "MAX"),
                   ("Min", "MIN"), ("Equal", "EQ"), ("Less", "LT"), ("LessOrEqual", "LE"),
                   ("Greater", "GT"), ("GreaterOrEqual", "GE")):
    register_kernel(_op, _int_binary(_code), dtypes=SMALL_INT, sources=(MISC,))


def _emit_int_mod(node: Node, ctx) -> list[str]:
    return _int_binary("FMOD" if node.attr("fmod", 0) else "MOD")(node, ctx)


register_kernel("Mod", _emit_int_mod, dtypes=SMALL_INT, sources=(MISC,))
register_kernel("Clip", _emit_int_clip, dtypes=SMALL_INT, sources=(MISC,))
register_kernel("Pow", emit_pow_any, dtypes=(DType.INT32, DType.INT64), sources=(MISC,))


# ----- N-d pools, MaxPool Indices, reductions over any axes -----------------------------
def emit_pool_nd(node: Node, ctx) -> list[str]:
    """3-D Max/AveragePool, and MaxPool with its Indices output (o2m_pool_nd_f32)."""
    x, y = node.inputs[0], node.outputs[0]
    integer = ctx.dtype(x) in SMALL_INT
    if not integer:
        _f32(node, ctx, x)
    shape = ctx.shape(x)
    win = window(node, tuple(shape[2:]), ceil_mode=bool(node.attr("ceil_mode", 0)))
    if tuple(win.out) != tuple(ctx.shape(y)[2:]):
        ctx.refuse(node, "output shape differs from the window rule")
    geom = [shape[0] * shape[1], len(shape) - 2] + _geometry3(
        node, ctx, shape[2:], win.out, win.kernel, win.strides, win.dilations, win.pads_begin)
    ends = [0] * (3 - (len(shape) - 2)) + list(win.pads_end)
    indices = node.outputs[1] if len(node.outputs) > 1 and ctx.is_used(node.outputs[1]) else ""
    ctx.need(MISC)
    if integer:
        if indices or node.op_type != "MaxPool":
            ctx.refuse(node, f"no C kernel for {node.op_type} of {ctx.dtype(x).value} with these outputs")
        return [f"o2m_maxpool_nd_int({KIND[ctx.dtype(x)]}, {ctx.int_array(geom, 'pool')}, "
                f"{ctx.ptr(x)}, {ctx.ptr(y)});"]
    kind = 0 if node.op_type == "MaxPool" else 1
    return [f"o2m_pool_nd_f32({kind}, {ctx.int_array(geom, 'pool')}, {ctx.int_array(ends, 'pads')}, "
            f"{int(bool(node.attr('count_include_pad', 0)))}, {int(node.attr('storage_order', 0))}, "
            f"{ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.ptr(indices)});"]


# MaxPool of raw int8/uint8 (no quantization); the quantized int8 MaxPool (codegen/emit/int8.py)
# dispatches here for int8 nodes without quantization parameters
register_kernel("MaxPool", emit_pool_nd, dtypes=SMALL_INT, sources=(MISC,))

def emit_reduce_nd(node: Node, ctx, kind: str, shape, axes) -> list[str]:
    """A reduction over axes that are not one run (o2m_reduce_nd_f32)."""
    strides = dense_strides(shape)
    reduced = sorted(axes)
    kept = [a for a in range(len(shape)) if a not in axes]
    kdims, (kstr,) = simplify_strided([shape[a] for a in kept], [[strides[a] for a in kept]])
    rdims, (rstr,) = simplify_strided([shape[a] for a in reduced], [[strides[a] for a in reduced]])
    if len(kdims) > 6 or len(rdims) > 6:
        ctx.refuse(node, "more than 6 dims")
    ctx.need(MISC)
    return [f"o2m_reduce_nd_f32(O2M_RND_{kind}, {len(kdims)}, {ctx.int_array(kdims)}, "
            f"{ctx.int_array(kstr, 'strides')}, {len(rdims)}, {ctx.int_array(rdims)}, "
            f"{ctx.int_array(rstr, 'strides')}, {ctx.ptr(node.inputs[0])}, {ctx.ptr(node.outputs[0])});"]


def emit_where_any(node: Node, ctx) -> list[str]:
    """Where whose values have no typed kernel (int8, uint8, bool): element bytes are moved."""
    c, a, b = node.inputs[:3]
    y = node.outputs[0]
    if ctx.dtype(a) is not ctx.dtype(b):
        ctx.refuse(node, "mixed value dtypes")
    out = ctx.shape(y)
    dims, (sc, sa, sb, _) = _strided(node, ctx, out, [ctx.shape(c), ctx.shape(a), ctx.shape(b)])
    ctx.need(MISC)
    return [f"o2m_where_nd_any({len(dims)}, {ctx.int_array(dims)}, {ctx.int_array(sc, 'strides')}, "
            f"{ctx.int_array(sa, 'strides')}, {ctx.int_array(sb, 'strides')}, {ctx.ptr(c)}, "
            f"{ctx.ptr(a)}, {ctx.ptr(b)}, {_elem(ctx, a)}, {ctx.ptr(y)});"]


def _emit_reduce_bool(node: Node, ctx) -> list[str]:
    from onnx2mcu.ops.reduce import _axes

    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    axes_value = ctx.tensor(node.inputs[1]).data if has_input(node, 1) else None
    axes = _axes(node, [None, axes_value], len(shape))
    if axes is None:
        return [f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, {ctx.nbytes(y)}u);"] if ctx.numel(y) else []
    strides = dense_strides(shape)
    kept = [a for a in range(len(shape)) if a not in axes]
    reduced = sorted(axes)
    kdims, (kstr,) = simplify_strided([shape[a] for a in kept], [[strides[a] for a in kept]])
    rdims, (rstr,) = simplify_strided([shape[a] for a in reduced], [[strides[a] for a in reduced]])
    if len(kdims) > 6 or len(rdims) > 6:
        ctx.refuse(node, "more than 6 dims")
    ctx.need(MISC)
    return [f"o2m_reduce_nd_b8({int(node.op_type == 'ReduceMax')}, {len(kdims)}, "
            f"{ctx.int_array(kdims)}, {ctx.int_array(kstr, 'strides')}, {len(rdims)}, "
            f"{ctx.int_array(rdims)}, {ctx.int_array(rstr, 'strides')}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


register_kernel("ReduceMax", _emit_reduce_bool, dtypes=(DType.BOOL,), sources=(MISC,))
register_kernel("ReduceMin", _emit_reduce_bool, dtypes=(DType.BOOL,), sources=(MISC,))
