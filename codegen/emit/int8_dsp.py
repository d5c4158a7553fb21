"""The "arm-dsp" int8 kernels (runtime_c/o2m_s8_conv_dsp.c): Conv (dense and depthwise), fully
connected Gemm, and MatMul (by a constant matrix: the fully connected kernel on its transposed
weights; of two activations: the batched kernel) for cores with the DSP extension
(Cortex-M4/M7/M33/M55).

Selected before the portable kernels on boards whose `Board.kernels` lists "arm-dsp"
(codegen/kernels.py), for the nodes `_applies` accepts; every other node keeps the portable
kernel.  What the emitter does at compile time, so the C does not at run time:
* folds the input zero point into the bias: bias[c] + input_offset * sum(w[c]) (the kernels
  then multiply raw int8 values; padded taps read the zero point, which contributes 0);
* gives the dense conv its scratch (im2col of two pixels, 6 * O2M_DSP_COL(K) bytes) unless
  the pipeline put the node in `Graph.scratch_free` (its scratch would raise the arena's
  peak); then the kernel reads its windows in place through a tap-offset table.  A dense
  3x3 (dilation 1, >= 3 input channels, stride_w 1 or 2) instead gets its
  weights re-laid (`pack_3x3`, `tap_sums_3x3`) for the packed kernel, which needs no scratch.  A 1x1
  stride-1 unpadded conv (plane >= 2) takes 8 * (c_in // 2) bytes instead (its 4x2 tiles'
  operands of one pixel pair; without it they read the input in place), its weights
  re-laid out in the weight blob (pointwise_weights); both re-layouts replace the ONNX-order
  bytes in the blob where the conv is the weights' only reader and the size is the same.  The
  depthwise and fully connected kernels need no scratch, except the in-place depthwise
  variant (an int8 Conv marked by graph_opt/inplace_conv.py: one output plane).
Fixed-point requantization only (`--requant float` keeps the portable kernels).
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.codegen.emit.conv import c_struct
from onnx2mcu.codegen.emit.int8 import batch_matmul_fields
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.int8 import inplace_conv_scratch, inplace_depthwise, int8_params

S8_CONV_DSP = "o2m_s8_conv_dsp.c"
HEADER = "o2m_s8_conv_dsp.h"
BACKEND = "arm-dsp"
INT32_LIMIT = 2 ** 31
MAX_DW_KERNEL = 8


# ----------------------------------------------------------------- what applies
def _const(graph: Graph, name: str):
    if not name:
        return None
    tensor = graph.tensors[name]
    return np.asarray(tensor.data) if tensor.is_const else None


def weights_and_bias(node: Node, graph: Graph, rows: int):
    w = _const(graph, node.inputs[1])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = _const(graph, bias_name) if bias_name else np.zeros(rows, np.int64)
    return w, bias


def folded_bias(w: np.ndarray, bias: np.ndarray, input_offset: int) -> np.ndarray:
    """bias[c] + input_offset * sum(w[c]) as the int32 the C adds (mod 2^32, as the portable
    kernel's int32 accumulator wraps: the final sums agree either way)."""
    rows = w.shape[0]
    sums = w.reshape(rows, -1).astype(np.int64).sum(axis=1)
    folded = np.asarray(bias, np.int64).reshape(-1) + int(input_offset) * sums
    return ((folded + INT32_LIMIT) % (2 * INT32_LIMIT) - INT32_LIMIT).astype(np.int64)


def pointwise_weights(w: np.ndarray) -> np.ndarray:
    """The weights of a dense 1x1 conv re-laid out for the arm-dsp 4x2 pointwise tiles
    (o2m_s8_conv_dsp.h, pw_weights), a permutation of the same bytes: per whole group of
    four output channels, per input channel pair (c, c+1) with c + 1 < c_in, the bytes
    w0(c) w1(c) w0(c+1) w1(c+1) w2(c) w3(c) w2(c+1) w3(c+1), then (odd c_in) the group's
    four weights of the last input channel; then the c_out % 4 last rows in ONNX order."""
    w = np.asarray(w, np.int8).reshape(w.shape[0], -1)
    c_out, c_in = w.shape
    groups, pairs = c_out // 4, c_in // 2
    # [g, h, o, j, c] (channel 4g + 2h + o, input 2j + c) -> [g, j, h, c, o]
    tiles = w[:groups * 4, :pairs * 2].reshape(groups, 2, 2, pairs, 2).transpose(0, 3, 1, 4, 2)
    parts = [tiles.reshape(groups, pairs * 8)]
    if c_in % 2:
        parts.append(w[:groups * 4, c_in - 1].reshape(groups, 4))
    return np.concatenate([np.concatenate(parts, axis=1).reshape(-1), w[groups * 4:].reshape(-1)])


def _is_pointwise(conv, k_h: int, k_w: int, hw_in, hw_out) -> bool:
    return (k_h, k_w) == (1, 1) and tuple(conv.stride) == (1, 1) and not any(conv.pads) \
        and tuple(hw_in) == tuple(hw_out)


def _fixed_int8(node: Node, graph: Graph):
    """(the node's int8 Params, None), or (None, why no fast kernel can take it)."""
    p = int8_params(node, graph)
    if p is None:
        return None, "not an integer node"
    if p.mode != "fixed":
        return None, "fast kernels use the fixed-point requantization (--requant fixed)"
    return p, None


def conv_applies(node: Node, graph: Graph) -> str | None:
    p, why = _fixed_int8(node, graph)
    if why:
        return why
    conv = p.conv
    if conv.filter_offset != 0:
        return "asymmetric weights (filter zero point)"
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if len(x.shape) != 4:
        return "not a 2-D convolution"
    c_in, c_out = x.shape[1], w.shape[0]
    weights, bias = weights_and_bias(node, graph, c_out)
    if weights is None or bias is None:
        return "weights or bias are not constants"
    depthwise = conv.groups == c_in and c_out % c_in == 0 and conv.groups > 1
    if not depthwise and conv.groups != 1:
        return "grouped convolution"
    if depthwise:
        k_h, k_w = w.shape[2], w.shape[3]
        if k_h > MAX_DW_KERNEL or k_w > MAX_DW_KERNEL or tuple(conv.dilation) != (1, 1):
            return f"depthwise {k_h}x{k_w} dilation {conv.dilation} (fast path: up to 8x8, no dilation)"
    return None


def _fc_applies(node: Node, graph: Graph) -> str | None:
    p, why = _fixed_int8(node, graph)
    if why:
        return why
    if p.matmul:
        return "MatMul layout"
    fc = p.fc
    if fc.filter_offset != 0:
        return "asymmetric weights (filter zero point)"
    if len(graph.tensors[node.inputs[0]].shape) != 2:
        return "input not 2-D"
    n = graph.tensors[node.inputs[1]].shape[0]
    weights, bias = weights_and_bias(node, graph, n)
    if weights is None or bias is None:
        return "weights or bias are not constants"
    return None


# ----------------------------------------------------------------- emitters
def requant_fields(ctx, r) -> dict:
    return {"multipliers": ctx.int_array(r.multipliers, "mult"), "shifts": ctx.int_array(r.shifts, "shift"),
            "per_channel": int(np.asarray(r.multipliers).size > 1), "output_offset": r.output_offset,
            "act_min": r.act_min, "act_max": r.act_max}


PACKED_MIN_C_IN = 3


def packs_3x3(groups: int, c_in: int, k_h: int, k_w: int, stride_w: int, dilation) -> bool:
    """Whether a dense conv takes the packed 3x3 kernel (o2m_conv3_packed, no scratch): 3x3,
    dilation 1, stride_w 1 or 2, and at least 3 input channels (an RGB first conv: 3.7
    instructions/MAC against the im2col form's 4.0; with 1 or 2 the fixed cost per output
    dominates either way, and the im2col form stays)."""
    return (groups == 1 and c_in >= PACKED_MIN_C_IN and (k_h, k_w) == (3, 3) and stride_w in (1, 2)
            and tuple(dilation) == (1, 1))


def _packed(node: Node, graph: Graph) -> bool:
    """Whether this dense conv takes the packed 3x3 kernel (with or without scratch: it is
    faster than the im2col form on ResNet-8's 3x3 layers, stride 1 and 2, and needs none)."""
    p = int8_params(node, graph)
    if p is None:
        return False
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    conv = p.conv
    return packs_3x3(conv.groups, x.shape[1], w.shape[2], w.shape[3], conv.stride[1], conv.dilation)


def pack_3x3(w: np.ndarray) -> np.ndarray:
    """The weights [c_out][c_in][3][3] in the layout of o2m_s8_conv_dsp.h (`packed`): per four
    output channels, per two input channels, per tap, 8 bytes (zeros past c_out / c_in)."""
    c_out, c_in = w.shape[:2]
    g, j = (c_out + 3) // 4, (c_in + 1) // 2
    full = np.zeros((4 * g, 2 * j, 9), np.int8)
    full[:c_out, :c_in] = np.asarray(w, np.int8).reshape(c_out, c_in, 9)
    # [g][oc4][j][ic2][t] -> [g][j][t][oc_half(2)][ic2][oc_in_half(2)]
    t = full.reshape(g, 2, 2, j, 2, 9).transpose(0, 3, 5, 1, 4, 2)
    return np.ascontiguousarray(t).reshape(-1)


def tap_sums_3x3(w: np.ndarray) -> np.ndarray:
    """Per output channel, per tap kh * 3 + kw: the sum of its weights over the input channels
    (the bias of a window that skips taps leaving the input, o2m_c3_bias)."""
    return np.asarray(w, np.int64).sum(axis=1).reshape(-1)


def _emit_conv(node: Node, ctx) -> list[str]:
    p = int8_params(node, ctx.graph)
    conv = p.conv
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    n, c_in, h_in, w_in = ctx.shape(x)
    c_out, _, k_h, k_w = ctx.shape(w)
    _, _, h_out, w_out = ctx.shape(y)
    if (h_out, w_out) != tuple(p.window.out):
        ctx.refuse(node, "output shape differs from the window rule")
    weights, bias = weights_and_bias(node, ctx.graph, c_out)
    folded = folded_bias(weights, bias, conv.input_offset)
    depthwise = conv.groups > 1
    taps = "NULL"
    if not depthwise:
        ic, kh, kw = np.meshgrid(np.arange(c_in), np.arange(k_h), np.arange(k_w), indexing="ij")
        offsets = ic * h_in * w_in + kh * conv.dilation[0] * w_in + kw * conv.dilation[1]
        taps = ctx.int_array(offsets.reshape(-1), "taps")
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    fields = {"n": n, "c_in": c_in, "h_in": h_in, "w_in": w_in, "c_out": c_out, "h_out": h_out,
              "w_out": w_out, "k_h": k_h, "k_w": k_w, "stride_h": conv.stride[0], "stride_w": conv.stride[1],
              "dil_h": conv.dilation[0], "dil_w": conv.dilation[1], "pad_top": conv.pads[0],
              "pad_left": conv.pads[1], "pad_value": -conv.input_offset,
              "bias": ctx.int_array(folded, "bias_folded"), "raw_bias": ctx.ptr(bias_name), "taps": taps,
              "requant": requant_fields(ctx, conv), "pw_weights": "NULL"}
    if not depthwise and _packed(node, ctx.graph):
        # in the weight blob in place of the ONNX order where this node is the weights' only
        # reader and the packed form has their size (c_out % 4 == 0, even c_in), else a copy
        packed = pack_3x3(weights)
        fields["packed"] = ctx.ptr(w) if ctx.relayout_const(w, node, packed) else \
            ctx.int_array(packed, "w_packed", ctype="int8_t")
        fields["tap_sums"] = ctx.int_array(tap_sums_3x3(weights), "tap_sums")
    elif not depthwise and _is_pointwise(conv, k_h, k_w, (h_in, w_in), (h_out, w_out)) and h_in * w_in >= 2:
        # the 4x2 tiles' order, in the weight blob in place of the ONNX one where this node is
        # the weights' only reader (the kernel then reads only pw_weights), else a copy
        relaid = pointwise_weights(weights)
        fields["pw_weights"] = ctx.ptr(w) if ctx.relayout_const(w, node, relaid) else \
            ctx.int_array(relaid, "pw_weights", "int8_t")
    name = ctx.declare("o2m_conv2d_s8_dsp_params", c_struct(fields), "conv_dsp")
    ctx.need(S8_CONV_DSP)
    ctx.include(HEADER)
    fn = "o2m_depthwise_conv2d_s8_dsp" if depthwise else "o2m_conv2d_s8_dsp"
    if inplace_depthwise(node, ctx.graph):  # may write over its input (graph_opt/inplace_conv.py)
        fn += "_inplace"
    elif ctx.same_bytes(x, y):
        ctx.refuse(node, "output placed over the input of an int8 Conv without the in-place kernel")
    scratch = ctx.scratch(node, DType.INT8) if _conv_scratch(node, ctx.graph) else "NULL"
    return [f"{fn}(&{name}, {ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(y)}, {scratch});"]


def _emit_fc(node: Node, ctx) -> list[str]:
    p = int8_params(node, ctx.graph)
    fc = p.fc
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    batch, k = ctx.shape(a)
    n = ctx.shape(b)[0]
    weights, bias = weights_and_bias(node, ctx.graph, n)
    folded = folded_bias(weights, bias, fc.input_offset)
    fields = {"batch": batch, "in_features": k, "out_features": n,
              "bias": ctx.int_array(folded, "bias_folded"), "requant": requant_fields(ctx, fc)}
    name = ctx.declare("o2m_fully_connected_s8_dsp_params", c_struct(fields), "fc_dsp")
    ctx.need(S8_CONV_DSP)
    ctx.include(HEADER)
    return [f"o2m_fully_connected_s8_dsp(&{name}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)});"]


BMM_MAX_K = 512  # O2M_BMM_DSP_MAX_K (o2m_s8_conv_dsp.h)


def _const_matrix(node: Node, graph: Graph) -> bool:
    b = graph.tensors[node.inputs[1]]
    return b.is_const and len(b.shape) == 2


def _matmul_applies(node: Node, graph: Graph) -> str | None:
    """A MatMul by a constant [K, N] matrix (a transformer's projections) is a fully connected
    layer over all the rows of A: the FC kernel takes it with the weights transposed (symmetric
    weights).  A MatMul of two activations (attention's Q K^T, P V) takes the batched kernel."""
    p, why = _fixed_int8(node, graph)
    if why:
        return why
    if not p.matmul:
        return "not a MatMul"
    if _const_matrix(node, graph):
        return "asymmetric weights (filter zero point)" if p.fc.filter_offset != 0 else None
    k = graph.tensors[node.inputs[0]].shape[-1]
    return f"reduction of {k} (fast path: up to {BMM_MAX_K})" if k > BMM_MAX_K else None


def _emit_matmul(node: Node, ctx) -> list[str]:
    if _const_matrix(node, ctx.graph):
        return _emit_matmul_fc(node, ctx)
    fields = batch_matmul_fields(node, ctx, int8_params(node, ctx.graph))
    name = ctx.declare("o2m_batch_matmul_s8_params", c_struct(fields), "matmul_s8")
    ctx.need(S8_CONV_DSP)
    ctx.include(HEADER)
    return [f"o2m_batch_matmul_s8_dsp(&{name}, {ctx.ptr(node.inputs[0])}, {ctx.ptr(node.inputs[1])}, "
            f"{ctx.ptr(node.outputs[0])});"]


def _emit_matmul_fc(node: Node, ctx) -> list[str]:
    fc = int8_params(node, ctx.graph).fc
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    k, n = ctx.shape(b)
    weights = np.ascontiguousarray(np.asarray(ctx.tensor(b).data, dtype=np.int8).T)  # [N, K]: FC rows
    # in the weight blob in place of the [K, N] ones where this node is their only reader
    w_ptr = ctx.ptr(b) if ctx.relayout_const(b, node, weights) else \
        ctx.int_array(weights.reshape(-1), "fc_weights", "int8_t")
    folded = folded_bias(weights, np.zeros(n, np.int64), fc.input_offset)
    fields = {"batch": ctx.numel(a) // k, "in_features": k, "out_features": n,
              "bias": ctx.int_array(folded, "bias_folded"), "requant": requant_fields(ctx, fc)}
    name = ctx.declare("o2m_fully_connected_s8_dsp_params", c_struct(fields), "fc_dsp")
    ctx.need(S8_CONV_DSP)
    ctx.include(HEADER)
    return [f"o2m_fully_connected_s8_dsp(&{name}, {ctx.ptr(a)}, {w_ptr}, {ctx.ptr(y)});"]


def col_bytes(k: int) -> int:
    """O2M_DSP_COL: one im2col column, rounded up to whole words."""
    return (k + 3) // 4 * 4


def _conv_scratch(node: Node, graph: Graph) -> int:
    """O2M_DSP_CONV_SCRATCH(K) for a dense conv not in Graph.scratch_free, one output plane
    for the in-place depthwise kernel (always: it is what makes it in place), else 0."""
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    p = int8_params(node, graph)
    if p is not None and inplace_depthwise(node, graph):
        return inplace_conv_scratch(node, graph)
    if p is None or p.conv.groups > 1 or node.name in graph.scratch_free:
        return 0
    if _packed(node, graph):
        return 0  # o2m_conv3_packed needs none
    hw = tuple(x.shape[2:])
    if _is_pointwise(p.conv, w.shape[2], w.shape[3], hw, hw) and hw[0] * hw[1] >= 2:
        # O2M_DSP_PW_SCRATCH: the 4x2 tiles' operands of one pixel pair (less than the
        # im2col columns; without it they read the input in place)
        return 8 * (x.shape[1] // 2)
    return 6 * col_bytes(x.shape[1] * w.shape[2] * w.shape[3])


register_kernel("Conv", _emit_conv, dtypes=(DType.INT8,), backend=BACKEND, sources=(S8_CONV_DSP,),
                applies=conv_applies, scratch_bytes=_conv_scratch)
register_kernel("Gemm", _emit_fc, dtypes=(DType.INT8,), backend=BACKEND, sources=(S8_CONV_DSP,),
                applies=_fc_applies, scratch_bytes=lambda node, graph: 0)
register_kernel("MatMul", _emit_matmul, dtypes=(DType.INT8,), backend=BACKEND, sources=(S8_CONV_DSP,),
                applies=_matmul_applies, scratch_bytes=lambda node, graph: 0)
