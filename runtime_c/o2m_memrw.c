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
 * v    = (v - bn_mean[oc]) * bn_mul[oc] + bn_bias[oc] when bn_mul is not NULL (the three are
 *        then given; bn_mul = scale / sqrtf(var + eps), folded by the caller in float32 as
 *        o2m_batchnorm_stats_f32 computes it, so the result is that kernel's);
 * y[i] = acc[i] + v when acc is not NULL, else v.  acc may equal y (in place: each element
 *        is read before it is written); otherwise acc and y do not overlap.
 * scratch (NULL for other geometries) serves a depthwise conv (groups == c_in == c_out; the
 *        padded input plane of one channel: ((h_out-1)*stride_h + (k_h-1)*dil_h + 1) x
 *        ((w_out-1)*stride_w + (k_w-1)*dil_w + 1) floats) or a 1x1 conv of stride 1 without
 *        pads (2 * c_in floats): the prologue then runs once per input element, and y may equal x
 *        (in place, TinyEngine-style) when the output is shaped as the input.  Otherwise x and
 *        y do not overlap.
 */
#include <math.h>

#include "o2m_common.h"
#include "o2m_conv.h"

void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi,
                          const float *x, const float *w, const float *bias, const float *bn_mul,
                          const float *bn_bias, const float *bn_mean,
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
    float lo, hi;
    const float *w, *bias, *bn_mul, *bn_bias, *bn_mean;
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
    if (c->bn_mul != NULL) {
        v = (v - c->bn_mean[oc]) * c->bn_mul[oc] + c->bn_bias[oc];
    }
    return v;
}

/* The bias, the batch norm and acc of output channel oc, then the store. */
static void o2m_memrw_store(const o2m_memrw_conv *c, int32_t oc, float v, const float *acc, float *y,
                            int32_t index)
{
    if (c->bias != NULL) {
        v += c->bias[oc];
    }
    if (c->bn_mul != NULL) {
        v = (v - c->bn_mean[oc]) * c->bn_mul[oc] + c->bn_bias[oc];
    }
    y[index] = acc != NULL ? acc[index] + v : v;
}

/* Depthwise (groups == c_in == c_out): per channel, the prologue'd input plane with its pads
 * as zeros is copied into scratch (rows (h_out-1)*stride_h + (k_h-1)*dil_h + 1, columns
 * likewise), so the prologue runs once per input element, the taps need no bounds checks and
 * y may be x (in place).  A pad tap adds 0 * w, which leaves the sum unchanged. */
static void o2m_memrw_depthwise(const o2m_memrw_conv *c, const float *x, const float *acc, float *y,
                                float *scratch)
{
    const int32_t rows = (c->h_out - 1) * c->stride_h + (c->k_h - 1) * c->dil_h + 1;
    const int32_t cols = (c->w_out - 1) * c->stride_w + (c->k_w - 1) * c->dil_w + 1;
    o2m_conv2d_params p;
    int32_t n, ch, r, q;
    for (n = 0; n < c->batch; ++n) {
        for (ch = 0; ch < c->c_in; ++ch) {
            const float *xc = x + (n * c->c_in + ch) * c->h_in * c->w_in;
            const float *wc = c->w + ch * c->k_h * c->k_w;
            const int32_t base = (n * c->c_out + ch) * c->h_out * c->w_out;
            for (r = 0; r < rows; ++r) {
                const int32_t ih = r - c->pad_top;
                for (q = 0; q < cols; ++q) {
                    const int32_t iw = q - c->pad_left;
                    scratch[r * cols + q] = (ih < 0 || ih >= c->h_in || iw < 0 || iw >= c->w_in) ? 0.0f
                        : o2m_memrw_prologue(c->prologue, c->lo, c->hi, xc[ih * c->w_in + iw]);
                }
            }
            /* the plane (pads included) through the tiled kernel of o2m_conv.c */
            p.n = 1;
            p.c_in = 1;
            p.h_in = rows;
            p.w_in = cols;
            p.c_out = 1;
            p.h_out = c->h_out;
            p.w_out = c->w_out;
            p.k_h = c->k_h;
            p.k_w = c->k_w;
            p.stride_h = c->stride_h;
            p.stride_w = c->stride_w;
            p.dil_h = c->dil_h;
            p.dil_w = c->dil_w;
            p.pad_top = 0;
            p.pad_left = 0;
            p.groups = 1;
            p.act.kind = O2M_ACT_NONE;
            p.act.min = 0.0f;
            p.act.max = 0.0f;
            o2m_conv2d_depthwise_f32(&p, scratch, wc, c->bias != NULL ? c->bias + ch : NULL, y + base);
            if (c->bn_mul != NULL || acc != NULL) {
                for (q = 0; q < c->h_out * c->w_out; ++q) {
                    float v = y[base + q];
                    if (c->bn_mul != NULL) {
                        v = (v - c->bn_mean[ch]) * c->bn_mul[ch] + c->bn_bias[ch];
                    }
                    y[base + q] = acc != NULL ? acc[base + q] + v : v;
                }
            }
        }
    }
}

/* 1x1 of stride 1 without pads: per pair of pixels, the c_in prologue'd inputs are gathered
 * into scratch, then every output channel (4 at a time) is a dot product with them; y may be
 * x (in place: a pixel's outputs are written after its inputs were read). */
