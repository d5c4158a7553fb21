"""Convolutions (Conv, ConvTranspose) over any number of spatial dims, and the
window geometry shared with pooling.

The references accumulate one kernel offset at a time: for each offset the
strided window of the padded input is one (grouped) matrix product, so the
work is vectorised over pixels and channels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import input_or_none
from onnx2mcu.ops.registry import FLOAT, prepared, register

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
WEIGHT_CONVS = ("Conv", "ConvInteger")
"""Convolutions whose kernel shape is their weight's (input 1) spatial dims."""


@dataclass
class Window:
    """Geometry of a sliding window over the spatial dims."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out: tuple[int, ...]

    @property
    def padded(self) -> tuple[int, ...]:
        """Padded extent that covers every window (ceil_mode may reach past the end pad)."""
        return tuple((o - 1) * s + (k - 1) * d + 1 if o > 0 else 0
                     for o, s, k, d in zip(self.out, self.strides, self.kernel, self.dilations))

    def offsets(self):
        return np.ndindex(*self.kernel)

    def taps_2d(self, h: int, w: int, kernel: tuple[int, int] | None = None):
        """Per kernel tap (i, j): input rows and columns it reads for every output position
        (clipped into the input) and the [OH, OW] mask of positions where it is inside."""
        kh, kw = kernel or self.kernel
        rows = np.arange(self.out[0]) * self.strides[0] - self.pads_begin[0]
        cols = np.arange(self.out[1]) * self.strides[1] - self.pads_begin[1]
        for i in range(kh):
            ih = rows + i * self.dilations[0]
            vh = (ih >= 0) & (ih < h)
            for j in range(kw):
                iw = cols + j * self.dilations[1]
                vw = (iw >= 0) & (iw < w)
                yield i, j, np.clip(ih, 0, h - 1), np.clip(iw, 0, w - 1), vh[:, None] & vw[None, :]

    def slices(self, offset: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                     for k, d, o, s in zip(offset, self.dilations, self.out, self.strides))


def window(node: Node, spatial: tuple[int, ...], kernel: tuple[int, ...] | None = None,
           ceil_mode: bool = False) -> Window:
    kernel = tuple(node.attr("kernel_shape") or kernel)
    rank = len(kernel)
    strides = tuple(node.attr("strides") or (1,) * rank)
    dilations = tuple(node.attr("dilations") or (1,) * rank)
    auto_pad = node.attr("auto_pad", "NOTSET")
    begin, end, out = [], [], []
    for i in range(rank):
        size, k, s, d = spatial[i], kernel[i], strides[i], dilations[i]
        k_eff = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
            total = max(0, (o - 1) * s + k_eff - size)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            e = total - b
        else:
            if auto_pad == "VALID":
                b = e = 0
            else:
                pads = node.attr("pads") or (0,) * (2 * rank)
                b, e = pads[i], pads[i + rank]
            span = size + b + e - k_eff
            o = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (o - 1) * s >= size + b:
                o -= 1  # the last window must start inside the input or the begin pad
        begin.append(b)
        end.append(e)
        out.append(max(o, 0))
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), tuple(out))


@dataclass(frozen=True)
class WindowParams:
    """Params of a float Conv or pool: its window geometry (what the reference and the C
    emitter both read; onnx2mcu/ops/registry.py `prepared`)."""

    window: Window


def prepare_window(node: Node, graph: Graph) -> WindowParams:
    x = graph.tensors[node.inputs[0]]
    kernel = tuple(graph.tensors[node.inputs[1]].shape[2:]) if node.op_type in WEIGHT_CONVS else None
    return WindowParams(window(node, tuple(x.shape[2:]), kernel, ceil_mode=bool(node.attr("ceil_mode", 0))))


def node_window(node: Node, x: np.ndarray, params: WindowParams | None, kernel=None) -> Window:
    """The prepared window, or (callers without a graph: constant folding) the node's own."""
    if params is not None:
        return params.window
    return window(node, tuple(x.shape[2:]), kernel, ceil_mode=bool(node.attr("ceil_mode", 0)))


def pad_spatial(x: np.ndarray, win: Window, value) -> np.ndarray:
    """x padded (with `value`) so that every window of `win` lies inside."""
    lead = x.shape[:2]
    shape = tuple(max(b + s, p) for b, s, p in zip(win.pads_begin, x.shape[2:], win.padded))
    out = np.full(lead + shape, value, dtype=x.dtype)
    inner = tuple(slice(b, b + s) for b, s in zip(win.pads_begin, x.shape[2:]))
    out[(slice(None), slice(None)) + inner] = x
    return out


def _pads_check(node: Node) -> str | None:
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        return f"auto_pad '{auto_pad}' not supported"
    if any(p < 0 for p in node.attr("pads") or ()):
        return "negative pads not supported"
    return None


def window_check(node: Node, graph: Graph) -> str | None:
    """Conv and pooling: supported padding, and our window rule gives inference's shape."""
    reason = _pads_check(node)
    if reason:
        return reason
    x = graph.tensors[node.inputs[0]]
    out = graph.tensors[node.outputs[0]]
    kernel = graph.tensors[node.inputs[1]].shape[2:] if node.op_type in WEIGHT_CONVS else None
    if len(x.shape) < 3 or (kernel is None and not node.attr("kernel_shape")):
        return f"{node.op_type} needs an (N, C, spatial...) input and a kernel shape"
    win = prepared(node, graph).window
    if tuple(out.shape[2:]) != win.out:
        # onnx shape inference (1.23) keeps a ceil_mode window that would start in
        # the end padding; onnxruntime and the ONNX reference drop it
        return (f"output spatial shape {list(out.shape[2:])} from shape inference differs from "
                f"the window rule's {list(win.out)} (ceil_mode window starting in the end pad)")
    return None


