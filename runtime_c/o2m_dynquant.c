/*
 * o2m_dynquant.c - DynamicQuantizeLinear, MatMulInteger, ConvInteger.
 * See o2m_dynquant.h.
 */
#include "o2m_internal.h"
#include "o2m_dynquant.h"

/* ----- DynamicQuantizeLinear ------------------------------------------- */
static float clamp_u8(float v)
{
    if (v < 0.0f) {
        return 0.0f;
    }
    return v > 255.0f ? 255.0f : v;
}

void o2m_dynamic_quantize_u8(int32_t count, const float *x, uint8_t *y, float *y_scale,
                             uint8_t *y_zero_point)
{
    float lo = 0.0f;
    float hi = 0.0f;
    float scale, zero_point;
    int32_t i;

    for (i = 0; i < count; ++i) {
        const float v = x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    zero_point = o2m__round_half_even(clamp_u8(0.0f - lo / scale));
    for (i = 0; i < count; ++i) {
        y[i] = (uint8_t)clamp_u8(o2m__round_half_even(x[i] / scale) + zero_point);
    }
    if (y_scale) {
        *y_scale = scale;
    }
    if (y_zero_point) {
        *y_zero_point = (uint8_t)zero_point;
    }
}

/* ----- MatMulInteger ----------------------------------------------------- */
/* One [m, k] x [k, n] product: row i of y accumulates (a[i][kk] - za) times row kk of
 * (b - zb), kk ascending. */
#define O2M_DEFINE_MATMUL_INTEGER(SUFFIX, TA, TB)                                                  \
    static void mmi_core_##SUFFIX(const o2m_matmul_integer_params *p, const TA *a, const TB *b,     \
                                  int32_t za, const TB *b_zp, int32_t *y)                          \
    {                                                                                              \
        const int32_t m = p->m, n = p->n, k = p->k;                                                \
        const int32_t zb0 = b_zp ? (int32_t)b_zp[0] : 0;                                           \
        int32_t i, kk, j;                                                                          \
        for (i = 0; i < m; ++i) {                                                                  \
            int32_t *row = y + (size_t)i * n;                                                      \
            const TA *arow = a + (size_t)i * k;                                                    \
            for (j = 0; j < n; ++j) {                                                              \
                row[j] = 0;                                                                        \
            }                                                                                      \
            for (kk = 0; kk < k; ++kk) {                                                           \
                const int32_t av = (int32_t)arow[kk] - za;                                         \
                const TB *brow = b + (size_t)kk * n;                                               \
                if (av == 0) {                                                                     \
                    continue;                                                                      \
                }                                                                                  \
                if (p->b_zp_per_column) {                                                          \
                    for (j = 0; j < n; ++j) {                                                      \
                        row[j] += av * ((int32_t)brow[j] - (int32_t)b_zp[j]);                      \
                    }                                                                              \
                } else {                                                                           \
                    for (j = 0; j < n; ++j) {                                                      \
                        row[j] += av * ((int32_t)brow[j] - zb0);                                   \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    void o2m_matmul_integer_##SUFFIX(const o2m_matmul_integer_params *p, const TA *a, const TB *b, \
                                     const TA *a_zero_point, const TB *b_zero_point, int32_t *y)   \
    {                                                                                              \
        int32_t idx[O2M_MATMUL_MAX_BATCH] = {0, 0, 0, 0};                                          \
        const int32_t za = a_zero_point ? (int32_t)a_zero_point[0] : 0;                            \
        const size_t out_step = (size_t)p->m * p->n;                                               \
        int32_t total = 1;                                                                         \
        int32_t bt, d;                                                                             \
        for (d = 0; d < p->batch_rank; ++d) {                                                      \
            total *= p->batch_dims[d];                                                             \
        }                                                                                          \
        for (bt = 0; bt < total; ++bt) {                                                           \
            ptrdiff_t a_off = 0, b_off = 0;                                                        \
            for (d = 0; d < p->batch_rank; ++d) {                                                  \
                a_off += (ptrdiff_t)idx[d] * p->a_strides[d];                                      \
                b_off += (ptrdiff_t)idx[d] * p->b_strides[d];                                      \
            }                                                                                      \
            mmi_core_##SUFFIX(p, a + a_off, b + b_off, za, b_zero_point, y + (size_t)bt * out_step); \
            for (d = p->batch_rank - 1; d >= 0; --d) { /* next batch index, last dim fastest */    \
                if (++idx[d] < p->batch_dims[d]) {                                                 \
                    break;                                                                         \
                }                                                                                  \
                idx[d] = 0;                                                                        \
            }                                                                                      \
        }                                                                                          \
    }

O2M_DEFINE_MATMUL_INTEGER(u8u8, uint8_t, uint8_t)
O2M_DEFINE_MATMUL_INTEGER(u8s8, uint8_t, int8_t)
O2M_DEFINE_MATMUL_INTEGER(s8u8, int8_t, uint8_t)
O2M_DEFINE_MATMUL_INTEGER(s8s8, int8_t, int8_t)

/* ----- ConvInteger ------------------------------------------------------- */
/* Direct convolution: each output sums its valid taps only (padded taps are 0 once centred). */
#define O2M_DEFINE_CONV_INTEGER(SUFFIX, TX, TW)                                                    \
    void o2m_conv_integer_##SUFFIX(const o2m_conv_integer_params *p, const TX *x, const TW *w,     \
                                   const TX *x_zero_point, const TW *w_zero_point, int32_t *y)     \
    {                                                                                              \
        const int32_t cin_g = p->c_in / p->groups;                                                 \
        const int32_t cout_g = p->c_out / p->groups;                                               \
        const int32_t zx = x_zero_point ? (int32_t)x_zero_point[0] : 0;                            \
        const size_t plane = (size_t)p->h_in * p->w_in;                                            \
        const size_t taps = (size_t)p->k_h * p->k_w;                                               \
        int32_t b, oc, oh, ow, ic, kh, kw;                                                         \
        for (b = 0; b < p->n; ++b) {                                                               \
            for (oc = 0; oc < p->c_out; ++oc) {                                                    \
                const int32_t g = oc / cout_g;                                                     \
                const int32_t zw = w_zero_point                                                    \
                    ? (int32_t)w_zero_point[p->w_zp_per_channel ? oc : 0] : 0;                     \
                const TX *xg = x + ((size_t)b * p->c_in + (size_t)g * cin_g) * plane;              \
                const TW *wo = w + (size_t)oc * cin_g * taps;                                      \
                int32_t *yo = y + ((size_t)b * p->c_out + oc) * p->h_out * p->w_out;               \
                for (oh = 0; oh < p->h_out; ++oh) {                                                \
                    const int32_t ih0 = oh * p->stride_h - p->pad_top;                             \
                    int32_t kh_lo, kh_hi;                                                          \
                    o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);                \
                    for (ow = 0; ow < p->w_out; ++ow) {                                            \
                        const int32_t iw0 = ow * p->stride_w - p->pad_left;                        \
                        int32_t kw_lo, kw_hi;                                                      \
                        int32_t acc = 0;                                                           \
                        o2m__tap_range(iw0, p->w_in, p->k_w, p->dil_w, &kw_lo, &kw_hi);            \
                        for (ic = 0; ic < cin_g; ++ic) {                                           \
                            const TX *xc = xg + (size_t)ic * plane;                                \
                            const TW *wc = wo + (size_t)ic * taps;                                 \
                            for (kh = kh_lo; kh < kh_hi; ++kh) {                                   \
                                const TX *xr = xc + (size_t)(ih0 + kh * p->dil_h) * p->w_in;       \
                                const TW *wr = wc + (size_t)kh * p->k_w;                           \
                                for (kw = kw_lo; kw < kw_hi; ++kw) {                               \
                                    acc += ((int32_t)xr[iw0 + kw * p->dil_w] - zx)                 \
                                           * ((int32_t)wr[kw] - zw);                               \
                                }                                                                  \
                            }                                                                      \
                        }                                                                          \
                        yo[(size_t)oh * p->w_out + ow] = acc;                                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

O2M_DEFINE_CONV_INTEGER(u8u8, uint8_t, uint8_t)
O2M_DEFINE_CONV_INTEGER(u8s8, uint8_t, int8_t)
O2M_DEFINE_CONV_INTEGER(s8u8, int8_t, uint8_t)
O2M_DEFINE_CONV_INTEGER(s8s8, int8_t, int8_t)
