"""Folding of everything that depends only on constants and static shapes.

Rather than one hand-written rule per op, the constant part of the graph is
cut out and evaluated by onnxruntime (onnx's reference evaluator for what
onnxruntime refuses); Shape and Size become constants as soon as their
input's shape is static.  Shape inference and folding alternate until
neither changes anything, which resolves the Shape -> Gather -> Concat ->
Reshape chains that exporters emit and turns DequantizeLinear of constant
weights into float constants.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx2mcu.errors import UserError

NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
              "Multinomial", "Bernoulli", "If", "Loop", "Scan"}


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape for every value whose dims are all known."""
    shapes: dict[str, tuple[int, ...]] = {}
    graph = model.graph
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = info.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if all(d is not None for d in dims):
            shapes[info.name] = tuple(int(d) for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def infer_shapes(model: onnx.ModelProto, label: str, errors: list[str] | None = None
                 ) -> onnx.ModelProto:
    """Shapes and dtypes of every value, from scratch (stale value_info would mask folded constants).

    ONNX shape inference first; where it leaves an output unknown and the op's
    definition gives its own rule (OpDef.infer), that rule fills it in and
    ONNX inference runs again from there.  When strict inference fails, the
    lenient run's partial result is used and the failure is appended to
    `errors` (or raised when `errors` is None): the caller reports it if a
    shape is still missing in the end.
    """
    del model.graph.value_info[:]
    model = _onnx_infer(model, label, errors)
    for _ in range(len(model.graph.node)):
        if not _infer_with_opdefs(model):
            break
        model = _onnx_infer(model, label, errors)
    return model


def shape_inference_error(label: str, message: str) -> UserError:
    return UserError(f"{label}: shape inference failed: {message}; "
                     "check the input shapes given with --input-shape")


def _onnx_infer(model: onnx.ModelProto, label: str, errors: list[str] | None) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True,
                                                 data_prop=True)
    except Exception as exc:
        msg = _first_line(exc)
        if errors is None:
            raise shape_inference_error(label, msg) from None
        errors.append(msg)
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                 data_prop=True)
    except Exception as exc:
        raise shape_inference_error(label, _first_line(exc)) from None


def node_attrs(node: onnx.NodeProto) -> dict:
    """Attributes as plain Python / numpy values (subgraph attributes are left out)."""
    attrs = {}
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            continue
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        attrs[attr.name] = value
    return attrs


def _infer_with_opdefs(model: onnx.ModelProto) -> bool:
    """Fill unknown output shapes from OpDef.infer; returns whether any was added."""
    from onnx2mcu.ir import DType, Node, Tensor
    from onnx2mcu.ops import lookup

    graph = model.graph
    shapes = static_shapes(model)
    elem: dict[str, int] = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        elem[info.name] = info.type.tensor_type.elem_type
    inits = {init.name: init for init in graph.initializer}
    for init in graph.initializer:
        elem[init.name] = init.data_type
    outputs = {info.name: info for info in graph.output}
    added = False
    for node in graph.node:
        if all(o in shapes for o in node.output if o):
            continue
        op = lookup(node.op_type, node.domain)
        if op is None or op.infer is None:
            continue
        tensors: list[Tensor | None] = []
        for name in node.input:
            if not name:
                tensors.append(None)
                continue
            if name not in shapes or not elem.get(name):
                break
            try:
                dtype = DType.from_numpy(helper.tensor_dtype_to_np_dtype(elem[name]))
            except (KeyError, TypeError, ValueError):
                break
            data = numpy_helper.to_array(inits[name]) if name in inits else None
            tensors.append(Tensor(name, shapes[name], dtype, data))
        else:
            ir_node = Node(node.name, node.op_type, list(node.input), list(node.output),
                           node_attrs(node), node.domain)
            try:
                results = op.infer(ir_node, tensors)
            except Exception:  # a rule that cannot handle this node leaves it to the error path
                continue
            for out, (shape, dtype) in zip(node.output, results):
                if not out or out in shapes:
                    continue
                info = helper.make_tensor_value_info(
                    out, helper.np_dtype_to_tensor_dtype(dtype.numpy), [int(d) for d in shape])
                if out in outputs:
                    outputs[out].CopyFrom(info)
                else:
                    graph.value_info.append(info)
                shapes[out] = tuple(int(d) for d in shape)
                elem[out] = info.type.tensor_type.elem_type
                added = True
    return added


def constants_to_initializers(model: onnx.ModelProto) -> None:
    """Turn Constant nodes into initializers so that every constant looks alike."""
    graph = model.graph
    keep = []
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output[0]:
            value = _constant_value(model, node)
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def _constant_value(model: onnx.ModelProto, node: onnx.NodeProto) -> np.ndarray:
    attr = node.attribute[0] if len(node.attribute) == 1 else None
    if attr is not None:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    # sparse values, strings: let the reference evaluator decide
    return np.asarray(evaluate(model, [node], {})[node.output[0]])


