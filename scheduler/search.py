"""Exact search for a better order of a window: depth-first over sets of scheduled nodes.

The same window model as `ilp.solve_window` (steps outside [s, e) unchanged,
everything else exact), used as a fast exact *decision* procedure inside the
large-neighbourhood search: "is there an order of this window whose peak
inside the window is below `target`?".  A state is the set S of window nodes
already run; what is live at the next step depends only on S (and on |S|,
the step index), so a state that failed once fails always and is never
expanded twice.  States are pruned as soon as a step reaches the target.
Complete: answers yes (with an order), no (proven), or gives up at the
deadline / state limit.
"""
from __future__ import annotations

import time
from typing import Sequence

from onnx2mcu.scheduler.fusion import Fused


class Window:
    """The window [s, e) of `order` as bitmask data."""

    def __init__(self, fused: Fused, order: Sequence[int], s: int, e: int):
        prob = fused.prob
        M = fused.m
        nodes = list(order[s:e])
        m = len(nodes)
        self.nodes, self.m, self.s = nodes, m, s
        local = {v: i for i, v in enumerate(nodes)}
        pos = [0] * M
        for t, v in enumerate(order):
            pos[v] = t
        self.pred = [0] * m
        for i, v in enumerate(nodes):
            for p in fused.preds[v]:
                if p in local:
                    self.pred[i] |= 1 << local[p]
        base = [0] * m
        made: list[list[tuple[int, int, int]]] = [[] for _ in range(m)]  # (size, readers, tail)
        reads: list[list[tuple[int, int]]] = [[] for _ in range(m)]  # (size, readers) non-tail
        resident0 = 0
        for g, size in enumerate(prob.sizes):
            p = fused.gprod[g]
            cons = fused.gcons[g]
            out = prob.is_out[g]
            if not out and not cons:
                continue
            if not out and p is not None and all(c == p for c in cons):
                continue
            ppos = -1 if p is None else pos[p]
            last = M - 1 if out else max(pos[c] for c in cons)
            p_in = p is not None and s <= ppos < e
            readers = 0
            for c in cons:
                if c in local and c != p:
                    readers |= 1 << local[c]
            if not p_in and not readers:
                for t in range(max(ppos + 1, s), min(last, e - 1) + 1):
                    base[t - s] += size
                continue
            tail = out or last >= e
            if not p_in:
                if tail:
                    for t in range(m):
                        base[t] += size
                    continue
                resident0 += size
                for i in range(m):
                    if readers >> i & 1:
                        reads[i].append((size, readers))
                continue
            i = local[p]
            made[i].append((size, readers, tail))
            if not tail:
                for j in range(m):
                    if readers >> j & 1:
                        reads[j].append((size, readers))
        self.base, self.made, self.reads, self.resident0 = base, made, reads, resident0
        self.T = []
        self.T_first = []
        self.sigma = []
        self.options: list[list[int] | None] = []  # masks of readers that must have run
        for i, v in enumerate(nodes):
            d = fused.desc[v]
            self.T.append(d.T)
            self.T_first.append(d.T0 if s == 0 else d.T)
            self.sigma.append(d.sigma)
            opts = []
            for cand in d.K:
                others = [c for c in fused.gcons[cand] if c != v]
                if any(pos[c] >= e for c in others):
                    continue
                mask = 0
                for c in others:
                    if c in local:
                        mask |= 1 << local[c]
                opts.append(mask)
            self.options.append(opts)

    def step_cost(self, S: int, resident: int, i: int, step: int) -> int:
        mem = self.base[step] + resident + (self.T_first[i] if step == 0 else self.T[i])
        if self.options[i]:
            for mask in self.options[i]:
                if mask & S == mask:
                    mem -= self.sigma[i]
                    break
        return mem

    def after(self, S: int, resident: int, i: int) -> int:
        T = S | (1 << i)
        for size, readers, tail in self.made[i]:
            if tail or readers & ~T:
                resident += size
        for size, readers in self.reads[i]:
            if not readers & ~T:
                resident -= size
        return resident

    def peak_of(self, local_order: Sequence[int]) -> int:
        S, res, peak = 0, self.resident0, 0
        for step, i in enumerate(local_order):
            peak = max(peak, self.step_cost(S, res, i, step))
            res = self.after(S, res, i)
            S |= 1 << i
        return peak


