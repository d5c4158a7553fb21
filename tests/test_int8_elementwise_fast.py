"""The fast paths of the int8 elementwise kernels (runtime_c/o2m_s8_elementwise.c: merged runs,
input-rescale tables, the unpacked output rescale and, on Cortex-M4, its SMMLAR / SSAT form)
against onnx2mcu.ops.int8_ref, bit for bit.

Seeded random cases big enough for the tables (>= 512 outputs) and small ones, in every
broadcast form the kernels specialise (same shape, scalar, per-channel [1, C, 1, 1], a row or
a column, both operands broadcast, size-1 dims in between), with zero points at both ends,
multipliers over [2^30, 2^31), input shifts down to -8, output shifts from -31 (beyond the DSP
form) to +1 (a left shift), clamps that saturate and narrow activation ranges.  On the host
through ctypes (the portable twins) and under QEMU mps2-an386 (the __ARM_FEATURE_DSP form).
"""
from __future__ import annotations

import ctypes
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from c_harness import declare, i32, ptr
from onnx2mcu.ops import int8_ref as R
from s8_c_backend import AddP, I, MulP, P, build_s8_library, _bcast_strides

pytestmark = [pytest.mark.c]

RUNTIME = Path(__file__).resolve().parents[1] / "runtime_c"
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None

SHAPES = [  # (a, b): every broadcast form
    ((1, 16, 12, 11), (1, 16, 12, 11)),   # same shape, odd sizes
    ((3, 7, 29), (3, 7, 29)),
    ((1, 16, 12, 11), ()),                 # scalar
    ((), (2, 9, 37)),
    ((1, 16, 12, 11), (1, 16, 1, 1)),      # per channel (NCHW)
    ((1, 5, 1, 1), (1, 5, 13, 17)),
    ((4, 9, 23), (23,)),                   # a row
    ((4, 9, 1), (4, 9, 23)),               # a column
    ((1, 9, 1, 31), (2, 1, 7, 1)),         # both broadcast
    ((2, 1, 3, 1, 97), (2, 1, 3, 1, 97)),  # size-1 dims in between
    ((5, 7), (5, 7)),                      # small: no tables
    ((1, 3, 1, 1), (1, 3, 4, 5)),
    ((1,), (1,)),
]


def _zp(rng) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def _act(rng, zp_out: int) -> tuple[int, int]:
    kind = int(rng.integers(0, 4))
    if kind <= 1:
        return -128, 127
    if kind == 2:
        return zp_out, 127
    lo = int(rng.integers(-128, 0))
    return lo, int(rng.integers(lo, 128))


def _add_params(rng):
    """add_params from random scales (as a model has them), or raw constants at the extremes."""
    if rng.random() < 0.5:
        s1 = float(rng.uniform(0.005, 0.2))
        s2 = s1 * float(rng.choice([1e-3, 0.1, 0.5, 1.0, 3.0, 10.0]))
        so = max(s1, s2) * float(rng.choice([0.05, 0.5, 1.0, 2.0, 8.0]))
        p = R.add_params(s1, _zp(rng), s2, _zp(rng), so, _zp(rng),
                         value_offsets=tuple(int(v) for v in rng.choice([0, 128], 3)),
                         swap=bool(rng.random() < 0.5))
    else:
        s1 = float(rng.uniform(0.005, 0.2))
        p = R.add_params(s1, _zp(rng), s1, _zp(rng), s1, _zp(rng))
        p = dataclasses.replace(
            p, input1_offset=-_zp(rng), input2_offset=-_zp(rng), output_offset=_zp(rng),
            input1_multiplier=int(rng.choice([1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))])),
            input2_multiplier=int(rng.choice([1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))])),
            input1_shift=int(rng.integers(-8, 1)), input2_shift=int(rng.integers(-8, 1)),
            output_multiplier=int(rng.choice([1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))])),
            output_shift=int(rng.choice([-31, -25, -22, -21, -19, -17, -12, -1, 0, 1])))
    lo, hi = _act(rng, p.output_offset)
    return dataclasses.replace(p, act_min=lo, act_max=hi)


