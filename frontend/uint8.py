"""uint8 quantized activations -> int8 with the zero point moved down by 128 (exact).

onnxruntime's quantizer writes uint8 activations by default (QuantType.QUInt8),
while the integer kernels (onnx2mcu/ops/int8.py, runtime_c/o2m_s8_*) are int8
ones.  A uint8 value q with zero point z means the real s * (q - z); the int8
value q - 128 with zero point z - 128 means the same real, and QuantizeLinear's
rounding and saturation ([0, 255] vs [-128, 127]) move with it, so the two
models compute the same numbers.  This pass rewrites every group of uint8
values linked by ops that only move elements, when the group is made by
QuantizeLinear nodes, read by DequantizeLinear nodes and never seen from
outside (not a graph input or output): their Q/DQ zero points become int8
(z - 128).  Anything else (a uint8 graph input, a uint8 value read by
MatMulInteger or written by DynamicQuantizeLinear) is left as it is.

Runs on the QDQ form, after frontend/qoperator.py and before frontend/qdq.py.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MOVING_OPS: dict[str, tuple[int, ...] | None] = {
    "Reshape": (0,), "Transpose": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Flatten": (0,),
    "Identity": (0,), "Split": (0,), "Slice": (0,), "Gather": (0,), "MaxPool": (0,),
    "DepthToSpace": (0,), "SpaceToDepth": (0,), "Expand": (0,), "Tile": (0,), "Pad": (0,),
    "Concat": None,  # every input
}
"""Ops whose integer outputs hold some of their data inputs' values (positions; None: all)."""


def shift_uint8_activations(proto: onnx.ModelProto) -> int:
    """Rewrite the closed groups of uint8 activations to int8; returns how many values changed."""
    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    types = _types(proto, inits)
    uint8 = {name for name, t in types.items() if t == TensorProto.UINT8 and name not in inits}
    constants = [name for name, init in inits.items() if init.data_type == TensorProto.UINT8]
    if not uint8 and not constants:
        return 0
    producers: dict[str, onnx.NodeProto] = {}
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for o in node.output:
            producers[o] = node
        for k, i in enumerate(node.input):
            readers.setdefault(i, []).append((node, k))
    parent = {name: name for name in uint8}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for node in graph.node:
        if not _is(node, *MOVING_OPS):
            continue
        linked = [n for n in _data_inputs(node) + [o for o in node.output if o] if n in uint8]
        for other in linked[1:]:
            parent[find(other)] = find(linked[0])
    groups: dict[str, list[str]] = {}
    for name in uint8:
        groups.setdefault(find(name), []).append(name)
    outside = {i.name for i in graph.input} | {o.name for o in graph.output}
    shifted: list[str] = []
    for members in groups.values():
        if all(_closed(name, members, producers, readers, outside, types) for name in members):
            shifted.extend(members)
    # uint8 constants only dequantized (weights, a QLinearAdd's constant operand) move too
    constants = [name for name in constants if readers.get(name) and name not in outside
                 and all(_is(r, "DequantizeLinear") and k == 0 for r, k in readers[name])]
    if not shifted and not constants:
        return 0
    _Shift(proto, inits).apply(set(shifted), constants, producers, readers)
    return len(shifted) + len(constants)


def _closed(name: str, members: list[str], producers, readers, outside: set[str], types) -> bool:
    if name in outside:
        return False
    node = producers.get(name)
    if node is None:
        return False
    if _is(node, "QuantizeLinear"):
        if types.get(node.input[0]) not in (TensorProto.FLOAT, None):
            return False
    elif _is(node, *MOVING_OPS):
        if not all(i in members for i in _data_inputs(node)):  # a uint8 constant would stay uint8
            return False
        if _is(node, "Pad") and not _pad_value_ok(node, types):
            return False
    else:
        return False
    for reader, position in readers.get(name, []):
        if _is(reader, "DequantizeLinear") and position == 0:
            continue
        if _is(reader, *MOVING_OPS) and reader.input[position] in _data_inputs(reader):
            if all(o in members for o in reader.output if o):
                continue
        return False
    return True


