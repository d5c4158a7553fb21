"""The Python API: what the CLI does, callable from code.

    import onnx2mcu
    report = onnx2mcu.simulate("model.onnx", input_shapes={"x": (1, 49, 10, 1)})
    print(report.peak_bytes, report.max_rel_err)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx

from onnx2mcu.frontend import load as _load
from onnx2mcu.frontend.load import read_model
from onnx2mcu.ir import Graph
from onnx2mcu.scheduler import Schedule, schedule
from onnx2mcu.simulator import SimResult
from onnx2mcu.simulator import simulate as _simulate
from onnx2mcu.simulator.compare import Agreement, Tolerance, compare, run_onnxruntime, seeded_inputs

ModelLike = "str | os.PathLike | onnx.ModelProto"


def load(model, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """ONNX file or ModelProto -> IR with static shapes and constants folded."""
    return _load(model, input_shapes)


@dataclass
class SimulationReport:
    graph: Graph
    schedule: Schedule
    result: SimResult
    inputs: dict[str, np.ndarray]
    agreement: Agreement | None

    @property
    def peak_bytes(self) -> int:
        return self.result.peak_bytes

    @property
    def max_rel_err(self) -> float | None:
        return None if self.agreement is None else self.agreement.max_rel_err

    def to_dict(self) -> dict:
        from onnx2mcu.report import simulation_report

        return simulation_report(self)


def simulate(model, input_shapes: Mapping[str, Sequence[int]] | None = None,
             inputs: Mapping[str, np.ndarray] | None = None, scheduler: str = "ilp",
             time_limit: float = 60.0, seed: int = 0, check_onnxruntime: bool = True,
             progress: Callable[[int], None] | None = None, graph: Graph | None = None,
             tolerance: Tolerance | None = None) -> SimulationReport:
    """Schedule, run in the simulator over the planned arena, and compare with onnxruntime."""
    if graph is None:
        from onnx2mcu.graph_opt import optimize

        graph, _ = optimize(_load(model, input_shapes))
    sched = schedule(graph, scheduler, time_limit=time_limit)
    values = dict(inputs) if inputs is not None else seeded_inputs(graph, seed)
    result = _simulate(graph, sched, values, progress=progress)
    agreement = None
    proto = None
    if check_onnxruntime:
        proto = model if isinstance(model, onnx.ModelProto) else read_model(model)[0]
        if {n.domain for n in proto.graph.node} - {"", "ai.onnx"}:
            check_onnxruntime = False  # onnxruntime cannot load our custom-domain ops
    if check_onnxruntime:
        expected = run_onnxruntime(proto, values, graph.outputs)
        agreement = compare(result.outputs, expected, tolerance)
    return SimulationReport(graph, sched, result, values, agreement)
