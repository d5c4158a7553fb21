"""The rewrite toolkit: what every graph rewrite needs, written once (docs/ARCHITECTURE.md).

It lives in the core because both the frontend (ONNX clean-up, frontend/simplify.py)
and graph_opt (IR -> IR passes) rewrite graphs, and a stage may import only the
core and the stages to its left.

- Names: `FreshNames` hands out tensor and node names that collide with nothing
  in the graph and with nothing it handed out before.
- Index and edits: `Rewriter` is a graph with its producer/consumer index
  (rebuilt lazily after each edit, so it is never stale and costs one sweep per
  change) and the edits that keep the node list topologically ordered.
- Dead code: `live_nodes` (one backward sweep, for IR nodes and ONNX
  NodeProtos alike), `remove_dead`, `drop_unused_tensors`.
- Matchers: `scalar` constants, `channel_vector` (per-channel constants),
  `affine_consumer` (a per-channel y * m + a after a tensor: Mul/Add/Sub/Div
  by constants, BatchNormalization), `projection` / `as_projection` / `bias_add` (`x @ W + b` as MatMul + Add or
  Gemm), `is_closed` (a match whose intermediates nothing else reads), and the
  layout probe (`positions`, `run_index_ops`, `same_layout`): index-only ops
  are recognised by what they do to a tensor whose elements are their own
  positions, not by how an exporter spelt them.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

from onnx2mcu.ir import DType, Graph, GraphError, Node, Tensor
from onnx2mcu.ops import lookup

STANDARD_DOMAINS = ("", "ai.onnx")
N = TypeVar("N")


# Standard ops that apply elementwise (numpy broadcasting of their other inputs): what the row
# tiling (graph_opt/row_tiling.py) and the table fusion (graph_opt/table_fusion.py) may take.
ELEMENTWISE_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min", "Relu", "Erf", "Tanh", "Sigmoid", "Gelu",
    "Sqrt", "Exp", "Log", "Neg", "Abs", "Cast", "Clip", "IsNaN", "IsInf", "Not", "And", "Or", "Equal",
    "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "LeakyRelu", "HardSigmoid", "HardSwish",
    "Softplus", "Identity", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
    "QuantizeLinear", "DequantizeLinear"})

def is_standard(node) -> bool:
    """Whether `node` is an op of the default ONNX domain (IR Node or NodeProto)."""
    return node.domain in STANDARD_DOMAINS


def other_input(node: Node, name: str) -> str:
    """The input of a two-input node that is not `name`."""
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


# ----------------------------------------------------------------- fresh names
class FreshNames:
    """Unique names `base`, `base_1`, `base_2`, ... for new tensors and nodes.

    A tensor name is free when no tensor and no node of the live graph uses it
    and it was not handed out before; a node name, when no node uses it and it
    was not handed out before.  Handed-out names stay taken, so names drawn
    before their tensors or nodes join the graph never collide.  Without a
    graph (`graph=None`, e.g. an ONNX proto) only the names given as taken and
    the ones handed out count.
    """

    def __init__(self, graph: Graph | None = None, tensors: Iterable[str] = (),
                 nodes: Iterable[str] = ()):
        self.graph = graph
        self._tensors: set[str] = set(tensors)
        self._nodes: set[str] = set(nodes)

    def tensor(self, base: str) -> str:
        live = self._live_nodes()
        graph_tensors = self.graph.tensors if self.graph is not None else {}
        name = self._first_free(base, lambda n: n in self._tensors or n in graph_tensors or n in live)
        self._tensors.add(name)
        return name

    def node(self, base: str) -> str:
        live = self._live_nodes()
        name = self._first_free(base, lambda n: n in self._nodes or n in live)
        self._nodes.add(name)
        return name

    def _live_nodes(self) -> set[str]:
        return {n.name for n in self.graph.nodes} if self.graph is not None else set()

    @staticmethod
    def _first_free(base: str, taken: Callable[[str], bool]) -> str:
        name, i = base, 0
        while taken(name):
            i += 1
            name = f"{base}_{i}"
        return name


# ----------------------------------------------------------------- index and edits
class GraphIndex:
    """Producer and consumers of every tensor, rebuilt on first use after `changed()`."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._maps: tuple[dict[str, Node], dict[str, list[Node]]] | None = None

    def changed(self) -> None:
        """Call after editing nodes by hand (inputs, outputs, the node list)."""
        self._maps = None

    def _get(self) -> tuple[dict[str, Node], dict[str, list[Node]]]:
        if self._maps is None:
            self._maps = (self.graph.producers(), self.graph.consumers())
        return self._maps

    def producer(self, name: str) -> Node | None:
        return self._get()[0].get(name) if name else None

    def consumers(self, name: str) -> list[Node]:
        return self._get()[1].get(name, [])

    def sole_consumer(self, name: str, op_type: str | None = None) -> Node | None:
        """The only node reading `name` (of `op_type`, if given), when `name` is no graph
        output; else None."""
        users = self.consumers(name)
        if len(users) == 1 and name not in self.graph.outputs and \
                (op_type is None or users[0].op_type == op_type):
            return users[0]
        return None

    def const(self, name: str) -> np.ndarray | None:
        if not name or name not in self.graph.tensors:
            return None
        return self.graph.tensors[name].data

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.graph.tensors[name].shape)


