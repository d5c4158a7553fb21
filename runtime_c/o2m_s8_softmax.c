/*
 * o2m_s8_softmax.c - int8 Softmax.  See o2m_s8_softmax.h.
 *
 * exp of non-positive Q5.26 values and the reciprocal of the Q12.19 sum use
 * the gemmlowp fixed-point routines that TFLite's int8 Softmax is built on
 * (their constants are exp(-2^k) and Newton-Raphson seeds in Q0.31 / Q2.29).
 */
#include "o2m_s8_softmax.h"

#define DIFF_INTEGER_BITS 5
#define ACCUM_INTEGER_BITS 12

static int32_t mul_q(int32_t a, int32_t b)
{
    return o2m_s8_srdhm(a, b);
}

static int32_t wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static int32_t wrap_sub(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* x * 2^exponent saturated to int32 (exponent > 0). */
static int32_t sat_shl(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = wrap_add(a, 1 << 28);      /* a + 1/8 */
    const int32_t x2 = mul_q(x, x);
    const int32_t x3 = mul_q(x2, x);
    const int32_t x4 = mul_q(x2, x2);
    const int32_t x4_over_4 = o2m_s8_rdbp(x4, 2);
    const int32_t poly = o2m_s8_rdbp(wrap_add(mul_q(wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return wrap_add(constant_term, mul_q(constant_term, wrap_add(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26, result in Q0.31. */
static int32_t exp_negative(int32_t a)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t frac_bits = 31 - DIFF_INTEGER_BITS;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t a_mod = wrap_sub(a & (one_quarter - 1), one_quarter);
    const int32_t remainder = wrap_sub(a_mod, a);
    int32_t result = exp_quarter(sat_shl(a_mod, DIFF_INTEGER_BITS));
    int32_t k;
    for (k = 0; k < 7; ++k) { /* exponents -2 .. 4 */
        if (remainder & (1 << (frac_bits - 2 + k))) {
            result = mul_q(result, barrel[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out. */
static int32_t one_over_one_plus(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    int32_t x = wrap_add(constant_48_over_17, mul_q(half_denominator, constant_neg_32_over_17));
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = wrap_sub(1 << 29, mul_q(half_denominator, x));
        x = wrap_add(x, sat_shl(mul_q(x, one_minus), 2));
    }
    return sat_shl(x, 1);
}

static int32_t clz32(uint32_t x)
{
    int32_t n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

static int32_t scaled_diff(const o2m_softmax_s8_params *p, int32_t diff)
{
    return o2m_s8_srdhm((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
}

void o2m_softmax_s8(const o2m_softmax_s8_params *p, int32_t outer, int32_t axis_dim, int32_t inner,
                    const int8_t *x, int8_t *y)
{
    int32_t o, i, c;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const int8_t *xs = x + (int64_t)o * axis_dim * inner + i;
            int8_t *ys = y + (int64_t)o * axis_dim * inner + i;
            int32_t max = -128;
            int32_t sum = 0;
            int32_t headroom, bits_over_unit, scale;
            for (c = 0; c < axis_dim; ++c) {
                max = xs[c * inner] > max ? xs[c * inner] : max;
            }
            for (c = 0; c < axis_dim; ++c) {
                const int32_t diff = xs[c * inner] - max;
                if (diff >= p->diff_min) {
                    sum = wrap_add(sum, o2m_s8_rdbp(exp_negative(scaled_diff(p, diff)), ACCUM_INTEGER_BITS));
                }
            }
            headroom = clz32((uint32_t)sum);
            bits_over_unit = ACCUM_INTEGER_BITS - headroom;
            scale = one_over_one_plus((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
            for (c = 0; c < axis_dim; ++c) {
                const int32_t diff = xs[c * inner] - max;
                int32_t v = -128;
                if (diff >= p->diff_min) {
                    v = o2m_s8_rdbp(mul_q(scale, exp_negative(scaled_diff(p, diff))), bits_over_unit + 31 - 8) - 128;
                    v = v < -128 ? -128 : (v > 127 ? 127 : v);
                }
                ys[c * inner] = (int8_t)v;
            }
        }
    }
}
