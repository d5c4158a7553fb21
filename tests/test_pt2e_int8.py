"""QDQ graphs from PyTorch's PT2E quantization (torchao), exported to ONNX, run on int8 (issue 10).

A small CNN (conv-bn-relu, depthwise conv-bn-relu6, max pool, pointwise conv, a residual
block, global average pool, linear) and a small MLP, seeded, quantized with XNNPACK's quantizer
(static, int8 activations, int8 weights symmetric per channel; tests/helpers_pt2e.py) and
exported with torch.onnx (dynamo).  What the exporter writes and the compiler must handle
(frontend/qdq.py, graph_opt/quant_fuse.py): int8 weight initializers behind a per-channel
DequantizeLinear, float biases, DQ -> Conv -> Relu -> Q, a Relu6 as DQ -> Clip -> MaxPool -> Q,
Reshape between its own Q/DQ, a float graph output after the last DequantizeLinear; and,
unoptimized (cnn_raw), weights quantized in the graph, computed scales and duplicated DQs.

* compile: every compute node runs on an int8 kernel (no float island), the float biases
  are quantized to int32 and said so;
* --requant float vs onnxruntime on the exported file: within one output-scale step on every
  output element over 20 seeded inputs (observed: the MLP equal, the CNN 1 of 200 elements one
  step off, from its global average pool: onnxruntime means the dequantized floats, whose
  rounding decides the ties of sum / 64 that the integer mean rounds half to even; every other
  node equals onnxruntime's (QDQ fusions on) given the same inputs);
* the generated C (host) gives the simulator's bytes.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from helpers_pt2e import MODELS, pt2e_missing, quantize_and_export
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

MISSING = pt2e_missing()
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
SEEDED_INPUTS = 20
# every op of the two models that computes (Q/DQ at the float edges and Reshape aside)
COMPUTE_OPS = {"cnn": {"Conv": 4, "Clip": 1, "MaxPool": 1, "Add": 1, "ReduceMean": 1, "Gemm": 1},
               "mlp": {"Gemm": 3}}

pytestmark = [pytest.mark.slow, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pt2e")
    files = {name: quantize_and_export(name, folder / f"{name}.onnx") for name in MODELS}
    files["cnn_raw"] = quantize_and_export("cnn", folder / "cnn_raw.onnx", raw=True)
    return files


@pytest.fixture(scope="module")
def planned(exported):
    cache = {}

    def get(name: str, requant: str):
        if (name, requant) not in cache:
            cache[name, requant] = run(exported[name], Options(stop_after="schedule", scheduler="greedy",
                                                               requant=requant))
        return cache[name, requant]
    return get


def seeded_inputs(graph, seed: int, count: int = SEEDED_INPUTS):
    (x,) = graph.inputs
    rng = np.random.default_rng(seed)
    shape = graph.tensors[x].shape
    return x, [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_export_is_a_qdq_graph_with_per_channel_int8_weights(name, exported):
    """What the compiler is given: guards the patterns the rest of this file relies on."""
    proto = onnx.load(str(exported[name]))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") >= 4 and ops.count("DequantizeLinear") >= 4
    computing = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(computing) == COMPUTE_OPS[name].get("Conv", 0) + COMPUTE_OPS[name]["Gemm"]
    producers = {o: n for n in proto.graph.node for o in n.output}
    for node in computing:
        dq = producers[node.input[1]]
        assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].dtype == np.int8
        scales, zeros = inits[dq.input[1]], inits[dq.input[2]]
        assert scales.shape == (inits[dq.input[0]].shape[0],) and not np.any(zeros)  # per channel, symmetric
        assert inits[node.input[2]].dtype == np.float32  # PT2E leaves the bias float
    activations = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert all(inits[n.input[2]].dtype == np.int8 for n in activations)
    assert ops[-1] == "DequantizeLinear" and proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def integer_graph(path):
    graph = run(path, Options(stop_after="optimize")).graph
    weights = sorted((t.shape, t.dtype.value, t.data.tobytes(), t.quant.key()) for t in graph.tensors.values()
                     if t.is_const and t.quant is not None)
    return [n.op_type for n in graph.nodes], weights, graph


def test_the_unoptimized_export_compiles_to_the_same_integer_graph(exported):
    """convert_pt2e(fold_quantize=False) + torch.onnx without its optimizer: float weights behind
    QuantizeLinear -> Clip -> DequantizeLinear, scales made by Cast / CastLike, a Clip's bounds
    cast "like" its input, one DequantizeLinear per reader.  Folded, it is the optimized file's
    graph: the same nodes, the same integer weights and biases, bit for bit."""
    proto = onnx.load(str(exported["cnn_raw"]))
    ops = [n.op_type for n in proto.graph.node]
    assert {"CastLike", "Cast"} <= set(ops)
    quantized_inits = {n.input[0] for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    assert {"conv.weight", "fc.weight"} <= quantized_inits  # weights quantized in the graph
    dq_inputs = [n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq_inputs) > len(set(dq_inputs))  # a value dequantized twice (the residual branch)
    raw_ops, raw_weights, graph = integer_graph(exported["cnn_raw"])
    assert (raw_ops, raw_weights) == integer_graph(exported["cnn"])[:2]
    assert raw_ops.count("DequantizeLinear") == 1 and raw_ops.count("QuantizeLinear") == 1
    assert len(raw_weights) == 2 * 5  # int8 weights and int32 biases of 4 Conv and 1 Gemm


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
@pytest.mark.parametrize("requant", ["fixed", "float"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiles_to_int8_kernels_and_the_c_equals_the_simulator(name, requant, exported, tmp_path):
    from test_int8_models import run_c

    out = tmp_path / name
    x_name, (x,) = seeded_inputs(run(exported[name], Options(stop_after="load")).graph, 3, 1)
    result = run(exported[name], Options(output=out, simulate=True, check_onnxruntime=False, scheduler="greedy",
                                         requant=requant, inputs={x_name: x}))
    report = json.loads((out / "report.json").read_text())
    precision = report["precision"]
    assert precision["requant"] == requant
    assert precision["float_nodes"] == 0 and precision["float_islands"] == []
    compute = [e for e in precision["nodes"] if e["op"] in COMPUTE_OPS[name]]
    assert {op: sum(e["op"] == op for e in compute) for op in COMPUTE_OPS[name]} == COMPUTE_OPS[name]
    assert all(e["dtype"] == "int8" and e["kernel"] == f"{e['op']}/int8/portable" for e in compute), compute
    # the one approximation is reported: each float bias became int32
    biases = COMPUTE_OPS[name].get("Conv", 0) + COMPUTE_OPS[name]["Gemm"]
    assert report["quantized_fusion"]["float_bias"] == biases
    assert any(f"{biases} float bias(es) of int8 Conv/Gemm quantized to int32" in n for n in report["optimize_notes"])
    # the C on the host gives the simulator's bytes for the compiled-in input
    outputs, _ = run_c(out, "host")
    for y, value in result.simulation.result.outputs.items():
        assert outputs[y].reshape(value.shape).tobytes() == value.tobytes(), y


@pytest.mark.parametrize("name", ["cnn", "cnn_raw", "mlp"])
def test_requant_float_within_one_output_step_of_onnxruntime(name, exported, planned):
    """onnxruntime runs the exported file (its QDQ fusions on); the output is float after the
    final DequantizeLinear, so one step is that node's scale."""
    import onnxruntime as ort

    result = planned(name, "float")
    graph = result.graph
    (y_name,) = graph.outputs
    dq = next(n for n in graph.nodes if n.outputs == [y_name])
    assert dq.op_type == "DequantizeLinear"
    step = float(graph.tensors[dq.inputs[1]].data)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(exported[name]), options, providers=["CPUExecutionProvider"])
    x_name, inputs = seeded_inputs(graph, 11)
    worst, differing, total = 0, 0, 0
    for x in inputs:
        got = simulate(graph, result.schedule, {x_name: x}).outputs[y_name]
        (want,) = session.run([y_name], {x_name: x})
        # both are (q - zero point) * step in float32, |q - zero point| <= 255: back to the integers exactly
        steps = np.abs(np.rint(got / step).astype(np.int64) - np.rint(want / step).astype(np.int64))
        worst = max(worst, int(steps.max()))
        differing += int(np.sum(steps != 0))
        total += steps.size
    print(f"{name}: --requant float vs onnxruntime: max {worst} output step(s), {differing}/{total} elements differ")
    assert worst <= 1
