"""Reductions (Reduce*), ArgMax/ArgMin, CumSum and TopK.

Reduce* take their axes from the `axes` attribute (older opsets) or from the
second input (opset 18; ReduceSum from 13), with `noop_with_empty_axes`.
Float sums and means accumulate in float64.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import f64, ints_from, norm_axes, norm_axis
from onnx2mcu.ops.registry import BOOL, FLOAT, INDEX, NUMERIC, QUANT, register, shape_inputs


def _axes(node: Node, inputs: list, rank: int) -> tuple[int, ...] | None:
    """Axes to reduce, or None for 'no reduction' (empty axes with noop_with_empty_axes)."""
    axes = ints_from(node, inputs, 1, "axes")
    if not axes:
        return None if node.attr("noop_with_empty_axes", 0) else tuple(range(rank))
    return norm_axes(axes, rank)


def _extreme(x: np.ndarray, largest: bool):
    """The identity of max (largest) or min over an empty set, in x's dtype."""
    if x.dtype == np.bool_:
        return not largest
    if x.dtype.kind == "f":
        return -np.inf if largest else np.inf
    info = np.iinfo(x.dtype)
    return info.min if largest else info.max


def _reducer(op_type: str, fn, dtypes=(NUMERIC, INDEX), wide: bool = True) -> None:
    def reference(node: Node, inputs: list) -> list:
        x = inputs[0]
        axes = _axes(node, inputs, x.ndim)
        keep = bool(node.attr("keepdims", 1))
        if axes is None:
            with np.errstate(all="ignore"):
                return [np.asarray(fn(x, None, True, identity=True)).astype(x.dtype)]
        data = f64(x) if wide and x.dtype.kind == "f" else x
        with np.errstate(all="ignore"):
            result = fn(data, axes, keep, identity=False)
        return [np.asarray(result).astype(x.dtype)]

    register(op_type, reference, dtypes=dtypes, extra=shape_inputs(1))


def _max(x, axes, keep, identity):
    return x if identity else np.max(x, axis=axes, keepdims=keep, initial=_extreme(x, True))


def _min(x, axes, keep, identity):
    return x if identity else np.min(x, axis=axes, keepdims=keep, initial=_extreme(x, False))


def _sum(x, axes, keep, identity):
    return x if identity else np.sum(x, axis=axes, keepdims=keep)


def _mean(x, axes, keep, identity):
    return x if identity else np.mean(x, axis=axes, keepdims=keep)


def _prod(x, axes, keep, identity):
    return x if identity else np.prod(x, axis=axes, keepdims=keep)


def _l1(x, axes, keep, identity):
    return np.abs(x) if identity else np.sum(np.abs(x), axis=axes, keepdims=keep)


def _l2(x, axes, keep, identity):
    x = f64(x)
    return np.abs(x) if identity else np.sqrt(np.sum(x * x, axis=axes, keepdims=keep))


def _sum_square(x, axes, keep, identity):
    return x * x if identity else np.sum(x * x, axis=axes, keepdims=keep)


def _log_sum(x, axes, keep, identity):
    return np.log(x) if identity else np.log(np.sum(x, axis=axes, keepdims=keep))


def _log_sum_exp(x, axes, keep, identity):
    x = f64(x)
    if identity:
        return x
    peak = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    total = np.log(np.sum(np.exp(x - peak), axis=axes, keepdims=True)) + peak
    return total if keep else np.squeeze(total, axis=axes)


_reducer("ReduceMax", _max, dtypes=(NUMERIC | BOOL, INDEX))
_reducer("ReduceMin", _min, dtypes=(NUMERIC | BOOL, INDEX))
_reducer("ReduceSum", _sum)
_reducer("ReduceMean", _mean, dtypes=(FLOAT, INDEX))
_reducer("ReduceProd", _prod)
_reducer("ReduceL1", _l1)
_reducer("ReduceL2", _l2)
_reducer("ReduceSumSquare", _sum_square)
_reducer("ReduceLogSum", _log_sum, dtypes=(FLOAT, INDEX))
_reducer("ReduceLogSumExp", _log_sum_exp, dtypes=(FLOAT, INDEX))


# ----- ArgMax / ArgMin ---------------------------------------------------
def _arg(fn):
    def reference(node: Node, inputs: list) -> list:
        x = inputs[0]
        axis = norm_axis(node.attr("axis", 0), x.ndim)
        if node.attr("select_last_index", 0):
            flipped = np.flip(x, axis=axis)
            index = x.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            index = fn(x, axis=axis)
        if node.attr("keepdims", 1):
            index = np.expand_dims(index, axis)
        return [np.asarray(index, dtype=np.int64)]
    return reference


register("ArgMax", _arg(np.argmax), dtypes=(NUMERIC,))
register("ArgMin", _arg(np.argmin), dtypes=(NUMERIC,))


# ----- CumSum -------------------------------------------------------------
def _cumsum(node: Node, inputs: list) -> list:
    x = inputs[0]
    axis = norm_axis(int(np.asarray(inputs[1]).reshape(-1)[0]), x.ndim)
    data = f64(x) if x.dtype.kind == "f" else x
    if node.attr("reverse", 0):
        data = np.flip(data, axis=axis)
    total = np.cumsum(data, axis=axis)
    if node.attr("exclusive", 0):
        total = total - data
    if node.attr("reverse", 0):
        total = np.flip(total, axis=axis)
    return [np.asarray(total).astype(x.dtype)]


register("CumSum", _cumsum, dtypes=(FLOAT | INDEX, INDEX), inplace_inputs=(0,))


# ----- TopK ---------------------------------------------------------------
def _topk(node: Node, inputs: list) -> list:
    x = inputs[0]
    k = int(np.asarray(inputs[1]).reshape(-1)[0])
    axis = norm_axis(node.attr("axis", -1), x.ndim)
    largest = node.attr("largest", 1)
    # stable sort: among equal values the lower index comes first
    keys = -f64(x) if largest else f64(x)
    order = np.argsort(keys, axis=axis, kind="stable")
    index = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, index, axis=axis), index.astype(np.int64)]


def _topk_check(node: Node, graph: Graph) -> str | None:
    if not node.attr("sorted", 1):
        return "TopK sorted=0 leaves the order unspecified; not supported"
    return None


register("TopK", _topk, dtypes=(FLOAT | INDEX | QUANT, INDEX), check=_topk_check,
         extra=shape_inputs(1))

