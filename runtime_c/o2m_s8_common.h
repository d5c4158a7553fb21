/*
 * o2m_s8_common.h - fixed-point arithmetic and requantization shared by the
 * int8 kernels (o2m_*_s8).  See onnx2mcu/qmath.py for the Python twin and
 * docs/ARCHITECTURE.md ("int8") for why two requantization modes exist.
 *
 * Conventions of every int8 kernel:
 *   - Activations are int8_t, NCHW (ONNX layout); accumulators int32_t;
 *     biases int32_t already in the accumulator's scale.
 *   - Zero points are passed as offsets: input_offset = -input_zero_point,
 *     output_offset = +output_zero_point (the kernels add them).
 *   - A real rescale factor is an int32 multiplier in Q0.31 and a shift
 *     (real = multiplier * 2^(shift - 31)), computed once at compile time;
 *     shift <= 30.  Fixed mode applies it as TFLite does: left part of the
 *     shift, saturating rounding doubling high multiply, rounding right shift.
 *   - Float mode (a non-NULL `scales` or float_mode != 0) instead computes
 *     round_half_even((float)acc * scale) as onnxruntime does.
 *   - Signed right shifts are arithmetic and int32 overflow of the left
 *     pre-shift wraps (true of gcc, clang and arm compilers).
 *   - No kernel allocates; only the in-place depthwise kernels take a scratch
 *     (one output plane, passed by the caller).
 */
#ifndef O2M_S8_COMMON_H
#define O2M_S8_COMMON_H

#include "o2m_common.h"

#include <float.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* High 32 bits of 2*a*b rounded to nearest, ties up (toward +inf);
 * INT32_MIN * INT32_MIN saturates to INT32_MAX. */
static inline int32_t o2m_s8_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31]. */
static inline int32_t o2m_s8_rdbp(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* round(x * multiplier * 2^(shift - 31)), TFLite's double rounding. */
static inline int32_t o2m_s8_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return o2m_s8_rdbp(o2m_s8_srdhm(shifted, multiplier), right);
}

/* Round half to even of a float in [-2^22, 2^22] (the values a requant clamp
 * leaves), in float32 arithmetic: adding 1.5 * 2^23 drops the fraction with
 * the FPU's default round-to-nearest-even. */
static inline int32_t o2m_s8_round_even(float v)
{
    volatile float shifted = v + 12582912.0f;
    return (int32_t)(shifted - 12582912.0f);
}

/*
 * fmaf: x * y + z rounded once to float (float-mode Add, onnxruntime's
 * QLinearAdd).  With a hardware fused multiply-add (__FP_FAST_FMAF: Cortex-M4F,
 * M7, x86 with FMA) the compiler's builtin is one instruction; otherwise it is
 * computed here rather than by libm (newlib's fmaf rounds twice): x * y is
 * exact in double (24 + 24 bits), the double sum is rounded to odd (an inexact
 * sum gets its last bit set; the error comes from a two-sum), and a double
 * rounded to odd rounds to float as the exact value does (53 >= 2 * 24 + 2).
 * Contracting p + z into a double fma changes nothing (p is exact) and the
 * two-sum has no product to contract.  onnx2mcu.qmath.fma_f32 is the twin.
 */
#if defined(__GNUC__) && defined(__FP_FAST_FMAF)
static inline float o2m_s8_fmaf(float x, float y, float z)
{
    return __builtin_fmaf(x, y, z);
}
#else
#if DBL_MANT_DIG < 50
#error "o2m_s8_fmaf needs a double with at least 50 mantissa bits"
#endif
static inline float o2m_s8_fmaf(float x, float y, float z)
{
    const double p = (double)x * (double)y;
    double s = p + (double)z;
    const double t = s - p;
    const double err = (p - (s - t)) + ((double)z - t);
    uint64_t bits;
    if (err != 0.0) {
        memcpy(&bits, &s, sizeof bits);
        if ((bits & 1u) == 0u) {
            bits = (err > 0.0) == (s > 0.0) ? bits + 1u : bits - 1u;
            memcpy(&s, &bits, sizeof s);
        }
    }
    return (float)s;
}
#endif

/* Float-mode requant: clamp((float)acc * scale) to [lo - zp, hi - zp], round half even, + zp. */
static inline int8_t o2m_s8_requant_float(int32_t acc, float scale, int32_t output_offset,
                                          int32_t act_min, int32_t act_max)
{
    float v = (float)acc * scale;
    const float lo = (float)(act_min - output_offset);
    const float hi = (float)(act_max - output_offset);
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)(o2m_s8_round_even(v) + output_offset);
}

/* Fixed-mode requant: mbqm, + zp, clamp to [act_min, act_max]. */
static inline int8_t o2m_s8_requant_fixed(int32_t acc, int32_t multiplier, int32_t shift,
                                          int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int32_t v = o2m_s8_mbqm(acc, multiplier, shift) + output_offset;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

/*
 * Output requantization of conv / fully connected / matmul: one multiplier
 * and shift per output channel (per_channel != 0) or one for all (index 0).
 * scales non-NULL selects float mode (scales indexed like multipliers).
 * act_min/act_max are the fused activation bounds in the output's domain.
 */
typedef struct {
    const int32_t *multipliers;
    const int32_t *shifts;
    const float *scales;
    int32_t per_channel;
    int32_t output_offset;
    int32_t act_min, act_max;
} o2m_s8_requant;

static inline int8_t o2m_s8_requant_channel(const o2m_s8_requant *r, int32_t channel, int32_t acc)
{
    const int32_t c = r->per_channel ? channel : 0;
    if (r->scales != NULL) {
        return o2m_s8_requant_float(acc, r->scales[c], r->output_offset, r->act_min, r->act_max);
    }
    return o2m_s8_requant_fixed(acc, r->multipliers[c], r->shifts[c], r->output_offset, r->act_min,
                                r->act_max);
}

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_COMMON_H */