# ----- Conv --------------------------------------------------------------
def conv_sum(x: np.ndarray, w: np.ndarray, groups: int, win: Window) -> np.ndarray:
    """sum over (input channel, tap) of x * w, zero padding, in x's dtype (float64 for Conv,
    int64 on the zero-point-centred values for ConvInteger: exact): [N, M, *out]."""
    n, c = x.shape[:2]
    m, kernel = w.shape[0], tuple(w.shape[2:])
    cg, mg = c // groups, m // groups
    xp = pad_spatial(x, win, 0)
    wg = w.reshape((groups, mg, cg) + kernel)
    pixels = math.prod(win.out)
    acc = np.zeros((n, groups, mg, pixels), dtype=x.dtype)
    for offset in win.offsets():
        patch = xp[(slice(None), slice(None)) + win.slices(offset)]
        acc += np.matmul(wg[(slice(None),) * 3 + offset], patch.reshape(n, groups, cg, pixels))
    return acc.reshape((n, m) + win.out)


def _conv(node: Node, inputs: list, params: WindowParams | None = None) -> list:
    x, w, b = inputs[0], inputs[1], input_or_none(inputs, 2)
    m, kernel = w.shape[0], tuple(w.shape[2:])
    win = node_window(node, x, params, kernel)
    y = conv_sum(x.astype(np.float64), w.astype(np.float64), node.attr("group", 1), win)
    if b is not None:
        y = y + b.astype(np.float64).reshape((1, m) + (1,) * len(kernel))
    return [y.astype(x.dtype)]


def _conv_macs(node: Node, graph: Graph) -> int:
    w = graph.tensors[node.inputs[1]]
    out = graph.tensors[node.outputs[0]]
    return out.numel * math.prod(w.shape[1:])


register("Conv", _conv, dtypes=(FLOAT,), macs=_conv_macs, check=window_check, prepare=prepare_window)


# ----- ConvTranspose -----------------------------------------------------
def _transpose_geometry(node: Node, spatial, kernel):
    rank = len(kernel)
    strides = tuple(node.attr("strides") or (1,) * rank)
    dilations = tuple(node.attr("dilations") or (1,) * rank)
    out_pad = tuple(node.attr("output_padding") or (0,) * rank)
    auto_pad = node.attr("auto_pad", "NOTSET")
    output_shape = node.attr("output_shape")
    pads = node.attr("pads") or (0,) * (2 * rank)
    begin, out = [], []
    for i in range(rank):
        size, k, s, d = spatial[i], kernel[i], strides[i], dilations[i]
        natural = s * (size - 1) + out_pad[i] + (k - 1) * d + 1
        if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = output_shape[len(output_shape) - rank + i] if output_shape else size * s
            total = natural - o
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        else:
            b, e = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + rank])
            o = natural - b - e
        begin.append(b)
        out.append(o)
    return strides, dilations, tuple(begin), tuple(out)


def _conv_transpose(node: Node, inputs: list) -> list:
    x, w, b = inputs[0], inputs[1], input_or_none(inputs, 2)
    n, c = x.shape[:2]
    spatial, kernel = tuple(x.shape[2:]), tuple(w.shape[2:])
    groups = node.attr("group", 1)
    cg, mg = c // groups, w.shape[1]
    m = mg * groups
    strides, dilations, begin, out = _transpose_geometry(node, spatial, kernel)
    full = tuple(max((size - 1) * s + (k - 1) * d + 1, bg + o)
                 for size, s, k, d, bg, o in zip(spatial, strides, kernel, dilations, begin, out))
    acc = np.zeros((n, groups, mg) + full)
    wg = w.astype(np.float64).reshape((groups, cg, mg) + kernel)
    xg = x.astype(np.float64).reshape(n, groups, cg, math.prod(spatial))
    for offset in np.ndindex(*kernel):
        contrib = np.matmul(np.swapaxes(wg[(slice(None),) * 3 + offset], 1, 2), xg)
        target = tuple(slice(k * d, k * d + (size - 1) * s + 1, s)
                       for k, d, size, s in zip(offset, dilations, spatial, strides))
        acc[(slice(None),) * 3 + target] += contrib.reshape((n, groups, mg) + spatial)
    crop = tuple(slice(bg, bg + o) for bg, o in zip(begin, out))
    y = acc[(slice(None),) * 3 + crop].reshape((n, m) + out)
    if b is not None:
        y = y + b.astype(np.float64).reshape((1, m) + (1,) * len(kernel))
    return [y.astype(x.dtype)]


def _conv_transpose_check(node: Node, graph: Graph) -> str | None:
    reason = _pads_check(node)
    if reason:
        return reason
    x = graph.tensors[node.inputs[0]]
    w = graph.tensors[node.inputs[1]]
    _, _, begin, out = _transpose_geometry(node, x.shape[2:], w.shape[2:])
    if any(b < 0 for b in begin):
        return "ConvTranspose output_shape larger than the full output is not supported"
    if tuple(graph.tensors[node.outputs[0]].shape[2:]) != out:
        return (f"output spatial shape {list(graph.tensors[node.outputs[0]].shape[2:])} from shape "
                f"inference differs from the ConvTranspose rule's {list(out)}")
    return None


def _conv_transpose_macs(node: Node, graph: Graph) -> int:
    x = graph.tensors[node.inputs[0]]
    w = graph.tensors[node.inputs[1]]
    return x.numel * math.prod(w.shape[1:])


register("ConvTranspose", _conv_transpose, dtypes=(FLOAT,), macs=_conv_transpose_macs,
         check=_conv_transpose_check)
