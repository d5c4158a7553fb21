"""int8 kernels: qmath against TFLite's formulas, int8_ref against independent
integer arithmetic, and runtime_c/o2m_s8_*.c against int8_ref BIT-EXACTLY.

The C kernels are built once per session with the host gcc (strict C99) and
called through ctypes.  Random cases come from seeded loops over odd sizes,
every padding / stride / dilation / group form, per-tensor and per-channel
scales, scale ratios from 1e-6 to 1e3, zero points at both ends, saturation.
"""
from __future__ import annotations

import ctypes
import math
from ctypes import c_float
from fractions import Fraction

import numpy as np
import pytest

from c_harness import declare, i32, ptr
from onnx2mcu import qmath
from onnx2mcu.ops import int8_ref as R

from s8_c_backend import (MEAN_METHODS, STRUCTS, AddP, ConvP, FCP, MatmulP, MeanP, MulP, PoolP, RequantP, SoftmaxP, I, P,
                          build_s8_library, _bcast_strides, requant_struct as _requant_struct)

pytestmark = [pytest.mark.c]

@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_s8_library(tmp_path_factory.mktemp("s8"))


def test_struct_layouts_match(lib):
    for name, cls in STRUCTS.items():
        assert declare(lib, f"probe_{name}", ctypes.c_size_t)() == ctypes.sizeof(cls), name


# ----------------------------------------------------------------- qmath: TFLite values
@pytest.mark.unit
@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.25, (1 << 30, -1)),
    (0.75, (3 << 29, 0)),
    (-0.5, (-(1 << 30), 0)),
    (2.0 ** -31, (1 << 30, -30)),
    (2.0 ** -32, (1 << 30, -31)),
    (2.0 ** -33, (0, 0)),              # shift < -31 flushes to zero
    (1.0 - 2.0 ** -33, (1 << 30, 1)),  # mantissa rounds up to 2^31: halved, shift + 1
    (1.0 / 3.0, (1431655765, -1)),     # round(2/3 * 2^31) = 1431655765.33 -> 1431655765
    (0.1, (1717986918, -3)),           # round(0.8 * 2^31) = 1717986918.4
])
def test_quantize_multiplier_known(real, expected):
    assert qmath.quantize_multiplier(real) == expected


@pytest.mark.unit
def test_quantize_multiplier_represents_value():
    rng = np.random.default_rng(1)
    for real in np.exp(rng.uniform(math.log(1e-9), math.log(1e3), 2000)):
        m, s = qmath.quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


def _round_away(fr: Fraction) -> int:
    q = math.floor(abs(fr) + Fraction(1, 2))
    return q if fr >= 0 else -q


def _mbqm_exact(x: int, m: int, s: int) -> int:
    """TFLite's two roundings, by exact rational arithmetic on Python ints."""
    left, right = max(s, 0), max(-s, 0)
    xs = ((x << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    if xs == m == -(1 << 31):
        high = (1 << 31) - 1
    else:
        high = math.floor(Fraction(xs * m, 1 << 31) + Fraction(1, 2))  # the high multiply rounds ties up
    return _round_away(Fraction(high, 1 << right))


@pytest.mark.unit
def test_fixed_point_primitives_known():
    srdhm = qmath.saturating_rounding_doubling_high_mul
    rdbp = qmath.rounding_divide_by_pot
    assert int(srdhm(qmath.INT32_MIN, qmath.INT32_MIN)) == qmath.INT32_MAX
    assert int(srdhm(1 << 30, 1 << 30)) == 1 << 29
    assert int(srdhm(-(1 << 30), 1 << 30)) == -(1 << 29)
    assert [int(rdbp(v, 1)) for v in (5, -5, 3, -3, 1, -1, 4, -4)] == [3, -3, 2, -2, 1, -1, 2, -2]
    assert int(rdbp(qmath.INT32_MAX, 31)) == 1 and int(rdbp(qmath.INT32_MIN, 31)) == -1


@pytest.mark.unit
def test_multiply_by_quantized_multiplier_matches_exact_rationals():
    rng = np.random.default_rng(2)
    xs = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 3000), [qmath.INT32_MIN, qmath.INT32_MAX, 0, -1, 1]])
    ms = rng.integers(1 << 30, 1 << 31, xs.size)
    ms[::4] = 1 << 30  # exact halves: ties in both roundings
    ss = rng.integers(-31, 8, xs.size)
    got = qmath.multiply_by_quantized_multiplier(xs, ms, ss)
    want = [_mbqm_exact(int(x), int(m), int(s)) for x, m, s in zip(xs, ms, ss)]
    assert got.tolist() == want


