"""Folding of everything that depends only on constants and static shapes.

Rather than one hand-written rule per op, the constant part of the graph is
cut out and evaluated by onnx's reference evaluator; Shape and Size become
constants as soon as their input's shape is static.  Shape inference and
folding alternate until neither changes anything, which resolves the
Shape -> Gather -> Concat -> Reshape chains that exporters emit.
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


def infer_shapes(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True,
                                                 data_prop=True)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{label}: shape inference failed: {msg}; "
                        "check the input shapes given with --input-shape") from None


def constants_to_initializers(model: onnx.ModelProto) -> None:
    """Turn Constant nodes into initializers so that every constant looks alike."""
    graph = model.graph
    keep = []
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            from onnx.reference import ReferenceEvaluator

            value = ReferenceEvaluator(_single_node_model(model, node, [])).run(None, {})[0]
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), node.output[0]))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


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
        new_consts.update(_evaluate(model, to_eval, new_consts))
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


def _evaluate(model: onnx.ModelProto, nodes: list[onnx.NodeProto],
              known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    produced = {o for n in nodes for o in n.output if o}
    needed = {i for n in nodes for i in n.input if i and i not in produced}
    inits = [init for init in model.graph.initializer if init.name in needed]
    inits += [numpy_helper.from_array(np.asarray(v), k) for k, v in known.items() if k in needed]
    outputs = [helper.make_empty_tensor_value_info(name) for name in sorted(produced)]
    sub = helper.make_graph(list(nodes), "fold", [], outputs, initializer=inits)
    sub_model = helper.make_model(sub, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)
    try:
        values = ReferenceEvaluator(sub_model).run(None, {})
    except Exception as exc:
        first = nodes[0]
        raise UserError(f"could not fold the constant subgraph starting at node "
                        f"'{first.name or first.output[0]}' ({first.op_type}): {exc}") from None
    return {o.name: np.asarray(v) for o, v in zip(outputs, values)}


def _single_node_model(model: onnx.ModelProto, node: onnx.NodeProto, inits) -> onnx.ModelProto:
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "one", [], outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
