"""QuantizeLinear/DequantizeLinear pairs -> Tensor.quant (quantization in the IR).

A QDQ model (tf2onnx, onnxruntime.quantization) says "this value is int8 with
these parameters" with explicit Q/DQ nodes around float ops.  This pass folds
those nodes into the tensors they describe, so that the IR reads
OP(a_q, w_q, b_q) -> y_q with `quant` on every integer tensor.  The rules:

* Weights and biases: a DequantizeLinear of an integer constant has been folded
  to a float constant by the frontend's folding (fold.py); it becomes the
  integer constant again, with its QuantParams (per tensor or per `axis`),
  keeping the name its consumers use.  Only when dequantizing it gives the
  folded float constant bit for bit (else it stays float).
* QuantizeLinear(x) -> T: T gets the node's QuantParams.  The node is folded
  (the op producing x writes T) when x is a float value made by an op and read
  by this node only; it stays explicit where precision really changes (x is a
  float graph input or output, or is read elsewhere as float).
* DequantizeLinear(T) -> y: T gets the node's QuantParams if it has none (a
  graph input, the output of an integer Reshape...).  The node is folded (its
  readers read T) when the parameters are T's and y is not a graph output nor
  read by another Q/DQ node; otherwise it stays explicit.
* Integer tensors flow through the ops that only move elements (OpDef.quantized
  == PASSTHROUGH: Reshape, Transpose, Squeeze, Concat, MaxPool...), which tf2onnx
  runs on the int8 values: such an op's integer inputs and outputs share one
  QuantParams (propagated both ways); a DequantizeLinear whose parameters differ
  from that stays explicit, so nothing is reinterpreted.
* A float value made by an op and read only by an op that commutes with quantization
  (registry.COMMUTES_WITH_QUANTIZE: the PASSTHROUGH ops and MaxPool), whose output is
  quantized, takes the output's QuantParams: PyTorch's PT2E quantizers write
  DQ -> Clip -> MaxPool -> Q (a Relu6 they do not fuse), which becomes
  Clip(x_q) -> m_q ; MaxPool(m_q) -> y_q.  Exact: quantization is elementwise and
  monotone, so Q(max(a, b)) == max(Q(a), Q(b)) and moving elements commutes with it.
* Ops between the folded pairs stay as they are: DQ -> Conv -> Relu -> Q gives
  Conv(a_q, w_q, b_q) -> c (float) and Relu(c) -> y_q.  Moving the Relu past the
  quantization (exact) is for the integer kernels to do.

Every folded node is recorded in the QuantParams.origin of its integer tensor,
with its place in the node and tensor order, so that
graph_opt/float_islands.py restores the model's own nodes and names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from onnx2mcu.ir import DType, Graph, Node, QuantParams, Tensor
from onnx2mcu.ops import lookup
from onnx2mcu.ops.registry import COMMUTES_WITH_QUANTIZE, QUANT_PASSTHROUGH

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INTEGER_DTYPES = (DType.INT8, DType.UINT8, DType.INT32)
ACTIVATION_DTYPES = (DType.INT8, DType.UINT8)


@dataclass
class FoldedNode:
    """A QuantizeLinear or DequantizeLinear the pass removed, and where it was."""

    node: Node
    float_tensor: Tensor  # its float side (the Q input, the DQ output), removed with it
    node_index: int  # position in the frontend's node list
    after_node: str | None  # the node just before it there
    tensor_index: int  # position of float_tensor in graph.tensors
    after_tensor: str | None
    readers: list[tuple[str, int]] = field(default_factory=list)  # DQ: (node, input position)
    writer: tuple[str, int] | None = None  # Q: (node, output position) that made the float value


@dataclass
class QDQOrigin:
    """What the frontend folded into one integer tensor."""

    quantize: FoldedNode | None = None
    dequantize: list[FoldedNode] = field(default_factory=list)


@dataclass
class LiftedConstant:
    """An integer constant the frontend's folding dequantized (by a DequantizeLinear node)."""

    values: np.ndarray
    params: QuantParams


