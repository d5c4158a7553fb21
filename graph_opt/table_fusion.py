"""Elementwise chains of one int8 tensor become one 256-entry table (exact).

A quantized model often computes an elementwise function of one int8 tensor through several
nodes, some of them float islands: GELU from the exporters is DequantizeLinear -> Div -> Erf ->
QuantizeLinear -> Add 1 -> Mul by x -> Mul 0.5 (onnxruntime's quantize_static leaves Div and Erf
in float), the exporters' NaN guard after Softmax is DequantizeLinear -> IsNaN -> Where ->
QuantizeLinear.  Whatever the chain, its output is a function of the one int8 value of x at
the same position, so it takes 256 values at most: this pass runs the chain's own references
(int8 kernels with their Params, float islands in float) on every int8 value and replaces the
chain by one `onnx2mcu.Int8Table` node (onnx2mcu/ops/int8.py).  The table is checked on a
probe of x's own shape (every position with the same input value must give the same output),
so a node that is not elementwise after all (a broadcast constant varying along an axis) keeps
the chain as it was.  Exact: the simulator's outputs do not change by a byte, and the C runs
one table lookup where it ran the chain (fewer float islands, less RAM, fewer instructions).

Only chains that include a float island (a DequantizeLinear) are fused: the int8 kernels of a
pure int8 chain are already cheap, and leaving them keeps the graph the user knows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.int8 import TABLE
from onnx2mcu.ops.registry import run_reference
from onnx2mcu.rewrite import ELEMENTWISE_OPS, Rewriter, drop_unused_tensors

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext

MIN_ELEMENTS = 256  # the probe holds every int8 value at least once


def _int8_per_tensor(graph: Graph, name: str) -> bool:
    t = graph.tensors[name]
    return (not t.is_const and t.dtype is DType.INT8 and t.quant is not None and t.quant.axis is None
            and t.numel >= MIN_ELEMENTS)


def _chain(graph: Graph, ix: Rewriter, x: str, taken: set[int]) -> tuple[list[Node], str] | None:
    """The elementwise nodes computed from x alone (and constants), and their one output read
    elsewhere; None unless that output is int8 and the chain has a DequantizeLinear."""
    shape = graph.tensors[x].shape
    made, members = {x}, []
    producer = ix.producer(x)
    start = 0 if producer is None else next(i for i, n in enumerate(graph.nodes) if n is producer) + 1
    for node in graph.nodes[start:]:
        if id(node) in taken or node.domain not in ("", "ai.onnx") or node.op_type not in ELEMENTWISE_OPS:
            continue
        data = [i for i in node.inputs if i and not graph.tensors[i].is_const]
        if not data or any(i not in made for i in data) or len([o for o in node.outputs if o]) != 1:
            continue
        if graph.tensors[node.outputs[0]].shape != shape:
            continue
        members.append(node)
        made.add(node.outputs[0])
    ids = {id(n) for n in members}
    escaping = [o for n in members for o in n.outputs
                if o in graph.outputs or any(id(u) not in ids for u in ix.consumers(o))]
    if len(escaping) != 1 or len(members) < 2 or not any(n.op_type == "DequantizeLinear" for n in members):
        return None
    y = escaping[0]
    if not _int8_per_tensor(graph, y):
        return None
    # only what y depends on
    needed, stack = set(), [y]
    by_output = {n.outputs[0]: n for n in members}
    while stack:
        node = by_output.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(i for i in node.inputs if i)
    chain = [n for n in members if id(n) in needed]
    return (chain, y) if len(chain) >= 2 else None


def table_of(graph: Graph, chain: list[Node], x: str, y: str) -> np.ndarray | None:
    """The chain's output for every int8 value of x, by its own references; None when some
    position disagrees with another of the same input value (not elementwise)."""
    shape = graph.tensors[x].shape
    probe = np.resize(np.arange(-128, 128, dtype=np.int8), int(np.prod(shape))).reshape(shape)
    values = {x: probe}
    for node in chain:
        args = [None if not i else values[i] if i in values else graph.tensors[i].data for i in node.inputs]
        for name, value in zip(node.outputs, run_reference(node, args, graph)):
            values[name] = np.asarray(value)
    out = values[y].reshape(-1).astype(np.int8)
    flat = probe.reshape(-1).astype(np.int16) + 128
    table = np.zeros(256, dtype=np.int8)
    table[flat[:256]] = out[:256]
    if not np.array_equal(table[flat], out):
        return None
    return table


def fuse_tables(graph: Graph, ctx: PassContext) -> dict | None:
    ix = Rewriter(graph, ctx.names)
    fused = []
    taken: set[int] = set()
    candidates = [n for n in graph.inputs] + [o for node in graph.nodes for o in node.outputs if o]
    for x in candidates:
        if x not in graph.tensors or not _int8_per_tensor(graph, x):
            continue
        found = _chain(graph, ix, x, taken)
        if found is None:
            continue
        chain, y = found
        table = table_of(graph, chain, x, y)
        if table is None:
            continue
        node = ix.new_node(f"{chain[-1].name}/table", TABLE, [x], [y], {"table": table}, "onnx2mcu")
        ix.replace(chain, [node])
        taken.add(id(node))
        fused.append({"node": node.name, "replaced": [f"{n.op_type} '{n.name}'" for n in chain]})
    if not fused:
        ctx.report.pending_reason = "no elementwise chain with a float island found"
        return None
    drop_unused_tensors(graph)
    return {"tables": len(fused), "nodes_replaced": sum(len(f["replaced"]) for f in fused), "chains": fused}
