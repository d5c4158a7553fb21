"""Fold an explicit Pad into the Conv that reads it (float and int8; exact).

TFLite has no padded depthwise convolution with asymmetric or large padding, so tf2onnx and
TFLite-trained models (MCUNet, MobileNets) carry `Pad -> Conv(pads=0)`.  The padded tensor then
exists whole beside the unpadded one: MCUNet-VWW's peak (161,472 B) is such a Pad.  A Conv pads
with zeros (int8: with its input's zero point, which is real 0), so when the Pad is a constant
pad of real 0 on the spatial axes only and the Conv is its only reader, the Conv can take the
pads itself and the padded tensor never exists.

Exact: the same products and sums.  An int8 Conv is rewritten only when it still runs on the
integers afterwards (its op's `int8_check`).  Reported as the list of folded Pads.
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops import lookup
from onnx2mcu.rewrite import GraphIndex, drop_unused_tensors, is_standard


def fold_pads(graph: Graph, ctx=None) -> dict | None:
    index = GraphIndex(graph)
    folded: list[str] = []
    for pad in list(graph.nodes):
        if not (is_standard(pad) and pad.op_type == "Pad"):
            continue
        conv = index.sole_consumer(pad.outputs[0], "Conv")
        if conv is None or not is_standard(conv) or conv.inputs[0] != pad.outputs[0]:
            continue
        spatial = _spatial_pads(graph, pad)
        if spatial is None or conv.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            continue
        rank = len(spatial) // 2
        old = list(conv.attrs.get("pads") or [0] * (2 * rank))
        new_attrs = {**conv.attrs, "pads": [a + b for a, b in zip(old, spatial)]}
        new_attrs.pop("auto_pad", None)
        new = Node(conv.name, conv.op_type, [pad.inputs[0]] + list(conv.inputs[1:]), list(conv.outputs),
                   new_attrs, conv.domain)
        if not _still_runs(graph, conv, new, pad):
            continue
        folded.append(pad.name)
        index.changed()
    if folded:
        drop_unused_tensors(graph)
    return {"folded": folded} if folded else None


def _spatial_pads(graph: Graph, pad: Node) -> list[int] | None:
    """The Pad's [h_begin, w_begin, h_end, w_end] (ONNX Conv order) when it pads real 0 on the
    spatial axes of an N, C, spatial... tensor only; else None."""
    if pad.attr("mode", "constant") != "constant":
        return None
    x = graph.tensors[pad.inputs[0]]
    y = graph.tensors[pad.outputs[0]]
    rank = len(x.shape)
    if rank < 3 or (x.quant is None) != (y.quant is None) or (x.quant is not None and x.quant != y.quant):
        return None
    inputs = list(pad.inputs) + [""] * (4 - len(pad.inputs))
    if any(name and not graph.tensors[name].is_const for name in inputs[1:]):
        return None
    pads = (graph.tensors[inputs[1]].data if inputs[1] else np.asarray(pad.attr("pads", []))).astype(np.int64)
    axes = (list(graph.tensors[inputs[3]].data.astype(np.int64)) if inputs[3] else list(range(rank)))
    axes = [a + rank if a < 0 else a for a in axes]
    if len(pads) != 2 * len(axes):
        return None
    width = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        width[axis] = [int(pads[i]), int(pads[i + len(axes)])]
    if any(v < 0 for pair in width for v in pair) or width[0] != [0, 0] or width[1] != [0, 0]:
        return None
    if not _pads_real_zero(graph, pad, inputs[2]):
        return None
    return [w[0] for w in width[2:]] + [w[1] for w in width[2:]]


def _pads_real_zero(graph: Graph, pad: Node, value_name: str) -> bool:
    x = graph.tensors[pad.inputs[0]]
    if value_name:
        value = graph.tensors[value_name]
        raw = np.asarray(value.data).reshape(-1)
        if raw.size != 1:
            return False
        if value.quant is not None:
            return bool(value.quant.dequantize(raw)[0] == 0.0)
        if x.quant is not None:  # a raw integer pad value on a quantized tensor
            return int(raw[0]) == int(np.asarray(x.quant.zero_point).reshape(-1)[0])
        return float(raw[0]) == 0.0
    return float(pad.attr("value", 0.0)) == 0.0  # int8: ops/int8.py pads real 0 with the zero point


def _still_runs(graph: Graph, conv: Node, new: Node, pad: Node) -> bool:
    """Swap `conv` for `new` and drop `pad`; undo unless the new Conv runs as the old one did
    (an int8 Conv still on the integers; a float Conv still supported)."""
    op = lookup(conv.op_type, conv.domain)
    quantized = graph.tensors[conv.inputs[0]].quant is not None
    check = op.int8_check if quantized else op.check
    if quantized and (check is None or check(conv, graph) is not None):
        return False  # a Conv that float islands will expand: leave its Pad to them
    nodes = list(graph.nodes)
    graph.nodes[:] = [new if n is conv else n for n in nodes if n is not pad]
    if check is not None and check(new, graph) is not None:
        graph.nodes[:] = nodes
        return False
    del graph.tensors[pad.outputs[0]]
    return True