def find_below(win: Window, target: int, deadline: float, max_states: int = 400_000):
    """An order of the window with every step < target: (local order | None, proven)."""
    m = win.m
    full = (1 << m) - 1
    failed: set[int] = set()
    # iterative DFS; children tried by increasing step cost
    stack = [(0, win.resident0, None)]
    path: list[int] = []
    iters = [iter(_children(win, 0, win.resident0, 0, target))]
    states = 0
    S = 0
    res_stack = [win.resident0]
    while iters:
        states += 1
        if states & 1023 == 0 and (time.perf_counter() > deadline or len(failed) > max_states):
            return None, False
        nxt = next(iters[-1], None)
        if nxt is None:
            failed.add(S)
            iters.pop()
            res_stack.pop()
            if path:
                i = path.pop()
                S &= ~(1 << i)
            continue
        i, res_after = nxt
        T = S | (1 << i)
        if T in failed:
            continue
        path.append(i)
        S = T
        if S == full:
            return list(path), True
        res_stack.append(res_after)
        iters.append(iter(_children(win, S, res_after, len(path), target)))
    del stack
    return None, True


def _children(win: Window, S: int, resident: int, step: int, target: int):
    out = []
    for i in range(win.m):
        if S >> i & 1 or win.pred[i] & ~S:
            continue
        cost = win.step_cost(S, resident, i, step)
        if cost >= target:
            continue
        after = win.after(S, resident, i)
        out.append((after, cost, i))
    out.sort()
    return [(i, after) for after, cost, i in out]


def solve_window_search(fused: Fused, order: Sequence[int], s: int, e: int, deadline: float,
                        max_states: int = 400_000):
    """Minimise the window's peak by repeated `find_below`: (new window order, peak, proven optimal)."""
    win = Window(fused, order, s, e)
    best = list(range(win.m))
    best_peak = win.peak_of(best)
    proven = False
    while time.perf_counter() < deadline:
        found, complete = find_below(win, best_peak, deadline, max_states)
        if found is None:
            proven = complete
            break
        best, best_peak = found, win.peak_of(found)
    return [win.nodes[i] for i in best], best_peak, proven


