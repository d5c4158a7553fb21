"""Binary (XNOR-popcount) layers: bit helpers, op references, C kernels (host and Cortex-M4).

The C kernels (runtime_c/o2m_binary.c) are built once with the host gcc and
called through ctypes; every result must equal the op library's numpy
reference bit for bit, over random shapes whose reduction lengths are not
multiples of 32, with strides, dilations and padding.  The references are in
turn checked against plain float arithmetic on +-1 values.  The Cortex-M4
build (USADA8 path) runs the same cases under QEMU.
"""
from __future__ import annotations

import ctypes
import shutil
from ctypes import Structure, c_int32, c_void_p
from pathlib import Path

import numpy as np
import pytest

from c_harness import CORTEX_M4_FLAGS, STRICT_CFLAGS, build_and_load, compile_objects, declare, ptr, runtime_dir
from onnx2mcu.ir import Node
from onnx2mcu.ops import lookup
from onnx2mcu.ops.binary import (finish_bits, finish_float, pack_bits, pack_signs, sign_bits, signs,
                                 unpack_bits, xnor_dot)
from onnx2mcu.ops.conv import _conv

HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = HAVE_ARM and shutil.which("qemu-system-arm") is not None


class GemmParams(Structure):
    _fields_ = [("m", c_int32), ("n", c_int32), ("k", c_int32)]


class ConvParams(Structure):
    _fields_ = [(name, c_int32) for name in (
        "n", "c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "k_h", "k_w", "stride_h", "stride_w",
        "dil_h", "dil_w", "pad_top", "pad_left")]


@pytest.fixture(scope="module", params=["tiled", "untiled"])
def lib(tmp_path_factory, request):
    """The kernels as shipped, and built with O2M_BINARY_NO_TILING (the benchmark's baseline)."""
    out = tmp_path_factory.mktemp("binlib")
    defines = ["O2M_BINARY_NO_TILING"] if request.param == "untiled" else []
    lib = build_and_load([runtime_dir() / "o2m_binary.c"], out, name="binary", defines=defines)
    declare(lib, "o2m_pack_bits_f32", None, c_int32, c_int32, c_int32, c_void_p, c_void_p)
    for name in ("o2m_binary_gemm_f32", "o2m_binary_gemm_bits"):
        declare(lib, name, None, ctypes.POINTER(GemmParams), c_void_p, c_void_p, c_void_p, c_void_p)
    for name in ("o2m_binary_conv_f32", "o2m_binary_conv_bits"):
        declare(lib, name, None, ctypes.POINTER(ConvParams), c_void_p, c_void_p, c_void_p, c_void_p)
    return lib


def node(op: str, **attrs) -> Node:
    return Node(op, op, ["x", "w", "p"], ["y"], attrs, "onnx2mcu")


def random_thresholds(rng, n: int, k: int) -> np.ndarray:
    thr = np.empty((n, 2), dtype=np.int32)
    thr[:, 0] = rng.choice([-1, 1], n)
    thr[:, 1] = rng.integers(-k - 1, k + 2, n)
    return thr