def _mul_params(rng):
    s1, s2 = float(rng.uniform(0.005, 0.2)), float(rng.uniform(0.005, 0.2))
    p = R.mul_params(s1, _zp(rng), s2, _zp(rng), s1 * s2 * float(rng.choice([0.5, 1.0, 20.0, 1e-2])), _zp(rng))
    lo, hi = _act(rng, p.output_offset)
    return dataclasses.replace(p, act_min=lo, act_max=hi)


def cases() -> list[dict]:
    rng = np.random.default_rng(1414)
    out = []
    for op in ("add", "sub", "mul"):
        for sa, sb in SHAPES:
            for mode in ("fixed", "float"):
                p = _mul_params(rng) if op == "mul" else _add_params(rng)
                a = rng.integers(-128, 128, sa).astype(np.int8)
                b = rng.integers(-128, 128, sb).astype(np.int8)
                if rng.random() < 0.3:  # runs at the ends of the range
                    a.reshape(-1)[: a.size // 3] = rng.choice([-128, 127])
                y = getattr(R, op)(a, b, p, mode=mode)
                out.append({"op": op, "a": a, "b": b, "p": p, "mode": mode, "y": np.asarray(y, np.int8)})
    # a residual Add as models have it: same shapes, no activation, output shifts around -16..-20
    # (the DSP loops with the shift as an immediate), odd lengths for the unrolled tails
    for op in ("add", "sub"):
        for j in range(10):
            s1 = float(rng.uniform(0.01, 0.1))
            s2 = s1 * float(rng.uniform(0.3, 3.0))
            p = R.add_params(s1, _zp(rng), s2, _zp(rng), max(s1, s2) * float(rng.uniform(0.6, 8.0)), _zp(rng))
            shape = (1, int(rng.integers(8, 17)), int(rng.integers(5, 12)), 8 + j)
            a = rng.integers(-128, 128, shape).astype(np.int8)
            b = rng.integers(-128, 128, shape).astype(np.int8)
            out.append({"op": op, "a": a, "b": b, "p": p, "mode": "fixed",
                        "y": np.asarray(getattr(R, op)(a, b, p, mode="fixed"), np.int8)})
        # exact halves: multipliers 2^30 make s1, s2 = (x + offset) * 2^19 and v = raw / 2, so a
        # shift of 19 or 20 leaves ties, half of them negative (rounded away from zero)
        for shift in (-19, -20, -18):
            p = dataclasses.replace(R.add_params(0.05, 0, 0.05, 0, 0.05, 0), input1_offset=-_zp(rng),
                                    input2_offset=-_zp(rng), output_offset=_zp(rng), input1_multiplier=1 << 30,
                                    input2_multiplier=1 << 30, input1_shift=0, input2_shift=0,
                                    output_multiplier=1 << 30, output_shift=shift, act_min=-128, act_max=127)
            a = rng.integers(-128, 128, (3, 13, 21)).astype(np.int8)
            b = rng.integers(-128, 128, (3, 13, 21)).astype(np.int8)
            out.append({"op": op, "a": a, "b": b, "p": p, "mode": "fixed",
                        "y": np.asarray(getattr(R, op)(a, b, p, mode="fixed"), np.int8)})
    return out


def _struct(c):
    p, fm = c["p"], int(c["mode"] == "float")
    if c["op"] == "mul":
        return MulP(p.input1_offset, p.input2_offset, p.output_offset, p.output_multiplier, p.output_shift,
                    p.act_min, p.act_max, fm, p.float_scale)
    return AddP(p.input1_offset, p.input2_offset, p.output_offset, p.left_shift, p.input1_multiplier,
                p.input1_shift, p.input2_multiplier, p.input2_shift, p.output_multiplier, p.output_shift,
                p.act_min, p.act_max, fm, p.ratio_a, p.ratio_b, p.float_offset, p.float_offset_sub,
                p.value_offset_a, p.value_offset_b, p.value_offset_y, p.float_swap)


@pytest.fixture(scope="module")
def random_cases():
    return cases()


def test_cases_cover_the_forms(random_cases):
    ys = np.concatenate([c["y"].reshape(-1) for c in random_cases])
    assert (ys == 127).any() and (ys == -128).any() and len(np.unique(ys)) == 256
    fixed = [c for c in random_cases if c["mode"] == "fixed" and c["op"] != "mul"]
    shifts = {c["p"].output_shift for c in fixed}
    assert min(shifts) <= -23 and max(shifts) >= 1 and any(-22 <= s <= -1 for s in shifts)
    assert any(c["y"].size >= 512 for c in fixed) and any(c["y"].size < 512 for c in fixed)
    assert any(c["p"].act_min > -128 for c in fixed) and any(c["p"].act_max < 127 for c in fixed)
    assert {c["p"].output_offset for c in fixed} >= {-128, 127}
    model_like = {-c["p"].output_shift for c in fixed if c["a"].shape == c["b"].shape and c["y"].size >= 512
                  and (c["p"].act_min, c["p"].act_max) == (-128, 127)}
    assert len(model_like & set(range(16, 21))) >= 3


def test_fast_paths_on_the_host(tmp_path, random_cases):
    lib = build_s8_library(tmp_path)
    for i, c in enumerate(random_cases):
        f = declare(lib, f"o2m_{c['op']}_s8", None, P, I, P, P, P, P, P, P)
        so = c["y"].shape
        y = np.zeros(so, np.int8)
        f(ctypes.byref(_struct(c)), len(so), ptr(i32(so)), ptr(i32(_bcast_strides(c["a"].shape, so))),
          ptr(i32(_bcast_strides(c["b"].shape, so))), ptr(np.ascontiguousarray(c["a"])),
          ptr(np.ascontiguousarray(c["b"])), ptr(y))
        np.testing.assert_array_equal(y, c["y"], err_msg=f"case {i}: {c['op']} {c['mode']} {c['a'].shape} {c['b'].shape}")


def test_in_place_output(tmp_path, random_cases):
    """y == a (a dense with the output's shape), as the planner places it."""
    lib = build_s8_library(tmp_path)
    for c in random_cases:
        if c["a"].shape != c["y"].shape:
            continue
        f = declare(lib, f"o2m_{c['op']}_s8", None, P, I, P, P, P, P, P, P)
        so = c["y"].shape
        buf = np.ascontiguousarray(c["a"]).copy()
        f(ctypes.byref(_struct(c)), len(so), ptr(i32(so)), ptr(i32(_bcast_strides(so, so))),
          ptr(i32(_bcast_strides(c["b"].shape, so))), ptr(buf), ptr(np.ascontiguousarray(c["b"])), ptr(buf))
        np.testing.assert_array_equal(buf, c["y"])


def _arr(ctype: str, name: str, values) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    return f"static const {ctype} {name}[{len(flat)}] = {{{', '.join(map(str, flat))}}};"


def program(all_cases: list[dict]) -> str:
    decls, body = [], []
    y_max = max(c["y"].size for c in all_cases)
    for i, c in enumerate(all_cases):
        so = c["y"].shape
        st = _struct(c)
        fields = []
        for name, _ in st._fields_:
            v = getattr(st, name)
            fields.append(f"{float(v)!r}f" if isinstance(v, float) else str(int(v)))
        kind = "o2m_mul_s8_params" if c["op"] == "mul" else "o2m_add_s8_params"
        decls += [_arr("int8_t", f"a{i}", c["a"]), _arr("int8_t", f"b{i}", c["b"]),
                  _arr("int32_t", f"d{i}", so), _arr("int32_t", f"sa{i}", _bcast_strides(c["a"].shape, so)),
                  _arr("int32_t", f"sb{i}", _bcast_strides(c["b"].shape, so)),
                  f"static const {kind} p{i} = {{{', '.join(fields)}}};"]
        body.append(f"    o2m_{c['op']}_s8(&p{i}, {len(so)}, d{i}, sa{i}, sb{i}, a{i}, b{i}, y);\n"
                    f"    o2m_out_s8(\"y{i}\", y, {c['y'].size}u);")
    return "\n".join(['#include "o2m_s8_elementwise.h"', '#include "o2m_io.h"', *decls,
                      f"static int8_t y[{y_max}];", "int main(void)", "{", *body, "    o2m_done();",
                      "    return 0;", "}", ""])


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_fast_paths_under_qemu_cortex_m4(tmp_path, random_cases):
    from onnx2mcu.codegen.board_project import write_board_files
    from onnx2mcu.simulator.run_c import build, run_qemu

    for name in ("o2m_s8_elementwise.c", "o2m_s8_elementwise.h", "o2m_s8_common.h", "o2m_common.h"):
        shutil.copy2(RUNTIME / name, tmp_path / name)
    (tmp_path / "main.c").write_text(program(random_cases))
    write_board_files("mps2-an386", tmp_path, ["main.c", "o2m_s8_elementwise.c"])
    elf = build(tmp_path, "mps2-an386")
    disassembly = __import__("subprocess").run(
        ["arm-none-eabi-objdump", "-d", str(tmp_path / "o2m_s8_elementwise.o")], capture_output=True, text=True).stdout
    assert "smmlar" in disassembly and "ssat" in disassembly
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, elf=elf)
    assert result.exit_code == 0, result.stderr
    outputs = result.outputs()
    for i, c in enumerate(random_cases):
        np.testing.assert_array_equal(outputs[f"y{i}"], c["y"].reshape(-1),
                                      err_msg=f"case {i}: {c['op']} {c['mode']} {c['a'].shape} {c['b'].shape}")