class Rewriter(GraphIndex):
    """A graph being rewritten in place: its index, its name source and order-keeping edits."""

    def __init__(self, graph: Graph, names: FreshNames | None = None):
        super().__init__(graph)
        self.names = names if names is not None else FreshNames(graph)

    # ----- new tensors and nodes
    def add_const(self, base: str, data: np.ndarray, dtype: DType | None = None,
                  shape: tuple[int, ...] | None = None) -> str:
        name = self.names.tensor(base)
        data = np.ascontiguousarray(data)
        dtype = dtype or DType.from_numpy(data.dtype)
        self.graph.tensors[name] = Tensor(name, tuple(shape if shape is not None else data.shape),
                                          dtype, data)
        return name

    def add_tensor(self, base: str, shape: Iterable[int], dtype: DType) -> str:
        name = self.names.tensor(base)
        self.graph.tensors[name] = Tensor(name, tuple(int(d) for d in shape), dtype)
        return name

    def new_node(self, base: str, op_type: str, inputs: Iterable[str], outputs: Iterable[str],
                 attrs: dict | None = None, domain: str = "") -> Node:
        """A node with a fresh name (not yet in the graph: see insert_before / replace)."""
        return Node(self.names.node(base), op_type, list(inputs), list(outputs), dict(attrs or {}),
                    domain)

    # ----- edits
    def insert_before(self, anchor: Node, nodes: Node | Sequence[Node]) -> None:
        new = [nodes] if isinstance(nodes, Node) else list(nodes)
        index = _index_of(self.graph.nodes, anchor)
        self.graph.nodes[index:index] = new
        self.changed()

    def replace(self, old: Node | Sequence[Node], new: Sequence[Node]) -> None:
        """Put `new` where the last of `old` stood and drop `old`.

        That keeps the order topological whenever the new nodes read only what
        the old ones could read and produce what they produced; if a reader of
        a new output stood earlier, the list is re-sorted (stably, so nodes
        that were in order keep their places)."""
        doomed = [old] if isinstance(old, Node) else list(old)
        ids = {id(n) for n in doomed}
        position = max(_index_of(self.graph.nodes, n) for n in doomed)
        nodes: list[Node] = []
        for i, node in enumerate(self.graph.nodes):
            if i == position:
                nodes.extend(new)
            elif id(node) not in ids:
                nodes.append(node)
        self.graph.nodes = nodes
        if not is_topological(self.graph):
            self.graph.nodes = stable_topological_order(self.graph)
        self.changed()

    def remove(self, node: Node) -> None:
        del self.graph.nodes[_index_of(self.graph.nodes, node)]
        self.changed()

    def remove_dead(self) -> int:
        removed = remove_dead(self.graph)
        self.changed()
        return removed