def dequantized_constants(proto: onnx.ModelProto, shifted: set[str] = frozenset()
                          ) -> dict[str, LiftedConstant]:
    """{DequantizeLinear output: its integer constant and parameters}, before folding.
    `shifted`: zero-point constants of uint8 values held as int8 (frontend/uint8.py)."""
    inits = {init.name: init for init in proto.graph.initializer}
    # values of constant Q/DQ chains: quantize_static quantizes a float constant at run time
    # (Q(bias) -> DQ), and re-quantizes a model's own DQ'd weights (DQ(w) -> Q -> DQ)
    values: dict[str, np.ndarray] = {}

    def value(name: str):
        if name in values:
            return values[name]
        return numpy_helper.to_array(inits[name]) if name in inits else None

    found: dict[str, LiftedConstant] = {}
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.domain in ("", "ai.onnx"):  # torch's shared parameters
            data = value(node.input[0])
            if data is not None:
                values[node.output[0]] = data
            continue
        if node.op_type == "Gather" and node.domain in ("", "ai.onnx"):  # a constant row (position ids)
            data, index = value(node.input[0]), value(node.input[1])
            if data is not None and index is not None and index.dtype.kind == "i":
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                rows = np.where(index < 0, index + data.shape[axis], index)
                values[node.output[0]] = np.take(data, rows, axis=axis)
            continue
        if node.op_type not in QDQ_OPS or node.domain not in ("", "ai.onnx"):
            continue
        names = list(node.input) + [""] * (3 - len(node.input))
        if not node.output or not node.output[0] or names[1] not in inits or (names[2] and names[2] not in inits):
            continue
        data = value(names[0])
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if data is None or attrs.get("block_size", 0) or attrs.get("output_dtype", 0):
            continue
        scale = numpy_helper.to_array(inits[names[1]])
        integer = data.dtype if node.op_type == "DequantizeLinear" else np.dtype(np.uint8)
        zero = numpy_helper.to_array(inits[names[2]]) if names[2] else np.zeros((), integer)
        params = _params(scale, zero, attrs.get("axis", 1), data.ndim, 128 if names[2] in shifted else 0)
        if params is None:
            continue
        if node.op_type == "QuantizeLinear":
            if data.dtype == np.float32:
                values[node.output[0]] = params.quantize(data)
        elif data.dtype == zero.dtype:
            found[node.output[0]] = LiftedConstant(data, params)
            values[node.output[0]] = params.dequantize(data)
    return found


def fold_qdq(graph: Graph, lifted: dict[str, LiftedConstant] | None = None,
             shifted: set[str] = frozenset()) -> dict:
    """Fold Q/DQ nodes into Tensor.quant in place; returns counts of what was folded.
    `shifted`: zero-point constants of uint8 values held as int8 (frontend/uint8.py)."""
    counts = {"weights": _lift_constants(graph, lifted or {}), "quantize": 0, "dequantize": 0}
    order = _Order(graph, shifted)
    counts["quantize"] = _fold_quantize(graph, order)
    counts["quantize_moved_up"] = _quantize_earlier(graph)
    _propagate(graph)
    for node in graph.nodes:
        if _is_op(node, "DequantizeLinear"):
            tensor = graph.tensors[node.inputs[0]]
            params = _node_params(graph, node, shifted)
            if tensor.quant is None and not tensor.is_const and params is not None \
                    and tensor.dtype in INTEGER_DTYPES:
                tensor.quant = params
    _propagate(graph)
    counts["dequantize"] = _fold_dequantize(graph, order)
    graph.validate()
    return counts


# ----- weights -----------------------------------------------------------------
def _lift_constants(graph: Graph, lifted: dict[str, LiftedConstant]) -> int:
    done = 0
    for name, item in lifted.items():
        tensor = graph.tensors.get(name)
        if tensor is None or not tensor.is_const or tensor.dtype is not DType.FLOAT32:
            continue  # folded further (DQ -> Transpose...) or not folded: stays as it is
        if tensor.data.shape != item.values.shape:
            continue
        if not np.array_equal(item.params.dequantize(item.values).view(np.uint32),
                              np.asarray(tensor.data, dtype=np.float32).view(np.uint32)):
            continue
        graph.tensors[name] = Tensor(name, tensor.shape, DType.from_numpy(item.values.dtype),
                                     np.array(item.values, order="C", copy=True), quant=item.params)
        done += 1
    return done


