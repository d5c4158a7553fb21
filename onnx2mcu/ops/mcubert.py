"""MCUBERT ops (DESIGN §5): clustered low-rank embedding lookup, tiled attention, tiled FFN.

All three live in the "onnx2mcu" domain and are made by graph_opt passes
(graph_opt/embedding.py and graph_opt/tiling.py), never by a model file.

ClusteredEmbedding(ids, id_map, meta, factors_a, factors_p) -> [*ids.shape, dim]
    The rows of an embedding table are grouped into clusters; cluster c holds
    rows start_c .. start_c+count_c-1 of the *cluster order* and stores its mean
    row mu_c (dim floats) and a rank-r_c factorisation A_c [count_c, r_c] x
    P_c [r_c, dim].  Token id t sits at position pos(t) of the cluster order:
    pos(t) = id_map[t] (an unsigned little-endian integer of `map_bytes` bytes)
    or pos(t) = t when `map_bytes` is 0 (one cluster, no map).  Its row is
    mu_c + A_c[pos - start_c] @ P_c.  `meta` is int32 [clusters, 5]:
    (start, count, rank, offset of A_c in factors_a, offset of mu_c in
    factors_p; P_c follows mu_c).  One token at a time: r_c*dim MACs each.
    Negative ids count from the end as in Gather; ids out of range give zeros.

ClusteredEmbeddingInt8(ids, id_map, meta, a_q, p_q, scales) -> [*ids.shape, dim]
    The same layout with int8 factors (opt-in, lossy): a_q and p_q are int8 at the
    offsets of factors_a / factors_p; scales is float32: (basis scale s_p, mean scale
    s_mu) of cluster c at 2c, 2c+1, then the scale s_a of the A row at cluster-order
    position pos at 2*clusters + pos (`row_scales` 1, the default), or of cluster c's
    whole A block at 2*clusters + c (`row_scales` 0).  Row:
    acc_d = sum_k a_q[k] * p_q[k][d] (int32, exact), then in float32
    y_d = float(acc_d) * (s_a * s_p) + s_mu * float(mu_q[d]).

TiledAttention(x, wq, bq, wk, bk, wv, bv, wo, bo, mask) -> [B, S, out]
    Multi-head self-attention including the output projection:
    y = concat_h(softmax(s_scale * (q_scale*Q_h)(k_scale*K_h)^T + mask) V_h) @ wo + bo
    with Q = x@wq + bq etc.  Heads run one at a time; query rows in tiles of
    `tile_q`; each score row is complete (exact softmax over all S keys).
    With `cache_kv` K_h and V_h are computed once per head (scratch 2*S*dh);
    without, query tiles are the outer loop and K_h, V_h are recomputed for
    every (tile, head) in chunks of `tile_k` key rows (scratch tile_k*dh):
    less RAM, more MACs.  Then a tile may also borrow the rows of the output
    that are not written yet as its scratch, which makes the early tiles much
    larger than `tile_q` (see `attention_tile_plan`).  `mask` is an additive
    float mask broadcastable to [B, 1, S, S] (or omitted).  `nan_to_zero`
    replaces NaN probabilities by 0 (the exporters' guard after Softmax).

TiledFFN(x, w1, b1, w2, b2) -> [.., out]
    y = act(x@w1 + b1) @ w2 + b2, computed over tiles of `tile_rows` rows and
    `tile_f` columns of the inner dimension; each tile's contribution is
    accumulated into y, so the [rows, ffn] intermediate never exists whole.
    `activation`: "gelu" (erf form, x*(erf(x/sqrt 2)+1)*0.5), "gelu_tanh", "relu".

The numpy references compute what the C kernels (runtime_c/o2m_mcubert.c) compute,
rounded to float32 where the kernels store values.  Tiles never change a value (each
query row, each inner activation is computed on its own, and split sums continue in
order), so the references do not loop over tiles; the tile sizes matter for memory
(`scratch_bytes`), work (`macs`) and the C loops, which tests/test_mcubert_c.py checks
against these references on random tile sizes.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops.registry import FLOAT, INDEX, QUANT, register

DOMAIN = "onnx2mcu"
F4 = 4  # bytes of a float32
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


# ----- ClusteredEmbedding --------------------------------------------------
META_FIELDS = 5  # start, count, rank, a_offset, p_offset


def embedding_positions(ids: np.ndarray, id_map: np.ndarray | None, map_bytes: int,
                        vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(position in cluster order, valid) for each id (negative ids count from the end)."""
    flat = np.asarray(ids).astype(np.int64).reshape(-1)
    flat = np.where(flat < 0, flat + vocab, flat)
    valid = (flat >= 0) & (flat < vocab)
    safe = np.where(valid, flat, 0)
    if map_bytes == 0 or id_map is None:
        return safe, valid
    raw = np.asarray(id_map, dtype=np.uint8).reshape(vocab, map_bytes).astype(np.int64)
    pos = np.zeros(vocab, dtype=np.int64)
    for byte in range(map_bytes):
        pos |= raw[:, byte] << (8 * byte)
    return pos[safe], valid


