"""Dynamic quantization (onnxruntime.quantization.quantize_dynamic): DynamicQuantizeLinear,
MatMulInteger and ConvInteger in the simulator and in the generated C.

* The ONNX conformance cases of the three ops (../shared/onnx-node-tests) are selected by
  tests/test_conformance.py and tests/test_conformance_c.py like every other case; here they run
  through the simulator once more and must all have C kernels, so that a change that
  deselects them fails here.
* runtime_c/o2m_dynquant.c against the numpy references (onnx2mcu/ops/quant.py,
  onnx2mcu/ops/integer.py) on random shapes (hypothesis), bit for bit, with the parameter
  structs the emitters (codegen/emit/dynquant.py) write.
* Real quantize_dynamic models against onnxruntime, in the simulator and in C on the host: a
  small CNN (ConvInteger, MatMulInteger; no torch needed) and BERT-tiny (the Hugging Face
  architecture of prajjwal1/bert-tiny with seeded random weights, exported by torch, seq 128).
  Every DynamicQuantizeLinear's uint8 output is made a graph output, so the comparison covers
  the integer intermediates (within 1 LSB) as well as the float outputs (1e-2 relative to the
  output's largest magnitude).
"""
from __future__ import annotations

import logging
import re
import shutil
from ctypes import c_int32, c_size_t, c_void_p
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from c_harness import build_and_load, declare, have_compiler, ptr, runtime_dir
from onnx2mcu.codegen.context import CContext
from onnx2mcu.codegen.kernels import c_support, kernel_for, node_dtype
from onnx2mcu.frontend import load
from onnx2mcu.ops import unsupported_reason
from onnx2mcu.ops.quant import dynamic_quantize
from onnx2mcu.ops.registry import run_reference

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT.parent / "shared" / "onnx-node-tests" / "node"
CASE_PREFIXES = ("test_dynamicquantizelinear", "test_matmulinteger", "test_convinteger")
HAVE_GCC = have_compiler("gcc") and shutil.which("make") is not None
INT8_LSB = 1  # integer intermediates: at most 1 LSB from onnxruntime's
FLOAT_REL = 1e-2  # float outputs: max |ours - onnxruntime| / max |onnxruntime|
OPSET = 13


# ----- the ONNX conformance cases ------------------------------------------------------
def _read_pb(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _conformance_cases() -> list[Path]:
    if not NODE_DIR.is_dir():
        return []
    return sorted(p for p in NODE_DIR.iterdir() if p.name.startswith(CASE_PREFIXES))


@pytest.mark.shared
@pytest.mark.skipif(not NODE_DIR.is_dir(), reason=f"ONNX node conformance cases not found at {NODE_DIR}")
def test_conformance_cases_run_and_have_c_kernels():
    from onnx2mcu.scheduler import schedule
    from onnx2mcu.simulator.execute import simulate

    cases = _conformance_cases()
    assert {c.name.rsplit("_expanded", 1)[0] for c in cases} >= {
        "test_dynamicquantizelinear", "test_dynamicquantizelinear_max_adjusted",
        "test_dynamicquantizelinear_min_adjusted", "test_matmulinteger",
        "test_convinteger_with_padding", "test_convinteger_without_padding"}
    for case in cases:
        model = onnx.load(str(case / "model.onnx"))
        data = case / "test_data_set_0"
        inputs = {i.name: _read_pb(data / f"input_{k}.pb") for k, i in enumerate(model.graph.input)}
        graph = load(model, input_shapes={k: v.shape for k, v in inputs.items()})
        assert not [n.name for n in graph.nodes if unsupported_reason(n, graph)], case.name
        assert c_support(graph) and not [why for why in c_support(graph).values() if isinstance(why, str)], \
            case.name
        outputs = simulate(graph, schedule(graph), inputs).outputs
        for k, name in enumerate(graph.outputs):
            want = _read_pb(data / f"output_{k}.pb")
            got = outputs[name]
            assert got.dtype == want.dtype and got.shape == want.shape, (case.name, name)
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f"{case.name} {name}")
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"{case.name} {name}")