def _pad_value_ok(node: onnx.NodeProto, types) -> bool:
    """A constant Pad of uint8 values: its value must be a constant we can shift (or absent)."""
    mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        return True
    return len(node.input) < 3 or not node.input[2] or types.get(node.input[2]) == TensorProto.UINT8


class _Shift:
    def __init__(self, proto: onnx.ModelProto, inits: dict) -> None:
        self.proto = proto
        self.inits = inits
        self.converted: dict[str, str] = {}
        self.done: set[int] = set()  # nodes already rewritten
        self.taken = set(inits) | {o for n in proto.graph.node for o in n.output} | \
            {i.name for i in proto.graph.input}

    def apply(self, shifted: set[str], constants: list[str], producers, readers) -> None:
        for name in constants:
            for reader, _ in readers[name]:
                reader.input[0] = self._int8(name)
                self._zero_point(reader)
        for name in sorted(shifted):
            node = producers[name]
            if _is(node, "QuantizeLinear"):
                self._zero_point(node)
            elif _is(node, "Pad"):
                self._pad_value(node)
            for reader, position in readers.get(name, []):
                if _is(reader, "DequantizeLinear"):
                    self._zero_point(reader)
        for info in self.proto.graph.value_info:
            if info.name in shifted and info.type.HasField("tensor_type"):
                info.type.tensor_type.elem_type = TensorProto.INT8

    def _zero_point(self, node: onnx.NodeProto) -> None:
        if id(node) in self.done:
            return
        self.done.add(id(node))
        while len(node.input) < 3:
            node.input.append("")
        zero = node.input[2]
        node.input[2] = self._int8(zero) if zero else self._new(np.array(-128, np.int8), "zero_point_int8")
        for attr in node.attribute:
            if attr.name == "output_dtype":
                attr.i = TensorProto.INT8

    def _pad_value(self, node: onnx.NodeProto) -> None:
        mode = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"), b"constant")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant" or id(node) in self.done:
            return
        self.done.add(id(node))
        while len(node.input) < 3:
            node.input.append("")
        value = node.input[2]
        node.input[2] = self._int8(value) if value else self._new(np.array(-128, np.int8), "pad_value_int8")

    def _int8(self, name: str) -> str:
        if name not in self.converted:
            values = numpy_helper.to_array(self.inits[name]).astype(np.int16) - 128
            self.converted[name] = self._new(values.astype(np.int8), f"{name}_int8")
        return self.converted[name]

    def _new(self, value: np.ndarray, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        tensor = numpy_helper.from_array(value, name)
        self.proto.graph.initializer.append(tensor)
        self.inits[name] = tensor
        return name


def _types(proto: onnx.ModelProto, inits: dict) -> dict[str, int]:
    """Element types of the values, as far as Q/DQ and the moving ops tell them."""
    graph = proto.graph
    types: dict[str, int] = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        dtype = None
        if _is(node, "QuantizeLinear"):
            if len(node.input) > 2 and node.input[2]:
                dtype = types.get(node.input[2])
            else:
                dtype = next((a.i for a in node.attribute if a.name == "output_dtype" and a.i), TensorProto.UINT8)
        elif _is(node, "DequantizeLinear"):
            dtype = types.get(node.input[1], TensorProto.FLOAT)
        elif _is(node, *MOVING_OPS) and node.input:
            dtype = types.get(node.input[0])
        if dtype:
            for o in node.output:
                if o:
                    types.setdefault(o, dtype)
    return types


def _data_inputs(node: onnx.NodeProto) -> list[str]:
    positions = MOVING_OPS[node.op_type]
    if positions is None:
        return [i for i in node.input if i]
    return [node.input[k] for k in positions if k < len(node.input) and node.input[k]]


def _is(node: onnx.NodeProto, *op_types: str) -> bool:
    return node.op_type in op_types and node.domain in ("", "ai.onnx")