def _by_cluster(positions: np.ndarray, meta: np.ndarray):
    """Per cluster holding any of `positions` (cluster order): (c, its meta row (start, count,
    rank, a_off, p_off), the indices into `positions`, their rows within the cluster)."""
    cluster = np.searchsorted(meta[:, 0], positions, side="right") - 1
    for c in np.unique(cluster):
        fields = tuple(int(v) for v in meta[c])
        sel = np.nonzero(cluster == c)[0]
        yield int(c), fields, sel, positions[sel] - fields[0]


def reconstruct_rows(positions: np.ndarray, meta: np.ndarray, a: np.ndarray, p: np.ndarray,
                     dim: int) -> np.ndarray:
    """Rows (float32) at `positions` of the cluster order, as the C kernel computes them."""
    meta = np.asarray(meta, dtype=np.int64).reshape(-1, META_FIELDS)
    out = np.zeros((positions.size, dim), dtype=np.float32)
    for _, (_, count, rank, a_off, p_off), sel, rows in _by_cluster(positions, meta):
        mu = p[p_off: p_off + dim].astype(np.float64)
        acc = np.zeros((sel.size, dim))
        if rank:
            coef = a[a_off: a_off + count * rank].reshape(count, rank)[rows].astype(np.float64)
            basis = p[p_off + dim: p_off + dim + rank * dim].reshape(rank, dim).astype(np.float64)
            acc = (coef @ basis).astype(np.float32).astype(np.float64)
        out[sel] = (acc + mu).astype(np.float32)
    return out


def _clemb(node: Node, inputs: list) -> list:
    ids, id_map, meta, a, p = inputs[:5]
    vocab, dim, map_bytes = node.attr("vocab"), node.attr("dim"), node.attr("map_bytes", 0)
    pos, valid = embedding_positions(ids, id_map, map_bytes, vocab)
    rows = reconstruct_rows(pos, meta, np.asarray(a, np.float32).reshape(-1),
                            np.asarray(p, np.float32).reshape(-1), dim)
    rows[~valid] = 0.0
    return [rows.reshape(tuple(np.shape(ids)) + (dim,))]


def _clemb_infer(node: Node, inputs: list[Tensor]) -> list:
    return [(tuple(inputs[0].shape) + (int(node.attr("dim")),), DType.FLOAT32)]


def _clemb_macs(node: Node, graph: Graph) -> int:
    meta = graph.tensors[node.inputs[2]].data
    tokens = graph.tensors[node.inputs[0]].numel
    if meta is None:
        return 0
    meta = np.asarray(meta).reshape(-1, META_FIELDS)
    weights = meta[:, 1].astype(np.float64)
    mean_rank = float((meta[:, 2] * weights).sum() / max(weights.sum(), 1.0))
    return int(round(tokens * mean_rank * int(node.attr("dim"))))


def _clemb_check(node: Node, graph: Graph) -> str | None:
    if node.attr("map_bytes", 0) not in (0, 1, 2, 3, 4):
        return "map_bytes must be 0..4"
    for i in (1, 2, 3, 4):
        if node.inputs[i] and not graph.tensors[node.inputs[i]].is_const:
            return f"input {i} must be a constant"
    return None


