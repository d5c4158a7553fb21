"""PatchedChain: a chain of int8 convolutions run patch by patch (MCUNetV2, arXiv 2110.15352).

graph_opt/patch.py replaces the first layers of a CNN (a lead of at most one int8 Pad and
one NHWC -> NCHW Transpose, then int8 Convs, each read only by the next) by one node of this
op.  The node's output is split into a grid of spatial tiles (patches); each patch is
computed from the region of the chain's input it depends on (the halo recomputed), so the
chain's intermediate feature maps never exist whole: only the patch buffers, in the node's
scratch (docs/ARCHITECTURE.md, memory model: input + output + scratch during its step).

Per patch and layer the region of each tensor is clipped to the tensor; a clipped side
becomes the layer's padding for that patch (`pad_top/left/bottom/right`), so padding exists
only at the true image borders and every output pixel sums the same taps as the untiled
conv: the results are bit-exact (int32 sums are exact in any order).

Node: inputs [x, every constant input of the inner convs...], outputs [y], attribute
`CHAIN_ATTR`: a `Chain` (the inner nodes, their intermediate tensors, the lead, the grid).
`prepare` gives a `PatchPlan` that the numpy reference (below) and the C emitter
(codegen/emit/patch.py) both read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops import int8_ref as R
from onnx2mcu.ops.memrw import DOMAIN
from onnx2mcu.ops.registry import QUANT, prepared, register

PATCHED = "PatchedChain"
CHAIN_ATTR = "chain"


@dataclass(frozen=True, eq=False)
class Chain:
    """What a PatchedChain node runs.  `nodes`: the inner int8 Convs in order (inputs named as
    in the original graph); `tensors`: the chain's input as the first conv reads it (NCHW,
    padded) and the inner convs' outputs (the last one is the node's output); `layout` of the
    node's input ("nchw" or "nhwc": a Transpose(0, 3, 1, 2) was folded into the gather);
    `pads` (top, left, bottom, right) and `pad_value` of a folded int8 Pad; `grid` (rows,
    cols) of output patches."""
    nodes: tuple[Node, ...]
    tensors: tuple[Tensor, ...]
    layout: str
    pads: tuple[int, int, int, int]
    pad_value: int
    grid: tuple[int, int]
    folded: tuple[str, ...] = ()  # names of the lead nodes folded into the gather

    def __repr__(self) -> str:  # short and stable (graph_opt/memrw.py keys estimates on repr)
        names = ",".join(n.name for n in self.nodes)
        return (f"Chain({self.layout}, pads={self.pads}, value={self.pad_value}, grid={self.grid}, "
                f"nodes=[{names}])")


@dataclass(frozen=True)
class LayerGeom:
    """One inner conv for one patch: its input region (rows, cols of the buffer it reads),
    output region, and the per-patch pads (a clipped side of the region)."""
    in_rect: tuple[int, int, int, int]   # r0, r1, c0, c1 in the input tensor
    out_rect: tuple[int, int, int, int]  # r0, r1, c0, c1 in the output tensor
    pads: tuple[int, int, int, int]      # top, left, bottom, right


@dataclass(frozen=True)
class PatchPlan:
    convs: tuple  # per inner conv: its ConvInt8 Params (onnx2mcu/ops/int8.py)
    nodes: tuple[Node, ...]
    shapes: tuple[tuple[int, int, int], ...]  # (C, H, W) of the chain's tensors t_0 .. t_n
    input_shape: tuple[int, ...]              # the node's input as stored (NCHW or NHWC, unpadded)
    layout: str
    pads: tuple[int, int, int, int]
    pad_value: int
    grid: tuple[int, int]
    patches: tuple[tuple[LayerGeom, ...], ...] = field(repr=False)  # per patch, per layer
    buffer_bytes: tuple[int, ...] = ()   # largest region of t_k over the patches
    buffer_offsets: tuple[int, ...] = ()  # t_k's patch buffer in the scratch
    scratch_bytes: int = 0
    mode: str = "fixed"


def chain_graph(node: Node, graph: Graph) -> Graph:
    """The inner convs as a graph of their own (the outer graph's constants, the chain's tensors)."""
    chain: Chain = node.attrs[CHAIN_ATTR]
    tensors = {t.name: t for t in chain.tensors}
    for inner in chain.nodes:
        for name in inner.inputs[1:]:
            if name:
                tensors[name] = graph.tensors[name]
    sub = Graph(f"{node.name}.chain", list(chain.nodes), tensors, [chain.tensors[0].name],
                [chain.tensors[-1].name])
    sub.requant = graph.requant
    sub.prepared = graph.prepared  # the inner convs' Params are cached with the graph's
    return sub


def split(extent: int, parts: int) -> list[tuple[int, int]]:
    """`extent` in `parts` near-equal runs (the first ones one longer)."""
    base, extra = divmod(extent, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        out.append((start, start + size))
        start += size
    return out


def _need(o0: int, o1: int, stride: int, pad: int, kernel: int, dil: int, extent: int):
    """Input run [i0, i1) of output run [o0, o1) clipped to [0, extent), and the two pads."""
    lo = o0 * stride - pad
    hi = (o1 - 1) * stride - pad + (kernel - 1) * dil + 1
    i0, i1 = max(lo, 0), min(hi, extent)
    return i0, i1, i0 - lo, hi - i1


def plan_geometry(convs, shapes, grid) -> tuple[tuple[LayerGeom, ...], ...]:
    """Per patch of the last tensor's grid, per layer (backwards from the output)."""
    _, h_out, w_out = shapes[-1]
    patches = []
    for r0, r1 in split(h_out, grid[0]):
        for c0, c1 in split(w_out, grid[1]):
            rect = (r0, r1, c0, c1)
            layers = []
            for k in range(len(convs) - 1, -1, -1):
                conv = convs[k].conv
                kh, kw = convs[k].window.kernel
                _, h_in, w_in = shapes[k]
                i0, i1, pt, pb = _need(rect[0], rect[1], conv.stride[0], conv.pads[0], kh, conv.dilation[0], h_in)
                j0, j1, pl, pr = _need(rect[2], rect[3], conv.stride[1], conv.pads[1], kw, conv.dilation[1], w_in)
                layers.append(LayerGeom((i0, i1, j0, j1), rect, (pt, pl, pb, pr)))
                rect = (i0, i1, j0, j1)
            patches.append(tuple(reversed(layers)))
    return tuple(patches)


