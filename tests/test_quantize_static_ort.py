"""onnxruntime's own quantizer (quantize_static, QDQ) on the float MLPerf Tiny models and BERT-tiny,
with --requant float (issue 10): the simulator's outputs are within 1 LSB of onnxruntime's on every
element over 20 seeded inputs, the quantized nodes run on the int8 kernels (the only float islands
are ops without an integer path, asserted by name), and the C on the host gives the simulator's bytes.

Configurations (tests/helpers_quantize.py): QInt8 activations with symmetric per-channel weights,
and QUInt8 activations with asymmetric per-tensor uint8 weights (held as int8 with zero points
- 128, frontend/uint8.py).  Quantized models are cached for the module.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers_quantize import CONFIGS, quantize, random_feed
from onnx2mcu.ops.int8 import node_precision
from onnx2mcu.ops.rows import inner_nodes
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

pytestmark = [pytest.mark.shared, pytest.mark.slow]

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny"
FLOAT_MODELS = ("ad01_fp32", "kws_ref_model_float32", "pretrainedResnet", "vww_96_float")
MLPERF_CONFIGS = ("s8-perchannel-sym", "u8-pertensor-asym")
SEEDED_INPUTS = 20
# quantized nodes that may run as float islands, and why: --requant float has no int8 Softmax
# (ours is TFLite's fixed-point one); LayerNormalization has no int8 kernel
ISLANDS = {"Softmax", "LayerNormalization"}
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize_static")
    cache: dict[tuple[str, str], Path] = {}

    def get(model: str, config: str, qoperator: bool = False) -> Path:
        if (model, config, qoperator) not in cache:
            if model == "bert_tiny":
                from helpers_export import export_bert_fixed

                pytest.importorskip("transformers")
                source = folder / "bert_tiny.onnx"
                if not source.exists():
                    export_bert_fixed(source, vocab_size=1000)
            else:
                source = SHARED / f"{model}.onnx"
                if not source.exists():
                    pytest.skip(f"{source} is absent")
            form = "qop" if qoperator else "qdq"
            cache[model, config, qoperator] = quantize(source, folder / f"{model}.{config}.{form}.onnx",
                                                       CONFIGS[config], vocab=1000, qoperator=qoperator)
        return cache[model, config, qoperator]
    return get


def _output_lsb(graph, name: str) -> float:
    """The output's quantization step: the scale of the DequantizeLinear that makes it, or of the
    one feeding the float op that does (BERT's pooler Tanh, 1-Lipschitz)."""
    producer = next(n for n in graph.nodes if name in n.outputs)
    for node in [producer] + [n for n in graph.nodes if set(n.outputs) & set(producer.inputs)]:
        if node.op_type == "DequantizeLinear":
            return float(graph.tensors[node.inputs[1]].data)
    raise AssertionError(f"output {name} is not made from a quantized value")


def _precision(path: Path) -> tuple[dict, list[str]]:
    """The loaded IR and its quantized nodes that run as float islands (but for the op at the float
    input that the input's QuantizeLinear was folded into: onnxruntime runs it in float too)."""
    from graph_opt.float_islands import is_quantized_node, runs_on_integers

    loaded = run(path, Options(stop_after="optimize", requant="float", tile="none")).graph

    def at_float_input(node) -> bool:  # the layout Transpose/Reshape before the input's QuantizeLinear
        data = [i for i in node.inputs if i and not loaded.tensors[i].is_const]
        return bool(data) and all(i in loaded.inputs and loaded.tensors[i].quant is None for i in data)

    islands = [f"{n.op_type} '{n.name}'" for n in loaded.nodes
               if is_quantized_node(loaded, n) and not runs_on_integers(loaded, n) and not at_float_input(n)]
    return loaded, islands


def compare_with_onnxruntime(path: Path, inputs: int = SEEDED_INPUTS, float_outputs: tuple[str, ...] = ()) -> dict:
    """Worst |ours - onnxruntime| per output over `inputs` seeded inputs, in the output's LSB; for
    `float_outputs` (made by float ops from float values: both sides compute them in float32) as a
    relative difference instead."""
    import onnxruntime as ort

    result = run(path, Options(stop_after="schedule", scheduler="greedy", requant="float"))
    graph = result.graph
    # the output's step, from the model as loaded (tiling may run its DequantizeLinear inside a region)
    loaded = run(path, Options(stop_after="optimize", requant="float", tile="none")).graph
    counts = {"int8": 0, "float": 0}
    for node, owner, _ in inner_nodes(graph):
        kind = node_precision(node, owner)
        if kind:
            counts[kind] += 1
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(11)
    worst = dict.fromkeys(graph.outputs, 0.0)
    for _ in range(inputs):
        feed = random_feed(session.get_inputs(), rng)
        got = simulate(graph, result.schedule, feed).outputs
        want = dict(zip(names, session.run(None, feed)))
        for y in graph.outputs:
            diff = np.abs(got[y].astype(np.float64) - want[y].astype(np.float64)).max()
            unit = (max(float(np.abs(want[y]).max()), 1e-30) if y in float_outputs else _output_lsb(loaded, y))
            worst[y] = max(worst[y], float(diff) / unit)
    return {"result": result, "counts": counts, "lsb": worst}


@pytest.mark.parametrize("config", MLPERF_CONFIGS)
@pytest.mark.parametrize("model", FLOAT_MODELS)
def test_mlperf_tiny_within_one_lsb_of_onnxruntime_on_int8_kernels(model, config, quantized):
    path = quantized(model, config)
    loaded, islands = _precision(path)
    assert {entry.split(" ")[0] for entry in islands} <= ISLANDS, islands
    report = compare_with_onnxruntime(path)
    graph, counts = report["result"].graph, report["counts"]
    # every Conv / MatMul / Gemm / Add / pool of the model runs on the integers
    for node in graph.nodes:
        if node.op_type in ("Conv", "MatMul", "Gemm", "Add", "AveragePool"):
            assert node_precision(node, graph) == "int8", (node.op_type, node.name)
    print(f"{model} {config}: {counts['int8']} int8 / {counts['float']} float nodes, islands {islands}, "
          f"max {max(report['lsb'].values()):g} LSB vs onnxruntime over {SEEDED_INPUTS} inputs")
    assert max(report["lsb"].values()) <= 1 + 1e-4, report["lsb"]  # float32 rounding of a dequantized step


def test_bert_tiny_qint8_within_one_lsb_of_onnxruntime(quantized):
    """BERT-tiny (2 layers, hidden 128, seq 128, random seeded weights), QInt8 per-channel: the
    MatMuls, bias Adds, attention scaling and GELU's Mul/Add on int8; LayerNormalization and
    Softmax as float islands; mask arithmetic, GELU's Div/Erf (left float by the quantizer) in float."""
    path = quantized("bert_tiny", "s8-perchannel-sym")
    loaded, islands = _precision(path)
    assert {entry.split(" ")[0] for entry in islands} <= ISLANDS | {"Where", "IsNaN", "Div", "Erf", "Expand",
                                                                  "Gather", "Gemm", "Tanh", "Add"}, islands
    report = compare_with_onnxruntime(path)
    graph, counts = report["result"].graph, report["counts"]
    # the MatMuls, also those tiling runs inside TiledRows regions (counted one by one)
    matmuls = [(n, owner) for n, owner, _ in inner_nodes(graph) if n.op_type == "MatMul"]
    assert len(matmuls) == 16 and all(node_precision(n, owner) == "int8" for n, owner in matmuls)
    print(f"bert_tiny s8-perchannel-sym: {counts['int8']} int8 / {counts['float']} float nodes, "
          f"{len(islands)} quantized nodes in float ({sorted({i.split(' ')[0] for i in islands})}), "
          f"max LSB vs onnxruntime {report['lsb']}")
    assert max(report["lsb"].values()) <= 1 + 1e-4, report["lsb"]  # float32 rounding of a dequantized step


@pytest.mark.parametrize("config", ["s8-perchannel-sym", "u8s8-perchannel"])
def test_bert_tiny_qoperator_within_one_lsb_of_onnxruntime(quantized, config):
    """BERT-tiny quantized by quantize_static in the QOperator format (QLinearMatMul, com.microsoft
    QLinearAdd / QLinearMul / QLinearSoftmax; int8 and uint8 activations): frontend/qoperator.py
    writes it as QDQ, the MatMuls and their bias Adds run on int8, and the outputs are within 1 LSB
    of onnxruntime's over 20 inputs.  (The uint8 form once failed to load: a quantized constant
    was both an initializer and a node's output.)"""
    from collections import Counter

    path = quantized("bert_tiny", config, qoperator=True)
    ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops["QLinearMatMul"] == 16 and ops["QLinearAdd"] > 0 and ops["QLinearSoftmax"] == 2, ops
    loaded, islands = _precision(path)
    assert {entry.split(" ")[0] for entry in islands} <= ISLANDS | {"Where", "IsNaN", "Div", "Erf", "Expand",
                                                                  "Gather", "Gemm", "Tanh", "Add"}, islands
    # the quantizer leaves the pooler (Gemm, Tanh) in float on a float input (the last LayerNorm's)
    report = compare_with_onnxruntime(path, float_outputs=("pooler_output",))
    graph, counts = report["result"].graph, report["counts"]
    # the MatMuls, also those tiling runs inside TiledRows regions (counted one by one)
    matmuls = [(n, owner) for n, owner, _ in inner_nodes(graph) if n.op_type == "MatMul"]
    assert len(matmuls) == 16 and all(node_precision(n, owner) == "int8" for n, owner in matmuls)
    assert report["lsb"]["pooler_output"] <= 1e-5, report["lsb"]  # relative: float32 in both
    report["lsb"].pop("pooler_output")
    print(f"bert_tiny QOperator {config}: {counts['int8']} int8 / {counts['float']} float nodes, "
          f"max LSB vs onnxruntime {report['lsb']}")
    assert max(report["lsb"].values()) <= 1 + 1e-4, report["lsb"]


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
def test_uint8_resnet_c_on_the_host_equals_the_simulator(quantized, tmp_path):
    """ResNet-8, QUInt8 per-tensor asymmetric: the uint8 values held as int8, the convs' weight zero
    points, the raw-value QLinearAdd arithmetic and the global average pool, in C."""
    from onnx2mcu import runner
    from onnx2mcu.simulator.run_c import build, run_host

    path = quantized("pretrainedResnet", "u8-pertensor-asym")
    out = tmp_path / "resnet_u8"
    result = run(path, Options(output=out, simulate=True, check_onnxruntime=False, board="host",
                               scheduler="greedy", requant="float"))
    expected = result.simulation.result.outputs
    report = runner.read_report(out)
    values = runner.load_project_inputs(out, report, None)
    build_dir = runner._prepare(out, report, values, host=True)
    build(build_dir, "host")
    ran = run_host(build_dir)
    assert ran.exit_code == 0
    wire = {o["wire_name"]: o["name"] for o in report["c_io"]["outputs"]}
    outputs = {wire[k]: v for k, v in ran.outputs().items()}
    for y, value in expected.items():
        assert outputs[y].reshape(value.shape).tobytes() == value.tobytes(), y
    code = (out / "model.c").read_text()
    assert ".filter_offset = " in code and ".value_offset_a = 128" in code and "O2M_S8_MEAN_FLOAT" in code


def test_uint8_lowering_keeps_uint8_graph_io(tmp_path):
    """A uint8 value that is a graph input stays uint8 (its numbers are the caller's); internal
    uint8 values are held as int8 with the same real values."""
    from onnx import TensorProto, helper, numpy_helper

    from onnx2mcu.frontend import convert
    from onnx2mcu.ir import DType

    inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(130), "z")]
    nodes = [helper.make_node("DequantizeLinear", ["q_in", "s", "z"], ["x"]),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("q_in", TensorProto.UINT8, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    ir = convert.load(model)
    assert ir.tensors["q_in"].dtype is DType.UINT8
    q = ir.tensors["q"]
    assert q.dtype is DType.INT8 and int(q.quant.zero_point) == 2 and q.quant.value_offset == 128
    assert any("uint8 quantized tensors run as int8" in note for note in ir.notes)
    x = np.array([[0, 129, 200, 255]], np.uint8)
    got = simulate_model(model, {"q_in": x})
    np.testing.assert_array_equal(got, np.maximum((x.astype(np.float32) - 130) * np.float32(0.1), 0))


def simulate_model(model: onnx.ModelProto, inputs: dict) -> np.ndarray:
    from onnx2mcu import api

    result = api.simulate(model, inputs=inputs, scheduler="greedy", requant="float")
    return next(iter(result.result.outputs.values()))