register("ClusteredEmbedding", _clemb, domain=DOMAIN, dtypes=(INDEX, QUANT, INDEX, FLOAT, FLOAT),
         infer=_clemb_infer, macs=_clemb_macs, check=_clemb_check,
         index_rows=lambda node, graph: {0: int(node.attr("vocab"))})


def reconstruct_rows_int8(positions: np.ndarray, meta: np.ndarray, a_q: np.ndarray, p_q: np.ndarray,
                          scales: np.ndarray, dim: int, row_scales: bool = True) -> np.ndarray:
    """Rows (float32) of an int8-factor table, exactly as the C kernel computes them: the
    int32 sums are exact, then float32 products and one float32 add, in this order."""
    meta = np.asarray(meta, dtype=np.int64).reshape(-1, META_FIELDS)
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    a_q = np.asarray(a_q, dtype=np.int8).reshape(-1)
    p_q = np.asarray(p_q, dtype=np.int8).reshape(-1)
    n_clusters = meta.shape[0]
    out = np.zeros((positions.size, dim), dtype=np.float32)
    for c, (_, count, rank, a_off, p_off), sel, rows in _by_cluster(positions, meta):
        mu = p_q[p_off: p_off + dim].astype(np.float32)
        acc = np.zeros((sel.size, dim), dtype=np.int64)
        if rank:
            coef = a_q[a_off: a_off + count * rank].reshape(count, rank)[rows].astype(np.int64)
            basis = p_q[p_off + dim: p_off + dim + rank * dim].reshape(rank, dim).astype(np.int64)
            acc = coef @ basis
        s_a = scales[2 * n_clusters + positions[sel]] if row_scales else \
            np.full(sel.size, scales[2 * n_clusters + c], dtype=np.float32)
        factor = (s_a * scales[2 * c]).astype(np.float32)
        y = acc.astype(np.int32).astype(np.float32) * factor[:, None]
        out[sel] = y + (scales[2 * c + 1] * mu)[None, :]
    return out


def _clemb8(node: Node, inputs: list) -> list:
    ids, id_map, meta, a_q, p_q, scales = inputs[:6]
    vocab, dim, map_bytes = node.attr("vocab"), node.attr("dim"), node.attr("map_bytes", 0)
    pos, valid = embedding_positions(ids, id_map, map_bytes, vocab)
    rows = reconstruct_rows_int8(pos, meta, a_q, p_q, scales, dim, bool(node.attr("row_scales", 1)))
    rows[~valid] = 0.0
    return [rows.reshape(tuple(np.shape(ids)) + (dim,))]


def _clemb8_check(node: Node, graph: Graph) -> str | None:
    if node.attr("map_bytes", 0) not in (0, 1, 2, 3, 4):
        return "map_bytes must be 0..4"
    for i in (1, 2, 3, 4, 5):
        if node.inputs[i] and not graph.tensors[node.inputs[i]].is_const:
            return f"input {i} must be a constant"
    return None


register("ClusteredEmbeddingInt8", _clemb8, domain=DOMAIN,
         dtypes=(INDEX, QUANT, INDEX, QUANT, QUANT, FLOAT),
         infer=_clemb_infer, macs=_clemb_macs, check=_clemb8_check,
         index_rows=lambda node, graph: {0: int(node.attr("vocab"))})