def test_c_fixed_point_primitives_match_numpy(lib):
    srdhm = declare(lib, "t_srdhm", I, I, I)
    rdbp = declare(lib, "t_rdbp", I, I, I)
    mbqm = declare(lib, "t_mbqm", I, I, I, I)
    rne = declare(lib, "t_round_even", I, c_float)
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 1500), [qmath.INT32_MIN, qmath.INT32_MAX, 0, -1]])
    b = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 1500), [qmath.INT32_MIN, qmath.INT32_MAX, 0, -1]])
    e = rng.integers(0, 32, a.size)
    s = rng.integers(-31, 12, a.size)
    assert [srdhm(int(x), int(y)) for x, y in zip(a, b)] == qmath.saturating_rounding_doubling_high_mul(a, b).tolist()
    assert [rdbp(int(x), int(k)) for x, k in zip(a, e)] == qmath.rounding_divide_by_pot(a, e).tolist()
    assert [mbqm(int(x), int(y), int(k)) for x, y, k in zip(a, b, s)] == \
        qmath.multiply_by_quantized_multiplier(a, b, s).tolist()
    halves = np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)
    assert [rne(float(v)) for v in halves] == np.rint(halves).astype(int).tolist()


@pytest.mark.unit
def test_gemmlowp_exp_and_reciprocal_accuracy():
    q26 = np.linspace(-31.9, 0, 4001)
    raw = np.round(q26 * (1 << 26)).astype(np.int64)
    got = qmath.exp_on_negative_values(raw) / 2.0 ** 31
    assert np.max(np.abs(got - np.exp(raw / 2.0 ** 26))) < 2e-8 * 100
    assert int(qmath.exp_on_negative_values(0)) == qmath.INT32_MAX
    x = np.linspace(0, 0.999, 2001)
    got = qmath.one_over_one_plus_x_for_x_in_0_1(np.round(x * 2.0 ** 31).astype(np.int64)) / 2.0 ** 31
    assert np.max(np.abs(got - 1 / (1 + x))) < 1e-8 * 100


@pytest.mark.unit
@pytest.mark.parametrize("act,scale,zp,expected", [
    ("none", 0.1, 3, (-128, 127)),
    ("relu", 0.1, 3, (3, 127)),
    ("relu6", 0.05, -128, (-128, -8)),       # 6 / 0.05 = 120 -> -128 + 120
    ("relu6", 0.01, 0, (0, 127)),            # 600 saturates
    ("relu_n1_to_1", 0.02, 10, (-40, 60)),
    ("relu", 0.1, -128, (-128, 127)),
])
def test_activation_range(act, scale, zp, expected):
    assert qmath.activation_range(act, scale, zp) == expected


# ----------------------------------------------------------------- random case helpers
SCALE_RATIOS = (1e-6, 1e-4, 1e-2, 0.3, 1.0, 7.0, 1e2, 1e3)


