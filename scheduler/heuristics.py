"""Heuristic orders on a fused graph: list scheduling with several scores, plus local search.

All of them work on super-nodes and score with the exact fused model
(`FastEval`, numpy; equal to `Fused.live_bytes`).  They give the "greedy"
method, the warm start of the ILP and the baseline that the ILP result is
never allowed to be worse than.
"""
from __future__ import annotations

import random
import time
from typing import Sequence

import numpy as np

from onnx2mcu.scheduler.fusion import Fused


class FastEval:
    """Vectorised live bytes per step for orders of a fused graph."""

    def __init__(self, fused: Fused):
        self.f = fused
        prob = fused.prob
        m = fused.m
        self.m = m
        gl = []  # groups that are counted by liveness somewhere
        for g in range(len(prob.sizes)):
            p = fused.gprod[g]
            cons = fused.gcons[g]
            if not prob.is_out[g] and not cons:
                continue  # unused graph input (in T0) or a dead-end output (in T)
            if not prob.is_out[g] and p is not None and all(c == p for c in cons):
                continue  # internal to its super-node
            gl.append(g)
        self.size = np.array([prob.sizes[g] for g in gl], dtype=np.int64)
        self.prod = np.array([-1 if fused.gprod[g] is None else fused.gprod[g] for g in gl], dtype=np.int64)
        self.out = np.array([prob.is_out[g] for g in gl], dtype=bool)
        flat, offs, owner = [], [], []
        for k, g in enumerate(gl):
            cons = fused.gcons[g]
            if cons:
                offs.append(len(flat))
                owner.append(k)
                flat.extend(cons)
        self.cons_flat = np.array(flat, dtype=np.int64)
        self.cons_off = np.array(offs, dtype=np.int64)
        self.cons_owner = np.array(owner, dtype=np.int64)
        self.T = np.array([d.T for d in fused.desc], dtype=np.int64)
        self.T0 = np.array([d.T0 for d in fused.desc], dtype=np.int64)
        # in-place options: (node, sigma, others of each candidate)
        kflat, koffs, ksig, kcand_node = [], [], [], []
        for v, d in enumerate(fused.desc):
            for e in d.K:
                others = [c for c in fused.gcons[e] if c != v]
                koffs.append(len(kflat))
                kflat.extend(others)
                kcand_node.append(v)
                ksig.append(d.sigma)
        self.k_flat = np.array(kflat, dtype=np.int64)
        self.k_off = np.array(koffs, dtype=np.int64)
        self.k_node = np.array(kcand_node, dtype=np.int64)
        self.k_sigma = np.array(ksig, dtype=np.int64)

    def live(self, order: Sequence[int]) -> np.ndarray:
        m = self.m
        order = np.asarray(order, dtype=np.int64)
        pos = np.empty(m, dtype=np.int64)
        pos[order] = np.arange(m)
        first = np.where(self.prod >= 0, pos[np.maximum(self.prod, 0)] + 1, 0)
        last = np.full(len(self.size), -1, dtype=np.int64)
        if len(self.cons_flat):
            last[self.cons_owner] = np.maximum.reduceat(pos[self.cons_flat], self.cons_off)
        last[self.out] = m - 1
        ok = last >= first
        diff = np.zeros(m + 1, dtype=np.int64)
        np.add.at(diff, first[ok], self.size[ok])
        np.add.at(diff, last[ok] + 1, -self.size[ok])
        live = np.cumsum(diff[:m])
        live += self.T[order]
        if m:
            live[0] += self.T0[order[0]] - self.T[order[0]]
        if len(self.k_node):
            kpos = pos[self.k_node]
            if len(self.k_flat):
                latest = np.maximum.reduceat(pos[self.k_flat], self.k_off)
            else:
                latest = np.full(len(self.k_node), -1)
            dead = latest < kpos
            if dead.any():
                # one saving per node even if several candidates are dead
                nodes = np.unique(self.k_node[dead])
                sig = np.zeros(m, dtype=np.int64)
                for v in nodes:
                    sig[v] = self.f.desc[v].sigma
                live -= sig[order]
        return live

    def peak(self, order: Sequence[int]) -> int:
        return int(self.live(order).max()) if self.m else 0


def list_schedule(fused: Fused, score: str, rng: random.Random | None = None) -> list[int]:
    """Greedy list scheduling: repeatedly run the ready super-node with the best score."""
    prob = fused.prob
    m = fused.m
    sizes = prob.sizes
    remaining = [len(c) for c in fused.gcons]
    indeg = [len(p) for p in fused.preds]
    ready = [v for v in range(m) if indeg[v] == 0]
    resident = sum(sizes[g] for g in range(len(sizes))
                   if prob.is_in[g] and (prob.is_out[g] or fused.gcons[g]))
    made = [[g for g in fused.desc[v].Prod if prob.is_out[g] or any(c != v for c in fused.gcons[g])]
            for v in range(m)]
    order: list[int] = []
    peak = 0
    last_touch = [0] * len(sizes)  # step at which a group was last made or read
    topo_rank = {v: i for i, v in enumerate(fused.topo_order())}
    while ready:
        best = None
        for v in ready:
            d = fused.desc[v]
            mem = resident + (d.T0 if not order else d.T)
            if d.K and any(remaining[e] == 1 for e in d.K):
                mem -= d.sigma
            freed = sum(sizes[g] for g in d.In if remaining[g] == 1 and not prob.is_out[g])
            grow = sum(sizes[g] for g in made[v]) - freed
            if score == "peak":
                key = (max(mem, peak), grow, mem)
            elif score == "grow":
                key = (grow, mem)
            elif score == "mem":
                key = (mem, grow)
            elif score == "dfs":
                recent = max((last_touch[g] for g in d.In), default=0)
                key = (max(mem, peak), -recent, grow)
            elif score == "file":
                key = (topo_rank[v],)
            else:
                raise ValueError(score)
            if rng is not None:
                key = key + (rng.random(),)
            else:
                key = key + (topo_rank[v],)
            if best is None or key < best[0]:
                best = (key, v, mem, grow)
        _, v, mem, grow = best
        ready.remove(v)
        order.append(v)
        peak = max(peak, mem)
        resident += grow
        step = len(order)
        for g in fused.desc[v].In:
            remaining[g] -= 1
            last_touch[g] = step
        for g in made[v]:
            last_touch[g] = step
        for s in fused.succs[v]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    return order