# ----- TiledAttention --------------------------------------------------------
def attention_dims(node: Node, shapes: list) -> dict:
    """Sizes of a TiledAttention node from its input shapes."""
    x, wq, wo = shapes[0], shapes[1], shapes[7]
    heads = int(node.attr("heads"))
    batch, seq, hidden = (1,) * (3 - len(x)) + tuple(x) if len(x) < 3 else \
        (int(np.prod(x[:-2])), x[-2], x[-1])
    inner = wq[1]
    return {"batch": int(batch), "seq": int(seq), "hidden": int(hidden), "heads": heads,
            "head_dim": int(inner) // heads, "inner": int(inner), "out": int(wo[1])}


def attention_tiles(node: Node, seq: int) -> tuple[int, int, int]:
    """(tile_q, tile_k, cache_kv) clamped to the sequence."""
    tq = max(1, min(int(node.attr("tile_q", seq)), seq))
    tk = max(1, min(int(node.attr("tile_k", seq)), seq))
    return tq, tk, int(bool(node.attr("cache_kv", 1)))


def attention_tile_plan(seq: int, out_dim: int, head_dim: int, tile_q: int, tile_k: int,
                        cache_kv: int) -> list[tuple[int, int, bool]]:
    """Query tiles (start, rows, in the output's unwritten rows) as the C kernel runs them.

    Without the K/V cache a tile may use the output rows after it as scratch:
    it needs rows * (head_dim + seq) + tile_k * head_dim floats there."""
    tiles, t0 = [], 0
    while t0 < seq:
        left = seq - t0
        fixed = min(tile_q, left)
        free = left * out_dim - tile_k * head_dim
        rows = free // (out_dim + head_dim + seq) if free > 0 else 0
        if cache_kv or rows <= fixed:
            tiles.append((t0, fixed, False))
            t0 += fixed
        else:
            rows = min(rows, left)
            tiles.append((t0, rows, True))
            t0 += rows
    return tiles


def attention_scratch_floats(seq: int, head_dim: int, tile_q: int, tile_k: int, cache_kv: int) -> int:
    """Q tile (reused for the context tile) + score tile + K/V (cached, or one key chunk)."""
    kv = 2 * seq * head_dim if cache_kv else tile_k * head_dim
    return tile_q * head_dim + tile_q * seq + kv


def _mask_view(mask: np.ndarray | None, batch: int, seq: int) -> np.ndarray | None:
    """The mask as [Bm, Qm, S] (Bm in {1, B}, Qm in {1, S})."""
    if mask is None:
        return None
    m = np.asarray(mask, dtype=np.float32)
    m = m.reshape((1,) * (4 - m.ndim) + m.shape) if m.ndim < 4 else m
    m = m.reshape((-1,) + m.shape[-3:])
    if m.shape[1] != 1:
        raise ValueError(f"attention mask varies over heads: {mask.shape}")
    return np.broadcast_to(m[:, 0], (m.shape[0], m.shape[2], seq)) if m.shape[-1] == 1 else m[:, 0]


def _f32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).astype(np.float32)


def _project(x_rows: np.ndarray, w: np.ndarray, b: np.ndarray | None, scale: float) -> np.ndarray:
    y = _f32(x_rows.astype(np.float64) @ w)
    if b is not None:
        y = _f32(y.astype(np.float64) + b)
    if scale != 1.0:
        y = _f32(y.astype(np.float64) * np.float32(scale))
    return y


def _softmax_rows(s: np.ndarray, nan_to_zero: bool) -> np.ndarray:
    s64 = s.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(s64 - s64.max(axis=-1, keepdims=True))
        p = _f32(e / e.sum(axis=-1, keepdims=True))
    if nan_to_zero:
        p = np.where(np.isnan(p), np.float32(0.0), p)
    return p


