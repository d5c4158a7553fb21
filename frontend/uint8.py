"""uint8 QDQ values -> int8, exactly: q_s8 = q_u8 - 128 with zero point zp_u8 - 128.

onnxruntime's quantizer writes uint8 activations (QUInt8, zero points near 128) and uint8
weights by default.  The int8 kernels (onnx2mcu/ops/int8.py, runtime_c/o2m_s8_*) compute on
(q - zero point), so shifting both the values and the zero point by 128 changes no real value:
scale * (q_u8 - zp_u8) == scale * ((q_u8 - 128) - (zp_u8 - 128)), and every saturation bound
moves with them ([0, 255] -> [-128, 127]).  QuantizeLinear and DequantizeLinear of the shifted
types are the same functions of the reals, so the lowered model computes what the model says.

The rewrite works on the ONNX graph before folding (frontend/convert.py), so that everything
after it (constant lifting, Q/DQ folding, float islands, kernels) sees an int8 model.  It
shifts one connected set of uint8 tensors at a time: the integer sides of uint8
QuantizeLinear/DequantizeLinear nodes and whatever only moves those values between them
(Reshape, Transpose, MaxPool...).  A set that reaches a graph input or output, or an op that
reads the uint8 numbers as numbers (Cast, a QLinear op...), stays uint8 as it is.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

QDQ = ("QuantizeLinear", "DequantizeLinear")
# ops that only move (or order-preservingly select) values: input positions that carry them
MOVERS = {"Reshape": (0,), "Transpose": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Flatten": (0,),
          "Identity": (0,), "MaxPool": (0,), "Concat": None, "Slice": (0,), "Gather": (0,), "Split": (0,),
          "Expand": (0,), "Tile": (0,), "DepthToSpace": (0,), "SpaceToDepth": (0,)}


def lower_uint8(proto: onnx.ModelProto) -> tuple[list[str], set[str]]:
    """Shift every closed set of uint8 QDQ tensors to int8 in place; returns the notes and the
    names of the shifted zero-point constants (frontend/qdq.py gives their QuantParams a
    value_offset of 128)."""
    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    io = {v.name for v in graph.input} | {v.name for v in graph.output}
    producer, consumers = {}, {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        for name in node.output:
            producer[name] = node
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    seen: set[str] = set()
    shifted: list[str] = []
    new_inits: dict[str, onnx.TensorProto] = {}
    for node in list(graph.node):
        start = _uint8_side(node, inits)
        if start is None or start in seen:
            continue
        group = _component(start, producer, consumers, inits, io)
        seen.update(group.tensors if group else {start})
        if group is None:
            continue
        _shift(graph, group, inits, consumers, new_inits)
        shifted.extend(sorted(group.tensors))
    if not shifted:
        return [], set()
    graph.initializer.extend(new_inits.values())
    kept = [v for v in graph.value_info if v.name not in set(shifted)]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return [f"{len(shifted)} uint8 quantized tensors run as int8 (values and zero points - 128: "
            "the same real values)"], set(new_inits)


class _Group:
    def __init__(self) -> None:
        self.tensors: set[str] = set()
        self.qdq: list[onnx.NodeProto] = []


def _is_qdq(node: onnx.NodeProto) -> bool:
    return node.op_type in QDQ and node.domain in ("", "ai.onnx")


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _uint8_side(node: onnx.NodeProto, inits) -> str | None:
    """The uint8 tensor of a Q (its output) or DQ (its input) with constant parameters, else None."""
    if not _is_qdq(node) or len(node.input) < 2 or node.input[1] not in inits or _attr(node, "block_size", 0):
        return None
    zero = node.input[2] if len(node.input) > 2 and node.input[2] else ""
    if zero and zero not in inits:
        return None
    if node.op_type == "QuantizeLinear":
        dtype = inits[zero].data_type if zero else _attr(node, "output_dtype", TensorProto.UINT8) or TensorProto.UINT8
        return node.output[0] if dtype == TensorProto.UINT8 else None
    if zero:
        return node.input[0] if inits[zero].data_type == TensorProto.UINT8 else None
    data = inits.get(node.input[0])
    return node.input[0] if data is not None and data.data_type == TensorProto.UINT8 else None


def _component(start: str, producer, consumers, inits, io) -> _Group | None:
    """The uint8 tensors connected to `start` through Q/DQ and value-moving nodes, or None when the
    set touches a graph input/output or an op that reads the numbers."""
    group, todo, nodes = _Group(), [start], set()
    while todo:
        name = todo.pop()
        if name in group.tensors:
            continue
        if name in io:
            return None
        group.tensors.add(name)
        around = ([producer[name]] if name in producer else []) + consumers.get(name, [])
        for node in around:
            key = id(node)
            if _is_qdq(node):
                if _uint8_side(node, inits) != name:
                    return None
                if key not in nodes:
                    nodes.add(key)
                    group.qdq.append(node)
                continue
            if node.op_type not in MOVERS or node.domain not in ("", "ai.onnx"):
                return None
            if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
                return None
            positions = MOVERS[node.op_type]
            data_in = [n for i, n in enumerate(node.input) if n and (positions is None or i in positions)]
            if name not in data_in and name not in node.output:
                return None  # the uint8 tensor is an index or shape input: not ours to shift
            todo.extend(data_in)
            todo.extend(n for n in node.output if n)
            nodes.add(key)
    for name in group.tensors:
        if name in inits and inits[name].data_type != TensorProto.UINT8:
            return None
    return group


def _s8(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.int16) - 128).astype(np.int8)


def _shift(graph, group: _Group, inits, consumers, new_inits) -> None:
    members = set(group.tensors)
    for name in members:
        if name not in inits:
            continue
        values = _s8(numpy_helper.to_array(inits[name]))
        readers = consumers.get(name, [])
        if all(_reads_only_as_member(r, name, members) for r in readers):
            inits[name].CopyFrom(numpy_helper.from_array(values, name))
        else:  # also read elsewhere as uint8: the group reads a shifted copy
            copy = f"{name}__s8"
            new_inits.setdefault(copy, numpy_helper.from_array(values, copy))
            for r in readers:
                if _is_qdq(r) or r.op_type in MOVERS:
                    for i, n in enumerate(r.input):
                        if n == name:
                            r.input[i] = copy
    for node in group.qdq:
        zero = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        if zero:
            copy = f"{zero}__s8"
            if copy not in new_inits:
                new_inits[copy] = numpy_helper.from_array(_s8(numpy_helper.to_array(inits[zero])), copy)
            node.input[2] = copy
        else:
            scale = numpy_helper.to_array(inits[node.input[1]])
            copy = f"{node.input[1]}__zero_point_s8"
            if copy not in new_inits:
                new_inits[copy] = numpy_helper.from_array(np.full(scale.shape, -128, np.int8), copy)
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = copy
        for a in node.attribute:
            if a.name == "output_dtype" and a.i:
                a.i = TensorProto.INT8


def _reads_only_as_member(node: onnx.NodeProto, name: str, members: set[str]) -> bool:
    if _is_qdq(node):
        return node.input[0] == name and (node.output[0] in members or node.op_type == "DequantizeLinear")
    return node.op_type in MOVERS and any(o in members for o in node.output)