# ----------------------------------------------------------------- float -> int8 QUANTIZE
def quantize_cases() -> list[dict]:
    """Ties (exact halves at several scales, and one ulp either side), values near the +-2^20
    clamp and far beyond it, +-inf, NaN, -0, denormals, random normals; zero points at both ends."""
    from onnx2mcu.ops.int8 import QuantizeInt8, _quantize_away

    rng = np.random.default_rng(77)
    out = []
    for scale in (0.25, 0.007839307, 1.0, 3.0e-5, 96.0):
        s = np.float32(scale)
        ties = ((np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)) * s).astype(np.float32)
        near = np.concatenate([np.nextafter(ties, np.float32(0)), np.nextafter(ties, np.float32(np.inf)),
                               np.nextafter(ties, np.float32(-np.inf))])
        big = np.array([1048575.5, 1048576.0, 1048576.5, 2097151.0, 2097152.0, 4194304.0, 1e9], np.float32) * s
        special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -1e-45, 1e-38, 3.4e38, -3.4e38], np.float32)
        x = np.concatenate([ties, near, big, -big, special, rng.normal(0, 200, 400).astype(np.float32) * s,
                            rng.uniform(-1, 1, 200).astype(np.float32) * s]).astype(np.float32)
        for zp in (-128, 127, int(rng.integers(-128, 128))):
            out.append({"x": x, "scale": float(s), "zp": zp, "y": _quantize_away(x, QuantizeInt8("fixed", float(s), zp))})
    return out


