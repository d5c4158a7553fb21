"""The integer paths of the standard ops: quantized nodes that run on int8 (OpDef.quantized
QUANT_INTEGER), their compile-time Params and their numpy references.

A node touching quantized tensors (Tensor.quant, frontend/qdq.py) means "the op on the real
values, quantized onto its outputs".  Each op here says when it can compute that on the
integers (`int8_check`: why not, or None; the node otherwise runs as a float island,
graph_opt/float_islands.py) and `prepare`s, once per node, everything its int8 reference
(onnx2mcu/ops/int8_ref.py) and its C kernel (codegen/emit/int8.py, runtime_c/o2m_s8_*) read:
multipliers and shifts per channel, zero points, fused activation bounds, pads and strides,
lookup tables.  The graph's requant mode (`Graph.requant`) selects TFLite's fixed-point
arithmetic ("fixed") or onnxruntime's float32 rescale ("float"); see docs/ARCHITECTURE.md, int8.

Fused activations: graph_opt/quant_fuse.py moves a Relu/Clip that follows a node into the
node's quantized output bounds, as the attribute `ACT_ATTR` = (low, high) real bounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from onnx2mcu import qmath
from onnx2mcu.ir import DType, Graph, Node, QuantParams, Tensor
from onnx2mcu.ops import int8_ref as R
from onnx2mcu.ops._util import int_list, norm_axis
from onnx2mcu.ops.conv import Window, WindowParams, prepare_window
from onnx2mcu.ops.integer import INTEGER_PRODUCTS
from onnx2mcu.ops.registry import QUANT, QUANT_INTEGER, lookup, prepared, register, upgrade

ACT_ATTR = "o2m_fused_act"
"""Real-valued (low, high) bounds of an activation fused into the node's quantized output."""

INPLACE_ATTR = "o2m_inplace"
"""Set (1) by graph_opt/inplace_conv.py on an int8 depthwise Conv whose kernel runs in place
(`inplace_depthwise`), where that lowers the peak."""

FUSABLE_ACT_OPS = ("Conv", "Gemm", "MatMul", "Add", "Sub", "Mul")
"""Ops whose int8 kernels clamp their output to fused activation bounds."""


class NotInteger(ValueError):
    """This quantized node has no integer path here (the reason is the message)."""


# ----------------------------------------------------------------- Params
@dataclass(frozen=True)
class Int8Params:
    """Base of every int8 Params: the requantization mode they were made for."""
    mode: str


@dataclass(frozen=True)
class ConvInt8(Int8Params):
    window: Window
    conv: R.ConvParams


@dataclass(frozen=True)
class FCInt8(Int8Params):
    """Gemm with transB=1 ([N, K] weights) or MatMul ([..., K, N] second operand)."""
    fc: R.FCParams
    matmul: bool  # MatMul layout (b [..., K, N]) rather than fully connected ([N, K])


@dataclass(frozen=True)
class AddInt8(Int8Params):
    add: qmath.AddParams


@dataclass(frozen=True)
class MulInt8(Int8Params):
    mul: qmath.MulParams


@dataclass(frozen=True)
class PoolInt8(Int8Params):
    window: Window
    pool: R.PoolParams
    input_zero_point: int


@dataclass(frozen=True)
class MeanInt8(Int8Params):
    mean: R.MeanParams
    axes: tuple[int, ...]
    keepdims: bool


@dataclass(frozen=True)
class PlaneMeanInt8(MeanInt8):
    """An AveragePool over its whole input plane computed as the spatial mean (it rescales);
    `window` is the pool's, which the shape check reads."""
    window: Window


@dataclass(frozen=True)
class GlobalPoolInt8(MeanInt8):
    """A whole-image AveragePool computed as onnxruntime's global average pool (--requant float)."""
    window: Window


@dataclass(frozen=True)
class SoftmaxInt8(Int8Params):
    softmax: qmath.SoftmaxParams
    axis: int


@dataclass(frozen=True)
class LutInt8(Int8Params):
    table: np.ndarray = field(repr=False)  # 256 int8 entries, indexed by x + 128


@dataclass(frozen=True)
class PadInt8(Int8Params):
    pads: tuple[tuple[int, int], ...]  # per axis (begin, end), all >= 0
    value: int  # the pad value as an integer: the quantized constant (a real 0: the zero point)


@dataclass(frozen=True)
class ConcatInt8(Int8Params):
    axis: int
    requants: tuple  # per input: R.RequantParams, or None when its quantization is the output's


