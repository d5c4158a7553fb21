"""Control flow that is static on an MCU: If on a constant condition, Loop with a constant trip
count and no data-dependent exit, Scan over a static length (issue 12, item 2).

Runs inside the frontend's fold loop (frontend/convert.py): once shape binding, folding or
`--input-value` have made a condition or a trip count constant, the node is replaced by the
nodes of its subgraph (If: the taken branch; Loop / Scan: one copy of the body per
iteration), with the subgraph's own names prefixed and its outer-scope references kept, so
they resolve to the enclosing graph's values.  What stays data-dependent is named, with what
to bind, by `check_static` (one error for every such node).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx2mcu.errors import UserError
from onnx2mcu.frontend.fold import subgraph_reads

CONTROL_FLOW = ("If", "Loop", "Scan")
MAX_UNROLL = 4096
"""Iterations above this are refused: the unrolled graph would not fit an MCU's flash."""


# ----- binding scalar inputs (--input-value) ------------------------------------------
def bind_input_values(proto: onnx.ModelProto, values: Mapping[str, float], label: str) -> list[str]:
    """Turn the named graph inputs into constants holding the given scalar (or 1-element) value."""
    if not values:
        return []
    graph = proto.graph
    inputs = {i.name: i for i in graph.input}
    notes = []
    for name, value in values.items():
        if name not in inputs:
            raise UserError(f"{label}: --input-value names '{name}', which is not an input; inputs "
                            f"are: {', '.join(sorted(inputs))}")
        array = input_value_array(inputs[name], value, label)
        kept = [init for init in graph.initializer if init.name != name]
        del graph.initializer[:]
        graph.initializer.extend(kept + [numpy_helper.from_array(array, name)])
        notes.append(f"input '{name}' bound to the constant {value} (--input-value)")
    kept_inputs = [i for i in graph.input if i.name not in values]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    proto.ir_version = max(proto.ir_version, 4)  # initializers outside the inputs
    return notes


def input_value_array(info: onnx.ValueInfoProto, value: float, label: str) -> np.ndarray:
    elem = info.type.tensor_type.elem_type
    dims = [d.dim_value if d.HasField("dim_value") else 1 for d in info.type.tensor_type.shape.dim]
    if int(np.prod(dims)) != 1:
        raise UserError(f"{label}: --input-value binds scalars; input '{info.name}' has shape {dims}")
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    return np.full(dims, value, dtype=dtype)


def input_value_feed(proto: onnx.ModelProto, values: Mapping[str, float] | None) -> dict:
    """The bound values as onnxruntime inputs (the original model still takes them)."""
    inputs = {i.name: i for i in proto.graph.input}
    return {name: input_value_array(inputs[name], value, "")
            for name, value in (values or {}).items() if name in inputs}


