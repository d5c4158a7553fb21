"""Integer-only quantized arithmetic (int8 activations, int32 accumulators).

Two requantization modes exist because the two references a user may want to
match disagree in the last bits (see docs/ARCHITECTURE.md, "int8"):

* ``fixed`` (default) is TFLite's integer-only arithmetic: every real
  rescale factor is turned once, at compile time, into an int32 multiplier in
  Q0.31 and a power-of-two shift (:func:`quantize_multiplier`), and at run time
  applied with a saturating rounding doubling high multiply followed by a
  rounding right shift (:func:`multiply_by_quantized_multiplier`).  This is
  what TFLite Micro's reference kernels and CMSIS-NN compute, bit for bit.
* ``float`` multiplies the int32 accumulator by a float32 scale and rounds
  half to even, as onnxruntime's QLinear kernels do (:func:`requantize_float`).

Everything here is numpy only; the run-time functions are vectorised over
int64 arrays holding int32 values (so no intermediate product can overflow)
and return int64 arrays.  The core imports no pipeline stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN, INT8_MAX = -128, 127

REQUANT_MODES = ("fixed", "float")


# ----------------------------------------------------------------- compile time
def _round_half_away(x: float) -> float:
    """C's round(): halves go away from zero (TFLite's TfLiteRound)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with real ~= multiplier * 2**(shift - 31).

    The multiplier is in [2**30, 2**31) for positive reals (Q0.31 of the
    frexp mantissa, rounded half away from zero; a mantissa that rounds up to
    2**31 is halved and the shift incremented).  Reals below ~2**-31 flush to
    (0, 0), as TFLite does.  0.0 gives (0, 0).
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real):
        raise ValueError(f"cannot quantize a non-finite multiplier {real!r}")
    mantissa, shift = math.frexp(real)
    q_fixed = int(_round_half_away(mantissa * (1 << 31)))
    if abs(q_fixed) == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel :func:`quantize_multiplier`: (int32 multipliers, int32 shifts)."""
    pairs = [quantize_multiplier(r) for r in np.asarray(reals, dtype=np.float64).ravel()]
    mult = np.array([m for m, _ in pairs], dtype=np.int32)
    shift = np.array([s for _, s in pairs], dtype=np.int32)
    return mult, shift


def check_shift(shift, what: str = "rescale") -> None:
    """Left shifts above 30 would overflow the int32 pre-shift; such a factor (> 2**30) is a broken model."""
    if np.any(np.asarray(shift) > 30):
        raise ValueError(f"{what}: scale ratio too large for int32 fixed point (shift > 30)")


def conv_real_multipliers(input_scale: float, filter_scales, output_scale: float) -> np.ndarray:
    """input_scale * filter_scale[c] / output_scale in double, as TFLite's conv and depthwise prepare it."""
    fs = np.asarray(filter_scales, dtype=np.float32).astype(np.float64).ravel()
    return np.float64(np.float32(input_scale)) * fs / np.float64(np.float32(output_scale))


def fc_real_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> float:
    """TFLite's fully-connected per-tensor factor: the scale product is taken in float32 first."""
    product = np.float32(np.float32(input_scale) * np.float32(filter_scale))
    return float(np.float64(product) / np.float64(np.float32(output_scale)))


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """zero_point + round_half_away(value / scale), the division in float32 (TFLite's activation bounds)."""
    q = np.float32(value) / np.float32(scale)
    return int(zero_point) + int(_round_half_away(float(q)))