# ----- the C kernels vs the numpy references -------------------------------------------
@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if not have_compiler("gcc"):
        pytest.skip("gcc not installed")
    out = tmp_path_factory.mktemp("dynquant")
    probe = out / "probe.c"  # the tests pass the param structs as int32 arrays: no padding
    probe.write_text('#include "o2m_dynquant.h"\n'
                     'size_t probe_mmi(void);\nsize_t probe_mmi(void) { return sizeof(o2m_matmul_integer_params); }\n'
                     'size_t probe_ci(void);\nsize_t probe_ci(void) { return sizeof(o2m_conv_integer_params); }\n')
    lib = build_and_load([runtime_dir() / "o2m_dynquant.c", probe], out, name="dynquant",
                         include_dirs=[runtime_dir()])
    assert declare(lib, "probe_mmi", c_size_t)() == declare(lib, "probe_ci", c_size_t)() == 17 * 4
    declare(lib, "o2m_dynamic_quantize_u8", None, c_int32, *[c_void_p] * 4)
    for kind in ("matmul_integer", "conv_integer"):
        for a in ("u8", "s8"):
            for b in ("u8", "s8"):
                declare(lib, f"o2m_{kind}_{a}{b}", None, *[c_void_p] * 6)
    return lib


NP = {"u8": np.uint8, "s8": np.int8}
ONNX_TYPE = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


def _rand_ints(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _lower(op_type: str, arrays: dict[str, np.ndarray], attrs: dict):
    """One-node model of `op_type` over graph inputs `arrays` (None: an omitted input), loaded,
    and lowered by its registered emitter.  Returns (graph, node, C function, its params struct
    as int32 values in field order: every field of the integer kernels' structs is an int32)."""
    names = [name if value is not None else "" for name, value in arrays.items()]
    inputs = [helper.make_tensor_value_info(n, ONNX_TYPE[v.dtype.type], v.shape)
              for n, v in arrays.items() if v is not None]
    node = helper.make_node(op_type, names, ["y"], name="node", **attrs)
    model = helper.make_model(helper.make_graph([node], "g", inputs,
                                                [helper.make_tensor_value_info("y", TensorProto.INT32, None)]),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)  # gives y its shape
    graph = load(model, input_shapes={n: v.shape for n, v in arrays.items() if v is not None})
    node = graph.nodes[0]
    assert unsupported_reason(node, graph) is None
    offsets = {name: 0 for name in graph.tensors}
    ctx = CContext(graph, offsets, dict(offsets), {node.name: 0})
    statements = kernel_for(node.op_type, node_dtype(node, graph)).emit(node, ctx)
    function = re.match(r"(o2m_\w+)\(", statements[0]).group(1)
    (declaration,) = [d for d in ctx.declarations if "_params " in d]
    initializer = re.sub(r"\.\w+ =", "", declaration.split("=", 1)[1])
    return graph, node, function, np.array([int(v) for v in re.findall(r"-?\d+", initializer)], np.int32)


@st.composite
def matmul_cases(draw):
    a_t, b_t = draw(st.sampled_from(["u8", "s8"])), draw(st.sampled_from(["u8", "s8"]))
    m, k, n = draw(st.integers(1, 9)), draw(st.integers(1, 12)), draw(st.integers(1, 9))
    batch = draw(st.lists(st.integers(1, 3), max_size=3))
    a_batch = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    b_batch = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    a_shape = [k] if not a_batch and draw(st.booleans()) else a_batch + [m, k]
    b_shape = [k] if not b_batch and draw(st.booleans()) else b_batch + [k, n]
    a_zp = draw(st.sampled_from(["none", "scalar", "one"]))
    b_zp = draw(st.sampled_from(["none", "scalar", "column"] if len(b_shape) > 1 else ["none", "scalar"]))
    return a_t, b_t, a_shape, b_shape, a_zp, b_zp, draw(st.integers(0, 2**31))


def _zero_point(rng, kind: str, dtype, count: int):
    return {"none": None, "scalar": _rand_ints(rng, (), dtype), "one": _rand_ints(rng, (1,), dtype),
            "column": _rand_ints(rng, (count,), dtype), "channel": _rand_ints(rng, (count,), dtype)}[kind]


@pytest.mark.c
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=matmul_cases())
def test_matmul_integer_kernel_equals_reference(lib, case):
    a_t, b_t, a_shape, b_shape, a_zp, b_zp, seed = case
    rng = np.random.default_rng(seed)
    a, b = _rand_ints(rng, a_shape, NP[a_t]), _rand_ints(rng, b_shape, NP[b_t])
    arrays = {"a": a, "b": b, "a_zp": _zero_point(rng, a_zp, NP[a_t], 1),
              "b_zp": _zero_point(rng, b_zp, NP[b_t], b_shape[-1])}
    graph, node, function, params = _lower("MatMulInteger", arrays, {})
    assert function == f"o2m_matmul_integer_{a_t}{b_t}" and params.size == 17
    want = run_reference(node, list(arrays.values()), graph)[0]
    got = np.zeros(graph.tensors["y"].shape, np.int32)
    getattr(lib, function)(ptr(params), ptr(a), ptr(b), ptr(arrays["a_zp"]), ptr(arrays["b_zp"]), ptr(got))
    assert want.dtype == np.int32 and np.array_equal(got, want)