def fold_once(model: onnx.ModelProto) -> bool:
    """Fold what can be folded now; returns whether anything changed."""
    graph = model.graph
    const_names = {init.name for init in graph.initializer}
    shapes = static_shapes(model)
    new_consts: dict[str, np.ndarray] = {}
    to_eval: list[onnx.NodeProto] = []
    removed: set[int] = set()
    for index, node in enumerate(graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type in NEVER_FOLD:
            continue
        inputs = [n for n in node.input if n]
        if node.op_type in ("Shape", "Size") and inputs and inputs[0] in shapes \
                and inputs[0] not in const_names:
            shape = np.array(shapes[inputs[0]], dtype=np.int64)
            if node.op_type == "Size":
                value = np.array(int(np.prod(shape)), dtype=np.int64)
            else:
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                value = shape[attrs.get("start", 0): attrs.get("end", len(shape))]
            new_consts[node.output[0]] = value
            const_names.add(node.output[0])
            removed.add(index)
        elif all(n in const_names for n in inputs) and any(o for o in node.output):
            to_eval.append(node)
            const_names.update(o for o in node.output if o)
            removed.add(index)
    if not removed:
        return False
    if to_eval:
        new_consts.update(evaluate(model, to_eval, new_consts))
    used = {n for i, node in enumerate(graph.node) if i not in removed for n in node.input}
    used |= {o.name for o in graph.output}
    for name, value in new_consts.items():
        if name in used:
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    kept = [node for i, node in enumerate(graph.node) if i not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    _drop_unused_initializers(model)
    return True


def evaluate(model: onnx.ModelProto, nodes: list[onnx.NodeProto],
              known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values of the outputs of `nodes` (all of whose inputs are constants).

    onnxruntime runs the whole batch at once (fast, and exact for the ops
    exporters use); if it refuses, the nodes go one by one through
    onnxruntime, then onnx's reference evaluator, so that one odd node does
    not stop the rest and the error names the node that failed.
    """
    inits = {init.name: init for init in model.graph.initializer}
    try:
        return _run_onnxruntime(model, nodes, known, inits)
    except Exception:
        pass
    values = dict(known)
    result: dict[str, np.ndarray] = {}
    for node in nodes:
        errors = []
        for runner in (_run_onnxruntime, _run_reference):
            try:
                out = runner(model, [node], values, inits)
                break
            except Exception as exc:  # each runner has its own exception types
                errors.append(_first_line(exc))
        else:
            label = node.name or node.output[0]
            raise UserError(f"could not fold node '{label}' ({node.op_type}), whose inputs are all "
                            f"constant: {errors[-1]}")
        values.update(out)
        result.update(out)
    return result


def _sub_model(model: onnx.ModelProto, nodes: list[onnx.NodeProto], known: dict[str, np.ndarray],
               inits: dict[str, onnx.TensorProto]) -> tuple[onnx.ModelProto, list[str]]:
    produced = [o for n in nodes for o in n.output if o]
    produced_set = set(produced)
    needed = {i for n in nodes for i in n.input if i and i not in produced_set}
    tensors = [numpy_helper.from_array(np.asarray(known[k]), k) for k in sorted(needed) if k in known]
    tensors += [inits[k] for k in sorted(needed) if k not in known]
    outputs = [helper.make_empty_tensor_value_info(name) for name in produced]
    sub = helper.make_graph(list(nodes), "fold", [], outputs, initializer=tensors)
    sub_model = helper.make_model(sub, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)
    sub_model.functions.extend(model.functions)
    return sub_model, produced


def _run_onnxruntime(model, nodes, known, inits) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sub_model, names = _sub_model(model, nodes, known, inits)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(sub_model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    values = session.run(names, {})
    return {name: np.asarray(v) for name, v in zip(names, values)}


def _run_reference(model, nodes, known, inits) -> dict[str, np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    sub_model, names = _sub_model(model, nodes, known, inits)
    values = ReferenceEvaluator(sub_model).run(names, {})
    return {name: np.asarray(v) for name, v in zip(names, values)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Every name read inside the node's subgraphs (If / Loop / Scan read outer names there)."""
    names: set[str] = set()
    for attr in node.attribute:
        for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
            for inner in sub.node:
                names.update(inner.input)
                names |= subgraph_reads(inner)
            names.update(o.name for o in sub.output)
    return names


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    for node in graph.node:
        used |= subgraph_reads(node)
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