static void o2m_memrw_pointwise(const o2m_memrw_conv *c, const float *x, const float *acc, float *y,
                                float *scratch)
{
    const int32_t plane = c->h_in * c->w_in, cin = c->c_in;
    int32_t n, px, ic, oc, k, width;
    for (n = 0; n < c->batch; ++n) {
        const float *xn = x + n * cin * plane;
        const int32_t base = n * c->c_out * plane;
        for (px = 0; px < plane; px += width) {
            width = px + 1 < plane ? 2 : 1;
            for (ic = 0; ic < cin; ++ic) {
                scratch[2 * ic] = o2m_memrw_prologue(c->prologue, c->lo, c->hi, xn[ic * plane + px]);
                scratch[2 * ic + 1] = width == 2
                    ? o2m_memrw_prologue(c->prologue, c->lo, c->hi, xn[ic * plane + px + 1]) : 0.0f;
            }
            for (oc = 0; oc + 3 < c->c_out; oc += 4) {
                const float *w0 = c->w + oc * cin, *w1 = w0 + cin, *w2 = w1 + cin, *w3 = w2 + cin;
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
                for (ic = 0; ic < cin; ++ic) {
                    const float u = scratch[2 * ic], v = scratch[2 * ic + 1];
                    const float k0 = w0[ic], k1 = w1[ic], k2 = w2[ic], k3 = w3[ic];
                    a0 += u * k0;
                    a1 += u * k1;
                    a2 += u * k2;
                    a3 += u * k3;
                    b0 += v * k0;
                    b1 += v * k1;
                    b2 += v * k2;
                    b3 += v * k3;
                }
                o2m_memrw_store(c, oc, a0, acc, y, base + oc * plane + px);
                o2m_memrw_store(c, oc + 1, a1, acc, y, base + (oc + 1) * plane + px);
                o2m_memrw_store(c, oc + 2, a2, acc, y, base + (oc + 2) * plane + px);
                o2m_memrw_store(c, oc + 3, a3, acc, y, base + (oc + 3) * plane + px);
                if (width == 2) {
                    o2m_memrw_store(c, oc, b0, acc, y, base + oc * plane + px + 1);
                    o2m_memrw_store(c, oc + 1, b1, acc, y, base + (oc + 1) * plane + px + 1);
                    o2m_memrw_store(c, oc + 2, b2, acc, y, base + (oc + 2) * plane + px + 1);
                    o2m_memrw_store(c, oc + 3, b3, acc, y, base + (oc + 3) * plane + px + 1);
                }
            }
            for (; oc < c->c_out; ++oc) {
                const float *w0 = c->w + oc * cin;
                for (k = 0; k < width; ++k) {
                    float a0 = 0.0f;
                    for (ic = 0; ic < cin; ++ic) {
                        a0 += scratch[2 * ic + k] * w0[ic];
                    }
                    o2m_memrw_store(c, oc, a0, acc, y, base + oc * plane + px + k);
                }
            }
        }
    }
}

void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi,
                          const float *x, const float *w, const float *bias, const float *bn_mul,
                          const float *bn_bias, const float *bn_mean,
                          const float *acc, float *y, float *scratch)
{
    o2m_memrw_conv c;
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
    c.w = w;
    c.bias = bias;
    c.bn_mul = bn_mul;
    c.bn_bias = bn_bias;
    c.bn_mean = bn_mean;
    if (scratch != NULL && c.groups == c.c_in && c.groups == c.c_out) {
        o2m_memrw_depthwise(&c, x, acc, y, scratch);
    } else if (scratch != NULL && c.k_h == 1 && c.k_w == 1 && c.groups == 1 && c.stride_h == 1
               && c.stride_w == 1 && c.pad_top == 0 && c.pad_left == 0 && c.h_out == c.h_in
               && c.w_out == c.w_in) {
        o2m_memrw_pointwise(&c, x, acc, y, scratch);
    } else {
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
void o2m_memrw_pool2d_f32(const int32_t *g, int32_t prologue, float lo, float hi,
                          const float *x, const float *bn_mul, const float *bn_bias,
                          const float *bn_mean, const float *acc, float *y);

void o2m_memrw_pool2d_f32(const int32_t *g, int32_t prologue, float lo, float hi,
                          const float *x, const float *bn_mul, const float *bn_bias,
                          const float *bn_mean, const float *acc, float *y)
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
                    if (bn_mul != NULL) {
                        v = (v - bn_mean[ch]) * bn_mul[ch] + bn_bias[ch];
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
                        const float *a, const float *b, const float *c, const float *bn_mul,
                        const float *bn_bias, const float *bn_mean, const float *acc,
                        float *y);

void o2m_memrw_gemm_f32(const int32_t *g, float alpha, float beta, int32_t prologue, float lo, float hi,
                        const float *a, const float *b, const float *c, const float *bn_mul,
                        const float *bn_bias, const float *bn_mean, const float *acc,
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
            if (bn_mul != NULL) {
                v = (v - bn_mean[j]) * bn_mul[j] + bn_bias[j];
            }
            y[i * n + j] = acc != NULL ? acc[i * n + j] + v : v;
        }
    }
}
