"""The IR -> IR rewrites, run in a fixed order between the frontend and the scheduler.

The pass contract: each pass is `fn(graph, ctx: PassContext) -> dict | None`.
It rewrites `graph` in place and returns what it did for the report (None
when it did nothing); `ctx` carries the options, the report sink (for notes
the user must read, e.g. that an opt-in rewrite changed results) and the one
fresh-name source of the run.  After every pass `Graph.validate()` runs and
a broken graph raises GraphError naming the pass.

Passes that change numerics run only when asked (embedding compression, the
`plus-one` Sign(0) mapping of binary layers) and say so in the report; exact
rewrites (lowering of recognised binary/adder patterns, transformer tiling)
run by default.
"""
from __future__ import annotations

from onnx2mcu.graph_opt.context import (SIGN_ZERO_MAPPINGS, OptimizeOptions, Pass,  # noqa: F401
                                        PassContext, PassReport)
from onnx2mcu.ir import Graph, GraphError

# (report key, pass); passes add themselves here, in the order they must run.
PASSES: list[tuple[str, Pass]] = []

from onnx2mcu.graph_opt.float_islands import expand_float_islands  # noqa: E402  (exact)
from onnx2mcu.graph_opt.int8_io import move_edge_quantization  # noqa: E402  (exact; opt-in: the C API)
from onnx2mcu.graph_opt.pad_fold import fold_pads  # noqa: E402  (exact; float and int8)
from onnx2mcu.graph_opt.quant_fuse import fuse_quantized  # noqa: E402  (exact)
from onnx2mcu.graph_opt.table_fusion import fuse_tables  # noqa: E402  (exact: a chain's own values)

# pad_fold after quantized_fusion: an int8 Conv runs on the integers only once its activation is fused
PASSES += [("int8_io", move_edge_quantization), ("quantized_fusion", fuse_quantized), ("pad_fold", fold_pads), ("quantization", expand_float_islands),
           ("table_fusion", fuse_tables)]
# Report keys shown by `simulate` but kept out of the compiled report.json (whose bytes
# tests/test_golden_c.py pins): the quantized/float node counts, and why passes did nothing
# (the text report of compile and simulate prints those).
NOT_IN_BUILD_REPORT = frozenset({"quantization", "not_applied", "macs_by_pass"})

from onnx2mcu.graph_opt.adder import lower_adder  # noqa: E402  (binary/adder lowering, exact)
from onnx2mcu.graph_opt.binarize import lower_binary  # noqa: E402

PASSES += [("binary", lower_binary), ("adder", lower_adder)]

from onnx2mcu.graph_opt.embedding import compress_embeddings  # noqa: E402  (MCUBERT, §5)
from onnx2mcu.graph_opt.tiling import tile_transformer  # noqa: E402

PASSES += [("embedding_compression", compress_embeddings), ("tiling", tile_transformer)]


def total_macs(graph: Graph) -> int:
    """The graph's MACs by the op library's counts (OpDef.macs), for what a pass cost."""
    from onnx2mcu.ops import lookup

    total = 0
    for node in graph.nodes:
        op = lookup(node.op_type, node.domain)
        total += int(op.macs(node, graph)) if op is not None else 0
    return total


def run_pass(key: str, fn: Pass, graph: Graph, ctx: PassContext) -> None:
    """One pass, its section in the report, then the graph's invariants."""
    ctx.report.pending_reason = None
    before = total_macs(graph)
    result = fn(graph, ctx)
    if result:
        ctx.report.sections[key] = result
        ctx.report.macs[key] = (before, total_macs(graph))
    elif ctx.report.pending_reason is not None:
        ctx.report.not_applied[key] = ctx.report.pending_reason
    ctx.report.pending_reason = None
    try:
        graph.validate()
    except GraphError as exc:
        raise GraphError(f"after graph_opt pass '{key}': {exc}") from exc


def optimize(graph: Graph, options: OptimizeOptions | None = None) -> tuple[Graph, dict]:
    """Run every pass; returns the graph and {report key: what the pass did}."""
    ctx = PassContext.for_graph(graph, options)
    for key, fn in PASSES:
        run_pass(key, fn, graph, ctx)
    return graph, ctx.report.to_dict()

from onnx2mcu.graph_opt.act_on_load import act_on_load  # noqa: E402  (memory rewrites, graph_opt/memrw.py)
from onnx2mcu.graph_opt.eager_accumulation import eager_accumulation  # noqa: E402
from onnx2mcu.graph_opt.inplace_conv import inplace_conv  # noqa: E402
from onnx2mcu.graph_opt.partial_conv import partial_conv  # noqa: E402

PASSES += [("act_on_load", act_on_load), ("eager_accumulation", eager_accumulation),
           ("partial_conv", partial_conv), ("inplace_conv", inplace_conv)]

from onnx2mcu.graph_opt.patch import patch_inference  # noqa: E402  (exact; --patch auto, int8)

PASSES += [("patch", patch_inference)]
