"""Choosing an execution order.  Entry point for every consumer of the scheduler."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph, Node
from onnx2mcu.scheduler.arena import ArenaPlan, check_plan, plan_arena
from onnx2mcu.scheduler.memory_model import MemoryProfile, profile

METHODS = ("file-order",)


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

    def report(self) -> dict:
        return {"method": self.method, "seconds": round(self.seconds, 4), "optimal": self.optimal,
                "lower_bound": self.lower_bound, "arena_method": self.plan.method, **self.stats}


def schedule(graph: Graph, method: str = "file-order", time_limit: float = 60.0) -> Schedule:
    """Order the graph's nodes, profile memory for that order and plan the arena."""
    if method not in METHODS:
        raise UserError(f"unknown scheduler '{method}'; choose one of {', '.join(METHODS)}")
    start = time.perf_counter()
    order = list(graph.nodes)
    prof = profile(graph, order)
    plan = plan_arena(prof)
    check_plan(prof, plan)
    return Schedule(order, prof, plan, method, time.perf_counter() - start,
                    stats={"ops": len(graph.nodes)})
