"""Patch-based inference (MCUNetV2, arXiv 2110.15352): the early high-resolution layers of an
int8 CNN run patch by patch, so their big feature maps never exist whole.

`--patch auto` (OptimizeOptions.patch): every linear run of int8 nodes (an optional lead of one
int8 constant Pad and one NHWC -> NCHW Transpose, then int8 Convs each read only by the next)
is a candidate; each of its sub-chains, with each output grid from 1x2 to 8x8, becomes one
PatchedChain node (onnx2mcu/ops/patch.py: input + output + a scratch of the largest per-patch
regions).  The pass picks, among the candidates whose scheduled peak is within 1% of the
lowest (`PEAK_SLACK`), the one with the fewest extra MACs (the halo recomputed); with an
explicit `--ram-budget` (`OptimizeOptions.patch_ram`: the arena bytes it leaves), the fewest
extra MACs among those that fit it (nothing if the model already fits), and only if none fits
the lowest peak; without a budget, candidates adding more than 25% of the model's MACs
(`MAX_EXTRA_MACS`) are not considered; and keeps it only if the scheduler's peak
drops (graph_opt/memrw.py's estimator).  It repeats on the result while the peak keeps
dropping (a second chain later in the network).  Exact: every output pixel sums the same
taps.  `--patch none` (the default) leaves the graph as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

from onnx2mcu.graph_opt.context import PassContext
from onnx2mcu.graph_opt.memrw import restore, snapshot
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.memory import profile
from onnx2mcu.ops import int8 as Q
from onnx2mcu.ops import lookup
from onnx2mcu.ops.memrw import DOMAIN
from onnx2mcu.ops.patch import CHAIN_ATTR, PATCHED, Chain, plan_macs
from onnx2mcu.ops.patch import prepare_plan
from onnx2mcu.rewrite import Rewriter, is_standard

MAX_GRID = 8
MAX_CONVS = 12  # longest sub-chain tried
NCHW = (0, 3, 1, 2)
# the candidate kept: the fewest extra MACs among those whose peak is within 1% of the lowest
# (VWW: 38,596 B for +0.67 M MACs rather than 38,244 B for +3.26 M)
PEAK_SLACK = 0.01
# without a --ram-budget, a chain may add at most this share of the model's MACs (KWS: 7% off the
# peak for +100% MACs is not worth it); a budget that needs more gets more
MAX_EXTRA_MACS = 0.25


@dataclass
class Run:
    lead: list[Node]   # folded Pad / Transpose nodes (may be empty)
    convs: list[Node]  # int8 Convs, each reading the previous one's output
    layout: str
    pads: tuple[int, int, int, int]
    value: int


def _int8_conv(node: Node, graph: Graph) -> bool:
    if not (is_standard(node) and node.op_type == "Conv" and len(node.outputs) == 1):
        return False
    p = Q.int8_params(node, graph)
    if not isinstance(p, Q.ConvInt8):
        return False
    x = graph.tensors[node.inputs[0]]
    return len(x.shape) == 4 and x.shape[0] == 1 and all(graph.tensors[n].is_const for n in node.inputs[1:] if n)


def _inner_ok(ix: Rewriter, graph: Graph, name: str) -> bool:
    """An intermediate of a chain: read only by the next node of the chain, not a graph output."""
    return name not in graph.outputs and len(ix.consumers(name)) == 1


def _lead(ix: Rewriter, graph: Graph, node: Node):
    """(lead nodes, layout, pads, value, first conv) of a lead starting at `node`, or None."""
    x = graph.tensors[node.inputs[0]]
    if len(x.shape) != 4 or x.shape[0] != 1 or x.dtype is not DType.INT8:
        return None
    lead, current = [], node
    while len(lead) < 2 and is_standard(current) and current.op_type in ("Pad", "Transpose") \
            and current.op_type not in [n.op_type for n in lead]:
        lead.append(current)
        out = current.outputs[0]
        if not _inner_ok(ix, graph, out):
            return None
        current = ix.consumers(out)[0]
    kinds = [n.op_type for n in lead]
    if not kinds or not _int8_conv(current, graph):
        return None
    pads, value = (0, 0, 0, 0), 0
    for i, n in enumerate(lead):
        if n.op_type == "Transpose":
            if tuple(n.attr("perm") or ()) != NCHW:
                return None
            continue
        p = Q.int8_params(n, graph)
        if not isinstance(p, Q.PadInt8):
            return None
        # the Pad's spatial axes: NHWC before a Transpose, NCHW otherwise
        spatial = (1, 2) if kinds[i + 1:] == ["Transpose"] else (2, 3)
        if any(tuple(p.pads[a]) != (0, 0) for a in range(4) if a not in spatial):
            return None
        pads = (p.pads[spatial[0]][0], p.pads[spatial[1]][0], p.pads[spatial[0]][1], p.pads[spatial[1]][1])
        value = p.value
    layout = "nhwc" if "Transpose" in kinds else "nchw"
    return lead, layout, pads, value, current


def find_runs(graph: Graph) -> list[Run]:
    """Maximal linear runs: a lead (or none), then int8 Convs."""
    ix = Rewriter(graph)
    runs, used = [], set()
    for node in graph.nodes:
        if id(node) in used:
            continue
        head = _lead(ix, graph, node)
        if head is not None:
            lead, layout, pads, value, conv = head
        elif _int8_conv(node, graph):
            lead, layout, pads, value, conv = [], "nchw", (0, 0, 0, 0), 0, node
        else:
            continue
        convs = [conv]
        while True:
            out = convs[-1].outputs[0]
            if not _inner_ok(ix, graph, out):
                break
            nxt = ix.consumers(out)[0]
            if not _int8_conv(nxt, graph):
                break
            convs.append(nxt)
        used.update(id(n) for n in lead + convs)
        runs.append(Run(lead, convs, layout, pads, value))
    return runs


def _sub_runs(run: Run):
    for i in range(len(run.convs)):
        for j in range(i + 1, min(len(run.convs), i + MAX_CONVS) + 1):
            if i == 0 and run.lead:
                yield Run(run.lead, run.convs[:j], run.layout, run.pads, run.value)
            yield Run([], run.convs[i:j], "nchw", (0, 0, 0, 0), 0)


def make_node(graph: Graph, run: Run, grid: tuple[int, int], name: str, inner=None) -> Node:
    inner = inner or tuple(Node(n.name, n.op_type, list(n.inputs), list(n.outputs),
                       {k: v for k, v in n.attrs.items() if k != Q.INPLACE_ATTR}, n.domain) for n in run.convs)
    tensors = (graph.tensors[run.convs[0].inputs[0]],) + tuple(graph.tensors[n.outputs[0]] for n in run.convs)
    x = run.lead[0].inputs[0] if run.lead else run.convs[0].inputs[0]
    consts = list(dict.fromkeys(n for c in run.convs for n in c.inputs[1:] if n))
    chain = Chain(inner, tensors, run.layout, run.pads, run.value, grid, tuple(n.name for n in run.lead))
    return Node(name, PATCHED, [x] + consts, [run.convs[-1].outputs[0]], {CHAIN_ATTR: chain}, DOMAIN)


def _grids(h: int, w: int):
    for gh in range(1, min(MAX_GRID, h) + 1):
        for gw in range(1, min(MAX_GRID, w) + 1):
            if gh * gw > 1:
                yield gh, gw


def _apply(graph: Graph, run: Run, node: Node) -> None:
    rw = Rewriter(graph)
    by_name = {n.name: n for n in graph.nodes}  # snapshot/restore copy the nodes: find them by name
    rw.replace([by_name[n.name] for n in run.lead + run.convs], [node])
    for t in node.attrs[CHAIN_ATTR].tensors[1:-1]:
        graph.tensors.pop(t.name, None)
    for lead in run.lead:
        for out in lead.outputs:
            graph.tensors.pop(out, None)


def _scheduled_peak(graph: Graph, ctx: PassContext) -> int:
    """The face's scheduler estimate (graph_opt/memrw.py's estimator, not its memo: that keys on
    the graph's name and wiring, not its shapes), else the graph order's peak."""
    estimator = ctx.options.peak_estimator
    return int(estimator(graph)) if estimator is not None else profile(graph).peak_bytes


def _one_round(graph: Graph, ctx: PassContext, base: int, limit: int | None) -> dict | None:
    """The best candidate of this graph, applied if it lowers the scheduled peak; its report entry.

    Each sub-chain is put in place once (scratch 0) and the graph order's live bytes measured:
    the peak of a grid is then max(that peak, the node's step + the grid's scratch).  The
    chosen candidate is checked with the scheduler's peak (the face's estimator)."""
    found = []  # (peak, extra macs, order, run, node, tiled, untiled)
    for run in find_runs(graph):
        for sub in _sub_runs(run):
            if len(sub.convs) + len(sub.lead) < 2:
                continue
            name = ctx.names.node(f"patch_{sub.convs[0].name}")
            y = graph.tensors[sub.convs[-1].outputs[0]]
            saved, scratch_saved = snapshot(graph), dict(graph.scratch)
            probe = make_node(graph, sub, (1, 1), name)
            _apply(graph, sub, probe)
            graph.scratch[probe.name] = 0
            prof = profile(graph)
            step = next(i for i, n in enumerate(graph.nodes) if n is probe)
            rest, live = prof.peak_bytes, prof.live_bytes[step]
            graph.scratch = scratch_saved
            restore(graph, saved)
            if rest >= base:
                continue  # some other step holds the peak: no grid helps
            inner = probe.attrs[CHAIN_ATTR].nodes
            for grid in _grids(y.shape[2], y.shape[3]):
                node = make_node(graph, sub, grid, name, inner)
                try:
                    plan = prepare_plan(node, graph)
                except ValueError:
                    break
                tiled, untiled = plan_macs(plan, graph)
                peak = max(rest, live + plan.scratch_bytes)
                if peak < base:
                    found.append((peak, tiled - untiled, len(found), sub, node, tiled, untiled))
    if not found:
        return None
    fits = [f for f in found if limit is not None and f[0] <= limit]
    # the lowest peak of all candidates sets the slack; without a budget, only candidates under
    # the MAC cap are taken (the lowest of them when none is within the slack)
    lowest = min(f[0] for f in found)
    if not fits:
        cap = MAX_EXTRA_MACS * sum(int(lookup(n.op_type, n.domain).macs(n, graph)) for n in graph.nodes
                                   if lookup(n.op_type, n.domain) is not None)
        found = [f for f in found if f[1] <= cap]
        if not found:
            return None
        capped = min(f[0] for f in found)
        if capped > lowest * (1 + PEAK_SLACK):
            lowest = capped
    # the fewest extra MACs among the peaks within PEAK_SLACK of the lowest, or among those that
    # fit an explicit --ram-budget
    near = fits or [f for f in found if f[0] <= lowest * (1 + PEAK_SLACK)]
    near.sort(key=lambda f: (f[1], f[0], f[2]))
    for peak, extra, _, sub, node, tiled, untiled in near[:3]:
        saved = snapshot(graph)
        _apply(graph, sub, node)
        after = _scheduled_peak(graph, ctx)
        if after < base and (not fits or after <= limit):
            chain = node.attrs[CHAIN_ATTR]
            return {"node": node.name, "layers": [n.name for n in sub.lead + sub.convs],
                    "grid": list(chain.grid), "peak_before": base, "peak_after": after,
                    "macs_untiled": untiled, "macs_patched": tiled, "extra_macs": tiled - untiled,
                    "scratch_bytes": prepare_plan(node, graph).scratch_bytes}
        restore(graph, saved)
    return None


def patch_inference(graph: Graph, ctx: PassContext) -> dict | None:
    mode = getattr(ctx.options, "patch", "none")
    if mode == "none":
        return None  # the default: no line in the report
    chains = []
    base = _scheduled_peak(graph, ctx)
    limit = ctx.options.patch_ram
    if limit is not None and base <= limit:
        ctx.report.skip(f"the scheduled peak ({base:,} B) already fits --ram-budget ({limit:,} B for the arena)")
        return None
    for _ in range(4):
        done = _one_round(graph, ctx, base, limit)
        if done is None:
            break
        chains.append(done)
        base = done["peak_after"]
        if limit is not None and base <= limit:
            break
    if not chains:
        cap = "" if limit is not None else f" for at most +{MAX_EXTRA_MACS:.0%} MACs"
        ctx.report.skip(f"no chain lowers the scheduled peak{cap}")
        return None
    return {"chains": chains, "extra_macs": sum(c["extra_macs"] for c in chains),
            "peak_before": chains[0]["peak_before"], "peak_after": chains[-1]["peak_after"]}
