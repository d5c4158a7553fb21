/*
 * o2m_s8_conv.c - int8 convolution, fully connected, batched matmul.  See o2m_s8_conv.h.
 * Integer sums are exact (int32, no overflow for int8 operands and
 * K * 2^16 < 2^31), so the loop order never changes a result.
 */
#include "o2m_s8_conv.h"

/* Taps [*lo, *hi) of a kernel row whose input position start + k*dil lies in [0, size). */
static void valid_taps(int32_t start, int32_t dil, int32_t k_size, int32_t size, int32_t *lo, int32_t *hi)
{
    int32_t a = 0;
    int32_t b = k_size;
    while (a < b && start + a * dil < 0) {
        ++a;
    }
    while (b > a && start + (b - 1) * dil >= size) {
        --b;
    }
    *lo = a;
    *hi = b;
}

void o2m_depthwise_conv2d_s8(const o2m_conv2d_s8_params *p, const int8_t *x, const int8_t *w,
                             const int32_t *bias, int8_t *y)
{
    const int32_t mult = p->c_out / p->c_in;
    const int32_t plane_in = p->h_in * p->w_in;
    int32_t b, oc, oh, ow;
    for (b = 0; b < p->n; ++b) {
        for (oc = 0; oc < p->c_out; ++oc) {
            const int8_t *xc = x + ((int64_t)b * p->c_in + oc / mult) * plane_in;
            const int8_t *wc = w + (int64_t)oc * p->k_h * p->k_w;
            const int32_t b0 = bias != NULL ? bias[oc] : 0;
            for (oh = 0; oh < p->h_out; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int32_t kh_lo, kh_hi;
                valid_taps(ih0, p->dil_h, p->k_h, p->h_in, &kh_lo, &kh_hi);
                for (ow = 0; ow < p->w_out; ++ow) {
                    const int32_t iw0 = ow * p->stride_w - p->pad_left;
                    int32_t kw_lo, kw_hi, kh, kw;
                    int32_t acc = b0;
                    valid_taps(iw0, p->dil_w, p->k_w, p->w_in, &kw_lo, &kw_hi);
                    for (kh = kh_lo; kh < kh_hi; ++kh) {
                        const int8_t *xr = xc + (ih0 + kh * p->dil_h) * p->w_in + iw0;
                        const int8_t *wr = wc + kh * p->k_w;
                        for (kw = kw_lo; kw < kw_hi; ++kw) {
                            acc += ((int32_t)xr[kw * p->dil_w] + p->input_offset) * ((int32_t)wr[kw] + p->filter_offset);
                        }
                    }
                    y[(((int64_t)b * p->c_out + oc) * p->h_out + oh) * p->w_out + ow] =
                        o2m_s8_requant_channel(&p->requant, oc, acc);
                }
            }
        }
    }
}

void o2m_depthwise_conv2d_s8_inplace(const o2m_conv2d_s8_params *p, const int8_t *x, const int8_t *w,
                                     const int32_t *bias, int8_t *y, int8_t *scratch)
{
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    o2m_conv2d_s8_params one = *p;
    int32_t k, i;
    one.n = 1;
    one.c_in = 1;
    one.c_out = 1;
    one.groups = 1;
    for (k = 0; k < p->n * p->c_in; ++k) {
        const int32_t c = k % p->c_in;
        if (p->requant.per_channel) {
            one.requant.multipliers = p->requant.multipliers + c;
            one.requant.shifts = p->requant.shifts + c;
            one.requant.scales = p->requant.scales != NULL ? p->requant.scales + c : NULL;
        }
        o2m_depthwise_conv2d_s8(&one, x + (int64_t)k * plane_in, w + (int64_t)c * p->k_h * p->k_w,
                                bias != NULL ? bias + c : NULL, scratch);
        /* bytes [k*plane, (k+1)*plane) lie inside input planes <= k: all read by now */
        for (i = 0; i < plane; ++i) {
            y[(int64_t)k * plane + i] = scratch[i];
        }
    }
}

