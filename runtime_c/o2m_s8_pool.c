/*
 * o2m_s8_pool.c - int8 MaxPool, AveragePool, Mean.  See o2m_s8_pool.h.
 */
#include "o2m_s8_pool.h"

static int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* total / count, rounded half away from zero (C division truncates). */
static int32_t rounded_div(int32_t total, int32_t count)
{
    return total > 0 ? (total + count / 2) / count : (total - count / 2) / count;
}

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32 && defined(__GNUC__)
#include <arm_acle.h>
#define O2M_POOL_SIMD 1
#endif

/* Sum of n int8 values (int32: exact in any order).  On v7E-M four at a time: a word's bytes
 * 0, 2 and 1, 3 as int16 pairs (SXTB16, SXTB16 of the word rotated by 8), each pair added
 * into the total by SMLAD with (1, 1). */
static int32_t sum_s8(const int8_t *x, int32_t n)
{
    int32_t total = 0, i = 0;
#ifdef O2M_POOL_SIMD
    for (; i + 4 <= n; i += 4) {
        uint32_t w, odd;
        memcpy(&w, x + i, sizeof w);
        total = __smlad(__sxtb16(w), 0x00010001, total);
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(odd) : "r"(w));
        total = __smlad(odd, 0x00010001, total);
    }
#else
    for (; i + 4 <= n; i += 4) {
        total += (int32_t)x[i] + x[i + 1] + x[i + 2] + x[i + 3];
    }
#endif
    for (; i < n; ++i) {
        total += x[i];
    }
    return total;
}

static void window(int32_t start, int32_t k, int32_t size, int32_t *lo, int32_t *hi)
{
    *lo = start < 0 ? -start : 0;
    *hi = start + k > size ? size - start : k;
}

static void pool(const o2m_pool2d_s8_params *p, const int8_t *x, int8_t *y, int32_t is_max)
{
    int32_t nc, oh, ow;
    for (nc = 0; nc < p->n * p->c; ++nc) {
        const int8_t *xc = x + (int64_t)nc * p->h_in * p->w_in;
        int8_t *yc = y + (int64_t)nc * p->h_out * p->w_out;
        for (oh = 0; oh < p->h_out; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            int32_t kh_lo, kh_hi;
            window(ih0, p->k_h, p->h_in, &kh_lo, &kh_hi);
            for (ow = 0; ow < p->w_out; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                int32_t kw_lo, kw_hi, kh, kw, v, kh_end = kh_hi;
                int32_t acc = is_max ? -128 : 0;
                int32_t count;
                window(iw0, p->k_w, p->w_in, &kw_lo, &kw_hi);
                count = (kh_hi > kh_lo && kw_hi > kw_lo) ? (kh_hi - kh_lo) * (kw_hi - kw_lo) : 0;
                if (!is_max && kw_lo == 0 && kw_hi == p->w_in && iw0 == 0 && kh_hi > kh_lo) {
                    /* the window spans whole rows: one contiguous run */
                    acc = sum_s8(xc + (ih0 + kh_lo) * p->w_in, (kh_hi - kh_lo) * p->w_in);
                    kh_end = kh_lo; /* nothing left for the row loop */
                }
                for (kh = kh_lo; kh < kh_end; ++kh) {
                    const int8_t *xr = xc + (ih0 + kh) * p->w_in + iw0;
                    if (is_max) {
                        for (kw = kw_lo; kw < kw_hi; ++kw) {
                            acc = xr[kw] > acc ? xr[kw] : acc;
                        }
                    } else if (kw_hi > kw_lo) {
                        acc += sum_s8(xr + kw_lo, kw_hi - kw_lo);
                    }
                }
                if (is_max) {
                    v = acc;
                } else if (p->count_include_pad) {
                    const int32_t full = p->k_h * p->k_w;
                    v = rounded_div(acc + (full - count) * p->pad_value, full);
                } else {
                    v = count > 0 ? rounded_div(acc, count) : 0;
                }
                yc[oh * p->w_out + ow] = (int8_t)clamp_i32(v, p->act_min, p->act_max);
            }
        }
    }
}

void o2m_maxpool2d_s8(const o2m_pool2d_s8_params *p, const int8_t *x, int8_t *y)
{
    pool(p, x, y, 1);
}

void o2m_avgpool2d_s8(const o2m_pool2d_s8_params *p, const int8_t *x, int8_t *y)
{
    pool(p, x, y, 0);
}

/* The mean's output from the sum of `reduce` int8 values, by the node's method. */
static int8_t mean_of(const o2m_mean_s8_params *p, int32_t total, int32_t reduce)
{
    int32_t v;
    if (p->method == O2M_S8_MEAN_SAME) {
        v = rounded_div(total, reduce);
    } else if (p->method == O2M_S8_MEAN_FLOAT) {
        total -= p->input_zero_point * reduce;
        v = o2m_s8_requant_float(total, p->scale, p->output_zero_point, -128, 127);
    } else {
        total -= p->input_zero_point * reduce;
        v = rounded_div(o2m_s8_mbqm(total, p->multiplier, p->shift), reduce) + p->output_zero_point;
    }
    return (int8_t)clamp_i32(v, -128, 127);
}

void o2m_mean_s8(const o2m_mean_s8_params *p, int32_t outer, int32_t reduce, int32_t inner, const int8_t *x,
                 int8_t *y)
{
    int32_t o, r, i;
    if (inner == 1) { /* GlobalAveragePool, a mean over the last axis: contiguous runs */
        for (o = 0; o < outer; ++o) {
            y[o] = mean_of(p, sum_s8(x + (int64_t)o * reduce, reduce), reduce);
        }
        return;
    }
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const int8_t *xs = x + (int64_t)o * reduce * inner + i;
            int32_t total = 0;
            for (r = 0; r < reduce; ++r) {
                total += xs[(int64_t)r * inner];
            }
            y[(int64_t)o * inner + i] = mean_of(p, total, reduce);
        }
    }
}
