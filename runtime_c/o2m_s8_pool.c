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
                int32_t kw_lo, kw_hi, kh, kw, v;
                int32_t acc = is_max ? -128 : 0;
                int32_t count = 0;
                window(iw0, p->k_w, p->w_in, &kw_lo, &kw_hi);
                for (kh = kh_lo; kh < kh_hi; ++kh) {
                    const int8_t *xr = xc + (ih0 + kh) * p->w_in + iw0;
                    for (kw = kw_lo; kw < kw_hi; ++kw) {
                        if (is_max) {
                            acc = xr[kw] > acc ? xr[kw] : acc;
                        } else {
                            acc += xr[kw];
                        }
                        ++count;
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

void o2m_mean_s8(const o2m_mean_s8_params *p, int32_t outer, int32_t reduce, int32_t inner, const int8_t *x,
                 int8_t *y)
{
    int32_t o, r, i;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < inner; ++i) {
            const int8_t *xs = x + (int64_t)o * reduce * inner + i;
            int32_t total = 0;
            int32_t v;
            for (r = 0; r < reduce; ++r) {
                total += xs[(int64_t)r * inner];
            }
            if (p->method == O2M_S8_MEAN_SAME) {
                v = rounded_div(total, reduce);
            } else if (p->method == O2M_S8_MEAN_FLOAT) {
                total -= p->input_zero_point * reduce;
                v = o2m_s8_requant_float(total, p->scale, p->output_zero_point, -128, 127);
            } else {
                total -= p->input_zero_point * reduce;
                v = rounded_div(o2m_s8_mbqm(total, p->multiplier, p->shift), reduce) + p->output_zero_point;
            }
            y[(int64_t)o * inner + i] = (int8_t)clamp_i32(v, -128, 127);
        }
    }
}
