"""Exact local rewrites of the idioms exporters leave around runtime tensors.

Folding only removes what depends on constants alone.  What remains of an
exporter's mask building (BERT's attention mask: a Gather or GatherND with
an identity index list, And with an all-true constant, Expand to the score
shape, Where) still costs work and, worse, large intermediate tensors.
Each rule here is exact (same values, same output shapes):

- Gather / GatherND whose constant indices enumerate the data in order -> Reshape.
- And with an all-true constant, Or with an all-false one -> the other input
  (Expand-ed when the constant widened it).
- Cast to the dtype its input already has, Expand to the shape its input
  already has -> removed.
- CastLike(x, runtime value of a known dtype) -> Cast(x, to=that dtype): torch.onnx's
  unoptimized graphs cast a Clip's constant bounds "like" its input, which would keep
  them from folding.
- a chain of reshape-like ops -> one Reshape.
- Expand sinks below elementwise ops (f(Expand(y), c) = Expand(f(y, c))) and
  disappears into a broadcasting op whose output it does not widen.
- nodes whose outputs nobody uses are dropped.

Run between rounds of shape inference (see convert.load): rules read the
shapes and dtypes inference left in value_info.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx2mcu.frontend.fold import static_shapes
from onnx2mcu.rewrite import FreshNames, is_standard, live_nodes

BROADCASTING = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "And", "Or", "Xor", "Equal", "Less",
                "Greater", "LessOrEqual", "GreaterOrEqual", "Max", "Min", "Mod"}
UNARY = {"Cast", "Not", "Neg", "Abs", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Reciprocal",
         "Erf", "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round"}
RESHAPE_LIKE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


class _View:
    """Read access to the graph as of the last shape inference."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.model = model
        self.shapes = static_shapes(model)
        self.elem: dict[str, int] = {}
        for info in list(graph.input) + list(graph.value_info) + list(graph.output):
            self.elem[info.name] = info.type.tensor_type.elem_type
        self.inits = {init.name: init for init in graph.initializer}
        for init in graph.initializer:
            self.elem[init.name] = init.data_type
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.outputs = {o.name for o in graph.output}
        self._values: dict[str, np.ndarray] = {}
        self.names = FreshNames(tensors={o for n in graph.node for o in n.output} | set(self.inits) |
                                {i.name for i in graph.input})

    def const(self, name: str) -> np.ndarray | None:
        if name not in self.inits:
            return None
        if name not in self._values:
            self._values[name] = numpy_helper.to_array(self.inits[name])
        return self._values[name]

    def add_const(self, base: str, value: np.ndarray) -> str:
        name = self.names.tensor(base)
        init = numpy_helper.from_array(np.asarray(value), name)
        self.model.graph.initializer.append(init)
        self.inits[name] = init
        return name


def simplify_once(model: onnx.ModelProto) -> bool:
    """Apply every rule where it fits; returns whether the graph changed."""
    view = _View(model)
    graph = model.graph
    changed = False
    new_nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if not is_standard(node):
            new_nodes.append(node)
            continue
        replacement = _rewrite(node, view)
        if replacement is None:
            new_nodes.append(node)
        else:
            new_nodes.extend(replacement)
            changed = True
    if changed:
        del graph.node[:]
        graph.node.extend(new_nodes)
    changed |= _bypass(model, view)
    changed |= remove_dead_nodes(model)
    return changed


def _rewrite(node: onnx.NodeProto, view: _View) -> list[onnx.NodeProto] | None:
    """Nodes that replace `node` (same output names), or None to keep it."""
    op = node.op_type
    out = node.output[0] if node.output else ""
    if not out or out not in view.shapes:
        return None
    out_shape = view.shapes[out]
    if op == "Gather":
        return _gather_identity(node, view, out_shape)
    if op == "GatherND":
        return _gather_nd_identity(node, view, out_shape)
    if op in RESHAPE_LIKE and node.input[0] in view.producer:
        source = view.producer[node.input[0]]
        if source.op_type in RESHAPE_LIKE and is_standard(source) and \
                source.input[0] in view.shapes:
            return [_reshape(view, source.input[0], out, out_shape, node.name)]
        return None
    if op in ("And", "Or") and len(node.input) == 2:
        neutral = op == "And"
        for i in (0, 1):
            value = view.const(node.input[i])
            other = node.input[1 - i]
            if value is not None and value.dtype == np.bool_ and np.all(value == neutral) \
                    and other in view.shapes and view.const(other) is None:
                return [_expand(view, other, out, out_shape, node.name)]
        return None
    if op == "Expand":
        return _merge_expands(node, view, out_shape)
    if op == "CastLike" and len(node.input) == 2 and view.elem.get(node.input[1]):
        return [helper.make_node("Cast", [node.input[0]], [out], name=node.name, to=view.elem[node.input[1]])]
    if op in BROADCASTING or op in UNARY:
        return _sink_expand(node, view, out_shape)
    return None