def _attention(node: Node, inputs: list) -> list:
    """The math of the C kernel, rounded to float32 where the kernel stores a value.

    Every query row is computed independently of the others (its scores, softmax,
    context and output row), so the result does not depend on the tile sizes; this
    reference therefore computes each head for all rows at once."""
    x, wq, bq, wk, bk, wv, bv, wo, bo = inputs[:9]
    mask = inputs[9] if len(inputs) > 9 else None
    d = attention_dims(node, [np.shape(v) if v is not None else None for v in inputs])
    B, S, H, nh, dh, out_dim = d["batch"], d["seq"], d["hidden"], d["heads"], d["head_dim"], d["out"]
    qs, ks, ss = (float(node.attr(k, 1.0)) for k in ("q_scale", "k_scale", "s_scale"))
    nan_to_zero = bool(node.attr("nan_to_zero", 0))
    xs = np.asarray(x, dtype=np.float32).reshape(B, S, H)
    m = _mask_view(mask, B, S)
    w64 = [None if w is None else np.asarray(w, dtype=np.float64) for w in (wq, bq, wk, bk, wv, bv, wo)]
    wq64, bq64, wk64, bk64, wv64, bv64, wo64 = w64
    y = np.zeros((B, S, out_dim), dtype=np.float64)

    def cols(w, b, h):
        sl = slice(h * dh, (h + 1) * dh)
        return w[:, sl], (None if b is None else b[sl])

    for b in range(B):
        xb = xs[b]
        mb = None if m is None else m[b if m.shape[0] > 1 else 0]
        for h in range(nh):
            q = _project(xb, *cols(wq64, bq64, h), qs)
            k = _project(xb, *cols(wk64, bk64, h), ks)
            v = _project(xb, *cols(wv64, bv64, h), 1.0)
            scores = _f32(q.astype(np.float64) @ k.astype(np.float64).T)
            if ss != 1.0:
                scores = _f32(scores.astype(np.float64) * np.float32(ss))
            if mb is not None:
                scores = _f32(scores.astype(np.float64) + mb)
            p = _softmax_rows(scores, nan_to_zero)
            ctx = _f32(p.astype(np.float64) @ v.astype(np.float64))
            y[b] += ctx.astype(np.float64) @ wo64[h * dh:(h + 1) * dh]
    y = _f32(y)
    if bo is not None:
        y = _f32(y.astype(np.float64) + bo)
    return [y.reshape(tuple(np.shape(x)[:-1]) + (out_dim,))]


def _attention_infer(node: Node, inputs: list[Tensor]) -> list:
    x, wo = inputs[0], inputs[7]
    return [(tuple(x.shape[:-1]) + (int(wo.shape[1]),), DType.FLOAT32)]


def _attention_node_dims(node: Node, graph: Graph) -> dict:
    return attention_dims(node, [graph.tensors[n].shape if n else None for n in node.inputs])


def _attention_scratch(node: Node, graph: Graph) -> int:
    d = _attention_node_dims(node, graph)
    tq, tk, cache = attention_tiles(node, d["seq"])
    return F4 * attention_scratch_floats(d["seq"], d["head_dim"], tq, tk, cache)


def attention_kv_passes(d: dict, tile_q: int, tile_k: int, cache_kv: int) -> int:
    """How many times K and V are computed: once, or once per query tile."""
    if cache_kv:
        return 1
    return len(attention_tile_plan(d["seq"], d["out"], d["head_dim"], tile_q, tile_k, cache_kv))


def attention_macs(d: dict, tile_q: int, tile_k: int, cache_kv: int) -> int:
    B, S, H, A, O = d["batch"], d["seq"], d["hidden"], d["inner"], d["out"]
    kv_passes = attention_kv_passes(d, tile_q, tile_k, cache_kv)
    return B * (S * H * A + 2 * S * H * A * kv_passes + 2 * S * S * A + S * A * O)


def _attention_macs(node: Node, graph: Graph) -> int:
    d = _attention_node_dims(node, graph)
    return attention_macs(d, *attention_tiles(node, d["seq"]))


def _attention_check(node: Node, graph: Graph) -> str | None:
    shapes = [graph.tensors[n].shape if n else None for n in node.inputs]
    d = attention_dims(node, shapes)
    if d["inner"] % d["heads"]:
        return f"projection width {d['inner']} is not a multiple of {d['heads']} heads"
    for i in (1, 3, 5):
        if shapes[i] is None or tuple(shapes[i]) != (d["hidden"], d["inner"]):
            return f"weight {i} has shape {shapes[i]}, expected {[d['hidden'], d['inner']]}"
    if len(node.inputs) > 9 and node.inputs[9]:
        try:
            _mask_strides(shapes[9], d["batch"], d["seq"])
        except ValueError as exc:
            return str(exc)
    return None


def _mask_strides(shape, batch: int, seq: int) -> tuple[int, int]:
    """(batch stride, row stride) of an additive mask broadcast to [B, 1, S, S]."""
    full = (1,) * (4 - len(shape)) + tuple(shape)
    if len(full) != 4 or full[1] != 1 or full[0] not in (1, batch) or full[2] not in (1, seq) \
            or full[3] != seq:
        raise ValueError(f"attention mask of shape {list(shape)} is not broadcastable as [B,1,S,S] "
                         "without varying over heads")
    row = seq if full[2] == seq else 0
    return (full[2] * seq if full[0] == batch and batch > 1 else 0), row


