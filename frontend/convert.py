"""ONNX model -> IR: bind dims, infer shapes, fold constants, simplify, drop no-ops, check support.

    read (load.py: file errors, opset lifting) -> bind input dims -> Constant
    nodes to initializers -> QOperator nodes (QLinearConv...) to their QDQ form
    (qoperator.py) -> uint8 activations to int8 (uint8.py) -> repeat {shape inference, fold (fold.py), exact
    rewrites (simplify.py)} until nothing changes -> drop Identity/Dropout ->
    every unknown op in one error -> IR -> per-node checks -> Q/DQ pairs folded
    into Tensor.quant (qdq.py).  uint8 QDQ values become int8 first, exactly (uint8.py).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops import lookup, unsupported_reason
from onnx2mcu.frontend.fold import (constants_to_initializers, fold_once, infer_shapes, node_attrs,
                                    shape_inference_error, static_shapes)
from onnx2mcu.frontend.control_flow import bind_input_values, check_static, inline_static_control_flow
from onnx2mcu.frontend.load import read_model
from onnx2mcu.frontend.qdq import dequantized_constants, fold_qdq
from onnx2mcu.frontend.qoperator import expand_qoperators
from onnx2mcu.frontend.uint8 import lower_uint8
from onnx2mcu.frontend.validate import library_error, validate_bound_inputs, validate_graph
from onnx2mcu.frontend.simplify import remove_dead_nodes, simplify_once

_DTYPES = {dtype.onnx: dtype for dtype in DType if dtype.onnx is not None}  # ir.DTYPE_TABLE
NO_OPS = {"Identity", "Dropout"}
MAX_FOLD_ROUNDS = 50


def load(model: str | os.PathLike | onnx.ModelProto,
         input_shapes: Mapping[str, Sequence[int]] | None = None, check: bool = True,
         input_values: Mapping[str, float] | None = None) -> Graph:
    """Read an ONNX model and return the IR with every shape static.

    `check=False` keeps unsupported nodes (for `inspect`, which lists them).  An exception
    raised by onnx, protobuf or numpy on this model becomes one UserError naming the file
    and node (frontend/validate.library_error).
    `input_values` binds scalar inputs to constants (`--input-value`), e.g. for an If.
    """
    try:
        return _load(model, input_shapes, check, input_values)
    except Exception as exc:
        label = str(model) if not isinstance(model, onnx.ModelProto) else (model.graph.name or "<model>")
        error = library_error(exc, label, reading=True)
        if error is None:
            raise
        raise error from exc


def _load(model, input_shapes, check: bool, input_values=None) -> Graph:
    proto, label = read_model(model)
    proto = _copy(proto)
    notes = _initializers_as_constants(proto, dict(input_shapes or {}))
    notes += bind_input_values(proto, dict(input_values or {}), label)
    notes += _bind_inputs(proto, dict(input_shapes or {}), label)
    validate_bound_inputs(proto, label)
    _forget_output_shapes(proto)
    constants_to_initializers(proto)
    remove_dead_nodes(proto)
    if expand_qoperators(proto, label):  # before folding: qdq.py then sees the QDQ form
        remove_dead_nodes(proto)
    if any(n.op_type == "DequantizeLinear" for n in proto.graph.node):
        # the scales and zero points an exporter computes (torch.onnx without its optimizer:
        # Cast of an initializer) and weights quantized in the graph (QuantizeLinear of a float
        # constant) become constants first, so that every dequantized weight is found below
        for _ in range(MAX_FOLD_ROUNDS):
            if not fold_once(proto, keep=frozenset({"DequantizeLinear"})):
                break
    uint8_notes, shifted = lower_uint8(proto)  # uint8 QDQ values as int8 (exact), for the int8 kernels
    notes += uint8_notes
    lifted = dequantized_constants(proto, shifted)  # folding dequantizes them; fold_qdq lifts them back
    inference_errors: list[str] = []
    for _ in range(MAX_FOLD_ROUNDS):
        del inference_errors[:]
        proto = infer_shapes(proto, label, inference_errors)
        if not (fold_once(proto) or simplify_once(proto)
                or inline_static_control_flow(proto, static_shapes(proto))):
            break
    if check:
        check_static(proto, label)
    _drop_no_ops(proto)
    if check:
        _check_op_types(proto, label)
    if inference_errors and _unknown_shapes(proto):
        if check or not _unknown_shapes(proto) <= _unsupported_outputs(proto):
            raise shape_inference_error(label, inference_errors[0])
    graph = _to_ir(proto, label, notes, strict=check)
    validate_graph(graph, label)
    if check:
        _check_supported(graph, label)
        _check_reshapes(graph, label)
    fold_qdq(graph, lifted, shifted)
    return graph


def _unknown_shapes(proto: onnx.ModelProto) -> set[str]:
    shapes = static_shapes(proto)
    return {o for n in proto.graph.node for o in n.output if o and o not in shapes}


def _unsupported_outputs(proto: onnx.ModelProto) -> set[str]:
    """Outputs of unknown ops and everything downstream of them (inspect tolerates these)."""
    tainted: set[str] = set()
    for node in proto.graph.node:
        if lookup(node.op_type, node.domain) is None or any(i in tainted for i in node.input):
            tainted.update(o for o in node.output if o)
    return tainted


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def _initializers_as_constants(proto: onnx.ModelProto, given: Mapping[str, Sequence[int]]
                               ) -> list[str]:
    """Graph inputs that also have an initializer (every weight, in IR version 3 files) are
    constants, as onnxruntime runs them when nothing is fed; an input the user binds with
    --input-shape stays an input (its initializer, a mere default, is dropped)."""
    graph = proto.graph
    inits = {init.name for init in graph.initializer}
    bound = [i.name for i in graph.input if i.name in inits and i.name in given]
    constant = [i for i in graph.input if i.name in inits and i.name not in given]
    if bound:
        kept = [init for init in graph.initializer if init.name not in bound]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    if not constant:
        return []
    kept_inputs = [i for i in graph.input if i.name not in inits or i.name in given]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    # IR version 4 is the first that allows initializers outside the inputs; ONNX shape
    # inference of an older version ignores them
    proto.ir_version = max(proto.ir_version, 4)
    return [f"{len(constant)} graph inputs with an initializer are constants "
            "(bind one with --input-shape to feed it)"]


def runtime_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {init.name for init in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _bind_inputs(proto: onnx.ModelProto, given: dict[str, Sequence[int]], label: str) -> list[str]:
    """Give every runtime input a static shape: --input-shape first, then dims that share a
    symbolic name with a given one, then a dynamic leading (batch) dim becomes 1.  Inputs still
    dynamic after that are all named in one error."""
    notes: list[str] = []
    inputs = runtime_inputs(proto)
    names = {i.name for i in inputs}
    for name in given:
        if name not in names:
            raise UserError(f"{label}: --input-shape names '{name}', which is not an input; "
                            f"inputs are: {', '.join(sorted(names))}")
    symbols: dict[str, tuple[int, str]] = {}  # dim_param -> (value, input that fixed it)
    for info in inputs:
        if info.name not in given:
            continue
        tensor_type = info.type.tensor_type
        dims = tensor_type.shape.dim
        shape = [int(d) for d in given[info.name]]
        if tensor_type.HasField("shape") and len(shape) != len(dims):
            raise UserError(f"{label}: input '{info.name}' has rank {len(dims)}, "
                            f"--input-shape gives {len(shape)} dims")
        if any(v <= 0 for v in shape):
            raise UserError(f"{label}: --input-shape for '{info.name}' must be positive, got "
                            f"{','.join(map(str, shape))}")
        for axis, (dim, value) in enumerate(zip(dims, shape)):
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != value:
                raise UserError(f"{label}: input '{info.name}' dim {axis} is fixed to "
                                f"{dim.dim_value}, --input-shape gives {value}")
            if dim.dim_param:
                symbols.setdefault(dim.dim_param, (value, info.name))
        _set_shape(info, shape)
    dynamic: list[tuple[onnx.ValueInfoProto, list[str]]] = []
    for info in inputs:
        if info.name in given:
            continue
        tensor_type = info.type.tensor_type
        if not tensor_type.HasField("shape"):
            dynamic.append((info, []))
            continue
        shape, unknown = [], False
        for axis, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(dim.dim_value)
            elif dim.dim_param in symbols:
                value, source = symbols[dim.dim_param]
                shape.append(value)
                notes.append(f"input '{info.name}' dim {axis} ('{dim.dim_param}') bound to {value} "
                             f"as in '{source}'")
            elif axis == 0:
                shape.append(1)
                notes.append(f"input '{info.name}' dim 0 ('{dim.dim_param or '?'}') bound to 1")
            else:
                shape.append(None)
                unknown = True
        if unknown:
            dynamic.append((info, [str(d) if d else f"<{_dim_label(info, i)}>" for i, d in enumerate(shape)]))
        else:
            _set_shape(info, shape)
    if dynamic:
        what = []
        fixes = []
        covered: set[str] = set()  # a dim name given once binds every input that shares it
        for info, dims in dynamic:
            if not dims:
                what.append(f"'{info.name}' has no shape in the model")
                fixes.append(f"--input-shape {info.name}=D0,D1,...")
                continue
            axes = [i for i, d in enumerate(dims) if d.startswith("<")]
            symbols_here = {dims[i] for i in axes}
            what.append(f"'{info.name}' dim{'s' if len(axes) > 1 else ''} {', '.join(map(str, axes))} "
                        f"({', '.join(dims[i][1:-1] for i in axes)})")
            if not symbols_here <= covered or any(d.startswith("<dim") for d in symbols_here):
                fixes.append(f"--input-shape {info.name}={','.join(dims)}")
            covered |= symbols_here
        raise UserError(f"{label}: dynamic input dims need a size: {'; '.join(what)}; give "
                        f"{'it' if len(fixes) == 1 else 'them'} with {' '.join(fixes)}")
    return notes


def _dim_label(info: onnx.ValueInfoProto, axis: int) -> str:
    dim = info.type.tensor_type.shape.dim[axis]
    return dim.dim_param or f"dim{axis}"


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
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            problems.append(f"node '{name}' ({n.op_type}) has a subgraph")
        attrs = node_attrs(n)
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


RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def _check_reshapes(graph: Graph, label: str) -> None:
    """ONNX shape inference lets a Reshape change the element count; that means wrong input shapes."""
    for node in graph.nodes:
        if node.op_type not in RESHAPES or not node.inputs or not node.outputs:
            continue
        src, dst = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
        if src.numel != dst.numel:
            raise UserError(f"{label}: node '{node.name}' ({node.op_type}) turns shape {list(src.shape)} "
                            f"({src.numel} elements) into {list(dst.shape)} ({dst.numel} elements); "
                            "check the input shapes given with --input-shape")


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