def _zp(rng) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def _q8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def _conv_naive_acc(x, w, bias, p: R.ConvParams):
    """Independent integer conv (Python loops over output positions, skipping out-of-range taps)."""
    n, c_in, h, wd = x.shape
    c_out, cin_g, kh, kw = w.shape
    ho, wo = R.conv_output_hw(h, wd, kh, kw, p)
    cout_g = c_out // p.groups
    acc = np.zeros((n, c_out, ho, wo), np.int64)
    xi = x.astype(np.int64) + p.input_offset
    for oc in range(c_out):
        g = oc // cout_g
        for i in range(kh):
            for j in range(kw):
                for oh in range(ho):
                    ih = oh * p.stride[0] - p.pads[0] + i * p.dilation[0]
                    if not 0 <= ih < h:
                        continue
                    for ow in range(wo):
                        iw = ow * p.stride[1] - p.pads[1] + j * p.dilation[1]
                        if 0 <= iw < wd:
                            acc[:, oc, oh, ow] += xi[:, g * cin_g:(g + 1) * cin_g, ih, iw] @ (w[oc, :, i, j].astype(np.int64) + p.filter_offset)
    if bias is not None:
        acc += bias.astype(np.int64).reshape(1, -1, 1, 1)
    return acc


def _conv_case(rng, kind: str):
    n = int(rng.integers(1, 3))
    k = int(rng.choice([1, 2, 3, 5])) if kind != "pointwise" else 1
    kw = k if rng.random() < 0.7 else int(rng.choice([1, 3]))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if kind != "pointwise" else (1, 1)
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if kind in ("dilated", "regular") else (1, 1)
    pads = tuple(int(v) for v in rng.integers(0, k + 1, 4)) if kind != "pointwise" else (0, 0, 0, 0)
    if kind == "depthwise":
        c_in = int(rng.integers(1, 7))
        groups, c_out = c_in, c_in * int(rng.integers(1, 3))
    elif kind == "grouped":
        groups = int(rng.integers(2, 4))
        c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    else:
        groups, c_in, c_out = 1, int(rng.integers(1, 6)), int(rng.integers(1, 7))
    h = int(rng.integers(max((k - 1) * dil[0] + 1 - pads[0] - pads[2], 1), 11))
    w_ = int(rng.integers(max((kw - 1) * dil[1] + 1 - pads[1] - pads[3], 1), 12))
    x = _q8(rng, (n, c_in, h, w_))
    w = _q8(rng, (c_out, c_in // groups, k, kw))
    s_in, s_out = float(rng.uniform(0.005, 0.1)), None
    per_channel = rng.random() < 0.6
    base = float(rng.choice(SCALE_RATIOS)) * 1e-2
    fs = base * np.exp(rng.uniform(-1, 1, c_out if per_channel else 1))
    s_out = float(s_in * base * rng.uniform(0.5, 2) * 30)
    bias = rng.integers(-(1 << 14), 1 << 14, c_out).astype(np.int32) if rng.random() < 0.8 else None
    act = str(rng.choice(["none", "relu", "relu6"]))
    # onnxruntime's asymmetric per-tensor weights (uint8 weights lowered to int8 keep a zero point)
    filter_zp = int(rng.integers(-100, 101)) if not per_channel and rng.random() < 0.5 else 0
    p = R.conv_params(s_in, _zp(rng), fs, s_out, _zp(rng), c_out, act=act, stride=stride, dilation=dil,
                      pads=pads, groups=groups, filter_zero_point=filter_zp)
    return x, w, bias, p, per_channel


def _run_conv_c(lib, x, w, bias, p: R.ConvParams, per_channel, mode, fn="o2m_conv2d_s8"):
    f = declare(lib, fn, None, P, P, P, P, P)
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    ho, wo = R.conv_output_hw(h, wd, kh, kw, p)
    keep: list = []
    rq = _requant_struct(p.multipliers, p.shifts, p.float_scales if mode == "float" else None, True,
                         p.output_offset, p.act_min, p.act_max, keep)
    cp = ConvP(n, c_in, h, wd, c_out, ho, wo, kh, kw, *p.stride, *p.dilation, p.pads[0], p.pads[1], p.groups,
               p.input_offset, rq, p.filter_offset)
    y = np.zeros((n, c_out, ho, wo), np.int8)
    b = None if bias is None else np.ascontiguousarray(bias)
    f(ctypes.byref(cp), ptr(np.ascontiguousarray(x)), ptr(np.ascontiguousarray(w)), ptr(b), ptr(y))
    return y


@pytest.mark.parametrize("kind", ["regular", "pointwise", "depthwise", "grouped", "dilated"])
def test_conv2d_c_bit_exact(lib, kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    saturated = {-128: 0, 127: 0}
    for _ in range(40):
        x, w, bias, p, per_channel = _conv_case(rng, kind)
        for mode in ("fixed", "float"):
            want = R.conv2d(x, w, bias, p, mode=mode)
            got = _run_conv_c(lib, x, w, bias, p, per_channel, mode)
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} {mode} {p}")
            if kind == "depthwise":
                got = _run_conv_c(lib, x, w, bias, p, per_channel, mode, fn="o2m_depthwise_conv2d_s8")
                np.testing.assert_array_equal(got, want)
        saturated[-128] += int(np.sum(want == -128))
        saturated[127] += int(np.sum(want == 127))
    assert saturated[-128] > 0 and saturated[127] > 0  # the cases reach both saturation ends


def test_conv2d_ref_accumulators_match_naive_loops():
    rng = np.random.default_rng(5)
    for kind in ("regular", "depthwise", "grouped", "dilated", "pointwise"):
        for _ in range(6):
            x, w, bias, p, _ = _conv_case(rng, kind)
            np.testing.assert_array_equal(R.conv2d_acc(x, w, bias, p), _conv_naive_acc(x, w, bias, p))


@pytest.mark.unit
def test_requantize_float_rounds_half_to_even_and_fixed_rounds_away():
    acc = np.array([1, 3, 5, -1, -3, -5])
    assert qmath.requantize_float(acc, 0.5, 0, -128, 127).tolist() == [0, 2, 2, 0, -2, -2]
    m, s = qmath.quantize_multiplier(0.5)
    # TFLite's doubling high multiply rounds ties up (toward +inf), its divide by 2^k away from zero
    assert qmath.requantize_fixed(acc, m, s, 0, -128, 127).tolist() == [1, 2, 3, 0, -1, -2]
    m, s = qmath.quantize_multiplier(0.25)
    assert (m, s) == (1 << 30, -1)
    assert qmath.requantize_fixed(acc * 2, m, s, 0, -128, 127).tolist() == [1, 2, 3, -1, -2, -3]


# ----------------------------------------------------------------- FC / MatMul
def test_fully_connected_c_bit_exact(lib):
    rng = np.random.default_rng(11)
    f = declare(lib, "o2m_fully_connected_s8", None, P, P, P, P, P)
    for _ in range(60):
        batch, k, nf = int(rng.integers(1, 5)), int(rng.integers(1, 300)), int(rng.integers(1, 40))
        per_channel = rng.random() < 0.5
        s_in = float(rng.uniform(0.01, 0.1))
        ratio = float(rng.choice(SCALE_RATIOS))
        fs = 0.01 * np.exp(rng.uniform(-1, 1, nf if per_channel else 1))
        s_out = s_in * 0.01 * math.sqrt(k) * 10 / ratio ** 0.25
        wzp = int(rng.integers(-5, 6)) if rng.random() < 0.3 else 0
        p = R.fc_params(s_in, _zp(rng), fs, s_out, _zp(rng), act=str(rng.choice(["none", "relu"])),
                        filter_zero_point=wzp)
        x, w = _q8(rng, (batch, k)), _q8(rng, (nf, k))
        bias = rng.integers(-5000, 5000, nf).astype(np.int32)
        for mode in ("fixed", "float"):
            want = R.fully_connected(x, w, bias, p, mode=mode)
            keep: list = []
            rq = _requant_struct(p.multipliers, p.shifts, p.float_scales if mode == "float" else None,
                                 per_channel, p.output_offset, p.act_min, p.act_max, keep)
            y = np.zeros((batch, nf), np.int8)
            f(ctypes.byref(FCP(batch, k, nf, p.input_offset, p.filter_offset, rq)), ptr(x), ptr(w), ptr(bias), ptr(y))
            np.testing.assert_array_equal(y, want)
        acc = (x.astype(np.int64) - (-p.input_offset)) @ (w.astype(np.int64) + p.filter_offset).T + bias
        mult = np.broadcast_to(p.multipliers, (nf,))
        shift = np.broadcast_to(p.shifts, (nf,))
        exact = [[min(max(_mbqm_exact(int(a), int(mult[j]), int(shift[j])) + p.output_offset, p.act_min), p.act_max)
                  for j, a in enumerate(row)] for row in acc]
        assert want.tolist() != [] and R.fully_connected(x, w, bias, p).tolist() == exact


def test_batch_matmul_c_bit_exact(lib):
    rng = np.random.default_rng(12)
    f = declare(lib, "o2m_batch_matmul_s8", None, P, P, P, P, P)
    for _ in range(40):
        batch, m, k, n = (int(v) for v in rng.integers(1, 9, 4))
        broadcast_b = rng.random() < 0.4
        a = _q8(rng, (batch, m, k))
        b = _q8(rng, (1 if broadcast_b else batch, k, n))
        per_channel = rng.random() < 0.5
        p = R.fc_params(0.05, _zp(rng), 0.02 * np.exp(rng.uniform(-1, 1, n if per_channel else 1)),
                        float(rng.uniform(0.005, 0.5)), _zp(rng), filter_zero_point=_zp(rng))
        want = R.matmul(a, b, None, p)
        keep: list = []
        rq = _requant_struct(p.multipliers, p.shifts, None, per_channel, p.output_offset, p.act_min, p.act_max, keep)
        y = np.zeros((batch, m, n), np.int8)
        mp = MatmulP(batch, m, n, k, m * k, 0 if broadcast_b else k * n, p.input_offset, p.filter_offset, rq)
        f(ctypes.byref(mp), ptr(a), ptr(b), None, ptr(y))
        np.testing.assert_array_equal(y, want)


# ----------------------------------------------------------------- Add / Sub / Mul
def _random_bcast_shapes(rng):
    rank = int(rng.integers(0, 5))
    out = [int(v) for v in rng.integers(1, 6, rank)]
    a = [d if rng.random() < 0.7 else 1 for d in out]
    b = [d if rng.random() < 0.6 else 1 for d in out][int(rng.integers(0, rank + 1)):]
    return tuple(a), tuple(b), tuple(out)


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_binary_c_bit_exact(lib, op):
    rng = np.random.default_rng(len(op) * 7 + ord(op[0]))
    f = declare(lib, f"o2m_{op}_s8", None, P, I, P, P, P, P, P, P)
    for _ in range(80):
        sa, sb, _ = _random_bcast_shapes(rng)
        so = tuple(np.broadcast_shapes(sa, sb))
        a, b = _q8(rng, sa), _q8(rng, sb)
        s1 = float(rng.uniform(0.01, 0.2))
        s2 = s1 * float(rng.choice([1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 1e3]))
        act = str(rng.choice(["none", "relu"]))
        if op == "mul":
            so_ = s1 * s2 * float(rng.choice([1.0, 20.0, 100.0, 1e-2]))
            p = R.mul_params(s1, _zp(rng), s2, _zp(rng), so_, _zp(rng), act=act)
        else:
            so_ = max(s1, s2) * float(rng.choice([0.1, 1.0, 2.0, 5.0]))
            offsets = tuple(int(v) for v in rng.choice([0, 128], 3))  # uint8 values held as int8
            p = R.add_params(s1, _zp(rng), s2, _zp(rng), so_, _zp(rng), act=act, value_offsets=offsets)
        for mode in ("fixed", "float"):
            want = getattr(R, op)(a, b, p, mode=mode)
            if op == "mul":
                cp = MulP(p.input1_offset, p.input2_offset, p.output_offset, p.output_multiplier, p.output_shift,
                          p.act_min, p.act_max, mode == "float", p.float_scale)
            else:
                cp = AddP(p.input1_offset, p.input2_offset, p.output_offset, p.left_shift, p.input1_multiplier,
                          p.input1_shift, p.input2_multiplier, p.input2_shift, p.output_multiplier, p.output_shift,
                          p.act_min, p.act_max, mode == "float", p.ratio_a, p.ratio_b, p.float_offset,
                          p.float_offset_sub, p.value_offset_a, p.value_offset_b, p.value_offset_y)
            y = np.zeros(so, np.int8)
            f(ctypes.byref(cp), len(so), ptr(i32(so)), ptr(i32(_bcast_strides(sa, so))),
              ptr(i32(_bcast_strides(sb, so))), ptr(np.ascontiguousarray(a)), ptr(np.ascontiguousarray(b)), ptr(y))
            np.testing.assert_array_equal(y, want, err_msg=f"{op} {mode} {sa} {sb}")


@pytest.mark.unit
def test_add_ref_close_to_real_arithmetic():
    rng = np.random.default_rng(21)
    for _ in range(50):
        s1, s2, so = (float(v) for v in rng.uniform(0.01, 0.1, 3))
        z1, z2, zo = (int(v) for v in rng.integers(-50, 50, 3))
        a, b = _q8(rng, 500), _q8(rng, 500)
        p = R.add_params(s1, z1, s2, z2, so, zo)
        real = ((a.astype(float) - z1) * s1 + (b.astype(float) - z2) * s2) / so + zo
        assert np.max(np.abs(R.add(a, b, p).astype(float) - np.clip(np.round(real), -128, 127))) <= 1
        real = ((a.astype(float) - z1) * s1 - (b.astype(float) - z2) * s2) / so + zo
        assert np.max(np.abs(R.sub(a, b, p).astype(float) - np.clip(np.round(real), -128, 127))) <= 1


# ----------------------------------------------------------------- pools, mean
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_c_bit_exact(lib, kind):
    rng = np.random.default_rng(31 if kind == "max" else 32)
    f = declare(lib, f"o2m_{kind}pool2d_s8", None, P, P, P)
    for _ in range(120):
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        pads = tuple(int(rng.integers(0, k)) for k in (kh, kw, kh, kw))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 5))
        h = int(rng.integers(max(kh - pads[0] - pads[2], 1), 12))
        w = int(rng.integers(max(kw - pads[1] - pads[3], 1), 12))
        x = _q8(rng, (n, c, h, w))
        lo, hi = (int(rng.integers(-128, 0)), int(rng.integers(0, 128))) if rng.random() < 0.3 else (-128, 127)
        cip = kind == "avg" and rng.random() < 0.3
        zp = _zp(rng)
        p = R.pool_params((kh, kw), stride=stride, pads=pads, act_min=lo, act_max=hi, count_include_pad=cip)
        want = R.maxpool(x, p) if kind == "max" else R.avgpool(x, p, input_zero_point=zp)
        y = np.zeros(want.shape, np.int8)
        cp = PoolP(n, c, h, w, want.shape[2], want.shape[3], kh, kw, *stride, pads[0], pads[1], lo, hi, cip, zp)
        f(ctypes.byref(cp), ptr(x), ptr(y))
        np.testing.assert_array_equal(y, want)