def _gather_identity(node, view, out_shape):
    data, indices = node.input[0], node.input[1]
    idx = view.const(indices)
    if idx is None or data not in view.shapes or view.const(data) is not None:
        return None
    shape = view.shapes[data]
    axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape):
        return None
    flat = np.where(idx < 0, idx + shape[axis], idx).ravel()
    if flat.size != shape[axis] or not np.array_equal(flat, np.arange(shape[axis])):
        return None
    return [_reshape(view, data, node.output[0], out_shape, node.name)]


def _gather_nd_identity(node, view, out_shape):
    data, indices = node.input[0], node.input[1]
    idx = view.const(indices)
    batch_dims = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "batch_dims"), 0)
    if idx is None or batch_dims != 0 or data not in view.shapes or view.const(data) is not None \
            or idx.ndim < 1:
        return None
    shape = view.shapes[data]
    r = idx.shape[-1]
    if not 1 <= r <= len(shape):
        return None
    flat = idx.reshape(-1, r).astype(np.int64)
    flat = np.where(flat < 0, flat + np.array(shape[:r]), flat)
    expected = np.indices(shape[:r]).reshape(r, -1).T
    if flat.shape != expected.shape or not np.array_equal(flat, expected):
        return None
    return [_reshape(view, data, node.output[0], out_shape, node.name)]


def _reshape(view: _View, source: str, out: str, shape, name: str) -> onnx.NodeProto:
    target = view.add_const(f"{out}_shape", np.array(shape, dtype=np.int64))
    return helper.make_node("Reshape", [source, target], [out], name=name)


def _expand(view: _View, source: str, out: str, shape, name: str) -> onnx.NodeProto:
    if view.shapes.get(source) == tuple(shape):
        return helper.make_node("Identity", [source], [out], name=name)
    target = view.add_const(f"{out}_shape", np.array(shape, dtype=np.int64))
    return helper.make_node("Expand", [source, target], [out], name=name)


def _expanded_input(view: _View, name: str) -> str | None:
    """y when `name` is Expand(y, shape) of a runtime y with a known shape."""
    source = view.producer.get(name)
    if source is None or source.op_type != "Expand" or not is_standard(source):
        return None
    y = source.input[0]
    if y not in view.shapes or view.const(y) is not None:
        return None
    return y


def _merge_expands(node, view, out_shape):
    """Expand(Expand(y, s1), s2) -> Expand(y, out_shape)."""
    inner = _expanded_input(view, node.input[0])
    if inner is not None:
        return [_expand(view, inner, node.output[0], out_shape, node.name)]
    return None


def _sink_expand(node, view, out_shape):
    """f(..., Expand(y), ...) -> f(..., y, ...) [then Expand to the old output shape]."""
    if len(node.output) != 1:
        return None
    for i, name in enumerate(node.input):
        y = _expanded_input(view, name) if name else None
        if y is None:
            continue
        others = [view.shapes.get(n) for j, n in enumerate(node.input) if j != i and n]
        if any(s is None for s in others):
            continue
        try:
            narrow = tuple(np.broadcast_shapes(view.shapes[y], *others))
        except ValueError:
            continue
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.input[i] = y
        if narrow == out_shape:  # the Expand added nothing this op's broadcasting would not
            return [new]
        # sink only through ops on small tensors next to the expanded one: constants
        if any(view.const(n) is None for j, n in enumerate(node.input) if j != i and n):
            continue
        narrow_out = view.names.tensor(f"{node.output[0]}_narrow")
        new.output[0] = narrow_out
        view.shapes[narrow_out] = narrow
        return [new, _expand(view, narrow_out, node.output[0], out_shape, f"{node.name}_expand")]
    return None


def _bypass(model: onnx.ModelProto, view: _View) -> bool:
    """Drop Cast to the same dtype and Expand to the same shape by rewiring consumers."""
    graph = model.graph
    renames: dict[str, str] = {}
    for node in graph.node:
        if not is_standard(node) or not node.output or node.output[0] in view.outputs:
            continue
        out, src = node.output[0], node.input[0] if node.input else ""
        if not src:
            continue
        same = False
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            same = to is not None and view.elem.get(src) == to
        elif node.op_type == "Expand":
            same = src in view.shapes and view.shapes.get(out) == view.shapes[src]
        if same:
            renames[out] = renames.get(src, src)
    if not renames:
        return False
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    return True


def remove_dead_nodes(model: onnx.ModelProto) -> bool:
    """Drop nodes none of whose outputs is used (all standard ops are free of side effects)."""
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):
        return False  # subgraphs read outer names that node inputs do not show
    keep = live_nodes(list(graph.node), [o.name for o in graph.output], lambda n: n.input,
                      lambda n: n.output)
    if len(keep) == len(graph.node):
        return False
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in keep for i in n.input} | {o.name for o in graph.output}
    inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return True
