"""Choosing an execution order.  Entry point for every consumer of the scheduler.

Methods:
* ``ilp`` (default): iterative graph fusion, heuristic warm start, then
  time-indexed ILPs (HiGHS through PuLP) on the fused graph's segments and
  around its peak; proven optimal when the peak meets the lower bound.
* ``greedy``: fusion plus the best of several list-scheduling heuristics and
  local search, no ILP.
* ``file-order``: the order of the model file (what TFLite Micro does).

Whatever the method, the reported peak is `memory.profile` of the
returned order, and "ilp"/"greedy" never return an order worse than the file
order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph, Node
from onnx2mcu.scheduler.arena import ArenaPlan, check_plan, plan_arena
from onnx2mcu.memory import MemoryProfile, profile

METHODS = ("ilp", "greedy", "file-order")


@dataclass
class Schedule:
    order: list[Node]
    profile: MemoryProfile
    plan: ArenaPlan
    method: str
    seconds: float
    optimal: bool = False
    lower_bound: int | None = None
    stats: dict = field(default_factory=dict)

    @property
    def peak_bytes(self) -> int:
        return self.profile.peak_bytes

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    @property
    def gap(self) -> float | None:
        """Relative distance of the peak to the lower bound (0.0 when proven optimal)."""
        if self.lower_bound is None or self.peak_bytes == 0:
            return None
        return (self.peak_bytes - self.lower_bound) / self.peak_bytes

    REPORT_KEYS = ("ops_before_fusion", "ops_after_fusion", "engine", "solver", "heuristic_peak",
                   "file_order_peak", "chosen")

    def report(self) -> dict:
        """What report.json and --json show.  Only "seconds" depends on the machine's speed;
        `stats` holds the rest (time per phase, windows solved, binaries pruned, ...)."""
        data = {"method": self.method, "seconds": round(self.seconds, 4), "optimal": self.optimal,
                "lower_bound": self.lower_bound, "peak_bytes": self.peak_bytes,
                "arena_bytes": self.arena_bytes, "arena_method": self.plan.method,
                "arena_lower_bound": self.plan.lower_bound}
        data.update({k: self.stats[k] for k in self.REPORT_KEYS if k in self.stats})
        return data


def schedule(graph: Graph, method: str = METHODS[0], time_limit: float = 60.0,
             solver: str = "highs") -> Schedule:
    """Order the graph's nodes, profile memory for that order and plan the arena."""
    if method not in METHODS:
        raise UserError(f"unknown scheduler '{method}'; choose one of {', '.join(METHODS)}")
    if solver not in ("highs", "cbc"):
        raise UserError(f"unknown ILP solver '{solver}'; choose highs or cbc")
    start = time.perf_counter()
    if method == "file-order":
        order = list(graph.nodes)
        stats = {"ops_before_fusion": len(order), "ops_after_fusion": len(order)}
        optimal, lower = False, None
    else:
        from onnx2mcu.scheduler.optimize import optimize
        share = 0.62 if method == "ilp" else 0.3
        outcome = optimize(graph, method, max(time_limit * share, 0.05), solver=solver)
        order, optimal, lower, stats = outcome.order, outcome.optimal, outcome.lower_bound, outcome.stats
    stats = dict(stats)
    stats["schedule_seconds"] = round(time.perf_counter() - start, 4)
    prof = profile(graph, order)
    remaining = max(0.97 * time_limit - (time.perf_counter() - start), 0.2)
    plan = plan_arena(prof, time_limit=remaining)
    check_plan(prof, plan)
    if lower is not None:
        lower = min(lower, prof.peak_bytes)
    return Schedule(order, prof, plan, method, time.perf_counter() - start, optimal, lower, stats)