def _area(rect) -> int:
    return (rect[1] - rect[0]) * (rect[3] - rect[2])


def layout_buffers(sizes: list[int]) -> tuple[tuple[int, ...], int]:
    """Patch buffers of t_0..t_n in one scratch: layer k reads t_k and writes t_{k+1}, so only
    neighbours are live together; even ones start at 0, odd ones end at the scratch's end,
    whose size is the largest neighbour pair (4-byte aligned starts)."""
    def up(v: int) -> int:
        return (v + 3) // 4 * 4
    total = max((up(a) + up(b) for a, b in zip(sizes, sizes[1:])), default=up(sizes[0]))
    offsets = tuple(0 if k % 2 == 0 else total - up(s) for k, s in enumerate(sizes))
    return offsets, total


def prepare_plan(node: Node, graph: Graph) -> PatchPlan:
    from onnx2mcu.ops.int8 import ConvInt8

    chain: Chain = node.attrs[CHAIN_ATTR]
    sub = chain_graph(node, graph)
    convs = []
    for inner in chain.nodes:
        p = prepared(inner, sub)
        if not isinstance(p, ConvInt8):
            raise ValueError(f"PatchedChain '{node.name}': inner node '{inner.name}' is not an int8 Conv")
        convs.append(p)
    shapes = tuple(tuple(int(d) for d in t.shape[1:]) for t in chain.tensors)
    patches = plan_geometry(convs, shapes, chain.grid)
    sizes = []
    for k, (c, _, _) in enumerate(shapes):
        if k < len(convs):
            sizes.append(c * max(_area(p[k].in_rect) for p in patches))
        else:
            sizes.append(c * max(_area(p[-1].out_rect) for p in patches))
    offsets, total = layout_buffers(sizes)
    x = graph.tensors[node.inputs[0]]
    return PatchPlan(tuple(convs), chain.nodes, shapes, tuple(x.shape), chain.layout, chain.pads,
                     chain.pad_value, chain.grid, patches, tuple(sizes), offsets, total, convs[0].mode)


