"""--int8-io: a quantized model with float inputs/outputs takes and gives its int8 tensors.

A model quantized inside (QuantizeLinear right after a float graph input, DequantizeLinear right
before a float graph output, e.g. MCUNet-VWW) by default keeps a float C API: the edge Q/DQ run
inside `model_run`, and the float input is in the arena (80 x 80 x 3 x 4 B = 76,800 B for
MCUNet-VWW, more than the rest of its schedule needs with patch-based inference).  TinyEngine and
TFLite's int8-I/O conversion (`inference_input_type=int8`) instead feed the int8 tensor, which
is what a camera or microphone pipeline that quantizes on capture has.  This pass (opt-in: it
changes the C API, not the numbers) removes those edge nodes: the graph input becomes the
QuantizeLinear's int8 output, the graph output the DequantizeLinear's int8 input (the
DequantizeLinear stays when other nodes read its float output), each with its scale and zero
point (model.h gives them as macros, with quantize/dequantize helpers).  The integers the
rest of the graph computes are the same, so the outputs equal the float-I/O model's quantized
outputs bit for bit; the report names what moved.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from onnx2mcu.ir import DType, Graph

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext


def _per_tensor(graph: Graph, name: str) -> bool:
    tensor = graph.tensors[name]
    return tensor.dtype is DType.INT8 and tensor.quant is not None and tensor.quant.axis is None


def _params(graph: Graph, name: str) -> dict:
    """The scale and zero point of the integers the C API passes (for uint8 values held as
    int8, frontend/uint8.py, the held ones: value_offset is already in the zero point)."""
    quant = graph.tensors[name].quant
    return {"scale": float(quant.scale), "zero_point": int(quant.zero_point)}


def move_edge_quantization(graph: Graph, ctx: PassContext) -> dict | None:
    if not ctx.options.int8_io:
        ctx.report.pending_reason = "not asked (--int8-io)"
        return None
    consumers, producers = graph.consumers(), graph.producers()
    moved_in, moved_out = [], []
    for index, name in enumerate(list(graph.inputs)):
        readers = consumers.get(name, [])
        if graph.tensors[name].dtype is not DType.FLOAT32 or name in graph.outputs or len(readers) != 1:
            continue
        q = readers[0]
        if q.op_type != "QuantizeLinear" or q.domain not in ("", "ai.onnx") or q.inputs[0] != name:
            continue
        y = q.outputs[0]
        if y in graph.outputs or not _per_tensor(graph, y):
            continue
        graph.nodes.remove(q)
        graph.inputs[index] = y
        moved_in.append({"was": name, "now": y, **_params(graph, y)})
    consumers = graph.consumers()
    for index, name in enumerate(list(graph.outputs)):
        dq = producers.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.domain not in ("", "ai.onnx"):
            continue
        x = dq.inputs[0]
        if x in graph.inputs or x in graph.outputs or not _per_tensor(graph, x):
            continue
        if not consumers.get(name):
            graph.nodes.remove(dq)
        # else the DequantizeLinear stays for the nodes that read the float value (BERT's pooler)
        graph.outputs[index] = x
        moved_out.append({"was": name, "now": x, **_params(graph, x)})
    if not moved_in and not moved_out:
        ctx.report.pending_reason = "no float graph input read only by a QuantizeLinear, no output made by a " \
                                    "DequantizeLinear"
        return None
    # no drop_unused_tensors here: the float-island expansion (later) may restore folded Q/DQ
    # nodes whose scale constants nothing reads now; unread constants take no flash
    return {"inputs": moved_in, "outputs": moved_out}
