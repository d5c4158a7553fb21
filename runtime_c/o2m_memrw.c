/*
 * o2m_memrw.c - the kernel of the memory rewrites (docs/ARCHITECTURE.md, memory model):
 * a float32 NCHW convolution that applies an activation to its input as it loads
 * it (the activation's output is never stored), an optional batch norm on its
 * result, and an "accumulate into the output" mode.
 *
 * There is no o2m_memrw.h: every runtime_c header is copied into every project,
 * so the generated model.c declares the one prototype itself (codegen/emit/memrw.py)
 * and projects that do not use this kernel stay byte-identical.
 *
 * g = {n, c_in, h_in, w_in, c_out, h_out, w_out, k_h, k_w, stride_h, stride_w,
 *      dil_h, dil_w, pad_top, pad_left, groups} (bottom/right pads live in h_out/w_out).
 * v    = sum_{ic, kh, kw} prologue(x[..]) * w[..]  (ic, kh, kw ascending, from 0.0f; taps
 *        outside the input count as 0, the prologue is not applied to them), + bias[oc]
 *        (bias may be NULL); prologue is an O2M_ACT_* kind, `lo`/`hi` its Clip bounds;
 * v    = (v - bn_mean[oc]) / sqrtf(bn_var[oc] + eps) * bn_scale[oc] + bn_bias[oc] when
 *        bn_scale is not NULL (all four are then given);
 * y[i] = acc[i] + v when acc is not NULL, else v.  acc may equal y (in place: each element
 *        is read before it is written); otherwise acc and y do not overlap.
 * y may equal x (in place, TinyEngine-style) for a stride-1 depthwise conv (groups == c_in ==
 *        c_out, output shaped as the input; scratch: min(pad_top + 1, h_out) * w_out floats)
 *        or a 1x1 conv without pads (c_in == c_out; scratch: c_out floats); the results are the
 *        same as out of place, element by element.  Otherwise x and y do not overlap and
 *        scratch is unused (may be NULL).
 */
#include <math.h>

#include "o2m_common.h"

void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps,
                          const float *x, const float *w, const float *bias, const float *bn_scale,
                          const float *bn_bias, const float *bn_mean, const float *bn_var,
                          const float *acc, float *y, float *scratch);

static float o2m_memrw_prologue(int32_t kind, float lo, float hi, float v)
{
    if (v != v) {
        return v; /* NaN passes through */
    }
    switch (kind) {
    case O2M_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case O2M_ACT_RELU6:
        return v > 6.0f ? 6.0f : (v > 0.0f ? v : 0.0f);
    case O2M_ACT_CLIP:
        return v > hi ? hi : (v < lo ? lo : v);
    default:
        return v;
    }
}

typedef struct {
    int32_t batch, c_in, h_in, w_in, c_out, h_out, w_out, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups;
    int32_t prologue;
    float lo, hi, eps;
    const float *w, *bias, *bn_scale, *bn_bias, *bn_mean, *bn_var;
} o2m_memrw_conv;

/* v of output element (n, oc, oh, ow): the prologue'd taps, the bias, the batch norm. */
static float o2m_memrw_conv_value(const o2m_memrw_conv *c, const float *x, int32_t n, int32_t oc,
                                  int32_t oh, int32_t ow)
{
    const int32_t cin_g = c->c_in / c->groups;
    const int32_t group = oc / (c->c_out / c->groups);
    float v = 0.0f;
    int32_t ic, kh, kw;
    for (ic = 0; ic < cin_g; ++ic) {
        const float *xc = x + (n * c->c_in + group * cin_g + ic) * c->h_in * c->w_in;
        const float *wc = c->w + (oc * cin_g + ic) * c->k_h * c->k_w;
        for (kh = 0; kh < c->k_h; ++kh) {
            const int32_t ih = oh * c->stride_h - c->pad_top + kh * c->dil_h;
            if (ih < 0 || ih >= c->h_in) {
                continue;
            }
            for (kw = 0; kw < c->k_w; ++kw) {
                const int32_t iw = ow * c->stride_w - c->pad_left + kw * c->dil_w;
                if (iw < 0 || iw >= c->w_in) {
                    continue;
                }
                v += o2m_memrw_prologue(c->prologue, c->lo, c->hi, xc[ih * c->w_in + iw]) * wc[kh * c->k_w + kw];
            }
        }
    }
    if (c->bias != NULL) {
        v += c->bias[oc];
    }
    if (c->bn_scale != NULL) {
        v = (v - c->bn_mean[oc]) * (1.0f / sqrtf(c->bn_var[oc] + c->eps)) * c->bn_scale[oc] + c->bn_bias[oc];
    }
    return v;
}

