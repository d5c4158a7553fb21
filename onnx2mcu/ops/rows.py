"""TiledRows: a row-wise region of a graph run over tiles of rows (MCUBERT's sequence tiling for
any dtype: int8, float islands, float).

graph_opt/row_tiling.py finds regions in which every node computes each row of its output
from the same row of its tiled inputs (a transformer layer's query path: projections, scores
against the whole K, softmax, P x V, the output projection, residual, LayerNorm, the FFN...;
with the int8 kernels and the float islands as they are), and replaces each region by one node
of this op.  The node runs the region's own nodes, unchanged, on `tile` rows at a time: the
tiled inputs' rows are read where they are when contiguous (`direct_inputs`), else gathered into
the node's scratch, the inner nodes run on tile-sized tensors there, and the outputs' rows are
scattered into the node's outputs.  Intermediates
never exist for the whole sequence: only their tiles, in the scratch.

Exact by construction: every inner node is row-wise (the pass checks it op by op), so a row of
every tensor is the same function of the same inputs whether it is computed in a tile or in
the whole tensor; the same kernels run on both (int8 bit-exact, float identical).

Node: inputs [the sliced inputs (read tile by tile), the whole inputs (activations read
whole: K, V, masks), the inner nodes' constants], outputs [the region's outputs], attribute
`ROWS_ATTR`: a `RowChain`.  `prepare` gives a `RowPlan` (a graph per tile size, the tiles),
which the numpy reference here and the C emitter (codegen/emit/rows.py) both read.

Memory (docs/ARCHITECTURE.md): input + output + scratch during the step; the scratch holds
the tile tensors of the inner steps (planned by their liveness inside a tile, `tile_layout`)
and the inner kernels' scratch.  The output may take the bytes of a sliced input with the
same row layout (`inplace_rule`): tile t reads only rows of tile t and writes them last.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops.registry import (ANY_SUPPORTED, lookup, node_scratch_bytes, prepared, register,
                                   run_reference)

DOMAIN = "onnx2mcu"
ROWS = "TiledRows"
ROWS_ATTR = "rows"
ALIGN = 8


@dataclass(frozen=True, eq=False)
class RowChain:
    """What a TiledRows node runs.  `nodes`: the inner nodes in order (their inputs named as in
    the original graph); `tensors`: every tiled tensor at its full shape (sliced inputs, inner
    tensors, outputs); `axes`: (name, row axis) of each; `sliced`: the node inputs read tile by
    tile; `extent`: the rows of the sequence; `tile`: rows per tile."""
    nodes: tuple[Node, ...]
    tensors: tuple[Tensor, ...]
    axes: tuple[tuple[str, int], ...]
    sliced: tuple[str, ...]
    extent: int
    tile: int

    def axis(self, name: str) -> int | None:
        return dict(self.axes).get(name)

    def with_tile(self, tile: int) -> "RowChain":
        return replace(self, tile=max(1, min(int(tile), self.extent)))

    def __repr__(self) -> str:  # short and stable (reports, estimate keys)
        return (f"RowChain(extent={self.extent}, tile={self.tile}, "
                f"nodes=[{self.nodes[0].name} .. {self.nodes[-1].name}] ({len(self.nodes)}))")


@dataclass(frozen=True)
class RowPlan:
    chain: RowChain
    graphs: dict  # rows per tile -> the region as a Graph of tile-sized tensors
    tiles: tuple[tuple[int, int], ...]  # (first row, rows)

    def graph(self, rows: int) -> Graph:
        return self.graphs[rows]


def tiles_of(extent: int, tile: int) -> tuple[tuple[int, int], ...]:
    return tuple((t0, min(tile, extent - t0)) for t0 in range(0, extent, tile))


def _with_rows(shape: tuple[int, ...], axis: int, rows: int) -> tuple[int, ...]:
    return tuple(rows if i == axis else int(d) for i, d in enumerate(shape))


def tile_graph(chain: RowChain, outer: Graph, rows: int, inputs: list[str], outputs: list[str]) -> Graph:
    """The region on `rows` rows: tiled tensors at tile size, everything else the outer graph's.
    A Reshape's shape constant becomes the tile's shape (a new constant, never in flash: the
    reshape kernels are aliases)."""
    axes = dict(chain.axes)
    tensors: dict[str, Tensor] = {}
    for t in chain.tensors:  # a sliced constant's tile is gathered into the scratch like the rest
        tensors[t.name] = replace(t, shape=_with_rows(t.shape, axes[t.name], rows), data=None)
    nodes = []
    for node in chain.nodes:
        for name in node.inputs:
            if name and name not in tensors:
                tensors[name] = outer.tensors[name]
        if node.op_type == "Reshape" and len(node.inputs) > 1 and node.inputs[1]:
            shape_name = f"{node.inputs[1]}@rows{rows}:{node.name}"
            out = tensors[node.outputs[0]]
            tensors[shape_name] = Tensor(shape_name, (len(out.shape),), DType.INT64,
                                         np.asarray(out.shape, dtype=np.int64))
            node = replace(node, inputs=[node.inputs[0], shape_name] + list(node.inputs[2:]),
                           attrs=dict(node.attrs))
        nodes.append(node)
    sub = Graph(f"rows{rows}", nodes, tensors, [n for n in inputs if n in axes or not tensors[n].is_const],
                list(outputs))
    sub.requant = outer.requant
    return sub


def prepare_plan(node: Node, graph: Graph) -> RowPlan:
    chain: RowChain = node.attrs[ROWS_ATTR]
    data_inputs = [n for n in node.inputs if n and (n in chain.sliced or not graph.tensors[n].is_const)]
    tiles = tiles_of(chain.extent, chain.tile)
    graphs = {rows: tile_graph(chain, graph, rows, data_inputs, list(node.outputs))
              for rows in sorted({r for _, r in tiles})}
    return RowPlan(chain, graphs, tiles)


def plan(node: Node, graph: Graph) -> RowPlan:
    """The node's plan, made again when its chain changed (the tiling pass tries tile sizes)."""
    p = prepared(node, graph)
    if p.chain is not node.attrs[ROWS_ATTR]:
        graph.prepared.pop(node.name, None)
        p = prepared(node, graph)
    return p


