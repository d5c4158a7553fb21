"""Partial convolutions instead of a concat (SERENITY's channel-wise partitioning).

Concat(a1..ak, axis=1) read only by Conv kernels with group 1 (with or
without an activation prologue, onnx2mcu/ops/memrw.py): each such conv
becomes one partial convolution per slice, over the matching input-channel
slice of its weights, accumulating into the conv's output (the first
carries the bias).  The concatenated tensor never exists; each slice dies
once its partial convolutions have run (docs/ARCHITECTURE.md, memory model).
Exact up to the float summation order.  Whether it lowers the peak depends
on the order, so it is kept only where the scheduler says so
(graph_opt/memrw.py), never where it would raise it.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.graph_opt.context import PassContext
from onnx2mcu.graph_opt.memrw import estimate_peak, restore, snapshot, try_rewrite
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.memrw import ACCUMULATE, DOMAIN, FUSED
from onnx2mcu.rewrite import Rewriter, is_standard, stable_topological_order


def _splittable_conv(rw: Rewriter, node: Node, name: str) -> bool:
    """A group-1 conv reading `name` as its data input only, with constant weights."""
    if node.op_type == "Conv" and is_standard(node):
        pass
    elif node.op_type == FUSED and not is_standard(node) and node.attr("kernel") == "Conv" \
            and not node.attr("epilogue"):
        pass
    else:
        return False
    return (node.attr("group", 1) == 1 and node.inputs[0] == name and name not in node.inputs[1:]
            and len(node.outputs) == 1 and rw.const(node.inputs[1]) is not None)


def _own_attrs(node: Node) -> dict:
    if node.op_type == FUSED:
        return dict(node.attrs)
    return {**node.attrs, "kernel": "Conv", "n_kernel": len(node.inputs)}


def split_concats(graph: Graph, ctx: PassContext, only: set[str] | None = None) -> list[str]:
    """Rewrite every concat (of `only`, if given) whose readers are all splittable convs;
    returns the concats removed."""
    rw = Rewriter(graph, ctx.names)
    done: list[str] = []
    for concat in list(graph.nodes):
        if not (is_standard(concat) and concat.op_type == "Concat" and len(concat.outputs) == 1):
            continue
        if only is not None and concat.name not in only:
            continue
        out = concat.outputs[0]
        rank = len(graph.tensors[out].shape)
        axis = concat.attr("axis", 1)
        parts = list(concat.inputs)
        if rank != 4 or axis not in (1, -3) or out in graph.outputs or len(set(parts)) != len(parts) \
                or any(graph.tensors[p].is_const or graph.tensors[p].dtype is not DType.FLOAT32 for p in parts):
            continue
        readers = rw.consumers(out)
        if not readers or not all(_splittable_conv(rw, r, out) for r in readers):
            continue
        position = {id(n): i for i, n in enumerate(graph.nodes)}
        widths = [graph.tensors[p].shape[1] for p in parts]
        starts = np.cumsum([0] + widths)
        order = sorted(range(len(parts)), key=lambda k: position.get(id(rw.producer(parts[k])), -1))
        new: list[Node] = []
        for reader in readers:
            weight = rw.const(reader.inputs[1])
            y = reader.outputs[0]
            attrs = _own_attrs(reader)
            acc = ""
            for n, k in enumerate(order):
                w = rw.add_const(reader.inputs[1] + "_c", weight[:, starts[k]:starts[k + 1]])
                target = y if n == len(order) - 1 else rw.add_tensor(y + "_part", graph.tensors[y].shape,
                                                                     DType.FLOAT32)
                if n == 0:
                    inputs = [parts[k], w] + list(reader.inputs[2:3])
                    new.append(Node(rw.names.node(reader.name + "_part"), FUSED, inputs, [target],
                                    {**attrs, "n_kernel": len(inputs)}, DOMAIN))
                else:
                    new.append(Node(rw.names.node(reader.name + "_part"), ACCUMULATE, [acc, parts[k], w],
                                    [target], {**attrs, "n_kernel": 2}, DOMAIN))
                acc = target
        keep = [n for n in graph.nodes if n is not concat and not any(n is r for r in readers)]
        index = max(i for i, n in enumerate(graph.nodes) if n is concat)
        graph.nodes = keep[:index] + new + keep[index:]
        graph.nodes = stable_topological_order(graph)
        rw.changed()
        done.append(concat.name)
    return done


SWEEPS = 3  # passes over the refused concats (each estimate costs a heuristic schedule)


def split_where_lower(graph: Graph, ctx: PassContext) -> list[str]:
    """Concat by concat (in graph order): keep a split unless the scheduler's peak rises.
    Splitting can raise the peak where a conv's output is wider than its slices (a
    reduction cell's preprocessing), so the decision is per site; a split refused is tried
    again after the others (up to SWEEPS passes while one is kept): alone it may raise the
    peak where, with the later splits in, it lowers it (NASNet-A: 704 -> 512 KiB)."""
    probe = snapshot(graph)
    candidates = split_concats(graph, ctx)
    restore(graph, probe)
    done: list[str] = []
    current = estimate_peak(graph, ctx)
    todo = list(candidates)
    for _ in range(SWEEPS):  # a split refused early may lower the peak once later ones are in
        if not todo:
            break
        refused = []
        for name in todo:
            saved = snapshot(graph)
            if not split_concats(graph, ctx, {name}):
                restore(graph, saved)
                continue
            peak = estimate_peak(graph, ctx)
            if peak <= current:
                current = peak
                done.append(name)
            else:
                restore(graph, saved)
                refused.append(name)
        if len(refused) == len(todo):
            break
        todo = refused
    return done


def partial_conv(graph: Graph, ctx: PassContext) -> dict | None:
    return try_rewrite("partial_conv", graph, ctx, split_where_lower)