void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps,
                          const float *x, const float *w, const float *bias, const float *bn_scale,
                          const float *bn_bias, const float *bn_mean, const float *bn_var,
                          const float *acc, float *y, float *scratch)
{
    o2m_memrw_conv c;
    const int32_t out_plane = g[5] * g[6];
    int32_t n, oc, oh, ow;
    c.batch = g[0];
    c.c_in = g[1];
    c.h_in = g[2];
    c.w_in = g[3];
    c.c_out = g[4];
    c.h_out = g[5];
    c.w_out = g[6];
    c.k_h = g[7];
    c.k_w = g[8];
    c.stride_h = g[9];
    c.stride_w = g[10];
    c.dil_h = g[11];
    c.dil_w = g[12];
    c.pad_top = g[13];
    c.pad_left = g[14];
    c.groups = g[15];
    c.prologue = prologue;
    c.lo = lo;
    c.hi = hi;
    c.eps = eps;
    c.w = w;
    c.bias = bias;
    c.bn_scale = bn_scale;
    c.bn_bias = bn_bias;
    c.bn_mean = bn_mean;
    c.bn_var = bn_var;
    if ((const float *)y != x) {
        for (n = 0; n < c.batch; ++n) {
            for (oc = 0; oc < c.c_out; ++oc) {
                for (oh = 0; oh < c.h_out; ++oh) {
                    for (ow = 0; ow < c.w_out; ++ow) {
                        const int32_t index = ((n * c.c_out + oc) * c.h_out + oh) * c.w_out + ow;
                        const float v = o2m_memrw_conv_value(&c, x, n, oc, oh, ow);
                        y[index] = acc != NULL ? acc[index] + v : v;
                    }
                }
            }
        }
    } else if (c.k_h == 1 && c.k_w == 1 && c.groups == 1) {
        /* in place, 1x1: a pixel's outputs read only that pixel; scratch holds its c_out results */
        int32_t px;
        for (n = 0; n < c.batch; ++n) {
            for (px = 0; px < out_plane; ++px) {
                for (oc = 0; oc < c.c_out; ++oc) {
                    scratch[oc] = o2m_memrw_conv_value(&c, x, n, oc, px / c.w_out, px % c.w_out);
                }
                for (oc = 0; oc < c.c_out; ++oc) {
                    const int32_t index = (n * c.c_out + oc) * out_plane + px;
                    y[index] = acc != NULL ? acc[index] + scratch[oc] : scratch[oc];
                }
            }
        }
    } else {
        /* in place, depthwise of stride 1: output row oh of a channel reads its input rows
         * >= oh - pad_top, so row oh - pad_top is stored (from a ring of pad_top + 1 rows in
         * scratch) once row oh is computed */
        const int32_t ring = c.pad_top + 1 < c.h_out ? c.pad_top + 1 : c.h_out;
        int32_t row;
        for (n = 0; n < c.batch; ++n) {
            for (oc = 0; oc < c.c_out; ++oc) {
                float *yc = y + (n * c.c_out + oc) * out_plane;
                const float *ac = acc != NULL ? acc + (n * c.c_out + oc) * out_plane : NULL;
                for (oh = 0; oh < c.h_out + ring - 1; ++oh) {
                    if (oh < c.h_out) {
                        float *slot = scratch + (oh % ring) * c.w_out;
                        for (ow = 0; ow < c.w_out; ++ow) {
                            slot[ow] = o2m_memrw_conv_value(&c, x, n, oc, oh, ow);
                        }
                    }
                    row = oh - (ring - 1);
                    if (row >= 0) {
                        const float *slot = scratch + (row % ring) * c.w_out;
                        for (ow = 0; ow < c.w_out; ++ow) {
                            yc[row * c.w_out + ow] = ac != NULL ? ac[row * c.w_out + ow] + slot[ow] : slot[ow];
                        }
                    }
                }
            }
        }
    }
}

/*
 * Max/AveragePool with the prologue on the input, the batch norm on the result, accumulate.
 * g = {n, c, h_in, w_in, h_out, w_out, k_h, k_w, stride_h, stride_w, dil_h, dil_w,
 *      pad_top, pad_left, pad_bottom, pad_right, count_include_pad, kind (0 max, 1 average)}.
 * v = max over the window's taps inside the input of prologue(x) (pads never win; NaN wins;
 *     -INFINITY without a tap), or their sum (row-major) / the tap count (with
 *     count_include_pad: the taps inside the padded input), as o2m_maxpool2d_f32 and
 *     o2m_avgpool2d_f32; then the batch norm and acc as in o2m_memrw_conv2d_f32.
 */
