"""Adder (L1-distance) layers: ops of the `onnx2mcu` domain (AdderNet).

    AdderMatMul(X[..., K], W[N, K], scale[N]?, bias[N]?) -> Y[..., N] float32
        Y[.., n] = (-sum_k |X[.., k] - W[n, k]|) * scale[n] + bias[n]
    AdderConv(X[N, C, H, W], W[M, C, kh, kw], scale[M]?, bias[M]?) -> Y[N, M, OH, OW] float32
        the same over each receptive field, attributes as ONNX Conv
        (kernel_shape, strides, pads, dilations, auto_pad; group must be 1)
        plus pad_value (int, default 0): the value padded taps read, i.e.
        |pad_value - w| counts for them (0 = zero padding, as an unfold/im2col
        export does; for int8 the input zero point).

X and W are both float32 or both int8.
  float32: the sum runs sequentially in float32 from 0, k ascending; for the
           conv k is (channel, kernel row, kernel column) ascending.
  int8:    the sum is exact (int32); X and W must share one zero point, so
           that |(x - z) - (w - z)| = |x - w|.
Then (float32) -(sum) * scale + bias with one rounding per operation; the C
kernels (runtime_c/o2m_adder.c) compute exactly this.  graph_opt folds the
batch norm that follows an adder layer into scale and bias.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops._util import input_or_none
from onnx2mcu.ops.binary import DOMAIN, _conv_common_check, _per_channel_check, conv_window
from onnx2mcu.ops.conv import Window
from onnx2mcu.ops.registry import FLOAT, register

DATA = frozenset({DType.FLOAT32, DType.INT8})


def l1_sums(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x [R, K], w [N, K] -> [R, N] sums of |x - w| (float32 sequential, or exact int32)."""
    if x.dtype == np.int8:
        xi = x.astype(np.int32)
        wi = w.astype(np.int32)
        out = np.zeros((x.shape[0], w.shape[0]), dtype=np.int32)
        step = max(1, (1 << 22) // max(1, w.size))
        for start in range(0, x.shape[0], step):
            out[start:start + step] = np.abs(xi[start:start + step, None, :] - wi[None]).sum(
                axis=-1, dtype=np.int32)
        return out
    x = x.astype(np.float32)
    w = w.astype(np.float32)
    acc = np.zeros((x.shape[0], w.shape[0]), dtype=np.float32)
    for k in range(x.shape[1]):
        acc += np.abs(x[:, k, None] - w[None, :, k])
    return acc


def finish(sums: np.ndarray, scale, bias) -> np.ndarray:
    """(-sums) * scale + bias in float32 (integers: exact negation first)."""
    if sums.dtype.kind == "i":
        y = (-sums).astype(np.float32)
    else:
        y = -sums
    if scale is not None:
        y = (y * np.asarray(scale, dtype=np.float32).reshape(-1)).astype(np.float32)
    if bias is not None:
        y = (y + np.asarray(bias, dtype=np.float32).reshape(-1)).astype(np.float32)
    return y.astype(np.float32)


def im2col(x: np.ndarray, win: Window, kernel: tuple[int, int], pad_value) -> np.ndarray:
    """x [N, C, H, W] -> [N, OH*OW, C*kh*kw] in (c, i, j) order; outside taps read pad_value."""
    n, c, h, wd = x.shape
    kh, kw = kernel
    oh, ow = win.out
    out = np.full((n, oh, ow, c, kh, kw), pad_value, dtype=x.dtype)
    for i, j, ih, iw, valid in win.taps_2d(h, wd, kernel):
        patch = np.transpose(x[:, :, ih][:, :, :, iw], (0, 2, 3, 1))  # [N, OH, OW, C]
        out[:, :, :, :, i, j] = np.where(valid[None, :, :, None], patch,
                                         np.asarray(pad_value, dtype=x.dtype))
    return out.reshape(n, oh * ow, c * kh * kw)


# ----------------------------------------------------------------- AdderMatMul
def _adder_matmul(node: Node, inputs: list) -> list:
    x, w = inputs[0], inputs[1]
    scale, bias = input_or_none(inputs, 2), input_or_none(inputs, 3)
    lead = x.shape[:-1]
    sums = l1_sums(x.reshape(-1, x.shape[-1]), w)
    return [finish(sums, scale, bias).reshape(lead + (w.shape[0],))]


def _adder_matmul_infer(node: Node, inputs: list[Tensor]) -> list:
    x, w = inputs[0], inputs[1]
    if len(w.shape) != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError("AdderMatMul: W must be [N, K] with K = X's last dim")
    return [(tuple(x.shape[:-1]) + (w.shape[0],), DType.FLOAT32)]


def _same_dtype(graph: Graph, node: Node) -> str | None:
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if x.dtype is not w.dtype:
        return f"X ({x.dtype.value}) and W ({w.dtype.value}) must have the same dtype"
    return None


def _adder_matmul_check(node: Node, graph: Graph) -> str | None:
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if len(w.shape) != 2 or not x.shape or x.shape[-1] != w.shape[1]:
        return f"W must be [N, K] with K = X's last dim (X {list(x.shape)}, W {list(w.shape)})"
    return _same_dtype(graph, node) or _per_channel_check(node, graph, w.shape[0])


def _macs_matmul(node: Node, graph: Graph) -> int:
    x = graph.tensors[node.inputs[0]]
    return graph.tensors[node.outputs[0]].numel * (x.shape[-1] if x.shape else 1)


register("AdderMatMul", _adder_matmul, domain=DOMAIN, dtypes=(DATA, DATA, FLOAT, FLOAT),
         macs=_macs_matmul, infer=_adder_matmul_infer, check=_adder_matmul_check)


# ----------------------------------------------------------------- AdderConv
def _pad_value(node: Node, dtype) -> object:
    value = int(node.attr("pad_value", 0))
    return np.asarray(value, dtype=dtype)


def _adder_conv(node: Node, inputs: list) -> list:
    x, w = inputs[0], inputs[1]
    scale, bias = input_or_none(inputs, 2), input_or_none(inputs, 3)
    kernel = tuple(w.shape[2:])
    win = conv_window(node, tuple(x.shape[2:]), kernel)
    cols = im2col(x, win, kernel, _pad_value(node, x.dtype))  # [N, L, K]
    n, pixels, k = cols.shape
    sums = l1_sums(cols.reshape(n * pixels, k), w.reshape(w.shape[0], -1))
    y = finish(sums, scale, bias).reshape(n, pixels, w.shape[0])
    return [np.ascontiguousarray(np.transpose(y, (0, 2, 1)).reshape((n, w.shape[0]) + tuple(win.out)))]


def _adder_conv_infer(node: Node, inputs: list[Tensor]) -> list:
    x, w = inputs[0], inputs[1]
    win = conv_window(node, tuple(x.shape[2:]), tuple(w.shape[2:]))
    return [((x.shape[0], w.shape[0]) + tuple(win.out), DType.FLOAT32)]


def _adder_conv_check(node: Node, graph: Graph) -> str | None:
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    reason = _conv_common_check(node, x.shape, w.shape, x.shape[1] if x.shape else 0)
    if reason:
        return reason
    if w.shape[1] != x.shape[1]:
        return f"W has {w.shape[1]} input channels, X has {x.shape[1]}"
    if x.dtype is DType.FLOAT32 and int(node.attr("pad_value", 0)) != 0:
        return "pad_value must be 0 for float32"
    if x.dtype is DType.INT8 and not -128 <= int(node.attr("pad_value", 0)) <= 127:
        return "pad_value must be an int8"
    return _same_dtype(graph, node) or _per_channel_check(node, graph, w.shape[0])


def _adder_conv_scratch(node: Node, graph: Graph) -> int:
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    return 2 * math.prod(w.shape[1:]) * x.dtype.itemsize


def _macs_conv(node: Node, graph: Graph) -> int:
    w = graph.tensors[node.inputs[1]]
    return graph.tensors[node.outputs[0]].numel * math.prod(w.shape[1:])


register("AdderConv", _adder_conv, domain=DOMAIN, dtypes=(DATA, DATA, FLOAT, FLOAT),
         macs=_macs_conv, infer=_adder_conv_infer, check=_adder_conv_check,
         scratch_bytes=_adder_conv_scratch)
