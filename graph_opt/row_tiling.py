"""Row tiling of transformer layers on any graph (the int8 path of `--tile auto`).

The float TiledAttention / TiledFFN kernels (graph_opt/tiling.py) match the float exporters'
patterns.  A quantized BERT (quantize_static QDQ: int8 MatMuls and Adds, float islands for
LayerNorm, Softmax and GELU's Div) is made of the graph's own nodes instead; this pass tiles
those nodes as they are.  It finds *row regions*: sets of nodes in which every node computes
row r of its output from row r of its tiled inputs and whole other inputs (a projection by a
constant weight, an elementwise op broadcasting its other inputs over the rows, Softmax or
LayerNormalization over other axes, a layout op that keeps the row axis whole, MatMul of a
tiled A by a whole B such as K^T or V).  Each region becomes one TiledRows node
(onnx2mcu/ops/rows.py) that runs its nodes on tiles of rows, so the region's intermediates
(the [heads, S, S] scores, the [S, FFN] activation, the float islands' copies) exist only for
one tile.  Exact: the same kernels on the same rows.

Regions grow from a seed (an activation read by a projection, [.., S, H], rows on its
sequence axis) through the nodes in file order.  Three rules keep a region sound:

* a node that needs a tiled tensor whole (MatMul's B: the keys of the scores) moves that
  tensor's producers out of the region: K and V are computed whole before it;
* when the producers so moved read a tensor made inside the region (layer 2's K from layer
  1's output), the region ends at that tensor (a cut): it becomes a region output;
* a node outside the region that reads a region tensor and feeds the region back also cuts.

Before tiling, an Expand whose every reader is an elementwise op that broadcasts anyway (the
exporters' attention mask, [1,1,1,S] -> [1,1,S,S]) is dropped: the readers take the small
tensor, exactly (the same values broadcast).

Tile size: the largest whose file-order peak fits the budget (`--ram-budget` or the board's
RAM, less the I/O buffers) or, without one, the peak with one-row tiles plus at most 3%.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops.int8 import TABLE
from onnx2mcu.ops.rows import DOMAIN, ROWS, ROWS_ATTR, RowChain
from onnx2mcu.ops._util import norm_axis
from onnx2mcu.rewrite import ELEMENTWISE_OPS, GraphIndex, Rewriter, drop_unused_tensors

LAYOUT = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
LOOKUPS = frozenset({"ClusteredEmbedding", "ClusteredEmbeddingInt8"})  # onnx2mcu/ops/mcubert.py
PROJECTIONS = frozenset({"BinaryMatMul", "XnorGemm", "AdderMatMul"})  # ops/binary.py, ops/adder.py
MIN_ROWS = 8  # sequences shorter than this are not worth tiling


class _NeedsWhole(Exception):
    def __init__(self, tensor: str):
        super().__init__(tensor)
        self.tensor = tensor


def _shape(g: Graph, name: str) -> tuple[int, ...]:
    return tuple(int(d) for d in g.tensors[name].shape)


def _quant_ok(g: Graph, name: str, axis: int) -> bool:
    """A tiled tensor must not be quantized per axis along its rows."""
    q = g.tensors[name].quant
    return q is None or q.axis is None or norm_axis(q.axis, len(g.tensors[name].shape)) != axis


def _elementwise(g: Graph, node: Node, axes: dict, extent: int, sliced: dict) -> int | None:
    out = _shape(g, node.outputs[0])
    rank = len(out)
    data = node.inputs[:1] if node.op_type in ("QuantizeLinear", "DequantizeLinear") else node.inputs
    target = None
    for name in data:
        if name in axes:
            oa = axes[name] + rank - len(_shape(g, name))
            if target is not None and oa != target:
                return None
            target = oa
    if target is None or target < 0 or out[target] != extent:
        return None
    for name in data:
        if not name or name in axes:
            continue
        shape = _shape(g, name)
        ia = target - (rank - len(shape))
        if ia < 0 or shape[ia] == 1:
            continue  # broadcast over the rows
        if shape[ia] != extent:
            return None
        sliced[name] = ia  # a whole tensor with the rows (a constant too): read tile by tile
    if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.inputs) > 1:
        scale = g.tensors[node.inputs[1]]
        if scale.numel > 1 and norm_axis(int(node.attr("axis", 1)), rank) == target:
            return None
    return target


def _matmul(g: Graph, node: Node, axes: dict) -> int | None:
    a, b = node.inputs[:2]
    if b in axes:
        raise _NeedsWhole(b)
    if a not in axes:
        return None
    ra = len(_shape(g, a))
    if ra < 2 or axes[a] == ra - 1:
        return None
    return axes[a] + len(_shape(g, node.outputs[0])) - ra


def _gemm(g: Graph, node: Node, axes: dict) -> int | None:
    a, b = node.inputs[:2]
    if b in axes or (len(node.inputs) > 2 and node.inputs[2] in axes):
        raise _NeedsWhole(b if b in axes else node.inputs[2])
    if node.attr("transA", 0) or axes.get(a) != 0:
        return None
    return 0


def _gather(g: Graph, node: Node, axes: dict) -> int | None:
    """A lookup (embeddings): rows of a table that is not tiled, by tiled indices."""
    data, indices = node.inputs[:2]
    if data in axes or indices not in axes:
        return None
    return norm_axis(int(node.attr("axis", 0)), len(_shape(g, data))) + axes[indices]


def _projection_rows(g: Graph, node: Node, axes: dict) -> int | None:
    """BinaryMatMul / XnorGemm / AdderMatMul: rows of x (any axis but the last) by a whole W."""
    x = node.inputs[0]
    if any(n in axes for n in node.inputs[1:] if n):
        raise _NeedsWhole(next(n for n in node.inputs[1:] if n in axes))
    if x not in axes or axes[x] == len(_shape(g, x)) - 1:
        return None
    return axes[x]


def _pack_rows(g: Graph, node: Node, axes: dict) -> int | None:
    """PackSigns moves its packed axis last: the row axis must not be it."""
    x = node.inputs[0]
    if x not in axes:
        return None
    rank = len(_shape(g, x))
    packed, a = norm_axis(int(node.attr("axis", -1)), rank), axes[x]
    if a == packed:
        return None
    return a if a < packed else a - 1


def _layout(g: Graph, node: Node, axes: dict) -> int | None:
    x = node.inputs[0]
    if x not in axes:
        return None
    a = axes[x]
    shape_in, out = _shape(g, x), _shape(g, node.outputs[0])
    if node.op_type == "Transpose":
        perm = node.attr("perm") or list(range(len(shape_in)))[::-1]
        return list(perm).index(a)
    before = math.prod(shape_in[:a])
    for k, d in enumerate(out):
        if d == shape_in[a] and math.prod(out[:k]) == before:
            return k
    return None


def _axis_reduced(node: Node, axes: dict, g: Graph) -> int | None:
    x = node.inputs[0]
    if x not in axes or any(n in axes for n in node.inputs[1:] if n):
        return None
    rank = len(_shape(g, x))
    a = axes[x]
    if node.op_type in ("Softmax", "LogSoftmax"):
        return a if norm_axis(int(node.attr("axis", -1)), rank) != a else None
    first = norm_axis(int(node.attr("axis", -1)), rank)  # LayerNormalization: axes first..rank-1
    if a >= first or any(o for o in node.outputs[1:]):
        return None
    return a


def row_axis(g: Graph, node: Node, axes: dict, extent: int, sliced: dict) -> int | None:
    """The row axis of the node's output when it is row-wise in its tiled inputs, else None;
    raises _NeedsWhole(t) when it could be but needs the tiled tensor t whole."""
    if len([o for o in node.outputs if o]) != 1:
        return None
    op = node.op_type
    if node.domain == DOMAIN and op in LOOKUPS:  # MCUBERT's compressed embeddings: rows by ids
        found = axes.get(node.inputs[0]) if not any(n in axes for n in node.inputs[1:] if n) else None
    elif node.domain == DOMAIN and op in PROJECTIONS:  # binary / adder linear layers: x [.., K] by W
        found = _projection_rows(g, node, axes)
    elif node.domain == DOMAIN and op == "PackSigns":
        found = _pack_rows(g, node, axes)
    elif node.domain == DOMAIN and op == TABLE:  # a fused elementwise chain (graph_opt/table_fusion.py)
        found = axes.get(node.inputs[0])
    elif node.domain not in ("", "ai.onnx"):
        return None
    elif op in ELEMENTWISE_OPS:
        found = _elementwise(g, node, axes, extent, sliced)
    elif op == "MatMul":
        found = _matmul(g, node, axes)
    elif op == "Gemm":
        found = _gemm(g, node, axes)
    elif op in LAYOUT:
        found = _layout(g, node, axes)
    elif op == "Gather":
        found = _gather(g, node, axes)
    elif op in ("Softmax", "LogSoftmax", "LayerNormalization"):
        found = _axis_reduced(node, axes, g)
    else:
        return None
    if found is None or not _quant_ok(g, node.outputs[0], found):
        return None
    return found if _shape(g, node.outputs[0])[found] == extent else None


# ----- regions ------------------------------------------------------------------------
@dataclass
class Region:
    seed: str
    extent: int
    nodes: list[Node]
    axes: dict
    sliced: dict  # whole activations read tile by tile (besides the seed): name -> row axis


def _seed_axis(g: Graph, name: str) -> int | None:
    shape = _shape(g, name)
    for k, d in enumerate(shape[:-1]):
        if d > 1:
            return k if d >= MIN_ROWS and math.prod(shape[:k]) == 1 else None
    return None


def _grow(g: Graph, ix: GraphIndex, seed: str, axis: int, outside: set[int], taken: set[int]):
    """(nodes, axes, sliced {name: axis}, conflict): the region grown from `seed` in file order,
    up to the first node that needs one of its tensors whole (conflict: (node, tensor), else None)."""
    extent = _shape(g, seed)[axis]
    axes = {seed: axis}
    sliced: dict = {}
    nodes: list[Node] = []
    producer = ix.producer(seed)
    start = 0 if producer is None else next(i for i, n in enumerate(g.nodes) if n is producer) + 1
    for node in g.nodes[start:]:
        if id(node) in outside or id(node) in taken or not any(n in axes for n in node.inputs if n):
            continue
        trial = dict(sliced)
        try:
            out_axis = row_axis(g, node, axes, extent, trial)
        except _NeedsWhole as need:
            return nodes, axes, sliced, (node, need.tensor)
        if out_axis is None:
            continue
        sliced = trial
        nodes.append(node)
        axes[node.outputs[0]] = out_axis
    return nodes, axes, sliced, None


def _descendants(g: Graph, ix: GraphIndex, names: list[str]) -> set[int]:
    seen: set[int] = set()
    stack = list(names)
    while stack:
        for user in ix.consumers(stack.pop()):
            if id(user) not in seen:
                seen.add(id(user))
                stack.extend(o for o in user.outputs if o)
    return seen


def _ancestors_in(ix: GraphIndex, name: str, members: set[int]) -> list[Node]:
    found, stack, seen = [], [name], set()
    while stack:
        node = ix.producer(stack.pop())
        if node is None or id(node) not in members or id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        stack.extend(i for i in node.inputs if i)
    return found


def _feedback(g: Graph, ix: GraphIndex, nodes: list[Node], axes: dict) -> list[str]:
    """Tensors made in the region that an outside path leads back into the region from."""
    members = {id(n) for n in nodes}
    made = {o for n in nodes for o in n.outputs}
    exits = [t for t in axes if t in made and any(id(u) not in members for u in ix.consumers(t))]
    bad = []
    for t in exits:
        back = _descendants(g, ix, [o for u in ix.consumers(t) if id(u) not in members for o in u.outputs if o])
        if back & members:
            bad.append(t)
    return bad


def find_region(g: Graph, seed: str, taken: set[int], axis: int | None = None) -> Region | None:
    axis = _seed_axis(g, seed) if axis is None else axis
    if axis is None or g.tensors[seed].is_const or not _quant_ok(g, seed, axis):
        return None
    ix = GraphIndex(g)
    outside: set[int] = set()
    for _ in range(4 * len(g.nodes) + 4):
        nodes, axes, sliced, conflict = _grow(g, ix, seed, axis, outside, taken)
        members = {id(n) for n in nodes}
        if conflict is not None:
            node, tensor = conflict
            # the producers of the tensor needed whole that the node's tiled inputs do not share
            shared = {id(n) for i in node.inputs if i and i != tensor for n in _ancestors_in(ix, i, members)}
            anc = [n for n in _ancestors_in(ix, tensor, members) if id(n) not in shared]
            if not anc:
                outside.add(id(node))
                continue
            made = {o for n in anc for o in n.outputs}
            cut = [i for n in anc for i in n.inputs
                   if i and i not in made and ix.producer(i) is not None and id(ix.producer(i)) in members]
            outside |= _descendants(g, ix, cut) if cut else {id(n) for n in anc}
            continue
        bad = _feedback(g, ix, nodes, axes)
        if bad:
            outside |= _descendants(g, ix, bad)
            continue
        if len(nodes) < 2:
            return None
        return Region(seed, _shape(g, seed)[axis], nodes, axes, sliced)
    return None


# ----- rewriting ------------------------------------------------------------------------
def _make_node(g: Graph, ix: Rewriter, region: Region) -> Node:
    members = {id(n) for n in region.nodes}
    made = [o for n in region.nodes for o in n.outputs if o]
    outputs = [o for o in made if o in g.outputs or any(id(u) not in members for u in ix.consumers(o))]
    axes = dict(region.axes)
    axes.update(region.sliced)
    sliced = [region.seed] + sorted(region.sliced)
    whole, consts = [], []
    for node in region.nodes:
        for name in node.inputs:
            if not name or name in axes or name in made or name in whole or name in consts:
                continue
            (consts if g.tensors[name].is_const else whole).append(name)
    tiled = sliced + [o for o in made]
    chain = RowChain(tuple(region.nodes), tuple(g.tensors[n] for n in tiled),
                     tuple((n, axes[n]) for n in tiled), tuple(sliced), region.extent, 1)
    return Node(name=ix.names.node(f"{region.nodes[-1].name}/tiled_rows"), op_type=ROWS, domain=DOMAIN,
                inputs=sliced + whole + consts, outputs=outputs, attrs={ROWS_ATTR: chain})


def fold_broadcast_expands(g: Graph) -> int:
    """Drop Expands whose readers are all elementwise ops that broadcast the small tensor to
    the same output shape anyway (exact: the same values reach every element)."""
    ix = Rewriter(g)
    dropped = 0
    for node in [n for n in g.nodes if n.op_type == "Expand" and n.domain in ("", "ai.onnx")]:
        x, y = node.inputs[0], node.outputs[0]
        users = ix.consumers(y)
        if not users or y in g.outputs or g.tensors[x].dtype != g.tensors[y].dtype \
                or g.tensors[x].quant != g.tensors[y].quant:
            continue
        ok = True
        for user in users:
            if user.op_type not in ELEMENTWISE_OPS or user.op_type in ("QuantizeLinear", "DequantizeLinear"):
                ok = False
                break
            shapes = [_shape(g, x if i == y else i) for i in user.inputs if i]
            try:
                if tuple(np.broadcast_shapes(*shapes)) != _shape(g, user.outputs[0]):
                    ok = False
            except ValueError:
                ok = False
        if not ok:
            continue
        for user in users:
            user.inputs = [x if i == y else i for i in user.inputs]
        ix.remove(node)
        dropped += 1
    if dropped:
        drop_unused_tensors(g)
    return dropped


def sink_dequantize(g: Graph, names=None) -> int:
    """A Gather or Slice that selects from a DequantizeLinear's float output (BERT's pooler takes
    the first token of the dequantized hidden states) selects from the integers instead, with
    the DequantizeLinear after it: exact (dequantizing per tensor commutes with selecting), and
    the whole float tensor is no longer made when nothing else reads it."""
    ed = Rewriter(g, names)
    moved = 0
    for dq in [n for n in g.nodes if n.op_type == "DequantizeLinear" and n.domain in ("", "ai.onnx")]:
        x, y = dq.inputs[0], dq.outputs[0]
        if any(g.tensors[i].numel != 1 for i in dq.inputs[1:] if i):
            continue
        for user in ed.consumers(y):
            if user.op_type not in ("Gather", "Slice") or user.inputs[0] != y or y in user.inputs[1:] \
                    or g.tensors[user.outputs[0]].numel >= g.tensors[y].numel:
                continue
            out = user.outputs[0]
            small = ed.add_tensor(f"{out}_int", g.tensors[out].shape, g.tensors[x].dtype)
            g.tensors[small].quant = g.tensors[x].quant
            user.inputs[0], user.outputs[0] = x, small
            after = ed.new_node(f"{dq.name}_after_{user.name}", "DequantizeLinear",
                                [small] + list(dq.inputs[1:]), [out], dict(dq.attrs))
            index = next(i for i, n in enumerate(g.nodes) if n is user)
            g.nodes.insert(index + 1, after)
            ed.changed()
            moved += 1
        if not ed.consumers(y) and y not in g.outputs:
            ed.remove(dq)
    if moved:
        drop_unused_tensors(g)
    return moved


def _seed(g: Graph, ix: GraphIndex, a: str, taken: set[int]) -> tuple[str, int] | None:
    """The earliest tensor the rows of a projection's input `a` come from through a chain of
    row-wise nodes with one activation input (the embeddings' lookups, sums and LayerNorm before
    the first layer), and its row axis; else `a` on its sequence axis."""
    axis = _seed_axis(g, a)
    if axis is None:
        return None
    extent = _shape(g, a)[axis]
    chain, name = [], a
    while True:
        node = ix.producer(name)
        if node is None or id(node) in taken or (node.domain not in ("", "ai.onnx")
                                                  and node.op_type not in LOOKUPS):
            break
        data = [i for i in node.inputs if i and not g.tensors[i].is_const]
        if len(data) != 1 or len(ix.consumers(name)) > 1 and name != a:
            break
        chain.append(node)
        name = data[0]
    best = (a, axis)
    for k in range(len(chain)):  # the longest prefix whose forward rows reach `a` on `axis`
        start = next(i for i in chain[k].inputs if i and not g.tensors[i].is_const)
        for cand in range(len(_shape(g, start))):
            if _shape(g, start)[cand] != extent or not _quant_ok(g, start, cand):
                continue
            axes = {start: cand}
            ok = True
            for node in reversed(chain[:k + 1]):
                try:
                    out = row_axis(g, node, axes, extent, {})
                except _NeedsWhole:
                    out = None
                if out is None:
                    ok = False
                    break
                axes[node.outputs[0]] = out
            if ok and axes.get(a) == axis:
                best = (start, cand)
                break
    return best


def rewrite(g: Graph, names=None) -> list[Node]:
    """Replace every row region (seeded at the activations read by projections) by a TiledRows
    node with one-row tiles; returns the new nodes."""
    ed = Rewriter(g, names)
    made: list[Node] = []
    taken: set[int] = set()
    for node in list(g.nodes):
        projection = (node.op_type == "MatMul" and node.domain in ("", "ai.onnx")) or \
            (node.op_type in PROJECTIONS and node.domain == DOMAIN)
        if not any(n is node for n in g.nodes) or not projection:
            continue
        a, b = node.inputs[:2]
        if not g.tensors[b].is_const or g.tensors[a].is_const:
            continue
        seed = _seed(g, ed, a, taken)
        region = None if seed is None else find_region(g, seed[0], taken, seed[1])
        if region is None:
            continue
        new = _make_node(g, ed, region)
        ed.replace(region.nodes, [new])
        taken.add(id(new))
        made.append(new)
    if made:
        drop_unused_tensors(g)
    return made


def largest_fitting(lo: int, hi: int, fits) -> int | None:
    """Largest v in [lo, hi] with fits(v) (fits monotone: true then false), or None."""
    if hi < lo or not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def set_tile(g: Graph, node: Node, tile: int) -> None:
    node.attrs[ROWS_ATTR] = node.attrs[ROWS_ATTR].with_tile(tile)
    g.prepared.pop(node.name, None)


def size_tiles(g: Graph, nodes: list[Node], target: int, peak) -> dict:
    """The largest tile (the same for every region: they take turns in the arena) whose peak
    is within `target`; one-row tiles when none is."""
    extent = max(n.attrs[ROWS_ATTR].extent for n in nodes)

    def fits(tile: int) -> bool:
        for n in nodes:
            set_tile(g, n, tile)
        return peak(g) <= target

    lo = largest_fitting(1, extent, fits) or 1
    for n in nodes:
        set_tile(g, n, lo)
    return {"regions": len(nodes), "rows": extent, "tile_rows": lo,
            "nodes_per_region": [len(n.attrs[ROWS_ATTR].nodes) for n in nodes]}
