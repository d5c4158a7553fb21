"""Transformer tiling (DESIGN §5, MCUBERT's fine-grained scheduling): `--tile auto|none`.

Finds multi-head self-attention and the feed-forward block in BERT-like
graphs, as the TorchScript and the dynamo exporters of transformers emit them
(and as `onnx2mcu.examples` builds them), and replaces each by one op of
onnx2mcu/ops/mcubert.py:

* attention: Q/K/V projections, head split, scores, scale, additive mask,
  Softmax (and the exporters' NaN guard), P x V, head merge and the output
  projection become one `TiledAttention`.  It works head by head over tiles
  of query rows, so neither the [heads, S, S] scores nor Q/K/V for all heads
  ever exist: its scratch is one score tile plus K and V of one head (or, when
  the budget is tighter, one chunk of keys recomputed per query tile).
* FFN: MatMul + bias, GELU (the Gelu op, or Div/Erf/Add/Mul/Mul) or Relu,
  MatMul + bias become one `TiledFFN` that accumulates tiles of the inner
  dimension into its output; the [S, FFN] intermediate never exists.

The residual Adds and LayerNorms stay as they are.  Layout chains
(Reshape/Transpose/...) are recognised by what they do, not by how they are
spelt: the pass pushes an index probe through them and checks that the
result is the expected head split or merge.

Tile sizes come from the memory budget: with `--ram-budget` (or a board's RAM)
the pass picks the fastest tiles (K/V cache if it fits, else the fewest K/V
passes, then the largest tiles) whose peak fits in the budget less the
harness's copies of the outputs, less 3% for arena fragmentation; with no
budget it uses the least RAM: the peak with the smallest tiles (the floor)
plus at most 3% for tiles.  Peaks are `memory.profile` of
the file order, which every scheduler method matches or beats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from onnx2mcu.budget import MemoryBudget, io_bytes
from onnx2mcu.graph_opt import row_tiling
from onnx2mcu.graph_opt.row_tiling import largest_fitting
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.mcubert import DOMAIN, attention_dims, attention_kv_passes, attention_macs
from onnx2mcu.rewrite import (FreshNames, Rewriter, bias_add, drop_unused_tensors, is_closed,
                              is_standard, other_input, projection, same_layout, scalar)

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext

LAYOUT_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten")
TILE_SLACK = 0.03  # without a budget: tiles may add at most this fraction to the floor


@dataclass
class _Match:
    nodes: list[Node]
    new: Node
    info: dict = field(default_factory=dict)


def _scale_of(idx: Rewriter, node: Node) -> tuple[str, float] | None:
    """(other input, multiplier) of a Mul/Div by a float scalar constant."""
    if node.op_type not in ("Mul", "Div") or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if node.op_type == "Mul":
        for x, c in ((a, b), (b, a)):
            value = scalar(idx.const(c))
            if value is not None and idx.const(x) is None:
                return x, value
        return None
    value = scalar(idx.const(b))
    if value is None or value == 0.0 or idx.const(a) is not None:
        return None
    return a, 1.0 / value


def _walk_back(idx: Rewriter, name: str) -> tuple[str, list[Node], float]:
    """Back from `name` through layout ops and scalar scales: (start tensor, chain in
    forward order, product of the scales)."""
    chain: list[Node] = []
    scale = 1.0
    while True:
        node = idx.producer(name)
        if node is None:
            break
        if node.op_type in LAYOUT_OPS and is_standard(node):
            chain.append(node)
            name = node.inputs[0]
            continue
        scaled = _scale_of(idx, node)
        if scaled is not None:
            chain.append(node)
            name, factor = scaled
            scale *= factor
            continue
        break
    return name, chain[::-1], scale


def _same_layout(idx: Rewriter, source: str, chain: list[Node], shape: tuple[int, ...], expect) -> bool:
    """The layout ops of `chain` (scales pass through) move elements of `source` as `expect` does."""
    return same_layout(idx, source, chain, shape, expect, passthrough=("Mul", "Div"))


def _projection(idx: Rewriter, name: str) -> tuple[str, str, str, list[Node]] | None:
    """`name` = x @ W (+ b) with constant W [in, out] and b [out]: (x, W, b or "", nodes)."""
    found = projection(idx, name)
    if found is None or not found.plain or (found.bias and idx.const(found.bias).ndim != 1):
        return None
    return found.x, found.weight, found.bias, found.nodes


def _then_bias(idx: Rewriter, out: str, width: int, nodes: list[Node]) -> tuple[str, str]:
    """(output after the bias Add that may follow `out`, the bias or ""); the Add joins `nodes`."""
    biased = bias_add(idx, out, width)
    if biased is None:
        return out, ""
    nodes.append(biased[1])
    return biased[1].outputs[0], biased[0]


# ----- attention -------------------------------------------------------------------
def _match_attention(idx: Rewriter, softmax: Node) -> _Match | None:
    graph = idx.graph
    scores_in = softmax.inputs[0]
    shape = idx.shape(scores_in)
    if len(shape) != 4 or shape[2] != shape[3] or graph.tensors[scores_in].dtype is not DType.FLOAT32:
        return None
    if softmax.attr("axis", -1) not in (-1, 3):
        return None
    B, nh, S, _ = shape
    nodes: list[Node] = [softmax]

    # probabilities -> (NaN guard) -> P @ V
    probs = softmax.outputs[0]
    nan_to_zero = 0
    users = idx.consumers(probs)
    if len(users) == 2 and {u.op_type for u in users} == {"IsNaN", "Where"}:
        isnan = next(u for u in users if u.op_type == "IsNaN")
        where = next(u for u in users if u.op_type == "Where")
        zero = scalar(idx.const(where.inputs[1]))
        if (where.inputs[0] != isnan.outputs[0] or where.inputs[2] != probs or zero != 0.0
                or idx.sole_consumer(isnan.outputs[0]) is not where):
            return None
        nodes += [isnan, where]
        probs, nan_to_zero = where.outputs[0], 1
    pv = idx.sole_consumer(probs)
    if pv is None or pv.op_type != "MatMul" or pv.inputs[0] != probs:
        return None
    nodes.append(pv)

    # scores: MatMul(Qh, Kt) [-> scalar scale] [-> + mask]
    mask = ""
    node = idx.producer(scores_in)
    if node is not None and node.op_type == "Add":
        a, b = node.inputs
        full = [n for n in (a, b) if idx.shape(n) == shape and _from_scores(idx, n)]
        if len(full) != 1:
            return None
        mask = b if full[0] == a else a
        mshape = (1,) * (4 - len(idx.shape(mask))) + idx.shape(mask)
        if (len(mshape) != 4 or mshape[1] != 1 or mshape[0] not in (1, B) or mshape[2] not in (1, S)
                or mshape[3] != S or graph.tensors[mask].dtype is not DType.FLOAT32):
            return None
        nodes.append(node)
        node = idx.producer(full[0])
    s_scale = 1.0
    while node is not None and node.op_type in ("Mul", "Div"):
        scaled = _scale_of(idx, node)
        if scaled is None:
            return None
        nodes.append(node)
        s_scale *= scaled[1]
        node = idx.producer(scaled[0])
    if node is None or node.op_type != "MatMul":
        return None
    qk = node
    nodes.append(qk)
    q_in, q_chain, q_scale = _walk_back(idx, qk.inputs[0])
    k_in, k_chain, k_scale = _walk_back(idx, qk.inputs[1])
    v_in, v_chain, v_scale = _walk_back(idx, pv.inputs[1])
    if v_scale != 1.0:
        return None
    projections = [_projection(idx, t) for t in (q_in, k_in, v_in)]
    if any(p is None for p in projections):
        return None
    (xq, wq, bq, q_nodes), (xk, wk, bk, k_nodes), (xv, wv, bv, v_nodes) = projections
    if not xq == xk == xv:
        return None
    x = xq
    xshape = idx.shape(x)
    if len(xshape) != 3 or xshape[0] != B or xshape[1] != S:
        return None
    inner = graph.tensors[wq].shape[1]
    if inner % nh or graph.tensors[wk].shape != graph.tensors[wq].shape \
            or graph.tensors[wv].shape != graph.tensors[wq].shape:
        return None
    dh = inner // nh
    proj_shape = (B, S, inner)
    split = lambda p: p.reshape(B, S, nh, dh).transpose(0, 2, 1, 3)  # noqa: E731
    if not (_same_layout(idx, q_in, q_chain, proj_shape, split)
            and _same_layout(idx, k_in, k_chain, proj_shape, lambda p: split(p).transpose(0, 1, 3, 2))
            and _same_layout(idx, v_in, v_chain, proj_shape, split)):
        return None

    # context [B, nh, S, dh] -> merge heads -> output projection
    merge_chain: list[Node] = []
    name = pv.outputs[0]
    while True:
        user = idx.sole_consumer(name)
        if user is None:
            return None
        if user.op_type in LAYOUT_OPS and user.inputs[0] == name:
            merge_chain.append(user)
            name = user.outputs[0]
            continue
        break
    if user.op_type != "MatMul" or user.inputs[0] != name:
        return None
    if not _same_layout(idx, pv.outputs[0], merge_chain, (B, nh, S, dh),
                        lambda p: p.transpose(0, 2, 1, 3).reshape(B, S, inner)):
        return None
    wo = user.inputs[1]
    wo_value = idx.const(wo)
    if wo_value is None or wo_value.ndim != 2 or wo_value.shape[0] != inner:
        return None
    out_nodes = [user]
    out, bo = _then_bias(idx, user.outputs[0], wo_value.shape[1], out_nodes)

    nodes += q_chain + k_chain + v_chain + q_nodes + k_nodes + v_nodes + merge_chain + out_nodes
    if not is_closed(idx, nodes, out):
        return None
    new = Node(name=idx.names.node(f"{out_nodes[-1].name}/tiled_attention"),
               op_type="TiledAttention", domain=DOMAIN,
               inputs=[x, wq, bq, wk, bk, wv, bv, wo, bo, mask], outputs=[out],
               attrs={"heads": nh, "q_scale": q_scale, "k_scale": k_scale, "s_scale": s_scale,
                      "nan_to_zero": nan_to_zero, "tile_q": 1, "tile_k": 1, "cache_kv": 0})
    return _Match(nodes, new, {"heads": nh, "head_dim": dh, "seq": S})


def _from_scores(idx: Rewriter, name: str) -> bool:
    """`name` is a product of two activations, possibly scaled by scalars."""
    node = idx.producer(name)
    while node is not None and _scale_of(idx, node) is not None:
        node = idx.producer(_scale_of(idx, node)[0])
    return (node is not None and node.op_type == "MatMul"
            and all(idx.const(n) is None for n in node.inputs))


# ----- FFN --------------------------------------------------------------------------
def _close(value: float | None, want: float) -> bool:
    return value is not None and abs(value - want) <= 1e-6 * abs(want)


def _match_activation(idx: Rewriter, h: str) -> tuple[str, str, list[Node]] | None:
    """(activation, output tensor, nodes) for the activation applied to `h`."""
    users = idx.consumers(h)
    if h in idx.graph.outputs:
        return None
    if len(users) == 1 and users[0].op_type == "Gelu":
        kind = {"none": "gelu", "tanh": "gelu_tanh"}.get(users[0].attr("approximate", "none"))
        return (kind, users[0].outputs[0], [users[0]]) if kind else None
    if len(users) == 1 and users[0].op_type == "Relu":
        return "relu", users[0].outputs[0], [users[0]]
    if len(users) != 2:
        return None
    # x * (erf(x / sqrt 2) + 1) * 0.5, in either association of the two Muls
    scale = next((u for u in users if u.op_type in ("Div", "Mul") and _scale_of(idx, u)
                  and _scale_of(idx, u)[0] == h and _close(_scale_of(idx, u)[1], 1 / math.sqrt(2))),
                 None)
    if scale is None:
        return None
    mul = next((u for u in users if u is not scale and u.op_type == "Mul"), None)
    erf = idx.sole_consumer(scale.outputs[0], "Erf")
    plus = idx.sole_consumer(erf.outputs[0], "Add") if erf is not None else None
    if mul is None or plus is None:
        return None
    one = other_input(plus, erf.outputs[0])
    if not _close(scalar(idx.const(one)), 1.0):
        return None
    other = other_input(mul, h)
    last = idx.sole_consumer(mul.outputs[0], "Mul")
    if last is None:
        return None
    rest = other_input(last, mul.outputs[0])
    if other == plus.outputs[0] and _close(scalar(idx.const(rest)), 0.5):
        pass  # (x * (erf + 1)) * 0.5: the exporters' order
    elif _close(scalar(idx.const(other)), 0.5) and rest == plus.outputs[0]:
        pass  # (x * 0.5) * (erf + 1)
    else:
        return None
    if idx.sole_consumer(plus.outputs[0]) is None:
        return None
    return "gelu", last.outputs[0], [scale, erf, plus, mul, last]


def _match_ffn(idx: Rewriter, first: Node) -> _Match | None:
    graph = idx.graph
    x, w1 = first.inputs
    w1v = idx.const(w1)
    if (w1v is None or w1v.ndim != 2 or idx.const(x) is not None
            or graph.tensors[x].dtype is not DType.FLOAT32 or len(idx.shape(x)) < 2
            or w1v.dtype != np.float32):
        return None
    hidden, inner = w1v.shape
    if inner <= hidden:  # not an expanding FFN: its intermediate is no larger than its input
        return None
    nodes = [first]
    h, b1 = _then_bias(idx, first.outputs[0], inner, nodes)
    act = _match_activation(idx, h)
    if act is None:
        return None
    kind, a, act_nodes = act
    nodes += act_nodes
    second = idx.sole_consumer(a)
    if second is None or second.op_type != "MatMul" or second.inputs[0] != a:
        return None
    w2 = second.inputs[1]
    w2v = idx.const(w2)
    if w2v is None or w2v.ndim != 2 or w2v.shape[0] != inner or w2v.dtype != np.float32:
        return None
    nodes.append(second)
    out, b2 = _then_bias(idx, second.outputs[0], w2v.shape[1], nodes)
    if not is_closed(idx, nodes, out):
        return None
    new = Node(name=idx.names.node(f"{nodes[-1].name}/tiled_ffn"), op_type="TiledFFN",
               domain=DOMAIN, inputs=[x, w1, b1, w2, b2], outputs=[out],
               attrs={"activation": kind, "tile_rows": 1, "tile_f": 1})
    rows = graph.tensors[x].numel // hidden
    return _Match(nodes, new, {"rows": rows, "inner": inner})


# ----- rewriting --------------------------------------------------------------------
def rewrite(graph: Graph, names: FreshNames | None = None) -> tuple[list[Node], list[Node]]:
    """Replace every recognised attention and FFN block; returns the new nodes."""
    ed = Rewriter(graph, names)
    attention: list[Node] = []
    for softmax in [n for n in graph.nodes if n.op_type == "Softmax" and is_standard(n)]:
        match = _match_attention(ed, softmax)
        if match is not None:
            ed.replace(match.nodes, [match.new])
            attention.append(match.new)
    ffn: list[Node] = []
    for first in [n for n in graph.nodes if n.op_type == "MatMul" and is_standard(n)]:
        if not any(n is first for n in graph.nodes):
            continue
        match = _match_ffn(ed, first)
        if match is not None:
            ed.replace(match.nodes, [match.new])
            ffn.append(match.new)
    if attention or ffn:
        drop_unused_tensors(graph)
    return attention, ffn


# ----- tile sizes ------------------------------------------------------------------------
def _peak(graph: Graph) -> int:
    from onnx2mcu.memory import profile

    return profile(graph).peak_bytes


def size_tiles(graph: Graph, attention: list[Node], ffn: list[Node], target: int) -> dict:
    """Set the tile attributes of the new nodes: the fastest that keep the peak <= target."""
    def set_attention(tile_q: int, tile_k: int, cache: int) -> None:
        for node in attention:
            node.attrs.update(tile_q=tile_q, tile_k=tile_k, cache_kv=cache)

    def set_ffn(tile_rows: int, tile_f: int) -> None:
        for node in ffn:
            node.attrs.update(tile_rows=tile_rows, tile_f=tile_f)

    def fits() -> bool:
        return _peak(graph) <= target

    seq = max((graph.tensors[n.inputs[0]].shape[-2] for n in attention), default=1)
    rows = max((graph.tensors[n.inputs[0]].numel // graph.tensors[n.inputs[1]].shape[0]
                for n in ffn), default=1)
    inner = max((graph.tensors[n.inputs[1]].shape[1] for n in ffn), default=1)
    set_ffn(1, 1)
    chosen = None
    if attention:
        def with_cache(tq: int) -> bool:
            set_attention(tq, seq, 1)
            return fits()
        tq = largest_fitting(1, seq, with_cache)
        if tq is not None:
            chosen = (tq, seq, 1)
        else:
            # recompute K/V: the fewest query tiles (K/V passes), then the largest key chunk;
            # chunks of fewer than 4 keys only when nothing else fits (the kernels work on
            # 4 columns at a time)
            def recompute(tq: int, tk: int) -> bool:
                set_attention(tq, tk, 0)
                return fits()
            options = []
            tk = 1
            while True:
                tq = largest_fitting(1, seq, lambda v: recompute(v, tk))
                if tq is not None:
                    d = attention_dims(attention[0], [graph.tensors[n].shape if n else None
                                                      for n in attention[0].inputs])
                    options.append((tk < 4, attention_kv_passes(d, tq, tk, 0), -tk, tq))
                if tk >= seq:
                    break
                tk = min(2 * tk, seq)
            if options:
                _, passes, neg_tk, tq = min(options)
                chosen = (tq, -neg_tk, 0)
            else:
                chosen = (1, 1, 0)
        set_attention(*chosen)
    ffn_chosen = None
    if ffn:
        def f_fits(tr: int, tf: int) -> bool:
            set_ffn(tr, tf)
            return fits()
        # the widest inner tile first (each inner tile is one more pass over the output),
        # on a few rows; then as many rows as fit
        few = min(rows, 4)
        tf = largest_fitting(1, inner, lambda v: f_fits(few, v))
        if tf is None:
            tr = largest_fitting(1, few, lambda v: f_fits(v, 1))
            ffn_chosen = (tr or 1, 1)
        else:
            ffn_chosen = (largest_fitting(few, rows, lambda v: f_fits(v, tf)) or few, tf)
        set_ffn(*ffn_chosen)
    report: dict = {}
    if attention:
        d = attention_dims(attention[0], [graph.tensors[n].shape if n else None
                                          for n in attention[0].inputs])
        report["attention"] = {"blocks": len(attention), "heads": d["heads"], "seq": d["seq"],
                               "tile_q": chosen[0], "tile_k": chosen[1],
                               "cache_kv": bool(chosen[2]),
                               "kv_passes": attention_kv_passes(d, *chosen),
                               "macs_per_block": attention_macs(d, *chosen)}
    if ffn:
        report["ffn"] = {"blocks": len(ffn), "inner": inner, "tile_rows": ffn_chosen[0],
                         "tile_f": ffn_chosen[1]}
    return report


def tile_transformer(graph: Graph, ctx: PassContext) -> dict | None:
    """The graph_opt pass: `options.tile` "auto" | "none", `options.ram_budget` bytes or None."""
    options = ctx.options
    mode = getattr(options, "tile", "auto") or "auto"
    if mode == "none":
        ctx.report.skip("off (--tile none)")
        return None
    if mode != "auto":
        from onnx2mcu.errors import UserError

        raise UserError(f"--tile {mode}: choose auto or none")
    untiled_peak = _peak(graph)
    attention, ffn = rewrite(graph, ctx.names)
    if not attention and not ffn:
        return _tile_rows(graph, ctx, untiled_peak)
    for node in attention:
        node.attrs.update(tile_q=1, tile_k=1, cache_kv=0)
    for node in ffn:
        node.attrs.update(tile_rows=1, tile_f=1)
    floor = _peak(graph)
    target, source = _target(graph, options, floor)
    report = size_tiles(graph, attention, ffn, max(target, floor))
    peak = _peak(graph)
    report.update({"budget_bytes": getattr(options, "ram_budget", None), "target_peak_bytes": target,
                   "target_from": source,
                   "floor_peak_bytes": floor, "peak_bytes": peak,
                   "untiled_peak_bytes": untiled_peak, "fits": peak <= target,
                   "order": "file-order"})
    return report


def _target(graph: Graph, options, floor: int) -> tuple[int, str]:
    """The peak to aim at: the RAM budget less the I/O buffers (onnx2mcu/budget.py), or the
    floor (the peak with the smallest tiles) plus TILE_SLACK."""
    budget = getattr(options, "ram_budget", None)
    if budget is not None:
        return MemoryBudget(model_ram_bytes=int(budget)).arena_target(io_bytes(graph)), "ram-budget"
    return int(floor * (1.0 + TILE_SLACK)), f"floor+{int(TILE_SLACK * 100)}%"


def _tile_rows(graph: Graph, ctx: PassContext, untiled_peak: int) -> dict | None:
    """No float attention/FFN pattern: tile the graph's own nodes by rows (graph_opt/row_tiling.py,
    the quantized transformers' path); kept only where it lowers the file-order peak."""
    before = (list(graph.nodes), dict(graph.tensors), [(list(n.inputs), list(n.outputs)) for n in graph.nodes])
    folded = row_tiling.fold_broadcast_expands(graph)
    sunk = row_tiling.sink_dequantize(graph, ctx.names)
    regions = row_tiling.rewrite(graph, ctx.names)
    floor = _peak(graph) if regions else untiled_peak
    budget_target, _ = _target(graph, ctx.options, untiled_peak)
    fits = getattr(ctx.options, "ram_budget", None) is not None and untiled_peak <= budget_target
    if not regions or floor >= untiled_peak or fits:
        graph.nodes, graph.tensors = before[0], before[1]
        for node, (inputs, outputs) in zip(graph.nodes, before[2]):
            node.inputs, node.outputs = inputs, outputs
        ctx.report.skip(f"the untiled model's peak ({untiled_peak} B) already fits the RAM budget" if regions and fits
                        else "no attention or feed-forward block found")
        return None
    target, source = _target(graph, ctx.options, floor)
    aim = target if target >= floor else int(floor * (1.0 + TILE_SLACK))  # out of reach: least RAM
    report = {"rows": row_tiling.size_tiles(graph, regions, aim, _peak)}
    peak = _peak(graph)
    report.update({"budget_bytes": getattr(ctx.options, "ram_budget", None), "target_peak_bytes": target,
                   "target_from": source, "floor_peak_bytes": floor, "peak_bytes": peak,
                   "untiled_peak_bytes": untiled_peak, "fits": peak <= target, "order": "file-order",
                   "expands_folded": folded, "dequantize_sunk": sunk})
    return report
