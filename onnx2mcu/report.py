"""The report dictionaries (DESIGN §3) shared by `--json`, report.json and benchmarks."""
from __future__ import annotations

from typing import TYPE_CHECKING

from onnx2mcu.ir import Graph
from onnx2mcu.ops import lookup

if TYPE_CHECKING:
    from onnx2mcu.pipeline import SimulationReport
    from onnx2mcu.scheduler import Schedule


def schedule_entries(sched: "Schedule") -> list[dict]:
    return [{"node": node.name, "op": node.op_type} for node in sched.order]


def tensor_entries(graph: Graph, sched: "Schedule") -> list[dict]:
    prof, plan = sched.profile, sched.plan
    entries = []
    for name, index in prof.buffer_of.items():
        buffer = prof.buffers[index]
        entries.append({"name": name, "bytes": graph.tensors[name].nbytes,
                        "offset": plan.offsets[index], "first": buffer.first, "last": buffer.last})
    return entries


def macs(graph: Graph) -> dict[str, int]:
    result = {}
    for node in graph.nodes:
        op = lookup(node.op_type, node.domain)
        result[node.name] = int(op.macs(node, graph)) if op is not None else 0
    return result


def simulation_report(report: "SimulationReport") -> dict:
    graph, sched, result = report.graph, report.schedule, report.result
    peak_node = sched.order[result.peak_step] if sched.order else None
    data = {
        "model": graph.source,
        "ops": len(graph.nodes),
        "peak_bytes": result.peak_bytes,
        "arena_bytes": result.arena_bytes,
        "weights_bytes": graph.weights_bytes,
        "peak_step": result.peak_step,
        "peak_node": peak_node.name if peak_node else None,
        "peak_op": peak_node.op_type if peak_node else None,
        "live_at_peak": result.live_at_peak,
        "max_abs_err": None if report.agreement is None else report.agreement.max_abs_err,
        "max_rel_err": None if report.agreement is None else report.agreement.max_rel_err,
        "max_scaled_err": None if report.agreement is None else report.agreement.max_scaled_err,
        "agreement": None if report.agreement is None else report.agreement.to_dict(),
        "macs": sum(macs(graph).values()),
        "notes": graph.notes,
        "inputs": {n: list(graph.tensors[n].shape) for n in graph.inputs},
        "outputs": {n: list(graph.tensors[n].shape) for n in graph.outputs},
        "scheduler": sched.report(),
        "schedule": schedule_entries(sched),
        "live_bytes": result.live_bytes,
        "tensors": tensor_entries(graph, sched),
    }
    return data
