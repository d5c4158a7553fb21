"""TFLite Micro's interpreter reproduces the anchors, and onnx2mcu's int8 references reproduce TFLite Micro.

1. tflm_outputs() on the five int8 models and the anchor input gives exactly
   the output bytes recorded in ../shared/anchors/README.md (proves the runner).
2. Each model is re-run op by op with onnx2mcu.ops.int8_ref (NCHW, Params
   computed from the file's scales and zero points) and must give TFLite
   Micro's output bit for bit, on the anchor input and on random inputs.
3. The same with the C kernels (runtime_c/o2m_s8_*.c through ctypes) doing
   every arithmetic op: int8 C bit-exact with TFLite Micro on real models.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnx2mcu import qmath
from onnx2mcu.ops import int8_ref as R
from s8_c_backend import CKernels, build_s8_library
from tflm_reference import ANCHOR_MODELS, anchor_input, have_tflm, input_details, read_model, tflm_outputs

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"

pytestmark = [pytest.mark.shared, pytest.mark.skipif(not have_tflm(), reason="tflite-micro is not installed")]


def _model_path(rel: str) -> Path:
    path = SHARED_MODELS / rel
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.parametrize("rel", sorted(ANCHOR_MODELS))
def test_tflm_matches_anchor(rel):
    path = _model_path(rel)
    (detail,) = input_details(path)
    x = anchor_input(detail["shape"], detail["dtype"])
    (y,) = tflm_outputs(path, [x])
    expected = ANCHOR_MODELS[rel]
    assert y.tobytes().hex()[:len(expected)] == expected


# ----------------------------------------------------------------- numpy re-run of a .tflite graph
ACTS = {"NONE": "none", "RELU": "relu", "RELU6": "relu6", "RELU_N1_TO_1": "relu_n1_to_1"}


def _q(t):
    return float(t.scales[0]), int(t.zero_points[0])


def _same_pads(size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    eff = (k - 1) * dil + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _conv_pads(padding: str, h: int, w: int, kh: int, kw: int, stride, dil):
    if padding == "VALID":
        return (0, 0, 0, 0)
    t, b = _same_pads(h, kh, stride[0], dil[0])
    l, r = _same_pads(w, kw, stride[1], dil[1])
    return (t, l, b, r)


def _nchw(shape):
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape


def run_with_int8_ref(path: Path, x: np.ndarray, K=R) -> np.ndarray:
    """Interpret the model with the int8 references (or, with K, kernels of the same signatures,
    e.g. s8_c_backend.CKernels); activations kept NCHW (as our IR)."""
    m = read_model(path)
    T = m.tensors
    env: dict[int, np.ndarray] = {}
    (inp,) = m.inputs
    env[inp] = np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x
    for op in m.operators:
        o = op.options
        ins = op.inputs
        out_t = T[op.outputs[0]]
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            a = env[ins[0]]
            wt = T[ins[1]]
            bias = T[ins[2]].data if len(ins) > 2 and ins[2] >= 0 else None
            s_in, zp_in = _q(T[ins[0]])
            s_out, zp_out = _q(out_t)
            stride = (o["StrideH"], o["StrideW"])
            dil = (o["DilationHFactor"], o["DilationWFactor"])
            if op.op == "CONV_2D":  # OHWI -> OIHW
                w = np.transpose(wt.data, (0, 3, 1, 2))
                groups = a.shape[1] // w.shape[1]
            else:  # 1HWC -> C 1 H W
                w = np.transpose(wt.data, (3, 0, 1, 2))
                groups = a.shape[1]
            pads = _conv_pads(o["padding"], a.shape[2], a.shape[3], w.shape[2], w.shape[3], stride, dil)
            p = R.conv_params(s_in, zp_in, wt.scales, s_out, zp_out, w.shape[0], act=ACTS[o["act"]],
                              stride=stride, dilation=dil, pads=pads, groups=groups)
            env[op.outputs[0]] = K.conv2d(a, w, bias, p)
        elif op.op == "FULLY_CONNECTED":
            a = env[ins[0]]
            wt = T[ins[1]]
            bias = T[ins[2]].data if len(ins) > 2 and ins[2] >= 0 else None
            s_in, zp_in = _q(T[ins[0]])
            s_out, zp_out = _q(out_t)
            p = R.fc_params(s_in, zp_in, wt.scales, s_out, zp_out, act=ACTS[o["act"]])
            env[op.outputs[0]] = K.fully_connected(a.reshape(-1, wt.shape[1]), wt.data, bias, p)
        elif op.op in ("ADD", "SUB"):
            (s1, z1), (s2, z2), (so, zo) = _q(T[ins[0]]), _q(T[ins[1]]), _q(out_t)
            p = R.add_params(s1, z1, s2, z2, so, zo, act=ACTS[o["act"]])
            fn = K.add if op.op == "ADD" else K.sub
            env[op.outputs[0]] = fn(env[ins[0]], env[ins[1]], p)
        elif op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            a = env[ins[0]]
            k = (o["FilterHeight"], o["FilterWidth"])
            stride = (o["StrideH"], o["StrideW"])
            pads = _conv_pads(o["padding"], a.shape[2], a.shape[3], k[0], k[1], stride, (1, 1))
            lo, hi = qmath.activation_range(ACTS[o["act"]], *_q(out_t))
            p = R.pool_params(k, stride=stride, pads=pads, act_min=lo, act_max=hi)
            env[op.outputs[0]] = K.avgpool(a, p) if op.op == "AVERAGE_POOL_2D" else K.maxpool(a, p)
        elif op.op == "SOFTMAX":
            p = R.softmax_params(_q(T[ins[0]])[0], o.get("Beta", 1.0))
            env[op.outputs[0]] = K.softmax(env[ins[0]], p, axis=-1)
        elif op.op == "RESHAPE":
            a = env[ins[0]]
            if a.ndim == 4:  # back to the file's NHWC order before flattening
                a = np.transpose(a, (0, 2, 3, 1))
            env[op.outputs[0]] = a.reshape(out_t.shape)
        elif op.op == "PAD":
            a = env[ins[0]]
            pads = T[ins[1]].data.astype(np.int64)  # NHWC
            nchw = pads[[0, 3, 1, 2]]
            env[op.outputs[0]] = np.pad(a, [tuple(v) for v in nchw], constant_values=_q(out_t)[1])
        elif op.op == "TRANSPOSE":
            a = env[ins[0]]
            perm = [int(v) for v in T[ins[1]].data]
            nhwc = np.transpose(a, (0, 2, 3, 1))
            env[op.outputs[0]] = np.transpose(nhwc, perm)  # the result keeps the file's layout
        elif op.op == "MEAN":
            a = env[ins[0]]
            axes = [int(v) for v in np.atleast_1d(T[ins[1]].data)]
            (si, zi), (so, zo) = _q(T[ins[0]]), _q(out_t)
            same = np.float32(si) == np.float32(so) and zi == zo
            if o.get("KeepDims") and a.ndim == 4 and sorted(axes) == [1, 2]:
                p = R.mean_params(si, zi, so, zo, "rescale")
                env[op.outputs[0]] = K.mean(a, (2, 3), p, keepdims=True)
            elif same:
                p = R.mean_params(si, zi, so, zo, "same")
                env[op.outputs[0]] = K.mean(a, axes, p, keepdims=bool(o.get("KeepDims")))
            else:
                raise NotImplementedError("MEAN with requantization on other axes")
        elif op.op == "QUANTIZE":
            a = env[ins[0]]
            so, zo = _q(out_t)
            if a.dtype == np.float32:  # TFLite: round half away from zero of x / scale, in float
                v = a / np.float32(so)
                q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
                env[op.outputs[0]] = np.clip(q + zo, -128, 127).astype(np.int8)
            else:
                p = R.requant_params(*_q(T[ins[0]]), so, zo)
                env[op.outputs[0]] = K.requantize(a, p)
        elif op.op == "DEQUANTIZE":
            si, zi = _q(T[ins[0]])
            env[op.outputs[0]] = ((env[ins[0]].astype(np.int32) - zi).astype(np.float32) * np.float32(si))
        else:
            raise NotImplementedError(op.op)
    (out,) = m.outputs
    y = env[out]
    return y.reshape(T[out].shape)


@pytest.mark.slow
@pytest.mark.parametrize("rel", sorted(ANCHOR_MODELS))
def test_int8_ref_bit_exact_with_tflm(rel):
    path = _model_path(rel)
    (detail,) = input_details(path)
    inputs = [anchor_input(detail["shape"], detail["dtype"])]
    rng = np.random.default_rng(len(rel))
    for _ in range(3):
        if np.dtype(detail["dtype"]) == np.float32:
            inputs.append(rng.random(detail["shape"], dtype=np.float32))
        else:
            inputs.append(rng.integers(-128, 128, detail["shape"]).astype(np.int8))
    for x in inputs:
        (expected,) = tflm_outputs(path, [x])
        got = run_with_int8_ref(path, x)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def c_kernels(tmp_path_factory):
    return CKernels(build_s8_library(tmp_path_factory.mktemp("s8_models")))


@pytest.mark.c
@pytest.mark.slow
@pytest.mark.parametrize("rel", sorted(ANCHOR_MODELS))
def test_int8_c_kernels_bit_exact_with_tflm(rel, c_kernels):
    path = _model_path(rel)
    (detail,) = input_details(path)
    rng = np.random.default_rng(100 + len(rel))
    if np.dtype(detail["dtype"]) == np.float32:
        random = rng.random(detail["shape"], dtype=np.float32)
    else:
        random = rng.integers(-128, 128, detail["shape"]).astype(np.int8)
    for x in (anchor_input(detail["shape"], detail["dtype"]), random):
        (expected,) = tflm_outputs(path, [x])
        np.testing.assert_array_equal(run_with_int8_ref(path, x, K=c_kernels), expected)
