"""Pooling: MaxPool (with optional Indices), AveragePool, LpPool and the global pools."""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import has_output
from onnx2mcu.ops.conv import WindowParams, node_window, pad_spatial, prepare_window, window_check
from onnx2mcu.ops.registry import FLOAT, QUANT, register


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _max_pool(node: Node, inputs: list, params: WindowParams | None = None) -> list:
    x = inputs[0]
    win = node_window(node, x, params)
    xp = pad_spatial(x, win, _lowest(x.dtype))
    want_indices = has_output(node, 1)
    if want_indices:
        spatial = x.shape[2:]
        if node.attr("storage_order", 0):  # spatial dims counted column-major
            flat = np.arange(x.size, dtype=np.int64).reshape(x.shape[:2] + spatial[::-1])
            flat = flat.transpose((0, 1) + tuple(range(x.ndim - 1, 1, -1)))
        else:
            flat = np.arange(x.size, dtype=np.int64).reshape(x.shape)
        ip = pad_spatial(flat, win, -1)
    best = best_index = None
    for offset in win.offsets():
        index = (slice(None), slice(None)) + win.slices(offset)
        candidate = xp[index]
        if best is None:
            best = candidate.copy()
            if want_indices:
                best_index = ip[index].copy()
            continue
        better = candidate > best
        best = np.where(better, candidate, best)
        if want_indices:
            best_index = np.where(better, ip[index], best_index)
    outputs = [best.astype(x.dtype)]
    if want_indices:
        outputs.append(best_index)
    return outputs


def _pool_macs(node: Node, graph: Graph) -> int:
    out = graph.tensors[node.outputs[0]]
    return out.numel * math.prod(node.attr("kernel_shape") or (1,))


register("MaxPool", _max_pool, dtypes=(FLOAT | QUANT,), macs=_pool_macs, check=window_check,
         prepare=prepare_window)


def _window_sum(xp: np.ndarray, win, fn=None) -> np.ndarray:
    total = None
    for offset in win.offsets():
        patch = xp[(slice(None), slice(None)) + win.slices(offset)]
        if fn is not None:
            patch = fn(patch)
        total = patch.copy() if total is None else total + patch
    return total


def _average_pool(node: Node, inputs: list, params: WindowParams | None = None) -> list:
    x = inputs[0]
    win = node_window(node, x, params)
    total = _window_sum(pad_spatial(x.astype(np.float64), win, 0.0), win)
    count = _window_sum(_count_grid(win, x.shape[2:], bool(node.attr("count_include_pad", 0))),
                        win)
    return [(total / count).astype(x.dtype)]


def _count_grid(win, spatial, include_pad: bool) -> np.ndarray:
    """1 where a window element counts toward the average's divisor.

    That is the input's elements, plus the explicit pads when
    count_include_pad; never the ceil_mode overhang past the end pad.
    """
    lo = [0 if include_pad else b for b in win.pads_begin]
    hi = [b + s + (e if include_pad else 0)
          for b, s, e in zip(win.pads_begin, spatial, win.pads_end)]
    shape = tuple(max(h, p) for h, p in zip(hi, win.padded))
    grid = np.zeros((1, 1) + shape)
    grid[(0, 0) + tuple(slice(a, b) for a, b in zip(lo, hi))] = 1.0
    return grid


register("AveragePool", _average_pool, dtypes=(FLOAT,), macs=_pool_macs, check=window_check,
         prepare=prepare_window)


def _lp_pool(node: Node, inputs: list, params: WindowParams | None = None) -> list:
    x = inputs[0]
    p = node.attr("p", 2)
    win = node_window(node, x, params)
    total = _window_sum(pad_spatial(x.astype(np.float64), win, 0.0), win,
                        lambda patch: np.abs(patch) ** p)
    return [(total ** (1.0 / p)).astype(x.dtype)]


register("LpPool", _lp_pool, dtypes=(FLOAT,), macs=_pool_macs, check=window_check,
         prepare=prepare_window)


def _global(fn):
    def reference(node: Node, inputs: list) -> list:
        x = inputs[0]
        axes = tuple(range(2, x.ndim))
        return [np.asarray(fn(x, axes)).astype(x.dtype)]
    return reference


register("GlobalAveragePool",
         _global(lambda x, axes: np.mean(x.astype(np.float64), axis=axes, keepdims=True)),
         dtypes=(FLOAT,))
register("GlobalMaxPool", _global(lambda x, axes: np.max(x, axis=axes, keepdims=True)),
         dtypes=(FLOAT | QUANT,))


def _global_lp(node: Node, inputs: list) -> list:
    x, p = inputs[0], node.attr("p", 2)
    total = np.sum(np.abs(x.astype(np.float64)) ** p, axis=tuple(range(2, x.ndim)), keepdims=True)
    return [(total ** (1.0 / p)).astype(x.dtype)]


register("GlobalLpPool", _global_lp, dtypes=(FLOAT,))
