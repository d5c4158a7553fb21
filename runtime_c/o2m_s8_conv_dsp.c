/*
 * o2m_s8_conv_dsp.c - arm-dsp int8 conv / depthwise / fully connected.  See o2m_s8_conv_dsp.h.
 *
 * Technique (the usual one of Cortex-M int8 libraries, written for our NCHW layout):
 * a 32-bit load brings four int8 values; SXTB16 sign-extends bytes 0 and 2 into two
 * int16 halves, SXTB16 ROR #8 bytes 1 and 3; SMLAD multiplies two such halves pairwise
 * and adds both products to an int32 accumulator.  Unpacking both operands the same
 * way pairs element 0 with 0 and 2 with 2 (then 1 with 1, 3 with 3), so the weights are
 * used in their ONNX order.  The input zero point is folded into the bias at compile
 * time and padded taps read the zero point, so no inner loop adds an offset or tests
 * a bound.  int32 sums are exact in any order (o2m_s8_conv.c), so the results equal
 * the portable kernels' bit for bit.
 */
#include <string.h>

#include "o2m_s8_conv_dsp.h"

/* ----------------------------------------------------------------- the instructions */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>

static inline int32_t o2m_sxtb16(uint32_t x)
{
    return __sxtb16((int32_t)x);
}

static inline int32_t o2m_sxtb16_r8(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline int32_t o2m_smlad(int32_t a, int32_t b, int32_t acc)
{
    return __smlad(a, b, acc);
}

static inline int32_t o2m_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return __smlabb(a, b, acc);
}

static inline int32_t o2m_smlatb(int32_t a, int32_t b, int32_t acc)
{
    return __smlatb(a, b, acc);
}
#else
/* Plain C twins (two's-complement wrap like the instructions; no Q flag). */
static inline int32_t o2m_lo16(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x & 0xFFFFu);
}

static inline int32_t o2m_hi16(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x >> 16);
}

static inline int32_t o2m_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)(x & 0xFFu);
    const uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)((x >> 16) & 0xFFu);
    return (int32_t)(lo | (hi << 16));
}

static inline int32_t o2m_sxtb16_r8(uint32_t x)
{
    return o2m_sxtb16((x >> 8) | (x << 24));
}

static inline int32_t o2m_smlad(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(o2m_lo16(a) * o2m_lo16(b)) + (uint32_t)(o2m_hi16(a) * o2m_hi16(b)));
}

static inline int32_t o2m_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(o2m_lo16(a) * o2m_lo16(b)));
}

static inline int32_t o2m_smlatb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(o2m_hi16(a) * o2m_lo16(b)));
}
#endif

