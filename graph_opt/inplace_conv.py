"""In-place convolution: a depthwise or 1x1 Conv of stride 1 may overwrite its dying input.

TinyEngine (MCUNetV2) runs depthwise convolutions in place: an output channel
reads only its own input channel, so with one row buffer the output can take
the input's bytes.  A 1x1 conv is the same per pixel.  Each such float Conv
becomes a FusedKernel (onnx2mcu/ops/memrw.py) with no prologue, whose memory
rule lets its output take its input's bytes when the input dies there
(docs/ARCHITECTURE.md, memory model; the scheduler decides whether it does).
Exact: the same sums in the same order.  Convs that act_on_load already
wrapped get the rule without this pass.  Kept only where the peak drops
(graph_opt/memrw.py).
"""
from __future__ import annotations

from onnx2mcu.graph_opt.context import PassContext
from onnx2mcu.graph_opt.memrw import try_rewrite
from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops.memrw import DOMAIN, FUSED, inplace_kind
from onnx2mcu.rewrite import Rewriter, is_standard


def wrap_convs(graph: Graph, ctx: PassContext) -> list[str]:
    """Wrap every standard Conv that could run in place; returns their names."""
    rw = Rewriter(graph, ctx.names)
    done: list[str] = []
    for node in list(graph.nodes):
        if not (is_standard(node) and node.op_type == "Conv" and len(node.outputs) == 1):
            continue
        if graph.tensors[node.inputs[0]].quant is not None or rw.const(node.inputs[1]) is None:
            continue
        fused = Node(node.name, FUSED, list(node.inputs), list(node.outputs),
                     {**node.attrs, "kernel": "Conv", "n_kernel": len(node.inputs)}, DOMAIN)
        if inplace_kind(fused, graph) is None:
            continue
        rw.replace(node, [fused])
        done.append(node.name)
    return done


def inplace_conv(graph: Graph, ctx: PassContext) -> dict | None:
    return try_rewrite("inplace_conv", graph, ctx, wrap_convs, strict=True)
