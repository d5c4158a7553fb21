"""C lowering of data movement: aliases, Concat/Split/Slice/Transpose, Expand/Tile/Pad,
DepthToSpace/SpaceToDepth and Gather (any dtype: they move bytes)."""
from __future__ import annotations

from onnx2mcu.codegen.context import (TENSOR, broadcast_strides, dense_strides, prod,
                                      simplify_strided)
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_input, has_output, int_list, norm_axis
from onnx2mcu.ops.int8 import int8_params


# ----- C emission helpers --------------------------------------------------
def elem_size(ctx, name: str) -> int:
    return ctx.tensor(name).dtype.itemsize


def emit_copy(node: Node, ctx, dims, src: str, src_offset: int, src_strides, dst: str,
              dst_offset: int = 0, dst_strides=None) -> list[str]:
    """dst[...] = src[...] over `dims`, strides in elements; memcpy when both walks are dense."""
    dims = [int(d) for d in dims]
    if prod(dims) == 0:
        return []
    if dst_strides is None:
        dst_strides = dense_strides(dims)
    dims, (ss, ds) = simplify_strided(dims, [src_strides, dst_strides])
    size = elem_size(ctx, dst)
    if not dims or (len(dims) == 1 and ss[0] == 1 and ds[0] == 1):
        count = dims[0] if dims else 1
        return [f"memcpy({ctx.ptr(dst, dst_offset)}, {ctx.ptr(src, src_offset)}, {count * size}u);"]
    if len(dims) > 8:
        ctx.refuse(node, f"data movement over {len(dims)} dims (the C kernel takes up to 8)")
    ctx.need(TENSOR)
    dst_arg = "NULL" if ds == dense_strides(dims) else ctx.int_array(ds, "strides")
    return [f"o2m_copy_nd({len(dims)}, {ctx.int_array(dims)}, {ctx.ptr(src, src_offset)}, "
            f"{ctx.int_array(ss, 'strides')}, {ctx.ptr(dst, dst_offset)}, {dst_arg}, {size});"]


def const_ints(node: Node, ctx, index: int, attr: str) -> list[int] | None:
    """Ints given as (constant) input `index` or as attribute `attr`."""
    if has_input(node, index):
        data = ctx.tensor(node.inputs[index]).data
        if data is None:
            ctx.refuse(node, f"input {index} must be a compile-time constant")
        return int_list(data)
    return int_list(node.attr(attr))


def emit_alias(node: Node, ctx) -> list[str]:
    """An alias output normally shares its input's bytes: nothing to do.  A constant
    input (or any other placement) gets copied."""
    x, y = node.inputs[0], node.outputs[0]
    if not y or ctx.same_bytes(x, y) or ctx.nbytes(y) == 0:
        return []
    return [f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, {ctx.nbytes(y)}u);"]


def _emit_dropout(node: Node, ctx) -> list[str]:
    code = emit_alias(node, ctx)
    if has_output(node, 1) and ctx.numel(node.outputs[1]):
        code.append(f"memset({ctx.ptr(node.outputs[1])}, 1, {ctx.numel(node.outputs[1])}u);")
    return code


def _emit_concat_split(node: Node, ctx, parts: list[str], whole: str, axis: int,
                       concat: bool) -> list[str]:
    shape = ctx.shape(whole)
    outer, inner = prod(shape[:axis]), prod(shape[axis + 1:])
    sizes = [ctx.shape(name)[axis] * inner for name in parts]
    size = elem_size(ctx, whole)
    total = sum(sizes)
    if outer == 1 or len(parts) == 1:  # block copies (memcpy)
        code, offset = [], 0
        for name, count in zip(parts, sizes):
            if concat:
                code += emit_copy(node, ctx, [outer, count], name, 0, [count, 1],
                                  whole, offset, [total, 1])
            else:
                code += emit_copy(node, ctx, [outer, count], whole, offset, [total, 1],
                                  name, 0, [count, 1])
            offset += count
        return code
    ctx.need(TENSOR)
    table = ctx.ptr_array(parts, writable=not concat, hint="parts")
    kernel = "o2m_concat" if concat else "o2m_split"
    return [f"{kernel}({outer}, {len(parts)}, {table if concat else ctx.ptr(whole)}, "
            f"{ctx.int_array(sizes, 'sizes')}, {ctx.ptr(whole) if concat else table}, {size});"]


def _emit_concat(node: Node, ctx) -> list[str]:
    parts = [name for name in node.inputs if name]
    y = node.outputs[0]
    axis = norm_axis(node.attr("axis"), len(ctx.shape(y)))
    return _emit_concat_split(node, ctx, parts, y, axis, concat=True)


def _emit_split(node: Node, ctx) -> list[str]:
    x = node.inputs[0]
    if not all(node.outputs):
        ctx.refuse(node, "omitted Split outputs")
    axis = norm_axis(node.attr("axis", 0), len(ctx.shape(x)))
    return _emit_concat_split(node, ctx, list(node.outputs), x, axis, concat=False)


