"""Quantized nodes whose op has no integer implementation run in float, as the model says.

The frontend (frontend/qdq.py) folds a QDQ model's QuantizeLinear/
DequantizeLinear nodes into Tensor.quant.  A node touching quantized tensors
keeps them only when its op can run on the integers (OpDef.quantized):
QUANT_INTEGER, or QUANT_PASSTHROUGH (moves elements) when all its integer
tensors share one QuantParams and its kernels take their dtype.  Every other
quantized node becomes DequantizeLinear -> the float op -> QuantizeLinear again:

* the Q/DQ nodes the frontend folded come back as they were (names, inputs,
  attributes, float tensors, and their places in the node and tensor order),
  so that a QDQ model's IR, and so its C, is the one the frontend gave before
  quantization was part of the IR;
* an integer constant (weight, bias) becomes its float dequantization in place,
  which is the float constant the frontend's folding made (qdq.py lifts a
  constant only when the two agree bit for bit);
* a quantized tensor with no record (made by a later rewrite) gets a new
  DequantizeLinear / QuantizeLinear with its parameters as constants.

Exact: runs first, before any rewrite that could read quantized tensors.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from onnx2mcu.frontend.qdq import QDQ_OPS, FoldedNode
from onnx2mcu.ir import DType, Graph, Node, QuantParams, Tensor
from onnx2mcu.ops import lookup
from onnx2mcu.ops.registry import QUANT_INTEGER, QUANT_PASSTHROUGH


def expand_float_islands(graph: Graph, options=None) -> dict | None:
    """Re-expand the quantized nodes without an integer implementation; report the counts."""
    quantized = [n for n in graph.nodes if is_quantized_node(graph, n)]
    if not quantized:
        return None
    expand = [n for n in quantized if not runs_on_integers(graph, n)]
    _Expansion(graph, expand).run()
    graph.validate()
    return {"quantized_nodes": len(quantized), "integer": len(quantized) - len(expand),
            "float": len(expand),
            "float_ops": dict(sorted(Counter(n.op_type for n in expand).items())),
            "integer_ops": dict(sorted(Counter(n.op_type for n in quantized
                                               if n not in expand).items()))}


def is_quantized_node(graph: Graph, node: Node) -> bool:
    """A node (other than an explicit Q/DQ) that reads or writes a tensor with `quant`."""
    if node.op_type in QDQ_OPS and node.domain in ("", "ai.onnx"):
        return False
    return any(n and graph.tensors[n].quant is not None for n in list(node.inputs) + list(node.outputs))


def runs_on_integers(graph: Graph, node: Node) -> bool:
    op = lookup(node.op_type, node.domain)
    if op is None:
        return False
    if op.quantized == QUANT_INTEGER:
        return op.int8_check is None or op.int8_check(node, graph) is None
    if op.quantized != QUANT_PASSTHROUGH:
        return False
    params: set[QuantParams] = set()
    for position, name in enumerate(node.inputs):
        if name and not _integer_ok(graph.tensors[name], params, lambda d: op.accepts(position, d)):
            return False
    for name in node.outputs:
        if name and not _integer_ok(graph.tensors[name], params, lambda d: True):
            return False
    return len(params) == 1


def _integer_ok(tensor: Tensor, params: set, accepts) -> bool:
    if tensor.quant is not None:
        params.add(tensor.quant)
        return accepts(tensor.dtype)
    return tensor.dtype is not DType.FLOAT32  # index inputs (shape, axes) are fine, float data is not


class _Expansion:
    def __init__(self, graph: Graph, nodes: list[Node]) -> None:
        self.graph = graph
        self.nodes = nodes
        self.names = {n.name for n in nodes}
        self.records: dict[int, tuple[str, FoldedNode, Tensor]] = {}  # id -> (kind, record, int tensor)
        self.new_dq: dict[str, str] = {}  # int tensor -> float tensor of a new DequantizeLinear
        self.taken = set(graph.tensors) | {n.name for n in graph.nodes}

    def run(self) -> None:
        graph = self.graph
        constants: dict[str, list[tuple[Node, int]]] = {}
        for node in self.nodes:
            for position, name in enumerate(node.inputs):
                tensor = graph.tensors[name] if name else None
                if tensor is None or tensor.quant is None:
                    continue
                if tensor.is_const:
                    constants.setdefault(name, []).append((node, position))
                    continue
                record = self._record(tensor, lambda r: (node.name, position) in r.readers, "dq")
                if record is None:
                    node.inputs[position] = self._new_dequantize(tensor, node)
            for position, name in enumerate(node.outputs):
                tensor = graph.tensors[name] if name else None
                if tensor is None or tensor.quant is None:
                    continue
                record = self._record(tensor, lambda r: r.writer == (node.name, position), "q")
                if record is None:
                    node.outputs[position] = self._new_quantize(tensor, node)
        self._restore()
        for name, readers in constants.items():
            self._dequantize_constant(name, readers)

    # ----- the model's own nodes ----------------------------------------------------
    def _record(self, tensor: Tensor, match, kind: str) -> FoldedNode | None:
        origin = tensor.quant.origin
        if origin is None:
            return None
        candidates = [origin.quantize] if kind == "q" else list(origin.dequantize)
        for record in candidates:
            if record is not None and match(record):
                self.records[id(record)] = (kind, record, tensor)
                return record
        return None

    def _restore(self) -> None:
        """Put the recorded nodes and tensors back, each right after what preceded it."""
        items = sorted(self.records.values(), key=lambda item: item[1].node_index)
        nodes = self.graph.nodes
        for kind, record, tensor in items:
            at = 0
            if record.after_node is not None:
                index = next((i for i, n in enumerate(nodes) if n.name == record.after_node), None)
                at = index + 1 if index is not None else self._fallback(kind, record)
            nodes.insert(at, record.node)
            origin = tensor.quant.origin
            if kind == "q":
                writer = next(n for n in nodes if n.name == record.writer[0])
                writer.outputs[record.writer[1]] = record.float_tensor.name
                origin.quantize = None
            else:
                for reader_name, position in record.readers:
                    if reader_name in self.names:
                        reader = next(n for n in nodes if n.name == reader_name)
                        reader.inputs[position] = record.float_tensor.name
                origin.dequantize.remove(record)
        tensors = list(self.graph.tensors.items())
        for kind, record, tensor in sorted(self.records.values(), key=lambda item: item[1].tensor_index):
            at = 0
            if record.after_tensor is not None:
                index = next((i for i, (n, _) in enumerate(tensors) if n == record.after_tensor), None)
                at = index + 1 if index is not None else len(tensors)
            tensors.insert(at, (record.float_tensor.name, record.float_tensor))
        self.graph.tensors.clear()
        self.graph.tensors.update(tensors)

    def _fallback(self, kind: str, record: FoldedNode) -> int:
        nodes = self.graph.nodes
        if kind == "q":
            return next(i for i, n in enumerate(nodes) if n.name == record.writer[0]) + 1
        readers = {name for name, _ in record.readers}
        return next((i for i, n in enumerate(nodes) if n.name in readers), len(nodes))

    # ----- constants -------------------------------------------------------------
    def _dequantize_constant(self, name: str, readers: list[tuple[Node, int]]) -> None:
        graph = self.graph
        tensor = graph.tensors[name]
        values = tensor.quant.dequantize(tensor.data)
        others = [n for n in graph.nodes if n.name not in self.names and name in n.inputs]
        if not others:  # every reader runs in float: the constant is its float value
            graph.tensors[name] = Tensor(name, tensor.shape, DType.FLOAT32, values)
            return
        float_name = self._fresh(f"{name}_float")
        graph.tensors[float_name] = Tensor(float_name, tensor.shape, DType.FLOAT32, values)
        for node, position in readers:
            node.inputs[position] = float_name

    # ----- new Q/DQ nodes for tensors without a record ----------------------------
    def _new_dequantize(self, tensor: Tensor, reader: Node) -> str:
        if tensor.name in self.new_dq:
            return self.new_dq[tensor.name]
        float_name = self._fresh(f"{tensor.name}_dequantized")
        node = Node(self._fresh(f"{tensor.name}_dequantize"), "DequantizeLinear",
                    [tensor.name, *self._param_constants(tensor)], [float_name], self._axis(tensor))
        self.graph.tensors[float_name] = Tensor(float_name, tensor.shape, DType.FLOAT32)
        self.graph.nodes.insert(self.graph.nodes.index(reader), node)
        self.new_dq[tensor.name] = float_name
        return float_name

    def _new_quantize(self, tensor: Tensor, writer: Node) -> str:
        float_name = self._fresh(f"{tensor.name}_float")
        node = Node(self._fresh(f"{tensor.name}_quantize"), "QuantizeLinear",
                    [float_name, *self._param_constants(tensor)], [tensor.name], self._axis(tensor))
        self.graph.tensors[float_name] = Tensor(float_name, tensor.shape, DType.FLOAT32)
        self.graph.nodes.insert(self.graph.nodes.index(writer) + 1, node)
        return float_name

    def _param_constants(self, tensor: Tensor) -> list[str]:
        quant = tensor.quant
        names = []
        for suffix, value in (("scale", quant.scale), ("zero_point", quant.zero_point)):
            name = self._fresh(f"{tensor.name}_{suffix}")
            self.graph.tensors[name] = Tensor(name, tuple(value.shape), DType.from_numpy(value.dtype),
                                              np.array(value))
            names.append(name)
        return names

    @staticmethod
    def _axis(tensor: Tensor) -> dict:
        return {"axis": tensor.quant.axis} if tensor.quant.axis is not None else {}

    def _fresh(self, base: str) -> str:
        name, suffix = base, 1
        while name in self.taken:
            suffix += 1
            name = f"{base}_{suffix}"
        self.taken.add(name)
        return name
