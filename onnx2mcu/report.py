"""The report dictionaries (DESIGN §3) shared by `--json`, report.json and benchmarks, and the
one text report `compile` and `simulate` print (report_summary -> format_summary)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from onnx2mcu.ir import Graph
from onnx2mcu.latency import estimate, format_seconds
from onnx2mcu.ops import lookup

if TYPE_CHECKING:
    from onnx2mcu.budget import MemoryBudget
    from onnx2mcu.pipeline import SimulationReport
    from onnx2mcu.scheduler import Schedule
    from onnx2mcu.targets import Board


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


def buffer_entries(sched: "Schedule") -> list[dict]:
    """The planned buffers (what --plot-layout draws): label, tensors sharing it, bytes,
    offset, first and last step."""
    prof, plan = sched.profile, sched.plan
    return [{"label": b.label, "tensors": list(b.tensors), "bytes": b.nbytes, "offset": plan.offsets[b.index],
             "first": b.first, "last": b.last} for b in prof.buffers if b.index in plan.offsets]


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
        "buffers": buffer_entries(sched),
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
    `dynamic_quantizers` / `integer_products`: the DynamicQuantizeLinear and the MatMulInteger /
    ConvInteger nodes of dynamic quantization (the latter are int8 nodes that never requantize).

    Counted as compute: every node but the Q/DQ at the edges and islands, and the ops that only
    move elements (OpDef.quantized PASSTHROUGH or alias) on floats; the nodes a TiledRows node
    runs are counted one by one (`tiled_in` names it).  None for a float model."""
    from onnx2mcu.ops.int8 import node_precision
    from onnx2mcu.ops.integer import INTEGER_PRODUCTS
    from onnx2mcu.ops.registry import QUANT_PASSTHROUGH

    if not is_quantized_model(graph):
        return None
    from onnx2mcu.ops.rows import inner_nodes

    nodes, islands, counts = [], [], {"int8": 0, "float": 0}
    for node, owner, region in inner_nodes(graph):
        precision = node_precision(node, owner)
        op = lookup(node.op_type, node.domain)
        moves = op is not None and (op.alias or op.quantized == QUANT_PASSTHROUGH)
        entry = {"node": node.name, "op": node.op_type, "dtype": precision or "edge"}
        if region is not None:
            entry["tiled_in"] = region
        if kernels is not None:
            entry["kernel"] = kernels.get(region or node.name)
        nodes.append(entry)
        if precision == "int8":
            counts["int8"] += 1
        elif precision == "float" and not moves:
            counts["float"] += 1
            islands.append({"node": node.name, "op": node.op_type})
    dynamic = sum(1 for n in graph.nodes if n.op_type == "DynamicQuantizeLinear")
    products = sum(1 for n in graph.nodes if n.op_type in INTEGER_PRODUCTS)
    return {"requant": graph.requant, "int8_nodes": counts["int8"], "float_nodes": counts["float"],
            "float_islands": islands, "dynamic_quantizers": dynamic, "integer_products": products,
            "nodes": nodes}


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



# ----- the text report of compile and simulate -------------------------------------------------
# One report for both commands (report_summary -> format_summary): the same graph, schedule,
# board and budget give the same lines, so `simulate --board B` and `compile --board B` agree.
# ops with kernels of our own (binary / adder layers): the latency figures are not theirs
OWN_KERNEL_OPS = frozenset({"AdderMatMul", "AdderConv", "BinaryMatMul", "BinaryConv", "XnorGemm", "XnorConv"})
# (pass key, label) of the rewrites the report speaks about, in the pipeline's order
REWRITE_LABELS = (("tiling", "tiled attention/FFN"), ("embedding_compression", "embedding compression"),
                  ("act_on_load", "activation on load"), ("eager_accumulation", "eager accumulation"),
                  ("partial_conv", "partial convolutions"), ("inplace_conv", "in-place convolutions"),
                  ("patch", "patch-based inference"), ("int8_io", "int8 I/O"))