# ----------------------------------------------------------------- checks shared by the ops
def _per_tensor(graph: Graph, name: str, what: str, const_ok: bool = False) -> QuantParams:
    tensor = graph.tensors[name]
    if tensor.dtype is not DType.INT8 or tensor.quant is None:
        raise NotInteger(f"{what} '{name}' has dtype {tensor.dtype.value}"
                         f"{'' if tensor.quant is not None else ' without quantization'}, not quantized int8")
    if tensor.quant.per_axis:
        raise NotInteger(f"{what} '{name}' is quantized per axis")
    if tensor.is_const and not const_ok:
        raise NotInteger(f"{what} '{name}' is a constant")
    return tensor.quant


def _sz(q: QuantParams) -> tuple[float, int]:
    return float(q.scale), int(q.zero_point)


def _mode(graph: Graph) -> str:
    if graph.requant not in qmath.REQUANT_MODES:
        raise ValueError(f"requant mode '{graph.requant}': choose one of {', '.join(qmath.REQUANT_MODES)}")
    return graph.requant


def quantize_bound(value: float, q: QuantParams, mode: str) -> int:
    """A real activation bound in the output's integers: TFLite's rounding (half away from zero)
    in fixed mode, QuantizeLinear's (half to even) in float mode; saturated to int8."""
    scale, zp = _sz(q)
    if math.isinf(value):
        return -128 if value < 0 else 127
    if mode == "fixed":
        return int(np.clip(qmath.quantize_value(value, scale, zp), -128, 127))
    return int(q.quantize(np.float32(value)))


def act_bounds(node: Node, q: QuantParams, mode: str) -> tuple[int, int]:
    low, high = node.attr(ACT_ATTR, (-math.inf, math.inf))
    lo, hi = quantize_bound(float(low), q, mode), quantize_bound(float(high), q, mode)
    if lo > hi:
        raise NotInteger("empty fused activation range")
    return lo, hi


def _weights(graph: Graph, name: str, channels: int, channel_axis: int, what: str):
    """(values, per-channel scales, zero point) of an int8 constant weight."""
    tensor = graph.tensors[name]
    if not tensor.is_const or tensor.dtype is not DType.INT8 or tensor.quant is None:
        raise NotInteger(f"{what} '{name}' is not a quantized int8 constant")
    q = tensor.quant
    if q.per_axis:
        if q.axis != channel_axis:
            raise NotInteger(f"{what} '{name}' is quantized along axis {q.axis}, not {channel_axis}")
        if np.any(q.zero_point != 0):
            raise NotInteger(f"{what} '{name}' has per-channel zero points other than 0")
        return tensor.data, np.asarray(q.scale, np.float32), 0
    return tensor.data, np.full(channels, float(q.scale), np.float32), int(q.zero_point)


def _bias(graph: Graph, node: Node, index: int, channels: int, input_scale: float, filter_scales) -> None:
    """The int32 bias must be in the accumulator's scale (input scale x filter scale) with zero point 0."""
    if len(node.inputs) <= index or not node.inputs[index]:
        return
    tensor = graph.tensors[node.inputs[index]]
    if not tensor.is_const or tensor.dtype is not DType.INT32 or tensor.quant is None:
        raise NotInteger(f"bias '{tensor.name}' is not a quantized int32 constant")
    if tensor.numel != channels:
        raise NotInteger(f"bias '{tensor.name}' has {tensor.numel} values for {channels} channels")
    q = tensor.quant
    if np.any(q.zero_point != 0):
        raise NotInteger(f"bias '{tensor.name}' has a zero point other than 0")
    want = np.float32(input_scale) * np.asarray(filter_scales, np.float32)
    have = np.broadcast_to(np.asarray(q.scale, np.float32), want.shape)
    if not np.allclose(have, want, rtol=1e-5, atol=0):
        raise NotInteger(f"bias '{tensor.name}' scale is not input scale x weight scale")


def _guard(build: Callable[[Node, Graph], Any]) -> Callable[[Node, Graph], Any]:
    """qmath's ValueErrors (a shift out of range...) mean 'no integer path' too."""
    def prepare(node: Node, graph: Graph):
        try:
            return build(node, graph)
        except NotInteger:
            raise
        except ValueError as exc:
            raise NotInteger(str(exc)) from exc
    return prepare


def _float_or_int8(float_prepare, build):
    """prepare: int8 Params for a node on quantized tensors, the float Params otherwise."""
    build = _guard(build)

    def prepare(node: Node, graph: Graph):
        if _is_quantized(node, graph):
            try:
                return build(node, graph)
            except NotInteger:
                pass  # a float island (graph_opt/float_islands.py) once the graph is optimized
        return float_prepare(node, graph) if float_prepare is not None else None
    return prepare, build


