"""The memory-aware scheduler: fusion, heuristics, then exact solves of segments and windows.

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
   the maximum of the segment optima.  The segment holding the peak is
   solved whole when possible, otherwise improved by windows of consecutive
   steps around its peak (large-neighbourhood search; a window's optimum
   never raises any other step).
5. Exact engines for a segment or window (`engine`):
   * "ilp": the time-indexed ILP of `ilp.py` (HiGHS via PuLP, ASAP/ALAP
     pruning, warm start, time limit, dual bound);
   * "search": the memoised search over sets of scheduled nodes of
     `search.py` (exact; very fast on narrow windows, explodes on wide ones);
   * "auto" (default): the search first with a state limit, the ILP when the
     search gives up.  On our benchmarks the search proves most windows in
     milliseconds where HiGHS needs tens of seconds, so "auto" is the default.
6. Expand super-nodes to ops and keep the best of {this order, file order}
   by `memory.profile`, which is the ground truth (the heuristic order
   is the warm start, so the result is never worse than it either).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from onnx2mcu.ir import Graph, Node
from onnx2mcu.scheduler.fusion import Fused, fuse
from onnx2mcu.scheduler.heuristics import FastEval, best_heuristic
from onnx2mcu.scheduler.ilp import solve_window
from onnx2mcu.memory import profile
from onnx2mcu.scheduler.problem import Problem
from onnx2mcu.scheduler.search import solve_window_search, subset_lower_bound

FULL_SEGMENT_BINARIES = 4000  # solve a segment whole when its ILP has at most this many binaries
WINDOW_NODES = 20  # first LNS window size (super-nodes)
MAX_WINDOW_NODES = 120
WINDOW_SECONDS = 12.0  # time cap of one LNS window
SEARCH_STATES = 300_000  # state limit of the exact set search


@dataclass
class Outcome:
    order: list[Node]
    peak: int
    lower_bound: int
    optimal: bool
    stats: dict = field(default_factory=dict)


def optimize(graph: Graph, method: str, time_limit: float = 60.0, solver: str = "highs",
             force_ilp: bool = False, engine: str = "auto", deterministic: bool = False) -> Outcome:
    """`deterministic`: the heuristic phase is bounded by work, not by the clock
    (heuristics.best_heuristic), with `time_limit` only as a safety net: the "greedy" method
    then gives the same order for the same graph on any machine load, unless
    stats["heuristic_deadline_hit"] says the safety net was reached.  (The exact phase of
    "ilp" stays time-limited.)"""
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
    h_deadline = deadline if deterministic else min(deadline, time.perf_counter() + max(budget, 0.05))
    h_info: dict = {}
    order, results = best_heuristic(fused, ev, h_deadline, deterministic=deterministic, info=h_info)
    h_peak = int(ev.peak(order))
    stats["heuristic_peak"] = h_peak
    stats["heuristic_deadline_hit"] = bool(h_info.get("deadline_hit", False))
    stats["local_search_rounds"] = int(h_info.get("rounds", 0))
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
        reserve = min(0.2 * (deadline - time.perf_counter()), 10.0)
        order, lb = _improve(fused, ev, order, segments, lb, deadline - reserve, solver, stats,
                             asap, alap, force_ilp, engine)
        stats["engine"] = engine
        if int(ev.peak(order)) > lb and engine != "ilp":
            lb = max(lb, _subset_bounds(fused, ev, order, lb, deadline, stats))

    fused_peak = int(ev.peak(order))
    assert fused.is_topological(order)
    ops = prob.order_of(fused.expand(order))
    candidates = [(profile(graph, ops).peak_bytes, 0, ops, method)]
    candidates.append((file_peak, 2, file_order, "file-order"))
    best = min(candidates, key=lambda c: (c[0], c[1]))
    peak = best[0]
    if prob.exact and peak != fused_peak and best[3] == method:
        raise AssertionError(f"fused model says {fused_peak} bytes, profile says {peak}")
    lb = min(lb, peak)
    optimal = peak <= lb and prob.exact
    stats["chosen"] = best[3]
    return Outcome(best[2], peak, lb if prob.exact else 0, optimal, stats)


ESTIMATE_SAFETY_SECONDS = 60.0  # the estimator's safety net: far above its normal cost (< 1 s)


def estimate(graph: Graph, safety_seconds: float = ESTIMATE_SAFETY_SECONDS) -> Outcome:
    """The peak estimate the memory rewrites are decided by (graph_opt/memrw.py): the "greedy"
    method bounded by work, so the same graph always gives the same estimate, whatever the
    machine's load; stats["heuristic_deadline_hit"] is True if the safety net cut it short."""
    return optimize(graph, "greedy", safety_seconds, deterministic=True)


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
             solver: str, stats: dict, asap, alap, force: bool, engine: str):
    """Lower the peak segment by segment until it meets the bound or time runs out."""
    order = list(order)
    solved: set[tuple[int, int]] = set()  # segments whose optimum is proven
    stuck: set[tuple[int, int]] = set()
    while time.perf_counter() < deadline - 0.05:
        live = ev.live(order)
        peak = int(live.max())
        if peak <= lb and not force:
            break
        force = False
        todo = [seg for seg in segments if seg not in solved and seg not in stuck
                and int(live[seg[0]:seg[1]].max()) >= peak]
        if not todo:
            break
        seg = todo[0]
        s, e = seg
        proven, new, seg_peak, bound = _solve_exact(fused, order, s, e, lb, deadline, solver, stats,
                                                    engine, whole=True)
        if new is not None:
            order[s:e] = new
        if bound is not None:
            lb = max(lb, int(bound))  # the ILP's dual bound of a whole segment bounds the optimum
        if proven:
            solved.add(seg)
            lb = max(lb, seg_peak)
            continue
        if _lns(fused, ev, order, s, e, deadline, solver, stats, engine):
            continue
        stuck.add(seg)
    return order, lb