def _index_of(nodes: list[Node], node: Node) -> int:
    for i, candidate in enumerate(nodes):
        if candidate is node:
            return i
    raise GraphError(f"node {node.name} is not in the graph")


def is_topological(graph: Graph) -> bool:
    """Whether every node input is a graph input, a constant or produced by an earlier node."""
    available = set(graph.inputs) | {t.name for t in graph.constants()}
    for node in graph.nodes:
        if any(name and name not in available for name in node.inputs):
            return False
        available.update(name for name in node.outputs if name)
    return True


def stable_topological_order(graph: Graph) -> list[Node]:
    """The nodes in a topological order that keeps the current order wherever it can."""
    producer_index = {out: i for i, node in enumerate(graph.nodes) for out in node.outputs if out}
    waiting = [0] * len(graph.nodes)
    readers: list[list[int]] = [[] for _ in graph.nodes]
    for i, node in enumerate(graph.nodes):
        sources = {producer_index[n] for n in node.inputs if n in producer_index}
        sources.discard(i)
        waiting[i] = len(sources)
        for s in sources:
            readers[s].append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(graph.nodes[i])
        for r in readers[i]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    if len(order) != len(graph.nodes):
        stuck = next(graph.nodes[i].name for i, count in enumerate(waiting) if count)
        raise GraphError(f"the nodes form a cycle (through {stuck})")
    return order


# ----------------------------------------------------------------- dead code
def live_nodes(nodes: Sequence[N], needed: Iterable[str], inputs_of: Callable[[N], Iterable[str]],
               outputs_of: Callable[[N], Iterable[str]]) -> list[N]:
    """The nodes some name in `needed` depends on, in their order (nodes topologically ordered).

    Works on anything with inputs and outputs: IR nodes (`.inputs`, `.outputs`)
    and ONNX NodeProtos (`.input`, `.output`).  Every op is taken to be free of
    side effects."""
    wanted = set(needed)
    keep: list[N] = []
    for node in reversed(nodes):
        if any(o and o in wanted for o in outputs_of(node)):
            keep.append(node)
            wanted.update(i for i in inputs_of(node) if i)
    keep.reverse()
    return keep


def drop_unused_tensors(graph: Graph) -> int:
    """Delete tensors no node, graph input or graph output refers to; returns how many."""
    used = set(graph.inputs) | set(graph.outputs)
    for node in graph.nodes:
        used.update(n for n in node.inputs if n)
        used.update(n for n in node.outputs if n)
    unused = [name for name in graph.tensors if name not in used]
    for name in unused:
        del graph.tensors[name]
    return len(unused)


def remove_dead(graph: Graph) -> int:
    """Drop nodes no graph output depends on, then unused tensors; returns the nodes dropped."""
    keep = live_nodes(graph.nodes, graph.outputs, lambda n: n.inputs, lambda n: n.outputs)
    removed = len(graph.nodes) - len(keep)
    graph.nodes = keep
    drop_unused_tensors(graph)
    return removed


