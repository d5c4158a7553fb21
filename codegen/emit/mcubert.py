"""C lowering of the MCUBERT ops: ClusteredEmbedding, TiledAttention, TiledFFN
(runtime_c/o2m_mcubert.c).

The attention and FFN scratch is the ops' formula in the core (onnx2mcu/ops/mcubert.py),
the one graph_opt/tiling.py sizes tiles with; the kernels take it as it is."""
from __future__ import annotations

from onnx2mcu.codegen.context import MCUBERT as MCUBERT_C
from onnx2mcu.codegen.context import c_float
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops.mcubert import (DOMAIN, META_FIELDS, _attention_node_dims, _ffn_dims,
                                  _mask_strides, attention_tiles, ffn_tiles)


def _c_struct(fields: dict) -> str:
    return "{" + ", ".join(f".{k} = {v}" for k, v in fields.items()) + "}"





def _emit_clemb(node: Node, ctx) -> list[str]:
    ids, id_map, meta, a, p = node.inputs[:5]
    dtype = ctx.dtype(ids)
    if dtype not in (DType.INT64, DType.INT32):
        ctx.refuse(node, f"ids of dtype {dtype.value}")
    n_clusters = ctx.numel(meta) // META_FIELDS
    params = {"vocab": int(node.attr("vocab")), "dim": int(node.attr("dim")),
              "clusters": n_clusters, "map_bytes": int(node.attr("map_bytes", 0))}
    name = ctx.declare("o2m_clemb_params", _c_struct(params), "clemb")
    ctx.need(MCUBERT_C)
    suffix = dtype.suffix
    return [f"o2m_clustered_embedding_{suffix}(&{name}, {ctx.numel(ids)}, {ctx.ptr(ids)}, "
            f"{ctx.ptr(id_map) if id_map else 'NULL'}, {ctx.ptr(meta)}, {ctx.ptr(a)}, "
            f"{ctx.ptr(p)}, {ctx.ptr(node.outputs[0])});"]


def _emit_clemb8(node: Node, ctx) -> list[str]:
    ids, id_map, meta, a, p, scales = node.inputs[:6]
    dtype = ctx.dtype(ids)
    if dtype not in (DType.INT64, DType.INT32):
        ctx.refuse(node, f"ids of dtype {dtype.value}")
    params = {"vocab": int(node.attr("vocab")), "dim": int(node.attr("dim")),
              "clusters": ctx.numel(meta) // META_FIELDS, "map_bytes": int(node.attr("map_bytes", 0))}
    name = ctx.declare("o2m_clemb_params", _c_struct(params), "clemb")
    ctx.need(MCUBERT_C)
    return [f"o2m_clustered_embedding_int8_{dtype.suffix}(&{name}, {ctx.numel(ids)}, {ctx.ptr(ids)}, "
            f"{ctx.ptr(id_map) if id_map else 'NULL'}, {ctx.ptr(meta)}, {ctx.ptr(a)}, {ctx.ptr(p)}, "
            f"{ctx.ptr(scales)}, {int(bool(node.attr('row_scales', 1)))}, {ctx.ptr(node.outputs[0])});"]


def _emit_attention(node: Node, ctx) -> list[str]:
    for name in node.inputs:
        if name and ctx.dtype(name) is not DType.FLOAT32:
            ctx.refuse(node, f"input '{name}' is not float32")
    d = _attention_node_dims(node, ctx.graph)
    tq, tk, cache = attention_tiles(node, d["seq"])
    mask = node.inputs[9] if len(node.inputs) > 9 else ""
    mbs, mrs = _mask_strides(ctx.shape(mask), d["batch"], d["seq"]) if mask else (0, 0)
    params = {"batch": d["batch"], "seq": d["seq"], "hidden": d["hidden"], "heads": d["heads"],
              "head_dim": d["head_dim"], "out_dim": d["out"], "tile_q": tq, "tile_k": tk,
              "cache_kv": cache, "nan_to_zero": int(bool(node.attr("nan_to_zero", 0))),
              "q_scale": c_float(node.attr("q_scale", 1.0)),
              "k_scale": c_float(node.attr("k_scale", 1.0)),
              "s_scale": c_float(node.attr("s_scale", 1.0)),
              "mask_batch_stride": mbs, "mask_row_stride": mrs}
    name = ctx.declare("o2m_attention_params", _c_struct(params), "attention")
    ctx.need(MCUBERT_C)
    args = ", ".join(ctx.ptr(n) if n else "NULL" for n in node.inputs[:9])
    return [f"o2m_tiled_attention_f32(&{name}, {args}, {ctx.ptr(mask) if mask else 'NULL'}, "
            f"{ctx.scratch(node)}, {ctx.ptr(node.outputs[0])});"]


ACT_CODE = {"gelu": 0, "gelu_tanh": 1, "relu": 2}


def _emit_ffn(node: Node, ctx) -> list[str]:
    for name in node.inputs:
        if name and ctx.dtype(name) is not DType.FLOAT32:
            ctx.refuse(node, f"input '{name}' is not float32")
    rows, hidden, inner, out_dim = _ffn_dims(node, ctx.graph)
    tr, tf = ffn_tiles(node, rows, inner)
    params = {"rows": rows, "hidden": hidden, "inner": inner, "out_dim": out_dim, "tile_rows": tr,
              "tile_f": tf, "activation": ACT_CODE[node.attr("activation", "gelu")]}
    name = ctx.declare("o2m_ffn_params", _c_struct(params), "ffn")
    ctx.need(MCUBERT_C)
    args = ", ".join(ctx.ptr(n) if n else "NULL" for n in node.inputs[:5])
    return [f"o2m_tiled_ffn_f32(&{name}, {args}, {ctx.scratch(node)}, {ctx.ptr(node.outputs[0])});"]


register_kernel("ClusteredEmbedding", _emit_clemb, domain=DOMAIN, sources=(MCUBERT_C,))
register_kernel("ClusteredEmbeddingInt8", _emit_clemb8, domain=DOMAIN, sources=(MCUBERT_C,))
register_kernel("TiledAttention", _emit_attention, domain=DOMAIN, sources=(MCUBERT_C,))
register_kernel("TiledFFN", _emit_ffn, domain=DOMAIN, sources=(MCUBERT_C,))
