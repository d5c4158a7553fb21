"""C lowering of the int8 nodes onto runtime_c/o2m_s8_* (portable C99).

Every emitter reads the node's prepared Params (onnx2mcu/ops/int8.py; the same object the
simulator's reference reads) and turns them into the kernels' parameter structs; the
per-channel multipliers and shifts (or, with --requant float, the float scales) and the
lookup tables become const tables in model.c.  Nothing here computes a scale.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.codegen.context import broadcast_strides, prod, simplify_strided
from onnx2mcu.codegen.emit.conv import c_struct
from onnx2mcu.codegen.kernel_registry import register_int8_kernel, register_kernel
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops import int8 as Q
from onnx2mcu.ops.int8 import int8_params

S8_CONV, S8_ELEMENTWISE, S8_POOL, S8_SOFTMAX = (
    "o2m_s8_conv.c", "o2m_s8_elementwise.c", "o2m_s8_pool.c", "o2m_s8_softmax.c")
HEADER = {S8_CONV: "o2m_s8_conv.h", S8_ELEMENTWISE: "o2m_s8_elementwise.h", S8_POOL: "o2m_s8_pool.h",
          S8_SOFTMAX: "o2m_s8_softmax.h"}


def _runs_int8(node: Node, graph: Graph) -> bool:
    return int8_params(node, graph) is not None


def _use(ctx, source: str) -> None:
    ctx.need(source)
    ctx.include(HEADER[source])


def _requant(ctx, p, mode: str) -> dict:
    """An o2m_s8_requant from an int8_ref ConvParams / FCParams."""
    per_channel = int(p.multipliers.size > 1)
    scales = ctx.float_array(p.float_scales, "scales") if mode == "float" else "NULL"
    return {"multipliers": ctx.int_array(p.multipliers, "mult"), "shifts": ctx.int_array(p.shifts, "shift"),
            "scales": scales, "per_channel": per_channel, "output_offset": p.output_offset,
            "act_min": p.act_min, "act_max": p.act_max}


# ----------------------------------------------------------------- Conv
def _emit_conv(node: Node, ctx) -> list[str]:
    p: Q.ConvInt8 = int8_params(node, ctx.graph)
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    n, c_in, h_in, w_in = ctx.shape(x)
    c_out, _, k_h, k_w = ctx.shape(w)
    _, _, h_out, w_out = ctx.shape(y)
    conv = p.conv
    if (h_out, w_out) != tuple(p.window.out):
        ctx.refuse(node, "output shape differs from the window rule")
    fields = {"n": n, "c_in": c_in, "h_in": h_in, "w_in": w_in, "c_out": c_out, "h_out": h_out,
              "w_out": w_out, "k_h": k_h, "k_w": k_w, "stride_h": conv.stride[0], "stride_w": conv.stride[1],
              "dil_h": conv.dilation[0], "dil_w": conv.dilation[1], "pad_top": conv.pads[0],
              "pad_left": conv.pads[1], "groups": conv.groups, "input_offset": conv.input_offset,
              "requant": _requant(ctx, conv, p.mode)}
    if conv.filter_offset:
        fields["filter_offset"] = conv.filter_offset
    name = ctx.declare("o2m_conv2d_s8_params", c_struct(fields), "conv_s8")
    _use(ctx, S8_CONV)
    if Q.inplace_depthwise(node, ctx.graph):  # may write over its input (graph_opt/inplace_conv.py)
        return [f"o2m_depthwise_conv2d_s8_inplace(&{name}, {ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(bias)}, "
                f"{ctx.ptr(y)}, {ctx.scratch(node, DType.INT8)});"]
    if ctx.same_bytes(x, y):
        ctx.refuse(node, "output placed over the input of an int8 Conv without the in-place kernel")
    return [f"o2m_conv2d_s8(&{name}, {ctx.ptr(x)}, {ctx.ptr(w)}, {ctx.ptr(bias)}, {ctx.ptr(y)});"]


# ----------------------------------------------------------------- Gemm / MatMul
def _emit_fc(node: Node, ctx) -> list[str]:
    p: Q.FCInt8 = int8_params(node, ctx.graph)
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    fc = p.fc
    _use(ctx, S8_CONV)
    if not p.matmul:
        batch, k = ctx.shape(a)
        n = ctx.shape(b)[0]
        fields = {"batch": batch, "in_features": k, "out_features": n, "input_offset": fc.input_offset,
                  "filter_offset": fc.filter_offset, "requant": _requant(ctx, fc, p.mode)}
        name = ctx.declare("o2m_fully_connected_s8_params", c_struct(fields), "fc_s8")
        return [f"o2m_fully_connected_s8(&{name}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(bias)}, {ctx.ptr(y)});"]
    name = ctx.declare("o2m_batch_matmul_s8_params", c_struct(batch_matmul_fields(node, ctx, p)), "matmul_s8")
    return [f"o2m_batch_matmul_s8(&{name}, {ctx.ptr(a)}, {ctx.ptr(b)}, NULL, {ctx.ptr(y)});"]


def batch_matmul_fields(node: Node, ctx, p) -> dict:
    """o2m_batch_matmul_s8_params of an int8 MatMul (the portable and the arm-dsp kernel's)."""
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    fc = p.fc
    sa, sb, sy = ctx.shape(a), ctx.shape(b), ctx.shape(y)
    m, k, n = sa[-2], sa[-1], sb[-1]
    batch = prod(sy[:-2])
    strides = []
    for shape, size in ((sa, m * k), (sb, k * n)):
        count = prod(shape[:-2])
        if count == batch:
            # equal batch counts: the same batch dims (broadcasting of size-1 dims aside)
            if tuple(shape[:-2]) != tuple(sy[len(sy) - len(shape):-2]) and count != 1:
                ctx.refuse(node, "int8 MatMul with partly broadcast batch dims")
            strides.append(size if count > 1 else 0)
        elif count == 1:
            strides.append(0)
        else:
            ctx.refuse(node, "int8 MatMul with partly broadcast batch dims")
    return {"batch": batch, "m": m, "n": n, "k": k, "a_batch_stride": strides[0], "b_batch_stride": strides[1],
            "a_offset": fc.input_offset, "b_offset": fc.filter_offset, "requant": _requant(ctx, fc, p.mode)}


# ----------------------------------------------------------------- Add / Sub / Mul
def _emit_binary(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        p = int8_params(node, ctx.graph)
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        out = ctx.shape(y)
        dims, (sa, sb) = simplify_strided(list(out), [broadcast_strides(ctx.shape(a), out),
                                                      broadcast_strides(ctx.shape(b), out)])
        if len(dims) > 6:
            ctx.refuse(node, f"int8 {node.op_type} over {len(dims)} dims (the kernel takes up to 6)")
        float_mode = int(p.mode == "float")
        if kernel == "mul":
            m = p.mul
            fields = {"input1_offset": m.input1_offset, "input2_offset": m.input2_offset,
                      "output_offset": m.output_offset, "output_multiplier": m.output_multiplier,
                      "output_shift": m.output_shift, "act_min": m.act_min, "act_max": m.act_max,
                      "float_mode": float_mode, "float_scale": _f(m.float_scale)}
            ctype = "o2m_mul_s8_params"
        else:
            s = p.add
            fields = {"input1_offset": s.input1_offset, "input2_offset": s.input2_offset,
                      "output_offset": s.output_offset, "left_shift": s.left_shift,
                      "input1_multiplier": s.input1_multiplier, "input1_shift": s.input1_shift,
                      "input2_multiplier": s.input2_multiplier, "input2_shift": s.input2_shift,
                      "output_multiplier": s.output_multiplier, "output_shift": s.output_shift,
                      "act_min": s.act_min, "act_max": s.act_max, "float_mode": float_mode,
                      "ratio_a": _f(s.ratio_a), "ratio_b": _f(s.ratio_b), "float_offset": _f(s.float_offset),
                      "float_offset_sub": _f(s.float_offset_sub)}
            for side in ("a", "b", "y"):
                if getattr(s, f"value_offset_{side}"):
                    fields[f"value_offset_{side}"] = getattr(s, f"value_offset_{side}")
            if s.float_swap and float_mode and kernel == "add":
                fields["float_swap"] = 1
            ctype = "o2m_add_s8_params"
        name = ctx.declare(ctype, c_struct(fields), f"{kernel}_s8")
        _use(ctx, S8_ELEMENTWISE)
        return [f"o2m_{kernel}_s8(&{name}, {len(dims)}, {ctx.int_array(dims)}, {ctx.int_array(sa, 'strides')}, "
                f"{ctx.int_array(sb, 'strides')}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)});"]
    return emit


def _f(value: float) -> str:
    from onnx2mcu.codegen.context import c_float

    return c_float(value)


# ----------------------------------------------------------------- unary ops (tables)
def _emit_table(node: Node, ctx) -> list[str]:
    """onnx2mcu.Int8Table: a fused elementwise chain's 256 entries (graph_opt/table_fusion.py)."""
    x, y = node.inputs[0], node.outputs[0]
    table = ctx.int_array(np.asarray(node.attrs["table"]).reshape(-1), "lut", ctype="int8_t")
    _use(ctx, S8_ELEMENTWISE)
    return [f"o2m_lut_s8({ctx.numel(y)}, {ctx.ptr(x)}, {table}, {ctx.ptr(y)});"]



def _emit_lut(node: Node, ctx) -> list[str]:
    p: Q.LutInt8 = int8_params(node, ctx.graph)
    x, y = node.inputs[0], node.outputs[0]
    table = ctx.int_array(p.table, "lut", ctype="int8_t")
    _use(ctx, S8_ELEMENTWISE)
    return [f"o2m_lut_s8({ctx.numel(y)}, {ctx.ptr(x)}, {table}, {ctx.ptr(y)});"]


# ----------------------------------------------------------------- pools and means
def _emit_pool(kernel: str):
    def emit(node: Node, ctx) -> list[str]:
        p: Q.PoolInt8 = int8_params(node, ctx.graph)
        if isinstance(p, Q.MeanInt8):  # a whole-plane AveragePool: the spatial mean (fixed) or a global pool (float)
            return _emit_mean(node, ctx)
        x, y = node.inputs[0], node.outputs[0]
        n, c, h_in, w_in = ctx.shape(x)
        _, _, h_out, w_out = ctx.shape(y)
        pool = p.pool
        fields = {"n": n, "c": c, "h_in": h_in, "w_in": w_in, "h_out": h_out, "w_out": w_out,
                  "k_h": pool.kernel[0], "k_w": pool.kernel[1], "stride_h": pool.stride[0],
                  "stride_w": pool.stride[1], "pad_top": pool.pads[0], "pad_left": pool.pads[1],
                  "act_min": pool.act_min, "act_max": pool.act_max,
                  "count_include_pad": int(pool.count_include_pad),
                  "pad_value": p.input_zero_point if kernel == "avgpool2d" else 0}
        name = ctx.declare("o2m_pool2d_s8_params", c_struct(fields), "pool_s8")
        _use(ctx, S8_POOL)
        return [f"o2m_{kernel}_s8(&{name}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    return emit


def _emit_mean(node: Node, ctx) -> list[str]:
    p: Q.MeanInt8 = int8_params(node, ctx.graph)
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    first, last = p.axes[0], p.axes[-1]
    outer, reduce, inner = prod(shape[:first]), prod(shape[first:last + 1]), prod(shape[last + 1:])
    m = p.mean
    fields = {"method": f"O2M_S8_MEAN_{m.method.upper()}",
              "input_zero_point": m.input_zero_point, "output_zero_point": m.output_zero_point,
              "multiplier": m.multiplier, "shift": m.shift}
    if m.method == "float":
        fields["scale"] = _f(m.float_scale)
    name = ctx.declare("o2m_mean_s8_params", c_struct(fields), "mean_s8")
    _use(ctx, S8_POOL)
    return [f"o2m_mean_s8(&{name}, {outer}, {reduce}, {inner}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def _emit_softmax(node: Node, ctx) -> list[str]:
    p: Q.SoftmaxInt8 = int8_params(node, ctx.graph)
    x, y = node.inputs[0], node.outputs[0]
    if ctx.same_bytes(x, y):
        ctx.refuse(node, "int8 Softmax in place")  # the planner does not do it (OpDef.int8_inplace)
    shape = ctx.shape(x)
    outer, inner = prod(shape[:p.axis]), prod(shape[p.axis + 1:])
    s = p.softmax
    fields = {"input_multiplier": s.input_multiplier, "input_left_shift": s.input_left_shift,
              "diff_min": s.diff_min}
    name = ctx.declare("o2m_softmax_s8_params", c_struct(fields), "softmax_s8")
    _use(ctx, S8_SOFTMAX)
    return [f"o2m_softmax_s8(&{name}, {outer}, {shape[p.axis]}, {inner}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


# ----------------------------------------------------------------- Concat with requantization
def _emit_concat(node: Node, ctx, plain) -> list[str]:
    p: Q.ConcatInt8 = int8_params(node, ctx.graph)
    if all(r is None for r in p.requants):
        return plain(node, ctx)
    y = node.outputs[0]
    shape = ctx.shape(y)
    if prod(shape[:p.axis]) != 1:
        ctx.refuse(node, "int8 Concat requantizing inputs along an inner axis")
    code, offset = [], 0
    for name, r in zip(node.inputs, p.requants):
        count = ctx.numel(name)
        if r is None:
            code.append(f"memcpy({ctx.ptr(y, offset)}, {ctx.ptr(name)}, {count}u);")
        else:
            fields = {"input_offset": r.input_offset, "output_offset": r.output_offset,
                      "multiplier": r.multiplier, "shift": r.shift, "float_mode": int(p.mode == "float"),
                      "scale": _f(r.float_scale)}
            params = ctx.declare("o2m_requantize_s8_params", c_struct(fields), "requant_s8")
            _use(ctx, S8_ELEMENTWISE)
            code.append(f"o2m_requantize_s8(&{params}, {count}, {ctx.ptr(name)}, {ctx.ptr(y, offset)});")
        offset += count
    return code


# ----------------------------------------------------------------- registrations
def _register() -> None:
    from onnx2mcu.codegen.kernel_registry import kernel_for

    register_int8_kernel("Conv", _emit_conv, _runs_int8, (S8_CONV,))
    register_int8_kernel("Gemm", _emit_fc, _runs_int8, (S8_CONV,))
    register_int8_kernel("MatMul", _emit_fc, _runs_int8, (S8_CONV,))
    for op_type, kernel in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul")):
        register_int8_kernel(op_type, _emit_binary(kernel), _runs_int8, (S8_ELEMENTWISE,))
    register_int8_kernel("AveragePool", _emit_pool("avgpool2d"), _runs_int8, (S8_POOL,))
    register_int8_kernel("MaxPool", _emit_pool("maxpool2d"), _runs_int8, (S8_POOL,))
    register_int8_kernel("GlobalAveragePool", _emit_mean, _runs_int8, (S8_POOL,))
    register_int8_kernel("ReduceMean", _emit_mean, _runs_int8, (S8_POOL,))
    register_int8_kernel("Softmax", _emit_softmax, _runs_int8, (S8_SOFTMAX,))
    for op_type in Q.LUT_OPS:
        register_int8_kernel(op_type, _emit_lut, _runs_int8, (S8_ELEMENTWISE,))
    plain_concat = kernel_for("Concat", DType.INT8)
    register_int8_kernel("Concat", lambda node, ctx: _emit_concat(node, ctx, plain_concat.emit), _runs_int8,
                         (S8_ELEMENTWISE,))
    # Pad: the byte-moving kernel with the prepared integer pad value (codegen/emit/shape.py)


_register()
register_kernel(Q.TABLE, _emit_table, domain="onnx2mcu", dtypes=(DType.INT8,), sources=(S8_ELEMENTWISE,))