def _is_quantized(node: Node, graph: Graph) -> bool:
    return any(n and graph.tensors[n].quant is not None and graph.tensors[n].dtype is DType.INT8
               and not graph.tensors[n].is_const for n in list(node.inputs) + list(node.outputs))


def _check_of(build):
    def int8_check(node: Node, graph: Graph) -> str | None:
        try:
            build(node, graph)
        except NotInteger as exc:
            return str(exc)
        return None
    return int8_check


# ----------------------------------------------------------------- Conv
def _conv_build(node: Node, graph: Graph) -> ConvInt8:
    mode = _mode(graph)
    qx = _per_tensor(graph, node.inputs[0], "input")
    qy = _per_tensor(graph, node.outputs[0], "output")
    x, wt = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if len(x.shape) != 4:
        raise NotInteger(f"{len(x.shape) - 2}-D int8 Conv (2-D only)")
    c_out = wt.shape[0]
    _, fs, wzp = _weights(graph, node.inputs[1], c_out, 0, "weight")
    _bias(graph, node, 2, c_out, float(qx.scale), fs)
    win = prepare_window(node, graph).window
    lo, hi = act_bounds(node, qy, mode)
    conv = R.conv_params(*_sz(qx), fs, *_sz(qy), c_out, stride=win.strides, dilation=win.dilations,
                         pads=(win.pads_begin[0], win.pads_begin[1], win.pads_end[0], win.pads_end[1]),
                         groups=node.attr("group", 1), filter_zero_point=wzp)
    conv = _with_bounds(conv, lo, hi)
    return ConvInt8(mode, win, conv)


def _with_bounds(p, lo: int, hi: int):
    from dataclasses import replace

    return replace(p, act_min=lo, act_max=hi)


def _conv_int8(node: Node, inputs: list, p: ConvInt8) -> list:
    bias = inputs[2] if len(inputs) > 2 else None
    return [R.conv2d(inputs[0], inputs[1], bias, p.conv, p.mode)]


# ----------------------------------------------------------------- Gemm / MatMul
def _gemm_build(node: Node, graph: Graph) -> FCInt8:
    mode = _mode(graph)
    if node.attr("transA", 0) or not node.attr("transB", 0):
        raise NotInteger("int8 Gemm needs transA=0 and transB=1 (weights [N, K])")
    if float(node.attr("alpha", 1.0)) != 1.0 or float(node.attr("beta", 1.0)) != 1.0:
        raise NotInteger("int8 Gemm needs alpha = beta = 1")
    qx = _per_tensor(graph, node.inputs[0], "input")
    qy = _per_tensor(graph, node.outputs[0], "output")
    wt = graph.tensors[node.inputs[1]]
    n = wt.shape[0]
    _, fs, wzp = _weights(graph, node.inputs[1], n, 0, "weight")
    _bias(graph, node, 2, n, float(qx.scale), fs)
    lo, hi = act_bounds(node, qy, mode)
    per_channel = wt.quant.per_axis
    fc = R.fc_params(*_sz(qx), fs if per_channel else fs[:1], *_sz(qy), filter_zero_point=wzp)
    return FCInt8(mode, _with_bounds(fc, lo, hi), matmul=False)


def _matmul_build(node: Node, graph: Graph) -> FCInt8:
    mode = _mode(graph)
    qa = _per_tensor(graph, node.inputs[0], "input A")
    qy = _per_tensor(graph, node.outputs[0], "output")
    b = graph.tensors[node.inputs[1]]
    if len(b.shape) < 2 or len(graph.tensors[node.inputs[0]].shape) < 2:
        raise NotInteger("int8 MatMul of 1-D operands")
    n = b.shape[-1]
    if b.is_const:
        _, fs, bzp = _weights(graph, node.inputs[1], n, len(b.shape) - 1, "input B")
        per_channel = b.quant.per_axis
    else:
        qb = _per_tensor(graph, node.inputs[1], "input B")
        fs, bzp, per_channel = np.full(n, float(qb.scale), np.float32), int(qb.zero_point), False
    lo, hi = act_bounds(node, qy, mode)
    fc = R.fc_params(*_sz(qa), fs if per_channel else fs[:1], *_sz(qy), filter_zero_point=bzp)
    return FCInt8(mode, _with_bounds(fc, lo, hi), matmul=True)


def _fc_int8(node: Node, inputs: list, p: FCInt8) -> list:
    bias = inputs[2] if len(inputs) > 2 else None
    if p.matmul:
        return [R.matmul(inputs[0], inputs[1], bias, p.fc, p.mode)]
    return [R.fully_connected(inputs[0], inputs[1], bias, p.fc, p.mode)]