def human(n: int | None) -> str:
    if n is None:
        return "-"
    if abs(n) < 1024:
        return f"{n} B"
    if abs(n) < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.2f} MiB"


def _signed(n: int) -> str:
    """A change in bytes: "+1.5 KiB", "-192.0 KiB", "+-0 B"."""
    return f"{'+' if n > 0 else '-' if n < 0 else '+-'}{human(abs(n))}"


def weights_split(graph: Graph, budget: "MemoryBudget") -> tuple[set[str], int, int]:
    """(constants moved to external memory, bytes of the internal blob, bytes of the external
    one): none move unless the flash cannot hold them (codegen/weights.external_weights); the
    byte counts are those of the blobs codegen writes (16-byte aligned tables)."""
    from onnx2mcu.codegen.weights import external_weights, layout_weights

    external = external_weights(graph, budget.flash_for_weights()) if budget.has_external else set()
    internal = layout_weights(graph, exclude=external)[1]
    ext = layout_weights(graph, only=external)[1] if external else 0
    return external, internal, ext


def node_rows(graph: Graph, board: "Board") -> list[dict]:
    """Per node: op, MACs, weight bytes (its constant inputs), output bytes, the C kernel the
    board gets (None: only the Python reference runs it) and dtype ("int8"/"float"/"edge" in a
    quantized model, else the kernel's dtype)."""
    from onnx2mcu.codegen.kernels import Selection, node_dtype, select_kernel

    node_macs = macs(graph)
    precision = precision_report(graph)
    dtype_of = {e["node"]: e["dtype"] for e in precision["nodes"]} if precision else {}
    rows = []
    for node in graph.nodes:
        found = select_kernel(node, graph, board.kernels)
        consts = {n for n in node.inputs if n and graph.tensors[n].is_const}
        chosen = found if isinstance(found, Selection) else None
        rows.append({"node": node.name, "op": node.op_type, "macs": node_macs[node.name],
                     "weight_bytes": sum(graph.tensors[n].nbytes for n in consts),
                     "output_bytes": sum(graph.tensors[n].nbytes for n in node.outputs if n),
                     "kernel": chosen.kernel.name if chosen else None,
                     "backend": chosen.kernel.backend if chosen else None,
                     "dtype": dtype_of.get(node.name) or node_dtype(node, graph).value})
    return rows


def _macs_change(optimization: dict, key: str) -> str:
    """"+12.3% MACs" from the graph's MACs before and after the pass (graph_opt/pipeline.run_pass)."""
    counts = optimization.get("macs_by_pass", {}).get(key)
    if not counts:
        return "MACs unchanged"
    return f"{100 * (counts['after'] - counts['before']) / max(counts['before'], 1):+.1f}% MACs"