def local_search(fused: Fused, ev: FastEval, order: list[int], deadline: float,
                 max_rounds: int = 10_000, info: dict | None = None) -> list[int]:
    """Move single super-nodes across the peak step while that lowers (peak, #peak steps, excess).
    Stops at a local optimum, after `max_rounds` moves (the work budget) or at `deadline`;
    `info` (if given) gets "rounds" added and "deadline_hit" set when the deadline stopped it."""
    m = fused.m
    if m < 3:
        return order
    order = list(order)

    def cost(o):
        live = ev.live(o)
        peak = int(live.max())
        return (peak, int((live == peak).sum()), int(np.maximum(live - 0.9 * peak, 0).sum())), live

    best_cost, live = cost(order)
    rounds = 0
    while rounds < max_rounds:
        if time.perf_counter() >= deadline:
            if info is not None:
                info["deadline_hit"] = True
            break
        rounds += 1
        if info is not None:
            info["rounds"] = info.get("rounds", 0) + 1
        pos = {v: i for i, v in enumerate(order)}
        peak_steps = np.flatnonzero(live == best_cost[0])
        t = int(peak_steps[rounds % len(peak_steps)])
        cands = []
        # producers of groups live across t could run later; last readers could run earlier
        lo_nodes = set(order[max(0, t - 40): t + 1])
        hi_nodes = set(order[t: t + 41])
        for v in lo_nodes:
            succ_first = min((pos[s] for s in fused.succs[v]), default=m)
            if succ_first > t:
                cands.append((v, min(succ_first - 1, m - 1)))
                if succ_first - 1 > t + 1:
                    cands.append((v, t + 1))
        for v in hi_nodes:
            pred_last = max((pos[p] for p in fused.preds[v]), default=-1)
            if pred_last < t:
                cands.append((v, max(pred_last + 1, 0)))
                if pred_last + 1 < t - 1:
                    cands.append((v, t - 1 if pos[v] > t - 1 else t))
        improved = None
        for v, j in cands:
            i = pos[v]
            if i == j:
                continue
            o = order[:i] + order[i + 1:]
            o.insert(j, v)
            c, lv = cost(o)
            if c < best_cost and (improved is None or c < improved[0]):
                improved = (c, o, lv)
        if improved is None:
            break
        best_cost, order, live = improved
    return order


SCORES = ("peak", "dfs", "grow", "mem")


# the work budget of a deterministic run (`best_heuristic(..., deterministic=True)`): local-search
# moves per polished order; normal runs stop at a local optimum after a few hundred at most
WORK_ROUNDS = 3000


def best_heuristic(fused: Fused, ev: FastEval, deadline: float, restarts: int = 8,
                   seed: int = 0, deterministic: bool = False,
                   info: dict | None = None) -> tuple[list[int], dict[str, int]]:
    """The best order over list-scheduling scores (+ randomised restarts) after local search.

    By default the deadline bounds the work (restarts and polishing stop there), so a loaded
    machine may get a different order.  With `deterministic` the work is bounded instead: all
    restarts run, the three best orders are polished up to WORK_ROUNDS moves each, and the same
    fused graph always gives the same order; the deadline is then only a safety net, and
    reaching it sets info["deadline_hit"] (the result may then depend on the machine's speed).
    """
    info = {} if info is None else info
    results: dict[str, int] = {}
    candidates: list[tuple[int, str, list[int]]] = []
    topo = fused.topo_order()
    candidates.append((ev.peak(topo), "file", topo))
    for score in SCORES:
        o = list_schedule(fused, score)
        candidates.append((ev.peak(o), score, o))
    rng = random.Random(seed)
    for k in range(restarts):
        if time.perf_counter() > deadline:
            info["deadline_hit"] = True
            break
        o = list_schedule(fused, SCORES[k % 2], rng)
        candidates.append((ev.peak(o), f"rand{k}", o))
    for p, name, _ in candidates:
        results[name] = min(p, results.get(name, p))
    candidates.sort(key=lambda c: c[0])
    best_peak, _, best = candidates[0]
    # polish the few best with local search
    for p, name, o in candidates[:3]:
        if time.perf_counter() > deadline:
            info["deadline_hit"] = True
            break
        o2 = local_search(fused, ev, o, deadline, WORK_ROUNDS if deterministic else 10_000, info)
        p2 = ev.peak(o2)
        if p2 < best_peak:
            best_peak, best = p2, o2
    results["best"] = best_peak
    return best, results