# ----------------------------------------------------------------- Add / Sub / Mul
def _binary_build(kind: str):
    def build(node: Node, graph: Graph):
        mode = _mode(graph)
        qa = _per_tensor(graph, node.inputs[0], "input A", const_ok=True)
        qb = _per_tensor(graph, node.inputs[1], "input B", const_ok=True)
        qy = _per_tensor(graph, node.outputs[0], "output")
        lo, hi = act_bounds(node, qy, mode)
        if kind == "mul":
            return MulInt8(mode, _with_bounds(qmath.mul_params(*_sz(qa), *_sz(qb), *_sz(qy)), lo, hi))
        offsets = (qa.value_offset, qb.value_offset, qy.value_offset)  # uint8 held as int8: raw values
        swap = qmath.qlinear_add_swaps(graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[1]].shape)
        return AddInt8(mode, _with_bounds(qmath.add_params(*_sz(qa), *_sz(qb), *_sz(qy), value_offsets=offsets,
                                                           swap=swap), lo, hi))
    return build


def _binary_int8(kind: str):
    def reference(node: Node, inputs: list, p) -> list:
        a, b = inputs[0], inputs[1]
        if kind == "mul":
            return [R.mul(a, b, p.mul, p.mode)]
        return [(R.sub if kind == "sub" else R.add)(a, b, p.add, p.mode)]
    return reference


# ----------------------------------------------------------------- pools and means
def _same_quant(graph: Graph, node: Node) -> QuantParams:
    qx = _per_tensor(graph, node.inputs[0], "input")
    qy = _per_tensor(graph, node.outputs[0], "output")
    if qx != qy:
        raise NotInteger("input and output quantization differ (int8 pools keep them equal)")
    return qx


def _is_global_pool(node: Node, graph: Graph) -> bool:
    """An AveragePool whose one window is the whole (unpadded) image: onnxruntime computes it as
    a global average pool."""
    shape = graph.tensors[node.inputs[0]].shape
    if len(shape) != 4 or node.attr("ceil_mode", 0) or node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return False
    if any(d != 1 for d in node.attr("dilations") or ()):
        return False
    return (tuple(int_list(node.attr("kernel_shape"))) == tuple(shape[2:])
            and not any(int_list(node.attr("pads") or [0]))) 


def _pool_build(node: Node, graph: Graph) -> PoolInt8 | MeanInt8:
    mode = _mode(graph)
    if node.op_type == "AveragePool" and mode == "fixed" and _whole_window(node, graph):
        # one window over the whole (unpadded) plane is TFLite's spatial mean, which also rescales
        # (onnxruntime's QOperator QLinearAveragePool has its own output scale).  Under
        # --requant float a whole-image pool follows onnxruntime's global average pool (below)
        return PlaneMeanInt8(mode, _mean_params(graph, node, (2, 3), True, 4), (2, 3), True,
                             prepare_window(node, graph).window)
    if mode == "float" and node.op_type == "AveragePool" and _is_global_pool(node, graph):
        if node.attr(ACT_ATTR, None) is not None:
            raise NotInteger("int8 global AveragePool with a fused activation")
        return GlobalPoolInt8(mode, _mean_params(graph, node, (2, 3), True, 4), (2, 3), True,
                              prepare_window(node, graph).window)
    q = _same_quant(graph, node)
    if len(graph.tensors[node.inputs[0]].shape) != 4:
        raise NotInteger("int8 pools are 2-D only")
    if node.attr("ceil_mode", 0):
        raise NotInteger("int8 pools with ceil_mode")
    if any(d != 1 for d in node.attr("dilations") or ()):
        raise NotInteger("int8 pools with dilations")
    if len(node.outputs) > 1 and node.outputs[1]:
        raise NotInteger("MaxPool's Indices output")
    win = prepare_window(node, graph).window
    lo, hi = act_bounds(node, q, mode)
    pool = R.pool_params(win.kernel, stride=win.strides,
                         pads=(win.pads_begin[0], win.pads_begin[1], win.pads_end[0], win.pads_end[1]),
                         act_min=lo, act_max=hi, count_include_pad=bool(node.attr("count_include_pad", 0)))
    return PoolInt8(mode, win, pool, int(q.zero_point))


