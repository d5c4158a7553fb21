"""Quantization in the IR: QuantParams, the frontend's Q/DQ folding (frontend/qdq.py) and
the float islands that keep QDQ models running as before (graph_opt/float_islands.py).

References: onnxruntime's QuantizeLinear/DequantizeLinear for the QuantParams arithmetic,
the ONNX initializers of the real QDQ models (tf2onnx's MLPerf Tiny models, MCUNet) and
of models made by onnxruntime.quantization.quantize_static, and onnxruntime for the
outputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx2mcu.frontend.convert as convert
from onnx2mcu import api
from onnx2mcu.graph_opt import optimize
from onnx2mcu.graph_opt.float_islands import expand_float_islands, is_quantized_node
from onnx2mcu.ir import DType, QuantParams
from onnx2mcu.ops import lookup
from onnx2mcu.ops.registry import QUANT_FLOAT, QUANT_INTEGER, QUANT_PASSTHROUGH, all_ops

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MAX_REL_ERR = 1e-4  # as tests/test_models.py
PER_CHANNEL = {"mlperf_tiny/kws_ref_model.onnx", "mlperf_tiny/vww_96_int8.onnx",  # ad01: per tensor
               "mlperf_tiny/pretrainedResnet_quant.onnx", "mcunet/mcunet_vww_qdq.onnx"}
QDQ_MODELS = {  # model -> whether its graph inputs/outputs are float around the int8 core
    "mlperf_tiny/kws_ref_model.onnx": False,
    "mlperf_tiny/vww_96_int8.onnx": False,
    "mlperf_tiny/pretrainedResnet_quant.onnx": False,
    "mlperf_tiny/ad01_int8.onnx": False,
    "mcunet/mcunet_vww_qdq.onnx": True,
}
QUANT_INT = (DType.INT8, DType.UINT8)


def ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def qdq_node_model(op: str, x: np.ndarray, scale, zero, axis: int | None) -> onnx.ModelProto:
    """One QuantizeLinear or DequantizeLinear node with constant parameters."""
    attrs = {} if axis is None else {"axis": axis}
    out_type = helper.np_dtype_to_tensor_dtype(zero.dtype if op == "QuantizeLinear" else np.dtype(np.float32))
    node = helper.make_node(op, ["x", "s", "z"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)],
        [helper.make_tensor_value_info("y", out_type, None)],
        [numpy_helper.from_array(np.asarray(scale, np.float32), "s"), numpy_helper.from_array(zero, "z")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# ----- QuantParams --------------------------------------------------------------------
def test_quantize_rounds_half_to_even_and_saturates():
    params = QuantParams(np.float32(1.0), np.int8(0))
    assert params.quantize([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]).tolist() == [0, 2, 2, 0, -2, -2]
    assert params.quantize([1e9, -1e9, np.inf, -np.inf]).tolist() == [127, -128, 127, -128]
    unsigned = QuantParams(np.float32(0.5), np.uint8(10))
    assert unsigned.quantize([-100.0, 0.0, 1.0, 1000.0]).tolist() == [0, 10, 12, 255]
    assert unsigned.quantize([0.0]).dtype == np.uint8
    assert unsigned.dtype is DType.UINT8 and not unsigned.per_axis


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("axis", [None, 1])
def test_quantize_and_dequantize_match_onnxruntime(dtype, axis):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (2, 4, 3)).astype(np.float32)
    x[0, 0, :] = [0.25, 0.75, -0.25]  # exact halves of the grid below
    info = np.iinfo(dtype)
    if axis is None:
        scale, zero = np.float32(0.5), np.array(rng.integers(info.min, info.max // 2), dtype)
    else:
        scale = rng.uniform(0.01, 0.5, 4).astype(np.float32)
        scale[0] = 0.5
        zero = rng.integers(info.min, info.max // 2, 4).astype(dtype)
    params = QuantParams(scale, zero, axis)
    (expected_q,) = ort_run(qdq_node_model("QuantizeLinear", x, scale, zero, axis), {"x": x})
    q = params.quantize(x)
    assert q.dtype == dtype and np.array_equal(q, expected_q)
    (expected_x,) = ort_run(qdq_node_model("DequantizeLinear", q, scale, zero, axis), {"x": q})
    back = params.dequantize(q)
    assert back.dtype == np.float32 and np.array_equal(back.view(np.uint32), expected_x.view(np.uint32))


def test_int32_bias_dequantizes_like_onnxruntime():
    rng = np.random.default_rng(4)
    bias = rng.integers(-2**20, 2**20, 16).astype(np.int32)
    scale = rng.uniform(1e-5, 1e-3, 16).astype(np.float32)
    params = QuantParams(scale, np.zeros(16, np.int32), 0)
    (expected,) = ort_run(qdq_node_model("DequantizeLinear", bias, scale, np.zeros(16, np.int32), 0),
                          {"x": bias})
    assert np.array_equal(params.dequantize(bias), expected)
    assert params.dtype is DType.INT32 and params.per_axis


@pytest.mark.parametrize("kwargs,message", [
    ({"scale": np.float32(-1), "zero_point": np.int8(0)}, "positive"),
    ({"scale": np.float32(0), "zero_point": np.int8(0)}, "positive"),
    ({"scale": np.float32(np.nan), "zero_point": np.int8(0)}, "positive"),
    ({"scale": np.ones(3, np.float32), "zero_point": np.zeros(3, np.int8)}, "without an axis"),
    ({"scale": np.ones(3, np.float32), "zero_point": np.zeros(2, np.int8), "axis": 0}, "zero points"),
    ({"scale": np.float32(1), "zero_point": np.float32(0)}, "zero point of dtype"),
    ({"scale": np.ones(3, np.float32), "zero_point": np.zeros(3, np.int8), "axis": -1}, "normalized"),
    ({"scale": np.ones((2, 2), np.float32), "zero_point": np.zeros((2, 2), np.int8), "axis": 0}, "1-D"),
])
def test_quant_params_refuse_what_onnx_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantParams(**kwargs)


def test_quant_params_compare_values_not_origin():
    a = QuantParams(np.float32(0.1), np.int8(-3))
    b = QuantParams(np.array([0.1], np.float32), np.array([-3], np.int8))  # same values, 1-element arrays
    b.origin = "a record"
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != QuantParams(np.float32(0.1), np.uint8(3))  # another integer type
    assert a != QuantParams(np.float32(0.1000001), np.int8(-3))
    per_axis = QuantParams(np.full(2, 0.1, np.float32), np.int8(-3), 0)  # a zero point for every index
    assert per_axis.zero_point.tolist() == [-3, -3] and per_axis != a
    assert per_axis != QuantParams(np.full(2, 0.1, np.float32), np.int8(-3), 1)
    assert a.without_origin() == a and b.without_origin().origin is None


def test_which_ops_run_on_integers():
    """Compute ops with an int8 reference and kernel are QUANT_INTEGER (onnx2mcu/ops/int8.py);
    element-moving ops pass the integers through; the rest run as float islands."""
    modes = {op.op_type: op.quantized for op in all_ops() if not op.domain}
    integer = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "AveragePool", "MaxPool", "GlobalAveragePool",
               "ReduceMean", "Softmax", "Pad", "Concat", "Relu", "Clip", "Sigmoid", "Tanh", "HardSwish"}
    assert {op for op in integer if modes[op] != QUANT_INTEGER} == set()
    assert modes["Reshape"] == modes["Transpose"] == modes["Flatten"] == QUANT_PASSTHROUGH
    assert modes["LayerNormalization"] == modes["ConvTranspose"] == QUANT_FLOAT


# ----- the real QDQ models ------------------------------------------------------------
def shared_model(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared/ folder next to the repository holds the models)")
    return path


def onnx_params(inits: dict, node: onnx.NodeProto, rank: int) -> QuantParams:
    scale = numpy_helper.to_array(inits[node.input[1]])
    zero = numpy_helper.to_array(inits[node.input[2]])
    axis = None
    if scale.ndim == 1:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axis = attrs.get("axis", 1) % rank
    return QuantParams(scale, zero, axis)


def held_as_int8(params: QuantParams) -> QuantParams:
    """uint8 parameters as the frontend holds them (frontend/uint8.py): int8, zero point - 128."""
    if params.dtype is not DType.UINT8:
        return params
    zero = (params.zero_point.astype(np.int16) - 128).astype(np.int8)
    return QuantParams(params.scale, zero, params.axis, value_offset=128)


def check_quant_ir(path, float_io: bool) -> dict:
    """The frontend IR of a QDQ model against its ONNX file; returns counts."""
    proto = onnx.load(str(path))
    inits = {i.name: i for i in proto.graph.initializer}
    graph = convert.load(path)
    ops = [n.op_type for n in graph.nodes]
    # Q/DQ nodes remain only where precision changes: float graph input -> int8, int8 -> float output
    qs = [n for n in graph.nodes if n.op_type == "QuantizeLinear"]
    dqs = [n for n in graph.nodes if n.op_type == "DequantizeLinear"]
    assert all(q.inputs[0] in graph.inputs and graph.tensors[q.inputs[0]].dtype is DType.FLOAT32 for q in qs)
    assert all(dq.outputs[0] in graph.outputs for dq in dqs)
    assert (len(qs), len(dqs)) == ((len(graph.inputs), len(graph.outputs)) if float_io else (0, 0)), ops
    # every int8 activation carries its parameters, as the model's Q/DQ nodes give them
    activations = [t for t in graph.tensors.values() if not t.is_const and t.dtype in QUANT_INT]
    assert activations and all(t.quant is not None for t in activations)
    checked_activations = checked_weights = per_axis = 0
    for node in proto.graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] in graph.tensors:
            tensor = graph.tensors[node.output[0]]
            want = held_as_int8(onnx_params(inits, node, len(tensor.shape)))
            assert tensor.quant == want and tensor.quant.value_offset == want.value_offset, node.output[0]
            checked_activations += 1
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            # a weight or bias: the integer initializer with its parameters, under the name its readers use
            tensor = graph.tensors[node.output[0]]
            values = numpy_helper.to_array(inits[node.input[0]])
            want = held_as_int8(onnx_params(inits, node, values.ndim))
            if values.dtype == np.uint8:
                values = (values.astype(np.int16) - 128).astype(np.int8)
            assert tensor.is_const and tensor.dtype is DType.from_numpy(values.dtype)
            assert np.array_equal(tensor.data, values)
            assert tensor.quant == want and tensor.quant.value_offset == want.value_offset, node.output[0]
            checked_weights += 1
            per_axis += tensor.quant.per_axis
    weights = [t for t in graph.tensors.values() if t.is_const and t.quant is not None]
    assert checked_weights == len(weights) > 0 and checked_activations > 0
    quantized = [n for n in graph.nodes if is_quantized_node(graph, n)]
    return {"graph": graph, "quantized": len(quantized), "per_axis": per_axis}


@pytest.mark.parametrize("relative", list(QDQ_MODELS))
def test_qdq_model_ir_carries_quantization(relative):
    info = check_quant_ir(shared_model(relative), QDQ_MODELS[relative])
    # conv weights and biases per output channel (tf2onnx), the dense layers of ad01 per tensor
    assert (info["per_axis"] > 0) == (relative in PER_CHANNEL)


def only_passthrough_on_integers(monkeypatch) -> None:
    """Every quantized compute node becomes a float island (as before the int8 kernels)."""
    import onnx2mcu.graph_opt.float_islands as islands
    import onnx2mcu.graph_opt.pipeline as passes

    plain = islands.runs_on_integers
    monkeypatch.setattr(islands, "runs_on_integers", lambda graph, node: (
        lookup(node.op_type, node.domain).quantized == QUANT_PASSTHROUGH and plain(graph, node)))
    monkeypatch.setattr(passes, "PASSES", [(k, fn) for k, fn in passes.PASSES if k != "quantized_fusion"])


@pytest.mark.parametrize("relative", list(QDQ_MODELS))
def test_float_islands_give_back_the_float_ir(relative, monkeypatch):
    """With no integer kernel, after graph_opt the IR (nodes, names, order, tensors, constants) is
    the one the frontend gave before quantization was in the IR."""
    path = shared_model(relative)
    info = check_quant_ir(path, QDQ_MODELS[relative])
    only_passthrough_on_integers(monkeypatch)
    graph, report = optimize(convert.load(path))
    counts = report["quantization"]
    assert counts["quantized_nodes"] == info["quantized"] == counts["integer"] + counts["float"]
    assert counts["float"] > 0 and sum(counts["float_ops"].values()) == counts["float"]
    # only element-moving ops already run on the int8 values
    assert all(lookup(op).quantized == QUANT_PASSTHROUGH for op in counts["integer_ops"])
    monkeypatch.setattr(convert, "fold_qdq", lambda graph, lifted, shifted=(): None)
    before, _ = optimize(convert.load(path))
    assert snapshot(graph) == snapshot(before)


def snapshot(graph) -> tuple:
    nodes = [(n.name, n.op_type, n.inputs, n.outputs, repr(sorted(n.attrs.items())), n.domain)
             for n in graph.nodes]
    tensors = [(k, t.shape, t.dtype, None if t.data is None else (t.data.dtype.str, t.data.tobytes()))
               for k, t in graph.tensors.items()]
    return nodes, tensors, graph.inputs, graph.outputs, graph.notes


@pytest.mark.parametrize("relative", list(QDQ_MODELS))
def test_qdq_model_in_float_islands_matches_onnxruntime(relative, monkeypatch):
    only_passthrough_on_integers(monkeypatch)
    report = api.simulate(shared_model(relative), scheduler="greedy")
    assert report.agreement is not None and report.agreement.max_rel_err <= MAX_REL_ERR


# ----- onnxruntime.quantization.quantize_static -----------------------------------------
def small_float_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def const(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["c2", "p1"], ["a1"], name="add1"),
        helper.make_node("GlobalAveragePool", ["a1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]
    inits = [const("w1", (8, 3, 3, 3)), const("b1", (8,)), const("w2", (8, 1, 3, 3)), const("b2", (8,)),
             const("w3", (4, 8)), const("b3", (4,))]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module", params=["QUInt8", "QInt8"])
def quantized_static(request, tmp_path_factory):
    quantization = pytest.importorskip("onnxruntime.quantization")

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.data = iter([{"x": rng.normal(0, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    folder = tmp_path_factory.mktemp(f"qs_{request.param}")
    onnx.save(small_float_model(), folder / "float.onnx")
    out = folder / "qdq.onnx"
    quantization.quantize_static(str(folder / "float.onnx"), str(out), Reader(),
                                 quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                                 activation_type=getattr(quantization.QuantType, request.param),
                                 weight_type=quantization.QuantType.QInt8)
    return out, (DType.UINT8 if request.param == "QUInt8" else DType.INT8)


def test_quantize_static_ir(quantized_static):
    path, activation_dtype = quantized_static
    info = check_quant_ir(path, float_io=True)
    graph = info["graph"]
    activations = {(t.dtype, t.quant.value_offset) for t in graph.tensors.values()
                   if not t.is_const and t.quant is not None}
    # uint8 activations are held as int8 with zero points - 128 (frontend/uint8.py): the same reals
    assert activations == {(DType.INT8, 128 if activation_dtype is DType.UINT8 else 0)}
    conv = graph.node("conv1")
    weight, bias = graph.tensors[conv.inputs[1]], graph.tensors[conv.inputs[2]]
    assert weight.dtype is DType.INT8 and weight.quant.axis == 0 and weight.quant.scale.shape == (8,)
    assert bias.dtype is DType.INT32 and bias.quant.axis == 0
    # DQ -> Conv(+Relu fused by the quantizer) -> Q is one quantized node: integer in, integer out
    assert all(graph.tensors[n].quant is not None for n in (conv.inputs[0], conv.outputs[0]))


def test_quantize_static_round_trip(quantized_static, tmp_path):
    path, activation_dtype = quantized_static
    graph, report = optimize(convert.load(path))
    counts = report["quantization"]
    compute = {"Add": 1, "Conv": 2, "Gemm": 1, "GlobalAveragePool": 1, "MaxPool": 1}
    # uint8 activations too (held as int8, frontend/uint8.py): every node on the integers
    assert counts["float_ops"] == {} and counts["integer_ops"] == dict(compute, Flatten=1)
    # the integer model: within one output step of onnxruntime (float requant, its QLinear kernels)
    out_scale = float(graph.tensors[graph.node("fc").outputs[0]].quant.scale)
    simulated = api.simulate(path, scheduler="greedy", requant="float")
    assert simulated.agreement.max_abs_err <= out_scale * 1.001


@pytest.mark.skipif(not __import__("shutil").which("gcc"), reason="gcc not installed")
def test_quantize_static_generated_c_matches_onnxruntime(quantized_static, tmp_path):
    """The integer Flatten and the float islands compile and agree on the host; the
    quantized/float counts stay out of report.json (tests/test_golden_c.py pins its bytes)."""
    from onnx2mcu.build import compile_model
    from onnx2mcu.runner import run_project_dir

    path, _ = quantized_static
    result = compile_model(str(path), tmp_path / "out", board="host", scheduler="greedy")
    assert "quantization" not in json.loads((tmp_path / "out" / "report.json").read_text())
    assert run_project_dir(str(result.out_dir), "host")["max_rel_err"] <= MAX_REL_ERR


# ----- the rules at the edges ------------------------------------------------------------
def const(name, value, dtype):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def edge_model() -> onnx.ModelProto:
    """float x -> Q(s1) -> Reshape (int8) -> DQ(s2, another scale) -> Relu -> Q(s3) -> DQ -> y;
    x is also read as float by an Add (so the Q of x stays, and is also a graph input)."""
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["xr"], name="reshape_float"),
        helper.make_node("QuantizeLinear", ["x", "s1", "z"], ["xq"], name="q_in"),
        helper.make_node("Reshape", ["xq", "shape"], ["rq"], name="reshape"),
        helper.make_node("DequantizeLinear", ["rq", "s2", "z"], ["rf"], name="dq_other_scale"),
        helper.make_node("Add", ["rf", "xr"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "s3", "z"], ["yq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["yq", "s3", "z"], ["y"], name="dq_out"),
    ]
    inits = [const("s1", 0.05, np.float32), const("s2", 0.1, np.float32), const("s3", 0.02, np.float32),
             const("z", 3, np.int8), const("shape", [1, 12], np.int64)]
    graph = helper.make_graph(nodes, "edges", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_dequantize_with_other_parameters_stays_explicit():
    model = edge_model()
    graph = convert.load(model)
    kept = {n.name for n in graph.nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    # q_in: precision change at the graph input; dq_other_scale reads rq's integers with another
    # scale than the Reshape carries; dq_out: the float graph output.  q_out folds into Relu.
    assert kept == {"q_in", "dq_other_scale", "dq_out"}
    assert graph.tensors["rq"].quant == graph.tensors["xq"].quant == QuantParams(np.float32(0.05), np.int8(3))
    assert graph.node("relu").outputs == ["yq"] and graph.tensors["yq"].quant.scale == np.float32(0.02)
    optimized, report = optimize(convert.load(model))
    assert report["quantization"]["integer_ops"] == {"Reshape": 1}
    assert report["quantization"]["float_ops"] == {"Relu": 1}
    rng = np.random.default_rng(5)
    x = rng.normal(0, 2, (1, 3, 4)).astype(np.float32)
    simulated = api.simulate(model, inputs={"x": x}, scheduler="greedy")
    assert simulated.agreement.max_abs_err == 0.0


def test_float_islands_make_new_nodes_for_tensors_without_a_record():
    """A quantized tensor made by a rewrite (no folded node to restore) gets its own Q/DQ."""
    model = edge_model()
    graph = convert.load(model)
    graph.tensors["yq"].quant = graph.tensors["yq"].quant.without_origin()  # forget the folded q_out
    expand_float_islands(graph)
    relu = graph.node("relu")
    (new_q,) = [n for n in graph.nodes if n.op_type == "QuantizeLinear" and n.outputs == ["yq"]]
    assert new_q.name != "q_out" and new_q.inputs[0] == relu.outputs[0] != "yq"
    assert graph.tensors[new_q.inputs[1]].data == np.float32(0.02)
    rng = np.random.default_rng(6)
    x = rng.normal(0, 2, (1, 3, 4)).astype(np.float32)
    expected = ort_run(model, {"x": x})[0]
    simulated = api.simulate(model, inputs={"x": x}, scheduler="greedy", graph=optimize(graph)[0])
    assert np.array_equal(simulated.result.outputs["y"], expected)


def test_a_weight_folded_past_its_dequantize_stays_float():
    """DQ(w) -> Transpose -> MatMul: the frontend folds both; the float constant it gives is not
    the DequantizeLinear's output, so there is no integer constant to lift (qdq.py's rule)."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"], name="dq_w"),
             helper.make_node("Transpose", ["wf"], ["wt"], name="transpose_w"),
             helper.make_node("MatMul", ["x", "wt"], ["y"], name="matmul")]
    inits = [const("wq", rng.integers(-127, 128, (4, 6)), np.int8), const("ws", 0.03, np.float32),
             const("wz", 0, np.int8)]
    graph = helper.make_graph(nodes, "folded", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    ir = convert.load(model)
    weight = ir.tensors[ir.node("matmul").inputs[1]]
    assert weight.dtype is DType.FLOAT32 and weight.quant is None
    assert [n.op_type for n in ir.nodes] == ["MatMul"]
    assert api.simulate(model, scheduler="greedy").agreement.max_rel_err <= MAX_REL_ERR


# ----- PyTorch PT2E's patterns (tests/test_pt2e_int8.py runs the real exports) -----------
def pt2e_like_model(bias_value: float = 0.0) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(DQ(w, per channel), float bias) -> Q(a) -> DQ -> Clip(0, 6) -> MaxPool
    -> Q(b, another scale) -> DQ -> y: the shapes PT2E's XNNPACK quantizer exports."""
    rng = np.random.default_rng(12)
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wf"], name="dq_w", axis=0),
             helper.make_node("Conv", ["xf", "wf", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sa", "za"], ["cq"], name="q_c"),
             helper.make_node("DequantizeLinear", ["cq", "sa", "za"], ["cf"], name="dq_c"),
             helper.make_node("Clip", ["cf", "lo", "hi"], ["r6"], name="relu6"),
             helper.make_node("MaxPool", ["r6"], ["m"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["m", "sb", "zb"], ["mq"], name="q_m"),
             helper.make_node("DequantizeLinear", ["mq", "sb", "zb"], ["y"], name="dq_y")]
    bias = rng.normal(0, 0.3, 4) + bias_value
    inits = [const("sx", 0.03, np.float32), const("zx", 5, np.int8),
             const("wq", rng.integers(-127, 128, (4, 2, 3, 3)), np.int8),
             const("sw", rng.uniform(0.002, 0.01, 4), np.float32), const("zw", np.zeros(4), np.int8),
             const("b", bias, np.float32), const("sa", 0.05, np.float32), const("za", -20, np.int8),
             const("lo", 0.0, np.float32), const("hi", 6.0, np.float32),
             const("sb", 0.06, np.float32), const("zb", -128, np.int8)]
    graph = helper.make_graph(nodes, "pt2e", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_quantize_moves_up_through_max_pool_and_the_float_bias_becomes_int32():
    model = pt2e_like_model()
    graph = convert.load(model)
    # Q(m) moved above the MaxPool: the Clip writes int8 with the pool's output quantization
    assert graph.tensors["r6"].dtype is DType.INT8 and graph.tensors["r6"].quant == graph.tensors["mq"].quant
    optimized, report = optimize(convert.load(model))
    assert report["quantization"]["float"] == 0
    assert report["quantization"]["integer_ops"] == {"Clip": 1, "Conv": 1, "MaxPool": 1}
    assert report["quantized_fusion"]["float_bias"] == 1
    assert report["optimize_notes"] == ["1 float bias(es) of int8 Conv/Gemm quantized to int32 at input scale x "
                                        "weight scale (the model left them float; within half an accumulator "
                                        "step): 'b'"]
    bias = optimized.tensors[optimized.node("conv").inputs[2]]
    assert bias.dtype is DType.INT32 and "b" not in optimized.tensors
    np.testing.assert_array_equal(bias.quant.scale, np.float32(0.03) * optimized.tensors[optimized.node("conv").inputs[1]].quant.scale)
    rng = np.random.default_rng(13)
    worst = 0
    for _ in range(10):
        x = rng.normal(0, 1.5, (1, 2, 6, 6)).astype(np.float32)
        expected = ort_run(model, {"x": x})[0]
        got = api.simulate(model, inputs={"x": x}, scheduler="greedy", requant="float").result.outputs["y"]
        worst = max(worst, int(np.abs(np.rint(got / 0.06) - np.rint(expected / 0.06)).max()))
    assert worst <= 1  # the conv's 1-LSB requantization differences (scale 0.05 < 0.06)


def test_clip_then_max_pool_on_int8_equals_onnxruntime_exactly():
    """int8 in -> DQ -> Clip -> MaxPool -> Q (another scale): with the Q moved above the pool,
    Clip (a table) and MaxPool run on the integers and give onnxruntime's bytes."""
    nodes = [helper.make_node("DequantizeLinear", ["xq", "sa", "za"], ["cf"], name="dq"),
             helper.make_node("Clip", ["cf", "lo", "hi"], ["r6"], name="relu6"),
             helper.make_node("MaxPool", ["r6"], ["m"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["m", "sb", "zb"], ["y"], name="q")]
    inits = [const("sa", 0.05, np.float32), const("za", -20, np.int8), const("lo", 0.0, np.float32),
             const("hi", 6.0, np.float32), const("sb", 0.0237, np.float32), const("zb", -128, np.int8)]
    graph = helper.make_graph(nodes, "clip_pool", [helper.make_tensor_value_info("xq", TensorProto.INT8, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 3, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    optimized, report = optimize(convert.load(model))
    assert [n.op_type for n in optimized.nodes] == ["Clip", "MaxPool"]
    assert report["quantization"]["integer_ops"] == {"Clip": 1, "MaxPool": 1}
    rng = np.random.default_rng(14)
    for _ in range(5):
        x = rng.integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)
        got = api.simulate(model, inputs={"xq": x}, scheduler="greedy", requant="float").result.outputs["y"]
        assert np.array_equal(got, ort_run(model, {"xq": x})[0])


def test_a_bias_beyond_int32_stays_float():
    """A float bias that does not fit int32 at the accumulator's scale: the Conv stays a float island."""
    model = pt2e_like_model(bias_value=1e8)
    optimized, report = optimize(convert.load(model))
    assert "float_bias" not in report.get("quantized_fusion", {})
    assert report["quantization"]["float_ops"] == {"Conv": 1}
    assert optimized.tensors[optimized.node("conv").inputs[2]].dtype is DType.FLOAT32