def activation_range(act: str, scale: float, zero_point: int,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """Fused activation bounds in the quantized domain (TFLite's CalculateActivationRangeQuantized).

    act: "none", "relu", "relu6", "relu_n1_to_1".
    """
    if act == "none":
        return qmin, qmax
    if act == "relu":
        return max(qmin, quantize_value(0.0, scale, zero_point)), qmax
    if act == "relu6":
        return (max(qmin, quantize_value(0.0, scale, zero_point)),
                min(qmax, quantize_value(6.0, scale, zero_point)))
    if act == "relu_n1_to_1":
        return (max(qmin, quantize_value(-1.0, scale, zero_point)),
                min(qmax, quantize_value(1.0, scale, zero_point)))
    raise ValueError(f"unknown fused activation {act!r}")


def float_rescale(input_scale: float, filter_scales, output_scale: float) -> np.ndarray:
    """float32 (input_scale * filter_scale) / output_scale, as onnxruntime's QLinearConv/MatMul form it."""
    fs = np.asarray(filter_scales, dtype=np.float32).ravel()
    return (np.float32(input_scale) * fs / np.float32(output_scale)).astype(np.float32)


# ----------------------------------------------------------------- run time
def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap to int32 (what 32-bit C arithmetic does on overflow in practice)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc_div_pow2(x: np.ndarray, bits: int) -> np.ndarray:
    """C integer division by 2**bits (rounds toward zero)."""
    return np.where(x >= 0, x >> bits, -((-x) >> bits))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """High 32 bits of 2*a*b rounded to nearest, ties up (toward +inf: the negative nudge is
    1 - 2**30 and the division truncates); INT32_MIN * INT32_MIN saturates to INT32_MAX."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_div_pow2(ab + nudge, 31)
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2**exponent rounded to nearest, ties away from zero (exponent in [0, 31])."""
    x, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_left_shift(x, exponent: int) -> np.ndarray:
    """x * 2**exponent saturated to int32 (gemmlowp's SaturatingRoundingMultiplyByPOT, positive exponent)."""
    x = _i64(x)
    return np.clip(x << exponent, INT32_MIN, INT32_MAX)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """round(x * multiplier * 2**(shift - 31)) the TFLite way (double rounding).

    The left part of the shift is applied before the high multiply (in
    wrapping int32, like the C kernels), the right part after it as a
    rounding divide.  multiplier and shift broadcast against x.
    """
    x, m, s = _i64(x), _i64(multiplier), _i64(shift)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = wrap_int32(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), right)


def multiply_by_quantized_multiplier_per_channel(x, multipliers, shifts, axis: int) -> np.ndarray:
    """:func:`multiply_by_quantized_multiplier` with one (multiplier, shift) per index of `axis`."""
    x = _i64(x)
    shape = [1] * x.ndim
    shape[axis] = -1
    return multiply_by_quantized_multiplier(x, _i64(multipliers).reshape(shape), _i64(shifts).reshape(shape))


def requantize_fixed(acc, multiplier, shift, output_zero_point: int, act_min: int, act_max: int) -> np.ndarray:
    """int32 accumulator -> int8: fixed-point rescale, add the output zero point, clamp."""
    y = multiply_by_quantized_multiplier(acc, multiplier, shift) + int(output_zero_point)
    return np.clip(y, act_min, act_max).astype(np.int8)


def requantize_float(acc, scale, output_zero_point: int, act_min: int, act_max: int) -> np.ndarray:
    """int32 accumulator -> int8 the onnxruntime way: float32(acc) * scale, clamp, round half to even, + zp."""
    value = _i64(acc).astype(np.float32) * np.asarray(scale, dtype=np.float32)
    lo = np.float32(act_min - int(output_zero_point))
    hi = np.float32(act_max - int(output_zero_point))
    value = np.minimum(np.maximum(value, lo), hi)
    return (np.rint(value).astype(np.int64) + int(output_zero_point)).astype(np.int8)


# ----------------------------------------------------------------- Add / Sub / Mul
ADD_LEFT_SHIFT = 20  # int8 Add/Sub headroom (TFLite: 20 bits for 8-bit, 15 for 16-bit)


@dataclass(frozen=True)
class AddParams:
    """Fixed-point constants of an int8 Add or Sub (TFLite's scheme: both inputs rescaled to a
    common scale 2*max(s1, s2) with 20 bits of headroom, summed, rescaled to the output)."""
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int
    # float mode (onnxruntime QLinearAdd): y = rint(ratio_a * a +/- ratio_b * b + offset)
    ratio_a: float
    ratio_b: float
    float_offset: float      # Add: zp_out - ratio_a * zp1 - ratio_b * zp2
    float_offset_sub: float  # Sub: zp_out - ratio_a * zp1 + ratio_b * zp2
    # float mode reads the model's own integers: stored value + value_offset (128 for the uint8
    # values frontend/uint8.py holds as int8; onnxruntime's formula is not shift-invariant)
    value_offset_a: int = 0
    value_offset_b: int = 0
    value_offset_y: int = 0


