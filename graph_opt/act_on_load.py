"""Activation applied on load: a Relu/Clip read only by Conv/Pool/Gemm kernels is not stored.

Each reader becomes a FusedKernel (onnx2mcu/ops/memrw.py) with the
activation as its prologue, reading the pre-activation tensor; the
activation's output never exists (docs/ARCHITECTURE.md, memory model).  The
NAS cells' ReLU-Conv-BN pattern is the main case: one state read by several
ReLUs, each of which was a full copy.  Exact: the reader computes on the
same values.  Kept only where it lowers the peak (graph_opt/memrw.py).
"""
from __future__ import annotations

from onnx2mcu.graph_opt.context import PassContext
from onnx2mcu.graph_opt.memrw import PROLOGUE_READERS, try_rewrite
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.memrw import DOMAIN, FUSED
from onnx2mcu.rewrite import Rewriter, is_standard, scalar


def _prologue(ix: Rewriter, node: Node) -> dict | None:
    """The prologue attributes of an activation node, or None if it is not one."""
    if not is_standard(node) or len(node.outputs) != 1:
        return None
    if node.op_type == "Relu":
        return {"prologue": "Relu"}
    if node.op_type == "Clip":
        bounds = []
        for position in (1, 2):
            if position >= len(node.inputs) or not node.inputs[position]:
                bounds.append(None)
                continue
            value = scalar(ix.const(node.inputs[position]))
            if value is None:
                return None
            bounds.append(float(value))
        return {"prologue": "Clip", "clip_min": bounds[0], "clip_max": bounds[1]}
    return None


def fuse_activations(graph: Graph, ctx: PassContext) -> list[str]:
    """Apply the rewrite everywhere it is valid; returns the activations removed."""
    rw = Rewriter(graph, ctx.names)
    done: list[str] = []
    outputs = set(graph.outputs)
    for act in list(graph.nodes):
        prologue = _prologue(rw, act)
        if prologue is None:
            continue
        x, y = act.inputs[0], act.outputs[0]
        if y in outputs or graph.tensors[x].is_const or graph.tensors[x].dtype is not DType.FLOAT32:
            continue
        readers = rw.consumers(y)
        if not readers or not all(is_standard(r) and r.op_type in PROLOGUE_READERS and len(r.outputs) == 1
                                  and r.inputs[0] == y and y not in r.inputs[1:] for r in readers):
            continue
        for reader in readers:
            fused = Node(reader.name, FUSED, [x] + list(reader.inputs[1:]), list(reader.outputs),
                         {**reader.attrs, "kernel": reader.op_type, "n_kernel": len(reader.inputs),
                          **prologue}, DOMAIN)
            rw.replace(reader, [fused])
        rw.remove(act)
        done.append(act.name)
    return done


def act_on_load(graph: Graph, ctx: PassContext) -> dict | None:
    return try_rewrite("act_on_load", graph, ctx, fuse_activations)