# ----- scratch layout --------------------------------------------------------------------
@dataclass(frozen=True)
class TileLayout:
    offsets: dict = field(default_factory=dict)  # tile tensor -> byte offset in the scratch
    scratch: dict = field(default_factory=dict)  # inner node -> byte offset of its scratch
    nbytes: int = 0
    outer: dict = field(default_factory=dict)  # tile tensor -> the whole or direct input whose bytes it is


def _up(v: int) -> int:
    return (v + ALIGN - 1) // ALIGN * ALIGN


def tile_layout(sub: Graph, whole: set[str],
                scratch_of: Callable[[Node, Graph], int] = node_scratch_bytes) -> TileLayout:
    """Offsets of a tile graph's tensors (the gathered inputs, the inner tensors, the outputs
    before they are scattered) and of its nodes' scratch, by liveness over the inner steps:
    first fit, largest first.  An alias op's output shares its input's bytes."""
    root: dict[str, str] = {}
    for node in sub.nodes:
        op = lookup(node.op_type, node.domain)
        if op is not None and op.alias and node.inputs[0] in sub.tensors \
                and not sub.tensors[node.inputs[0]].is_const:
            root[node.outputs[0]] = root.get(node.inputs[0], node.inputs[0])
    last = len(sub.nodes)
    live: dict[str, list[int]] = {}

    def touch(name: str, step: int) -> None:
        if not name or sub.tensors[name].is_const:
            return
        key = root.get(name, name)
        span = live.setdefault(key, [step, step])
        span[0], span[1] = min(span[0], step), max(span[1], step)

    for name in sub.inputs:
        touch(name, -1)
    for step, node in enumerate(sub.nodes):
        for name in list(node.inputs) + list(node.outputs):
            touch(name, step)
    for name in sub.outputs:
        touch(name, last)
    items = []  # (key, bytes, first, last)
    for key, (a, b) in live.items():
        if key in whole:  # read where it lives, never copied
            continue
        size = max(sub.tensors[key].nbytes, max((sub.tensors[n].nbytes for n, r in root.items() if r == key),
                                                default=0))
        items.append((key, size, a, b))
    for step, node in enumerate(sub.nodes):
        size = scratch_of(node, sub)
        if size:
            items.append((f"scratch:{node.name}", size, step, step))
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict[str, int] = {}
    for key, size, a, b in sorted(items, key=lambda it: (-it[1], it[2], it[0])):
        clashes = sorted((o, e) for o, e, pa, pb in placed if pa <= b and a <= pb)
        offset = 0
        for o, e in clashes:
            if offset + size <= o:
                break
            offset = max(offset, _up(e))
        placed.append((offset, offset + size, a, b))
        offsets[key] = offset
    tensor_offsets, outer = {}, {}
    for name in sub.tensors:
        key = root.get(name, name)
        if key in offsets and not sub.tensors[name].is_const:
            tensor_offsets[name] = offsets[key]
        elif key in whole:
            outer[name] = key
    scratch = {k.split(":", 1)[1]: v for k, v in offsets.items() if k.startswith("scratch:")}
    total = _up(max((e for _, e, _, _ in placed), default=0))
    return TileLayout(tensor_offsets, scratch, total, outer)


def whole_inputs(node: Node, graph: Graph) -> list[str]:
    """The node's activation inputs read whole (not tile by tile)."""
    chain: RowChain = node.attrs[ROWS_ATTR]
    return [n for n in node.inputs if n and not graph.tensors[n].is_const and n not in chain.sliced]


def direct_inputs(node: Node, graph: Graph) -> list[str]:
    """Sliced activation inputs whose rows are contiguous: the inner nodes read a tile's rows where
    the arena holds them (no copy in the scratch)."""
    chain: RowChain = node.attrs[ROWS_ATTR]
    return [n for n in chain.sliced if not graph.tensors[n].is_const
            and row_bytes(graph.tensors[n], chain.axis(n)) is not None]