# ----- activations ---------------------------------------------------------------
class _Order:
    """Node and tensor positions before any folding, for FoldedNode."""

    def __init__(self, graph: Graph, shifted: set[str] = frozenset()) -> None:
        self.shifted = shifted  # zero points of uint8 values held as int8
        self.node_index = {n.name: i for i, n in enumerate(graph.nodes)}
        self.node_names = [n.name for n in graph.nodes]
        self.tensor_names = list(graph.tensors)
        self.tensor_index = {n: i for i, n in enumerate(self.tensor_names)}

    def record(self, node: Node, float_tensor: Tensor) -> FoldedNode:
        i, j = self.node_index[node.name], self.tensor_index[float_tensor.name]
        return FoldedNode(node, float_tensor, i, self.node_names[i - 1] if i else None,
                          j, self.tensor_names[j - 1] if j else None)


def _fold_quantize(graph: Graph, order: _Order) -> int:
    folded = 0
    producers, consumers = graph.producers(), graph.consumers()
    keep: list[Node] = []
    for node in graph.nodes:
        if not _is_op(node, "QuantizeLinear"):
            keep.append(node)
            continue
        params = _node_params(graph, node, order.shifted)
        out = graph.tensors[node.outputs[0]]
        if params is None or out.dtype not in ACTIVATION_DTYPES:
            keep.append(node)
            continue
        out.quant = params
        x = graph.tensors[node.inputs[0]]
        writer = producers.get(x.name)
        if (x.is_const or x.dtype is not DType.FLOAT32 or writer is None or _is_qdq(writer)
                or x.name in graph.outputs or [n.name for n in consumers.get(x.name, [])] != [node.name]):
            keep.append(node)  # a real precision change: the Q stays
            continue
        record = order.record(node, x)
        position = writer.outputs.index(x.name)
        record.writer = (writer.name, position)
        writer.outputs[position] = out.name
        del graph.tensors[x.name]
        params.origin = QDQOrigin(quantize=record)
        folded += 1
    graph.nodes[:] = keep
    return folded


def _quantize_earlier(graph: Graph) -> int:
    """Give the float input of an op that commutes with quantization the quantization of its
    output (see the module docstring); repeated so that a chain (Clip -> Reshape -> MaxPool -> Q)
    is quantized at its start.  Returns how many values were retyped."""
    moved = 0
    for _ in range(len(graph.nodes) + 1):
        producers, consumers = graph.producers(), graph.consumers()
        changed = False
        for node in reversed(graph.nodes):
            x = _commuting_input(graph, node, producers, consumers)
            if x is None:
                continue
            y = graph.tensors[node.outputs[0]]
            graph.tensors[x.name] = Tensor(x.name, x.shape, y.dtype, None, y.quant.without_origin())
            moved += 1
            changed = True
        if not changed:
            break
    return moved


def _commuting_input(graph: Graph, node: Node, producers: dict, consumers: dict) -> Tensor | None:
    """The float data input that `_quantize_earlier` may quantize with the node's output, if any."""
    if node.op_type not in COMMUTES_WITH_QUANTIZE or node.domain not in ("", "ai.onnx"):
        return None
    if len(node.outputs) != 1 and any(node.outputs[1:]):
        return None  # MaxPool's Indices, Split's parts
    y = graph.tensors[node.outputs[0]]
    if y.quant is None or y.quant.per_axis or y.dtype not in ACTIVATION_DTYPES:
        return None
    inputs = [graph.tensors[n] for n in node.inputs if n]
    data = [t for t in inputs if t.dtype is DType.FLOAT32]
    if len(data) != 1 or data[0].is_const or data[0].quant is not None or data[0].name != node.inputs[0]:
        return None  # one float data input, first; the others are indices, shapes, axes
    x = data[0]
    writer = producers.get(x.name)
    if (writer is None or _is_qdq(writer) or x.name in graph.outputs
            or [n.name for n in consumers.get(x.name, [])] != [node.name]):
        return None
    return x


