"""Focused op tests that the ONNX conformance cases cover thinly: memory flags
(alias / in place), attribute combinations checked against onnxruntime on
random data, and the `check` hooks that refuse what a reference cannot do.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.frontend import load
from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.ops import all_ops, lookup, unsupported_reason
from onnx2mcu.scheduler import schedule
from onnx2mcu.simulator.execute import simulate

_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
         np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int8): TensorProto.INT8,
         np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.bool_): TensorProto.BOOL}


def _model(op_type: str, inputs: dict, consts: dict | None = None, n_outputs: int = 1,
           out_types=None, opset: int = 18, input_order=None, **attrs) -> onnx.ModelProto:
    """A one-node model: runtime `inputs`, constant `consts`; input order as given."""
    consts = consts or {}
    order = input_order or list(inputs) + list(consts)
    outputs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, order, outputs, **attrs)
    graph = helper.make_graph(
        [node], op_type,
        [helper.make_tensor_value_info(k, _ELEM[v.dtype], v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, (out_types or {}).get(o, TensorProto.FLOAT), None)
         for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return _with_output_shapes(model)


def _with_output_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fill the graph outputs' shapes (the checker wants them) by shape inference."""
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _ours(model: onnx.ModelProto, inputs: dict) -> list[np.ndarray]:
    graph = load(model, input_shapes={k: v.shape for k, v in inputs.items()})
    result = simulate(graph, schedule(graph), inputs)
    return [result.outputs[name] for name in graph.outputs]


