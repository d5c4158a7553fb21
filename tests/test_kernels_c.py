"""Unit tests of the runtime_c float32 kernels.

All of runtime_c/*.c is compiled once per session into a shared library
(host gcc, strict C99) and called through ctypes.  Each kernel is compared
with an independent numpy computation (float64 where it matters) and, when
the op library has a reference for the matching ONNX op, with that too.
A separate test compiles every source for Cortex-M4 with arm-none-eabi-gcc.
"""
from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
from ctypes import POINTER, Structure, c_float, c_int32, c_size_t, c_void_p

import numpy as np
import pytest

from c_harness import (
    CORTEX_M4_FLAGS,
    HOST_CFLAGS,
    STRICT_CFLAGS,
    build_and_load,
    compile_objects,
    declare,
    i32,
    ptr,
    runtime_dir,
    runtime_sources,
)

P, I, F = c_void_p, c_int32, c_float
F32, F64, I64 = np.float32, np.float64, np.int64


# ------------------------------------------------------------ C structures
class Act(Structure):
    _fields_ = [("kind", c_int32), ("min", c_float), ("max", c_float)]


class ConvParams(Structure):
    _fields_ = [(name, c_int32) for name in (
        "n", "c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "k_h", "k_w",
        "stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "groups")] + [("act", Act)]


class PoolParams(Structure):
    _fields_ = [(name, c_int32) for name in (
        "n", "c", "h_in", "w_in", "h_out", "w_out", "k_h", "k_w", "stride_h", "stride_w",
        "dil_h", "dil_w", "pad_top", "pad_left", "pad_bottom", "pad_right", "count_include_pad")]


class MatmulParams(Structure):
    _fields_ = [("m", c_int32), ("n", c_int32), ("k", c_int32), ("batch_rank", c_int32),
                ("batch_dims", c_int32 * 4), ("a_strides", c_int32 * 4), ("b_strides", c_int32 * 4),
                ("act", Act)]


class GemmParams(Structure):
    _fields_ = [("m", c_int32), ("n", c_int32), ("k", c_int32), ("trans_a", c_int32),
                ("trans_b", c_int32), ("alpha", c_float), ("beta", c_float),
                ("c_stride_m", c_int32), ("c_stride_n", c_int32), ("act", Act)]


STRUCTS = {"o2m_act": Act, "o2m_conv2d_params": ConvParams, "o2m_pool2d_params": PoolParams,
           "o2m_matmul_params": MatmulParams, "o2m_gemm_params": GemmParams}

PROBE_C = "#include <stddef.h>\n#include \"o2m_kernels.h\"\n" + "".join(
    f"size_t probe_sizeof_{name}(void);\nsize_t probe_sizeof_{name}(void) {{ return sizeof({name}); }}\n"
    for name in STRUCTS) + (
    "#include \"o2m_internal.h\"\nint probe_mac_fused(void);\n"
    "int probe_mac_fused(void) { return O2M_MAC_FUSED; }\n")

ACTS = {"none": (0, 0.0, 0.0), "relu": (1, 0.0, 0.0), "relu6": (2, 0.0, 0.0), "clip": (3, -0.5, 0.7)}


def apply_act(y: np.ndarray, act: str) -> np.ndarray:
    kind, lo, hi = ACTS[act]
    if kind == 1:
        return np.maximum(y, 0)
    if kind == 2:
        return np.clip(y, 0, 6)
    if kind == 3:
        return np.clip(y, lo, hi)
    return y


# ------------------------------------------------------------------- fixture
UNARY_NAMES = ["relu", "sigmoid", "tanh", "erf", "gelu", "gelu_tanh", "hardswish", "softplus",
               "softsign", "sqrt", "reciprocal", "exp", "log", "neg", "abs", "floor", "ceil",
               "round", "sign"]
BINARY_F32 = ["add", "sub", "mul", "div", "pow", "max", "min"]
BINARY_INT = ["add", "sub", "mul", "div", "max", "min"]
COMPARES = ["equal", "less", "greater", "less_equal", "greater_equal"]
LOGICAL = ["equal", "logical_and", "logical_or", "logical_xor"]
CASTS = ["f32_s64", "f32_s32", "f32_b8", "s64_f32", "s32_f32", "b8_f32", "s64_s32",
         "s32_s64", "s64_b8", "s32_b8", "b8_s64", "b8_s32"]


def _declare_all(lib: ctypes.CDLL) -> None:
    d = lambda name, *args: declare(lib, name, None, *args)  # noqa: E731
    for name in ("o2m_conv2d_f32", "o2m_conv2d_depthwise_f32", "o2m_conv2d_1x1_f32",
                 "o2m_conv2d_generic_f32", "o2m_conv2d_tiled_f32", "o2m_conv2d_depthwise_tiled_f32"):
        d(name, POINTER(ConvParams), P, P, P, P)
    d("o2m_maxpool2d_f32", POINTER(PoolParams), P, P)
    d("o2m_avgpool2d_f32", POINTER(PoolParams), P, P)
    d("o2m_global_avgpool_f32", I, I, P, P)
    d("o2m_global_maxpool_f32", I, I, P, P)
    d("o2m_matmul_f32", POINTER(MatmulParams), P, P, P, P)
    d("o2m_gemm_f32", POINTER(GemmParams), P, P, P, P)
    for name in UNARY_NAMES:
        d(f"o2m_{name}_f32", I, P, P)
    for name in ("neg_s64", "abs_s64", "neg_s32", "abs_s32", "not_b8"):
        d(f"o2m_{name}", I, P, P)
    d("o2m_clip_f32", I, P, P, F, F)
    d("o2m_hardsigmoid_f32", I, P, P, F, F)
    d("o2m_leakyrelu_f32", I, P, P, F)
    d("o2m_elu_f32", I, P, P, F)
    d("o2m_selu_f32", I, P, P, F, F)
    families = [(op, t) for op in BINARY_F32 for t in ["f32"]]
    families += [(op, t) for op in BINARY_INT for t in ["s64", "s32"]]
    families += [(op, t) for op in COMPARES for t in ["f32", "s64", "s32"]]
    families += [(op, "b8") for op in LOGICAL]
    for op, t in families:
        d(f"o2m_{op}_{t}", I, P, P, P)
        d(f"o2m_{op}_bc_{t}", I, I, I, P, P, I, P)
        d(f"o2m_{op}_nd_{t}", I, P, P, P, P, P, P)
    for t in ("f32", "s64", "s32"):
        d(f"o2m_where_nd_{t}", I, P, P, P, P, P, P, P, P)
    d("o2m_prelu_f32", I, P, P, P)
    d("o2m_prelu_bc_f32", I, I, I, P, P, P)
    d("o2m_prelu_nd_f32", I, P, P, P, P, P)
    d("o2m_softmax_f32", I, I, I, P, P)
    d("o2m_logsoftmax_f32", I, I, I, P, P)
    d("o2m_layernorm_f32", I, I, P, P, P, F, P)
    d("o2m_batchnorm_f32", I, I, I, P, P, P, P)
    d("o2m_batchnorm_stats_f32", I, I, I, P, P, P, P, P, F, P)
    d("o2m_reduce_f32", I, I, I, I, P, P)
    d("o2m_argmax_f32", I, I, I, P, I, P)
    d("o2m_argmin_f32", I, I, I, P, I, P)
    d("o2m_copy_nd", I, P, P, P, P, P, I)
    d("o2m_transpose", I, P, P, P, P, I)
    d("o2m_concat", I, I, P, P, P, I)
    d("o2m_split", I, I, P, P, P, I)
    d("o2m_pad", I, I, P, P, P, P, P, P, I)
    d("o2m_gather", I, I, I, I, P, P, P, I)
    d("o2m_gather_s32", I, I, I, I, P, P, P, I)
    d("o2m_depth_to_space", I, I, I, I, I, I, P, P, I)
    d("o2m_space_to_depth", I, I, I, I, I, P, P, I)
    for name in CASTS:
        d(f"o2m_cast_{name}", I, P, P)
    for t in ("s8", "u8"):
        d(f"o2m_quantize_{t}", I, I, I, P, P, P, P)
    for t in ("s8", "u8", "s32"):
        d(f"o2m_dequantize_{t}", I, I, I, P, P, P, P)
    for name in STRUCTS:
        declare(lib, f"probe_sizeof_{name}", c_size_t)


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("host gcc not installed")
    out = tmp_path_factory.mktemp("o2m_kernels")
    probe = out / "probe.c"
    probe.write_text(PROBE_C)
    flags = HOST_CFLAGS  # strict C99, -O2 -fPIC (+ sanitizers under ONNX2MCU_SANITIZE_KERNELS)
    library = build_and_load([*runtime_sources(), probe], out, name="o2m_kernels", cflags=flags,
                             include_dirs=[runtime_dir()])
    _declare_all(library)
    return library


# ---------------------------------------------------------------- helpers
def rng_for(*key) -> np.random.Generator:
    """A generator seeded from the test's parameters (stable across runs)."""
    seed = 1234567
    for ch in repr(key):
        seed = (seed * 131 + ord(ch)) % (2**32)
    return np.random.default_rng(seed)


def randf(rng, *shape, low=-1.0, high=1.0) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(F32)


def close(got, ref, rtol=1e-5, atol=None):
    ref = np.asarray(ref, dtype=F64)
    if atol is None:
        atol = 1e-5 * max(1.0, float(np.max(np.abs(ref)))) if ref.size else 0.0
    np.testing.assert_allclose(np.asarray(got, dtype=F64), ref, rtol=rtol, atol=atol)


def strides_of(a: np.ndarray) -> list[int]:
    """Element strides (may be 0 or negative)."""
    return [s // a.itemsize for s in a.strides]


def bcast_strides(a: np.ndarray, shape) -> np.ndarray:
    return i32(strides_of(np.broadcast_to(a, shape)))


def lib_ref(op_type: str, inputs: list, attrs: dict | None = None, n_out: int = 1):
    """Outputs of the op library's reference for op_type, or None when it has none."""
    try:
        from onnx2mcu.ir import Node
        from onnx2mcu.ops import lookup

        op = lookup(op_type)
    except Exception:  # the op library is optional for these tests
        return None
    if op is None:
        return None
    node = Node(name=f"test_{op_type}", op_type=op_type,
                inputs=[f"in{k}" if a is not None else "" for k, a in enumerate(inputs)],
                outputs=[f"out{k}" for k in range(n_out)], attrs=dict(attrs or {}))
    return op.reference(node, list(inputs))


# =================================================================== build
def test_struct_layouts_match_ctypes(lib):
    for name, struct in STRUCTS.items():
        assert getattr(lib, f"probe_sizeof_{name}")() == ctypes.sizeof(struct), name


ARM_CC = "arm-none-eabi-gcc"
# libm and the compiler's helpers are the only things the kernels may call
ALLOWED_UNDEFINED = {"memcpy", "memset", "memmove", "acos", "acosh", "asin", "asinh", "atan", "atanh",
                     "cos", "cosh", "exp", "log", "log1p", "pow", "sin", "sinh", "sqrt", "tan", "tanh", "expf", "logf", "log1pf", "expm1f", "powf", "sqrtf",
                     "tanhf", "erff", "floorf", "ceilf", "fmodf", "fabsf"}


@pytest.mark.skipif(shutil.which(ARM_CC) is None, reason="arm-none-eabi-gcc not installed")
def test_compiles_for_cortex_m4(tmp_path):
    flags = (*CORTEX_M4_FLAGS, *STRICT_CFLAGS, "-O2", "-Wvla", "-Wmissing-prototypes",
             "-ffunction-sections")
    objects = compile_objects(runtime_sources(), tmp_path, cc=ARM_CC, cflags=flags)
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        return
    # a kernel may call another runtime kernel (its emitter then needs both sources)
    runtime_defined = set()
    for obj in objects:
        out = subprocess.run([nm, "--defined-only", "-g", str(obj)], capture_output=True, text=True,
                             check=True).stdout
        runtime_defined |= {line.split()[-1] for line in out.splitlines() if line.strip()}
    for obj in objects:
        out = subprocess.run([nm, "-u", str(obj)], capture_output=True, text=True, check=True).stdout
        undefined = {line.split()[-1] for line in out.splitlines() if line.strip()}
        unexpected = {s for s in undefined if s not in ALLOWED_UNDEFINED and s not in runtime_defined
                      and not s.startswith("__aeabi")}
        assert not unexpected, f"{obj.name} calls {sorted(unexpected)} (no malloc, no stdio)"


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_header_usable_from_cplusplus(tmp_path):
    src = tmp_path / "use.cpp"
    src.write_text('#include "o2m_kernels.h"\nint main() { return 0; }\n')
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only",
                    f"-I{runtime_dir()}", str(src)], check=True, capture_output=True)


# ==================================================================== conv
def conv_ref(x, w, b, strides, dils, pads, groups):
    """float64 grouped convolution, NCHW / OIHW, pads (top, left, bottom, right)."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dils
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((n, c, h + pt + pb + sh * 2 + dh * kh, wd + pl + pr + sw * 2 + dw * kw))
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    out = np.zeros((n, k, oh, ow))
    kg = k // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch,
                                                         w[g * kg:(g + 1) * kg, :, i, j].astype(F64))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


CONV_CASES = {
    # name: (n, cin, h, w, cout, kh, kw, strides, dils, pads(t, l, b, r), groups, bias, act)
    "general3x3": (1, 3, 7, 9, 5, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1, True, "none"),
    "stride2_asym_pads": (2, 4, 9, 8, 6, 3, 3, (2, 2), (1, 1), (0, 1, 2, 1), 1, True, "relu"),
    "dilated": (1, 3, 11, 13, 7, 3, 3, (1, 2), (2, 3), (2, 3, 2, 3), 1, False, "relu6"),
    "groups3": (1, 6, 7, 7, 9, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 3, True, "clip"),
    "groups_odd_cout": (1, 4, 6, 6, 6, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 2, True, "none"),
    "depthwise": (1, 5, 9, 11, 5, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 5, True, "relu6"),
    "depthwise_s2_5x5": (2, 7, 10, 13, 7, 5, 5, (2, 2), (1, 1), (2, 1, 1, 2), 7, True, "none"),
    "depthwise_mult2_dil": (1, 3, 9, 9, 6, 3, 3, (1, 1), (2, 2), (2, 2, 2, 2), 3, False, "relu"),
    "depthwise_wide_rows": (1, 3, 4, 37, 3, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 3, True, "none"),
    "pointwise": (1, 17, 5, 7, 13, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1, True, "none"),
    "pointwise_tail": (2, 3, 1, 3, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1, True, "relu"),
    "pointwise_stride2": (1, 4, 7, 7, 3, 1, 1, (2, 2), (1, 1), (0, 0, 0, 0), 1, True, "none"),
    "conv1d": (1, 5, 1, 17, 7, 1, 5, (1, 2), (1, 1), (0, 2, 0, 1), 1, True, "none"),
    "kernel_larger_than_input": (1, 2, 3, 3, 3, 5, 5, (1, 1), (1, 1), (2, 2, 2, 2), 1, True, "none"),
    "single_input_channel": (1, 1, 8, 8, 4, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1, True, "none"),
    "stride3_end_pads": (1, 3, 10, 10, 2, 2, 3, (3, 3), (1, 1), (0, 0, 2, 2), 1, False, "none"),
    "wide_rows": (1, 2, 5, 31, 3, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1, True, "none"),
}


def conv_params(case) -> tuple[ConvParams, tuple[int, int]]:
    n, cin, h, w, cout, kh, kw, (sh, sw), (dh, dw), (pt, pl, pb, pr), groups, _, act = case
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    p = ConvParams(n, cin, h, w, cout, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, groups, Act(*ACTS[act]))
    return p, (oh, ow)


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv2d(lib, name):
    case = CONV_CASES[name]
    n, cin, h, w, cout, kh, kw, strides, dils, pads, groups, has_bias, act = case
    rng = rng_for("conv", name)
    x = randf(rng, n, cin, h, w)
    wt = randf(rng, cout, cin // groups, kh, kw)
    b = randf(rng, cout) if has_bias else None
    p, (oh, ow) = conv_params(case)
    y = np.full((n, cout, oh, ow), np.nan, F32)
    lib.o2m_conv2d_f32(ctypes.byref(p), ptr(x), ptr(wt), ptr(b), ptr(y))
    ref = apply_act(conv_ref(x, wt, b, strides, dils, pads, groups), act)
    close(y, ref)

    # every path computes each output in the same order: identical bits
    y_gen = np.full_like(y, np.nan)
    lib.o2m_conv2d_generic_f32(ctypes.byref(p), ptr(x), ptr(wt), ptr(b), ptr(y_gen))
    np.testing.assert_array_equal(y_gen, y)
    if cin // groups == 1 and groups == cin:
        y_dw = np.full_like(y, np.nan)
        lib.o2m_conv2d_depthwise_f32(ctypes.byref(p), ptr(x), ptr(wt), ptr(b), ptr(y_dw))
        np.testing.assert_array_equal(y_dw, y)
        y_dwt = np.full_like(y, np.nan)
        lib.o2m_conv2d_depthwise_tiled_f32(ctypes.byref(p), ptr(x), ptr(wt), ptr(b), ptr(y_dwt))
        close(y_dwt, ref)
        if not lib.probe_mac_fused():
            np.testing.assert_array_equal(y_dwt, y)
    if (kh, kw, strides, pads, groups) == (1, 1, (1, 1), (0, 0, 0, 0), 1):
        y_pw = np.full_like(y, np.nan)
        lib.o2m_conv2d_1x1_f32(ctypes.byref(p), ptr(x), ptr(wt), ptr(b), ptr(y_pw))
        np.testing.assert_array_equal(y_pw, y)
    # the register-tiled kernel: the same order; without a fused multiply-add (the host
    # build) the same bits too (tests/test_conv_tiled.py runs it under QEMU with VFMA)
    y_tiled = np.full_like(y, np.nan)
    lib.o2m_conv2d_tiled_f32(ctypes.byref(p), ptr(x), ptr(wt), ptr(b), ptr(y_tiled))
    close(y_tiled, ref)
    if not lib.probe_mac_fused():
        np.testing.assert_array_equal(y_tiled, y)

    attrs = {"kernel_shape": [kh, kw], "strides": list(strides), "dilations": list(dils),
             "pads": [pads[0], pads[1], pads[2], pads[3]], "group": groups}
    other = lib_ref("Conv", [x, wt, b], attrs)
    if other is not None:
        close(y, apply_act(np.asarray(other[0], F64), act))


# ================================================================= pooling
def pool_out(size, k, s, d, b, e, ceil):
    span = size + b + e - ((k - 1) * d + 1)
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= size + b:
        o -= 1
    return o


def pool_ref(x, kind, k, s, d, pads, out_hw, include_pad):
    n, c, h, w = x.shape
    pt, pl, pb, pr = pads
    oh, ow = out_hw
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = [i * s[0] - pt + a * d[0] for a in range(k[0])]
            cols = [j * s[1] - pl + b * d[1] for b in range(k[1])]
            vr = [r for r in rows if 0 <= r < h]
            vc = [q for q in cols if 0 <= q < w]
            win = x[:, :, vr][:, :, :, vc].astype(F64)
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                if include_pad:
                    cnt = sum(-pt <= r < h + pb for r in rows) * sum(-pl <= q < w + pr for q in cols)
                else:
                    cnt = len(vr) * len(vc)
                y[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return y


POOL_CASES = {
    # name: (n, c, h, w, k, strides, dils, pads(t, l, b, r), ceil_mode)
    "2x2s2": (1, 3, 8, 8, (2, 2), (2, 2), (1, 1), (0, 0, 0, 0), False),
    "3x3s2p1": (2, 3, 9, 9, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), False),
    "ceil_mode": (1, 2, 7, 8, (3, 3), (2, 2), (1, 1), (0, 0, 0, 0), True),
    "ceil_mode_pads": (1, 2, 6, 6, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), True),
    "asym_pads": (1, 3, 7, 5, (3, 2), (1, 2), (1, 1), (1, 0, 2, 1), False),
    "dilated": (1, 2, 11, 11, (3, 3), (2, 1), (2, 2), (2, 2, 2, 2), False),
    "pool1d": (1, 4, 1, 17, (1, 3), (1, 2), (1, 1), (0, 1, 0, 1), True),
}


@pytest.mark.parametrize("kind", ["max", "avg", "avg_include_pad"])
@pytest.mark.parametrize("name", POOL_CASES)
def test_pool2d(lib, name, kind):
    n, c, h, w, k, s, d, pads, ceil = POOL_CASES[name]
    include_pad = kind == "avg_include_pad"
    rng = rng_for("pool", name)
    x = randf(rng, n, c, h, w)
    pt, pl, pb, pr = pads
    oh = pool_out(h, k[0], s[0], d[0], pt, pb, ceil)
    ow = pool_out(w, k[1], s[1], d[1], pl, pr, ceil)
    p = PoolParams(n, c, h, w, oh, ow, k[0], k[1], s[0], s[1], d[0], d[1], pt, pl, pb, pr,
                   int(include_pad))
    y = np.full((n, c, oh, ow), np.nan, F32)
    fn = lib.o2m_maxpool2d_f32 if kind == "max" else lib.o2m_avgpool2d_f32
    fn(ctypes.byref(p), ptr(x), ptr(y))
    close(y, pool_ref(x, "max" if kind == "max" else "avg", k, s, d, pads, (oh, ow), include_pad))

    attrs = {"kernel_shape": list(k), "strides": list(s), "pads": [pt, pl, pb, pr],
             "ceil_mode": int(ceil)}
    if d != (1, 1):
        attrs["dilations"] = list(d)
    if kind != "max":
        attrs["count_include_pad"] = int(include_pad)
    other = lib_ref("MaxPool" if kind == "max" else "AveragePool", [x], attrs)
    if other is not None:
        close(y, other[0])


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 17, 1, 1), (1, 1, 4, 9)])
def test_global_pools(lib, shape):
    rng = rng_for("gpool", shape)
    x = randf(rng, *shape)
    nc, hw = shape[0] * shape[1], shape[2] * shape[3]
    ya = np.zeros(shape[:2], F32)
    ym = np.zeros(shape[:2], F32)
    lib.o2m_global_avgpool_f32(nc, hw, ptr(x), ptr(ya))
    lib.o2m_global_maxpool_f32(nc, hw, ptr(x), ptr(ym))
    close(ya, x.astype(F64).mean(axis=(2, 3)))
    np.testing.assert_array_equal(ym, x.max(axis=(2, 3)))
    for op, got in (("GlobalAveragePool", ya), ("GlobalMaxPool", ym)):
        other = lib_ref(op, [x])
        if other is not None:
            close(got, np.asarray(other[0]).reshape(got.shape))


# ================================================================= linalg
MATMUL_CASES = {
    "plain": ((5, 7), (7, 9), True, "relu"),
    "odd_tails": ((3, 17, 16), (16, 17), False, "none"),
    "batch_b_broadcast": ((3, 5, 7), (7, 4), True, "none"),
    "batch_a_broadcast": ((5, 7), (3, 7, 9), False, "clip"),
    "batch_both": ((2, 1, 3, 4), (1, 3, 4, 5), True, "relu6"),
    "batch_4d": ((4, 2, 6, 8), (4, 1, 8, 3), False, "none"),
    "one_by_one": ((1, 1), (1, 1), True, "none"),
    "attention_like": ((2, 2, 9, 16), (2, 2, 16, 9), False, "none"),
}


def matmul_batch_strides(x: np.ndarray, out_batch: tuple[int, ...]) -> list[int]:
    """Element stride of each output batch dim in x (0 where x broadcasts)."""
    mat = x.shape[-2] * x.shape[-1]
    xb = x.shape[:-2]
    dense = [int(np.prod(xb[i + 1:], dtype=np.int64)) * mat for i in range(len(xb))]
    out = []
    for dim in range(len(out_batch)):
        i = dim - (len(out_batch) - len(xb))
        out.append(0 if i < 0 or xb[i] == 1 else dense[i])
    return out


@pytest.mark.parametrize("name", MATMUL_CASES)
def test_matmul(lib, name):
    a_shape, b_shape, has_bias, act = MATMUL_CASES[name]
    rng = rng_for("matmul", name)
    a = randf(rng, *a_shape)
    b = randf(rng, *b_shape)
    m, k = a_shape[-2:]
    n = b_shape[-1]
    bias = randf(rng, n) if has_bias else None
    out_batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    p = MatmulParams()
    p.m, p.n, p.k, p.batch_rank = m, n, k, len(out_batch)
    for i, (dim, sa, sb) in enumerate(zip(out_batch, matmul_batch_strides(a, out_batch),
                                          matmul_batch_strides(b, out_batch))):
        p.batch_dims[i], p.a_strides[i], p.b_strides[i] = dim, sa, sb
    p.act = Act(*ACTS[act])
    y = np.full(out_batch + (m, n), np.nan, F32)
    lib.o2m_matmul_f32(ctypes.byref(p), ptr(a), ptr(b), ptr(bias), ptr(y))
    ref = np.matmul(a.astype(F64), b.astype(F64))
    if bias is not None:
        ref = ref + bias
    close(y, apply_act(ref, act))
    other = lib_ref("MatMul", [a, b])
    if other is not None:
        lib_y = np.asarray(other[0], F64) + (bias if bias is not None else 0)
        close(y, apply_act(lib_y, act))


GEMM_CASES = {
    "no_c": (5, 7, 9, 0, 0, 1.0, 1.0, None),
    "bias_row": (4, 9, 6, 0, 1, 1.0, 1.0, (9,)),
    "trans_a": (7, 5, 3, 1, 0, 0.5, 2.0, (7, 5)),
    "trans_both_col_c": (3, 6, 17, 1, 1, -1.5, 0.25, (3, 1)),
    "scalar_c": (1, 10, 8, 0, 0, 1.0, -1.0, ()),
    "row_c_2d": (6, 4, 5, 0, 1, 2.0, 1.0, (1, 4)),
    "one_c": (2, 3, 1, 0, 0, 1.0, 3.0, (1, 1)),
}


@pytest.mark.parametrize("act", ["none", "relu"])
@pytest.mark.parametrize("name", GEMM_CASES)
def test_gemm(lib, name, act):
    m, n, k, ta, tb, alpha, beta, c_shape = GEMM_CASES[name]
    rng = rng_for("gemm", name)
    a = randf(rng, *((k, m) if ta else (m, k)))
    b = randf(rng, *((n, k) if tb else (k, n)))
    c = None if c_shape is None else randf(rng, *c_shape)
    cs = [0, 0] if c is None else strides_of(np.broadcast_to(c, (m, n)))
    p = GemmParams(m, n, k, ta, tb, alpha, beta, cs[0], cs[1], Act(*ACTS[act]))
    y = np.full((m, n), np.nan, F32)
    lib.o2m_gemm_f32(ctypes.byref(p), ptr(a), ptr(b), ptr(c), ptr(y))
    aa = a.astype(F64).T if ta else a.astype(F64)
    bb = b.astype(F64).T if tb else b.astype(F64)
    ref = alpha * (aa @ bb) + (0 if c is None else beta * c.astype(F64))
    close(y, apply_act(ref, act))
    attrs = {"alpha": alpha, "beta": beta, "transA": ta, "transB": tb}
    other = lib_ref("Gemm", [a, b, c], attrs)
    if other is not None:
        close(y, apply_act(np.asarray(other[0], F64), act))


# ============================================================ elementwise
def binary_operands(rng, op: str, dtype, a_shape, b_shape):
    if dtype == F32:
        a = randf(rng, *a_shape, low=-3, high=3)
        b = randf(rng, *b_shape, low=-3, high=3)
        if op == "pow":
            a = np.abs(a) + F32(0.25)
        if op == "div":
            b = np.where(np.abs(b) < 0.25, F32(0.5), b).astype(F32)
    else:
        a = rng.integers(-50, 50, size=a_shape).astype(dtype)
        b = rng.integers(-9, 9, size=b_shape).astype(dtype)
        if op == "div":
            b = np.where(b == 0, 3, b).astype(dtype)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def binary_np(op: str, a, b):
    if op == "div" and np.issubdtype(a.dtype, np.integer):
        return np.trunc(a.astype(F64) / b.astype(F64)).astype(a.dtype)
    fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
          "pow": np.power, "max": np.maximum, "min": np.minimum, "equal": np.equal,
          "less": np.less, "greater": np.greater, "less_equal": np.less_equal,
          "greater_equal": np.greater_equal, "logical_and": np.logical_and,
          "logical_or": np.logical_or, "logical_xor": np.logical_xor}[op]
    if a.dtype == F32 and op not in COMPARES:
        return fn(a.astype(F64), b.astype(F64))
    return fn(a, b)


def check_binary(got, ref):
    if got.dtype == F32:
        close(got, ref)
    else:
        np.testing.assert_array_equal(got, np.asarray(ref).astype(got.dtype))


ONNX_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "max": "Max",
               "min": "Min", "equal": "Equal", "less": "Less", "greater": "Greater",
               "less_equal": "LessOrEqual", "greater_equal": "GreaterOrEqual",
               "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}

TYPES = {"f32": F32, "s64": I64, "s32": np.int32, "b8": np.uint8}
BINARY_FAMILIES = ([(op, "f32") for op in BINARY_F32] + [(op, t) for op in BINARY_INT for t in ("s64", "s32")]
                   + [(op, t) for op in COMPARES for t in ("f32", "s64", "s32")]
                   + [(op, "b8") for op in LOGICAL])
ND_SHAPES = [
    ((2, 3, 4, 5), (3, 1, 5)),
    ((1,), (4, 3)),
    ((), (2, 3)),
    ((6, 1, 5, 1, 3, 2), (1, 4, 1, 2, 1, 2)),
    ((7, 1), (1, 9)),
    ((17,), (17,)),
]


def make_operands(rng, op, t, a_shape, b_shape):
    dtype = TYPES[t]
    if t == "b8":
        return (rng.integers(0, 2, size=a_shape).astype(np.uint8),
                rng.integers(0, 2, size=b_shape).astype(np.uint8))
    if op in COMPARES and t == "f32":  # small integers so that ties occur
        return (rng.integers(-2, 3, size=a_shape).astype(F32),
                rng.integers(-2, 3, size=b_shape).astype(F32))
    return binary_operands(rng, op, dtype, a_shape, b_shape)


def out_dtype(op, t):
    return np.uint8 if op in COMPARES or t == "b8" else TYPES[t]


@pytest.mark.parametrize("op,t", BINARY_FAMILIES)
def test_binary_same_shape_and_inplace(lib, op, t):
    rng = rng_for("bin_same", op, t)
    a, b = make_operands(rng, op, t, (17,), (17,))
    ref = binary_np(op, a, b)
    y = np.zeros(17, out_dtype(op, t))
    getattr(lib, f"o2m_{op}_{t}")(17, ptr(a), ptr(b), ptr(y))
    check_binary(y, ref)
    if y.dtype == a.dtype:  # in place on either operand
        a2, b2 = a.copy(), b.copy()
        getattr(lib, f"o2m_{op}_{t}")(17, ptr(a2), ptr(b), ptr(a2))
        getattr(lib, f"o2m_{op}_{t}")(17, ptr(a), ptr(b2), ptr(b2))
        check_binary(a2, ref)
        check_binary(b2, ref)


@pytest.mark.parametrize("v_first", [0, 1])
@pytest.mark.parametrize("view", [(1, 1, 17), (3, 5, 1), (2, 3, 7)])
@pytest.mark.parametrize("op,t", [(op, "f32") for op in BINARY_F32] + [("sub", "s64"), ("div", "s32"),
                                                                      ("less", "f32"), ("greater_equal", "s64")])
def test_binary_channel_broadcast(lib, op, t, view, v_first):
    outer, mid, inner = view
    rng = rng_for("bin_bc", op, t, view, v_first)
    x, v = make_operands(rng, op, t, view, (mid,))
    if v_first:  # the broadcast operand is the left one
        v, x = make_operands(rng, op, t, (mid,), view)
    vb = v.reshape(1, mid, 1)
    ref = binary_np(op, vb, x) if v_first else binary_np(op, x, vb)
    y = np.zeros(view, out_dtype(op, t))
    fn = getattr(lib, f"o2m_{op}_bc_{t}")
    fn(outer, mid, inner, ptr(x), ptr(v), v_first, ptr(y))
    check_binary(y, ref)
    if y.dtype == x.dtype:
        fn(outer, mid, inner, ptr(x), ptr(v), v_first, ptr(x))
        check_binary(x, ref)


@pytest.mark.parametrize("shapes", ND_SHAPES, ids=[f"{a}x{b}" for a, b in ND_SHAPES])
@pytest.mark.parametrize("op,t", BINARY_FAMILIES)
def test_binary_nd_broadcast(lib, op, t, shapes):
    a_shape, b_shape = shapes
    rng = rng_for("bin_nd", op, t, shapes)
    a, b = make_operands(rng, op, t, a_shape, b_shape)
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    ref = binary_np(op, a, b)
    y = np.zeros(out_shape, out_dtype(op, t))
    fn = getattr(lib, f"o2m_{op}_nd_{t}")
    fn(len(out_shape), ptr(i32(out_shape)), ptr(bcast_strides(a, out_shape)),
       ptr(bcast_strides(b, out_shape)), ptr(a), ptr(b), ptr(y))
    check_binary(y, ref)
    if a.shape == out_shape and y.dtype == a.dtype:  # in place on the full operand
        fn(len(out_shape), ptr(i32(out_shape)), ptr(bcast_strides(a, out_shape)),
           ptr(bcast_strides(b, out_shape)), ptr(a), ptr(b), ptr(a))
        check_binary(a, ref)


def test_binary_nd_negative_strides(lib):
    rng = rng_for("bin_neg")
    base_a = randf(rng, 4, 9)
    base_b = randf(rng, 9)
    a = base_a[::-1, ::-2]  # negative strides on both dims
    b = base_b[::-2]
    out_shape = a.shape
    y = np.zeros(out_shape, F32)
    lib.o2m_sub_nd_f32(2, ptr(i32(out_shape)), ptr(i32(strides_of(a))),
                       ptr(bcast_strides(b, out_shape)),
                       c_void_p(a.ctypes.data), c_void_p(b.ctypes.data), ptr(y))
    close(y, a.astype(F64) - b.astype(F64))


def test_binary_library_agreement(lib):
    """Same-shape and broadcast results against the op library, op by op."""
    rng = rng_for("bin_lib")
    for op, t in BINARY_FAMILIES:
        a, b = make_operands(rng, op, t, (2, 3, 4), (3, 1))
        if t == "b8":
            a, b = a.astype(bool), b.astype(bool)
        other = lib_ref(ONNX_BINARY[op], [a, b])
        if other is None:
            continue
        out_shape = (2, 3, 4)
        y = np.zeros(out_shape, out_dtype(op, t))
        au, bu = (a.astype(np.uint8), b.astype(np.uint8)) if t == "b8" else (a, b)
        getattr(lib, f"o2m_{op}_nd_{t}")(3, ptr(i32(out_shape)), ptr(bcast_strides(au, out_shape)),
                                         ptr(bcast_strides(bu, out_shape)), ptr(au), ptr(bu), ptr(y))
        check_binary(y, np.asarray(other[0]))


WHERE_SHAPES = [((2, 1, 5), (3, 1), (2, 3, 5)), ((2, 3, 5), (2, 3, 5), (3, 1)), ((4, 1), (), (4, 6))]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=["b_dense", "b_broadcast", "scalar_a"])
@pytest.mark.parametrize("t", ["f32", "s64", "s32"])
def test_where(lib, t, shapes):
    c_shape, a_shape, b_shape = shapes
    rng = rng_for("where", t, shapes)
    dtype = TYPES[t]
    cond = rng.integers(0, 2, size=c_shape).astype(np.uint8)
    a = np.ascontiguousarray((rng.standard_normal(a_shape) * 10).astype(dtype))
    b = np.ascontiguousarray((rng.standard_normal(b_shape) * 10).astype(dtype))
    shape = np.broadcast_shapes(c_shape, a_shape, b_shape)
    ref = np.where(cond.astype(bool), a, b)
    y = np.zeros(shape, dtype)
    fn = getattr(lib, f"o2m_where_nd_{t}")

    def call(out):
        fn(len(shape), ptr(i32(shape)), ptr(bcast_strides(cond, shape)), ptr(bcast_strides(a, shape)),
           ptr(bcast_strides(b, shape)), ptr(cond), ptr(a), ptr(b), ptr(out))

    call(y)
    np.testing.assert_array_equal(y, ref)
    other = lib_ref("Where", [cond.astype(bool), a, b])
    if other is not None:
        np.testing.assert_array_equal(y, other[0])
    for dense in (a, b):  # in place on an operand dense with the output's shape
        if dense.shape == shape:
            call(dense)
            np.testing.assert_array_equal(dense, ref)
            break


# ------------------------------------------------------------------ unary
def _erf64(x):
    return np.vectorize(math.erf, otypes=[F64])(x)


UNARY = {
    # name: (numpy float64 reference, input range, onnx op, attrs)
    "relu": (lambda x: np.maximum(x, 0), (-3, 3), "Relu", {}),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), (-30, 30), "Sigmoid", {}),
    "tanh": (np.tanh, (-5, 5), "Tanh", {}),
    "erf": (_erf64, (-3, 3), "Erf", {}),
    "gelu": (lambda x: 0.5 * x * (1 + _erf64(x / math.sqrt(2))), (-5, 5), "Gelu", {}),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
                  (-5, 5), "Gelu", {"approximate": "tanh"}),
    "hardswish": (lambda x: x * np.clip(x / 6 + 0.5, 0, 1), (-5, 5), "HardSwish", {}),
    "softplus": (lambda x: np.logaddexp(0, x), (-30, 30), "Softplus", {}),
    "softsign": (lambda x: x / (1 + np.abs(x)), (-5, 5), "Softsign", {}),
    "sqrt": (np.sqrt, (0, 9), "Sqrt", {}),
    "reciprocal": (lambda x: 1 / x, (0.1, 4), "Reciprocal", {}),
    "exp": (np.exp, (-10, 10), "Exp", {}),
    "log": (np.log, (0.01, 100), "Log", {}),
    "neg": (np.negative, (-3, 3), "Neg", {}),
    "abs": (np.abs, (-3, 3), "Abs", {}),
    "floor": (np.floor, (-5, 5), "Floor", {}),
    "ceil": (np.ceil, (-5, 5), "Ceil", {}),
    "round": (np.rint, (-5, 5), "Round", {}),
    "sign": (np.sign, (-3, 3), "Sign", {}),
}
assert sorted(UNARY) == sorted(UNARY_NAMES)


@pytest.mark.parametrize("name", UNARY_NAMES)
def test_unary(lib, name):
    ref_fn, (lo, hi), op_type, attrs = UNARY[name]
    rng = rng_for("unary", name)
    x = randf(rng, 257, low=lo, high=hi)
    if name in ("round", "floor", "ceil", "sign", "relu", "abs"):
        x[:8] = [-2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.0]  # ties and zero
    y = np.full_like(x, np.nan)
    fn = getattr(lib, f"o2m_{name}_f32")
    fn(x.size, ptr(x), ptr(y))
    ref = ref_fn(x.astype(F64))
    close(y, ref, rtol=2e-6 if name not in ("erf", "gelu", "gelu_tanh", "tanh") else 1e-5, atol=1e-6)
    other = lib_ref(op_type, [x], attrs)
    if other is not None:
        close(y, other[0], atol=1e-6)
    x2 = x.copy()
    fn(x2.size, ptr(x2), ptr(x2))  # in place
    np.testing.assert_array_equal(x2, y)


PARAM_UNARY = {
    # name: (args, numpy reference, onnx op, attrs)
    "clip": ((-0.3, 0.6), lambda x: np.clip(x, -0.3, 0.6), "Clip", None),
    "hardsigmoid": ((0.2, 0.5), lambda x: np.clip(0.2 * x + 0.5, 0, 1), "HardSigmoid",
                    {"alpha": 0.2, "beta": 0.5}),
    "leakyrelu": ((0.1,), lambda x: np.where(x < 0, 0.1 * x, x), "LeakyRelu", {"alpha": 0.1}),
    "elu": ((1.3,), lambda x: np.where(x < 0, 1.3 * np.expm1(x), x), "Elu", {"alpha": 1.3}),
    "selu": ((1.6732632, 1.0507010),
             lambda x: 1.0507010 * np.where(x > 0, x, 1.6732632 * np.expm1(x)), "Selu",
             {"alpha": 1.6732632, "gamma": 1.0507010}),
}


@pytest.mark.parametrize("name", PARAM_UNARY)
def test_unary_with_parameters(lib, name):
    args, ref_fn, op_type, attrs = PARAM_UNARY[name]
    rng = rng_for("punary", name)
    x = randf(rng, 101, low=-4, high=4)
    y = np.full_like(x, np.nan)
    fn = getattr(lib, f"o2m_{name}_f32")
    fn(x.size, ptr(x), ptr(y), *args)
    close(y, ref_fn(x.astype(F64)), rtol=2e-6, atol=1e-6)
    if name == "clip":
        other = lib_ref(op_type, [x, np.float32(-0.3), np.float32(0.6)])
    else:
        other = lib_ref(op_type, [x], attrs)
    if other is not None:
        close(y, other[0], atol=1e-6)
    fn(x.size, ptr(x), ptr(x), *args)
    np.testing.assert_array_equal(x, y)


def test_clip_unbounded_side(lib):
    x = np.array([-np.inf, -2, 0, 3, np.inf, np.nan], F32)
    y = np.zeros_like(x)
    lib.o2m_clip_f32(x.size, ptr(x), ptr(y), F32(-1), F32(np.inf))
    np.testing.assert_array_equal(y, np.array([-1, -1, 0, 3, np.inf, np.nan], F32))


def test_sigmoid_softplus_extremes(lib):
    x = np.array([-200, -88, -20, 0, 20, 88, 200], F32)
    for name, ref in (("sigmoid", 1 / (1 + np.exp(-x.astype(F64)))),
                      ("softplus", np.logaddexp(0, x.astype(F64)))):
        y = np.zeros_like(x)
        getattr(lib, f"o2m_{name}_f32")(x.size, ptr(x), ptr(y))
        assert np.all(np.isfinite(y)), name
        close(y, ref, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("t", ["s64", "s32"])
def test_integer_unary_and_not(lib, t):
    dtype = TYPES[t]
    x = np.array([-5, -1, 0, 1, 7, 123456], dtype)
    for name, ref in (("neg", -x), ("abs", np.abs(x))):
        y = np.zeros_like(x)
        getattr(lib, f"o2m_{name}_{t}")(x.size, ptr(x), ptr(y))
        np.testing.assert_array_equal(y, ref)
    b = np.array([0, 1, 1, 0], np.uint8)
    lib.o2m_not_b8(b.size, ptr(b), ptr(b))
    np.testing.assert_array_equal(b, [1, 0, 0, 1])


def test_prelu(lib):
    rng = rng_for("prelu")
    x = randf(rng, 2, 3, 4, 5, low=-2, high=2)
    slope_c = randf(rng, 3, 1, 1)
    ref = np.where(x < 0, x * slope_c, x)
    y = np.zeros_like(x)
    lib.o2m_prelu_bc_f32(2, 3, 20, ptr(x), ptr(slope_c), ptr(y))
    close(y, ref)
    y2 = np.zeros_like(x)
    lib.o2m_prelu_nd_f32(4, ptr(i32(x.shape)), ptr(bcast_strides(slope_c, x.shape)), ptr(x),
                         ptr(slope_c), ptr(y2))
    np.testing.assert_array_equal(y2, y)
    other = lib_ref("PRelu", [x, slope_c])
    if other is not None:
        close(y, other[0])
    slope_last = randf(rng, 5)
    x2 = x.copy()
    lib.o2m_prelu_nd_f32(4, ptr(i32(x.shape)), ptr(bcast_strides(slope_last, x.shape)), ptr(x2),
                         ptr(slope_last), ptr(x2))  # in place
    close(x2, np.where(x < 0, x * slope_last, x))
    full = randf(rng, *x.shape)
    y3 = np.zeros_like(x)
    lib.o2m_prelu_f32(x.size, ptr(x), ptr(full), ptr(y3))
    close(y3, np.where(x < 0, x * full, x))


# ======================================================== norm / reduce
SOFTMAX_VIEWS = [(1, 10, 1), (3, 17, 1), (2, 5, 3), (1, 1, 4), (4, 7, 2)]


@pytest.mark.parametrize("log_form", [False, True], ids=["softmax", "logsoftmax"])
@pytest.mark.parametrize("view", SOFTMAX_VIEWS)
def test_softmax(lib, view, log_form):
    outer, n, inner = view
    rng = rng_for("softmax", view)
    x = randf(rng, *view, low=-6, high=6) + F32(500)  # large offsets: needs the max shift
    x64 = x.astype(F64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    ref = np.log(e / e.sum(axis=1, keepdims=True)) if log_form else e / e.sum(axis=1, keepdims=True)
    fn = lib.o2m_logsoftmax_f32 if log_form else lib.o2m_softmax_f32
    y = np.full_like(x, np.nan)
    fn(outer, n, inner, ptr(x), ptr(y))
    close(y, ref, atol=1e-6 if not log_form else None)
    other = lib_ref("LogSoftmax" if log_form else "Softmax", [x], {"axis": 1})
    if other is not None:
        close(y, other[0], atol=1e-6 if not log_form else None)
        if not log_form:  # the simulator's Softmax is the kernel's float32 arithmetic: the same bits
            np.testing.assert_array_equal(y, other[0])
    fn(outer, n, inner, ptr(x), ptr(x))  # in place
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(4, 17), (1, 128), (3, 1), (2, 3, 8)])
def test_layernorm(lib, shape, affine):
    rng = rng_for("ln", shape, affine)
    x = randf(rng, *shape, low=-3, high=5)
    n = shape[-1]
    outer = int(np.prod(shape[:-1]))
    gamma = randf(rng, n) if affine else None
    beta = randf(rng, n) if affine else None
    eps = 1e-5
    x64 = x.astype(F64)
    mean = x64.mean(axis=-1, keepdims=True)
    ref = (x64 - mean) / np.sqrt(((x64 - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    if affine:
        ref = ref * gamma + beta
    y = np.full_like(x, np.nan)
    lib.o2m_layernorm_f32(outer, n, ptr(x), ptr(gamma), ptr(beta), F32(eps), ptr(y))
    close(y, ref, atol=1e-5)
    other = lib_ref("LayerNormalization",
                    [x, gamma if affine else np.ones(n, F32), beta if affine else None],
                    {"axis": -1, "epsilon": eps}, n_out=1)
    if other is not None:
        close(y, other[0], atol=1e-5)
        np.testing.assert_array_equal(y, other[0])  # the simulator's LayerNorm is the kernel's float32 order
    lib.o2m_layernorm_f32(outer, n, ptr(x), ptr(gamma), ptr(beta), F32(eps), ptr(x))
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("shape", [(2, 3, 17), (1, 5, 1), (3, 1, 4)])
def test_batchnorm(lib, shape):
    n, c, hw = shape
    rng = rng_for("bn", shape)
    x = randf(rng, n, c, hw, low=-3, high=3)
    gamma, beta, mean = randf(rng, c), randf(rng, c), randf(rng, c)
    var = randf(rng, c, low=0.1, high=2)
    eps = 1e-3
    ref = (x.astype(F64) - mean[:, None]) / np.sqrt(var[:, None].astype(F64) + eps) * gamma[:, None] + beta[:, None]
    y = np.full_like(x, np.nan)
    lib.o2m_batchnorm_stats_f32(n, c, hw, ptr(x), ptr(gamma), ptr(beta), ptr(mean), ptr(var),
                                F32(eps), ptr(y))
    close(y, ref)
    scale = (gamma / np.sqrt(var + F32(eps))).astype(F32)
    shift = (beta - mean * scale).astype(F32)
    y2 = x.copy()
    lib.o2m_batchnorm_f32(n, c, hw, ptr(y2), ptr(scale), ptr(shift), ptr(y2))  # in place
    close(y2, ref)
    other = lib_ref("BatchNormalization", [x, gamma, beta, mean, var], {"epsilon": eps})
    if other is not None:
        close(y, other[0])


REDUCE_KINDS = {
    # kind: (C constant, numpy float64 reference over axis 1, onnx op)
    "sum": (0, lambda x: x.sum(axis=1), "ReduceSum"),
    "mean": (1, lambda x: x.mean(axis=1), "ReduceMean"),
    "max": (2, lambda x: x.max(axis=1), "ReduceMax"),
    "min": (3, lambda x: x.min(axis=1), "ReduceMin"),
    "prod": (4, lambda x: x.prod(axis=1), "ReduceProd"),
    "l1": (5, lambda x: np.abs(x).sum(axis=1), "ReduceL1"),
    "l2": (6, lambda x: np.sqrt((x * x).sum(axis=1)), "ReduceL2"),
    "sumsquare": (7, lambda x: (x * x).sum(axis=1), "ReduceSumSquare"),
    "logsum": (8, lambda x: np.log(x.sum(axis=1)), "ReduceLogSum"),
    "logsumexp": (9, lambda x: np.log(np.exp(x).sum(axis=1)), "ReduceLogSumExp"),
}
REDUCE_VIEWS = [(1, 17, 1), (3, 5, 7), (2, 1, 4), (4, 6, 1)]


@pytest.mark.parametrize("view", REDUCE_VIEWS)
@pytest.mark.parametrize("kind", REDUCE_KINDS)
def test_reduce(lib, kind, view):
    code, ref_fn, op_type = REDUCE_KINDS[kind]
    outer, n, inner = view
    rng = rng_for("reduce", kind, view)
    if kind == "prod":
        x = randf(rng, *view, low=0.7, high=1.3) * rng.choice([-1, 1], size=view).astype(F32)
    elif kind == "logsum":
        x = randf(rng, *view, low=0.1, high=2)
    else:
        x = randf(rng, *view, low=-3, high=3)
    y = np.full((outer, inner), np.nan, F32)
    lib.o2m_reduce_f32(code, outer, n, inner, ptr(x), ptr(y))
    ref = ref_fn(x.astype(F64))
    close(y, ref, atol=1e-5 * max(1, float(np.abs(ref).max())))
    other = lib_ref(op_type, [x, np.array([1], I64)], {"keepdims": 0})
    if other is not None:
        close(y, other[0])
    x2 = x.copy()
    lib.o2m_reduce_f32(code, outer, n, inner, ptr(x2), ptr(x2))  # output over its own input
    np.testing.assert_array_equal(x2.reshape(-1)[:outer * inner].reshape(outer, inner), y)


def test_reduce_extremes(lib):
    x = np.array([[-np.inf, -np.inf], [1.0, np.nan], [np.inf, 2.0]], F32)
    y = np.zeros(3, F32)
    lib.o2m_reduce_f32(9, 3, 2, 1, ptr(x), ptr(y))  # logsumexp
    assert y[0] == -np.inf and np.isnan(y[1]) and y[2] == np.inf
    lib.o2m_reduce_f32(2, 3, 2, 1, ptr(x), ptr(y))  # max propagates NaN
    assert y[0] == -np.inf and np.isnan(y[1]) and y[2] == np.inf


@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("view", [(1, 17, 1), (3, 5, 7), (2, 4, 3)])
def test_argmax_argmin(lib, view, last):
    outer, n, inner = view
    rng = rng_for("arg", view, last)
    x = rng.integers(0, 3, size=view).astype(F32)  # many ties
    for name, fn in (("argmax", np.argmax), ("argmin", np.argmin)):
        y = np.full((outer, inner), -1, I64)
        getattr(lib, f"o2m_{name}_f32")(outer, n, inner, ptr(x), last, ptr(y))
        ref = n - 1 - fn(x[:, ::-1], axis=1) if last else fn(x, axis=1)
        np.testing.assert_array_equal(y, ref)
        other = lib_ref("ArgMax" if name == "argmax" else "ArgMin", [x],
                        {"axis": 1, "keepdims": 0, "select_last_index": last})
        if other is not None:
            np.testing.assert_array_equal(y, other[0])


# ========================================================= data movement
def copy_call(lib, dims, src_view: np.ndarray, dst, dst_strides=None, dst_ptr=None):
    lib.o2m_copy_nd(len(dims), ptr(i32(dims)), c_void_p(src_view.ctypes.data),
                    ptr(i32(strides_of(src_view))),
                    dst_ptr if dst_ptr is not None else ptr(dst),
                    ptr(i32(dst_strides)) if dst_strides is not None else None, src_view.itemsize)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, F32, I64])
def test_copy_nd_slices(lib, dtype):
    rng = rng_for("slice", np.dtype(dtype).name)
    x = (rng.standard_normal((5, 7, 9)) * 50).astype(dtype)
    for view in (x[1:4, ::-2, 2:9:3], x[::-1, 3, ::-1][None], x[:, :, 4:5], x[4:0:-3, 1:6, ::2]):
        y = np.zeros(view.shape, dtype)
        copy_call(lib, view.shape, view, y)
        np.testing.assert_array_equal(y, view)


def test_copy_nd_expand_tile_concat(lib):
    rng = rng_for("expand")
    x = randf(rng, 3, 1, 5)
    # Expand
    shape = (2, 3, 4, 5)
    view = np.broadcast_to(x, shape)
    y = np.zeros(shape, F32)
    copy_call(lib, shape, view, y)
    np.testing.assert_array_equal(y, view)
    other = lib_ref("Expand", [x, np.array(shape, I64)])
    if other is not None:
        np.testing.assert_array_equal(y, other[0])
    # Tile of a 4-D int64 tensor: an 8-D view [r0, d0, r1, d1, ...] with stride 0 on repeats
    t = rng.integers(-100, 100, size=(2, 3, 4, 5)).astype(I64)
    reps = (2, 1, 3, 2)
    dims = [v for r, d in zip(reps, t.shape) for v in (r, d)]
    src = [v for s in strides_of(t) for v in (0, s)]
    yt = np.zeros(np.multiply(reps, t.shape), I64)
    lib.o2m_copy_nd(8, ptr(i32(dims)), ptr(t), ptr(i32(src)), ptr(yt), None, 8)
    np.testing.assert_array_equal(yt, np.tile(t, reps))
    other = lib_ref("Tile", [t, np.array(reps, I64)])
    if other is not None:
        np.testing.assert_array_equal(yt, other[0])
    # Concat along axis 1 by writing each input through the output's strides
    a, b = randf(rng, 2, 3, 4), randf(rng, 2, 5, 4)
    out = np.zeros((2, 8, 4), F32)
    dst_strides = strides_of(out)
    copy_call(lib, a.shape, a, out, dst_strides)
    copy_call(lib, b.shape, b, out, dst_strides, dst_ptr=c_void_p(out[:, 3:].ctypes.data))
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))
    # dense source, strided destination (write a transpose)
    src = randf(rng, 3, 4)
    dst = np.zeros((4, 3), F32)
    copy_call(lib, src.shape, src, dst, [1, 3])
    np.testing.assert_array_equal(dst, src.T)
    # rank 0
    s = np.array(3.5, F32)
    d = np.zeros((), F32)
    lib.o2m_copy_nd(0, None, ptr(s), None, ptr(d), None, 4)
    assert d == s


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("dtype", [F32, I64, np.uint8])
def test_transpose(lib, rank, dtype):
    rng = rng_for("transpose", rank, np.dtype(dtype).name)
    shape = tuple(int(v) for v in rng.integers(1, 5, size=rank))
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    perm = [int(v) for v in rng.permutation(rank)]
    y = np.zeros(tuple(shape[p] for p in perm), dtype)
    lib.o2m_transpose(rank, ptr(i32(shape)), ptr(i32(perm)), ptr(x), ptr(y), x.itemsize)
    np.testing.assert_array_equal(y, x.transpose(perm))
    other = lib_ref("Transpose", [x], {"perm": perm})
    if other is not None:
        np.testing.assert_array_equal(y, other[0])


def test_concat_split(lib):
    rng = rng_for("concat")
    parts = [randf(rng, 2, k, 3) for k in (1, 4, 2)]
    sizes = i32([p.shape[1] * 3 for p in parts])
    ptrs = (c_void_p * 3)(*[p.ctypes.data for p in parts])
    y = np.zeros((2, 7, 3), F32)
    lib.o2m_concat(2, 3, ptrs, ptr(sizes), ptr(y), 4)
    np.testing.assert_array_equal(y, np.concatenate(parts, axis=1))
    other = lib_ref("Concat", parts, {"axis": 1})
    if other is not None:
        np.testing.assert_array_equal(y, other[0])
    outs = [np.zeros_like(p) for p in parts]
    optrs = (c_void_p * 3)(*[o.ctypes.data for o in outs])
    lib.o2m_split(2, 3, ptr(y), ptr(sizes), optrs, 4)
    for o, p in zip(outs, parts):
        np.testing.assert_array_equal(o, p)


PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}
PAD_CASES = {
    "3d": ((3, 4, 5), (1, 0, 2), (0, 2, 3)),
    "1d": ((7,), (3,), (2,)),
    "4d_nchw": ((1, 2, 5, 6), (0, 0, 1, 2), (0, 0, 2, 1)),
    "6d": ((2, 1, 3, 2, 2, 3), (1, 0, 0, 1, 0, 2), (0, 0, 1, 0, 1, 0)),
    "big_pads": ((2, 3), (0, 5), (1, 6)),
}


def pad_numpy(x, begin, end, mode, value):
    """np.pad, with negative pads cropping afterwards."""
    grow = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode == "constant":
        y = np.pad(x, grow, mode="constant", constant_values=value)
    else:
        y = np.pad(x, grow, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])
    crop = tuple(slice(-min(b, 0), y.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(begin, end)))
    return y[crop]


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("case", PAD_CASES)
def test_pad(lib, case, mode):
    shape, begin, end = PAD_CASES[case]
    if mode == "reflect" and any(max(b, e) > d - 1 for b, e, d in zip(begin, end, shape)):
        if case != "big_pads":
            pytest.skip("ONNX reflect needs pads < dim")
    rng = rng_for("pad", case, mode)
    x = randf(rng, *shape)
    out = tuple(d + b + e for d, b, e in zip(shape, begin, end))
    value = np.array(1.5, F32)
    y = np.full(out, np.nan, F32)
    lib.o2m_pad(PAD_MODES[mode], len(shape), ptr(i32(shape)), ptr(i32(out)), ptr(i32(begin)),
                ptr(x), ptr(value), ptr(y), 4)
    np.testing.assert_array_equal(y, pad_numpy(x, begin, end, mode, 1.5))
    other = lib_ref("Pad", [x, np.array(list(begin) + list(end), I64), value], {"mode": mode})
    if other is not None and case != "big_pads":
        np.testing.assert_array_equal(y, other[0])


def test_pad_crop_and_int64(lib):
    rng = rng_for("pad_crop")
    x = rng.integers(-9, 9, size=(4, 6)).astype(I64)
    begin, end = (-1, 2), (1, -3)
    out = (4, 5)
    for mode in ("constant", "edge", "wrap"):
        y = np.zeros(out, I64)
        value = np.array(-7, I64)
        lib.o2m_pad(PAD_MODES[mode], 2, ptr(i32(x.shape)), ptr(i32(out)), ptr(i32(begin)), ptr(x),
                    ptr(value), ptr(y), 8)
        np.testing.assert_array_equal(y, pad_numpy(x, begin, end, mode, -7))
    y = np.full(out, 5, I64)
    lib.o2m_pad(0, 2, ptr(i32(x.shape)), ptr(i32(out)), ptr(i32(begin)), ptr(x), None, ptr(y), 8)
    np.testing.assert_array_equal(y, pad_numpy(x, begin, end, "constant", 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, F32, I64])
def test_pad_random_shapes(lib, dtype):
    """Random ranks, shapes and pads, unpadded trailing dims often (folded into the element: the
    NHWC Pad of a model's input), every mode, with and without a value, crops in constant mode."""
    rng = rng_for("pad_random", np.dtype(dtype).name)
    for _ in range(150):
        rank = int(rng.integers(1, 6))
        shape = [int(v) for v in rng.integers(1, 7, rank)]
        mode = str(rng.choice(list(PAD_MODES)))
        begin, end = [], []
        for d in range(rank):
            if rng.random() < 0.4:
                b = e = 0
            elif mode == "constant":
                b, e = (int(v) for v in rng.integers(-min(shape[d] - 1, 2), 4, 2))
            elif mode == "reflect":
                b, e = (int(v) for v in rng.integers(0, shape[d], 2))
            else:
                b, e = (int(v) for v in rng.integers(0, 4, 2))
            begin.append(b)
            end.append(e)
        if rng.random() < 0.5 and rank > 1:  # the last dims unpadded
            k = int(rng.integers(1, rank))
            begin[-k:] = [0] * k
            end[-k:] = [0] * k
        out = tuple(d + b + e for d, b, e in zip(shape, begin, end))
        x = (rng.standard_normal(shape) * 100).astype(dtype)
        use_value = rng.random() < 0.7
        value = np.array(rng.integers(-100, 100) if use_value else 0, dtype)
        y = np.full(out, 99, dtype)
        lib.o2m_pad(PAD_MODES[mode], rank, ptr(i32(shape)), ptr(i32(out)), ptr(i32(begin)), ptr(x),
                    ptr(value) if use_value else None, ptr(y), x.itemsize)
        np.testing.assert_array_equal(y, pad_numpy(x, begin, end, mode, value.item()),
                                      err_msg=f"{mode} {shape} {begin} {end}")


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_transpose_nhwc_nchw_bytes(lib, channels):
    """The 4-D NHWC <-> NCHW permutations of int8 data (a model's input layout change), odd sizes:
    o2m_copy_nd's unrolled short-dim form for 2..4 channels, the generic walk otherwise."""
    rng = rng_for("transpose_bytes", channels)
    for n, h, w in ((1, 7, 9), (2, 5, 3), (1, 1, 13), (1, 32, 31)):
        x = rng.integers(0, 256, (n, h, w, channels)).astype(np.uint8)
        for perm, src in (((0, 3, 1, 2), x), ((0, 2, 3, 1), np.ascontiguousarray(x.transpose(0, 3, 1, 2)))):
            y = np.zeros(tuple(src.shape[p] for p in perm), np.uint8)
            lib.o2m_transpose(4, ptr(i32(src.shape)), ptr(i32(perm)), ptr(src), ptr(y), 1)
            np.testing.assert_array_equal(y, src.transpose(perm))
            view = src.transpose(perm)  # the same through copy_nd, as the emitter calls it
            y2 = np.zeros(view.shape, np.uint8)
            copy_call(lib, view.shape, view, y2)
            np.testing.assert_array_equal(y2, view)
    # a short dim with a strided destination (copy_nd into a wider buffer)
    src = rng.integers(0, 256, (11, channels)).astype(np.uint8)
    dst = np.zeros((channels, 15), np.uint8)
    copy_call(lib, src.shape, src, dst, [1, 15])
    np.testing.assert_array_equal(dst[:, :11], src.T)
    assert not dst[:, 11:].any()


@pytest.mark.parametrize("index_type", ["s64", "s32"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather(lib, axis, index_type):
    rng = rng_for("gather", axis, index_type)
    x = randf(rng, 5, 7, 3)
    dim = x.shape[axis]
    idx = rng.integers(-dim, dim, size=(2, 3)).astype(I64 if index_type == "s64" else np.int32)
    outer = int(np.prod(x.shape[:axis]))
    inner = int(np.prod(x.shape[axis + 1:]))
    y = np.zeros(x.shape[:axis] + idx.shape + x.shape[axis + 1:], F32)
    fn = lib.o2m_gather if index_type == "s64" else lib.o2m_gather_s32
    fn(outer, dim, inner, idx.size, ptr(x), ptr(idx), ptr(y), 4)
    np.testing.assert_array_equal(y, np.take(x, idx, axis=axis))
    other = lib_ref("Gather", [x, idx], {"axis": axis})
    if other is not None:
        np.testing.assert_array_equal(y, other[0])


def test_gather_embedding_int64_and_clamp(lib):
    table = np.arange(40, dtype=I64).reshape(10, 4)
    idx = np.array([3, -1, 0, 9, 12, -20], I64)
    y = np.zeros((6, 4), I64)
    lib.o2m_gather(1, 10, 4, 6, ptr(table), ptr(idx), ptr(y), 8)
    np.testing.assert_array_equal(y, table[[3, 9, 0, 9, 9, 0]])  # out of range clamps


@pytest.mark.parametrize("crd", [0, 1])
@pytest.mark.parametrize("shape,block", [((2, 8, 3, 5), 2), ((1, 18, 2, 3), 3)])
def test_depth_to_space(lib, shape, block, crd):
    n, c, h, w = shape
    rng = rng_for("d2s", shape, crd)
    x = randf(rng, *shape)
    oc = c // (block * block)
    if crd:
        ref = x.reshape(n, oc, block, block, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        ref = x.reshape(n, block, block, oc, h, w).transpose(0, 3, 4, 1, 5, 2)
    ref = ref.reshape(n, oc, h * block, w * block)
    y = np.zeros_like(ref)
    lib.o2m_depth_to_space(n, c, h, w, block, crd, ptr(x), ptr(y), 4)
    np.testing.assert_array_equal(y, ref)
    other = lib_ref("DepthToSpace", [x], {"blocksize": block, "mode": "CRD" if crd else "DCR"})
    if other is not None:
        np.testing.assert_array_equal(y, other[0])
    # SpaceToDepth undoes DCR DepthToSpace
    if not crd:
        back = np.zeros_like(x)
        lib.o2m_space_to_depth(n, oc, h * block, w * block, block, ptr(y), ptr(back), 4)
        np.testing.assert_array_equal(back, x)
        other = lib_ref("SpaceToDepth", [y], {"blocksize": block})
        if other is not None:
            np.testing.assert_array_equal(back, other[0])


def test_casts(lib):
    f = np.array([-2.7, -0.5, 0.0, 0.5, 1.0, 2.9, 3e9, -3e9, 1e20, np.nan], F32)
    i64 = np.array([-(2**40), -3, 0, 1, 7, 2**40 + 5], I64)
    i32v = np.array([-(2**31), -3, 0, 1, 2**31 - 1], np.int32)
    b = np.array([0, 1, 1, 0], np.uint8)

    def run(name, x, dtype):
        y = np.zeros(x.shape, dtype)
        getattr(lib, f"o2m_cast_{name}")(x.size, ptr(x), ptr(y))
        return y

    np.testing.assert_array_equal(run("f32_s64", f, I64),
                                  [-2, 0, 0, 0, 1, 2, 3000000000, -3000000000, 2**63 - 1, 0])
    np.testing.assert_array_equal(run("f32_s32", f, np.int32),
                                  [-2, 0, 0, 0, 1, 2, 2**31 - 1, -(2**31), 2**31 - 1, 0])
    np.testing.assert_array_equal(run("f32_b8", f, np.uint8), [1, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(run("s64_f32", i64, F32), i64.astype(F32))
    np.testing.assert_array_equal(run("s32_f32", i32v, F32), i32v.astype(F32))
    np.testing.assert_array_equal(run("b8_f32", b, F32), b.astype(F32))
    np.testing.assert_array_equal(run("s64_s32", i64, np.int32), i64.astype(np.int32))
    np.testing.assert_array_equal(run("s32_s64", i32v, I64), i32v.astype(I64))
    np.testing.assert_array_equal(run("s64_b8", i64, np.uint8), (i64 != 0).astype(np.uint8))
    np.testing.assert_array_equal(run("s32_b8", i32v, np.uint8), (i32v != 0).astype(np.uint8))
    np.testing.assert_array_equal(run("b8_s64", b, I64), b.astype(I64))
    np.testing.assert_array_equal(run("b8_s32", b, np.int32), b.astype(np.int32))
    finite = f[np.abs(f) < 1e9]
    other = lib_ref("Cast", [finite], {"to": 7})  # TensorProto.INT64
    if other is not None:
        np.testing.assert_array_equal(run("f32_s64", finite, I64), other[0])
    g = f.copy()  # f32 -> i32 in place (same element size)
    lib.o2m_cast_f32_s32(g.size, ptr(g), ptr(g))
    np.testing.assert_array_equal(g.view(np.int32), run("f32_s32", f, np.int32))


# ==================================================================== quant
@pytest.mark.parametrize("per_axis", [False, True])
@pytest.mark.parametrize("t", ["s8", "u8"])
def test_quantize_dequantize(lib, t, per_axis):
    dtype = np.int8 if t == "s8" else np.uint8
    info = np.iinfo(dtype)
    rng = rng_for("quant", t, per_axis)
    outer, axis_dim, inner = (2, 3, 5) if per_axis else (1, 1, 30)
    scale = randf(rng, axis_dim, low=0.01, high=0.1)
    zp = rng.integers(info.min // 2, info.max // 2 + 1, size=axis_dim).astype(dtype)
    x = randf(rng, outer, axis_dim, inner, low=-12, high=12)
    # exact halfway points (k + 0.5) * scale to check ties-to-even
    x[0, :, :4] = (np.array([0.5, 1.5, -2.5, 3.5], F32)[None, :] * scale[:, None]).astype(F32)
    s3 = scale.reshape(1, -1, 1)
    z3 = zp.reshape(1, -1, 1).astype(F32)
    ref = np.clip(np.rint(x / s3) + z3, info.min, info.max).astype(dtype)
    q = np.zeros(x.shape, dtype)
    getattr(lib, f"o2m_quantize_{t}")(outer, axis_dim, inner, ptr(x), ptr(scale), ptr(zp), ptr(q))
    np.testing.assert_array_equal(q, ref)
    assert q.min() == info.min or q.max() == info.max  # saturation was exercised
    d = np.zeros(x.shape, F32)
    getattr(lib, f"o2m_dequantize_{t}")(outer, axis_dim, inner, ptr(q), ptr(scale), ptr(zp), ptr(d))
    np.testing.assert_array_equal(d, ((q.astype(np.int32) - zp.reshape(1, -1, 1)).astype(F32) * s3))
    xs = x.reshape(outer * axis_dim, inner) if not per_axis else x
    sc = scale if per_axis else scale[0]
    zz = zp if per_axis else zp[0]
    other = lib_ref("QuantizeLinear", [xs, np.asarray(sc, F32), np.asarray(zz, dtype)], {"axis": 1})
    if other is not None:
        np.testing.assert_array_equal(q.reshape(other[0].shape), other[0])
    other = lib_ref("DequantizeLinear", [q.reshape(xs.shape), np.asarray(sc, F32), np.asarray(zz, dtype)],
                    {"axis": 1})
    if other is not None:
        np.testing.assert_array_equal(d.reshape(other[0].shape), other[0])
    # no zero point
    q0 = np.zeros(x.shape, dtype)
    getattr(lib, f"o2m_quantize_{t}")(outer, axis_dim, inner, ptr(x), ptr(scale), None, ptr(q0))
    np.testing.assert_array_equal(q0, np.clip(np.rint(x / s3), info.min, info.max).astype(dtype))


def test_dequantize_int32(lib):
    x = np.array([-(2**31), -5, 0, 7, 2**31 - 1], np.int32)
    scale = np.array([0.001], F32)
    zp = np.array([3], np.int32)
    y = np.zeros(5, F32)
    lib.o2m_dequantize_s32(1, 1, 5, ptr(x), ptr(scale), ptr(zp), ptr(y))
    np.testing.assert_array_equal(y, (x.astype(I64) - 3).astype(F32) * scale[0])