def test_quantize_on_the_host(tmp_path):
    from c_harness import build_and_load, runtime_dir

    lib = build_and_load([runtime_dir() / "o2m_s8_quantize.c"], tmp_path, name="s8q", include_dirs=[runtime_dir()])
    fn = declare(lib, "o2m_quantize_away_s8", None, ctypes.c_int32, ctypes.c_void_p, ctypes.c_float,
                 ctypes.c_int32, ctypes.c_void_p)
    for c in quantize_cases():
        y = np.zeros(c["x"].size, np.int8)
        fn(c["x"].size, ptr(c["x"]), c["scale"], c["zp"], ptr(y))
        np.testing.assert_array_equal(y, c["y"], err_msg=f"scale {c['scale']} zp {c['zp']}")


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_quantize_under_qemu_cortex_m4(tmp_path):
    from onnx2mcu.codegen.board_project import write_board_files
    from onnx2mcu.simulator.run_c import build, run_qemu

    all_cases = quantize_cases()
    for name in ("o2m_s8_quantize.c", "o2m_s8_quantize.h", "o2m_common.h"):
        shutil.copy2(RUNTIME / name, tmp_path / name)
    decls, body = [], []
    for i, c in enumerate(all_cases):
        bits = c["x"].view(np.uint32)
        decls.append(f"static const uint32_t xb{i}[{bits.size}] = {{{', '.join(f'{int(v)}u' for v in bits)}}};")
        body.append(f"    memcpy(x, xb{i}, sizeof xb{i});\n"
                    f"    o2m_quantize_away_s8({bits.size}, x, {np.float32(c['scale']).item()!r}f, {c['zp']}, y);\n"
                    f"    o2m_out_s8(\"y{i}\", y, {bits.size}u);")
    n_max = max(c["x"].size for c in all_cases)
    (tmp_path / "main.c").write_text("\n".join([
        "#include <string.h>", '#include "o2m_s8_quantize.h"', '#include "o2m_io.h"', *decls,
        f"static float x[{n_max}];", f"static int8_t y[{n_max}];", "int main(void)", "{", *body,
        "    o2m_done();", "    return 0;", "}", ""]))
    write_board_files("mps2-an386", tmp_path, ["main.c", "o2m_s8_quantize.c"])
    elf = build(tmp_path, "mps2-an386")
    disassembly = __import__("subprocess").run(
        ["arm-none-eabi-objdump", "-d", str(tmp_path / "o2m_s8_quantize.o")], capture_output=True, text=True).stdout
    assert "vcvt.s32.f32" in disassembly and "ssat" in disassembly
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, elf=elf)
    assert result.exit_code == 0, result.stderr
    outputs = result.outputs()
    for i, c in enumerate(all_cases):
        np.testing.assert_array_equal(outputs[f"y{i}"], c["y"], err_msg=f"scale {c['scale']} zp {c['zp']}")


