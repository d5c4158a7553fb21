"""Adder (L1) layers: op references and C kernels, float32 and int8, host and Cortex-M4.

The references are checked against float64 / integer arithmetic; the C
kernels (runtime_c/o2m_adder.c) must equal the references bit for bit (the
float32 sum order is specified), over random shapes with strides, dilations
and padding; the Cortex-M4 build (USADA8 for int8) runs under QEMU.
"""
from __future__ import annotations

import ctypes
import shutil
from ctypes import Structure, c_int32, c_void_p

import numpy as np
import pytest

from c_harness import build_and_load, declare, ptr, runtime_dir
from onnx2mcu.ir import Node
from onnx2mcu.ops import lookup
from test_binary import HAVE_QEMU, c_array, run_on_qemu


class GemmParams(Structure):
    _fields_ = [("m", c_int32), ("n", c_int32), ("k", c_int32)]


class ConvParams(Structure):
    _fields_ = [(name, c_int32) for name in (
        "n", "c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "k_h", "k_w", "stride_h", "stride_w",
        "dil_h", "dil_w", "pad_top", "pad_left", "pad")]


@pytest.fixture(scope="module", params=["tiled", "untiled"])
def lib(tmp_path_factory, request):
    """The kernels as shipped, and built with O2M_ADDER_NO_TILING (the benchmark's baseline)."""
    defines = ["O2M_ADDER_NO_TILING"] if request.param == "untiled" else []
    lib = build_and_load([runtime_dir() / "o2m_adder.c"], tmp_path_factory.mktemp("addlib"), name="adder",
                         defines=defines)
    for suffix in ("f32", "s8"):
        declare(lib, f"o2m_adder_gemm_{suffix}", None, ctypes.POINTER(GemmParams), c_void_p, c_void_p,
                c_void_p, c_void_p, c_void_p)
        declare(lib, f"o2m_adder_conv_{suffix}", None, ctypes.POINTER(ConvParams), c_void_p, c_void_p,
                c_void_p, c_void_p, c_void_p, c_void_p)
    return lib


def data(rng, shape, dtype):
    if dtype == np.int8:
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.standard_normal(shape).astype(np.float32)


def matmul_node(with_scale=True):
    inputs = ["x", "w", "s", "b"] if with_scale else ["x", "w"]
    return Node("a", "AdderMatMul", inputs, ["y"], {}, "onnx2mcu")