register("TiledAttention", _attention, domain=DOMAIN, dtypes=(FLOAT,), infer=_attention_infer,
         scratch_bytes=_attention_scratch, macs=_attention_macs, check=_attention_check)


# ----- TiledFFN ----------------------------------------------------------------
def _erf(x: np.ndarray) -> np.ndarray:
    from onnx2mcu.ops.elementwise import _erf as erf64

    return erf64(x)


def activation(h: np.ndarray, kind: str) -> np.ndarray:
    """float32 in -> float32 out, in the order of the exporters' decompositions."""
    h64 = h.astype(np.float64)
    if kind == "gelu":
        t = _f32(_erf(_f32(h64 / np.float32(math.sqrt(2.0))).astype(np.float64)))
        return _f32(_f32(h64 * (t.astype(np.float64) + 1.0)).astype(np.float64) * 0.5)
    if kind == "gelu_tanh":
        inner = math.sqrt(2.0 / math.pi) * (h64 + 0.044715 * h64 ** 3)
        return _f32(0.5 * h64 * (1.0 + np.tanh(inner)))
    if kind == "relu":
        return np.maximum(h, np.float32(0.0))
    raise ValueError(f"unknown activation {kind}")


def ffn_tiles(node: Node, rows: int, inner: int) -> tuple[int, int]:
    tr = max(1, min(int(node.attr("tile_rows", rows)), rows))
    tf = max(1, min(int(node.attr("tile_f", inner)), inner))
    return tr, tf


def _ffn(node: Node, inputs: list) -> list:
    """The math of the C kernel (float32 where it stores); every element of the inner
    activation is computed on its own, so tiles do not change the result."""
    x, w1, b1, w2, b2 = inputs[:5]
    hidden, out_dim = w1.shape[0], w2.shape[1]
    xs = np.asarray(x, dtype=np.float32).reshape(-1, hidden).astype(np.float64)
    h = _f32(xs @ np.asarray(w1, dtype=np.float64))
    if b1 is not None:
        h = _f32(h.astype(np.float64) + b1)
    h = activation(h, node.attr("activation", "gelu"))
    y = _f32(h.astype(np.float64) @ np.asarray(w2, dtype=np.float64))
    if b2 is not None:
        y = _f32(y.astype(np.float64) + b2)
    return [y.reshape(tuple(np.shape(x)[:-1]) + (out_dim,))]


def _ffn_infer(node: Node, inputs: list[Tensor]) -> list:
    return [(tuple(inputs[0].shape[:-1]) + (int(inputs[3].shape[1]),), DType.FLOAT32)]


def _ffn_dims(node: Node, graph: Graph) -> tuple[int, int, int, int]:
    x, w1, w2 = (graph.tensors[node.inputs[i]] for i in (0, 1, 3))
    return x.numel // w1.shape[0], w1.shape[0], w1.shape[1], w2.shape[1]


def _ffn_scratch(node: Node, graph: Graph) -> int:
    rows, _, inner, _ = _ffn_dims(node, graph)
    tr, tf = ffn_tiles(node, rows, inner)
    return F4 * tr * tf


def _ffn_macs(node: Node, graph: Graph) -> int:
    rows, hidden, inner, out_dim = _ffn_dims(node, graph)
    return rows * inner * (hidden + out_dim)


def _ffn_check(node: Node, graph: Graph) -> str | None:
    if node.attr("activation", "gelu") not in ACTIVATIONS:
        return f"activation {node.attr('activation')!r} not one of {', '.join(ACTIVATIONS)}"
    rows, hidden, inner, _ = _ffn_dims(node, graph)
    if graph.tensors[node.inputs[3]].shape[0] != inner:
        return "w1 and w2 disagree on the inner dimension"
    return None


register("TiledFFN", _ffn, domain=DOMAIN, dtypes=(FLOAT,), infer=_ffn_infer,
         scratch_bytes=_ffn_scratch, macs=_ffn_macs, check=_ffn_check)
