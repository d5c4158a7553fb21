"""In-place convolution: a depthwise (or float 1x1) Conv may overwrite its dying input.

TinyEngine (MCUNetV2) runs depthwise convolutions in place: an output channel
reads only its own input channel, so with a small buffer the output can take
the input's bytes.  A 1x1 conv is the same per pixel.
* float: each stride-1 depthwise or 1x1 Conv becomes a FusedKernel
  (onnx2mcu/ops/memrw.py) with no prologue, whose memory rule lets its output take
  its input's bytes when the input dies there.  Convs that act_on_load already
  wrapped get the rule without this pass.
* int8: a depthwise Conv of any stride whose output plane is no larger than its
  input's (onnx2mcu/ops/int8.py `can_run_in_place`) gets the attribute
  `INPLACE_ATTR`: its kernel then computes each output channel into a one-plane
  scratch and copies it over input channels already read, so the output may shrink
  into its input's bytes (`OpDef.inplace_shrink`; docs/ARCHITECTURE.md, memory model).
Either way the scheduler decides whether it does.  Exact: the same sums in the same
order.  Kept only where the peak drops (graph_opt/memrw.py): the in-place kernels
carry a scratch.
"""
from __future__ import annotations

from onnx2mcu.graph_opt.context import PassContext
from onnx2mcu.graph_opt.memrw import try_rewrite
from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops.int8 import INPLACE_ATTR, can_run_in_place
from onnx2mcu.ops.memrw import DOMAIN, FUSED, inplace_kind
from onnx2mcu.rewrite import Rewriter, is_standard


def wrap_convs(graph: Graph, ctx: PassContext) -> list[str]:
    """Wrap (float) or mark (int8) every standard Conv that could run in place; returns their names."""
    rw = Rewriter(graph, ctx.names)
    done: list[str] = []
    for node in list(graph.nodes):
        if not (is_standard(node) and node.op_type == "Conv" and len(node.outputs) == 1):
            continue
        if graph.tensors[node.inputs[0]].quant is not None:
            if not node.attr(INPLACE_ATTR, 0) and can_run_in_place(node, graph):
                rw.replace(node, [Node(node.name, node.op_type, list(node.inputs), list(node.outputs),
                                       {**node.attrs, INPLACE_ATTR: 1}, node.domain)])
                done.append(node.name)
            continue
        if rw.const(node.inputs[1]) is None:
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