/* One unaligned 32-bit load / store (a single LDR / STR on v7E-M). */
static inline uint32_t o2m_ld32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void o2m_st32(int8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* Two int16 values as one SMLAD operand: lo in bits 0-15, hi in 16-31. */
static inline int32_t o2m_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

/* ----------------------------------------------------------------- requantization */
/* One channel's fixed-point rescale, unpacked once per channel. */
typedef struct {
    int32_t mult, left, right, mask;
} o2m_dsp_rq;

static inline void o2m_dsp_rq_load(const o2m_dsp_requant *r, int32_t channel, o2m_dsp_rq *q)
{
    const int32_t c = r->per_channel ? channel : 0;
    const int32_t s = r->shifts[c];
    q->mult = r->multipliers[c];
    q->left = s > 0 ? s : 0;
    q->right = s > 0 ? 0 : -s;
    q->mask = (int32_t)(((uint64_t)1 << q->right) - 1u);
}

/* TFLite's MultiplyByQuantizedMultiplier, + zero point, clamp, exactly as
 * o2m_s8_requant_fixed: srdhm with its nudge (1 - 2^30 for negative products, then
 * truncation toward zero) equals floor((a*b + 2^30) / 2^31) for every product (the two
 * corrections cancel; a multiplier is never INT32_MIN, so srdhm never saturates), which
 * is one SMULL and a 64-bit add and shift; the rounding divide by 2^right is TFLite's. */
static inline int8_t o2m_dsp_out(int32_t acc, const o2m_dsp_rq *q, const o2m_dsp_requant *r)
{
    int32_t v = (int32_t)((uint32_t)acc << q->left);
    int32_t rem, threshold;
    v = (int32_t)(((int64_t)v * q->mult + ((int64_t)1 << 30)) >> 31);
    rem = v & q->mask;
    threshold = (q->mask >> 1) + (int32_t)((uint32_t)v >> 31);
    v = (v >> q->right) + (rem > threshold ? 1 : 0);
    v += r->output_offset;
    v = v < r->act_min ? r->act_min : v;
    v = v > r->act_max ? r->act_max : v;
    return (int8_t)v;
}

/* ----------------------------------------------------------------- 2x2 GEMM core */
/* a00 += w0.c0, a01 += w0.c1, a10 += w1.c0, a11 += w1.c1 over k int8 values. */
static inline void o2m_dot2x2(const int8_t *w0, const int8_t *w1, const int8_t *c0, const int8_t *c1, int32_t k,
                              int32_t *acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t i;
    for (i = k >> 2; i > 0; --i) {
        const uint32_t x0 = o2m_ld32(c0);
        const uint32_t x1 = o2m_ld32(c1);
        const uint32_t v0 = o2m_ld32(w0);
        const uint32_t v1 = o2m_ld32(w1);
        const int32_t x0e = o2m_sxtb16(x0), x0o = o2m_sxtb16_r8(x0);
        const int32_t x1e = o2m_sxtb16(x1), x1o = o2m_sxtb16_r8(x1);
        int32_t we = o2m_sxtb16(v0), wo = o2m_sxtb16_r8(v0);
        a00 = o2m_smlad(we, x0e, a00);
        a00 = o2m_smlad(wo, x0o, a00);
        a01 = o2m_smlad(we, x1e, a01);
        a01 = o2m_smlad(wo, x1o, a01);
        we = o2m_sxtb16(v1);
        wo = o2m_sxtb16_r8(v1);
        a10 = o2m_smlad(we, x0e, a10);
        a10 = o2m_smlad(wo, x0o, a10);
        a11 = o2m_smlad(we, x1e, a11);
        a11 = o2m_smlad(wo, x1o, a11);
        c0 += 4;
        c1 += 4;
        w0 += 4;
        w1 += 4;
    }
    for (i = k & 3; i > 0; --i) {
        const int32_t x0 = *c0++, x1 = *c1++, v0 = *w0++, v1 = *w1++;
        a00 += v0 * x0;
        a01 += v0 * x1;
        a10 += v1 * x0;
        a11 += v1 * x1;
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Every output channel for the columns c0, c1 (pixels pix, pix + 1 of plane y);
 * two == 0: only c0 is real (c1 == c0, its results are not stored). */
static void o2m_gemm_columns(const o2m_conv2d_s8_dsp_params *p, const int8_t *w, const int8_t *c0,
                             const int8_t *c1, int32_t two, int8_t *y, int32_t plane, int32_t k)
{
    const o2m_dsp_requant *r = &p->requant;
    int32_t oc;
    for (oc = 0; oc < p->c_out; oc += 2) {
        const int32_t pair = oc + 1 < p->c_out;
        const int8_t *w0 = w + (int32_t)oc * k;
        const int8_t *w1 = pair ? w0 + k : w0;
        int32_t acc[4];
        o2m_dsp_rq q0, q1;
        acc[0] = acc[1] = p->bias[oc];
        acc[2] = acc[3] = pair ? p->bias[oc + 1] : 0;
        o2m_dot2x2(w0, w1, c0, c1, k, acc);
        o2m_dsp_rq_load(r, oc, &q0);
        y[(int32_t)oc * plane] = o2m_dsp_out(acc[0], &q0, r);
        if (two) {
            y[(int32_t)oc * plane + 1] = o2m_dsp_out(acc[1], &q0, r);
        }
        if (pair) {
            o2m_dsp_rq_load(r, oc + 1, &q1);
            y[(int32_t)(oc + 1) * plane] = o2m_dsp_out(acc[2], &q1, r);
            if (two) {
                y[(int32_t)(oc + 1) * plane + 1] = o2m_dsp_out(acc[3], &q1, r);
            }
        }
    }
}

/* The im2col column of output pixel (oh, ow): [ic][kh][kw], padded taps = pad_value. */
static void o2m_im2col(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, int32_t oh, int32_t ow, int8_t *col)
{
    const int32_t ih0 = oh * p->stride_h - p->pad_top;
    const int32_t iw0 = ow * p->stride_w - p->pad_left;
    const int32_t plane = p->h_in * p->w_in;
    const int8_t pad = (int8_t)p->pad_value;
    int32_t ic, kh, kw;
    for (ic = 0; ic < p->c_in; ++ic) {
        const int8_t *xc = x + ic * plane;
        for (kh = 0; kh < p->k_h; ++kh) {
            const int32_t ih = ih0 + kh * p->dil_h;
            if (ih < 0 || ih >= p->h_in) {
                for (kw = 0; kw < p->k_w; ++kw) {
                    *col++ = pad;
                }
                continue;
            }
            {
                const int8_t *row = xc + ih * p->w_in;
                int32_t iw = iw0;
                for (kw = 0; kw < p->k_w; ++kw, iw += p->dil_w) {
                    *col++ = (iw >= 0 && iw < p->w_in) ? row[iw] : pad;
                }
            }
        }
    }
}

void o2m_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y,
                       int8_t *scratch)
{
    const int32_t k = p->c_in * p->k_h * p->k_w;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                              p->pad_top == 0 && p->pad_left == 0 && p->h_out == p->h_in && p->w_out == p->w_in;
    int8_t *c0 = scratch;
    int8_t *c1 = scratch + O2M_DSP_COL(k);
    int32_t b, pix;
    for (b = 0; b < p->n; ++b) {
        const int8_t *xb = x + b * p->c_in * plane_in;
        int8_t *yb = y + b * p->c_out * plane;
        for (pix = 0; pix < plane; pix += 2) {
            const int32_t two = pix + 1 < plane;
            if (pointwise) {
                const int8_t *s = xb + pix;
                int32_t ic;
                if (two) {
                    for (ic = 0; ic < k; ++ic, s += plane_in) {
                        c0[ic] = s[0];
                        c1[ic] = s[1];
                    }
                } else {
                    for (ic = 0; ic < k; ++ic, s += plane_in) {
                        c0[ic] = s[0];
                    }
                }
            } else {
                o2m_im2col(p, xb, pix / p->w_out, pix % p->w_out, c0);
                if (two) {
                    o2m_im2col(p, xb, (pix + 1) / p->w_out, (pix + 1) % p->w_out, c1);
                }
            }
            o2m_gemm_columns(p, w, c0, two ? c1 : c0, two, yb + pix, plane, k);
        }
    }
}

/* ----------------------------------------------------------------- depthwise */
#define O2M_DSP_DW_MAX_K 8

/* Ring row `dst` <- input row ih of channel xc, padded: column j holds input column
 * j - pad_left, or pad_value outside [0, w_in). */
static void o2m_dw_fill(const o2m_conv2d_s8_dsp_params *p, const int8_t *xc, int32_t ih, int8_t *dst,
                        int32_t row_bytes)
{
    const int8_t pad = (int8_t)p->pad_value;
    int32_t j = 0;
    if (ih < 0 || ih >= p->h_in) {
        memset(dst, (unsigned char)pad, (size_t)row_bytes);
        return;
    }
    {
        const int8_t *src = xc + ih * p->w_in;
        int32_t lead = p->pad_left < row_bytes ? p->pad_left : row_bytes;
        int32_t count = p->w_in < row_bytes - lead ? p->w_in : row_bytes - lead;
        for (; j < lead; ++j) {
            dst[j] = pad;
        }
        for (; count >= 4; count -= 4, j += 4, src += 4) {
            o2m_st32(dst + j, o2m_ld32(src));
        }
        for (; count > 0; --count, ++j) {
            dst[j] = *src++;
        }
        for (; j < row_bytes; ++j) {
            dst[j] = pad;
        }
    }
}

void o2m_depthwise_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                 int8_t *y, int8_t *scratch)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t mult = p->c_out / p->c_in;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t row_bytes = O2M_DSP_ROW(p->w_out, p->stride_w, p->k_w);
    const int32_t chunks = p->k_w <= 4 ? 1 : 2;
    const int32_t kh_n = p->k_h;
    int32_t we[O2M_DSP_DW_MAX_K][2], wo[O2M_DSP_DW_MAX_K][2];
    int32_t tags[O2M_DSP_DW_MAX_K];
    const int8_t *rows[O2M_DSP_DW_MAX_K];
    int32_t b, oc, oh, ow, i, j;
    for (b = 0; b < p->n; ++b) {
        for (oc = 0; oc < p->c_out; ++oc) {
            const int8_t *xc = x + (b * p->c_in + oc / mult) * plane_in;
            const int8_t *wc = w + oc * p->k_h * p->k_w;
            int8_t *yc = y + (b * p->c_out + oc) * plane;
            const int32_t bias = p->bias[oc];
            o2m_dsp_rq q;
            o2m_dsp_rq_load(r, oc, &q);
            for (i = 0; i < kh_n; ++i) {
                for (j = 0; j < 2; ++j) {
                    int32_t t[4], m;
                    for (m = 0; m < 4; ++m) {
                        const int32_t kw = 4 * j + m;
                        t[m] = kw < p->k_w ? wc[i * p->k_w + kw] : 0;
                    }
                    we[i][j] = o2m_pack16(t[0], t[2]);
                    wo[i][j] = o2m_pack16(t[1], t[3]);
                }
                tags[i] = INT32_MIN;
            }
            for (oh = 0; oh < p->h_out; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int8_t *yr = yc + oh * p->w_out;
                for (i = 0; i < kh_n; ++i) {
                    const int32_t slot = (oh * p->stride_h + i) % kh_n;
                    int8_t *dst = scratch + slot * row_bytes;
                    if (tags[slot] != ih0 + i) {
                        o2m_dw_fill(p, xc, ih0 + i, dst, row_bytes);
                        tags[slot] = ih0 + i;
                    }
                    rows[i] = dst;
                }
                ow = 0;
                if (kh_n == 3 && p->k_w == 3 && p->stride_w == 1) {
                    /* two outputs per step: x0..x3 feed out0 (x0 x1 x2) and out1 (x1 x2 x3) */
                    const int32_t e0 = we[0][0], e1 = we[1][0], e2 = we[2][0];
                    const int32_t m0 = wo[0][0], m1 = wo[1][0], m2 = wo[2][0];
                    for (; ow + 1 < p->w_out; ow += 2) {
                        int32_t a0 = bias, a1 = bias;
                        uint32_t v;
                        int32_t ev, od;
                        v = o2m_ld32(rows[0] + ow);
                        ev = o2m_sxtb16(v);
                        od = o2m_sxtb16_r8(v);
                        a0 = o2m_smlad(ev, e0, a0);
                        a0 = o2m_smlabb(od, m0, a0);
                        a1 = o2m_smlad(od, e0, a1);
                        a1 = o2m_smlatb(ev, m0, a1);
                        v = o2m_ld32(rows[1] + ow);
                        ev = o2m_sxtb16(v);
                        od = o2m_sxtb16_r8(v);
                        a0 = o2m_smlad(ev, e1, a0);
                        a0 = o2m_smlabb(od, m1, a0);
                        a1 = o2m_smlad(od, e1, a1);
                        a1 = o2m_smlatb(ev, m1, a1);
                        v = o2m_ld32(rows[2] + ow);
                        ev = o2m_sxtb16(v);
                        od = o2m_sxtb16_r8(v);
                        a0 = o2m_smlad(ev, e2, a0);
                        a0 = o2m_smlabb(od, m2, a0);
                        a1 = o2m_smlad(od, e2, a1);
                        a1 = o2m_smlatb(ev, m2, a1);
                        yr[ow] = o2m_dsp_out(a0, &q, r);
                        yr[ow + 1] = o2m_dsp_out(a1, &q, r);
                    }
                }
                for (; ow < p->w_out; ++ow) {
                    const int32_t off = ow * p->stride_w;
                    int32_t acc = bias;
                    for (i = 0; i < kh_n; ++i) {
                        const int8_t *s = rows[i] + off;
                        uint32_t v = o2m_ld32(s);
                        acc = o2m_smlad(o2m_sxtb16(v), we[i][0], acc);
                        acc = o2m_smlad(o2m_sxtb16_r8(v), wo[i][0], acc);
                        if (chunks == 2) {
                            v = o2m_ld32(s + 4);
                            acc = o2m_smlad(o2m_sxtb16(v), we[i][1], acc);
                            acc = o2m_smlad(o2m_sxtb16_r8(v), wo[i][1], acc);
                        }
                    }
                    yr[ow] = o2m_dsp_out(acc, &q, r);
                }
            }
        }
    }
}

