"""ONNX model -> IR: bind dims, infer shapes, fold constants, drop no-ops, check support."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops import lookup, unsupported_reason
from onnx2mcu.frontend.fold import constants_to_initializers, fold_once, infer_shapes, static_shapes
from onnx2mcu.frontend.load import read_model
from onnx2mcu.frontend.simplify import remove_dead_nodes, simplify_once

_DTYPES = {
    onnx.TensorProto.FLOAT: DType.FLOAT32,
    onnx.TensorProto.INT8: DType.INT8,
    onnx.TensorProto.UINT8: DType.UINT8,
    onnx.TensorProto.INT32: DType.INT32,
    onnx.TensorProto.INT64: DType.INT64,
    onnx.TensorProto.BOOL: DType.BOOL,
}
NO_OPS = {"Identity", "Dropout"}
MAX_FOLD_ROUNDS = 50


def load(model: str | os.PathLike | onnx.ModelProto,
         input_shapes: Mapping[str, Sequence[int]] | None = None, check: bool = True) -> Graph:
    """Read an ONNX model and return the IR with every shape static.

    `check=False` keeps unsupported nodes (for `inspect`, which lists them).
    """
    proto, label = read_model(model)
    proto = _copy(proto)
    notes = _bind_inputs(proto, dict(input_shapes or {}), label)
    _forget_output_shapes(proto)
    constants_to_initializers(proto)
    remove_dead_nodes(proto)
    for _ in range(MAX_FOLD_ROUNDS):
        proto = infer_shapes(proto, label)
        if not (fold_once(proto) or simplify_once(proto)):
            break
    _drop_no_ops(proto)
    if check:
        _check_op_types(proto, label)
    graph = _to_ir(proto, label, notes, strict=check)
    if check:
        _check_supported(graph, label)
    return graph


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def runtime_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {init.name for init in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _bind_inputs(proto: onnx.ModelProto, given: dict[str, Sequence[int]], label: str) -> list[str]:
    notes: list[str] = []
    inputs = runtime_inputs(proto)
    names = {i.name for i in inputs}
    for name in given:
        if name not in names:
            raise UserError(f"{label}: --input-shape names '{name}', which is not an input; "
                            f"inputs are: {', '.join(sorted(names))}")
    for info in inputs:
        dims = info.type.tensor_type.shape.dim
        if info.name in given:
            shape = [int(d) for d in given[info.name]]
            if len(shape) != len(dims) and len(dims) > 0:
                raise UserError(f"{label}: input '{info.name}' has rank {len(dims)}, "
                                f"--input-shape gives {len(shape)} dims")
            for axis, (dim, value) in enumerate(zip(dims, shape)):
                if dim.HasField("dim_value") and dim.dim_value != value:
                    raise UserError(f"{label}: input '{info.name}' dim {axis} is fixed to "
                                    f"{dim.dim_value}, --input-shape gives {value}")
            if any(v <= 0 for v in shape):
                raise UserError(f"{label}: --input-shape for '{info.name}' must be positive")
            _set_shape(info, shape)
            continue
        shape = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(dim.dim_value)
            elif axis == 0:
                shape.append(1)
                notes.append(f"input '{info.name}' dim 0 ('{dim.dim_param or '?'}') bound to 1")
            else:
                example = ",".join(str(d.dim_value) if d.HasField("dim_value") else "N" for d in dims)
                raise UserError(f"{label}: input '{info.name}' dim {axis} "
                                f"('{dim.dim_param or '?'}') is dynamic; give it with "
                                f"--input-shape {info.name}={example.replace('N', '1', 1) if axis else example}")
        _set_shape(info, shape)
    return notes


def _forget_output_shapes(proto: onnx.ModelProto) -> None:
    """Graph outputs keep their dtype; their (often symbolic) dims come from inference."""
    for info in proto.graph.output:
        if info.type.HasField("tensor_type"):
            info.type.tensor_type.ClearField("shape")


def _set_shape(info: onnx.ValueInfoProto, shape: Sequence[int]) -> None:
    tensor_type = info.type.tensor_type
    tensor_type.shape.ClearField("dim")
    for value in shape:
        tensor_type.shape.dim.add().dim_value = int(value)


def _drop_no_ops(proto: onnx.ModelProto) -> None:
    """Remove Identity and inference-mode Dropout by rewiring their consumers."""
    graph = proto.graph
    outputs = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type not in NO_OPS or node.domain not in ("", "ai.onnx"):
            keep.append(node)
            continue
        if node.op_type == "Dropout":
            mask_used = len(node.output) > 1 and node.output[1] and (
                any(node.output[1] in n.input for n in graph.node) or node.output[1] in outputs)
            training = len(node.input) > 2 and node.input[2] and not _is_false(proto, node.input[2])
            if mask_used or training:
                keep.append(node)  # not a no-op: reported as unsupported
                continue
        src, dst = node.input[0], node.output[0]
        if dst in outputs:
            if src in inputs or src in outputs:
                keep.append(node)  # a pass-through output stays an (alias) Identity
                continue
            _rename(graph, src, dst)
        else:
            _rename(graph, dst, src)
    del graph.node[:]
    graph.node.extend(keep)


def _is_false(proto: onnx.ModelProto, name: str) -> bool:
    for init in proto.graph.initializer:
        if init.name == name:
            return not bool(np.any(numpy_helper.to_array(init)))
    return False


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for info in graph.value_info:
        if info.name == old:
            info.name = new


def _check_op_types(proto: onnx.ModelProto, label: str) -> None:
    """All nodes whose op we do not know, in one message (before shapes are needed)."""
    missing: dict[str, list[str]] = {}
    for index, node in enumerate(proto.graph.node):
        if lookup(node.op_type, node.domain) is None:
            op = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
            missing.setdefault(op, []).append(node.name or node.output[0] or f"node{index}")
    if missing:
        count = sum(len(v) for v in missing.values())
        parts = []
        for op, names in sorted(missing.items()):
            shown = ", ".join(f"'{n}'" for n in names[:5]) + (f" and {len(names) - 5} more"
                                                               if len(names) > 5 else "")
            parts.append(f"{op} (node{'s' if len(names) > 1 else ''} {shown})")
        raise UserError(f"{label}: {count} node(s) use ops onnx2mcu does not support: "
                        + "; ".join(parts) + "; replace these ops before export or open an issue")


def _to_ir(proto: onnx.ModelProto, label: str, notes: list[str], strict: bool = True) -> Graph:
    graph = proto.graph
    shapes = static_shapes(proto)
    elem_types: dict[str, int] = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        elem_types[info.name] = info.type.tensor_type.elem_type
    tensors: dict[str, Tensor] = {}
    problems: list[str] = []

    def dtype_of(name: str, elem: int) -> DType | None:
        dtype = _DTYPES.get(elem)
        if dtype is None:
            type_name = onnx.TensorProto.DataType.Name(elem) if elem else "unknown"
            problems.append(f"tensor '{name}' has dtype {type_name}")
        return dtype

    for init in graph.initializer:
        data = numpy_helper.to_array(init)
        dtype = dtype_of(init.name, init.data_type)
        if dtype is not None:
            tensors[init.name] = Tensor(init.name, tuple(data.shape), dtype, np.array(data, order="C", copy=True))
    for info in runtime_inputs(proto):
        dtype = dtype_of(info.name, info.type.tensor_type.elem_type)
        if dtype is not None:
            tensors[info.name] = Tensor(info.name, shapes[info.name], dtype)
    nodes: list[Node] = []
    used_names: set[str] = set()
    for index, n in enumerate(graph.node):
        name = n.name or next((o for o in n.output if o), f"node{index}")
        base, suffix = name, 1
        while name in used_names:
            suffix += 1
            name = f"{base}_{suffix}"
        used_names.add(name)
        attrs = {}
        for attr in n.attribute:
            if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                problems.append(f"node '{name}' ({n.op_type}) has a subgraph")
                continue
            value = helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, onnx.TensorProto):
                value = numpy_helper.to_array(value)
            attrs[attr.name] = value
        for out in n.output:
            if not out or out in tensors:
                continue
            if out not in shapes:
                if strict:
                    problems.append(f"output '{out}' of node '{name}' ({n.op_type}) has no static shape")
                    continue
                # inspect only: keep going with a placeholder, say so
                notes.append(f"shape of '{out}' (node '{name}', {n.op_type}) is unknown")
                shapes[out] = ()
            if strict or elem_types.get(out, 0) in _DTYPES:
                dtype = dtype_of(out, elem_types.get(out, 0))
            else:
                dtype = DType.FLOAT32
            if dtype is not None:
                tensors[out] = Tensor(out, shapes[out], dtype)
        nodes.append(Node(name, n.op_type, list(n.input), list(n.output), attrs, n.domain))
    if problems:
        raise UserError(f"{label}: cannot convert: " + "; ".join(problems[:20]) +
                        (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))
    ir = Graph(name=graph.name or "model", nodes=nodes, tensors=tensors,
               inputs=[i.name for i in runtime_inputs(proto)],
               outputs=[o.name for o in graph.output], notes=notes, source=label)
    ir.validate()
    return ir


def _check_supported(graph: Graph, label: str) -> None:
    problems = []
    for node in graph.nodes:
        reason = unsupported_reason(node, graph)
        if reason is not None:
            domain = f"{node.domain}." if node.domain else ""
            problems.append(f"node '{node.name}' ({domain}{node.op_type}): {reason}")
    if problems:
        raise UserError(f"{label}: {len(problems)} unsupported node(s): " + "; ".join(problems) +
                        "; replace these ops before export or open an issue for them")