def _whole_window(node: Node, graph: Graph) -> bool:
    """A 2-D AveragePool whose one window is its whole input plane (no pads, 1x1 output), with
    input and output quantized differently (with equal ones the pool's own kernel serves)."""
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    if len(x.shape) != 4 or len(y.shape) != 4 or tuple(y.shape[2:]) != (1, 1):
        return False
    if x.quant is None or y.quant is None or x.quant == y.quant or node.attr("ceil_mode", 0):
        return False
    win = prepare_window(node, graph).window
    return tuple(win.kernel) == tuple(x.shape[2:]) and not any(win.pads_begin) and not any(win.pads_end) \
        and all(d == 1 for d in (node.attr("dilations") or ()))


def _avgpool_int8(node: Node, inputs: list, p: PoolInt8 | MeanInt8) -> list:
    if isinstance(p, MeanInt8):
        return _mean_int8(node, inputs, p)
    return [R.avgpool(inputs[0], p.pool, p.input_zero_point)]


def _maxpool_int8(node: Node, inputs: list, p: PoolInt8) -> list:
    return [R.maxpool(inputs[0], p.pool)]


def _mean_params(graph: Graph, node: Node, axes: tuple[int, ...], keepdims: bool, rank: int) -> R.MeanParams:
    qx = _per_tensor(graph, node.inputs[0], "input")
    qy = _per_tensor(graph, node.outputs[0], "output")
    if _mode(graph) == "float":  # onnxruntime's QLinearGlobalAveragePool, any scales
        shape = graph.tensors[node.inputs[0]].shape
        count = int(np.prod([shape[a] for a in axes]))
        return R.mean_params(*_sz(qx), *_sz(qy), "float", count=count)
    spatial = rank == 4 and axes == (2, 3) and keepdims
    if spatial:  # TFLite's 4-D spatial mean (keep_dims, the H and W axes)
        return R.mean_params(*_sz(qx), *_sz(qy), "rescale")
    if qx != qy:
        raise NotInteger("int8 mean over other axes needs equal input and output quantization")
    return R.mean_params(*_sz(qx), *_sz(qy), "same")


def _global_avg_build(node: Node, graph: Graph) -> MeanInt8:
    rank = len(graph.tensors[node.inputs[0]].shape)
    axes = tuple(range(2, rank))
    return MeanInt8(_mode(graph), _mean_params(graph, node, axes, True, rank), axes, True)