# ----------------------------------------------------------------- pools and mean (row sums)
def pool_cases() -> list[dict]:
    """AveragePool / MaxPool windows from 1x1 to global 8x8 (row sums of 1..13 bytes: the
    four-at-a-time sums and their tails), paddings, strides, both pad counts; Mean over
    contiguous runs (inner == 1, GlobalAveragePool) and strided ones; inputs at the ends of the
    range (sums of -128s and 127s)."""
    from s8_c_backend import MEAN_METHODS, MeanP, PoolP

    rng = np.random.default_rng(909)
    out = []
    # windows spanning whole input rows at the first output column only (then padded ones)
    fixed = [((2, 3), (0, 0, 1, 2), (1, 1), 5, 3), ((3, 4), (0, 0, 0, 3), (2, 1), 7, 4)]
    for i in range(60 + len(fixed)):
        kind = "max" if i % 4 == 3 else "avg"
        kh, kw = (int(v) for v in rng.integers(1, 9, 2))
        if i % 5 == 0:
            kh = kw = 8  # global
        pads = (0, 0, 0, 0) if i % 5 == 0 else tuple(int(rng.integers(0, k)) for k in (kh, kw, kh, kw))
        stride = (kh, kw) if i % 5 == 0 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        n, c = 1, int(rng.integers(1, 6))
        h = 8 if i % 5 == 0 else int(rng.integers(max(kh - pads[0] - pads[2], 1), 14))
        w = 8 if i % 5 == 0 else int(rng.integers(max(kw - pads[1] - pads[3], 1), 14))
        if i >= 60:
            (kh, kw), pads, stride, h, w = fixed[i - 60]
            kind = "avg"
        x = rng.integers(-128, 128, (n, c, h, w)).astype(np.int8)
        if i % 3 == 0:
            x[:, 0] = rng.choice([-128, 127])
        lo, hi = (int(rng.integers(-128, 0)), int(rng.integers(0, 128))) if rng.random() < 0.3 else (-128, 127)
        cip = kind == "avg" and rng.random() < 0.3
        zp = _zp(rng)
        p = R.pool_params((kh, kw), stride=stride, pads=pads, act_min=lo, act_max=hi, count_include_pad=cip)
        want = R.maxpool(x, p) if kind == "max" else R.avgpool(x, p, input_zero_point=zp)
        st = PoolP(n, c, h, w, want.shape[2], want.shape[3], kh, kw, *stride, pads[0], pads[1], lo, hi, cip, zp)
        out.append({"fn": f"o2m_{kind}pool2d_s8", "struct": st, "kind": "o2m_pool2d_s8_params", "x": x, "y": want,
                    "args": ""})
    for i in range(30):
        method = ("rescale", "same", "float")[i % 3]
        outer, reduce = int(rng.integers(1, 40)), int(rng.integers(1, 200))
        inner = 1 if i % 2 == 0 else int(rng.integers(2, 4))
        si, zi = float(rng.uniform(0.01, 0.1)), _zp(rng)
        so, zo = (si, zi) if method == "same" else (si * float(rng.choice([0.3, 1.0, 2.0, 0.05])), _zp(rng))
        p = R.mean_params(si, zi, so, zo, method, count=reduce)
        x = rng.integers(-128, 128, (outer, reduce, inner)).astype(np.int8)
        if i % 4 == 0:
            x[0] = rng.choice([-128, 127])
        want = R.mean(x, 1, p, keepdims=False)
        st = MeanP(MEAN_METHODS[method], p.input_zero_point, p.output_zero_point, p.multiplier, p.shift,
                   p.float_scale)
        out.append({"fn": "o2m_mean_s8", "struct": st, "kind": "o2m_mean_s8_params", "x": x, "y": want,
                    "args": f"{outer}, {reduce}, {inner}, "})
    return out


