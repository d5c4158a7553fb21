"""`--requant float` is onnxruntime's arithmetic: int8_ref in float mode gives exactly
onnxruntime's QLinearConv, QLinearMatMul and (com.microsoft) QLinearAdd / QLinearMul
outputs on random cases; fixed mode is TFLite's (see test_tflm_reference.py)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.ops import int8_ref as R


def _run(node, inputs: dict, inits: list, contrib: bool = False) -> np.ndarray:
    onnx_type = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8}
    out_type = onnx_type[next(iter(inputs.values())).dtype]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(k, onnx_type[v.dtype], v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", out_type, None)], inits)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("com.microsoft", 1)] if contrib else [])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=opsets).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def _c(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def test_conv_float_mode_matches_onnxruntime_qlinearconv():
    rng = np.random.default_rng(0)
    fixed_differs = 0
    for _ in range(20):
        c_in, c_out, k = int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.choice([1, 3]))
        stride = int(rng.integers(1, 3))
        x = rng.integers(-128, 128, (1, c_in, 7, 8)).astype(np.int8)
        w = rng.integers(-127, 128, (c_out, c_in, k, k)).astype(np.int8)
        b = rng.integers(-3000, 3000, c_out).astype(np.int32)
        xs, xz = np.float32(rng.uniform(0.01, 0.1)), np.int8(rng.integers(-128, 128))
        ws = rng.uniform(0.001, 0.02, c_out).astype(np.float32)
        ys, yz = np.float32(rng.uniform(0.02, 0.5)), np.int8(rng.integers(-128, 128))
        pads = [k // 2] * 4
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                                pads=pads, strides=[stride, stride])
        y = _run(node, {"x": x}, [_c("xs", xs), _c("xz", xz), _c("w", w), _c("ws", ws),
                                  _c("wz", np.zeros(c_out, np.int8)), _c("ys", ys), _c("yz", yz), _c("b", b)])
        p = R.conv_params(xs, int(xz), ws, ys, int(yz), c_out, pads=pads, stride=stride)
        np.testing.assert_array_equal(R.conv2d(x, w, b, p, mode="float"), y)
        fixed_differs += int(np.sum(R.conv2d(x, w, b, p, mode="fixed") != y))
    assert fixed_differs > 0  # the two modes are distinguishable on these cases


def test_matmul_float_mode_matches_onnxruntime_qlinearmatmul():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m, k, n = (int(v) for v in rng.integers(1, 20, 3))
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        sa, za = np.float32(rng.uniform(0.01, 0.1)), np.int8(rng.integers(-128, 128))
        sb, zb = np.float32(rng.uniform(0.01, 0.1)), np.int8(rng.integers(-10, 10))
        sy, zy = np.float32(rng.uniform(0.05, 1)), np.int8(rng.integers(-128, 128))
        node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
        y = _run(node, {"a": a}, [_c("sa", sa), _c("za", za), _c("b", b), _c("sb", sb), _c("zb", zb),
                                  _c("sy", sy), _c("zy", zy)])
        p = R.fc_params(sa, int(za), sb, sy, int(zy), filter_zero_point=int(zb))
        np.testing.assert_array_equal(R.matmul(a, b, None, p, mode="float"), y)


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_add_mul_float_mode_match_onnxruntime_contrib(op):
    rng = np.random.default_rng(2 if op == "QLinearAdd" else 3)
    for _ in range(20):
        a = rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
        b = rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
        s1, s2, so = (np.float32(v) for v in rng.uniform(0.01, 0.2, 3))
        z1, z2, zo = (np.int8(v) for v in rng.integers(-128, 128, 3))
        node = helper.make_node(op, ["a", "s1", "z1", "b", "s2", "z2", "so", "zo"], ["y"], domain="com.microsoft")
        y = _run(node, {"a": a, "b": b}, [_c("s1", s1), _c("z1", z1), _c("s2", s2), _c("z2", z2), _c("so", so),
                                          _c("zo", zo)], contrib=True)
        if op == "QLinearAdd":
            got = R.add(a, b, R.add_params(s1, int(z1), s2, int(z2), so, int(zo)), mode="float")
        else:
            got = R.mul(a, b, R.mul_params(s1, int(z1), s2, int(z2), so, int(zo)), mode="float")
        np.testing.assert_array_equal(got, y)


# ----- uint8 (onnxruntime's QUInt8 activations and weights), held as int8 by frontend/uint8.py
def _s8(values) -> np.ndarray:
    """uint8 values (and zero points) as the int8 the lowering stores: v - 128."""
    return (np.asarray(values).astype(np.int16) - 128).astype(np.int8)


def test_uint8_conv_held_as_int8_matches_onnxruntime_qlinearconv():
    """u8 input, u8 weights with a zero point (asymmetric, per tensor), u8 output."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        c_in, c_out, k = int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.choice([1, 3]))
        group = c_in if rng.random() < 0.3 else 1
        c_out = c_in if group > 1 else c_out
        x = rng.integers(0, 256, (1, c_in, 7, 8)).astype(np.uint8)
        w = rng.integers(0, 256, (c_out, c_in // group, k, k)).astype(np.uint8)
        b = rng.integers(-3000, 3000, c_out).astype(np.int32)
        xs, xz = np.float32(rng.uniform(0.01, 0.1)), np.uint8(rng.integers(100, 156))
        ws, wz = np.float32(rng.uniform(0.001, 0.02)), np.uint8(rng.integers(60, 200))
        ys, yz = np.float32(rng.uniform(0.2, 2.0)), np.uint8(rng.integers(100, 156))
        pads = [k // 2] * 4
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                                pads=pads, group=group)
        y = _run(node, {"x": x}, [_c("xs", xs), _c("xz", xz), _c("w", w), _c("ws", ws), _c("wz", wz),
                                  _c("ys", ys), _c("yz", yz), _c("b", b)])
        p = R.conv_params(xs, int(_s8(xz)), [ws], ys, int(_s8(yz)), c_out, pads=pads, groups=group,
                          filter_zero_point=int(_s8(wz)))
        np.testing.assert_array_equal(R.conv2d(_s8(x), _s8(w), b, p, mode="float"), _s8(y))


def test_uint8_matmul_held_as_int8_matches_onnxruntime_qlinearmatmul():
    rng = np.random.default_rng(5)
    for _ in range(20):
        m, k, n = (int(v) for v in rng.integers(1, 20, 3))
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(0, 256, (k, n)).astype(np.uint8)
        sa, za = np.float32(rng.uniform(0.01, 0.1)), np.uint8(rng.integers(100, 156))
        sb, zb = np.float32(rng.uniform(0.01, 0.1)), np.uint8(rng.integers(60, 200))
        sy, zy = np.float32(rng.uniform(0.5, 5)), np.uint8(rng.integers(100, 156))
        node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
        y = _run(node, {"a": a}, [_c("sa", sa), _c("za", za), _c("b", b), _c("sb", sb), _c("zb", zb),
                                  _c("sy", sy), _c("zy", zy)])
        p = R.fc_params(sa, int(_s8(za)), sb, sy, int(_s8(zy)), filter_zero_point=int(_s8(zb)))
        np.testing.assert_array_equal(R.matmul(_s8(a), _s8(b), None, p, mode="float"), _s8(y))


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_uint8_add_mul_held_as_int8_match_onnxruntime_contrib(op):
    """QLinearAdd's float formula reads the raw uint8 values (not shift-invariant): the Params
    carry value offsets of 128; Mul's (a - za)(b - zb) is."""
    rng = np.random.default_rng(12 if op == "QLinearAdd" else 13)
    for _ in range(20):
        a = rng.integers(0, 256, (2, 3, 4, 5)).astype(np.uint8)
        b = rng.integers(0, 256, (2, 3, 4, 5)).astype(np.uint8)
        s1, s2, so = (np.float32(v) for v in rng.uniform(0.01, 0.2, 3))
        z1, z2, zo = (np.uint8(v) for v in rng.integers(0, 256, 3))
        node = helper.make_node(op, ["a", "s1", "z1", "b", "s2", "z2", "so", "zo"], ["y"], domain="com.microsoft")
        y = _run(node, {"a": a, "b": b}, [_c("s1", s1), _c("z1", z1), _c("s2", s2), _c("z2", z2), _c("so", so),
                                          _c("zo", zo)], contrib=True)
        zs = [int(_s8(z)) for z in (z1, z2, zo)]
        if op == "QLinearAdd":
            p = R.add_params(s1, zs[0], s2, zs[1], so, zs[2], value_offsets=(128, 128, 128))
            got = R.add(_s8(a), _s8(b), p, mode="float")
        else:
            got = R.mul(_s8(a), _s8(b), R.mul_params(s1, zs[0], s2, zs[1], so, zs[2]), mode="float")
        np.testing.assert_array_equal(got, _s8(y))