@st.composite
def conv_cases(draw):
    x_t, w_t = draw(st.sampled_from(["u8", "s8"])), draw(st.sampled_from(["u8", "s8"]))
    rank = draw(st.integers(1, 2))
    groups, cin_g, cout_g = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    spatial = [draw(st.integers(1, 9)) for _ in range(rank)]
    attrs = {"strides": strides, "dilations": dilations, "group": groups}
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
    else:
        attrs["auto_pad"] = auto_pad
    pads = attrs.get("pads", [0] * 2 * rank)
    for i in range(rank):  # at least one output position
        assume(auto_pad.startswith("SAME") or spatial[i] + pads[i] + pads[i + rank] >= (kernel[i] - 1) * dilations[i] + 1)
    x_shape = [draw(st.integers(1, 2)), groups * cin_g] + spatial
    w_shape = [groups * cout_g, cin_g] + kernel
    x_zp = draw(st.sampled_from(["none", "scalar", "one"]))
    w_zp = draw(st.sampled_from(["none", "scalar", "channel"]))
    return x_t, w_t, x_shape, w_shape, attrs, x_zp, w_zp, draw(st.integers(0, 2**31))


@pytest.mark.c
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
@given(case=conv_cases())
def test_conv_integer_kernel_equals_reference(lib, case):
    x_t, w_t, x_shape, w_shape, attrs, x_zp, w_zp, seed = case
    rng = np.random.default_rng(seed)
    x, w = _rand_ints(rng, x_shape, NP[x_t]), _rand_ints(rng, w_shape, NP[w_t])
    arrays = {"x": x, "w": w, "x_zp": _zero_point(rng, x_zp, NP[x_t], 1),
              "w_zp": _zero_point(rng, w_zp, NP[w_t], w_shape[0])}
    graph, node, function, params = _lower("ConvInteger", arrays, attrs)
    assert function == f"o2m_conv_integer_{x_t}{w_t}" and params.size == 17
    want = run_reference(node, list(arrays.values()), graph)[0]
    got = np.zeros(graph.tensors["y"].shape, np.int32)
    getattr(lib, function)(ptr(params), ptr(x), ptr(w), ptr(arrays["x_zp"]), ptr(arrays["w_zp"]), ptr(got))
    assert want.dtype == np.int32 and np.array_equal(got, want)


@st.composite
def float_inputs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kind = draw(st.sampled_from(["normal", "positive", "negative", "zeros", "few", "ties", "zp_tie", "one"]))
    size = draw(st.integers(1, 300))
    scale = np.float32(10.0 ** draw(st.integers(-4, 4)))
    if kind in ("ties", "zp_tie"):
        # scale = 2^-p exactly; "ties": the range ends on multiples of it and values sit at
        # (j + 0.5) * scale, so every y rounds a tie; "zp_tie": the range ends at half
        # multiples, so the zero point -lo / scale = zp + 0.5 rounds a tie
        p, zp = draw(st.integers(0, 8)), draw(st.integers(0, 254))
        step = np.float32(2.0 ** -p)
        shift = 0.5 if kind == "zp_tie" else 0.0
        values = (rng.integers(-zp, 255 - zp, size=size) + 0.5 - shift) * step
        ends = [-(zp + shift) * step, (255 - zp - shift) * step]
        return np.concatenate([ends, values]).astype(np.float32)
    values = {"normal": rng.normal(size=size), "positive": rng.random(size) + 0.1,
              "negative": -rng.random(size) - 0.1, "zeros": np.zeros(size),
              "few": rng.integers(-3, 4, size=size), "one": rng.normal(size=1)}[kind]
    return (values * scale).astype(np.float32)


