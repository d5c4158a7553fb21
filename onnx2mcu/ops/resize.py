"""Resize (opset 11-19): nearest, linear and cubic modes, applied one axis at a
time (each is separable): per output index, a few input indices and weights.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import f64, input_or_none, int_list, norm_axis
from onnx2mcu.ops.registry import FLOAT, INDEX, QUANT, register, shape_inputs

TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _plan(node: Node, inputs: list, shape: tuple[int, ...]):
    """Per resized axis: (axis, output length, scale, roi start, roi end)."""
    rank = len(shape)
    axes = node.attr("axes")
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in axes]
    roi = input_or_none(inputs, 1)
    scales = input_or_none(inputs, 2)
    sizes = input_or_none(inputs, 3)
    roi = [] if roi is None else [float(v) for v in np.asarray(roi).reshape(-1)]
    if len(roi) == 2 * rank and len(axes) != rank:
        roi = [roi[a] for a in axes] + [roi[rank + a] for a in axes]
    starts, ends = (roi[:len(axes)], roi[len(axes):]) if roi else ([0.0] * len(axes),
                                                                   [1.0] * len(axes))
    if scales is not None and scales.size:
        scale = [float(v) for v in np.asarray(scales).reshape(-1)]
        if len(scale) == rank and len(axes) != rank:
            scale = [scale[a] for a in axes]
        crop = node.attr("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize"
        out = [int(math.floor(shape[a] * s * ((e - b) if crop else 1.0)))
               for a, s, b, e in zip(axes, scale, starts, ends)]
    else:
        size = int_list(sizes)
        if len(size) == rank and len(axes) != rank:
            size = [size[a] for a in axes]
        policy = node.attr("keep_aspect_ratio_policy", "stretch")
        if policy == "stretch":
            scale = [s / shape[a] for a, s in zip(axes, size)]
            out = size
        else:
            pick = min if policy == "not_larger" else max
            common = pick(s / shape[a] for a, s in zip(axes, size))
            scale = [common] * len(axes)
            out = [int(math.floor(shape[a] * common + 0.5)) for a in axes]
    return list(zip(axes, out, scale, starts, ends))


def _source_coords(mode: str, length_in: int, length_out: int, scale: float,
                   start: float, end: float) -> np.ndarray:
    x = np.arange(length_out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = length_out / (scale * length_in)
        offset = length_in / 2 * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if length_out > 1 else np.zeros_like(x)
    if mode == "align_corners":
        if length_out == 1:
            return np.zeros_like(x)
        # the resized length is the unrounded one, as in the ONNX reference
        return x * (length_in - 1) / (scale * length_in - 1)
    if mode == "asymmetric":
        return x / scale
    # tf_crop_and_resize
    if length_out == 1:
        return np.full_like(x, 0.5 * (start + end) * (length_in - 1))
    return start * (length_in - 1) + x * (end - start) * (length_in - 1) / (length_out - 1)


def _nearest(node: Node, coords: np.ndarray, length_in: int):
    mode = node.attr("nearest_mode", "round_prefer_floor")
    if mode == "round_prefer_floor":
        index = np.ceil(coords - 0.5)
    elif mode == "round_prefer_ceil":
        index = np.floor(coords + 0.5)
    elif mode == "floor":
        index = np.floor(coords)
    else:
        index = np.ceil(coords)
    index = np.clip(index, 0, length_in - 1).astype(np.int64)
    return [index], [np.ones_like(coords)]


def _linear(coords: np.ndarray, length_in: int):
    low = np.floor(coords)
    frac = coords - low
    low = low.astype(np.int64)
    taps = [np.clip(low, 0, length_in - 1), np.clip(low + 1, 0, length_in - 1)]
    return taps, [1.0 - frac, frac]


def _cubic(node: Node, coords: np.ndarray, length_in: int):
    a = node.attr("cubic_coeff_a", -0.75)
    low = np.floor(coords)
    t = coords - low
    low = low.astype(np.int64)
    weights = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
               ((a + 2) * t - (a + 3)) * t * t + 1,
               ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
               ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
    raw = [low - 1, low, low + 1, low + 2]
    if node.attr("exclude_outside", 0):
        weights = [np.where((r >= 0) & (r < length_in), w, 0.0) for r, w in zip(raw, weights)]
        total = sum(weights)
        weights = [w / total for w in weights]
    return [np.clip(r, 0, length_in - 1) for r in raw], weights


def axis_taps(node: Node, length_in: int, length_out: int, scale: float, start: float, end: float):
    """One axis of a Resize: the source coordinate of every output position, and the input
    positions and weights it reads (per the node's mode).  The reference and the C emitter
    (codegen/emit/misc.py, which tabulates them at compile time) both use this."""
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    mode = node.attr("mode", "nearest")
    coords = _source_coords(transform, length_in, length_out, scale, start, end)
    if mode == "nearest":
        taps, weights = _nearest(node, coords, length_in)
    elif mode == "linear":
        taps, weights = _linear(coords, length_in)
    else:
        taps, weights = _cubic(node, coords, length_in)
    return coords, taps, weights


def _resize(node: Node, inputs: list) -> list:
    x = inputs[0]
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    y = f64(x)
    outside = np.zeros((1,) * x.ndim, dtype=bool)
    for axis, length_out, scale, start, end in _plan(node, inputs, x.shape):
        length_in = x.shape[axis]
        coords, taps, weights = axis_taps(node, length_in, length_out, scale, start, end)
        shape = [1] * x.ndim
        shape[axis] = length_out
        y = sum(np.take(y, tap, axis=axis) * w.reshape(shape) for tap, w in zip(taps, weights))
        if transform == "tf_crop_and_resize":
            outside = outside | ((coords < 0) | (coords > length_in - 1)).reshape(shape)
    if transform == "tf_crop_and_resize":
        y = np.where(outside, node.attr("extrapolation_value", 0.0), y)
    if x.dtype.kind != "f":
        info = np.iinfo(x.dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    return [y.astype(x.dtype)]


def _resize_check(node: Node, graph: Graph) -> str | None:
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        return f"Resize mode '{mode}' not supported"
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    if transform not in TRANSFORMS:
        return f"Resize coordinate_transformation_mode '{transform}' not supported"
    if mode == "nearest" and node.attr("nearest_mode", "round_prefer_floor") not in NEAREST_MODES:
        return f"Resize nearest_mode '{node.attr('nearest_mode')}' not supported"
    if node.attr("antialias", 0):
        return "Resize antialias=1 not supported"
    if graph.tensors[node.inputs[0]].dtype in QUANT and mode != "nearest":
        return "Resize of int8/uint8 data supports mode 'nearest' only"
    return None


register("Resize", _resize, dtypes=(FLOAT | QUANT, FLOAT, FLOAT, INDEX), check=_resize_check,
         extra=shape_inputs(1, 2, 3))