def _onnxruntime(model: onnx.ModelProto, inputs: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def _compare(model: onnx.ModelProto, inputs: dict, rtol=1e-5, atol=1e-5) -> None:
    ours, theirs = _ours(model, inputs), _onnxruntime(model, inputs)
    assert len(ours) == len(theirs)
    for got, want in zip(ours, theirs):
        assert got.shape == want.shape
        assert got.dtype == want.dtype
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(got, want)


def _rand(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----- memory flags -------------------------------------------------------
@pytest.mark.parametrize("op_type", ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
                                     "Dropout"])
def test_reshape_like_ops_are_aliases(op_type):
    assert lookup(op_type).alias


@pytest.mark.parametrize("op_type", ["Relu", "Sigmoid", "Tanh", "Gelu", "Clip", "Add", "Mul", "Sub",
                                     "Div", "LeakyRelu", "HardSwish", "Exp", "Softmax",
                                     "LayerNormalization", "BatchNormalization"])
def test_elementwise_ops_run_in_place(op_type):
    op = lookup(op_type)
    assert not op.alias and 0 in op.inplace_inputs


@pytest.mark.parametrize("op_type", ["Equal", "Less", "Greater", "Cast", "Conv", "MatMul",
                                     "Transpose", "Concat", "MaxPool", "ReduceMean"])
def test_non_elementwise_ops_not_in_place(op_type):
    op = lookup(op_type)
    assert not op.alias and not op.inplace_inputs


def test_inplace_and_alias_in_memory_profile():
    x = _rand(1, 4, 8, 8)
    chain = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
         helper.make_node("Reshape", ["b", "shape"], ["c"]),
         helper.make_node("Tanh", ["c"], ["y"])],
        "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape")])
    model = helper.make_model(chain, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    model = _with_output_shapes(model)
    graph = load(model)
    sched = schedule(graph)
    buffers = sched.profile.buffer_of
    # Sigmoid runs in place over Relu's output, Reshape aliases it, Tanh in place again
    assert buffers["a"] == buffers["b"] == buffers["c"] == buffers["y"]
    result = simulate(graph, sched, {"x": x})
    np.testing.assert_allclose(result.outputs["y"], _onnxruntime(model, {"x": x})[0], rtol=1e-6)


def test_every_op_declares_dtypes_and_reference():
    for op in all_ops():
        assert callable(op.reference), op.op_type
        assert op.dtypes and all(isinstance(d, frozenset) for d in op.dtypes), op.op_type


# ----- Conv / ConvTranspose ----------------------------------------------
CONV_CASES = [
    # x shape, w shape, attrs
    ((1, 4, 9, 11), (6, 2, 3, 3),
     dict(group=2, dilations=[2, 1], pads=[1, 0, 2, 3], strides=[1, 2])),
    ((2, 6, 8, 8), (6, 1, 3, 3), dict(group=6, pads=[1, 1, 1, 1])),  # depthwise
    ((1, 3, 7, 10), (5, 3, 3, 2), dict(auto_pad="SAME_UPPER", strides=[2, 3])),
    ((1, 3, 7, 10), (5, 3, 4, 2), dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    ((1, 3, 7, 10), (5, 3, 3, 3), dict(auto_pad="VALID", strides=[2, 1])),
    ((2, 4, 17), (8, 2, 5), dict(group=2, dilations=[3], pads=[4, 1], strides=[2])),  # 1-D
    ((1, 2, 5, 6, 7), (4, 2, 3, 2, 3), dict(pads=[1, 0, 1, 0, 1, 1], strides=[1, 2, 2])),  # 3-D
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_matches_onnxruntime(x_shape, w_shape, attrs, bias):
    x, w = _rand(*x_shape, seed=1), _rand(*w_shape, seed=2)
    consts = {"w": w}
    if bias:
        consts["b"] = _rand(w_shape[0], seed=3)
    _compare(_model("Conv", {"x": x}, consts, **attrs), {"x": x}, rtol=1e-4, atol=1e-5)


CONV_TRANSPOSE_CASES = [
    ((1, 4, 5, 6), (4, 3, 3, 3), dict(group=2, strides=[2, 2], pads=[1, 0, 1, 2])),
    ((1, 2, 5, 6), (2, 3, 3, 2), dict(strides=[3, 2], output_padding=[1, 1], dilations=[1, 2])),
    ((2, 3, 7), (3, 2, 4), dict(strides=[2], pads=[1, 2])),
    ((1, 2, 4, 4), (2, 2, 3, 3), dict(strides=[2, 2], output_shape=[9, 8])),
    ((1, 2, 4, 5), (2, 2, 4, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 2, 4, 5), (2, 2, 4, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER")),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_onnxruntime(x_shape, w_shape, attrs):
    x, w = _rand(*x_shape, seed=4), _rand(*w_shape, seed=5)
    b = _rand(w_shape[1] * attrs.get("group", 1), seed=6)
    _compare(_model("ConvTranspose", {"x": x}, {"w": w, "b": b}, **attrs), {"x": x},
             rtol=1e-4, atol=1e-5)


# ----- pooling ------------------------------------------------------------
POOL_CASES = [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(kernel_shape=[3, 3], auto_pad="SAME_LOWER", strides=[2, 2]),
]


@pytest.mark.parametrize("attrs", POOL_CASES)
def test_max_pool_matches_onnxruntime(attrs):
    x = _rand(2, 3, 9, 8, seed=7)
    _compare(_model("MaxPool", {"x": x}, **attrs), {"x": x})


def test_max_pool_dilations_and_indices():
    x = _rand(1, 2, 9, 9, seed=8)
    model = _model("MaxPool", {"x": x}, n_outputs=2, out_types={"y1": TensorProto.INT64},
                   kernel_shape=[2, 3], dilations=[2, 2], pads=[1, 1, 0, 2], strides=[1, 2])
    _compare(model, {"x": x})


@pytest.mark.parametrize("attrs", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_matches_onnxruntime(attrs, count_include_pad):
    x = _rand(2, 3, 9, 8, seed=9)
    model = _model("AveragePool", {"x": x}, count_include_pad=count_include_pad, **attrs)
    _compare(model, {"x": x})


def test_pool_refuses_ceil_window_that_shape_inference_keeps():
    # onnx shape inference keeps the last window (starting in the end pad) that runtimes drop
    x = _rand(2, 3, 9, 8, seed=7)
    model = _model("MaxPool", {"x": x}, kernel_shape=[2, 2], strides=[3, 3], ceil_mode=1)
    graph = load(model, check=False)
    assert "ceil_mode" in unsupported_reason(graph.nodes[0], graph)


# ----- normalization / softmax ---------------------------------------------
@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("bias", [False, True])
def test_layer_norm_matches_onnxruntime(axis, bias):
    x = _rand(2, 5, 6, seed=10) * 3 + 1
    norm_shape = x.shape[axis:]
    consts = {"scale": _rand(*norm_shape, seed=11)}
    if bias:
        consts["bias"] = _rand(*norm_shape, seed=12)
    model = _model("LayerNormalization", {"x": x}, consts, n_outputs=3, opset=17,
                   axis=axis, epsilon=1e-3)
    _compare(model, {"x": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_matches_onnxruntime(op_type, axis, opset):
    # opset 11 coerces the input to 2-D at `axis`; 13 normalizes along `axis` only
    x = _rand(3, 4, 5, seed=13) * 4
    _compare(_model(op_type, {"x": x}, opset=opset, axis=axis), {"x": x}, rtol=1e-5, atol=1e-6)


def test_batch_norm_and_instance_norm_match_onnxruntime():
    x = _rand(2, 3, 4, 5, seed=14)
    consts = {"s": _rand(3, seed=15), "b": _rand(3, seed=16), "m": _rand(3, seed=17),
              "v": np.abs(_rand(3, seed=18)) + 0.5}
    _compare(_model("BatchNormalization", {"x": x}, consts, epsilon=1e-3), {"x": x})
    consts = {"s": _rand(3, seed=15), "b": _rand(3, seed=16)}
    _compare(_model("InstanceNormalization", {"x": x}, consts, epsilon=1e-3), {"x": x})


# ----- linear algebra -------------------------------------------------------
@pytest.mark.parametrize("a_shape,b_shape", [((4,), (4, 3)), ((2, 3, 4), (4,)), ((5,), (5,)),
                                             ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_shapes(a_shape, b_shape):
    a, b = _rand(*a_shape, seed=19), _rand(*b_shape, seed=20)
    _compare(_model("MatMul", {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize("trans_a,trans_b,c_shape", [(0, 0, (5,)), (1, 0, (3, 1)), (0, 1, ()),
                                                      (1, 1, (3, 5)), (0, 0, None)])
def test_gemm_matches_onnxruntime(trans_a, trans_b, c_shape):
    a = _rand(*((4, 3) if trans_a else (3, 4)), seed=21)
    b = _rand(*((5, 4) if trans_b else (4, 5)), seed=22)
    consts = {"b": b}
    if c_shape is not None:
        consts["c"] = np.asarray(_rand(*c_shape, seed=23) if c_shape else np.float32(0.7))
    model = _model("Gemm", {"a": a}, consts, alpha=0.5, beta=2.0, transA=trans_a, transB=trans_b)
    _compare(model, {"a": a})


# ----- data movement ----------------------------------------------------------
@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([-1, 10], [-100, -2], [0, 2], [-1, -3]),
    ([2, 0], [2**62, 3], [-1, 1], [2, 1]),
    ([5], [-7], [1], [-2]),
])
def test_slice_matches_onnxruntime(starts, ends, axes, steps):
    x = _rand(4, 6, 12, seed=24)
    consts = {k: np.array(v, dtype=np.int64) for k, v in
              dict(starts=starts, ends=ends, axes=axes, steps=steps).items()}
    _compare(_model("Slice", {"x": x}, consts), {"x": x})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_matches_onnxruntime(mode):
    x = _rand(2, 3, 5, 6, seed=25)
    consts = {"pads": np.array([0, 1, 2, 3, 0, 0, 1, 2], dtype=np.int64),
              "value": np.array(1.5, dtype=np.float32)}
    _compare(_model("Pad", {"x": x}, consts, mode=mode), {"x": x})


def test_pad_with_axes_and_negative_pads():
    x = _rand(3, 5, 6, seed=26)
    consts = {"pads": np.array([2, -1, 1, 3], dtype=np.int64),
              "value": np.array(-2.0, dtype=np.float32), "axes": np.array([-1, 0], dtype=np.int64)}
    _compare(_model("Pad", {"x": x}, consts), {"x": x})


def test_split_num_outputs_uneven():
    x = _rand(2, 7, seed=27)
    _compare(_model("Split", {"x": x}, n_outputs=3, axis=1, num_outputs=3), {"x": x})


def test_reduce_noop_with_empty_axes():
    x = _rand(2, 3, 4, seed=28)
    empty = {"axes": np.array([], dtype=np.int64)}
    _compare(_model("ReduceSum", {"x": x}, empty, noop_with_empty_axes=1), {"x": x})
    _compare(_model("ReduceSum", {"x": x}, empty, keepdims=0), {"x": x})
    _compare(_model("ReduceMean", {"x": x}, {"axes": np.array([0, -1], dtype=np.int64)}),
             {"x": x})


@pytest.mark.parametrize("axis", [0, 1])
def test_quantize_dequantize_per_axis(axis):
    x = _rand(3, 4, seed=29) * 10
    count = x.shape[axis]
    scale = (np.arange(count, dtype=np.float32) + 1) * 0.05
    for dtype in (np.int8, np.uint8):
        zero = (np.arange(count) * 3).astype(dtype)
        _compare(_model("QuantizeLinear", {"x": x}, {"s": scale, "z": zero}, axis=axis,
                        out_types={"y0": _ELEM[np.dtype(dtype)]}), {"x": x})
        q = np.random.default_rng(30).integers(0, 120, size=x.shape).astype(dtype)
        _compare(_model("DequantizeLinear", {"q": q}, {"s": scale, "z": zero}, axis=axis), {"q": q})


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0], dtype=np.float32)
    consts = {"s": np.array(1.0, dtype=np.float32), "z": np.array(0, dtype=np.int8)}
    _compare(_model("QuantizeLinear", {"x": x}, consts, out_types={"y0": TensorProto.INT8}),
             {"x": x})


@pytest.mark.parametrize("attrs,scales,sizes", [
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     [1, 1, 2, 2], None),
    (dict(mode="linear"), [1, 1, 2, 1.5], None),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), None, [2, 3, 9, 4]),
    (dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel"), [1, 1, 0.5, 1.7],
     None),
])
def test_resize_matches_onnxruntime(attrs, scales, sizes):
    x = _rand(2, 3, 5, 6, seed=31)
    consts = {"roi": np.array([], dtype=np.float32),
              "scales": np.array(scales or [], dtype=np.float32)}
    if sizes is not None:
        consts["sizes"] = np.array(sizes, dtype=np.int64)
    _compare(_model("Resize", {"x": x}, consts, **attrs), {"x": x})


# ----- checks refuse what the references cannot do ----------------------
def _single_node_graph(op_type: str, attrs: dict, shapes: list, dtype=DType.FLOAT32,
                       n_outputs: int = 1) -> tuple[Graph, Node]:
    tensors = {f"i{k}": Tensor(f"i{k}", s, dtype) for k, s in enumerate(shapes)}
    outs = [f"o{k}" for k in range(n_outputs)]
    tensors.update({o: Tensor(o, shapes[0], dtype) for o in outs})
    node = Node("n", op_type, list(tensors)[:len(shapes)], outs, attrs)
    return Graph("g", [node], tensors, list(tensors)[:len(shapes)], outs), node


@pytest.mark.parametrize("op_type,attrs,n_outputs", [
    ("BatchNormalization", {"training_mode": 1}, 1),
    ("BatchNormalization", {}, 3),
    ("Cast", {"to": TensorProto.FLOAT16}, 1),
    ("Pad", {"mode": "circular"}, 1),
    ("Conv", {"auto_pad": "FOO"}, 1),
    ("TopK", {"sorted": 0}, 2),
    ("QuantizeLinear", {"block_size": 2}, 1),
    ("Resize", {"antialias": 1}, 1),
])
def test_check_rejects_unsupported_attributes(op_type, attrs, n_outputs):
    graph, node = _single_node_graph(op_type, attrs, [(1, 2, 4, 4)] * 2, n_outputs=n_outputs)
    assert unsupported_reason(node, graph) is not None


def test_dtype_rejection():
    graph, node = _single_node_graph("Softmax", {}, [(2, 3)], dtype=DType.INT8)
    assert "dtype" in unsupported_reason(node, graph)