def _fold_dequantize(graph: Graph, order: _Order) -> int:
    folded = 0
    consumers = graph.consumers()
    keep: list[Node] = []
    for node in graph.nodes:
        if not _is_op(node, "DequantizeLinear"):
            keep.append(node)
            continue
        tensor = graph.tensors[node.inputs[0]]
        y = graph.tensors[node.outputs[0]]
        readers = consumers.get(y.name, [])
        if (tensor.is_const or tensor.quant is None or tensor.quant != _node_params(graph, node, order.shifted)
                or y.name in graph.outputs or not readers or any(_is_qdq(r) for r in readers)):
            keep.append(node)
            continue
        record = order.record(node, y)
        for reader in readers:
            for position, name in enumerate(reader.inputs):
                if name == y.name:
                    record.readers.append((reader.name, position))
                    reader.inputs[position] = tensor.name
        del graph.tensors[y.name]
        if tensor.quant.origin is None:
            tensor.quant.origin = QDQOrigin()
        tensor.quant.origin.dequantize.append(record)
        folded += 1
    graph.nodes[:] = keep
    return folded


def _propagate(graph: Graph) -> None:
    """One QuantParams over the integer tensors of each PASSTHROUGH node, both ways."""
    for _ in range(len(graph.nodes) + 1):
        changed = False
        for node in graph.nodes:
            op = lookup(node.op_type, node.domain)
            if op is None or op.quantized != QUANT_PASSTHROUGH:
                continue
            tensors = [graph.tensors[n] for n in list(node.inputs) + list(node.outputs)
                       if n and graph.tensors[n].dtype in ACTIVATION_DTYPES]
            known = {t.quant for t in tensors if t.quant is not None}
            if len(known) != 1:
                continue
            params = next(iter(known))
            for t in tensors:
                if t.quant is None:
                    t.quant = params.without_origin()
                    changed = True
        if not changed:
            return


# ----- helpers -----------------------------------------------------------------
def _is_op(node: Node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in ("", "ai.onnx")


def _is_qdq(node: Node) -> bool:
    return node.op_type in QDQ_OPS and node.domain in ("", "ai.onnx")


def _node_params(graph: Graph, node: Node, shifted: set[str] = frozenset()) -> QuantParams | None:
    """The QuantParams a Q/DQ node applies, when they are constants we can hold."""
    if node.attr("block_size", 0) or node.attr("output_dtype", 0):
        return None
    names = list(node.inputs) + [""] * (3 - len(node.inputs))
    scale = graph.tensors.get(names[1]) if names[1] else None
    zero = graph.tensors.get(names[2]) if names[2] else None
    if scale is None or not scale.is_const or (names[2] and (zero is None or not zero.is_const)):
        return None
    integer = node.outputs[0] if node.op_type == "QuantizeLinear" else node.inputs[0]
    dtype = graph.tensors[integer].dtype
    if dtype not in INTEGER_DTYPES:
        return None
    zero_values = zero.data if zero is not None else np.zeros((), dtype.numpy)
    if zero_values.dtype != dtype.numpy:
        return None
    return _params(scale.data, zero_values, node.attr("axis", 1), len(graph.tensors[node.inputs[0]].shape),
                   128 if names[2] in shifted else 0)


def _params(scale: np.ndarray, zero: np.ndarray, axis: int, rank: int, value_offset: int = 0
            ) -> QuantParams | None:
    scale, zero = np.asarray(scale), np.asarray(zero)
    if scale.dtype != np.float32 or scale.ndim > 1 or zero.ndim > 1:
        return None
    if zero.shape != scale.shape and not (scale.size == 1 and zero.size == 1):
        return None
    try:
        if scale.size == 1:
            # a one-element scale is per tensor whatever its rank (onnxruntime reads it so, and
            # quantize_static writes its bias scales as shape [1] with a scalar zero point:
            # the axis would not even exist)
            return QuantParams(scale.reshape(()), zero.reshape(()), value_offset=value_offset)
        if not -rank <= axis < rank:
            return None
        return QuantParams(scale, zero, axis % rank, value_offset=value_offset)
    except ValueError:  # zero or negative scales, odd zero-point types: leave the node alone
        return None