def add_params(s1: float, zp1: int, s2: float, zp2: int, s_out: float, zp_out: int,
               act: str = "none", value_offsets: tuple[int, int, int] = (0, 0, 0)) -> AddParams:
    """`value_offsets` (a, b, y): see AddParams.value_offset_a; the zero points are the stored ones."""
    s1, s2, s_out = (float(np.float32(v)) for v in (s1, s2, s_out))
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * s_out))
    check_shift(sho, "Add/Sub output rescale")
    lo, hi = activation_range(act, s_out, zp_out)
    ra = np.float32(np.float32(s1) / np.float32(s_out))
    rb = np.float32(np.float32(s2) / np.float32(s_out))
    oa, ob, oy = (int(v) for v in value_offsets)
    za, zb, zo = (np.float32(int(z) + o) for z, o in ((zp1, oa), (zp2, ob), (zp_out, oy)))
    off = np.float32(zo - ra * za - rb * zb)
    off_sub = np.float32(zo - ra * za + rb * zb)
    return AddParams(-int(zp1), -int(zp2), int(zp_out), ADD_LEFT_SHIFT, m1, sh1, m2, sh2, mo, sho,
                     lo, hi, float(ra), float(rb), float(off), float(off_sub), oa, ob, oy)


def add_s8(a, b, p: AddParams, subtract: bool = False, mode: str = "fixed") -> np.ndarray:
    """int8 Add (or Sub) with numpy broadcasting."""
    a, b = _i64(a), _i64(b)
    a, b = np.broadcast_arrays(a, b)
    if mode == "float":
        va = np.float32(p.ratio_a) * (a + p.value_offset_a).astype(np.float32)
        vb = np.float32(p.ratio_b) * (b + p.value_offset_b).astype(np.float32)
        v = (va - vb + np.float32(p.float_offset_sub)) if subtract else (va + vb + np.float32(p.float_offset))
        oy = p.value_offset_y
        v = np.minimum(np.maximum(v, np.float32(p.act_min + oy)), np.float32(p.act_max + oy))
        return (np.rint(v).astype(np.int64) - oy).astype(np.int8)
    x1 = (a + p.input1_offset) << p.left_shift
    x2 = (b + p.input2_offset) << p.left_shift
    s1 = multiply_by_quantized_multiplier(x1, p.input1_multiplier, p.input1_shift)
    s2 = multiply_by_quantized_multiplier(x2, p.input2_multiplier, p.input2_shift)
    raw = s1 - s2 if subtract else s1 + s2
    y = multiply_by_quantized_multiplier(raw, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(y, p.act_min, p.act_max).astype(np.int8)


@dataclass(frozen=True)
class MulParams:
    """int8 Mul: (a - zp1) * (b - zp2) rescaled by s1*s2/s_out."""
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int
    float_scale: float


def mul_params(s1: float, zp1: int, s2: float, zp2: int, s_out: float, zp_out: int,
               act: str = "none") -> MulParams:
    real = float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(s_out))
    m, sh = quantize_multiplier(real)
    check_shift(sh, "Mul rescale")
    lo, hi = activation_range(act, s_out, zp_out)
    fs = np.float32(np.float32(s1) * np.float32(s2) / np.float32(s_out))
    return MulParams(-int(zp1), -int(zp2), int(zp_out), m, sh, lo, hi, float(fs))


def mul_s8(a, b, p: MulParams, mode: str = "fixed") -> np.ndarray:
    a, b = np.broadcast_arrays(_i64(a), _i64(b))
    prod = (a + p.input1_offset) * (b + p.input2_offset)
    if mode == "float":
        return requantize_float(prod, p.float_scale, p.output_offset, p.act_min, p.act_max)
    return requantize_fixed(prod, p.output_multiplier, p.output_shift, p.output_offset, p.act_min, p.act_max)


# ----------------------------------------------------------------- LUT unary ops
def lut_s8(fn, input_scale: float, input_zero_point: int, output_scale: float,
           output_zero_point: int) -> np.ndarray:
    """256-entry int8 table of a unary op, indexed by (x + 128).

    Each entry is the op's float definition applied to the dequantized input
    and quantized again: dequantize in float32, apply `fn` (a numpy ufunc-like
    callable on float32), multiply by 1/output_scale, round half away from
    zero, add the output zero point, saturate (TFLite's LUT construction).
    """
    q = np.arange(-128, 128, dtype=np.int32)
    x = np.float32(input_scale) * (q - np.int32(input_zero_point)).astype(np.float32)
    with np.errstate(all="ignore"):
        y = np.asarray(fn(x), dtype=np.float32)
        scaled = y * (np.float32(1.0) / np.float32(output_scale))
    rounded = np.where(np.isfinite(scaled), np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5)), 0)
    rounded = np.clip(rounded, -(1 << 20), 1 << 20).astype(np.int64) + int(output_zero_point)
    return np.clip(rounded, INT8_MIN, INT8_MAX).astype(np.int8)


