"""Time-indexed ILP over a window of a fused order, solved with HiGHS (or CBC) through PuLP.

The window is a run of consecutive steps [s, e) of a current order; the ILP
re-orders the super-nodes inside it and leaves everything else in place.
Steps outside the window are unaffected by any such re-ordering (what is
live there depends only on which side of the step each op is), so the
window ILP minimises the exact peak inside the window.  When the window is
the whole graph (or a whole segment between two cut nodes that every order
must pass), its optimum is the true optimum and its dual bound a true lower
bound.

Variables (topology-aware pruning: a super-node v can only run at steps in
[asap(v), alap(v)] = [#ancestors, m-1-#descendants] inside the window):
  R[v,t] in {0,1}  "v has run by step t", for t in [asap(v), alap(v)-1];
                   0 before asap, 1 from alap on.  x[v,t] = R[v,t]-R[v,t-1].
  L[g,t] >= 0      group g is live across step t (continuous; forced to 0/1
                   by the constraints below and the objective)
  I[v,t] >= 0      v runs at t and takes its order-dependent in-place saving
  P                the peak
Constraints:
  sum_v R[v,t] = t+1;  R[v,t-1] <= R[v,t];  R[v,t] <= R[u,t-1] for u -> v
  L[g,t] >= R[prod,t-1] - R[c,t-1] for every reader c   (a group is live from
           the step after its producer to its last reader; graph outputs and
           groups read after the window to the end)
  I[v,t] <= x[v,t],  I[v,t] <= R[c,t-1] for the other readers c of v's
           in-place candidate (one candidate; several are OR-ed with helpers)
  base[t] + sum_g size(g) L[g,t] + sum_v T(v) x[v,t] - sum_v sigma(v) I[v,t] <= P
which is exactly the fused model of fusion.py (T(v) charges v's inputs,
outputs, scratch and internal steps at its own step).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

import pulp

from onnx2mcu.scheduler.fusion import Fused

SOLVERS = ("highs", "cbc")
# HiGHS keeps one global thread pool per process and refuses to run a model whose
# `threads` option differs from the pool's; we use one thread (measured faster than the
# default on our windows) and reset the pool when a run is refused (see _HiGHS).
HIGHS_THREADS = 1


@dataclass
class WindowResult:
    order: list[int]  # the window's super-nodes in the new order
    peak: int  # exact peak inside the window for that order (by the model)
    bound: float  # proven lower bound on the window's optimum
    optimal: bool
    status: str
    seconds: float
    binaries: int
    pruned: int  # binaries removed by the ASAP/ALAP windows


@contextlib.contextmanager
def _quiet_stdout():
    """HiGHS prints a banner on stdout the first time a solver is created."""
    try:
        fd = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def _var(lp: pulp.LpProblem, name: str, lowBound=None, upBound=None, cat: str = "Continuous"):
    """A variable of `lp` (PuLP >= 3.3 wants them created through the problem)."""
    if hasattr(lp, "add_variable"):
        return lp.add_variable(name, lowBound, upBound, cat)
    return pulp.LpVariable(name, lowBound, upBound, cat)


class _HiGHS(pulp.HiGHS):
    """pulp.HiGHS plus a warm start and the dual bound."""

    def __init__(self, start: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.start = start
        self.bound = None
        self.model_status = None

    def createAndConfigureSolver(self, lp):
        with _quiet_stdout():
            super().createAndConfigureSolver(lp)

    def callSolver(self, lp):
        import highspy
        h = lp.solverModel
        if self.start:
            values = [0.0] * h.getNumCol()
            for var, value in self.start.items():
                values[var.index] = float(value)
            sol = highspy.HighsSolution()
            sol.col_value = values
            sol.value_valid = True
            h.setSolution(sol)
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kNotset:
            h.resetGlobalScheduler(True)
            h.run()
        info = h.getInfo()
        self.bound = info.mip_dual_bound
        self.objective = info.objective_function_value
        self.model_status = h.modelStatusToString(h.getModelStatus())


def solve_window(fused: Fused, order: Sequence[int], s: int, e: int, time_limit: float,
                 solver: str = "highs", upper: int | None = None, threads: int = HIGHS_THREADS,
                 lower: int = 0) -> WindowResult:
    """Re-order order[s:e] to minimise the peak inside the window (warm start: the current order)."""
    t_start = time.perf_counter()
    model = _build(fused, order, s, e, upper, lower)
    lp, P = model.lp, model.P
    values = model.start_values()
    gcd = model.gcd
    if model.binaries == 0:  # the window admits a single order
        peak = int(round(values[P]))
        return WindowResult(list(order[s:e]), peak, float(peak), True, "Optimal",
                            time.perf_counter() - t_start, 0, model.pruned)
    if solver == "highs":
        sol = _HiGHS(start=values, msg=False, timeLimit=max(time_limit, 0.01), threads=HIGHS_THREADS,
                     mip_rel_gap=0.0, mip_abs_gap=max(gcd - 0.5, 0.5))
        with _quiet_stdout():
            lp.solve(sol)
        bound = sol.bound
        status = sol.model_status or ""
        optimal = status == "Optimal"
        got = {var: (var.varValue or 0.0) for var in model.R.values()}
        _, decoded = model.decode(got)
        if decoded > sol.objective + 0.5 and time.perf_counter() - t_start < time_limit:
            # HiGHS can report a better objective found in its presolved space yet hand back
            # the start vector; solve again without the start, cut off at the start's peak
            retry = _HiGHS(start=None, msg=False, threads=HIGHS_THREADS, mip_rel_gap=0.0,
                           mip_abs_gap=max(gcd - 0.5, 0.5),
                           timeLimit=max(time_limit - (time.perf_counter() - t_start), 0.01))
            P.upBound = values[P]
            with _quiet_stdout():
                lp.solve(retry)
            if retry.model_status in ("Optimal", "Time limit reached"):
                bound = max(bound, retry.bound) if retry.bound == retry.bound else bound
                optimal = retry.model_status == "Optimal"
                status = retry.model_status
    elif solver == "cbc":
        for var, val in values.items():
            var.setInitialValue(val)
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "cbc.log")
            sol = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(time_limit, 1), warmStart=True,
                                    threads=threads, logPath=log, gapRel=0,
                                    gapAbs=max(gcd - 0.5, 0.5))
            lp.solve(sol)
            text = open(log).read() if os.path.exists(log) else ""
        if os.environ.get("ONNX2MCU_CBC_LOG"):
            print(text)
        bound = _cbc_bound(text)
        optimal = "Optimal solution found" in text
        status = "Optimal" if optimal else "Stopped"
    else:
        raise ValueError(f"unknown ILP solver {solver}")
    got = {var: (var.varValue if var.varValue is not None else values.get(var, 0.0))
           for var in model.R.values()}
    new_order, peak = model.decode(got)
    if peak > values[P] + 1e-6:  # never hand back worse than the start
        new_order = list(order[s:e])
        peak = int(round(values[P]))
    if bound is None or bound != bound or bound == float("inf") or bound == float("-inf"):
        bound = float(lower)
    bound = math.ceil(bound / gcd - 1e-6) * gcd if gcd > 0 else bound
    if optimal:
        bound = max(bound, peak)
    bound = min(bound, peak)
    return WindowResult(new_order, int(peak), float(bound), optimal, status,
                        time.perf_counter() - t_start, model.binaries, model.pruned)


# Extra cuts "a reader running at t keeps its input live at t": valid, but measured
# about 2x slower with HiGHS on NAS windows, so off.
STRENGTHEN = False


def _x(r, i: int, t: int):
    """x[i,t] = R[i,t] - R[i,t-1] as an expression, or None when constant."""
    a = r(i, t)
    b = r(i, t - 1) if t > 0 else 0
    if isinstance(a, int) and isinstance(b, int):
        return None
    return a - b


class _Model:
    """The PuLP model of one window, plus what is needed to warm-start and decode it."""

    def __init__(self):
        self.lp = pulp.LpProblem("window", pulp.LpMinimize)
        self.R: dict[tuple[int, int], pulp.LpVariable] = {}
        self.live: list[tuple[pulp.LpVariable, list]] = []  # L >= pd - rc for each (pd, rc)
        self.helpers: list[tuple[pulp.LpVariable, list]] = []  # H <= each r in list
        self.ips: list[tuple[pulp.LpVariable, tuple, list, list]] = []  # I, x-expr, consts, helper-or-r
        self.mem_terms: list[dict] = []
        self.base: list[int] = []

    # R[i,t] as int 0/1 or a variable
    def r(self, i: int, t: int):
        if t < self.asap[i]:
            return 0
        if t >= self.alap[i]:
            return 1
        return self.R[i, t]

    def start_values(self) -> dict:
        """A complete feasible solution for the current order of the window."""
        values = self.aux_values({var: (1.0 if i <= t else 0.0) for (i, t), var in self.R.items()})
        values[self.P] = float(max(max(self.memory(values), default=0), self.lower))
        return values

    def memory(self, values: dict) -> list[float]:
        return [self.base[t] + sum(coef * values[var] for var, coef in self.mem_terms[t].items())
                for t in range(self.m)]

    def decode(self, got: dict) -> tuple[list[int], int]:
        m = self.m
        when = []
        for i in range(m):
            t_run = self.alap[i]
            for t in range(self.asap[i], self.alap[i]):
                if got.get(self.R[i, t], 0.0) > 0.5:
                    t_run = t
                    break
            when.append((t_run, i))
        local = [i for _, i in sorted(when)]
        rank = [0] * m
        for k, i in enumerate(local):
            rank[i] = k
        if any(rank[p] > rank[i] for i in range(m) for p in self.lpreds[i]):
            local = list(range(m))  # not a solution (no incumbent): keep the start order
            rank = list(range(m))
        values: dict = {}
        for (i, t), var in self.R.items():
            values[var] = 1.0 if rank[i] <= t else 0.0
        # exact memory of the decoded order, by the same model
        mem = self.memory(self.aux_values(values))
        return [self.nodes[i] for i in local], int(round(max(mem, default=0)))

    def aux_values(self, rvalues: dict) -> dict:
        """L, H and I at their tightest values for given R values."""
        values = dict(rvalues)

        def val(x) -> float:
            return float(x) if isinstance(x, (int, float)) else values[x]

        for var, need in self.live:
            values[var] = max(0.0, max(val(pd) - val(rc) for pd, rc in need))
        for var, rs in self.helpers:
            values[var] = min(val(x) for x in rs)
        for var, (i, t), caps in self.ips:
            x = val(self.r(i, t)) - (val(self.r(i, t - 1)) if t > 0 else 0.0)
            if self.ip_or[var]:
                cap = min(1.0, sum(val(c) for c in caps))
            else:
                cap = min(val(c) for c in caps)
            values[var] = max(0.0, min(x, cap))
        return values


def _build(fused: Fused, order: Sequence[int], s: int, e: int, upper: int | None,
           lower: int) -> _Model:
    prob = fused.prob
    M = fused.m
    md = _Model()
    nodes = list(order[s:e])
    m = len(nodes)
    md.nodes, md.m, md.lower = nodes, m, max(lower, 0)
    local = {v: i for i, v in enumerate(nodes)}
    pos = [0] * M
    for t, v in enumerate(order):
        pos[v] = t
    lpreds = [[local[p] for p in fused.preds[v] if p in local] for v in nodes]
    lsuccs: list[list[int]] = [[] for _ in range(m)]
    for i in range(m):
        for p in lpreds[i]:
            lsuccs[p].append(i)
    anc = [0] * m
    for i in range(m):  # order[s:e] is topological
        a = 0
        for p in lpreds[i]:
            a |= anc[p] | (1 << p)
        anc[i] = a
    desc = [0] * m
    for i in range(m - 1, -1, -1):
        d = 0
        for c in lsuccs[i]:
            d |= desc[c] | (1 << c)
        desc[i] = d
    md.lpreds = lpreds
    md.asap = [bin(a).count("1") for a in anc]
    md.alap = [m - 1 - bin(d).count("1") for d in desc]
    asap, alap, r = md.asap, md.alap, md.r
    lp = md.lp
    for i in range(m):
        for t in range(asap[i], alap[i]):
            md.R[i, t] = _var(lp, f"R_{i}_{t}", cat="Binary")
    md.binaries = len(md.R)
    md.pruned = m * (m - 1) - md.binaries  # versus R over every step
    md.P = P = _var(lp, "P", lowBound=md.lower)
    if upper is not None:
        P.upBound = upper
    lp += P
    for t in range(m):
        terms = [md.R[i, t] for i in range(m) if (i, t) in md.R]
        done = sum(1 for i in range(m) if t >= alap[i])
        if terms:
            lp += pulp.lpSum(terms) == t + 1 - done
    for i in range(m):
        for t in range(asap[i] + 1, alap[i]):
            lp += md.R[i, t - 1] <= md.R[i, t]
        for p in lpreds[i]:
            for t in range(asap[i], alap[i]):
                rp = r(p, t - 1)
                if isinstance(rp, int):
                    if rp == 0:
                        lp += md.R[i, t] == 0
                    continue
                lp += md.R[i, t] <= rp

    md.mem_terms = [dict() for _ in range(m)]
    md.base = [0] * m
    base, mem_terms = md.base, md.mem_terms

    def add(t: int, var, coef: int) -> None:
        if isinstance(var, int):
            base[t] += coef * var
        else:
            mem_terms[t][var] = mem_terms[t].get(var, 0) + coef

    def add_x(i: int, t: int, coef: int) -> None:
        add(t, r(i, t), coef)
        if t > 0:
            add(t, r(i, t - 1), -coef)

    sizes = prob.sizes
    coefs = []
    for g, size in enumerate(sizes):
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
        local_cons = [local[c] for c in cons if c in local and c != p]
        if not p_in and not local_cons:
            for t in range(max(ppos + 1, s), min(last, e - 1) + 1):
                base[t - s] += size
            continue
        coefs.append(size)
        lp_ = local[p] if p_in else None
        if out or last >= e:  # live to the end of the window once made
            for t in range(m):
                if lp_ is None:
                    base[t] += size
                elif t >= 1:
                    add(t, r(lp_, t - 1), size)
            continue
        for t in range(m):
            pd = 1 if lp_ is None else (r(lp_, t - 1) if t >= 1 else 0)
            if isinstance(pd, int) and pd == 0:
                continue
            need = []
            surely = False
            for c in local_cons:
                rc = r(c, t - 1) if t >= 1 else 0
                if isinstance(rc, int):
                    if rc == 0:
                        surely = True
                else:
                    need.append((pd, rc))
            if surely:
                add(t, pd, size)  # a reader certainly still to come: live iff made
                continue
            if not need:
                continue
            L = _var(lp, f"L_{g}_{t}", lowBound=0)
            for a, b in need:
                lp += L >= a - b
            if STRENGTHEN:
                for c in local_cons:  # a reader running at t keeps g live at t
                    xc = _x(r, c, t)
                    if xc is not None:
                        lp += L >= xc
            md.live.append((L, need))
            add(t, L, size)
    md.ip_or = {}
    for i, v in enumerate(nodes):
        d = fused.desc[v]
        coefs.extend([d.T, d.T0])
        for t in range(asap[i], alap[i] + 1):
            add_x(i, t, d.T0 if (s == 0 and t == 0) else d.T)
        if not d.K:
            continue
        coefs.append(d.sigma)
        options = []
        for cand in d.K:
            others = [c for c in fused.gcons[cand] if c != v]
            if any(pos[c] >= e for c in others):
                continue
            options.append([local[c] for c in others if c in local])
        if not options:
            continue
        for t in range(asap[i], alap[i] + 1):
            if s == 0 and t == 0:
                continue
            opts = []
            always = False
            for opt in options:
                rs = [r(c, t - 1) for c in opt]
                if any(isinstance(x, int) and x == 0 for x in rs):
                    continue  # some reader surely not yet run
                rs = [x for x in rs if not isinstance(x, int)]
                if not rs:
                    always = True
                    break
                opts.append(rs)
            if always:
                add_x(i, t, -d.sigma)
                continue
            if not opts:
                continue
            I = _var(lp, f"I_{i}_{t}", lowBound=0, upBound=1)
            x = pulp.LpAffineExpression()
            for var, coef in ((r(i, t), 1), (r(i, t - 1) if t > 0 else 0, -1)):
                x = x + coef * var
            lp += I <= x
            if len(opts) == 1:
                caps = opts[0]
                for c in caps:
                    lp += I <= c
                md.ip_or[I] = False
            else:
                caps = []
                for k, rs in enumerate(opts):
                    H = _var(lp, f"H_{i}_{t}_{k}", lowBound=0, upBound=1)
                    for c in rs:
                        lp += H <= c
                    md.helpers.append((H, rs))
                    caps.append(H)
                lp += I <= pulp.lpSum(caps)
                md.ip_or[I] = True
            md.ips.append((I, (i, t), caps))
            add(t, I, -d.sigma)
    for t in range(m):
        terms = [(var, coef) for var, coef in mem_terms[t].items() if coef]
        if terms:
            lp += pulp.LpAffineExpression(terms, constant=base[t]) <= P
        else:
            lp += P >= base[t]
    md.gcd = 0
    for c in coefs + base:
        md.gcd = math.gcd(md.gcd, int(c))
    md.gcd = md.gcd or 1
    return md


def _cbc_bound(text: str) -> float | None:
    for pattern in (r"Lower bound:\s*([-\d.eE+]+)", r"best possible\s*([-\d.eE+]+)",
                    r"Objective value:\s*([-\d.eE+]+)"):
        found = re.findall(pattern, text)
        if found:
            try:
                return float(found[-1])
            except ValueError:
                continue
    return None