def _emit_slice(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    starts = const_ints(node, ctx, 1, "starts")
    ends = const_ints(node, ctx, 2, "ends")
    axes = const_ints(node, ctx, 3, "axes") or list(range(len(starts)))
    steps = const_ints(node, ctx, 4, "steps") or [1] * len(starts)
    first = [0] * len(shape)
    step_of = [1] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = norm_axis(axis, len(shape))
        dim = shape[axis]
        start = start + dim if start < 0 else start
        start = min(max(start, 0), dim) if step > 0 else min(max(start, 0), dim - 1)
        first[axis], step_of[axis] = start, step
    strides = dense_strides(shape)
    offset = sum(f * s for f, s in zip(first, strides))
    return emit_copy(node, ctx, ctx.shape(y), x, offset,
                     [st * s for st, s in zip(step_of, strides)], y)


def _emit_transpose(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    perm = node.attr("perm") or list(range(len(shape)))[::-1]
    strides = dense_strides(shape)
    return emit_copy(node, ctx, [shape[p] for p in perm], x, 0, [strides[p] for p in perm], y)


def _emit_expand(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    out = ctx.shape(y)
    return emit_copy(node, ctx, out, x, 0, broadcast_strides(ctx.shape(x), out), y)


def _emit_tile(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    shape, out = ctx.shape(x), ctx.shape(y)
    repeats = const_ints(node, ctx, 1, "repeats")
    src, dst = dense_strides(shape), dense_strides(out)
    dims, src_strides, dst_strides = [], [], []
    for axis, (rep, dim) in enumerate(zip(repeats, shape)):
        dims += [rep, dim]
        src_strides += [0, src[axis]]
        dst_strides += [dim * dst[axis], dst[axis]]
    return emit_copy(node, ctx, dims, x, 0, src_strides, y, 0, dst_strides)


_PAD_MODE = {"constant": "O2M_PAD_CONSTANT", "reflect": "O2M_PAD_REFLECT", "edge": "O2M_PAD_EDGE",
             "wrap": "O2M_PAD_WRAP"}


def _emit_pad(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    shape, out = ctx.shape(x), ctx.shape(y)
    rank = len(shape)
    if ctx.numel(y) == 0:
        return []
    pads = const_ints(node, ctx, 1, "pads")
    axes = const_ints(node, ctx, 3, "axes") if has_input(node, 3) else None
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in axes]
    begin = [0] * rank
    for i, axis in enumerate(axes):
        begin[axis] = pads[i]
    mode = node.attr("mode", "constant")
    # merge neighbouring unpadded dims (and drop unpadded size-1 dims) to fit the kernel's rank
    dims_in, dims_out, dims_begin = [], [], []
    for d in range(rank):
        padded = shape[d] != out[d] or begin[d] != 0
        if not padded and shape[d] == 1:
            continue
        if not padded and dims_in and not dims_in[-1][1]:
            dims_in[-1] = (dims_in[-1][0] * shape[d], False)
            dims_out[-1] *= out[d]
            continue
        dims_in.append((shape[d], padded))
        dims_out.append(out[d])
        dims_begin.append(begin[d])
    if not dims_in:
        return [f"memcpy({ctx.ptr(y)}, {ctx.ptr(x)}, {ctx.nbytes(y)}u);"]
    if len(dims_in) > 6:
        ctx.refuse(node, f"Pad over {len(dims_in)} dims (the C kernel takes up to 6)")
    if ctx.numel(x) == 0 and mode != "constant":
        ctx.refuse(node, f"Pad mode '{mode}' of an empty input")
    value = "NULL"
    quantized = int8_params(node, ctx.graph)  # a quantized Pad pads with its prepared integer
    if quantized is not None:
        value = ctx.const_value(quantized.value, DType.INT8, "pad_value")
    elif mode == "constant":
        if has_input(node, 2):
            value = ctx.ptr(node.inputs[2])
        elif node.attr("value", 0.0) != 0.0:
            value = ctx.const_value(node.attr("value"), ctx.dtype(x), "pad_value")
    ctx.need(TENSOR)
    return [f"o2m_pad({_PAD_MODE[mode]}, {len(dims_in)}, {ctx.int_array([d for d, _ in dims_in])}, "
            f"{ctx.int_array(dims_out)}, {ctx.int_array(dims_begin, 'pads')}, {ctx.ptr(x)}, "
            f"{value}, {ctx.ptr(y)}, {elem_size(ctx, y)});"]


def _emit_depth_to_space(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    n, c, h, w = ctx.shape(x)
    crd = int(node.attr("mode", "DCR") == "CRD")
    ctx.need(TENSOR)
    return [f"o2m_depth_to_space({n}, {c}, {h}, {w}, {node.attr('blocksize')}, {crd}, "
            f"{ctx.ptr(x)}, {ctx.ptr(y)}, {elem_size(ctx, x)});"]


def _emit_space_to_depth(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    n, c, h, w = ctx.shape(x)
    ctx.need(TENSOR)
    return [f"o2m_space_to_depth({n}, {c}, {h}, {w}, {node.attr('blocksize')}, {ctx.ptr(x)}, "
            f"{ctx.ptr(y)}, {elem_size(ctx, x)});"]


def _emit_gather(node: Node, ctx) -> list[str]:
    x, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape = ctx.shape(x)
    axis = norm_axis(node.attr("axis", 0), len(shape))
    outer, inner = prod(shape[:axis]), prod(shape[axis + 1:])
    kernel = ("o2m_gather" if ctx.dtype(indices) is DType.INT64
              else f"o2m_gather_{ctx.dtype(indices).suffix}")
    ctx.need(TENSOR)
    return [f"{kernel}({outer}, {shape[axis]}, {inner}, {ctx.numel(indices)}, {ctx.ptr(x)}, "
            f"{ctx.ptr(indices)}, {ctx.ptr(y)}, {elem_size(ctx, x)});"]


for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
    register_kernel(_op, emit_alias)
register_kernel("Dropout", _emit_dropout)
for _op, _emit in (("Concat", _emit_concat), ("Split", _emit_split), ("Slice", _emit_slice),
                   ("Transpose", _emit_transpose), ("Expand", _emit_expand), ("Tile", _emit_tile),
                   ("Pad", _emit_pad), ("DepthToSpace", _emit_depth_to_space),
                   ("SpaceToDepth", _emit_space_to_depth), ("Gather", _emit_gather)):
    register_kernel(_op, _emit, sources=(TENSOR,))