# ----------------------------------------------------------------- helpers
def test_sign_mapping_and_packing():
    x = np.array([0.0, -0.0, np.nan, -1e-30, 1e-30, -np.inf, np.inf, -2.0], dtype=np.float32)
    assert sign_bits(x).tolist() == [False, False, False, True, False, True, False, True]
    assert signs(x).tolist() == [1, 1, 1, -1, 1, -1, 1, -1]
    packed = pack_signs(x)
    assert packed.dtype == np.uint32 and packed.shape == (1,)
    assert int(packed[0]) == (1 << 3) | (1 << 5) | (1 << 7)
    rng = np.random.default_rng(0)
    for k in (1, 31, 32, 33, 95, 200):
        bits = rng.random((3, k)) < 0.5
        words = pack_bits(bits)
        assert words.shape == (3, (k + 31) // 32)
        np.testing.assert_array_equal(unpack_bits(words, k), bits)
        if k % 32:  # high bits of the last word stay 0
            assert not np.any(words[:, -1] >> np.uint32(k % 32))


def test_xnor_dot_equals_float_product():
    rng = np.random.default_rng(1)
    for k in (1, 7, 32, 45, 130):
        x = rng.standard_normal((5, k)).astype(np.float32)
        w = rng.standard_normal((6, k)).astype(np.float32)
        dot = xnor_dot(pack_signs(x), pack_signs(w), k)
        np.testing.assert_array_equal(dot, (signs(x) @ signs(w).T).astype(np.int32))


def test_binary_matmul_reference_matches_float_math():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 70)).astype(np.float32)
    x[0, 0, :5] = 0.0  # zeros binarize to +1
    w = rng.standard_normal((9, 70)).astype(np.float32)
    scale = rng.random(9).astype(np.float32)
    bias = rng.standard_normal(9).astype(np.float32)
    op = lookup("BinaryMatMul", "onnx2mcu")
    (y,) = op.reference(Node("b", "BinaryMatMul", ["x", "w", "s", "b"], ["y"], {}, "onnx2mcu"),
                        [x, w, scale, bias])
    dot = signs(x) @ signs(w).T
    expected = (dot.astype(np.float32) * scale).astype(np.float32) + bias
    np.testing.assert_array_equal(y, expected)


CONV_CASES = [  # (n, c, h, w, m, k, stride, pad (t, l, b, r), dilation)
    (1, 3, 5, 5, 4, 3, 1, (1, 1, 1, 1), 1),
    (1, 33, 6, 7, 5, 3, 2, (1, 0, 1, 2), 1),
    (2, 70, 4, 4, 3, 2, 1, (0, 0, 0, 0), 1),
    (1, 16, 7, 6, 7, 3, 1, (2, 2, 2, 2), 2),
    (1, 32, 8, 8, 6, 3, 1, (1, 1, 1, 1), 1),
    (1, 5, 9, 4, 2, 1, 3, (0, 0, 0, 0), 1),
    (1, 100, 5, 6, 9, 3, 2, (1, 1, 0, 0), 1),
    (1, 8, 2, 2, 3, 3, 1, (2, 2, 2, 2), 1),  # some pixels see no input at all
]


def conv_attrs(k, stride, pad, dil) -> dict:
    return {"kernel_shape": [k, k], "strides": [stride, stride], "pads": list(pad),
            "dilations": [dil, dil]}


def test_binary_conv_reference_matches_float_conv():
    rng = np.random.default_rng(3)
    op = lookup("BinaryConv", "onnx2mcu")
    for n, c, h, w, m, k, stride, pad, dil in CONV_CASES:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((m, c, k, k)).astype(np.float32)
        attrs = conv_attrs(k, stride, pad, dil)
        nd = Node("c", "BinaryConv", ["x", "w"], ["y"], attrs, "onnx2mcu")
        (y,) = op.reference(nd, [x, wt])
        (ref,) = _conv(Node("c", "Conv", ["x", "w"], ["y"], attrs), [signs(x), signs(wt)])
        np.testing.assert_array_equal(y, ref)


# ----------------------------------------------------------------- C kernels (host)
def test_c_pack_bits(lib):
    rng = np.random.default_rng(4)
    for shape, axis in [((3, 70), 1), ((2, 5, 3, 4), 1), ((1, 33, 2, 2), 1), ((4, 32), 1), ((2, 3, 9), 2)]:
        x = rng.standard_normal(shape).astype(np.float32)
        x.reshape(-1)[::7] = 0.0
        outer = int(np.prod(shape[:axis]))
        length = shape[axis]
        inner = int(np.prod(shape[axis + 1:]))
        expected = pack_signs(x, axis)
        y = np.zeros(expected.size, dtype=np.uint32)
        lib.o2m_pack_bits_f32(outer, length, inner, ptr(x), ptr(y))
        np.testing.assert_array_equal(y, expected.reshape(-1))


