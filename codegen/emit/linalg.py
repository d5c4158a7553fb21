"""C lowering of MatMul (float32, up to 4 broadcast batch dims) and Gemm."""
from __future__ import annotations

from onnx2mcu.codegen.context import (LINALG, broadcast_strides, c_float, dense_strides, prod,
                                      simplify_strided)
from onnx2mcu.codegen.emit.conv import NO_ACT, c_struct
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node


def _emit_matmul(node: Node, ctx) -> list[str]:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    if ctx.dtype(a) is not DType.FLOAT32 or ctx.dtype(b) is not DType.FLOAT32:
        ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(a).value}")
    params = {**matmul_geometry(node, ctx), "act": NO_ACT}
    name = ctx.declare("o2m_matmul_params", c_struct(params), "matmul")
    ctx.need(LINALG)
    return [f"o2m_matmul_f32(&{name}, {ctx.ptr(a)}, {ctx.ptr(b)}, NULL, {ctx.ptr(y)});"]


def matmul_geometry(node: Node, ctx) -> dict:
    """m, n, k and the broadcast batch dims with A's and B's strides along them (numpy.matmul
    of inputs 0 and 1, 1-D operands included): the fields o2m_matmul_params and
    o2m_matmul_integer_params share."""
    a, b = node.inputs[0], node.inputs[1]
    sa, sb = list(ctx.shape(a)), list(ctx.shape(b))
    if len(sa) == 1:
        sa = [1] + sa
    if len(sb) == 1:
        sb = sb + [1]
    m, k, n = sa[-2], sa[-1], sb[-1]
    batch_a, batch_b = sa[:-2], sb[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch_a = [1] * (rank - len(batch_a)) + batch_a
    batch_b = [1] * (rank - len(batch_b)) + batch_b
    batch = [max(p, q) for p, q in zip(batch_a, batch_b)]
    if prod(batch_b) == 1:  # B shared by every batch: one [batch*m, k] x [k, n] product
        m, dims, strides = m * prod(batch_a), [], [[], []]
    else:
        dims, strides = simplify_strided(batch, [
            [s * m * k for s in broadcast_strides(batch_a, batch)],
            [s * k * n for s in broadcast_strides(batch_b, batch)],
            [s * m * n for s in dense_strides(batch)]])
        strides = strides[:2]
    if len(dims) > 4:
        ctx.refuse(node, f"{len(dims)} batch dimensions (the C kernel takes up to 4)")
    pad = [0] * (4 - len(dims))
    return {"m": m, "n": n, "k": k, "batch_rank": len(dims),
            "batch_dims": "{" + ", ".join(str(v) for v in dims + pad) + "}",
            "a_strides": "{" + ", ".join(str(v) for v in strides[0] + pad) + "}",
            "b_strides": "{" + ", ".join(str(v) for v in strides[1] + pad) + "}"}


def gemm_geometry(node: Node, ctx) -> dict:
    """m, n, k, trans_a, trans_b and C's broadcast strides (c_stride_m, c_stride_n: 0 along a
    broadcast dim) of a Gemm node: the fields o2m_gemm_f32 and o2m_memrw_gemm_f32 share."""
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else ""
    trans_a, trans_b = int(bool(node.attr("transA", 0))), int(bool(node.attr("transB", 0)))
    sa, sb = ctx.shape(a), ctx.shape(b)
    m, k = (sa[1], sa[0]) if trans_a else (sa[0], sa[1])
    n = sb[0] if trans_b else sb[1]
    c_stride_m = c_stride_n = 0
    if c:
        sc = [1] * (2 - len(ctx.shape(c))) + list(ctx.shape(c))
        c_stride_m = sc[1] if sc[0] != 1 else 0
        c_stride_n = 1 if sc[1] != 1 else 0
    return {"m": m, "n": n, "k": k, "trans_a": trans_a, "trans_b": trans_b,
            "c_stride_m": c_stride_m, "c_stride_n": c_stride_n}


def _emit_gemm(node: Node, ctx) -> list[str]:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    c = node.inputs[2] if len(node.inputs) > 2 else ""
    geo = gemm_geometry(node, ctx)
    params = {"m": geo["m"], "n": geo["n"], "k": geo["k"], "trans_a": geo["trans_a"],
              "trans_b": geo["trans_b"],
              "alpha": c_float(node.attr("alpha", 1.0)), "beta": c_float(node.attr("beta", 1.0)),
              "c_stride_m": geo["c_stride_m"], "c_stride_n": geo["c_stride_n"], "act": NO_ACT}
    name = ctx.declare("o2m_gemm_params", c_struct(params), "gemm")
    ctx.need(LINALG)
    return [f"o2m_gemm_f32(&{name}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(c)}, {ctx.ptr(y)});"]


register_kernel("MatMul", _emit_matmul, dtypes=(DType.FLOAT32,), sources=(LINALG,))
register_kernel("Gemm", _emit_gemm, dtypes=(DType.FLOAT32,), sources=(LINALG,))