def apply_lut_s8(x, table: np.ndarray) -> np.ndarray:
    return np.asarray(table, dtype=np.int8)[_i64(x) + 128]


# ----------------------------------------------------------------- Softmax
SOFTMAX_DIFF_INTEGER_BITS = 5   # scaled input differences are Q5.26
SOFTMAX_ACCUM_INTEGER_BITS = 12  # the sum of exponentials is Q12.19


@dataclass(frozen=True)
class SoftmaxParams:
    """int8 Softmax constants: input differences (x - max) are scaled by beta*input_scale
    into Q5.26 with (input_multiplier, input_left_shift); differences below diff_min give 0."""
    input_multiplier: int
    input_left_shift: int
    diff_min: int


def softmax_params(input_scale: float, beta: float = 1.0) -> SoftmaxParams:
    ib = SOFTMAX_DIFF_INTEGER_BITS
    real = min(float(beta) * float(np.float32(input_scale)) * (1 << (31 - ib)), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("Softmax: beta * input_scale too small for the fixed-point path")
    radius = math.floor(1.0 * ((1 << ib) - 1) * (1 << (31 - ib)) / (1 << shift))
    return SoftmaxParams(mult, shift, -int(radius))


def _mul(a, b):
    return saturating_rounding_doubling_high_mul(a, b)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor expansion around -1/8)."""
    a = _i64(a)
    constant_term = 1895147668     # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883  # 1/3 in Q0.31
    x = wrap_int32(a + (1 << 28))  # a + 1/8
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(_mul(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + _mul(constant_term, wrap_int32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # exp(-2**k) in Q0.31


def exp_on_negative_values(a, integer_bits: int = SOFTMAX_DIFF_INTEGER_BITS) -> np.ndarray:
    """exp(a) for a <= 0 given in Q(integer_bits).(31-integer_bits); result in Q0.31."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap_int32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_left_shift(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, _mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1) in Q0.31, result in Q0.31 (Newton-Raphson, 3 steps, in Q2.29)."""
    a = _i64(a)
    s = a + INT32_MAX
    half_denominator = _trunc_div_pow2(s + np.where(s >= 0, 1, -1), 1)  # rounding half sum with One
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    one_q2 = 1 << 29
    x = wrap_int32(constant_48_over_17 + _mul(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = _mul(half_denominator, x)
        one_minus = wrap_int32(one_q2 - half_denominator_times_x)
        x = wrap_int32(x + saturating_left_shift(_mul(x, one_minus), 2))
    return saturating_left_shift(x, 1)


def _count_leading_zeros_u32(x) -> np.ndarray:
    """Leading zero bits of x as a uint32 (32 for 0); frexp of an integer below 2**53 is exact."""
    x = _i64(x) & 0xFFFFFFFF
    _, bit_length = np.frexp(x.astype(np.float64))
    return np.where(x == 0, 32, 32 - bit_length.astype(np.int64))


def softmax_s8(x, p: SoftmaxParams, axis: int = -1) -> np.ndarray:
    """TFLite's int8 Softmax along `axis`; output scale 1/256, zero point -128."""
    x = _i64(x)
    x = np.moveaxis(x, axis, -1)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    rescaled = saturating_rounding_doubling_high_mul(wrap_int32(diff << p.input_left_shift), p.input_multiplier)
    exps = exp_on_negative_values(rescaled)
    sum_of_exps = np.where(valid, rounding_divide_by_pot(exps, SOFTMAX_ACCUM_INTEGER_BITS), 0)
    sum_of_exps = wrap_int32(sum_of_exps.sum(axis=-1, keepdims=True))
    headroom_plus_one = _count_leading_zeros_u32(sum_of_exps)
    num_bits_over_unit = SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((sum_of_exps & 0xFFFFFFFF) << headroom_plus_one) - (1 << 31))
    shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    unsat = rounding_divide_by_pot(_mul(shifted_scale, exps), num_bits_over_unit + 31 - 8)
    y = np.where(valid, np.clip(unsat - 128, INT8_MIN, INT8_MAX), INT8_MIN)
    return np.moveaxis(y, -1, axis).astype(np.int8)