def rewrite_lines(optimization: dict) -> list[dict]:
    """What each rewrite did, or why it did not apply: [{"pass", "label", "applied", "text"}]."""
    not_applied = optimization.get("not_applied", {})
    out = []
    for key, label in REWRITE_LABELS:
        section = optimization.get(key)
        if key in not_applied:
            out.append({"pass": key, "label": label, "applied": False, "text": f"not applied: {not_applied[key]}"})
            continue
        if not section:
            continue
        if key == "tiling":
            details = []
            if "attention" in section:
                a = section["attention"]
                kv = "K/V computed once" if a["cache_kv"] else f"K/V computed {a['kv_passes']} times"
                details.append(f"{a['blocks']} attention block(s) in {a['tile_q']}x{a['tile_k']} tiles, {kv}")
            if "ffn" in section:
                f = section["ffn"]
                details.append(f"{f['blocks']} FFN block(s) in {f['tile_rows']}-row x {f['tile_f']} tiles")
            text = (f"{_macs_change(optimization, key)}, "
                    f"{_signed(section['peak_bytes'] - section['untiled_peak_bytes'])} peak (file order "
                    f"{human(section['untiled_peak_bytes'])} -> {human(section['peak_bytes'])}); " + "; ".join(details))
        elif key == "embedding_compression":
            text = (f"{section['ratio']:g}x on {len(section['tables'])} table(s), weights "
                    f"{_signed(section['weights_bytes_after'] - section['weights_bytes_before'])} "
                    f"({human(section['weights_bytes_before'])} -> {human(section['weights_bytes_after'])}), "
                    f"relative error {section['rel_error']:.3g} (lossy: asked with "
                    f"{'--weights-budget' if section.get('weights_budget') else '--compress-embeddings'})")
        elif key == "int8_io":  # graph_opt/int8_io.py (--int8-io)
            moved = [f"{kind} '{m['was']}' is now int8 '{m['now']}' (scale {m['scale']:.9g}, zero point "
                     f"{m['zero_point']})" for kind, ms in (("input", section["inputs"]), ("output", section["outputs"]))
                     for m in ms]
            text = "; ".join(moved) + " (the edge QuantizeLinear/DequantizeLinear run outside model_run)"
        elif key == "patch":  # graph_opt/patch.py (--patch auto)
            chains = "; ".join(f"{len(c['layers'])} layers in {c['grid'][0]}x{c['grid'][1]} patches, "
                               f"+{c['extra_macs']:,} MACs" for c in section["chains"])
            text = (f"{_signed(section['peak_after'] - section['peak_before'])} peak ({human(section['peak_before'])} "
                    f"-> {human(section['peak_after'])}, the scheduler's estimate), {_macs_change(optimization, key)}: "
                    + chains)
        else:
            text = (f"{section['applied']} site(s), {_signed(section['peak_after'] - section['peak_before'])} "
                    f"peak ({human(section['peak_before'])} -> {human(section['peak_after'])}, the scheduler's "
                    f"estimate), {_macs_change(optimization, key)}")
        out.append({"pass": key, "label": label, "applied": True, "text": text})
    return out


def report_summary(graph: Graph, sched: "Schedule", board: "Board", budget: "MemoryBudget",
                   optimization: dict | None = None) -> dict:
    """The data of the text report (and of `--json`'s "summary"): flash split internal /
    external, RAM against the board, the peak, the latency estimate, what the rewrites did,
    and the per-node rows."""
    from onnx2mcu.budget import io_bytes

    rows = node_rows(graph, board)
    total = sum(r["macs"] for r in rows)
    _, internal, external = weights_split(graph, budget)
    io = io_bytes(graph)
    step = sched.profile.peak_step
    peak_node = sched.order[step] if sched.order else None
    limited = budget.ram_bytes is not None
    latency = estimate(total, is_quantized_model(graph), {r["backend"] for r in rows if r["backend"]}, board,
                       [r["op"] for r in rows if r["op"] in OWN_KERNEL_OPS])
    return {
        "board": {"name": board.name, "core": board.core, "clock_hz": board.clock_hz},
        "ops": len(graph.nodes), "macs": total,
        "flash": {"weights_bytes": internal + external, "internal_bytes": internal, "external_bytes": external,
                  "flash_bytes": budget.flash_bytes, "code_allowance_bytes": budget.code_bytes,
                  "flash_for_weights": budget.flash_for_weights(), "ext_bytes": budget.ext_bytes,
                  "ext_origin": board.ext_origin},
        "ram": {"arena_bytes": sched.arena_bytes, "io_bytes": io, "stack_bytes": budget.stack_bytes,
                "heap_bytes": budget.heap_bytes,
                "needed_bytes": sched.arena_bytes + io + (budget.stack_bytes + budget.heap_bytes if limited else 0),
                "ram_bytes": budget.ram_bytes, "ram_budget": budget.model_ram_bytes},
        "peak": {"bytes": sched.peak_bytes, "step": step if peak_node else None,
                 "node": peak_node.name if peak_node else None, "op": peak_node.op_type if peak_node else None},
        "latency": latency,
        "rewrites": rewrite_lines(optimization or {}),
        "nodes": rows,
    }