void o2m_memrw_pool2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps,
                          const float *x, const float *bn_scale, const float *bn_bias,
                          const float *bn_mean, const float *bn_var, const float *acc, float *y);

void o2m_memrw_pool2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps,
                          const float *x, const float *bn_scale, const float *bn_bias,
                          const float *bn_mean, const float *bn_var, const float *acc, float *y)
{
    const int32_t batch = g[0], channels = g[1], h_in = g[2], w_in = g[3], h_out = g[4], w_out = g[5];
    const int32_t k_h = g[6], k_w = g[7], stride_h = g[8], stride_w = g[9], dil_h = g[10], dil_w = g[11];
    const int32_t pad_top = g[12], pad_left = g[13], pad_bottom = g[14], pad_right = g[15];
    const int32_t include_pad = g[16], average = g[17];
    int32_t n, ch, oh, ow, kh, kw;
    for (n = 0; n < batch; ++n) {
        for (ch = 0; ch < channels; ++ch) {
            const float *xc = x + (n * channels + ch) * h_in * w_in;
            for (oh = 0; oh < h_out; ++oh) {
                for (ow = 0; ow < w_out; ++ow) {
                    const int32_t index = ((n * channels + ch) * h_out + oh) * w_out + ow;
                    float v = average ? 0.0f : -INFINITY;
                    int32_t taps = 0, padded = 0;
                    for (kh = 0; kh < k_h; ++kh) {
                        const int32_t ih = oh * stride_h - pad_top + kh * dil_h;
                        for (kw = 0; kw < k_w; ++kw) {
                            const int32_t iw = ow * stride_w - pad_left + kw * dil_w;
                            float t;
                            if (ih >= -pad_top && ih < h_in + pad_bottom && iw >= -pad_left
                                && iw < w_in + pad_right) {
                                ++padded;
                            }
                            if (ih < 0 || ih >= h_in || iw < 0 || iw >= w_in) {
                                continue;
                            }
                            ++taps;
                            t = o2m_memrw_prologue(prologue, lo, hi, xc[ih * w_in + iw]);
                            if (average) {
                                v += t;
                            } else if (t > v || t != t) {
                                v = t;
                            }
                        }
                    }
                    if (average) {
                        v = v / (float)(include_pad ? padded : taps);
                    }
                    if (bn_scale != NULL) {
                        v = (v - bn_mean[ch]) * (1.0f / sqrtf(bn_var[ch] + eps)) * bn_scale[ch] + bn_bias[ch];
                    }
                    y[index] = acc != NULL ? acc[index] + v : v;
                }
            }
        }
    }
}

/*
 * Gemm with the prologue on A: y[i][j] = alpha * sum_k prologue(A[i][k]) * B[k][j]
 * (k ascending from 0.0f) + beta * C[i][j], then the batch norm over j and acc as in
 * o2m_memrw_conv2d_f32.  g = {m, n, k, trans_a, trans_b, c_stride_m, c_stride_n}
 * (o2m_gemm_params' meaning); c may be NULL.
 */
void o2m_memrw_gemm_f32(const int32_t *g, float alpha, float beta, int32_t prologue, float lo, float hi,
                        float eps, const float *a, const float *b, const float *c, const float *bn_scale,
                        const float *bn_bias, const float *bn_mean, const float *bn_var, const float *acc,
                        float *y);

void o2m_memrw_gemm_f32(const int32_t *g, float alpha, float beta, int32_t prologue, float lo, float hi,
                        float eps, const float *a, const float *b, const float *c, const float *bn_scale,
                        const float *bn_bias, const float *bn_mean, const float *bn_var, const float *acc,
                        float *y)
{
    const int32_t m = g[0], n = g[1], k = g[2], trans_a = g[3], trans_b = g[4];
    const int32_t c_sm = g[5], c_sn = g[6];
    int32_t i, j, t;
    for (i = 0; i < m; ++i) {
        for (j = 0; j < n; ++j) {
            float s = 0.0f, v;
            for (t = 0; t < k; ++t) {
                const float av = a[trans_a ? t * m + i : i * k + t];
                const float bv = b[trans_b ? j * k + t : t * n + j];
                s += o2m_memrw_prologue(prologue, lo, hi, av) * bv;
            }
            v = alpha * s;
            if (c != NULL) {
                v += beta * c[i * c_sm + j * c_sn];
            }
            if (bn_scale != NULL) {
                v = (v - bn_mean[j]) * (1.0f / sqrtf(bn_var[j] + eps)) * bn_scale[j] + bn_bias[j];
            }
            y[i * n + j] = acc != NULL ? acc[i * n + j] + v : v;
        }
    }
}