/* ----------------------------------------------------------------- fully connected */
void o2m_fully_connected_s8_dsp(const o2m_fully_connected_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                int8_t *y)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t k = p->in_features;
    int32_t b, n, i, t;
    for (b = 0; b < p->batch; ++b) {
        const int8_t *xb = x + b * k;
        int8_t *yb = y + b * p->out_features;
        for (n = 0; n < p->out_features; n += 4) {
            const int32_t live = p->out_features - n < 4 ? p->out_features - n : 4;
            const int8_t *w0 = w + n * k;
            const int8_t *w1 = live > 1 ? w0 + k : w0;
            const int8_t *w2 = live > 2 ? w0 + 2 * k : w0;
            const int8_t *w3 = live > 3 ? w0 + 3 * k : w0;
            const int8_t *xs = xb;
            int32_t a[4];
            int32_t a0, a1, a2, a3;
            for (t = 0; t < 4; ++t) {
                a[t] = p->bias[n + (t < live ? t : 0)];
            }
            a0 = a[0];
            a1 = a[1];
            a2 = a[2];
            a3 = a[3];
            for (i = k >> 2; i > 0; --i) {
                const uint32_t xv = o2m_ld32(xs);
                const int32_t xe = o2m_sxtb16(xv), xo = o2m_sxtb16_r8(xv);
                uint32_t v = o2m_ld32(w0);
                a0 = o2m_smlad(o2m_sxtb16(v), xe, a0);
                a0 = o2m_smlad(o2m_sxtb16_r8(v), xo, a0);
                v = o2m_ld32(w1);
                a1 = o2m_smlad(o2m_sxtb16(v), xe, a1);
                a1 = o2m_smlad(o2m_sxtb16_r8(v), xo, a1);
                v = o2m_ld32(w2);
                a2 = o2m_smlad(o2m_sxtb16(v), xe, a2);
                a2 = o2m_smlad(o2m_sxtb16_r8(v), xo, a2);
                v = o2m_ld32(w3);
                a3 = o2m_smlad(o2m_sxtb16(v), xe, a3);
                a3 = o2m_smlad(o2m_sxtb16_r8(v), xo, a3);
                xs += 4;
                w0 += 4;
                w1 += 4;
                w2 += 4;
                w3 += 4;
            }
            for (i = k & 3; i > 0; --i) {
                const int32_t xv = *xs++;
                a0 += *w0++ * xv;
                a1 += *w1++ * xv;
                a2 += *w2++ * xv;
                a3 += *w3++ * xv;
            }
            a[0] = a0;
            a[1] = a1;
            a[2] = a2;
            a[3] = a3;
            for (t = 0; t < live; ++t) {
                o2m_dsp_rq q;
                o2m_dsp_rq_load(r, n + t, &q);
                yb[n + t] = o2m_dsp_out(a[t], &q, r);
            }
        }
    }
}
