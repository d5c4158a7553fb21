"""C lowering of TiledRows (onnx2mcu/ops/rows.py): a row region run tile by tile.

The inner nodes are emitted by their own kernels (the ones the board would pick for them),
on the region's tile graph: their tensors live in the node's scratch at the offsets of
`tile_layout`, whole inputs where the arena holds them, constants in the weight blob.  Per
tile: gather the tile's rows of every sliced input into the scratch (o2m_copy_blocks), run
the inner steps, scatter the outputs' rows.  Full tiles share one loop; a shorter last tile
is a second copy of the steps at its own size.
"""
from __future__ import annotations

import math
import numpy as np

from onnx2mcu.codegen.context import C_NUMPY, TENSOR, UNION_MEMBER, CContext, NotSupportedInC
from onnx2mcu.codegen.kernel_registry import BACKENDS, PORTABLE, _KERNELS, register_kernel, select_kernel
from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops.rows import DOMAIN, ROWS, ROWS_ATTR, RowPlan, direct_inputs, plan, tile_layout, whole_inputs


def _preference(backend: str) -> tuple[str, ...]:
    return (backend, PORTABLE) if backend != PORTABLE else (PORTABLE,)


def _selections(sub: Graph, preference) -> dict:
    """The inner nodes' kernels (recording their scratch on the tile graph)."""
    found, sub.scratch = {}, {}
    for inner in sub.nodes:
        choice = select_kernel(inner, sub, preference)
        found[inner.name] = choice
        if not isinstance(choice, str):
            sub.scratch[inner.name] = choice.scratch
    return found


def _layouts(node: Node, graph: Graph, preference) -> tuple[RowPlan, dict, dict]:
    p = plan(node, graph)
    whole = set(whole_inputs(node, graph)) | set(direct_inputs(node, graph))
    support = {rows: _selections(sub, preference) for rows, sub in p.graphs.items()}
    layouts = {rows: tile_layout(sub, whole) for rows, sub in p.graphs.items()}
    return p, support, layouts


def _applies(preference):
    def applies(node: Node, graph: Graph) -> str | None:
        p = plan(node, graph)
        for sub in p.graphs.values():
            for inner, choice in _selections(sub, preference).items():
                if isinstance(choice, str):
                    return f"inner node '{inner}': {choice}"
        return None
    return applies


def _scratch(preference):
    def scratch(node: Node, graph: Graph) -> int:
        _, _, layouts = _layouts(node, graph, preference)
        return max(layout.nbytes for layout in layouts.values())
    return scratch


class _TileContext(CContext):
    """The context of the inner steps: shares the declarations, kernels and weight re-layouts
    of the model's context; a constant is re-laid only when the region is its only reader."""
    parent_graph: Graph | None = None
    region: Node | None = None
    moving: dict | None = None  # tensor -> elements per row: read at row o2m_r0 of a direct input

    def ptr(self, name: str, offset: int = 0) -> str:
        base = super().ptr(name, offset)
        if self.moving and name in self.moving:
            return f"({base} + (size_t)o2m_r0 * {self.moving[name]}u)"
        return base

    def relayout_const(self, name: str, node: Node, data: np.ndarray) -> bool:
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        if name in self.relaid:
            return bool(np.array_equal(self.relaid[name], raw))
        outer_readers = sum(n == name for other in self.parent_graph.nodes for n in other.inputs)
        inner_readers = sum(n == name for other in self.graph.nodes for n in other.inputs)
        tensor = self.graph.tensors[name]
        if (outer_readers != 1 or inner_readers != 1 or not tensor.is_const or raw.size != tensor.nbytes
                or name in self.parent_graph.outputs):
            return False
        self.relaid[name] = raw
        return True


