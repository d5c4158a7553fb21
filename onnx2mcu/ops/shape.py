"""Data movement: reshape-like aliases, Concat/Split/Slice, Transpose, Expand,
Tile, Pad, DepthToSpace/SpaceToDepth, the gathers, and the shape-producing ops
(Shape, Size, ConstantOfShape, Range, EyeLike, OneHot, Trilu).

Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout (inference) are
aliases: the output is the input's bytes reinterpreted, at no cost.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops._util import (const_input, has_input, has_output, input_or_none, int_list,
                                ints_from, norm_axes, norm_axis)
from onnx2mcu.ops.registry import ANY_SUPPORTED, BOOL, FLOAT, INDEX, register, shape_inputs

ANY = ANY_SUPPORTED


def _zero(node: Node, graph: Graph) -> int:
    return 0


# ----- aliases -----------------------------------------------------------
def _reshape_target(node: Node, in_shape: tuple[int, ...], shape: list[int]) -> tuple[int, ...]:
    allow_zero = node.attr("allowzero", 0)
    out = [in_shape[i] if d == 0 and not allow_zero else d for i, d in enumerate(shape)]
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        out[out.index(-1)] = math.prod(in_shape) // known if known else 0
    return tuple(out)


def _reshape(node: Node, inputs: list) -> list:
    x = inputs[0]
    shape = ints_from(node, inputs, 1, "shape")
    return [x.reshape(_reshape_target(node, x.shape, shape))]


def _flatten(node: Node, inputs: list) -> list:
    x = inputs[0]
    axis = node.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis  # in [-rank, rank]
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def _squeeze(node: Node, inputs: list) -> list:
    x = inputs[0]
    axes = ints_from(node, inputs, 1, "axes")
    if axes is None:
        return [x.reshape(tuple(d for d in x.shape if d != 1))]
    return [np.squeeze(x, axis=norm_axes(axes, x.ndim))]


def _unsqueeze(node: Node, inputs: list) -> list:
    x = inputs[0]
    axes = ints_from(node, inputs, 1, "axes")
    rank = x.ndim + len(axes)
    out = list(x.shape)
    for axis in norm_axes(axes, rank):
        out.insert(axis, 1)
    return [x.reshape(out)]


def _identity(node: Node, inputs: list) -> list:
    return [inputs[0]]


def _dropout(node: Node, inputs: list) -> list:
    x = inputs[0]
    outputs = [x]
    if has_output(node, 1):
        outputs.append(np.ones(x.shape, dtype=np.bool_))
    return outputs


def _dropout_check(node: Node, graph: Graph) -> str | None:
    if has_input(node, 2):
        mode = const_input(node, graph, 2)
        if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
            return "Dropout in training mode not supported (inference only)"
    return None


def _alias(op_type: str, fn, dtypes=(ANY, INDEX), check=None, extra=None) -> None:
    register(op_type, fn, dtypes=dtypes, alias=True, macs=_zero, check=check, extra=extra or {})


_alias("Reshape", _reshape, extra=shape_inputs(1))
_alias("Flatten", _flatten)
_alias("Squeeze", _squeeze, extra=shape_inputs(1))
_alias("Unsqueeze", _unsqueeze, extra=shape_inputs(1))
_alias("Identity", _identity, dtypes=(ANY,))
_alias("Dropout", _dropout, dtypes=(ANY, FLOAT, BOOL), check=_dropout_check)


# ----- Concat / Split / Slice / Transpose --------------------------------
def _concat(node: Node, inputs: list) -> list:
    arrays = [a for a in inputs if a is not None]
    return [np.concatenate(arrays, axis=norm_axis(node.attr("axis"), arrays[0].ndim))]


def _split_sizes(node: Node, dim: int, split: list[int] | None, count: int) -> list[int]:
    if split is not None:
        return split
    parts = node.attr("num_outputs") or count
    chunk = -(-dim // parts)
    return [min(chunk, max(dim - i * chunk, 0)) for i in range(parts)]


def _split(node: Node, inputs: list) -> list:
    x = inputs[0]
    axis = norm_axis(node.attr("axis", 0), x.ndim)
    split = ints_from(node, inputs, 1, "split")
    sizes = _split_sizes(node, x.shape[axis], split, len(node.outputs))
    bounds = np.cumsum([0] + sizes)
    return [np.take(x, np.arange(bounds[i], bounds[i + 1]), axis=axis) for i in range(len(sizes))]


def _slice(node: Node, inputs: list) -> list:
    x = inputs[0]
    starts = ints_from(node, inputs, 1, "starts")
    ends = ints_from(node, inputs, 2, "ends")
    axes = ints_from(node, inputs, 3, "axes") or list(range(len(starts)))
    steps = ints_from(node, inputs, 4, "steps") or [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = norm_axis(axis, x.ndim)
        dim = x.shape[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[axis] = slice(start, None if end < 0 else end, step)
    return [x[tuple(index)]]


def _transpose(node: Node, inputs: list) -> list:
    x = inputs[0]
    perm = node.attr("perm") or list(range(x.ndim))[::-1]
    return [np.transpose(x, perm)]


register("Concat", _concat, dtypes=(ANY,), macs=_zero)
register("Split", _split, dtypes=(ANY, INDEX), macs=_zero, extra=shape_inputs(1))
register("Slice", _slice, dtypes=(ANY, INDEX), macs=_zero, extra=shape_inputs(1, 2, 3, 4))
register("Transpose", _transpose, dtypes=(ANY,), macs=_zero)


# ----- Expand / Tile / Pad -----------------------------------------------
def _expand(node: Node, inputs: list) -> list:
    x, shape = inputs[0], int_list(inputs[1])
    return [np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape))).copy()]


def _tile(node: Node, inputs: list) -> list:
    return [np.tile(inputs[0], int_list(inputs[1]))]


_NP_PAD_MODE = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad(node: Node, inputs: list) -> list:
    x = inputs[0]
    pads = ints_from(node, inputs, 1, "pads")
    value = input_or_none(inputs, 2)
    value = node.attr("value", 0.0) if value is None else np.asarray(value).reshape(-1)[0]
    axes = ints_from(node, inputs, 3, "axes")
    axes = list(range(x.ndim)) if axes is None else [norm_axis(a, x.ndim) for a in axes]
    width = [[0, 0] for _ in range(x.ndim)]
    for i, axis in enumerate(axes):
        width[axis] = [pads[i], pads[i + len(axes)]]
    # negative pads crop first, then numpy pads
    crop = tuple(slice(-b if b < 0 else 0, x.shape[a] + e if e < 0 else None)
                 for a, (b, e) in enumerate(width))
    x = x[crop]
    grow = [(max(b, 0), max(e, 0)) for b, e in width]
    mode = node.attr("mode", "constant")
    if mode == "constant":
        return [np.pad(x, grow, mode="constant", constant_values=np.asarray(value, dtype=x.dtype))]
    return [np.pad(x, grow, mode=_NP_PAD_MODE[mode])]


def _pad_check(node: Node, graph: Graph) -> str | None:
    mode = node.attr("mode", "constant")
    if mode not in _NP_PAD_MODE:
        return f"Pad mode '{mode}' not supported"
    return None


register("Expand", _expand, dtypes=(ANY, INDEX), macs=_zero, extra=shape_inputs(1))
register("Tile", _tile, dtypes=(ANY, INDEX), macs=_zero, extra=shape_inputs(1))
register("Pad", _pad, dtypes=(ANY, INDEX, ANY, INDEX), macs=_zero, check=_pad_check,
         extra=shape_inputs(1, 3))


# ----- DepthToSpace / SpaceToDepth ---------------------------------------
def _depth_to_space(node: Node, inputs: list) -> list:
    x = inputs[0]
    b = node.attr("blocksize")
    n, c, h, w = x.shape
    if node.attr("mode", "DCR") == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return [y.reshape(n, c // (b * b), h * b, w * b)]


def _space_to_depth(node: Node, inputs: list) -> list:
    x = inputs[0]
    b = node.attr("blocksize")
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return [y.reshape(n, c * b * b, h // b, w // b)]


def _rank4(node: Node, graph: Graph) -> str | None:
    rank = len(graph.tensors[node.inputs[0]].shape)
    return None if rank == 4 else f"{node.op_type} needs a 4-D input, got rank {rank}"


register("DepthToSpace", _depth_to_space, dtypes=(ANY,), macs=_zero, check=_rank4)
register("SpaceToDepth", _space_to_depth, dtypes=(ANY,), macs=_zero, check=_rank4)


# ----- gathers ------------------------------------------------------------
def _gather(node: Node, inputs: list) -> list:
    x, indices = inputs
    axis = norm_axis(node.attr("axis", 0), x.ndim)
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return [np.take(x, indices, axis=axis)]


def _gather_elements(node: Node, inputs: list) -> list:
    x, indices = inputs
    axis = norm_axis(node.attr("axis", 0), x.ndim)
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return [np.take_along_axis(x, indices.astype(np.int64), axis=axis)]


def _gather_nd(node: Node, inputs: list) -> list:
    x, indices = inputs
    batch = node.attr("batch_dims", 0)
    depth = indices.shape[-1]
    lead = x.shape[:batch]
    count = math.prod(lead)
    xs = x.reshape((count,) + x.shape[batch:])
    idx = indices.reshape((count,) + indices.shape[batch:])
    parts = []
    for i in range(count):
        sub = idx[i]
        sub = np.where(sub < 0, sub + np.array(x.shape[batch:batch + depth]), sub)
        parts.append(xs[i][tuple(sub[..., j] for j in range(depth))])
    out = np.stack(parts) if parts else np.zeros((0,), dtype=x.dtype)
    return [out.reshape(lead + indices.shape[batch:-1] + x.shape[batch + depth:])]


def _gather_rows(node: Node, graph: Graph) -> dict[int, int]:
    return {1: graph.tensors[node.inputs[0]].shape[node.attr("axis", 0)]}


register("Gather", _gather, dtypes=(ANY, INDEX), macs=_zero,
         index_rows=_gather_rows)
register("GatherElements", _gather_elements, dtypes=(ANY, INDEX), macs=_zero)
register("GatherND", _gather_nd, dtypes=(ANY, INDEX), macs=_zero)


# ----- shape-producing ops (usually folded by the frontend) --------------
def _shape(node: Node, inputs: list) -> list:
    shape = np.array(inputs[0].shape, dtype=np.int64)
    rank = len(shape)
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    return [shape[start:end]]


def _constant_of_shape(node: Node, inputs: list) -> list:
    value = node.attr("value")
    value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value)
    return [np.full(tuple(int_list(inputs[0])), value.reshape(-1)[0], dtype=value.dtype)]


def _range(node: Node, inputs: list) -> list:
    start, limit, delta = (np.asarray(a).reshape(()) for a in inputs)
    count = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    return [(start + np.arange(count) * delta).astype(start.dtype)]


def _eye_like(node: Node, inputs: list) -> list:
    from onnx import helper

    x = inputs[0]
    dtype = node.attr("dtype")
    dtype = x.dtype if dtype is None else helper.tensor_dtype_to_np_dtype(dtype)
    return [np.eye(x.shape[0], x.shape[1], k=node.attr("k", 0), dtype=dtype)]


def _one_hot(node: Node, inputs: list) -> list:
    indices, depth, values = inputs
    depth = int(np.asarray(depth).reshape(-1)[0])
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    axis = norm_axis(node.attr("axis", -1), idx.ndim + 1)
    hot = np.expand_dims(idx, axis) == np.arange(depth).reshape(
        (depth,) + (1,) * (idx.ndim - axis))
    off, on = np.asarray(values).reshape(-1)[:2]
    return [np.where(hot, on, off).astype(values.dtype)]


def _trilu(node: Node, inputs: list) -> list:
    x = inputs[0]
    k = input_or_none(inputs, 1)
    k = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    return [np.triu(x, k) if node.attr("upper", 1) else np.tril(x, k)]


register("Shape", _shape, dtypes=(ANY,), macs=_zero)
register("Size", lambda n, i: [np.array(i[0].size, dtype=np.int64)], dtypes=(ANY,), macs=_zero)
register("ConstantOfShape", _constant_of_shape, dtypes=(INDEX,), macs=_zero,
         extra=shape_inputs(0))
register("Range", _range, dtypes=(FLOAT | INDEX,), macs=_zero, extra=shape_inputs(0, 1, 2))
def _eye_like_check(node: Node, graph: Graph) -> str | None:
    dtype = node.attr("dtype")
    ok = dtype is None or DType.from_onnx(dtype) in ANY
    return None if ok else f"EyeLike dtype {dtype} not supported"


register("EyeLike", _eye_like, dtypes=(ANY,), macs=_zero, check=_eye_like_check)
register("OneHot", _one_hot, dtypes=(FLOAT | INDEX, FLOAT | INDEX, ANY), macs=_zero,
         extra=shape_inputs(1))
register("Trilu", _trilu, dtypes=(ANY, INDEX), macs=_zero)