def test_pool_cases_on_the_host(tmp_path):
    lib = build_s8_library(tmp_path)
    for i, c in enumerate(pool_cases()):
        y = np.zeros(c["y"].shape, np.int8)
        if c["fn"] == "o2m_mean_s8":
            outer, reduce, inner = c["x"].shape
            declare(lib, c["fn"], None, P, I, I, I, P, P)(ctypes.byref(c["struct"]), outer, reduce, inner,
                                                          ptr(c["x"]), ptr(y))
        else:
            declare(lib, c["fn"], None, P, P, P)(ctypes.byref(c["struct"]), ptr(c["x"]), ptr(y))
        np.testing.assert_array_equal(y, c["y"], err_msg=f"case {i} {c['fn']}")


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_pool_cases_under_qemu_cortex_m4(tmp_path):
    from onnx2mcu.codegen.board_project import write_board_files
    from onnx2mcu.simulator.run_c import build, run_qemu

    all_cases = pool_cases()
    for name in ("o2m_s8_pool.c", "o2m_s8_pool.h", "o2m_s8_common.h", "o2m_common.h"):
        shutil.copy2(RUNTIME / name, tmp_path / name)
    decls, body = [], []
    for i, c in enumerate(all_cases):
        st = c["struct"]
        fields = [f"{float(getattr(st, n))!r}f" if isinstance(getattr(st, n), float) else str(int(getattr(st, n)))
                  for n, _ in st._fields_]
        decls += [_arr("int8_t", f"x{i}", c["x"]), f"static const {c['kind']} p{i} = {{{', '.join(fields)}}};"]
        body.append(f"    {c['fn']}(&p{i}, {c['args']}x{i}, y);\n    o2m_out_s8(\"y{i}\", y, {c['y'].size}u);")
    y_max = max(c["y"].size for c in all_cases)
    (tmp_path / "main.c").write_text("\n".join(['#include "o2m_s8_pool.h"', '#include "o2m_io.h"', *decls,
                                                f"static int8_t y[{y_max}];", "int main(void)", "{", *body,
                                                "    o2m_done();", "    return 0;", "}", ""]))
    write_board_files("mps2-an386", tmp_path, ["main.c", "o2m_s8_pool.c"])
    elf = build(tmp_path, "mps2-an386")
    disassembly = __import__("subprocess").run(
        ["arm-none-eabi-objdump", "-d", str(tmp_path / "o2m_s8_pool.o")], capture_output=True, text=True).stdout
    assert "smlad" in disassembly and "sxtb16" in disassembly
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, elf=elf)
    assert result.exit_code == 0, result.stderr
    outputs = result.outputs()
    for i, c in enumerate(all_cases):
        np.testing.assert_array_equal(outputs[f"y{i}"], c["y"].reshape(-1), err_msg=f"case {i} {c['fn']}")
