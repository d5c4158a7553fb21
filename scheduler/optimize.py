"""The memory-aware scheduler: fusion, heuristics, then ILPs on segments and windows.

Pipeline of `optimize(graph, "ilp", ...)`:
1. `Problem` (the memory model as order-independent data) and `fuse` (safe
   super-nodes: the fused optimum is the true optimum).
2. Heuristic orders on the fused graph (list scheduling with several scores,
   randomised restarts, local search); the best one is the warm start.
3. Lower bounds: the cut bound of `Fused.cut_lower_bound` and the fixed
   steps of cut nodes.
4. Segments: a cut node (ASAP == ALAP) sits at the same step in every
   order, so the steps between two cut nodes hold the same super-nodes in
   every order and can be re-ordered independently; the global optimum is
   the maximum of the segment optima.  A segment whose ILP is small enough
   is solved whole (its optimum and dual bound are exact); a larger one is
   improved by windows of consecutive steps around the current peak
   (large-neighbourhood search with the exact window ILP).
5. Expand super-nodes to ops and keep the best of {ILP result, best
   heuristic, file order} by `memory_model.profile`, which is the ground truth.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from onnx2mcu.ir import Graph, Node
from onnx2mcu.scheduler.fusion import Fused, fuse
from onnx2mcu.scheduler.heuristics import FastEval, best_heuristic
from onnx2mcu.scheduler.ilp import solve_window
from onnx2mcu.scheduler.memory_model import profile
from onnx2mcu.scheduler.problem import Problem

FULL_SEGMENT_BINARIES = 4000  # solve a segment whole when its ILP has at most this many binaries
WINDOW_NODES = 28  # first LNS window size (super-nodes)
MAX_WINDOW_NODES = 80


@dataclass
class Outcome:
    order: list[Node]
    peak: int
    lower_bound: int
    optimal: bool
    stats: dict = field(default_factory=dict)


def optimize(graph: Graph, method: str, time_limit: float = 60.0, solver: str = "highs",
             force_ilp: bool = False) -> Outcome:
    t0 = time.perf_counter()
    deadline = t0 + max(time_limit, 0.1)
    file_order = list(graph.nodes)
    file_peak = profile(graph, file_order).peak_bytes
    prob = Problem(graph)
    stats: dict = {"ops_before_fusion": prob.n}
    if prob.n == 0:
        stats["ops_after_fusion"] = 0
        return Outcome(file_order, file_peak, file_peak, True, stats)
    fused = fuse(prob)
    stats["ops_after_fusion"] = fused.m
    stats["fusion_seconds"] = round(time.perf_counter() - t0, 4)
    ev = FastEval(fused)
    lb, _ = fused.cut_lower_bound()

    budget = min(time_limit * (0.15 if method == "ilp" else 0.9), 8.0)
    h_deadline = min(deadline, time.perf_counter() + max(budget, 0.05))
    order, results = best_heuristic(fused, ev, h_deadline)
    h_peak = int(ev.peak(order))
    stats["heuristic_peak"] = h_peak
    stats["file_order_peak"] = file_peak

    asap, alap = fused.windows()
    live = ev.live(order)
    cuts = [asap[v] for v in range(fused.m) if asap[v] == alap[v]]
    for t in cuts:
        lb = max(lb, int(live[t]))  # a cut node's step costs the same in every order
    segments = _segments(fused.m, cuts)
    lb = min(lb, h_peak)
    stats["ilp_windows"] = 0
    stats["ilp_binaries"] = 0
    stats["ilp_pruned_binaries"] = 0
    stats["solver"] = solver if method == "ilp" else None

    if method == "ilp" and (h_peak > lb or force_ilp):
        order, lb = _improve(fused, ev, order, segments, lb, deadline, solver, stats, asap, alap,
                             force_ilp)

    fused_peak = int(ev.peak(order))
    assert fused.is_topological(order)
    ops = prob.order_of(fused.expand(order))
    candidates = [(profile(graph, ops).peak_bytes, 0, ops, method)]
    candidates.append((file_peak, 2, file_order, "file-order"))
    best = min(candidates, key=lambda c: (c[0], c[1]))
    peak = best[0]
    if peak != fused_peak and best[3] == method:
        raise AssertionError(f"fused model says {fused_peak} bytes, profile says {peak}")
    lb = min(lb, peak)
    optimal = peak <= lb and prob.exact
    stats["chosen"] = best[3]
    return Outcome(best[2], peak, lb if prob.exact else 0, optimal, stats)


def _segments(m: int, cuts: list[int]) -> list[tuple[int, int]]:
    """Runs of steps between cut steps, as [s, e) with at least two steps."""
    segs = []
    prev = -1
    for c in sorted(set(cuts)) + [m]:
        if c - prev - 1 >= 2:
            segs.append((prev + 1, c))
        prev = c
    return segs


def _estimate_binaries(fused: Fused, order: list[int], s: int, e: int) -> int:
    nodes = set(order[s:e])
    local_anc = {}
    total = 0
    for v in order[s:e]:
        a = set()
        for p in fused.preds[v]:
            if p in nodes:
                a |= local_anc[p] | {p}
        local_anc[v] = a
    desc_count = {v: 0 for v in order[s:e]}
    for v in order[s:e]:
        for a in local_anc[v]:
            desc_count[a] += 1
    m = e - s
    for v in order[s:e]:
        total += (m - 1 - desc_count[v]) - len(local_anc[v])
    return total


def _improve(fused: Fused, ev: FastEval, order: list[int], segments, lb: int, deadline: float,
             solver: str, stats: dict, asap, alap, force: bool):
    order = list(order)
    solved: dict[tuple[int, int], int] = {}  # segment -> proven optimum
    stuck: set[tuple[int, int]] = set()
    while time.perf_counter() < deadline - 0.05:
        live = ev.live(order)
        peak = int(live.max())
        if peak <= lb and not force:
            break
        force = False
        todo = []
        for seg in segments:
            s, e = seg
            seg_peak = int(live[s:e].max())
            if seg in solved or seg in stuck or seg_peak < peak:
                continue
            todo.append(seg)
        if not todo:
            break
        s, e = todo[0]
        remaining = deadline - time.perf_counter()
        if _estimate_binaries(fused, order, s, e) <= FULL_SEGMENT_BINARIES:
            res = solve_window(fused, order, s, e, remaining, solver=solver, lower=lb)
            _account(stats, res)
            order[s:e] = res.order
            if res.optimal:
                solved[(s, e)] = res.peak
                lb = max(lb, res.peak)
            else:
                lb = max(lb, int(res.bound))
                stuck.add((s, e))
            continue
        improved = _lns(fused, ev, order, s, e, lb, deadline, solver, stats)
        if not improved:
            stuck.add((s, e))
    return order, lb


def _account(stats: dict, res) -> None:
    stats["ilp_windows"] += 1
    stats["ilp_binaries"] += res.binaries
    stats["ilp_pruned_binaries"] += res.pruned
    stats["ilp_seconds"] = round(stats.get("ilp_seconds", 0.0) + res.seconds, 3)


def _lns(fused: Fused, ev: FastEval, order: list[int], s: int, e: int, lb: int, deadline: float,
         solver: str, stats: dict) -> bool:
    """Windows around the segment's peak steps until one lowers the peak; False if none does."""
    live = ev.live(order)
    peak = int(live[s:e].max())
    steps = [t for t in range(s, e) if live[t] == peak]
    for t in steps[:3]:
        size = WINDOW_NODES
        while size <= MAX_WINDOW_NODES:
            remaining = deadline - time.perf_counter()
            if remaining < 0.1:
                return False
            ws = max(s, t - size // 2)
            we = min(e, ws + size)
            ws = max(s, we - size)
            before = int(live[ws:we].max())
            res = solve_window(fused, order, ws, we, min(remaining, 10.0), solver=solver,
                               upper=before)
            _account(stats, res)
            if res.peak < before:
                order[ws:we] = res.order
                return True
            if not res.optimal:
                break
            if ws == s and we == e:
                return False
            size = int(size * 1.6)
    return False