def _sub_context(ctx: CContext, node: Node, sub: Graph, layout, base: int) -> _TileContext:
    arena = {name: base + off for name, off in layout.offsets.items()}
    direct = set(direct_inputs(node, ctx.graph))
    chain = node.attrs[ROWS_ATTR]
    moving = {}
    for name, outer in layout.outer.items():
        arena[name] = ctx.arena_offsets[outer]
        if outer in direct:  # its rows where the arena holds them, from row o2m_r0 on
            full = ctx.graph.tensors[outer]
            unit = np.dtype(C_NUMPY[UNION_MEMBER[full.dtype]]).itemsize  # the pointer's element (BIT: words)
            moving[name] = full.nbytes // int(full.shape[chain.axis(outer)]) // unit
    for name in whole_inputs(node, ctx.graph) + sorted(direct):
        arena[name] = ctx.arena_offsets[name]
    scratch = {inner.name: base + layout.scratch.get(inner.name, 0) for inner in sub.nodes}
    tc = _TileContext(sub, arena, ctx.weight_offsets, scratch, prefix=ctx.prefix, ext_offsets=ctx.ext_offsets,
                      declarations=ctx.declarations, kernels=ctx.kernels, _counter=ctx._counter,
                      _interned=ctx._interned, relaid=ctx.relaid)
    tc.parent_graph, tc.region, tc.moving = ctx.graph, node, moving
    return tc


def _bytes_ptr(ctx: CContext, name: str) -> str:
    return f"((uint8_t *){ctx.ptr(name)})"


def _copies(ctx: CContext, sub_ctx: CContext, p: RowPlan, names, rows: int, gather: bool) -> list[str]:
    """Gather (or scatter) the tile's rows of `names`: row r0 is `o2m_r0`."""
    lines = []
    axes = dict(p.chain.axes)
    for name in names:
        full = ctx.graph.tensors[name]
        axis = axes[name]
        blocks = math.prod(full.shape[:axis])
        run = full.nbytes // max(blocks * int(full.shape[axis]), 1)  # bytes of one row of one block
        big, small = int(full.shape[axis]) * run, rows * run
        outer = f"({_bytes_ptr(ctx, name)} + (size_t)o2m_r0 * {run}u)"
        local = _bytes_ptr(sub_ctx, name)
        if gather:
            lines.append(f"o2m_copy_blocks({blocks}, {small}, {outer}, {big}, {local}, {small});")
        else:
            lines.append(f"o2m_copy_blocks({blocks}, {small}, {local}, {small}, {outer}, {big});")
    return lines


def _emit(preference):
    def emit(node: Node, ctx: CContext) -> list[str]:
        p, support, layouts = _layouts(node, ctx.graph, preference)
        base = ctx.scratch_offsets[node.name]
        ctx.need(TENSOR)
        groups: list[tuple[int, int, int]] = []  # (rows, count, first row)
        for t0, rows in p.tiles:
            if groups and groups[-1][0] == rows:
                groups[-1] = (rows, groups[-1][1] + 1, groups[-1][2])
            else:
                groups.append((rows, 1, t0))
        lines = ["{", "    int32_t o2m_t, o2m_r0;"]
        for rows, count, first in groups:
            sub = p.graph(rows)
            sub_ctx = _sub_context(ctx, node, sub, layouts[rows], base)
            direct = set(direct_inputs(node, ctx.graph))
            body = _copies(ctx, sub_ctx, p, [n for n in p.chain.sliced if n not in direct], rows, gather=True)
            for inner in sub.nodes:
                choice = support[rows][inner.name]
                if isinstance(choice, str):
                    ctx.refuse(node, f"inner node '{inner.name}': {choice}")
                sub_ctx._counter = ctx._counter
                try:
                    code = choice.kernel.emit(inner, sub_ctx)
                except NotSupportedInC as exc:
                    ctx.refuse(node, f"inner node '{inner.name}': {str(exc).split('): ', 1)[-1]}")
                ctx._counter = sub_ctx._counter
                if isinstance(code, str):
                    code = [line for line in code.splitlines() if line.strip()]
                body += list(code)
            body += _copies(ctx, sub_ctx, p, node.outputs, rows, gather=False)
            lines += [f"    for (o2m_t = 0; o2m_t < {count}; ++o2m_t) {{",
                      f"        o2m_r0 = {first} + o2m_t * {rows};"]
            lines += ["        " + line for line in body]
            lines.append("    }")
        lines.append("}")
        return lines
    return emit


def _all_sources() -> tuple[str, ...]:
    return tuple(sorted({s for kernel in _KERNELS.values() for s in kernel.sources} | {TENSOR}))


for _backend in BACKENDS:
    register_kernel(ROWS, _emit(_preference(_backend)), domain=DOMAIN, backend=_backend,
                    sources=_all_sources(), applies=_applies(_preference(_backend)),
                    scratch_bytes=_scratch(_preference(_backend)))