void o2m_conv2d_s8(const o2m_conv2d_s8_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                   int8_t *y)
{
    const int32_t cin_g = p->c_in / p->groups;
    const int32_t cout_g = p->c_out / p->groups;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t k_plane = p->k_h * p->k_w;
    int32_t b, oc, oh, ow;
    if (p->groups == p->c_in && p->c_out % p->c_in == 0) {
        o2m_depthwise_conv2d_s8(p, x, w, bias, y);
        return;
    }
    for (b = 0; b < p->n; ++b) {
        for (oc = 0; oc < p->c_out; ++oc) {
            const int32_t g = oc / cout_g;
            const int8_t *xg = x + ((int64_t)b * p->c_in + (int64_t)g * cin_g) * plane_in;
            const int8_t *wo = w + (int64_t)oc * cin_g * k_plane;
            const int32_t b0 = bias != NULL ? bias[oc] : 0;
            for (oh = 0; oh < p->h_out; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int32_t kh_lo, kh_hi;
                valid_taps(ih0, p->dil_h, p->k_h, p->h_in, &kh_lo, &kh_hi);
                for (ow = 0; ow < p->w_out; ++ow) {
                    const int32_t iw0 = ow * p->stride_w - p->pad_left;
                    int32_t kw_lo, kw_hi, ic, kh, kw;
                    int32_t acc = b0;
                    valid_taps(iw0, p->dil_w, p->k_w, p->w_in, &kw_lo, &kw_hi);
                    for (ic = 0; ic < cin_g; ++ic) {
                        const int8_t *xc = xg + (int64_t)ic * plane_in;
                        const int8_t *wc = wo + ic * k_plane;
                        for (kh = kh_lo; kh < kh_hi; ++kh) {
                            const int8_t *xr = xc + (ih0 + kh * p->dil_h) * p->w_in + iw0;
                            const int8_t *wr = wc + kh * p->k_w;
                            for (kw = kw_lo; kw < kw_hi; ++kw) {
                                acc += ((int32_t)xr[kw * p->dil_w] + p->input_offset) * ((int32_t)wr[kw] + p->filter_offset);
                            }
                        }
                    }
                    y[(((int64_t)b * p->c_out + oc) * p->h_out + oh) * p->w_out + ow] =
                        o2m_s8_requant_channel(&p->requant, oc, acc);
                }
            }
        }
    }
}

void o2m_fully_connected_s8(const o2m_fully_connected_s8_params *p, const int8_t *x, const int8_t *w,
                            const int32_t *bias, int8_t *y)
{
    int32_t b, n, k;
    for (b = 0; b < p->batch; ++b) {
        const int8_t *xb = x + (int64_t)b * p->in_features;
        for (n = 0; n < p->out_features; ++n) {
            const int8_t *wn = w + (int64_t)n * p->in_features;
            int32_t acc = bias != NULL ? bias[n] : 0;
            for (k = 0; k < p->in_features; ++k) {
                acc += ((int32_t)xb[k] + p->input_offset) * ((int32_t)wn[k] + p->filter_offset);
            }
            y[(int64_t)b * p->out_features + n] = o2m_s8_requant_channel(&p->requant, n, acc);
        }
    }
}

void o2m_batch_matmul_s8(const o2m_batch_matmul_s8_params *p, const int8_t *a, const int8_t *b,
                         const int32_t *bias, int8_t *y)
{
    int32_t t, i, j, k;
    for (t = 0; t < p->batch; ++t) {
        const int8_t *at = a + (int64_t)t * p->a_batch_stride;
        const int8_t *bt = b + (int64_t)t * p->b_batch_stride;
        int8_t *yt = y + (int64_t)t * p->m * p->n;
        for (i = 0; i < p->m; ++i) {
            for (j = 0; j < p->n; ++j) {
                int32_t acc = bias != NULL ? bias[j] : 0;
                for (k = 0; k < p->k; ++k) {
                    acc += ((int32_t)at[i * p->k + k] + p->a_offset) * ((int32_t)bt[k * p->n + j] + p->b_offset);
                }
                yt[i * p->n + j] = o2m_s8_requant_channel(&p->requant, j, acc);
            }
        }
    }
}