def test_adder_matmul_reference():
    rng = np.random.default_rng(0)
    op = lookup("AdderMatMul", "onnx2mcu")
    x = data(rng, (2, 3, 37), np.float32)
    w = data(rng, (5, 37), np.float32)
    (y,) = op.reference(matmul_node(False), [x, w])
    expected = -np.abs(x.astype(np.float64)[..., None, :] - w.astype(np.float64)).sum(-1)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    xi, wi = data(rng, (4, 37), np.int8), data(rng, (6, 37), np.int8)
    s, b = rng.random(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    (yi,) = op.reference(matmul_node(), [xi, wi, s, b])
    exact = -np.abs(xi.astype(np.int64)[:, None, :] - wi.astype(np.int64)).sum(-1)
    np.testing.assert_array_equal(yi, (exact.astype(np.float32) * s).astype(np.float32) + b)


CONV_CASES = [  # (n, c, h, w, m, k, stride, pad (t, l, b, r), dilation)
    (1, 3, 6, 6, 4, 3, 1, (1, 1, 1, 1), 1),
    (1, 5, 7, 5, 6, 3, 2, (1, 0, 1, 2), 1),
    (2, 4, 5, 5, 3, 1, 1, (0, 0, 0, 0), 1),
    (1, 2, 8, 7, 5, 3, 1, (2, 2, 2, 2), 2),
    (1, 16, 6, 6, 8, 3, 1, (1, 1, 1, 1), 1),
    (1, 3, 9, 4, 2, 2, 3, (0, 1, 0, 0), 1),
]


def conv_attrs(k, stride, pad, dil, pad_value=0) -> dict:
    return {"kernel_shape": [k, k], "strides": [stride, stride], "pads": list(pad),
            "dilations": [dil, dil], "pad_value": pad_value}


def naive_conv(x, w, stride, pad, dil, pad_value):
    n, c, h, wd = x.shape
    m, _, k, _ = w.shape
    xp = np.full((n, c, h + pad[0] + pad[2], wd + pad[1] + pad[3]), pad_value, dtype=np.float64)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh = (xp.shape[2] - dil * (k - 1) - 1) // stride + 1
    ow = (xp.shape[3] - dil * (k - 1) - 1) // stride + 1
    y = np.zeros((n, m, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + dil * (k - 1) + 1:dil, j * stride:j * stride + dil * (k - 1) + 1:dil]
            y[:, :, i, j] = -np.abs(patch[:, None] - w[None].astype(np.float64)).sum(axis=(2, 3, 4))
    return y


@pytest.mark.parametrize("dtype", [np.float32, np.int8])
def test_adder_conv_reference(dtype):
    rng = np.random.default_rng(1)
    op = lookup("AdderConv", "onnx2mcu")
    for n, c, h, w, m, k, stride, pad, dil in CONV_CASES:
        x, wt = data(rng, (n, c, h, w), dtype), data(rng, (m, c, k, k), dtype)
        pv = 3 if dtype == np.int8 else 0
        nd = Node("c", "AdderConv", ["x", "w"], ["y"], conv_attrs(k, stride, pad, dil, pv), "onnx2mcu")
        (y,) = op.reference(nd, [x, wt])
        expected = naive_conv(x, wt, stride, pad, dil, pv)
        if dtype == np.int8:
            np.testing.assert_array_equal(y, expected.astype(np.float32))
        else:
            np.testing.assert_allclose(y, expected, rtol=1e-5)


KS = [1, 3, 4, 5, 17, 64, 127, 128, 130, 515]


@pytest.mark.parametrize("dtype", [np.float32, np.int8])
@pytest.mark.parametrize("k", KS)
def test_c_adder_gemm(lib, dtype, k):
    rng = np.random.default_rng(k)
    op = lookup("AdderMatMul", "onnx2mcu")
    suffix = "s8" if dtype == np.int8 else "f32"
    fn = getattr(lib, f"o2m_adder_gemm_{suffix}")
    for m, n in [(1, 1), (2, 3), (3, 4), (5, 9), (4, 8)]:
        x, w = data(rng, (m, k), dtype), data(rng, (n, k), dtype)
        s, b = rng.random(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        for with_scale in (False, True):
            y = np.zeros((m, n), dtype=np.float32)
            fn(ctypes.byref(GemmParams(m, n, k)), ptr(x), ptr(w), ptr(s) if with_scale else None,
               ptr(b) if with_scale else None, ptr(y))
            args = [x, w, s, b] if with_scale else [x, w]
            (ref,) = op.reference(matmul_node(with_scale), args)
            np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32))


def conv_params(case, pad_value=0):
    n, c, h, w, m, k, stride, pad, dil = case
    oh = (h + pad[0] + pad[2] - dil * (k - 1) - 1) // stride + 1
    ow = (w + pad[1] + pad[3] - dil * (k - 1) - 1) // stride + 1
    return ConvParams(n, c, h, w, m, oh, ow, k, k, stride, stride, dil, dil, pad[0], pad[1], pad_value), (oh, ow)


@pytest.mark.parametrize("dtype", [np.float32, np.int8])
@pytest.mark.parametrize("case", CONV_CASES)
def test_c_adder_conv(lib, dtype, case):
    n, c, h, w, m, k, stride, pad, dil = case
    rng = np.random.default_rng(sum(case[:6]))
    x, wt = data(rng, (n, c, h, w), dtype), data(rng, (m, c, k, k), dtype)
    s, b = rng.random(m).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    pv = -5 if dtype == np.int8 else 0
    params, (oh, ow) = conv_params(case, pv)
    suffix = "s8" if dtype == np.int8 else "f32"
    scratch = np.zeros(2 * c * k * k, dtype=dtype)
    y = np.zeros((n, m, oh, ow), dtype=np.float32)
    getattr(lib, f"o2m_adder_conv_{suffix}")(ctypes.byref(params), ptr(x), ptr(wt), ptr(s), ptr(b),
                                              ptr(scratch), ptr(y))
    nd = Node("c", "AdderConv", ["x", "w", "s", "b"], ["y"], conv_attrs(k, stride, pad, dil, pv), "onnx2mcu")
    (ref,) = lookup("AdderConv", "onnx2mcu").reference(nd, [x, wt, s, b])
    np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32))


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm / arm-none-eabi-gcc not installed")
def test_cortex_m4_int8_usada8_and_float_bit_exact(tmp_path):
    rng = np.random.default_rng(2)
    decls, body, expected = "", "", {}
    gemm = lookup("AdderMatMul", "onnx2mcu")
    for idx, (m, n, k, dtype) in enumerate([(3, 5, 33, np.int8), (2, 4, 128, np.int8), (5, 7, 6, np.int8),
                                            (3, 6, 21, np.float32), (4, 4, 64, np.float32)]):
        x, w = data(rng, (m, k), dtype), data(rng, (n, k), dtype)
        s, b = rng.random(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        ctype, suffix = ("int8_t", "s8") if dtype == np.int8 else ("float", "f32")
        decls += c_array(f"gx{idx}", x, ctype) + c_array(f"gw{idx}", w, ctype)
        decls += c_array(f"gs{idx}", s, "float") + c_array(f"gb{idx}", b, "float")
        decls += f"static float gy{idx}[{m * n}];\n"
        decls += f"static const o2m_adder_gemm_params gp{idx} = {{{m}, {n}, {k}}};\n"
        body += (f"    o2m_adder_gemm_{suffix}(&gp{idx}, gx{idx}, gw{idx}, gs{idx}, gb{idx}, gy{idx});\n"
                 f"    o2m_out_f32(\"gy{idx}\", gy{idx}, {m * n});\n")
        expected[f"gy{idx}"] = gemm.reference(matmul_node(), [x, w, s, b])[0]
    conv = lookup("AdderConv", "onnx2mcu")
    for idx, case in enumerate(CONV_CASES[:4]):
        for dtype in (np.int8, np.float32):
            n, c, h, w_, m, k, stride, pad, dil = case
            tag = f"{idx}{'i' if dtype == np.int8 else 'f'}"
            x, wt = data(rng, (n, c, h, w_), dtype), data(rng, (m, c, k, k), dtype)
            pv = 7 if dtype == np.int8 else 0
            params, (oh, ow) = conv_params(case, pv)
            fields = ", ".join(str(getattr(params, f)) for f, _ in ConvParams._fields_)
            ctype, suffix = ("int8_t", "s8") if dtype == np.int8 else ("float", "f32")
            decls += c_array(f"cx{tag}", x, ctype) + c_array(f"cw{tag}", wt, ctype)
            decls += f"static {ctype} cs{tag}[{2 * c * k * k}];\nstatic float cy{tag}[{n * m * oh * ow}];\n"
            decls += f"static const o2m_adder_conv_params cp{tag} = {{{fields}}};\n"
            body += (f"    o2m_adder_conv_{suffix}(&cp{tag}, cx{tag}, cw{tag}, NULL, NULL, cs{tag}, cy{tag});\n"
                     f"    o2m_out_f32(\"cy{tag}\", cy{tag}, {n * m * oh * ow});\n")
            nd = Node("c", "AdderConv", ["x", "w"], ["y"], conv_attrs(k, stride, pad, dil, pv), "onnx2mcu")
            expected[f"cy{tag}"] = conv.reference(nd, [x, wt])[0]
    out = run_on_qemu(tmp_path / "m4", body, decls, ["o2m_adder.c"])
    for name, ref in expected.items():
        np.testing.assert_array_equal(out[name].view(np.uint32), np.asarray(ref).reshape(-1).view(np.uint32),
                                      err_msg=name)
