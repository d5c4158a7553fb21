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


def is_quantized_model(graph: Graph) -> bool:
    """Static (QDQ, Tensor.quant) or dynamic (DynamicQuantizeLinear, MatMulInteger...)."""
    from onnx2mcu.ops.int8 import QUANTIZERS
    from onnx2mcu.ops.integer import INTEGER_PRODUCTS

    return any(t.quant is not None for t in graph.tensors.values()) or any(
        n.op_type in QUANTIZERS + INTEGER_PRODUCTS for n in graph.nodes)


def precision_report(graph: Graph, kernels: dict | None = None) -> dict | None:
    """For a quantized model: how many nodes compute on int8 and how many in float (the float
    islands, by op and name), the requant mode, and per node its precision (and C kernel).

    Counted as compute: every node but the Q/DQ at the edges and islands, and the ops that only
    move elements (OpDef.quantized PASSTHROUGH or alias) on floats.  None for a float model."""
    from onnx2mcu.ops.int8 import node_precision
    from onnx2mcu.ops.registry import QUANT_PASSTHROUGH

    if not is_quantized_model(graph):
        return None
    nodes, islands, counts = [], [], {"int8": 0, "float": 0}
    for node in graph.nodes:
        precision = node_precision(node, graph)
        op = lookup(node.op_type, node.domain)
        moves = op is not None and (op.alias or op.quantized == QUANT_PASSTHROUGH)
        entry = {"node": node.name, "op": node.op_type, "dtype": precision or "edge"}
        if kernels is not None:
            entry["kernel"] = kernels.get(node.name)
        nodes.append(entry)
        if precision == "int8":
            counts["int8"] += 1
        elif precision == "float" and not moves:
            counts["float"] += 1
            islands.append({"node": node.name, "op": node.op_type})
    dynamic = sum(1 for n in graph.nodes if n.op_type == "DynamicQuantizeLinear")
    return {"requant": graph.requant, "int8_nodes": counts["int8"], "float_nodes": counts["float"],
            "float_islands": islands, "dynamic_quantizers": dynamic, "nodes": nodes}


def float_island_line(precision: dict | None) -> str | None:
    """The one line compile prints when a quantized model has compute nodes running in float.

    A dynamically quantized model (onnxruntime's quantize_dynamic) computes everything but its
    MatMulInteger/ConvInteger in float by its own definition: said so instead of "island"."""
    if not precision or not precision["float_islands"]:
        return None
    shown = precision["float_islands"][:8]
    more = len(precision["float_islands"]) - len(shown)
    listed = ", ".join(f"{e['op']} '{e['node']}'" for e in shown) + (f", and {more} more" if more else "")
    if precision.get("dynamic_quantizers"):
        return (f"{len(precision['float_islands'])} node(s) in float: {listed} (dynamic quantization: "
                f"only MatMulInteger/ConvInteger run on integers, on activations that "
                f"{precision['dynamic_quantizers']} DynamicQuantizeLinear node(s) quantize at run time; "
                "the model computes the rest in float)")
    return (f"{len(precision['float_islands'])} float island(s): " + listed
            + " (no integer kernel: they run in float between a DequantizeLinear and a QuantizeLinear)")