def _solve_exact(fused: Fused, order: list[int], s: int, e: int, lb: int, deadline: float,
                 solver: str, stats: dict, engine: str, whole: bool, upper: int | None = None,
                 time_cap: float | None = None):
    """Minimise the peak of window [s, e): (proven optimal, new window order or None, its peak).

    engine "auto": the exact set search first (fast when the window is narrow),
    the ILP when the search gives up; "ilp": the ILP alone; "search": the search alone.
    """
    remaining = deadline - time.perf_counter()
    if time_cap is not None:
        remaining = min(remaining, time_cap)
    if remaining <= 0.05:
        return False, None, None, None
    if engine in ("auto", "search"):
        t = time.perf_counter()
        new, peak, proven = solve_window_search(fused, order, s, e,
                                                t + (remaining if engine == "search" else remaining / 2),
                                                max_states=SEARCH_STATES)
        stats["search_windows"] = stats.get("search_windows", 0) + 1
        stats["search_seconds"] = round(stats.get("search_seconds", 0.0) + time.perf_counter() - t, 3)
        if proven or engine == "search":
            return proven, new, peak, None
        order = list(order)
        order[s:e] = new
        remaining = min(remaining / 2, deadline - time.perf_counter()) if time_cap else \
            deadline - time.perf_counter()
    if whole and _estimate_binaries(fused, order, s, e) > FULL_SEGMENT_BINARIES:
        return False, (order[s:e] if engine == "auto" else None), None, None
    res = solve_window(fused, order, s, e, remaining, solver=solver, upper=upper,
                       lower=lb if whole else 0)
    _account(stats, res)
    return res.optimal, res.order, res.peak, (res.bound if whole else None)


def _subset_bounds(fused: Fused, ev: FastEval, order: list[int], lb: int, deadline: float,
                   stats: dict) -> int:
    """Lower bounds from exact optima of relaxations on growing sets of nodes around the peak."""
    live = ev.live(order)
    peak = int(live.max())
    t = int(live.argmax())
    size = 16
    while time.perf_counter() < deadline - 0.05 and lb < peak:
        s = max(0, t - size // 2)
        e = min(fused.m, s + size)
        s = max(0, e - size)
        bound = subset_lower_bound(fused, order, s, e, deadline)
        stats["bound_windows"] = stats.get("bound_windows", 0) + 1
        if bound is None:
            break
        lb = max(lb, bound)
        if s == 0 and e == fused.m:
            break
        size = int(size * 1.5)
    return lb


def _account(stats: dict, res) -> None:
    stats["ilp_windows"] += 1
    stats["ilp_binaries"] += res.binaries
    stats["ilp_pruned_binaries"] += res.pruned
    stats["ilp_seconds"] = round(stats.get("ilp_seconds", 0.0) + res.seconds, 3)
    stats["ilp_optimal_windows"] = stats.get("ilp_optimal_windows", 0) + int(res.optimal)


def _lns(fused: Fused, ev: FastEval, order: list[int], s: int, e: int, deadline: float,
         solver: str, stats: dict, engine: str) -> bool:
    """Windows around the segment's peak steps until one lowers the peak; False if none does."""
    live = ev.live(order)
    peak = int(live[s:e].max())
    steps = [t for t in range(s, e) if live[t] == peak]
    for t in steps[:4]:
        size = WINDOW_NODES
        while True:
            if deadline - time.perf_counter() < 0.1:
                return False
            ws = max(s, t - size // 2)
            we = min(e, ws + size)
            ws = max(s, we - size)
            before = int(live[ws:we].max())
            proven, new, p, _ = _solve_exact(fused, order, ws, we, 0, deadline, solver, stats, engine,
                                             whole=False, upper=before, time_cap=WINDOW_SECONDS)
            stats["lns_windows"] = stats.get("lns_windows", 0) + 1
            if new is not None and p is not None and p < before:
                order[ws:we] = new
                return True
            if not proven or (ws == s and we == e) or size >= MAX_WINDOW_NODES:
                break
            size = int(size * 1.5)
    return False