def layouts(node: Node, graph: Graph, scratch_of=node_scratch_bytes) -> dict[int, TileLayout]:
    p = plan(node, graph)
    whole = set(whole_inputs(node, graph)) | set(direct_inputs(node, graph))
    return {rows: tile_layout(sub, whole, scratch_of) for rows, sub in p.graphs.items()}


def _scratch(node: Node, graph: Graph) -> int:
    return max(layout.nbytes for layout in layouts(node, graph).values())


# ----- reference ------------------------------------------------------------------------
def _rows_of(value: np.ndarray, axis: int, t0: int, rows: int) -> np.ndarray:
    index = [slice(None)] * value.ndim
    index[axis] = slice(t0, t0 + rows)
    return value[tuple(index)]


def _reference(node: Node, inputs: list, p: RowPlan | None = None) -> list:
    if p is None:
        raise ValueError("TiledRows runs only with its prepared plan")
    if p.chain is not node.attrs[ROWS_ATTR]:
        raise ValueError(f"TiledRows '{node.name}': its plan is stale (the chain changed)")
    chain = p.chain
    axes = dict(chain.axes)
    given = {n: v for n, v in zip(node.inputs, inputs) if n}
    outs: dict[str, np.ndarray] = {}  # made from the first tile's values (packed BIT rows too)
    for t0, rows in p.tiles:
        sub = p.graph(rows)
        values = {}
        for name, value in given.items():
            values[name] = _rows_of(np.asarray(value), axes[name], t0, rows) if name in chain.sliced else value
        for inner in sub.nodes:
            args = []
            for name in inner.inputs:
                if not name:
                    args.append(None)
                elif name in values:
                    args.append(values[name])
                else:
                    args.append(sub.tensors[name].data)
            for name, value in zip(inner.outputs, run_reference(inner, args, sub)):
                if name:
                    values[name] = value
        for name in node.outputs:
            value = np.asarray(values[name])
            if name not in outs:
                shape = list(value.shape)
                shape[axes[name]] = chain.extent
                outs[name] = np.zeros(shape, dtype=value.dtype)
            index = [slice(None)] * outs[name].ndim
            index[axes[name]] = slice(t0, t0 + rows)
            outs[name][tuple(index)] = values[name]
    return [outs[name] for name in node.outputs]


def inner_nodes(graph: Graph):
    """(node, the graph it is in, the TiledRows node running it or None) for every node the
    graph runs: a TiledRows node's own nodes (on its first tile's graph) in its place."""
    for node in graph.nodes:
        if node.op_type == ROWS and node.domain == DOMAIN:
            p = plan(node, graph)
            sub = p.graph(p.tiles[0][1])
            for inner in sub.nodes:
                yield inner, sub, node.name
        else:
            yield node, graph, None


def _macs(node: Node, graph: Graph) -> int:
    p = plan(node, graph)
    total = 0
    for _, rows in p.tiles:
        sub = p.graph(rows)
        for inner in sub.nodes:
            op = lookup(inner.op_type, inner.domain)
            total += int(op.macs(inner, sub)) if op is not None else 0
    return total


def _infer(node: Node, inputs: list[Tensor]):
    chain: RowChain = node.attrs[ROWS_ATTR]
    by_name = {t.name: t for t in chain.tensors}
    return [(tuple(by_name[o].shape), by_name[o].dtype) for o in node.outputs]


def row_bytes(tensor: Tensor, axis: int) -> int | None:
    """Bytes of one row when the rows are contiguous runs (all dims before the axis are 1)."""
    if math.prod(tensor.shape[:axis]) != 1:
        return None
    return tensor.nbytes // max(int(tensor.shape[axis]), 1)


def _inplace(node: Node, graph: Graph) -> tuple[int, ...]:
    """Sliced inputs whose bytes the first output may take: the same contiguous row layout."""
    chain: RowChain = node.attrs[ROWS_ATTR]
    out = graph.tensors[node.outputs[0]]
    out_row = row_bytes(out, chain.axis(node.outputs[0]))
    found = []
    for i, name in enumerate(node.inputs):
        if name in chain.sliced:
            t = graph.tensors[name]
            if out_row is not None and row_bytes(t, chain.axis(name)) == out_row and t.nbytes == out.nbytes:
                found.append(i)
    return tuple(found)


def _check(node: Node, graph: Graph) -> str | None:
    chain = node.attrs.get(ROWS_ATTR)
    if not isinstance(chain, RowChain):
        return "TiledRows without its region"
    try:
        plan(node, graph)
    except (ValueError, KeyError) as exc:
        return str(exc)
    return None


register(ROWS, _reference, domain=DOMAIN, dtypes=(ANY_SUPPORTED | {DType.BIT},), prepare=prepare_plan,
         scratch_bytes=_scratch, macs=_macs, infer=_infer, check=_check, inplace_rule=_inplace,
         quantized="integer")