@pytest.mark.unit
def test_avgpool_rounds_half_away_from_zero():
    x = np.array([1, 2, -1, -2, 3, 4, -3, -4], np.int8).reshape(1, 4, 1, 2)
    p = R.pool_params((1, 2))
    assert R.avgpool(x, p).ravel().tolist() == [2, -2, 4, -4]  # 1.5 -> 2, -1.5 -> -2, 3.5 -> 4


@pytest.mark.parametrize("method", ["rescale", "same", "float"])
def test_mean_c_bit_exact(lib, method):
    rng = np.random.default_rng({"same": 41, "rescale": 42, "float": 43}[method])
    f = declare(lib, "o2m_mean_s8", None, P, I, I, I, P, P)
    for _ in range(60):
        outer, reduce, inner = int(rng.integers(1, 6)), int(rng.integers(1, 80)), int(rng.integers(1, 4))
        si, zi = float(rng.uniform(0.01, 0.1)), _zp(rng)
        so, zo = (si, zi) if method == "same" else (si * float(rng.choice([0.3, 1.0, 2.0, 0.05])), _zp(rng))
        p = R.mean_params(si, zi, so, zo, method, count=reduce)
        x = _q8(rng, (outer, reduce, inner))
        want = R.mean(x, 1, p, keepdims=False)
        y = np.zeros((outer, inner), np.int8)
        cp = MeanP(MEAN_METHODS[method], p.input_zero_point, p.output_zero_point, p.multiplier, p.shift,
                   p.float_scale)
        f(ctypes.byref(cp), outer, reduce, inner, ptr(x), ptr(y))
        np.testing.assert_array_equal(y, want)
        real = ((x.astype(float) - zi) * si).mean(axis=1) / so + zo
        assert np.max(np.abs(want - np.clip(np.round(real), -128, 127))) <= 1