@pytest.mark.c
@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=float_inputs())
def test_dynamic_quantize_kernel_equals_reference(lib, x):
    want_y, want_scale, want_zp = dynamic_quantize(x)
    y = np.zeros(x.size, np.uint8)
    scale = np.zeros(1, np.float32)
    zp = np.zeros(1, np.uint8)
    lib.o2m_dynamic_quantize_u8(x.size, ptr(x), ptr(y), ptr(scale), ptr(zp))
    assert np.array_equal(y, want_y)
    assert scale.view(np.uint32)[0] == np.float32(want_scale).view(np.uint32) and zp[0] == want_zp


def test_dynamic_quantize_is_onnxruntimes():
    """The reference is onnxruntime's DynamicQuantizeLinear bit for bit, ties and all-zero input
    included (scale 1.0 there: the ONNX reference would say 1/255, the uint8 values are the same)."""
    ort = pytest.importorskip("onnxruntime")
    model = helper.make_model(helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(n, t, None) for n, t in
         (("y", TensorProto.UINT8), ("s", TensorProto.FLOAT), ("z", TensorProto.UINT8))]),
        opset_imports=[helper.make_opsetid("", OPSET)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(4)
    ties = (np.arange(-100, 155) + 0.5).astype(np.float32) * np.float32(0.25)
    samples = [rng.normal(size=500).astype(np.float32) * 3, np.zeros(7, np.float32),
               np.concatenate([[-25.0, 38.75], ties]).astype(np.float32),
               np.array([-10.5, 244.5, 3.0, -1.0], np.float32),  # zero point 10.5 -> 10 (half to even)
               rng.random(64).astype(np.float32) + 1, -rng.random(64).astype(np.float32) - 2]
    for x in samples:
        y, s, z = session.run(None, {"x": x})
        want_y, want_s, want_z = dynamic_quantize(x)
        assert np.array_equal(y, want_y) and np.float32(s) == want_s and z == want_z


# ----- real quantize_dynamic models vs onnxruntime -------------------------------------
def _quantize_dynamic(source: Path, target: Path, weight_type: str = "QInt8") -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger = logging.getLogger()  # quantize_dynamic warns through the root logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(target), weight_type=getattr(QuantType, weight_type))
    finally:
        logger.setLevel(level)
    return target


def _with_quantized_outputs(path: Path, target: Path) -> tuple[Path, list[str]]:
    """The model with each DynamicQuantizeLinear's uint8 output also a graph output."""
    model = onnx.load(str(path))
    probes = [n.output[0] for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.extend(inferred[p] for p in probes)
    onnx.save(model, str(target))
    return target, probes


def _compare(label: str, got: dict, want: dict, probes: list[str]) -> None:
    """Print and check both measures: integer intermediates in LSB, float outputs relative."""
    lsb, differ, total = 0, 0, 0
    for name in probes:
        diff = np.abs(got[name].reshape(want[name].shape).astype(np.int32) - want[name].astype(np.int32))
        lsb, differ, total = max(lsb, int(diff.max())), differ + int((diff > 0).sum()), total + diff.size
    floats = {name: float(np.abs(got[name].reshape(ref.shape) - ref).max() / np.abs(ref).max())
              for name, ref in want.items() if name not in probes}
    print(f"{label}: uint8 intermediates max {lsb} LSB from onnxruntime ({differ} of {total} values "
          f"differ); float outputs max rel err " + ", ".join(f"{k} {v:.2e}" for k, v in floats.items()))
    assert lsb <= INT8_LSB, label
    assert max(floats.values()) <= FLOAT_REL, label


def _check_model(path: Path, folder: Path, inputs: dict, input_shapes=None) -> dict:
    """Simulator and C on the host against onnxruntime; returns the precision report."""
    import onnxruntime as ort

    from onnx2mcu.pipeline import Options, run
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.simulator.compare import Tolerance

    probe, probes = _with_quantized_outputs(path, folder / "probe.onnx")
    session = ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    want = dict(zip(names, session.run(None, inputs)))
    result = run(str(probe), Options(input_shapes=input_shapes, inputs=inputs, simulate=True,
                                     check_onnxruntime=False, output=folder / "c", board="host"))
    _compare("simulator", result.simulation.result.outputs, want, probes)
    if not HAVE_GCC:
        pytest.skip("gcc / make not installed: the C half of the comparison cannot run")
    host = run_project_dir(str(folder / "c"), "host",
                           tolerance=Tolerance(atol=1e-3, rtol=FLOAT_REL, int_lsb=INT8_LSB))
    assert host["reference"] == "onnxruntime"  # no requantizing node: onnxruntime is the reference
    _compare("C host", host["outputs"], want, probes)
    assert host["ok"], host["table"]
    precision = result.compiled.report["precision"]
    model = onnx.load(str(path))
    products = [n.name for n in model.graph.node if n.op_type in ("MatMulInteger", "ConvInteger")]
    assert precision["int8_nodes"] == precision["integer_products"] == len(products) > 0
    assert precision["dynamic_quantizers"] == len(probes) > 0
    kernels = {e["node"]: (e["dtype"], e["kernel"]) for e in precision["nodes"]}
    assert all(kernels[n][0] == "int8" and kernels[n][1].endswith("/portable")
               and kernels[n][1].split("/")[1] in ("uint8", "int8") for n in products), kernels
    assert "o2m_dynquant.c" in result.compiled.report["kernels"]
    return precision


def _small_cnn(path: Path) -> Path:
    """Conv (pads, stride 2, bias) -> Relu -> grouped dilated Conv -> Flatten -> MatMul."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
               numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b1"),
               numpy_helper.from_array(rng.normal(0, 0.3, (8, 2, 3, 3)).astype(np.float32), "w2"),
               numpy_helper.from_array(rng.normal(0, 0.3, (64, 10)).astype(np.float32), "wf")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], group=4, pads=[1, 0, 1, 2], dilations=[1, 2],
                              name="conv2"),
             helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "wf"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), str(path))
    return path


@pytest.mark.c
@pytest.mark.parametrize("weight_type", ["QUInt8", "QInt8"])
def test_quantize_dynamic_cnn_matches_onnxruntime(weight_type, tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    model = _quantize_dynamic(_small_cnn(tmp_path / "cnn.onnx"), tmp_path / "cnn_dynamic.onnx", weight_type)
    assert {n.op_type for n in onnx.load(str(model)).graph.node} >= {"DynamicQuantizeLinear", "ConvInteger",
                                                                      "MatMulInteger"}
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    _check_model(model, tmp_path, {"x": x})


@pytest.fixture(scope="module")
def dynamic_bert(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[export]')")
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[export]')")
    pytest.importorskip("onnxruntime.quantization")
    from helpers_export import export_bert

    folder = tmp_path_factory.mktemp("dynamic_bert")
    source = export_bert(folder / "bert_tiny.onnx", dynamo=False)
    return _quantize_dynamic(source, folder / "bert_tiny_dynamic.onnx")


@pytest.mark.c
@pytest.mark.slow
def test_quantize_dynamic_bert_tiny_matches_onnxruntime(dynamic_bert, tmp_path):
    """BERT-tiny from quantize_dynamic (int8 weights, uint8 activations, all 13 projections as
    MatMulInteger): a padded attention mask, seq 128."""
    from helpers_export import BERT_TINY, INPUT_SHAPES, SEQ

    rng = np.random.default_rng(7)
    mask = np.ones((1, SEQ), np.int64)
    mask[0, 100:] = 0
    inputs = {"input_ids": rng.integers(0, BERT_TINY["vocab_size"], (1, SEQ)).astype(np.int64),
              "attention_mask": mask}
    precision = _check_model(dynamic_bert, tmp_path, inputs, INPUT_SHAPES)
    assert precision["int8_nodes"] == 13 and precision["dynamic_quantizers"] == 9


@pytest.mark.c
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_header_usable_from_cplusplus(tmp_path):
    import subprocess

    source = tmp_path / "use.cpp"
    source.write_text('#include "o2m_dynquant.h"\nint main() { return 0; }\n')
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only",
                    f"-I{runtime_dir()}", str(source)], check=True, capture_output=True)


def test_per_row_a_zero_point_is_refused_in_one_line(tmp_path, capsys):
    """onnxruntime takes one zero point for A: a per-row one is refused (exit 2, nothing written)."""
    from onnx2mcu.cli import main

    node = helper.make_node("MatMulInteger", ["a", "b", "za"], ["y"], name="mmi")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [3, 5])],
                              [numpy_helper.from_array(np.ones((4, 5), np.uint8), "b"),
                               numpy_helper.from_array(np.array([1, 2, 3], np.uint8), "za")])
    path = tmp_path / "per_row.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), str(path))
    assert main(["compile", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'mmi' (MatMulInteger): a_zero_point" in err
    assert not (tmp_path / "out").exists()