def format_summary(summary: dict, verbose: bool = False) -> str:
    """The text report's lines (the same for compile and simulate)."""
    b, f, r, p, lat = summary["board"], summary["flash"], summary["ram"], summary["peak"], summary["latency"]
    clock = f", {b['clock_hz'] / 1e6:g} MHz" if b["clock_hz"] else ""
    lines = [f"board      {b['name']} ({b['core']}{clock})",
             f"ops        {summary['ops']}   MACs {summary['macs']:,}"]
    if f["flash_bytes"] is None:
        lines.append(f"flash      weights {human(f['weights_bytes'])} ({f['weights_bytes']:,} B); no flash limit "
                     "(host)")
    else:
        ext = (f"{f['external_bytes']:,} B external (of {human(f['ext_bytes'])} at {f['ext_origin']:#x})"
               if f["ext_bytes"] is not None else "no external memory")
        lines.append(f"flash      weights {human(f['weights_bytes'])}: {f['internal_bytes']:,} B internal (of "
                     f"{f['flash_for_weights']:,} B for weights: {human(f['flash_bytes'])} flash - "
                     f"{human(f['code_allowance_bytes'])} code allowance), {ext}")
    if r["ram_bytes"] is None:
        lines.append(f"RAM        arena {human(r['arena_bytes'])} ({r['arena_bytes']:,} B) + I/O buffers "
                     f"{r['io_bytes']:,} B; no RAM limit (host)")
    else:
        lines.append(f"RAM        arena {human(r['arena_bytes'])} ({r['arena_bytes']:,} B) + I/O buffers "
                     f"{r['io_bytes']:,} B + stack {r['stack_bytes']:,} B + heap {r['heap_bytes']:,} B = "
                     f"{r['needed_bytes']:,} B of {human(r['ram_bytes'])} ({100 * r['needed_bytes'] / r['ram_bytes']:.1f}%)")
    if r["ram_budget"] is not None:
        lines.append(f"           --ram-budget {r['ram_budget']:,} B for arena + I/O sized the tiles")
    if p["node"]:
        lines.append(f"peak       {human(p['bytes'])} ({p['bytes']:,} B) at step {p['step']}: {p['node']} ({p['op']})")
    if lat["estimated"]:
        lines.append(f"latency    ~{format_seconds(lat['seconds'])} at {lat['clock_hz'] / 1e6:g} MHz (estimate, "
                     "not a measurement)")
        lines.append(f"           = {lat['macs']:,} MACs x {lat['instr_per_mac']:g} instructions/MAC ({lat['kind']}, "
                     f"measured on {lat['figure_measured_on']}: {lat['figure_source']}) = "
                     f"{lat['instructions'] / 1e6:,.1f} M instructions")
        lines.append(f"           x {lat['cycles_per_instruction']:.1f} cycles/instruction ({lat['cpi_source']})")
        if lat.get("caveat"):
            lines.append(f"           {lat['caveat']}")
    else:
        lines.append(f"latency    not estimated: {lat['reason']}")
    for i, e in enumerate(summary["rewrites"]):
        lines.append(f"{'rewrites' if i == 0 else '':<10} {e['label']}: {e['text']}")
    if verbose:
        lines.append("")
        lines += node_table(summary["nodes"])
    return "\n".join(lines)


def node_table(rows: list[dict]) -> list[str]:
    """`--verbose`: one line per node (node, op, MACs, weight and output bytes, kernel, dtype),
    then the totals."""
    width = min(max((len(r["node"]) for r in rows), default=4), 40)
    head = f"{'node':<{width}}  {'op':<20} {'MACs':>13} {'weights B':>10} {'output B':>10}  {'kernel':<42} dtype"
    lines = [head]
    for r in rows:
        lines.append(f"{r['node'][:width]:<{width}}  {r['op'][:20]:<20} {r['macs']:>13,} {r['weight_bytes']:>10,} "
                     f"{r['output_bytes']:>10,}  {(r['kernel'] or '- (Python only)')[:42]:<42} {r['dtype']}")
    lines.append(f"{'total':<{width}}  {'':<20} {sum(r['macs'] for r in rows):>13,} "
                 f"{sum(r['weight_bytes'] for r in rows):>10,}")
    return lines