# ----------------------------------------------------------------- softmax, LUT, requantize
def test_softmax_c_bit_exact(lib):
    rng = np.random.default_rng(51)
    f = declare(lib, "o2m_softmax_s8", None, P, I, I, I, P, P)
    for _ in range(60):
        outer, d, inner = int(rng.integers(1, 5)), int(rng.integers(1, 300)), int(rng.integers(1, 4))
        s_in = float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0))))
        beta = float(rng.choice([1.0, 0.5, 2.0]))
        p = R.softmax_params(s_in, beta)
        x = _q8(rng, (outer, d, inner))
        want = R.softmax(x, p, axis=1)
        y = np.zeros_like(x)
        f(ctypes.byref(SoftmaxP(p.input_multiplier, p.input_left_shift, p.diff_min)), outer, d, inner, ptr(x), ptr(y))
        np.testing.assert_array_equal(y, want)
        xf = x.astype(np.float64)
        real = np.exp((xf - xf.max(axis=1, keepdims=True)) * s_in * beta)
        real = real / real.sum(axis=1, keepdims=True)
        assert np.max(np.abs(want.astype(float) - np.clip(np.round(real * 256 - 128), -128, 127))) <= 1


def test_lut_c_bit_exact(lib):
    f = declare(lib, "o2m_lut_s8", None, I, P, P, P)
    x = np.arange(-128, 128, dtype=np.int8)
    fns = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
           "hardswish": lambda v: v * np.clip(v + 3, 0, 6) / 6, "exp": np.exp}
    for name, fn in fns.items():
        table = R.lut_s8(fn, 0.05, 3, 1 / 128 if name != "exp" else 0.5, -1)
        real = fn(((x.astype(np.float64) - 3) * 0.05)) / (1 / 128 if name != "exp" else 0.5) - 1
        assert np.max(np.abs(table.astype(float) - np.clip(np.round(real), -128, 127))) <= 1, name
        y = np.zeros_like(x)
        f(256, ptr(x), ptr(table), ptr(y))
        np.testing.assert_array_equal(y, R.lut(x, table))
        y = x.copy()
        f(256, ptr(y), ptr(table), ptr(y))  # in place
        np.testing.assert_array_equal(y, table)


def test_requantize_c_bit_exact(lib):
    rng = np.random.default_rng(61)
    f = declare(lib, "o2m_requantize_s8", None, P, I, P, P)
    x = np.arange(-128, 128, dtype=np.int8)
    for _ in range(40):
        si = float(rng.uniform(0.001, 0.1))
        so = si * float(rng.choice([1e-2, 0.3, 1.0, 2.5, 1e2, 1e3]))
        p = R.requant_params(si, _zp(rng), so, _zp(rng))
        for mode in ("fixed", "float"):
            want = R.requantize(x, p, mode=mode)
            y = np.zeros_like(x)
            f(ctypes.byref(RequantP(p.input_offset, p.output_offset, p.multiplier, p.shift, mode == "float",
                                    p.float_scale)), 256, ptr(x), ptr(y))
            np.testing.assert_array_equal(y, want)
