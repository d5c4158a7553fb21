"""Eager accumulation: an Add/Sum of branches becomes a chain of accumulate steps.

The sum's output is one accumulator, started from one branch; each other
branch is added into it by its own step (an in-place Add, or, when the
branch's producer is a Conv/Pool/Gemm kernel, or a Conv followed by a
BatchNormalization, read only by the sum, by that producer itself as an
AccumulateKernel of onnx2mcu/ops/memrw.py).  The accumulator takes its
input's bytes at every step (the in-place rule of docs/ARCHITECTURE.md,
memory model), so a branch dies as soon as it is added and an accumulated
producer's output never exists.  The scheduler places the steps; the chain
follows the branches' order in the graph.  Float sums may differ from the
unrewritten model by the summation order only.  Kept only where it lowers
the peak (graph_opt/memrw.py).
"""
from __future__ import annotations

from onnx2mcu.graph_opt.context import PassContext
from onnx2mcu.graph_opt.memrw import PROLOGUE_READERS, try_rewrite
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.memrw import ACCUMULATE, DOMAIN, FUSED
from onnx2mcu.rewrite import Rewriter, is_standard, stable_topological_order


def _is_sum(graph: Graph, node: Node) -> bool:
    if not is_standard(node) or node.op_type not in ("Add", "Sum") or len(node.outputs) != 1:
        return False
    names = [n for n in node.inputs if n]
    if len(names) < 2 or len(set(names)) != len(names) or len(names) != len(node.inputs):
        return False
    out = graph.tensors[node.outputs[0]]
    return out.dtype is DType.FLOAT32 and all(
        not graph.tensors[n].is_const and graph.tensors[n].shape == out.shape
        and graph.tensors[n].dtype is DType.FLOAT32 and graph.tensors[n].quant is None for n in names)


def _accumulable(rw: Rewriter, graph: Graph, name: str, sum_node: Node) -> list[Node] | None:
    """The producer nodes that can accumulate `name` into the sum themselves, or None."""
    if name in graph.outputs or rw.consumers(name) != [sum_node]:
        return None
    producer = rw.producer(name)
    if producer is None or len(producer.outputs) != 1:
        return None
    if (is_standard(producer) and producer.op_type in PROLOGUE_READERS) or (
            producer.op_type == FUSED and not is_standard(producer)):
        return [producer]
    if is_standard(producer) and producer.op_type == "BatchNormalization" and len(producer.inputs) == 5 \
            and all(rw.const(p) is not None for p in producer.inputs[1:]):
        conv = rw.producer(producer.inputs[0])
        if conv is not None and len(conv.outputs) == 1 and rw.consumers(conv.outputs[0]) == [producer] \
                and conv.outputs[0] not in graph.outputs and (
                (is_standard(conv) and conv.op_type in PROLOGUE_READERS)
                or (conv.op_type == FUSED and not conv.attr("epilogue"))):
            return [conv, producer]
    return None


def _accumulate_node(rw: Rewriter, acc: str, out: str, producers: list[Node]) -> Node:
    kernel = producers[0]
    if kernel.op_type == FUSED:
        attrs = dict(kernel.attrs)
        inputs = list(kernel.inputs)
    else:
        attrs = {**kernel.attrs, "kernel": kernel.op_type, "n_kernel": len(kernel.inputs)}
        inputs = list(kernel.inputs)
    if len(producers) == 2:  # Conv -> BatchNormalization: the norm as the epilogue
        bn = producers[1]
        attrs["epilogue"] = "BatchNormalization"
        attrs["epsilon"] = bn.attr("epsilon", 1e-5)
        inputs += bn.inputs[1:]
    return Node(rw.names.node(kernel.name + "_acc"), ACCUMULATE, [acc] + inputs, [out], attrs, DOMAIN)


def chain_sums(graph: Graph, ctx: PassContext) -> list[str]:
    """Rewrite every Add/Sum of same-shaped float branches; returns the sums rewritten."""
    rw = Rewriter(graph, ctx.names)
    done: list[str] = []
    for node in list(graph.nodes):
        if not _is_sum(graph, node):
            continue
        position = {id(n): i for i, n in enumerate(graph.nodes)}
        producer_at = {name: position[id(rw.producer(name))] if rw.producer(name) is not None else -1
                       for name in node.inputs}
        branches = sorted(node.inputs, key=lambda n: producer_at[n])
        # start from a branch that dies at the sum (the accumulator then takes its bytes) and
        # that its producer cannot accumulate itself
        dying = [b for b in branches if b not in graph.outputs and rw.consumers(b) == [node]]
        first = next((b for b in dying if _accumulable(rw, graph, b, node) is None), None) or \
            (dying[0] if dying else branches[0])
        branches = [first] + [b for b in branches if b != first]
        out = node.outputs[0]
        acc = branches[0]
        doomed: list[Node] = [node]
        steps: list[Node] = []
        for k, branch in enumerate(branches[1:], start=1):
            target = out if k == len(branches) - 1 else rw.add_tensor(out + "_acc", graph.tensors[out].shape,
                                                                     DType.FLOAT32)
            producers = _accumulable(rw, graph, branch, node)
            if producers is not None:
                steps.append(_accumulate_node(rw, acc, target, producers))
                doomed += producers
            else:
                steps.append(Node(rw.names.node(node.name + "_acc"), "Add", [acc, branch], [target]))
            acc = target
        if len(node.inputs) == 2 and not any(s.domain == DOMAIN for s in steps):
            continue  # an Add that stays an Add: nothing to gain
        # each step where the later of its operands is produced (the scheduler moves them)
        nodes = [n for n in graph.nodes if not any(n is d for d in doomed)]
        produced_at = {o: i for i, n in enumerate(nodes) for o in n.outputs if o}
        insert: dict[int, list[Node]] = {}
        for step in steps:
            at = max((produced_at.get(i, -1) for i in step.inputs if i and not graph.tensors[i].is_const),
                     default=-1)
            insert.setdefault(at, []).append(step)
            for o in step.outputs:
                produced_at[o] = at
        ordered = insert.get(-1, [])[:]
        for i, n in enumerate(nodes):
            ordered.append(n)
            ordered += insert.get(i, [])
        graph.nodes = ordered
        graph.nodes = stable_topological_order(graph)
        rw.changed()
        done.append(node.name)
    return done


def eager_accumulation(graph: Graph, ctx: PassContext) -> dict | None:
    return try_rewrite("eager_accumulation", graph, ctx, chain_sums)