def plan(node: Node, graph: Graph) -> PatchPlan:
    return prepared(node, graph)


def gather(x: np.ndarray, p: PatchPlan, rect) -> np.ndarray:
    """t_0's region `rect` (padded NCHW coordinates) from the node's input: the folded
    Transpose and Pad (`pad_value` outside the unpadded image)."""
    src = x[0] if p.layout == "nchw" else np.transpose(x[0], (2, 0, 1))
    c, h, w = src.shape
    r0, r1, c0, c1 = rect
    out = np.full((c, r1 - r0, c1 - c0), p.pad_value, dtype=np.int8)
    top, left = p.pads[0], p.pads[1]
    sr0, sr1 = max(r0 - top, 0), min(r1 - top, h)
    sc0, sc1 = max(c0 - left, 0), min(c1 - left, w)
    if sr1 > sr0 and sc1 > sc0:
        out[:, sr0 + top - r0:sr1 + top - r0, sc0 + left - c0:sc1 + left - c0] = src[:, sr0:sr1, sc0:sc1]
    return out[None]


def _reference(node: Node, inputs: list, p: PatchPlan | None = None) -> list:
    if p is None:
        raise ValueError("PatchedChain runs only with its prepared plan")
    values = dict(zip(node.inputs, inputs))
    c_out, h_out, w_out = p.shapes[-1]
    y = np.zeros((1, c_out, h_out, w_out), dtype=np.int8)
    for layers in p.patches:
        buf = gather(inputs[0], p, layers[0].in_rect)
        for inner, conv, geom in zip(p.nodes, p.convs, layers):
            local = replace(conv.conv, pads=geom.pads)
            bias = values.get(inner.inputs[2]) if len(inner.inputs) > 2 and inner.inputs[2] else None
            buf = R.conv2d(buf, values[inner.inputs[1]], bias, local, conv.mode)
        r0, r1, c0, c1 = layers[-1].out_rect
        y[:, :, r0:r1, c0:c1] = buf
    return [y]


def _scratch(node: Node, graph: Graph) -> int:
    return plan(node, graph).scratch_bytes


def chain_macs(node: Node, graph: Graph) -> tuple[int, int]:
    """(MACs patch by patch, MACs of the untiled convs): the halo's recomputation is the difference."""
    return plan_macs(plan(node, graph), graph)


def plan_macs(p: PatchPlan, graph: Graph) -> tuple[int, int]:
    """Conv MACs (onnx2mcu/ops/conv.py's count: output elements x the weights per output) of the
    patches and of the whole tensors."""
    tiled = untiled = 0
    for k, inner in enumerate(p.nodes):
        per_pixel = p.shapes[k + 1][0] * math.prod(graph.tensors[inner.inputs[1]].shape[1:])
        _, h, w = p.shapes[k + 1]
        untiled += per_pixel * h * w
        tiled += per_pixel * sum(_area(layers[k].out_rect) for layers in p.patches)
    return tiled, untiled


def _macs(node: Node, graph: Graph) -> int:
    return chain_macs(node, graph)[0]


def _infer(node: Node, inputs: list[Tensor]):
    chain: Chain = node.attrs[CHAIN_ATTR]
    return [(tuple(chain.tensors[-1].shape), DType.INT8)]


def _check(node: Node, graph: Graph) -> str | None:
    chain = node.attrs.get(CHAIN_ATTR)
    if not isinstance(chain, Chain):
        return "PatchedChain without its chain"
    try:
        plan(node, graph)
    except ValueError as exc:
        return str(exc)
    return None


register(PATCHED, _reference, domain=DOMAIN, dtypes=(QUANT, frozenset({DType.INT8, DType.INT32})),
         prepare=prepare_plan, scratch_bytes=_scratch, macs=_macs, infer=_infer, check=_check,
         quantized="integer")