def _reduce_mean_build(node: Node, graph: Graph) -> MeanInt8:
    x = graph.tensors[node.inputs[0]]
    rank = len(x.shape)
    axes = node.attr("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        const = graph.tensors[node.inputs[1]]
        if not const.is_const:
            raise NotInteger("ReduceMean axes are not a constant")
        axes = const.data
    axes = int_list(axes)
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            raise NotInteger("ReduceMean without axes (a no-op)")
        axes = list(range(rank))
    axes = tuple(sorted({norm_axis(a, rank) for a in axes}))
    if axes != tuple(range(axes[0], axes[-1] + 1)):
        raise NotInteger("int8 ReduceMean over non-contiguous axes")
    keep = bool(node.attr("keepdims", 1))
    return MeanInt8(_mode(graph), _mean_params(graph, node, axes, keep, rank), axes, keep)


def _mean_int8(node: Node, inputs: list, p: MeanInt8) -> list:
    return [R.mean(inputs[0], p.axes, p.mean, keepdims=p.keepdims)]


# ----------------------------------------------------------------- Softmax
SOFTMAX_OUTPUT = QuantParams(np.float32(1.0 / 256.0), np.int8(-128))


def _softmax_build(node: Node, graph: Graph) -> SoftmaxInt8:
    mode = _mode(graph)
    if mode != "fixed":
        raise NotInteger("int8 Softmax is TFLite's fixed-point one (requant float: runs in float)")
    qx = _per_tensor(graph, node.inputs[0], "input")
    qy = _per_tensor(graph, node.outputs[0], "output")
    if qy != SOFTMAX_OUTPUT:
        raise NotInteger("int8 Softmax needs output scale 1/256 and zero point -128")
    rank = len(graph.tensors[node.inputs[0]].shape)
    axis = norm_axis(node.attr("axis", -1), rank)
    if axis != rank - 1 and any(d != 1 for d in graph.tensors[node.inputs[0]].shape[axis + 1:]):
        raise NotInteger("int8 Softmax along an axis other than the last")
    return SoftmaxInt8(mode, qmath.softmax_params(float(qx.scale)), axis)


def _softmax_int8(node: Node, inputs: list, p: SoftmaxInt8) -> list:
    return [R.softmax(inputs[0], p.softmax, axis=p.axis)]


# ----------------------------------------------------------------- Pad
def _pad_build(node: Node, graph: Graph) -> PadInt8:
    mode = _mode(graph)
    q = _same_quant(graph, node)
    if node.attr("mode", "constant") != "constant":
        raise NotInteger(f"int8 Pad mode '{node.attr('mode')}'")
    rank = len(graph.tensors[node.inputs[0]].shape)
    consts = []
    for index in (1, 2, 3):
        name = node.inputs[index] if len(node.inputs) > index else ""
        if name and not graph.tensors[name].is_const:
            raise NotInteger(f"Pad input {index} is not a constant")
        consts.append(graph.tensors[name] if name else None)
    pads = int_list(consts[0].data) if consts[0] is not None else int_list(node.attr("pads"))
    axes = int_list(consts[2].data) if consts[2] is not None else list(range(rank))
    axes = [norm_axis(a, rank) for a in axes]
    width = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        width[axis] = [pads[i], pads[i + len(axes)]]
    if any(v < 0 for pair in width for v in pair):
        raise NotInteger("int8 Pad with negative pads")
    value = consts[1]
    if value is None:
        real = float(node.attr("value", 0.0))
        integer = int(q.zero_point) if real == 0.0 else int(q.quantize(np.float32(real)))
    elif value.quant is not None and value.dtype is DType.INT8:
        integer = int(q.quantize(value.quant.dequantize(value.data).reshape(-1)[:1])[0])
    elif value.quant is None and value.dtype is DType.INT8 and value.is_const:
        integer = int(value.data.reshape(-1)[0])  # a value in the data's integers (onnxruntime's QPad)
    else:
        raise NotInteger("int8 Pad value is not a quantized constant")
    return PadInt8(mode, tuple(tuple(p) for p in width), integer)


def _pad_int8(node: Node, inputs: list, p: PadInt8) -> list:
    return [np.pad(inputs[0], p.pads, mode="constant", constant_values=np.int8(p.value))]


# ----------------------------------------------------------------- Concat
def _concat_build(node: Node, graph: Graph) -> ConcatInt8:
    mode = _mode(graph)
    qy = _per_tensor(graph, node.outputs[0], "output")
    requants = []
    for name in node.inputs:
        q = _per_tensor(graph, name, "input", const_ok=True)
        requants.append(None if q == qy else R.requant_params(*_sz(q), *_sz(qy)))
    rank = len(graph.tensors[node.outputs[0]].shape)
    return ConcatInt8(mode, norm_axis(node.attr("axis", 0), rank), tuple(requants))


def _concat_int8(node: Node, inputs: list, p: ConcatInt8) -> list:
    parts = [x if r is None else R.requantize(x, r, p.mode) for x, r in zip(inputs, p.requants)]
    return [np.concatenate(parts, axis=p.axis)]


# ----------------------------------------------------------------- unary ops through a table
LUT_OPS = ("Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Gelu", "Erf", "Exp",
           "LeakyRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish", "Swish",
           "ThresholdedRelu", "Neg", "Abs", "Sqrt", "Log", "Reciprocal", "Sin", "Cos", "Atan")


def lut_table(node: Node, graph: Graph, fn: Callable[[np.ndarray], np.ndarray], mode: str) -> np.ndarray:
    """256 entries: `fn` (the op's float reference) on every dequantized int8 value, quantized
    again.  Fixed mode rounds half away from zero (TFLite's tables); float mode is ONNX's
    QuantizeLinear (half to even), i.e. exactly "dequantize, apply, quantize"."""
    qx = _per_tensor(graph, node.inputs[0], "input")
    qy = _per_tensor(graph, node.outputs[0], "output")
    if mode == "fixed":
        return qmath.lut_s8(fn, *_sz(qx), *_sz(qy))
    x = qx.dequantize(np.arange(-128, 128, dtype=np.int8))
    with np.errstate(all="ignore"):
        y = np.asarray(fn(x), dtype=np.float32)
    y = np.where(np.isnan(y), 0.0, y).astype(np.float32)
    return qy.quantize(y)


def _lut_build(float_reference):
    def build(node: Node, graph: Graph) -> LutInt8:
        mode = _mode(graph)
        extra = []
        for name in node.inputs[1:]:
            if name and not graph.tensors[name].is_const:
                raise NotInteger(f"{node.op_type} input '{name}' is not a constant")
            extra.append(graph.tensors[name].data if name else None)

        def fn(x: np.ndarray) -> np.ndarray:
            return float_reference(node, [x, *extra])[0]
        return LutInt8(mode, lut_table(node, graph, fn, mode))
    return build


def _lut_int8(node: Node, inputs: list, p: LutInt8) -> list:
    return [R.lut(inputs[0], p.table)]


# ----------------------------------------------------------------- a fused chain as one table
TABLE = "Int8Table"
"""onnx2mcu.Int8Table(x) -> y: y = table[x + 128] (attribute `table`: 256 int8).  Made by
graph_opt/table_fusion.py from a chain of elementwise nodes whose only activation input is x
(GELU's Div/Erf float island and its int8 Add/Muls): the table is the chain's own reference on
every int8 value, so it is exact by construction."""


def _table(node: Node, inputs: list, p=None) -> list:
    return [R.lut(np.asarray(inputs[0]), np.asarray(node.attrs["table"], dtype=np.int8).reshape(256))]


def _table_check(node: Node, graph: Graph) -> str | None:
    table = node.attrs.get("table")
    if table is None or np.asarray(table).size != 256:
        return "table must hold 256 int8 entries"
    return None


register(TABLE, _table, domain="onnx2mcu", dtypes=(QUANT,), inplace_inputs=(0,), quantized=QUANT_INTEGER,
         check=_table_check, infer=lambda node, inputs: [(tuple(inputs[0].shape), DType.INT8)])


# ----------------------------------------------------------------- attach them to the ops
def _attach(op_type: str, build, int8_reference, float_prepare=None, int8_inplace=None) -> None:
    op = lookup(op_type)
    float_reference = op.reference
    takes_params = op.prepare is not None
    prepare, strict = _float_or_int8(float_prepare or op.prepare, build)

    def reference(node: Node, inputs: list, params=None) -> list:
        if isinstance(params, Int8Params):
            return int8_reference(node, inputs, params)
        if takes_params:
            return float_reference(node, inputs, params)
        return float_reference(node, inputs)

    int8_check = _check_of(strict)
    plain_check = op.check
    plain_int8 = op.accepts(0, DType.INT8)

    def check(node: Node, graph: Graph) -> str | None:
        x = graph.tensors[node.inputs[0]] if node.inputs and node.inputs[0] else None
        if x is not None and x.dtype is DType.INT8 and not plain_int8:
            reason = int8_check(node, graph)  # int8 only as quantized values
            if reason:
                return reason
        return plain_check(node, graph) if plain_check is not None else None

    # the int8 kernels take int8 data, int8 weights and int32 biases at any position
    dtypes = tuple(allowed | {DType.INT8, DType.INT32} for allowed in op.dtypes)
    upgrade(op_type, reference=reference, prepare=prepare, int8_check=int8_check, check=check, dtypes=dtypes,
            quantized=QUANT_INTEGER, int8_inplace=int8_inplace)


_attach("Conv", _conv_build, _conv_int8)


# ----------------------------------------------------------------- in-place depthwise Conv
def can_run_in_place(node: Node, graph: Graph) -> bool:
    """An int8 depthwise Conv (group == C_in == C_out, 2-D) whose output plane is no larger than
    its input plane: its in-place kernel (runtime_c/o2m_s8_conv.c, o2m_depthwise_conv2d_s8_inplace)
    computes output channel c into a one-plane scratch, then copies it to channel c's place,
    which lies inside input channels <= c, all already read."""
    if node.op_type != "Conv" or len(node.inputs) < 2 or int8_params(node, graph) is None:
        return False
    x, w, y = (graph.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if len(x.shape) != 4 or len(y.shape) != 4 or len(w.shape) != 4:
        return False
    channels = x.shape[1]
    return (node.attr("group", 1) == channels == w.shape[0] == y.shape[1] and w.shape[1] == 1
            and y.shape[2] * y.shape[3] <= x.shape[2] * x.shape[3])


def inplace_depthwise(node: Node, graph: Graph) -> bool:
    """Whether this node takes the in-place kernel: marked by graph_opt/inplace_conv.py and able."""
    return bool(node.attr(INPLACE_ATTR, 0)) and can_run_in_place(node, graph)


def inplace_conv_scratch(node: Node, graph: Graph) -> int:
    """The in-place depthwise kernel's scratch: one output plane (int8), else nothing."""
    if not inplace_depthwise(node, graph):
        return 0
    y = graph.tensors[node.outputs[0]]
    return y.shape[2] * y.shape[3]


def _conv_shrink(node: Node, graph: Graph) -> tuple[int, ...]:
    # the same bytes or fewer, from the input's first byte on (onnx2mcu/memory.py)
    return (0,) if inplace_depthwise(node, graph) else ()


upgrade("Conv", inplace_shrink=_conv_shrink, scratch_bytes=inplace_conv_scratch)
_attach("Gemm", _gemm_build, _fc_int8)
_attach("MatMul", _matmul_build, _fc_int8)
_attach("Add", _binary_build("add"), _binary_int8("add"))
_attach("Sub", _binary_build("sub"), _binary_int8("sub"))
_attach("Mul", _binary_build("mul"), _binary_int8("mul"))
_attach("AveragePool", _pool_build, _avgpool_int8)
_attach("MaxPool", _pool_build, _maxpool_int8)
_attach("GlobalAveragePool", _global_avg_build, _mean_int8)
_attach("ReduceMean", _reduce_mean_build, _mean_int8)
_attach("Softmax", _softmax_build, _softmax_int8, int8_inplace=())  # o2m_softmax_s8: not in place
_attach("Pad", _pad_build, _pad_int8)
_attach("Concat", _concat_build, _concat_int8)
for _op in LUT_OPS:
    _attach(_op, _lut_build(lookup(_op).reference), _lut_int8)


# ----------------------------------------------------------------- QuantizeLinear at a float edge
@dataclass(frozen=True)
class QuantizeInt8(Int8Params):
    """--requant fixed, in a model with int8 nodes: a float -> int8 QuantizeLinear rounds as TFLite's
    QUANTIZE does (half away from zero; ONNX's QuantizeLinear rounds half to even), so that
    float-input models (MCUNet) equal TFLite Micro."""
    scale: float
    zero_point: int


def _quantize_prepare(node: Node, graph: Graph) -> QuantizeInt8 | None:
    if graph.requant != "fixed" or graph.tensors[node.inputs[0]].dtype is not DType.FLOAT32:
        return None
    y = graph.tensors[node.outputs[0]]
    scale = graph.tensors[node.inputs[1]]
    zero = graph.tensors[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else None
    if y.dtype is not DType.INT8 or not scale.is_const or scale.numel != 1 or (zero is not None and not zero.is_const):
        return None
    # only in a model whose int8 nodes run TFLite's arithmetic; a Q/DQ-only model keeps ONNX's rounding
    if not any(n.op_type != "QuantizeLinear" and int8_params(n, graph) is not None for n in graph.nodes):
        return None
    zp = int(zero.data.reshape(-1)[0]) if zero is not None else 0
    return QuantizeInt8("fixed", float(scale.data.reshape(-1)[0]), zp)


def _quantize_away(x: np.ndarray, p: QuantizeInt8) -> np.ndarray:
    with np.errstate(all="ignore"):
        v = x.astype(np.float32) / np.float32(p.scale)
        a = np.minimum(np.nan_to_num(np.abs(v), nan=0.0), np.float32(1048576.0))
        whole = np.floor(a)  # a - whole is exact: std::round, unlike floor(a + 0.5) in float32
        q = (whole + (a - whole >= np.float32(0.5))).astype(np.int64)
    q = np.where(v < 0, -q, q) + p.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def _attach_quantize() -> None:
    plain = lookup("QuantizeLinear").reference

    def reference(node: Node, inputs: list, params=None) -> list:
        if isinstance(params, QuantizeInt8):
            return [_quantize_away(inputs[0], params)]
        return plain(node, inputs)

    upgrade("QuantizeLinear", reference=reference, prepare=_quantize_prepare)


_attach_quantize()


def int8_params(node: Node, graph: Graph) -> Int8Params | None:
    """The node's int8 Params when it runs on the integers, else None."""
    params = prepared(node, graph)
    return params if isinstance(params, Int8Params) else None


QUANTIZERS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
"""The edges between float and integer values (DynamicQuantizeLinear: onnx2mcu/ops/quant.py)."""


def node_precision(node: Node, graph: Graph) -> str:
    """"int8" for a node computing on quantized integers (its own integer kernel or an op that
    only moves them, or an integer product of dynamic quantization: MatMulInteger, ConvInteger),
    "float" for a compute node on floats, "" for the quantizers at the edges."""
    if node.op_type in QUANTIZERS and node.domain in ("", "ai.onnx"):
        return ""
    names = [n for n in list(node.inputs) + list(node.outputs) if n]
    if int8_params(node, graph) is not None:
        return "int8"
    if node.op_type in INTEGER_PRODUCTS and node.domain in ("", "ai.onnx"):
        return "int8"  # exact int32 sums of 8-bit operands (onnx2mcu/ops/integer.py)
    data = [graph.tensors[n] for n in names if not graph.tensors[n].is_const]
    if data and all(t.quant is not None for t in data):
        return "int8"
    return "float"


__all__ = ["ACT_ATTR", "INPLACE_ATTR", "can_run_in_place", "inplace_depthwise", "inplace_conv_scratch",
           "FUSABLE_ACT_OPS", "QUANTIZERS", "Int8Params", "NotInteger", "int8_params", "node_precision",
           "Tensor"]