# ----- copying a subgraph into the enclosing graph ------------------------------------
def _defined(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    return names | {o for node in graph.node for o in node.output if o}


def _rename_outer_refs(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    """Rename, in a nested subgraph, the references to names of the scope being copied."""
    local = _defined(graph)
    outer = {k: v for k, v in mapping.items() if k not in local}
    if not outer:
        return
    for node in graph.node:
        node.input[:] = [outer.get(n, n) for n in node.input]
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                _rename_outer_refs(sub, outer)
    for out in graph.output:
        out.name = outer.get(out.name, out.name)


def _copy_subgraph(body: onnx.GraphProto, prefix: str, bind: Mapping[str, str]
                   ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[str]]:
    """The body's nodes and initializers with local names prefixed, its inputs replaced by
    `bind`; returns them and the (renamed) names of the body's outputs."""
    local = {o for node in body.node for o in node.output if o} | {i.name for i in body.initializer}
    mapping = {name: prefix + name for name in local}
    mapping.update(bind)
    inits = []
    for init in body.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = mapping[init.name]
        inits.append(copy)
    nodes = []
    for index, node in enumerate(body.node):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or f"node{index}")
        copy.input[:] = [mapping.get(n, n) if n else n for n in node.input]
        copy.output[:] = [mapping.get(n, n) if n else n for n in node.output]
        for attr in copy.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                _rename_outer_refs(sub, mapping)
        nodes.append(copy)
    return nodes, inits, [mapping.get(o.name, o.name) for o in body.output]


# ----- the rewrites --------------------------------------------------------------------
class _Graph:
    """The enclosing graph being rewritten: constants, fresh names, the new node list."""

    def __init__(self, proto: onnx.ModelProto):
        self.proto = proto
        self.graph = proto.graph
        self.consts = {init.name: init for init in self.graph.initializer}
        self.names = _defined(self.graph)
        self.counter = 0

    def const(self, name: str) -> np.ndarray | None:
        init = self.consts.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def fresh(self, hint: str) -> str:
        while True:
            self.counter += 1
            name = f"{hint}__cf{self.counter}"
            if name not in self.names:
                self.names.add(name)
                return name

    def add_const(self, hint: str, array: np.ndarray) -> str:
        name = self.fresh(hint)
        init = numpy_helper.from_array(array, name)
        self.graph.initializer.append(init)
        self.consts[name] = init
        return name


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _identity(src: str, dst: str, name: str) -> onnx.NodeProto:
    return helper.make_node("Identity", [src], [dst], name=name)


def _inline_if(g: _Graph, node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    cond = g.const(node.input[0])
    if cond is None:
        return None
    branch = _attr(node, "then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch")
    prefix = g.fresh(node.name or "if") + "__"
    nodes, inits, outs = _copy_subgraph(branch, prefix, {})
    g.graph.initializer.extend(inits)
    return nodes + [_identity(src, dst, f"{prefix}out{i}")
                    for i, (src, dst) in enumerate(zip(outs, node.output)) if dst]


def _loop_exit_is_static(body: onnx.GraphProto) -> bool:
    """The body's condition output is its condition input, or a constant true."""
    cond_in, cond_out = body.input[1].name, body.output[0].name
    if cond_out == cond_in:
        return True
    for init in body.initializer:
        if init.name == cond_out:
            return bool(numpy_helper.to_array(init).reshape(-1)[0])
    for node in body.node:
        if cond_out in node.output:
            if node.op_type == "Identity" and node.input[0] == cond_in:
                return True
            if node.op_type == "Constant":
                value = _attr(node, "value")
                return value is not None and bool(numpy_helper.to_array(value).reshape(-1)[0])
    return False


def _stack(g: _Graph, parts: list[str], axis: int, out: str, prefix: str) -> list[onnx.NodeProto]:
    axes = g.add_const(prefix + "axes", np.array([axis], np.int64))
    nodes, pieces = [], []
    for i, part in enumerate(parts):
        piece = g.fresh(prefix + "piece")
        nodes.append(helper.make_node("Unsqueeze", [part, axes], [piece], name=g.fresh(prefix + "unsq")))
        pieces.append(piece)
    nodes.append(helper.make_node("Concat", pieces, [out], name=g.fresh(prefix + "stack"), axis=axis))
    return nodes


def _inline_loop(g: _Graph, node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    trip = g.const(node.input[0]) if node.input and node.input[0] else None
    cond = node.input[1] if len(node.input) > 1 else ""
    if trip is None or (cond and g.const(cond) is None):
        return None
    body = _attr(node, "body")
    if not _loop_exit_is_static(body):
        return None
    count = int(np.asarray(trip).reshape(-1)[0])
    if cond and not bool(np.asarray(g.const(cond)).reshape(-1)[0]):
        count = 0
    n_state = len(node.input) - 2
    n_scan = len(body.output) - 1 - n_state
    if count > MAX_UNROLL or (count == 0 and n_scan):
        return None
    prefix = g.fresh(node.name or "loop") + "__"
    state = list(node.input[2:])
    scans: list[list[str]] = [[] for _ in range(n_scan)]
    nodes: list[onnx.NodeProto] = []
    true = g.add_const(prefix + "true", np.array(True))
    for i in range(count):
        bind = {body.input[0].name: g.add_const(prefix + f"iter{i}", np.array(i, np.int64)),
                body.input[1].name: true}
        bind.update({body.input[2 + j].name: state[j] for j in range(n_state)})
        body_nodes, inits, outs = _copy_subgraph(body, f"{prefix}i{i}__", bind)
        g.graph.initializer.extend(inits)
        nodes += body_nodes
        state = outs[1:1 + n_state]
        for k in range(n_scan):
            scans[k].append(outs[1 + n_state + k])
    nodes += [_identity(src, dst, f"{prefix}out{j}")
              for j, (src, dst) in enumerate(zip(state, node.output[:n_state])) if dst]
    for k, out in enumerate(node.output[n_state:]):
        if out:
            nodes += _stack(g, scans[k], 0, out, prefix)
    return nodes


def _inline_scan(g: _Graph, node: onnx.NodeProto, shapes) -> list[onnx.NodeProto] | None:
    body = _attr(node, "body")
    m = int(_attr(node, "num_scan_inputs"))
    n_state = len(node.input) - m
    scan_inputs = list(node.input[n_state:])
    in_axes = list(_attr(node, "scan_input_axes", [0] * m))
    in_dirs = list(_attr(node, "scan_input_directions", [0] * m))
    n_out = len(body.output) - n_state
    out_axes = list(_attr(node, "scan_output_axes", [0] * n_out))
    out_dirs = list(_attr(node, "scan_output_directions", [0] * n_out))
    lengths = set()
    for name, axis in zip(scan_inputs, in_axes):
        if name not in shapes:
            return None
        shape = shapes[name]
        lengths.add(shape[axis % len(shape)])
    if len(lengths) != 1:
        return None
    steps = lengths.pop()
    if steps > MAX_UNROLL or (steps == 0 and n_out):
        return None
    prefix = g.fresh(node.name or "scan") + "__"
    state = list(node.input[:n_state])
    outs_per_step: list[list[str]] = [[] for _ in range(n_out)]
    nodes: list[onnx.NodeProto] = []
    for t in range(steps):
        bind = {body.input[j].name: state[j] for j in range(n_state)}
        for j, (name, axis, reverse) in enumerate(zip(scan_inputs, in_axes, in_dirs)):
            rank = len(shapes[name])
            index = g.add_const(prefix + "t", np.array(steps - 1 - t if reverse else t, np.int64))
            piece = g.fresh(prefix + "slice")
            nodes.append(helper.make_node("Gather", [name, index], [piece],
                                          name=g.fresh(prefix + "gather"), axis=axis % rank))
            bind[body.input[n_state + j].name] = piece
        body_nodes, inits, outs = _copy_subgraph(body, f"{prefix}t{t}__", bind)
        g.graph.initializer.extend(inits)
        nodes += body_nodes
        state = outs[:n_state]
        for k in range(n_out):
            outs_per_step[k].append(outs[n_state + k])
    nodes += [_identity(src, dst, f"{prefix}out{j}")
              for j, (src, dst) in enumerate(zip(state, node.output[:n_state])) if dst]
    for k, out in enumerate(node.output[n_state:]):
        if out:
            parts = outs_per_step[k][::-1] if out_dirs[k] else outs_per_step[k]
            rank = len(shapes.get(out, ())) or None
            axis = out_axes[k] if rank is None or out_axes[k] >= 0 else out_axes[k] % rank
            nodes += _stack(g, parts, axis, out, prefix)
    return nodes


def inline_static_control_flow(proto: onnx.ModelProto, shapes) -> bool:
    """Replace each If / Loop / Scan whose behaviour is now static; True if one was."""
    if not any(node.op_type in CONTROL_FLOW and node.domain in ("", "ai.onnx")
               for node in proto.graph.node):
        return False
    g = _Graph(proto)
    changed, out = False, []
    for node in proto.graph.node:
        replacement = None
        if node.domain in ("", "ai.onnx"):
            if node.op_type == "If":
                replacement = _inline_if(g, node)
            elif node.op_type == "Loop":
                replacement = _inline_loop(g, node)
            elif node.op_type == "Scan":
                replacement = _inline_scan(g, node, shapes)
        if replacement is None:
            out.append(node)
        else:
            out.extend(replacement)
            changed = True
    if changed:
        del proto.graph.node[:]
        proto.graph.node.extend(out)
    return changed


def _input_sources(proto: onnx.ModelProto, name: str, inputs: set[str]) -> set[str]:
    """The graph inputs whose values `name` depends on."""
    producer = {o: node for node in proto.graph.node for o in node.output if o}
    found, stack, seen = set(), [name], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in inputs:
            found.add(current)
        node = producer.get(current)
        if node is not None and node.op_type not in ("Shape", "Size"):  # those read shapes only
            stack.extend(n for n in list(node.input) + sorted(subgraph_reads(node)) if n)
    return found


def check_static(proto: onnx.ModelProto, label: str) -> None:
    """One error naming every If / Loop / Scan still data-dependent, and what to bind."""
    problems = []
    consts = {init.name for init in proto.graph.initializer}
    inputs = {i.name for i in proto.graph.input} - consts
    for node in proto.graph.node:
        if node.op_type not in CONTROL_FLOW or node.domain not in ("", "ai.onnx"):
            continue
        name = node.name or node.output[0]
        if node.op_type == "If":
            sources = sorted(_input_sources(proto, node.input[0], inputs))
            hint = ("bind " + " and ".join(f"--input-value {n}=VALUE" for n in sources)
                    if sources else "bind the input shapes it depends on with --input-shape")
            problems.append(f"If '{name}': its condition '{node.input[0]}' is not a constant; {hint}")
        elif node.op_type == "Loop":
            trip = node.input[0] if node.input else ""
            if not trip or trip not in consts:
                problems.append(f"Loop '{name}': its trip count '{trip or '(none)'}' is not a "
                                "constant; bind the inputs it depends on (--input-value NAME=VALUE "
                                "for a scalar input)")
            else:
                problems.append(f"Loop '{name}': its exit condition depends on data (or it runs more "
                                f"than {MAX_UNROLL} times); only loops with a constant trip count "
                                "and no early exit run on an MCU")
        else:
            problems.append(f"Scan '{name}': its sequence length is not static; bind the input "
                            "shapes with --input-shape")
    if problems:
        raise UserError(f"{label}: control flow that depends on data: " + "; ".join(problems))