# ----------------------------------------------------------------- matchers: constants
def scalar(value: np.ndarray | None, uniform: bool = False) -> float | None:
    """The value of a one-element constant, else None.

    `uniform=True` also accepts a constant of any size whose elements are all
    equal; the caller must then check that its shape widens nothing."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size == 0 or (arr.size != 1 and not uniform):
        return None
    flat = arr.reshape(-1)
    if arr.size != 1 and not np.all(flat == flat[0]):
        return None
    return float(flat[0])


def channel_vector(value: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """A constant that broadcasts along `axis` only (or is a scalar) as a [C] float64 vector."""
    value = np.asarray(value, dtype=np.float64)
    rank = len(out_shape)
    channels = out_shape[axis]
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    if value.ndim > rank:
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    for i, d in enumerate(shape):
        if i != axis and d != 1:
            return None
    if shape[axis] != channels:
        return None
    return value.reshape(-1)


@dataclass
class Affine:
    """The only reader of a tensor y computes y * mul + add per channel (float64 vectors or None)."""

    node: Node
    mul: np.ndarray | None
    add: np.ndarray | None


def affine_consumer(ix: GraphIndex, name: str, axis: int) -> Affine | None:
    """The sole reader of `name` as a per-channel affine map along `axis`, keeping its shape:
    Mul / Add by a constant, Sub / Div of one (not by the tensor), BatchNormalization (axis 1)."""
    nxt = ix.sole_consumer(name)
    if nxt is None or not is_standard(nxt):
        return None
    shape = ix.shape(name)
    if not nxt.outputs or ix.shape(nxt.outputs[0]) != shape:
        return None
    op = nxt.op_type
    if op in ("Mul", "Add", "Sub", "Div") and len(nxt.inputs) == 2:
        other = other_input(nxt, name)
        value = ix.const(other)
        if value is None or (op in ("Sub", "Div") and nxt.inputs[0] != name):
            return None
        vec = channel_vector(value, shape, axis)
        if vec is None:
            return None
        if op == "Mul":
            return Affine(nxt, vec, None)
        if op == "Div":
            return None if np.any(vec == 0) else Affine(nxt, 1.0 / vec, None)
        return Affine(nxt, None, vec if op == "Add" else -vec)
    if op == "BatchNormalization" and not any(nxt.outputs[1:]):
        if axis != 1 or len(shape) < 2:
            return None
        params = [ix.const(n) for n in nxt.inputs[1:5]]
        if len(params) != 4 or any(p is None for p in params):
            return None
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
        s = gamma / np.sqrt(var + float(nxt.attr("epsilon", 1e-5)))
        return Affine(nxt, s, beta - mean * s)
    return None


# ----------------------------------------------------------------- matchers: projections
@dataclass
class Projection:
    """`y = alpha * x @ W' + beta * b` with constant W (W' = W, or W^T for a Gemm with transB)."""

    x: str  # the activation
    weight: str  # constant W as stored: [in, out], or [out, in] when trans_w
    bias: str  # constant b ("" when none): 1-D [out] after a MatMul, any broadcastable C of a Gemm
    nodes: list[Node] = field(default_factory=list)  # the MatMul (+ Add) or the Gemm, in order
    trans_w: bool = False
    alpha: float = 1.0
    beta: float = 1.0

    @property
    def plain(self) -> bool:
        """W is [in, out] and nothing scales the product or the bias: the names can be used as they are."""
        return not self.trans_w and self.alpha == 1.0 and self.beta == 1.0

    def weight_in_out(self, ix: GraphIndex) -> np.ndarray:
        """W' as [in, out] (float32 as stored; alpha not applied)."""
        w = ix.const(self.weight)
        return w.T if self.trans_w else w


def as_projection(ix: GraphIndex, node: Node) -> Projection | None:
    """`node` itself as a projection: a MatMul by a 2-D float32 constant, or a Gemm (C as bias)."""
    if not is_standard(node) or node.op_type not in ("MatMul", "Gemm") or len(node.inputs) < 2:
        return None
    x, w = node.inputs[0], node.inputs[1]
    wv = ix.const(w)
    if wv is None or wv.ndim != 2 or wv.dtype != np.float32 or ix.const(x) is not None:
        return None
    if node.op_type == "MatMul":
        return Projection(x, w, "", [node])
    if node.attr("transA", 0):
        return None
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    if bias and ix.const(bias) is None:
        return None
    return Projection(x, w, bias, [node], trans_w=bool(node.attr("transB", 0)),
                      alpha=float(node.attr("alpha", 1.0)), beta=float(node.attr("beta", 1.0)))


def projection(ix: GraphIndex, name: str) -> Projection | None:
    """How tensor `name` is computed as `x @ W (+ b)`: MatMul, MatMul then Add of a 1-D b, or Gemm."""
    node = ix.producer(name)
    if node is None or not is_standard(node):
        return None
    if node.op_type == "Add" and len(node.inputs) == 2:
        a, b = node.inputs
        for mm_out, c in ((a, b), (b, a)):
            value = ix.const(c)
            mm = ix.producer(mm_out)
            if value is not None and value.ndim == 1 and mm is not None and mm.op_type == "MatMul":
                found = as_projection(ix, mm)
                if found is None or value.shape[0] != ix.const(found.weight).shape[1]:
                    return None
                found.bias = c
                found.nodes.append(node)
                return found
        return None
    return as_projection(ix, node)


def bias_add(ix: GraphIndex, name: str, width: int) -> tuple[str, Node] | None:
    """(b, the Add) when the only reader of `name` adds a 1-D constant b of `width` values."""
    add = ix.sole_consumer(name)
    if add is None or add.op_type != "Add" or not is_standard(add) or len(add.inputs) != 2:
        return None
    other = other_input(add, name)
    value = ix.const(other)
    if value is None or value.ndim != 1 or value.shape[0] != width:
        return None
    return other, add


def is_closed(ix: GraphIndex, nodes: Sequence[Node], out: str) -> bool:
    """Every tensor `nodes` make, but `out`, is read only by `nodes` and is no graph output."""
    inside = {id(n) for n in nodes}
    if len(inside) != len(nodes):
        return False
    for node in nodes:
        for name in node.outputs:
            if not name or name == out:
                continue
            if name in ix.graph.outputs:
                return False
            if any(id(u) not in inside for u in ix.consumers(name)):
                return False
    return True


# ----------------------------------------------------------------- matchers: the layout probe
def positions(shape: Sequence[int], first: int = 0, dtype=np.int64) -> np.ndarray:
    """A probe tensor whose elements are their own (row-major) positions, from `first` on."""
    count = int(np.prod(shape, dtype=np.int64))
    return np.arange(first, first + count, dtype=dtype).reshape(tuple(shape))


def run_index_ops(ix: GraphIndex, source: str, value: np.ndarray, nodes: Sequence[Node],
                  passthrough: Iterable[str] = ()) -> np.ndarray | None:
    """Evaluate `nodes` in order with tensor `source` bound to `value` (constants fill the
    other inputs); ops in `passthrough` forward their one non-constant input unchanged.
    Returns the last node's first output, or None when some node cannot run."""
    skip = set(passthrough)
    values: dict[str, np.ndarray] = {source: value}
    for node in nodes:
        if node.op_type in skip:
            runtime = [values[n] for n in node.inputs if n in values]
            if len(runtime) != 1:
                return None
            values[node.outputs[0]] = runtime[0]
            continue
        args: list[np.ndarray | None] = []
        for name in node.inputs:
            if not name:
                args.append(None)
            elif name in values:
                args.append(values[name])
            elif ix.const(name) is not None:
                args.append(ix.const(name))
            else:
                return None
        op = lookup(node.op_type, node.domain)
        if op is None:
            return None
        try:
            outs = op.reference(node, args)
        except Exception:  # noqa: BLE001 - an op that cannot run on the probe is no match
            return None
        for name, out in zip(node.outputs, outs):
            if name:
                values[name] = np.asarray(out)
    return values[nodes[-1].outputs[0]] if nodes else value


def same_layout(ix: GraphIndex, source: str, nodes: Sequence[Node], shape: Sequence[int],
                expect: Callable[[np.ndarray], np.ndarray], passthrough: Iterable[str] = ()) -> bool:
    """Whether `nodes`, run from `source` of `shape`, move elements exactly as `expect` does."""
    probe = positions(shape)
    got = run_index_ops(ix, source, probe, nodes, passthrough)
    want = expect(probe)
    return got is not None and got.shape == want.shape and bool(np.array_equal(got, want))


__all__ = ["ELEMENTWISE_OPS", "FreshNames", "GraphIndex", "Rewriter", "other_input", "Projection", "Affine", "affine_consumer", "is_standard", "is_topological",
           "stable_topological_order", "live_nodes", "remove_dead", "drop_unused_tensors", "scalar",
           "channel_vector", "as_projection", "projection", "bias_add", "is_closed", "positions",
           "run_index_ops", "same_layout", "GraphError"]