GEMM_KS = [1, 5, 31, 32, 33, 64, 100, 127, 128, 129, 160, 200, 257, 511, 600]


@pytest.mark.parametrize("k", GEMM_KS)
def test_c_binary_gemm(lib, k):
    rng = np.random.default_rng(k)
    op = lookup("XnorGemm", "onnx2mcu")
    for m, n in [(1, 1), (2, 3), (3, 4), (7, 5), (4, 9), (5, 33)]:
        x = pack_signs(rng.standard_normal((m, k)))
        w = pack_signs(rng.standard_normal((n, k)))
        aff = np.stack([rng.standard_normal(n), rng.standard_normal(n)], 1).astype(np.float32)
        p = GemmParams(m, n, k)
        y = np.zeros((m, n), dtype=np.float32)
        lib.o2m_binary_gemm_f32(ctypes.byref(p), ptr(x), ptr(w), ptr(aff), ptr(y))
        (ref,) = op.reference(node("XnorGemm", k=k, output="float"), [x, w, aff])
        np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32))
        np.testing.assert_array_equal(
            ref, finish_float((signs(unpack_bits(x, k) * -2 + 1) @ signs(unpack_bits(w, k) * -2 + 1).T)
                              .astype(np.int32), aff[:, 0], aff[:, 1]))
        thr = random_thresholds(rng, n, k)
        yb = np.full((m, (n + 31) // 32), 0xFFFFFFFF, dtype=np.uint32)  # kernel must clear it
        lib.o2m_binary_gemm_bits(ctypes.byref(p), ptr(x), ptr(w), ptr(thr), ptr(yb))
        (refb,) = op.reference(node("XnorGemm", k=k, output="bits"), [x, w, thr])
        np.testing.assert_array_equal(yb, refb)


def test_thresholds_equal_float_sign():
    rng = np.random.default_rng(5)
    dot = rng.integers(-50, 51, (4, 7)).astype(np.int32)
    thr = random_thresholds(rng, 7, 50)
    bits = unpack_bits(finish_bits(dot, thr), 7)
    np.testing.assert_array_equal(bits, thr[:, 0] * dot < thr[:, 1])


def conv_params(n, c, h, w, m, k, stride, pad, dil) -> tuple[ConvParams, tuple[int, int]]:
    oh = (h + pad[0] + pad[2] - dil * (k - 1) - 1) // stride + 1
    ow = (w + pad[1] + pad[3] - dil * (k - 1) - 1) // stride + 1
    return ConvParams(n, c, h, w, m, oh, ow, k, k, stride, stride, dil, dil, pad[0], pad[1]), (oh, ow)


@pytest.mark.parametrize("case", CONV_CASES)
def test_c_binary_conv(lib, case):
    n, c, h, w, m, k, stride, pad, dil = case
    rng = np.random.default_rng(sum(case[:6]))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((m, c, k, k)).astype(np.float32)
    xb = pack_signs(x, 1)
    wb = pack_signs(np.transpose(wt, (0, 2, 3, 1)))
    aff = np.stack([rng.standard_normal(m), rng.standard_normal(m)], 1).astype(np.float32)
    params, (oh, ow) = conv_params(*case)
    attrs = dict(conv_attrs(k, stride, pad, dil), channels=c)
    op = lookup("XnorConv", "onnx2mcu")
    y = np.zeros((n, m, oh, ow), dtype=np.float32)
    lib.o2m_binary_conv_f32(ctypes.byref(params), ptr(xb), ptr(wb), ptr(aff), ptr(y))
    (ref,) = op.reference(node("XnorConv", output="float", **attrs), [xb, wb, aff])
    np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32))
    # the lowered form equals the float-form op with scale/bias
    (user,) = lookup("BinaryConv", "onnx2mcu").reference(
        Node("c", "BinaryConv", ["x", "w", "s", "b"], ["y"], conv_attrs(k, stride, pad, dil), "onnx2mcu"),
        [x, wt, aff[:, 0].copy(), aff[:, 1].copy()])
    np.testing.assert_array_equal(ref, user)
    kk = c * k * k
    thr = random_thresholds(rng, m, kk)
    yb = np.full((n, oh, ow, (m + 31) // 32), 0xFFFFFFFF, dtype=np.uint32)
    lib.o2m_binary_conv_bits(ctypes.byref(params), ptr(xb), ptr(wb), ptr(thr), ptr(yb))
    (refb,) = op.reference(node("XnorConv", output="bits", **attrs), [xb, wb, thr])
    np.testing.assert_array_equal(yb, refb)


def test_c_binary_gemm_random_shapes(lib):
    """Hypothesis-style sweep with a fixed seed: many small random shapes."""
    rng = np.random.default_rng(6)
    op = lookup("XnorGemm", "onnx2mcu")
    for _ in range(60):
        m, n, k = (int(v) for v in (rng.integers(1, 9), rng.integers(1, 40), rng.integers(1, 700)))
        x = pack_bits(rng.random((m, k)) < 0.5)
        w = pack_bits(rng.random((n, k)) < 0.5)
        aff = rng.standard_normal((n, 2)).astype(np.float32)
        y = np.zeros((m, n), dtype=np.float32)
        lib.o2m_binary_gemm_f32(ctypes.byref(GemmParams(m, n, k)), ptr(x), ptr(w), ptr(aff), ptr(y))
        (ref,) = op.reference(node("XnorGemm", k=k, output="float"), [x, w, aff])
        np.testing.assert_array_equal(y.view(np.uint32), ref.view(np.uint32), err_msg=f"{m} {n} {k}")


# ----------------------------------------------------------------- Cortex-M builds
@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("cpu", [CORTEX_M4_FLAGS, ("-mcpu=cortex-m3", "-mthumb")])
@pytest.mark.parametrize("define", [(), ("-DO2M_BINARY_NO_TILING", "-DO2M_ADDER_NO_TILING")])
def test_cortex_m_builds_are_warning_free(tmp_path, cpu, define):
    compile_objects([runtime_dir() / "o2m_binary.c", runtime_dir() / "o2m_adder.c"], tmp_path,
                    cc="arm-none-eabi-gcc", cflags=STRICT_CFLAGS + ("-O2",) + tuple(cpu) + tuple(define))


def c_array(name: str, values: np.ndarray, ctype: str, const: bool = True) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [f"{float(v).hex()}f" if np.isfinite(v) else "0.0f" for v in flat.astype(np.float64)]
    else:
        items = [str(int(v)) + ("u" if ctype.startswith("u") else "") for v in flat]
    body = ",".join(items) or "0"
    qual = "const " if const else ""
    return f"static {qual}{ctype} {name}[{max(1, flat.size)}] = {{{body}}};\n"


def run_on_qemu(tmp_path: Path, body: str, decls: str, sources: list[str], flags=()) -> dict:
    """Build main() { body } with the given kernel sources for mps2-an386 and run it."""
    from onnx2mcu.codegen.board_project import write_board_files
    from onnx2mcu.simulator.run_c import build, run_qemu

    tmp_path.mkdir(parents=True, exist_ok=True)
    for src in sources:
        shutil.copy(runtime_dir() / src, tmp_path / src)
    for header in runtime_dir().glob("*.h"):
        shutil.copy(header, tmp_path / header.name)
    (tmp_path / "main.c").write_text(
        '#include <stdint.h>\n#include <stddef.h>\n#include "o2m_io.h"\n#include "o2m_kernels.h"\n'
        + decls + "int main(void)\n{\n" + body + "\n    o2m_done();\n    return 0;\n}\n")
    write_board_files("mps2-an386", tmp_path, ["main.c", *sources], extra_cflags=list(flags))
    build(tmp_path, "mps2-an386")
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, timeout=60)
    assert result.exit_code == 0, result.stderr
    return result.outputs()


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm / arm-none-eabi-gcc not installed")
def test_cortex_m4_usada8_path_bit_exact(tmp_path):
    """The DSP (USADA8) popcount on Cortex-M4 gives the reference's bits."""
    rng = np.random.default_rng(7)
    decls, body, expected = "", "", {}
    gemm = lookup("XnorGemm", "onnx2mcu")
    for idx, (m, n, k) in enumerate([(3, 5, 33), (2, 4, 128), (5, 7, 100), (3, 6, 517), (1, 3, 64)]):
        x = pack_bits(rng.random((m, k)) < 0.5)
        w = pack_bits(rng.random((n, k)) < 0.5)
        aff = rng.standard_normal((n, 2)).astype(np.float32)
        thr = random_thresholds(rng, n, k)
        decls += c_array(f"gx{idx}", x, "uint32_t") + c_array(f"gw{idx}", w, "uint32_t")
        decls += c_array(f"ga{idx}", aff, "float") + c_array(f"gt{idx}", thr, "int32_t")
        decls += f"static float gy{idx}[{m * n}];\nstatic uint32_t gb{idx}[{m * ((n + 31) // 32)}];\n"
        decls += f"static const o2m_binary_gemm_params gp{idx} = {{{m}, {n}, {k}}};\n"
        body += (f"    o2m_binary_gemm_f32(&gp{idx}, gx{idx}, gw{idx}, ga{idx}, gy{idx});\n"
                 f"    o2m_out_f32(\"gy{idx}\", gy{idx}, {m * n});\n"
                 f"    o2m_binary_gemm_bits(&gp{idx}, gx{idx}, gw{idx}, gt{idx}, gb{idx});\n"
                 f"    o2m_out_u32(\"gb{idx}\", gb{idx}, {m * ((n + 31) // 32)});\n")
        expected[f"gy{idx}"] = gemm.reference(node("XnorGemm", k=k, output="float"), [x, w, aff])[0]
        expected[f"gb{idx}"] = gemm.reference(node("XnorGemm", k=k, output="bits"), [x, w, thr])[0]
    conv = lookup("XnorConv", "onnx2mcu")
    for idx, case in enumerate(CONV_CASES[:5]):
        n, c, h, w_, m, k, stride, pad, dil = case
        xb = pack_bits(rng.random((n, h, w_, c)) < 0.5)
        wb = pack_bits(rng.random((m, k, k, c)) < 0.5)
        aff = rng.standard_normal((m, 2)).astype(np.float32)
        params, (oh, ow) = conv_params(*case)
        fields = ", ".join(str(getattr(params, f)) for f, _ in ConvParams._fields_)
        decls += c_array(f"cx{idx}", xb, "uint32_t") + c_array(f"cw{idx}", wb, "uint32_t")
        decls += c_array(f"ca{idx}", aff, "float")
        decls += f"static float cy{idx}[{n * m * oh * ow}];\n"
        decls += f"static const o2m_binary_conv_params cp{idx} = {{{fields}}};\n"
        body += (f"    o2m_binary_conv_f32(&cp{idx}, cx{idx}, cw{idx}, ca{idx}, cy{idx});\n"
                 f"    o2m_out_f32(\"cy{idx}\", cy{idx}, {n * m * oh * ow});\n")
        attrs = dict(conv_attrs(k, stride, pad, dil), channels=c)
        expected[f"cy{idx}"] = conv.reference(node("XnorConv", output="float", **attrs), [xb, wb, aff])[0]
    out = run_on_qemu(tmp_path / "m4", body, decls, ["o2m_binary.c"])
    for name, ref in expected.items():
        got = out[name]
        ref = np.asarray(ref).reshape(-1)
        if ref.dtype == np.float32:
            np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32), err_msg=name)
        else:
            np.testing.assert_array_equal(got.astype(np.uint32), ref.astype(np.uint32), err_msg=name)