class RelaxedWindow:
    """A relaxation of the problem restricted to the super-nodes X = order[s:e], for lower bounds.

    For any full order, the steps of X's nodes hold at least what this model
    counts for the induced order of X, plus the background B:
    * X keeps the precedences implied by the whole graph (ancestors in X);
    * a group made in X lives from its maker to its last reader in X (readers
      outside X are ignored, so it may die earlier than it really does);
    * a group made outside X and read in X lives from its first to its last
      reader in X (its maker ran earlier still);
    * in-place savings only need X's other readers to have run;
    * B = groups touching no node of X whose maker is an ancestor of every node
      of X and that a descendant of every node of X reads (or graph outputs):
      they are live at every step of X.
    So the optimum of this model plus B is a lower bound on the true optimum.
    """

    def __init__(self, fused: Fused, order: Sequence[int], s: int, e: int):
        prob = fused.prob
        nodes = list(order[s:e])
        m = len(nodes)
        self.nodes, self.m = nodes, m
        local = {v: i for i, v in enumerate(nodes)}
        anc, desc = fused.closure()
        self.pred = [0] * m
        for i, v in enumerate(nodes):
            for u in nodes:
                if anc[v] >> u & 1:
                    self.pred[i] |= 1 << local[u]
        common_anc = -1
        common_desc = -1
        for v in nodes:
            common_anc &= anc[v]
            common_desc &= desc[v]
        self.background = 0
        self.made: list[list[tuple[int, int, bool]]] = [[] for _ in range(m)]
        self.lazy: list[list[tuple[int, int, bool]]] = [[] for _ in range(m)]  # first read here
        self.reads: list[list[tuple[int, int, bool]]] = [[] for _ in range(m)]  # (size, readers, lazy)
        self.resident0 = 0
        for g, size in enumerate(prob.sizes):
            p = fused.gprod[g]
            readers = 0
            outside_after = prob.is_out[g]  # live after every node of X?
            for c in fused.gcons[g]:
                if c in local:
                    if c != p:
                        readers |= 1 << local[c]
                elif common_desc >> c & 1:
                    outside_after = True
            early = p is None or common_anc >> p & 1  # made before every node of X
            if p is not None and p in local:
                if not outside_after and not readers:
                    continue
                self.made[local[p]].append((size, readers, outside_after))
                if not outside_after:
                    for j in range(m):
                        if readers >> j & 1:
                            self.reads[j].append((size, readers, False))
                continue
            if early and (outside_after or readers):
                if outside_after:
                    self.background += size  # live at every step of X
                else:
                    self.resident0 += size  # live from X's first step to its last reader in X
                    for j in range(m):
                        if readers >> j & 1:
                            self.reads[j].append((size, readers, False))
                continue
            if readers:
                for j in range(m):
                    if readers >> j & 1:
                        self.lazy[j].append((size, readers, outside_after))
                        if not outside_after:
                            self.reads[j].append((size, readers, True))
        self.T = [fused.desc[v].T for v in nodes]
        self.sigma = [fused.desc[v].sigma for v in nodes]
        self.options = []
        for v in nodes:
            opts = []
            for cand in fused.desc[v].K:
                mask = 0
                never = False
                for c in fused.gcons[cand]:
                    if c != v and c in local:
                        mask |= 1 << local[c]
                    elif c != v and common_desc >> c & 1:
                        never = True  # a reader that runs after all of X
                if not never:
                    opts.append(mask)
            self.options.append(opts)

    def step_cost(self, S: int, resident: int, i: int, step: int = 0) -> int:
        mem = resident + self.T[i]
        for size, readers, _ in self.lazy[i]:
            if not readers & S:
                mem += size  # first reader: the group becomes live now
        for mask in self.options[i]:
            if mask & S == mask:
                mem -= self.sigma[i]
                break
        return mem

    def after(self, S: int, resident: int, i: int) -> int:
        T = S | (1 << i)
        for size, readers, tail in self.made[i]:
            if tail or readers & ~T:
                resident += size
        for size, readers, tail in self.lazy[i]:
            if not readers & S and (tail or readers & ~T):
                resident += size
        for size, readers, lazy in self.reads[i]:
            if not readers & ~T and (not lazy or readers & S):
                resident -= size  # was live, read for the last time
        return resident

    def peak_of(self, local_order: Sequence[int]) -> int:
        S, res, peak = 0, self.resident0, 0
        for i in local_order:
            peak = max(peak, self.step_cost(S, res, i))
            res = self.after(S, res, i)
            S |= 1 << i
        return peak


def subset_lower_bound(fused: Fused, order: Sequence[int], s: int, e: int, deadline: float,
                       max_states: int = 200_000) -> int | None:
    """A proven lower bound on the whole graph's optimal peak from the nodes order[s:e], or None."""
    win = RelaxedWindow(fused, order, s, e)
    # the induced order is topological for the closure as well
    best = win.peak_of(_topological(win))
    while time.perf_counter() < deadline:
        found, complete = find_below(win, best, deadline, max_states)
        if found is None:
            return best + win.background if complete else None
        best = win.peak_of(found)
    return None


def _topological(win) -> list[int]:
    done, order = 0, []
    while len(order) < win.m:
        for i in range(win.m):
            if not done >> i & 1 and not win.pred[i] & ~done:
                order.append(i)
                done |= 1 << i
                break
    return order
