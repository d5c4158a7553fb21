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

/* Saturate to int8 (SSAT #8 on v7E-M). */
static inline int8_t o2m_sat8(int32_t v)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    return (int8_t)__ssat(v, 8);
#else
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
#endif
}

/* Keeps the hot loops in functions of their own: inlined into the big drivers their
 * accumulators spill (the register allocator sees the whole driver). */
#if defined(__GNUC__)
#define O2M_DSP_NOINLINE __attribute__((noinline))
#else
#define O2M_DSP_NOINLINE
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
/* The two int8 columns' whole words, unpacked once for every output channel: per group of
 * four values, [c0 0,2] [c0 1,3] [c1 0,2] [c1 1,3] as int16 pairs (SXTB16, SXTB16 ROR 8). */
static void o2m_unpack2(const int8_t *c0, const int8_t *c1, int32_t groups, int32_t *x16)
{
    int32_t g;
    for (g = 0; g < groups; ++g, c0 += 4, c1 += 4, x16 += 4) {
        const uint32_t a = o2m_ld32(c0);
        const uint32_t b = o2m_ld32(c1);
        x16[0] = o2m_sxtb16(a);
        x16[1] = o2m_sxtb16_r8(a);
        x16[2] = o2m_sxtb16(b);
        x16[3] = o2m_sxtb16_r8(b);
    }
}

/* One step of a 2x2 tile: weight words v0 (row 0) and v1 (row 1), four int8 each, against
 * two pixels whose four values arrive SXTB16-unpacked as (even, odd) halfword pairs:
 * a00 += w0.p0, a01 += w0.p1, a10 += w1.p0, a11 += w1.p1. */
static inline void o2m_mac2x2(uint32_t v0, uint32_t v1, int32_t p0e, int32_t p0o, int32_t p1e,
                              int32_t p1o, int32_t *a00, int32_t *a01, int32_t *a10, int32_t *a11)
{
    int32_t we = o2m_sxtb16(v0), wo = o2m_sxtb16_r8(v0);
    *a00 = o2m_smlad(wo, p0o, o2m_smlad(we, p0e, *a00));
    *a01 = o2m_smlad(wo, p1o, o2m_smlad(we, p1e, *a01));
    we = o2m_sxtb16(v1);
    wo = o2m_sxtb16_r8(v1);
    *a10 = o2m_smlad(wo, p0o, o2m_smlad(we, p0e, *a10));
    *a11 = o2m_smlad(wo, p1o, o2m_smlad(we, p1e, *a11));
}

/* Requantize and store a 2x2 tile: channels oc (and oc + 1 when `pair`), pixel 0 of plane y
 * (and pixel 1 when `two`); acc as o2m_mac2x2's a00, a01, a10, a11. */
static inline void o2m_store2x2(const o2m_dsp_requant *r, int32_t oc, int32_t pair, int32_t two,
                                const int32_t *acc, int8_t *y, int32_t plane)
{
    o2m_dsp_rq q;
    o2m_dsp_rq_load(r, oc, &q);
    y[oc * plane] = o2m_dsp_out(acc[0], &q, r);
    if (two) {
        y[oc * plane + 1] = o2m_dsp_out(acc[1], &q, r);
    }
    if (pair) {
        o2m_dsp_rq_load(r, oc + 1, &q);
        y[(oc + 1) * plane] = o2m_dsp_out(acc[2], &q, r);
        if (two) {
            y[(oc + 1) * plane + 1] = o2m_dsp_out(acc[3], &q, r);
        }
    }
}

/* a00 += w0.c0, a01 += w0.c1, a10 += w1.c0, a11 += w1.c1 over k values: the whole words
 * from the unpacked columns x16, the k % 4 last ones from the int8 columns c0, c1. */
static inline void o2m_dot2x2(const int8_t *w0, const int8_t *w1, const int32_t *x16, const int8_t *c0,
                              const int8_t *c1, int32_t k, int32_t *acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t i;
    for (i = k >> 2; i > 0; --i) {
        o2m_mac2x2(o2m_ld32(w0), o2m_ld32(w1), x16[0], x16[1], x16[2], x16[3], &a00, &a01, &a10, &a11);
        x16 += 4;
        w0 += 4;
        w1 += 4;
    }
    c0 += k & ~3;
    c1 += k & ~3;
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
O2M_DSP_NOINLINE static void o2m_gemm_columns(const o2m_conv2d_s8_dsp_params *p, const int8_t *w, const int8_t *c0,
                             const int8_t *c1, int32_t *x16, int32_t two, int8_t *y, int32_t plane, int32_t k)
{
    const o2m_dsp_requant *r = &p->requant;
    int32_t oc;
    o2m_unpack2(c0, c1, k >> 2, x16);
    for (oc = 0; oc < p->c_out; oc += 2) {
        const int32_t pair = oc + 1 < p->c_out;
        const int8_t *w0 = w + (int32_t)oc * k;
        const int8_t *w1 = pair ? w0 + k : w0;
        int32_t acc[4];
        acc[0] = acc[1] = p->bias[oc];
        acc[2] = acc[3] = pair ? p->bias[oc + 1] : 0;
        o2m_dot2x2(w0, w1, x16, c0, c1, k, acc);
        o2m_store2x2(r, oc, pair, two, acc, y, plane);
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
    if (ih0 >= 0 && ih0 + (p->k_h - 1) * p->dil_h < p->h_in && iw0 >= 0 &&
        iw0 + (p->k_w - 1) * p->dil_w < p->w_in) {
        /* the window inside the input: one load per tap through the tap-offset table */
        const int8_t *base = x + ih0 * p->w_in + iw0;
        const int32_t *t = p->taps;
        const int32_t k = p->c_in * p->k_h * p->k_w;
        for (ic = 0; ic < k; ++ic) {
            col[ic] = base[t[ic]];
        }
        return;
    }
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

static void o2m_conv_im2col(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y,
                            int8_t *scratch)
{
    const int32_t k = p->c_in * p->k_h * p->k_w;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                              p->pad_top == 0 && p->pad_left == 0 && p->h_out == p->h_in && p->w_out == p->w_in;
    int8_t *c0 = scratch;
    int8_t *c1 = scratch + O2M_DSP_COL(k);
    int32_t *x16 = (int32_t *)(void *)(scratch + 2 * O2M_DSP_COL(k));
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
            o2m_gemm_columns(p, w, c0, two ? c1 : c0, x16, two, yb + pix, plane, k);
        }
    }
}

/* ----------------------------------------------------------------- dense conv */
/* The values of one tap for output pixels ow and ow + 1 (s bytes apart; s == 0: one pixel,
 * its value twice) as the low 16 bits. */
static inline uint32_t o2m_tap2(const int8_t *px, int32_t s)
{
    if (s == 1) {
        uint16_t v;
        memcpy(&v, px, sizeof v);
        return v;
    }
    if (s == 0) {
        return (uint32_t)(uint8_t)px[0] * 0x0101u;
    }
    return (uint32_t)(uint8_t)px[0] | ((uint32_t)(uint8_t)px[s] << 8);
}

/* acc[0..3] (w0.p0, w0.p1, w1.p0, w1.p1) over the k taps of `t` from `base`: taps t and
 * t+2 packed so that SXTB16 gives [x_t, x_t+2] of pixel 0 and SXTB16 ROR 8 the same of
 * pixel 1, matching the SXTB16-unpacked weight word [w_t, w_t+2].  Always inlined with
 * a constant s, so each stride gets its own loop. */
static inline void o2m_conv_acc(const int8_t *base, const int32_t *t, const int8_t *w0, const int8_t *w1,
                                int32_t k, int32_t s, int32_t *acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t i;
    for (i = k >> 2; i > 0; --i, t += 4) {
        const uint32_t t02 = o2m_tap2(base + t[0], s) | (o2m_tap2(base + t[2], s) << 16);
        const uint32_t t13 = o2m_tap2(base + t[1], s) | (o2m_tap2(base + t[3], s) << 16);
        o2m_mac2x2(o2m_ld32(w0), o2m_ld32(w1), o2m_sxtb16(t02), o2m_sxtb16(t13), o2m_sxtb16_r8(t02),
                   o2m_sxtb16_r8(t13), &a00, &a01, &a10, &a11);
        w0 += 4;
        w1 += 4;
    }
    for (i = k & 3; i > 0; --i, ++t) {
        const int32_t x0 = base[*t], x1 = base[*t + s], v0 = *w0++, v1 = *w1++;
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

/* Two interior output pixels (their windows inside the input), every output channel, two
 * channels at a time, taps read straight from the input (`base` + the tap's offset).
 * two == 0: one pixel (read twice, stored once). */
O2M_DSP_NOINLINE static void o2m_conv_pair(const o2m_conv2d_s8_dsp_params *p, const int8_t *base, const int8_t *w, int8_t *y,
                          int32_t plane, int32_t two, int32_t k)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t s = two ? p->stride_w : 0;
    int32_t oc;
    for (oc = 0; oc < p->c_out; oc += 2) {
        const int32_t pair = oc + 1 < p->c_out;
        const int8_t *w0 = w + oc * k;
        const int8_t *w1 = pair ? w0 + k : w0;
        int32_t acc[4];
        acc[0] = acc[1] = p->bias[oc];
        acc[2] = acc[3] = pair ? p->bias[oc + 1] : 0;
        if (s == 1) {
            o2m_conv_acc(base, p->taps, w0, w1, k, 1, acc);
        } else if (s == 0) {
            o2m_conv_acc(base, p->taps, w0, w1, k, 0, acc);
        } else {
            o2m_conv_acc(base, p->taps, w0, w1, k, s, acc);
        }
        o2m_store2x2(r, oc, pair, two, acc, y, plane);
    }
}

/* The in-place 1x1 stride-1 unpadded form of o2m_conv_pair: the four taps of a step are
 * four consecutive input planes, so their offsets are 0, P, 2P, 3P (no table). */
O2M_DSP_NOINLINE static void o2m_pointwise_pair(const o2m_conv2d_s8_dsp_params *p, const int8_t *x,
                                                const int8_t *w, int8_t *y, int32_t plane)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t k = p->c_in;
    int32_t oc, i;
    for (oc = 0; oc < p->c_out; oc += 2) {
        const int32_t pair = oc + 1 < p->c_out;
        const int8_t *w0 = w + oc * k;
        const int8_t *w1 = pair ? w0 + k : w0;
        const int8_t *xs = x;
        int32_t a00 = p->bias[oc], a01 = a00;
        int32_t a10 = pair ? p->bias[oc + 1] : 0, a11 = a10;
        for (i = k >> 2; i > 0; --i) {
            const int8_t *xs2 = xs + 2 * plane;
            const uint32_t t02 = o2m_tap2(xs, 1) | (o2m_tap2(xs2, 1) << 16);
            const uint32_t t13 = o2m_tap2(xs + plane, 1) | (o2m_tap2(xs2 + plane, 1) << 16);
            o2m_mac2x2(o2m_ld32(w0), o2m_ld32(w1), o2m_sxtb16(t02), o2m_sxtb16(t13), o2m_sxtb16_r8(t02),
                       o2m_sxtb16_r8(t13), &a00, &a01, &a10, &a11);
            xs = xs2 + 2 * plane;
            w0 += 4;
            w1 += 4;
        }
        for (i = k & 3; i > 0; --i, xs += plane) {
            const int32_t x0 = xs[0], x1 = xs[1], v0 = *w0++, v1 = *w1++;
            a00 += v0 * x0;
            a01 += v0 * x1;
            a10 += v1 * x0;
            a11 += v1 * x1;
        }
        {
            const int32_t acc[4] = {a00, a01, a10, a11};
            o2m_store2x2(r, oc, pair, 1, acc, y, plane);
        }
    }
}

/* ----------------------------------------------------------------- pointwise, 4 x 2 tiles */
/* A 1x1 stride-1 unpadded conv: its output plane is its input plane. */
static int32_t o2m_is_pointwise(const o2m_conv2d_s8_dsp_params *p)
{
    return p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
           p->pad_left == 0 && p->h_out == p->h_in && p->w_out == p->w_in;
}

/* acc[2t + j] = bias[t] + output channel t (of four) x output pixel j (of two: x, x + 1) over the
 * `pairs` input channel pairs, weights `pw` re-laid out by the emitter (pw_weights in
 * o2m_s8_conv_dsp.h): per pair two words [w0(c) w1(c) w0(c+1) w1(c+1)], the same of
 * channels 2, 3.  Per pair the two pixels of channels c, c+1 (halfword loads, planes
 * `plane` bytes apart) make one word [x(c,p0) x(c,p1) x(c+1,p0) x(c+1,p1)], whose SXTB16
 * is [x(c,p0), x(c+1,p0)] and SXTB16 ROR 8 the same of pixel 1; SXTB16 of a weight word
 * is [w0(c), w0(c+1)], ROR 8 that of channel 1: eight SMLADs, sixteen MACs.
 * On v7E-M a hand-scheduled loop: 8 accumulators, 2 pointers and 4 temporaries fill the
 * 14 registers, so the plane and the end pointer are read from the stack. */
#define O2M_PW_PAIR                                \
    "ldr    %[t], %[pl]\n\t"                       \
    "ldrh   %[a], [%[xs]]\n\t"                     \
    "ldrh   %[b], [%[xs], %[t]]\n\t"               \
    "add    %[xs], %[xs], %[t], lsl #1\n\t"        \
    "orr    %[a], %[a], %[b], lsl #16\n\t"         \
    "sxtb16 %[b], %[a]\n\t"                        \
    "sxtb16 %[a], %[a], ror #8\n\t"                \
    "ldr    %[v], [%[wp]], #4\n\t"                 \
    "sxtb16 %[t], %[v]\n\t"                        \
    "smlad  %[a0], %[t], %[b], %[a0]\n\t"          \
    "smlad  %[a1], %[t], %[a], %[a1]\n\t"          \
    "sxtb16 %[t], %[v], ror #8\n\t"                \
    "smlad  %[a2], %[t], %[b], %[a2]\n\t"          \
    "smlad  %[a3], %[t], %[a], %[a3]\n\t"          \
    "ldr    %[v], [%[wp]], #4\n\t"                 \
    "sxtb16 %[t], %[v]\n\t"                        \
    "smlad  %[a4], %[t], %[b], %[a4]\n\t"          \
    "smlad  %[a5], %[t], %[a], %[a5]\n\t"          \
    "sxtb16 %[t], %[v], ror #8\n\t"                \
    "smlad  %[a6], %[t], %[b], %[a6]\n\t"          \
    "smlad  %[a7], %[t], %[a], %[a7]\n\t"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__OPTIMIZE__) && defined(__thumb2__)
#define O2M_PW_ASM 1
#endif

O2M_DSP_NOINLINE static void o2m_pw_acc4x2(const int8_t *x, const int8_t *pw, int32_t pairs, int32_t plane,
                                           const int32_t *bias, int32_t *acc)
{
    int32_t a0 = bias[0], a1 = bias[0], a2 = bias[1], a3 = bias[1];
    int32_t a4 = bias[2], a5 = bias[2], a6 = bias[3], a7 = bias[3];
    const int8_t *xs = x;
    const int8_t *wp = pw;
#ifdef O2M_PW_ASM
    const int32_t pl = plane;
    const int8_t *const wend = pw + (pairs >> 2) * 32;
    const int8_t *const wlast = pw + pairs * 8;
    uint32_t ta, tb, tv, tt;
    if (pairs >> 2) {
        __asm__ volatile("1:\n\t" O2M_PW_PAIR O2M_PW_PAIR O2M_PW_PAIR O2M_PW_PAIR
                         "ldr    %[t], %[we]\n\t"
                         "cmp    %[wp], %[t]\n\t"
                         "bne    1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4),
                           [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7), [xs] "+r"(xs), [wp] "+r"(wp),
                           [a] "=&r"(ta), [b] "=&r"(tb), [v] "=&r"(tv), [t] "=&r"(tt)
                         : [pl] "m"(pl), [we] "m"(wend)
                         : "cc", "memory");
    }
    if (pairs & 3) {
        __asm__ volatile("1:\n\t" O2M_PW_PAIR
                         "ldr    %[t], %[we]\n\t"
                         "cmp    %[wp], %[t]\n\t"
                         "bne    1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4),
                           [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7), [xs] "+r"(xs), [wp] "+r"(wp),
                           [a] "=&r"(ta), [b] "=&r"(tb), [v] "=&r"(tv), [t] "=&r"(tt)
                         : [pl] "m"(pl), [we] "m"(wlast)
                         : "cc", "memory");
    }
#else
    int32_t i;
    for (i = 0; i < pairs; ++i) {
        const uint32_t xw = ((uint32_t)(uint8_t)xs[0] | ((uint32_t)(uint8_t)xs[1] << 8)) |
                            (((uint32_t)(uint8_t)xs[plane] | ((uint32_t)(uint8_t)xs[plane + 1] << 8)) << 16);
        const int32_t p0 = o2m_sxtb16(xw), p1 = o2m_sxtb16_r8(xw);
        uint32_t v = o2m_ld32(wp);
        int32_t t = o2m_sxtb16(v);
        a0 = o2m_smlad(t, p0, a0);
        a1 = o2m_smlad(t, p1, a1);
        t = o2m_sxtb16_r8(v);
        a2 = o2m_smlad(t, p0, a2);
        a3 = o2m_smlad(t, p1, a3);
        v = o2m_ld32(wp + 4);
        t = o2m_sxtb16(v);
        a4 = o2m_smlad(t, p0, a4);
        a5 = o2m_smlad(t, p1, a5);
        t = o2m_sxtb16_r8(v);
        a6 = o2m_smlad(t, p0, a6);
        a7 = o2m_smlad(t, p1, a7);
        xs += 2 * plane;
        wp += 8;
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    acc[4] = a4;
    acc[5] = a5;
    acc[6] = a6;
    acc[7] = a7;
}

/* o2m_dsp_out folded into one 64-bit sum, for a channel whose multiplier is >= 0 and whose
 * right shift e is 1..31 (every TFLite multiplier is in [2^30, 2^31) or 0):
 * with s = floor((v*M + 2^30) / 2^31) and TFLite's rounding divide
 * (s >> e) + ((s & mask) > (mask >> 1) + [s < 0]) = floor((s + 2^(e-1) - [s < 0]) / 2^e),
 * the output before the zero point is floor((v*M + 2^30 + 2^(e+30) - [s < 0]*2^31) / 2^(31+e)),
 * that is the high word of the sum shifted right by e - 1.  [s < 0] may be read as [v < 0]:
 * they differ only where v < 0 and 0 <= v*M + 2^30 <= 2^30 (M >= 0), where s = 0 and
 * both sums floor to 0 (the quotient lies in [1/2 - 2^-e, 1/2 - 2^-(e+1)]).  |sum| < 2^63. */
typedef struct {
    int64_t pos, neg;  /* 2^30 + 2^(e+30), the same - 2^31 */
    int32_t mult, hs, fast;
} o2m_pw_rq;

static inline void o2m_pw_rq_load(const o2m_dsp_requant *r, int32_t channel, o2m_pw_rq *q)
{
    const int32_t c = r->per_channel ? channel : 0;
    const int32_t s = r->shifts[c];
    const int32_t e = s > 0 ? 0 : -s;
    q->mult = r->multipliers[c];
    q->fast = q->mult >= 0 && e >= 1 && e <= 31; /* then no left shift: s = -e < 0 */
    q->hs = q->fast ? e - 1 : 0;
    q->pos = q->fast ? ((int64_t)1 << 30) + ((int64_t)1 << (e + 30)) : 0;
    q->neg = q->pos - ((int64_t)1 << 31);
}

/* full: the clamp is [-128, 127] (no activation, or a ReLU whose zero point is -128) */
static inline int8_t o2m_pw_out(int32_t acc, const o2m_pw_rq *q, int32_t offset, int32_t lo, int32_t hi, int32_t full)
{
    const int64_t sum = (acc < 0 ? q->neg : q->pos) + (int64_t)acc * q->mult;
    int32_t o = ((int32_t)(sum >> 32) >> q->hs) + offset;
    if (full) {
        return o2m_sat8(o);
    }
    o = o < lo ? lo : o;
    o = o > hi ? hi : o;
    return (int8_t)o;
}

/* Requantize and store a 4x2 tile's `live` channels (o2m_pw_out, `full` a constant). */
static inline void o2m_pw_store(const int32_t *acc, const o2m_pw_rq *f, int32_t live, const o2m_dsp_requant *r,
                                int32_t full, int8_t *y, int32_t plane)
{
    int32_t t;
    for (t = 0; t < live; ++t, y += plane) {
        y[0] = o2m_pw_out(acc[2 * t], &f[t], r->output_offset, r->act_min, r->act_max, full);
        y[1] = o2m_pw_out(acc[2 * t + 1], &f[t], r->output_offset, r->act_min, r->act_max, full);
    }
}

/* 1x1 stride-1 unpadded conv with re-laid-out weights (pw_weights only; w unused), plane
 * >= 2: whole groups of four output channels in 4x2 tiles, pixels in twos (an odd plane's
 * last pixel pairs with the one before it: computed twice, same bytes; y never overlaps
 * x), an odd input channel count's last channel from the four bytes after the group's
 * pairs; the c_out % 4 last channels (ONNX-order rows) by o2m_pointwise_pair.  Reads the
 * input in place, no scratch. */
static void o2m_pointwise_4x2(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, int8_t *y)
{
    const o2m_dsp_requant rl = p->requant; /* a local copy: the int8 stores cannot alias it */
    const o2m_dsp_requant *r = &rl;
    const int32_t k = p->c_in;
    const int32_t pairs = k >> 1;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t whole = p->c_out & ~3;
    const int32_t full = rl.act_min == -128 && rl.act_max == 127;
    int32_t b, g, pix, t;
    for (b = 0; b < p->n; ++b) {
        const int8_t *xb = x + b * k * plane;
        int8_t *yb = y + b * p->c_out * plane;
        for (g = 0; g < whole; g += 4) {
            const int8_t *pw = p->pw_weights + g * k;
            const int8_t *odd = pw + pairs * 8;
            int32_t bias[4], fast = 1;
            o2m_dsp_rq q[4];
            o2m_pw_rq f[4];
            for (t = 0; t < 4; ++t) {
                bias[t] = p->bias[g + t];
                o2m_dsp_rq_load(r, g + t, &q[t]);
                o2m_pw_rq_load(r, g + t, &f[t]);
                fast &= f[t].fast;
            }
            for (pix = 0; pix < plane; pix += 2) {
                const int32_t at = pix + 1 < plane ? pix : pix - 1;
                int32_t acc[8];
                o2m_pw_acc4x2(xb + at, pw, pairs, plane, bias, acc);
                if (k & 1) {
                    const int8_t *xl = xb + (k - 1) * plane + at;
                    const int32_t x0 = xl[0], x1 = xl[1];
                    for (t = 0; t < 4; ++t) {
                        acc[2 * t] += odd[t] * x0;
                        acc[2 * t + 1] += odd[t] * x1;
                    }
                }
                if (fast && full) {
                    o2m_pw_store(acc, f, 4, r, 1, yb + g * plane + at, plane);
                    continue;
                }
                if (fast) {
                    o2m_pw_store(acc, f, 4, r, 0, yb + g * plane + at, plane);
                    continue;
                }
                for (t = 0; t < 4; ++t) {
                    int8_t *yo = yb + (g + t) * plane + at;
                    yo[0] = o2m_dsp_out(acc[2 * t], &q[t], r);
                    yo[1] = o2m_dsp_out(acc[2 * t + 1], &q[t], r);
                }
            }
        }
        if (whole < p->c_out) {
            /* the last rows: a conv of c_out % 4 channels over the same input */
            o2m_conv2d_s8_dsp_params rest = *p;
            rest.c_out = p->c_out - whole;
            rest.bias = p->bias + whole;
            if (p->requant.per_channel) {
                rest.requant.multipliers = p->requant.multipliers + whole;
                rest.requant.shifts = p->requant.shifts + whole;
            }
            for (pix = 0; pix < plane; pix += 2) {
                const int32_t at = pix + 1 < plane ? pix : pix - 1;
                o2m_pointwise_pair(&rest, xb + at, p->pw_weights + whole * k, yb + whole * plane + at, plane);
            }
        }
    }
}

/* The scratch form of the 4x2 tiles: the two pixels' SMLAD operands of every channel pair,
 * x16[2j] = [x(2j,p0), x(2j+1,p0)], x16[2j+1] = the same of pixel 1 (as o2m_pw_acc4x2 forms
 * them), unpacked once for all output channels; per pair one LDRD instead of two halfword
 * loads, an ORR and two SXTB16, and no plane stride (so no stack read). */
#define O2M_PW_COL_PAIR                            \
    "ldrd   %[b], %[a], [%[xs]], #8\n\t"           \
    "ldr    %[v], [%[wp]], #4\n\t"                 \
    "sxtb16 %[t], %[v]\n\t"                        \
    "smlad  %[a0], %[t], %[b], %[a0]\n\t"          \
    "smlad  %[a1], %[t], %[a], %[a1]\n\t"          \
    "sxtb16 %[t], %[v], ror #8\n\t"                \
    "smlad  %[a2], %[t], %[b], %[a2]\n\t"          \
    "smlad  %[a3], %[t], %[a], %[a3]\n\t"          \
    "ldr    %[v], [%[wp]], #4\n\t"                 \
    "sxtb16 %[t], %[v]\n\t"                        \
    "smlad  %[a4], %[t], %[b], %[a4]\n\t"          \
    "smlad  %[a5], %[t], %[a], %[a5]\n\t"          \
    "sxtb16 %[t], %[v], ror #8\n\t"                \
    "smlad  %[a6], %[t], %[b], %[a6]\n\t"          \
    "smlad  %[a7], %[t], %[a], %[a7]\n\t"

O2M_DSP_NOINLINE static void o2m_pw_col4x2(const int32_t *x16, const int8_t *pw, int32_t pairs,
                                           const int32_t *bias, int32_t *acc)
{
    int32_t a0 = bias[0], a1 = bias[0], a2 = bias[1], a3 = bias[1];
    int32_t a4 = bias[2], a5 = bias[2], a6 = bias[3], a7 = bias[3];
    const int32_t *xs = x16;
    const int8_t *wp = pw;
#ifdef O2M_PW_ASM
    const int8_t *const wend = pw + (pairs >> 2) * 32;
    const int8_t *const wlast = pw + pairs * 8;
    uint32_t ta, tb, tv, tt;
    if (pairs >> 2) {
        __asm__ volatile("1:\n\t" O2M_PW_COL_PAIR O2M_PW_COL_PAIR O2M_PW_COL_PAIR O2M_PW_COL_PAIR
                         "ldr    %[t], %[we]\n\t"
                         "cmp    %[wp], %[t]\n\t"
                         "bne    1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4),
                           [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7), [xs] "+r"(xs), [wp] "+r"(wp),
                           [a] "=&r"(ta), [b] "=&r"(tb), [v] "=&r"(tv), [t] "=&r"(tt)
                         : [we] "m"(wend)
                         : "cc", "memory");
    }
    if (pairs & 3) {
        __asm__ volatile("1:\n\t" O2M_PW_COL_PAIR
                         "ldr    %[t], %[we]\n\t"
                         "cmp    %[wp], %[t]\n\t"
                         "bne    1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4),
                           [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7), [xs] "+r"(xs), [wp] "+r"(wp),
                           [a] "=&r"(ta), [b] "=&r"(tb), [v] "=&r"(tv), [t] "=&r"(tt)
                         : [we] "m"(wlast)
                         : "cc", "memory");
    }
#else
    int32_t i;
    for (i = 0; i < pairs; ++i, xs += 2, wp += 8) {
        const int32_t p0 = xs[0], p1 = xs[1];
        uint32_t v = o2m_ld32(wp);
        int32_t t = o2m_sxtb16(v);
        a0 = o2m_smlad(t, p0, a0);
        a1 = o2m_smlad(t, p1, a1);
        t = o2m_sxtb16_r8(v);
        a2 = o2m_smlad(t, p0, a2);
        a3 = o2m_smlad(t, p1, a3);
        v = o2m_ld32(wp + 4);
        t = o2m_sxtb16(v);
        a4 = o2m_smlad(t, p0, a4);
        a5 = o2m_smlad(t, p1, a5);
        t = o2m_sxtb16_r8(v);
        a6 = o2m_smlad(t, p0, a6);
        a7 = o2m_smlad(t, p1, a7);
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    acc[4] = a4;
    acc[5] = a5;
    acc[6] = a6;
    acc[7] = a7;
}

/* o2m_pw_out of a tile's four channels g.., their multipliers and shifts read here (the
 * scratch form has no room for a per-channel table); a channel the folded sum does not
 * cover (o2m_pw_rq_load) takes o2m_dsp_out. */
static inline void o2m_pw_store_direct(const int32_t *acc, int32_t g, const o2m_dsp_requant *r, int32_t full,
                                       int8_t *y, int32_t plane)
{
    int32_t t;
    for (t = 0; t < 4; ++t, y += plane) {
        const int32_t c = r->per_channel ? g + t : 0;
        const int32_t e = -r->shifts[c];
        o2m_pw_rq q;
        q.mult = r->multipliers[c];
        if (q.mult >= 0 && e >= 1 && e <= 31) {
            q.hs = e - 1;
            q.pos = ((int64_t)1 << 30) + ((int64_t)1 << (e + 30));
            q.neg = q.pos - ((int64_t)1 << 31);
            q.fast = 1;
            y[0] = o2m_pw_out(acc[2 * t], &q, r->output_offset, r->act_min, r->act_max, full);
            y[1] = o2m_pw_out(acc[2 * t + 1], &q, r->output_offset, r->act_min, r->act_max, full);
        } else {
            o2m_dsp_rq d;
            o2m_dsp_rq_load(r, g + t, &d);
            y[0] = o2m_dsp_out(acc[2 * t], &d, r);
            y[1] = o2m_dsp_out(acc[2 * t + 1], &d, r);
        }
    }
}

/* o2m_pointwise_4x2 with scratch (O2M_DSP_PW_SCRATCH(c_in) bytes, 4-byte aligned), c_in >= 2:
 * per pixel pair the operands unpacked once into the
 * scratch, then every whole group of four channels; the rest as there. */
static void o2m_pointwise_4x2_col(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, int8_t *y, int8_t *scratch)
{
    const o2m_dsp_requant rl = p->requant; /* a local copy: the int8 stores cannot alias it */
    const o2m_dsp_requant *r = &rl;
    const int32_t k = p->c_in;
    const int32_t pairs = k >> 1;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t whole = p->c_out & ~3;
    const int32_t full = rl.act_min == -128 && rl.act_max == 127;
    int32_t *x16 = (int32_t *)(void *)scratch;
    o2m_conv2d_s8_dsp_params rest = *p;
    int32_t b, g, pix, j, t;
    rest.c_out = p->c_out - whole;
    rest.bias = p->bias + whole;
    if (p->requant.per_channel) {
        rest.requant.multipliers = p->requant.multipliers + whole;
        rest.requant.shifts = p->requant.shifts + whole;
    }
    for (b = 0; b < p->n; ++b) {
        const int8_t *xb = x + b * k * plane;
        int8_t *yb = y + b * p->c_out * plane;
        for (pix = 0; pix < plane; pix += 2) {
            const int32_t at = pix + 1 < plane ? pix : pix - 1;
            const int8_t *xs = xb + at;
            for (j = 0; j < pairs; ++j, xs += 2 * plane) {
                const uint32_t xw = ((uint32_t)(uint8_t)xs[0] | ((uint32_t)(uint8_t)xs[1] << 8)) |
                                    (((uint32_t)(uint8_t)xs[plane] | ((uint32_t)(uint8_t)xs[plane + 1] << 8)) << 16);
                x16[2 * j] = o2m_sxtb16(xw);
                x16[2 * j + 1] = o2m_sxtb16_r8(xw);
            }
            for (g = 0; g < whole; g += 4) {
                const int8_t *pw = p->pw_weights + g * k;
                int32_t acc[8];
                o2m_pw_col4x2(x16, pw, pairs, p->bias + g, acc);
                if (k & 1) {
                    const int8_t *odd = pw + pairs * 8;
                    const int8_t *xl = xb + (k - 1) * plane + at;
                    const int32_t x0 = xl[0], x1 = xl[1];
                    for (t = 0; t < 4; ++t) {
                        acc[2 * t] += odd[t] * x0;
                        acc[2 * t + 1] += odd[t] * x1;
                    }
                }
                if (full) {
                    o2m_pw_store_direct(acc, g, r, 1, yb + g * plane + at, plane);
                } else {
                    o2m_pw_store_direct(acc, g, r, 0, yb + g * plane + at, plane);
                }
            }
            if (whole < p->c_out) {
                o2m_pointwise_pair(&rest, xb + at, p->pw_weights + whole * k, yb + whole * plane + at, plane);
            }
        }
    }
}

/* Taps [*lo, *hi) of a kernel row whose input position start + k*dil lies in [0, size). */
static void o2m_valid_taps(int32_t start, int32_t dil, int32_t k_size, int32_t size, int32_t *lo, int32_t *hi)
{
    int32_t a = 0, b = k_size;
    while (a < b && start + a * dil < 0) {
        ++a;
    }
    while (b > a && start + (b - 1) * dil >= size) {
        --b;
    }
    *lo = a;
    *hi = b;
}

/* One output pixel whose window leaves the input, every channel: the portable kernel's sum
 * over the valid taps, acc = bias + sum (x + input_offset) * w. */
static void o2m_conv_border(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y,
                            int32_t plane, int32_t ih0, int32_t iw0)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t off = -p->pad_value;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t kk = p->k_h * p->k_w;
    int32_t kh_lo, kh_hi, kw_lo, kw_hi, oc, ic, kh, kw;
    o2m_valid_taps(ih0, p->dil_h, p->k_h, p->h_in, &kh_lo, &kh_hi);
    o2m_valid_taps(iw0, p->dil_w, p->k_w, p->w_in, &kw_lo, &kw_hi);
    for (oc = 0; oc < p->c_out; ++oc) {
        const int8_t *wo = w + oc * p->c_in * kk;
        int32_t acc = p->raw_bias != NULL ? p->raw_bias[oc] : 0;
        o2m_dsp_rq q;
        for (ic = 0; ic < p->c_in; ++ic, wo += kk) {
            const int8_t *xc = x + ic * plane_in + iw0;
            for (kh = kh_lo; kh < kh_hi; ++kh) {
                const int8_t *xr = xc + (ih0 + kh * p->dil_h) * p->w_in;
                const int8_t *wr = wo + kh * p->k_w;
                for (kw = kw_lo; kw < kw_hi; ++kw) {
                    acc += ((int32_t)xr[kw * p->dil_w] + off) * (int32_t)wr[kw];
                }
            }
        }
        o2m_dsp_rq_load(r, oc, &q);
        y[oc * plane] = o2m_dsp_out(acc, &q, r);
    }
}

static void o2m_conv_in_place(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y)
{
    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
        p->pad_left == 0 && p->h_out == p->h_in && p->w_out == p->w_in && p->h_in * p->w_in > 1) {
        /* pixel pairs 0-1, 2-3, ...; an odd plane's last pixel pairs with the one before it */
        const int32_t plane = p->h_out * p->w_out;
        int32_t b, pix;
        for (b = 0; b < p->n; ++b) {
            for (pix = 0; pix < plane; pix += 2) {
                const int32_t at = pix + 1 < plane ? pix : pix - 1;
                o2m_pointwise_pair(p, x + b * p->c_in * plane + at, w, y + b * p->c_out * plane + at, plane);
            }
        }
        return;
    }
    {
    const int32_t k = p->c_in * p->k_h * p->k_w;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t sw = p->stride_w;
    const int32_t span_h = (p->k_h - 1) * p->dil_h + 1;
    const int32_t span_w = (p->k_w - 1) * p->dil_w + 1;
    int32_t b, oh, ow;
    for (b = 0; b < p->n; ++b) {
        const int8_t *xb = x + b * p->c_in * plane_in;
        int8_t *yb = y + b * p->c_out * plane;
        for (oh = 0; oh < p->h_out; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            const int32_t rows_in = ih0 >= 0 && ih0 + span_h <= p->h_in;
            for (ow = 0; ow < p->w_out; ow += 2) {
                const int32_t two = ow + 1 < p->w_out;
                const int32_t iw0 = ow * sw - p->pad_left;
                const int32_t in0 = rows_in && iw0 >= 0 && iw0 + span_w <= p->w_in;
                const int32_t in1 = two && rows_in && iw0 + sw >= 0 && iw0 + sw + span_w <= p->w_in;
                int8_t *yp = yb + oh * p->w_out + ow;
                if (in0 && in1) {
                    o2m_conv_pair(p, xb + ih0 * p->w_in + iw0, w, yp, plane, 1, k);
                    continue;
                }
                if (in0) {
                    o2m_conv_pair(p, xb + ih0 * p->w_in + iw0, w, yp, plane, 0, k);
                } else {
                    o2m_conv_border(p, xb, w, yp, plane, ih0, iw0);
                }
                if (in1) {
                    o2m_conv_pair(p, xb + ih0 * p->w_in + iw0 + sw, w, yp + 1, plane, 0, k);
                } else if (two) {
                    o2m_conv_border(p, xb, w, yp + 1, plane, ih0, iw0 + sw);
                }
            }
        }
    }
}
}


void o2m_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y,
                       int8_t *scratch)
{
    if (p->pw_weights != NULL && o2m_is_pointwise(p) && p->h_in * p->w_in >= 2) {
        /* the scratch form pays per pixel pair for the unpacking and per tile for its
           requantization constants: measured (VWW, MCUNet-VWW) a loss below 64 input
           channels, about even at 64, a gain from 128 on */
        if (scratch != NULL && p->c_in >= 128 && p->c_out >= 8) {
            o2m_pointwise_4x2_col(p, x, y, scratch);
        } else {
            o2m_pointwise_4x2(p, x, y); /* in place, faster than the im2col columns */
        }
    } else if (scratch != NULL) {
        o2m_conv_im2col(p, x, w, y, scratch);
    } else {
        o2m_conv_in_place(p, x, w, y);
    }
}

/* ----------------------------------------------------------------- depthwise */
#define O2M_DSP_DW_MAX_K 8

/* A border output (its window leaves the input): the portable kernel's sum over the valid
 * taps, acc = bias + sum (x + input_offset) * w, with bias = folded - input_offset * sum w. */
static int32_t o2m_dw_border(const o2m_conv2d_s8_dsp_params *p, const int8_t *xc, const int8_t *wc, int32_t bias,
                             int32_t ih0, int32_t iw0)
{
    const int32_t off = -p->pad_value;
    int32_t acc = bias, kh_lo, kh_hi, kw_lo, kw_hi, kh, kw;
    o2m_valid_taps(ih0, 1, p->k_h, p->h_in, &kh_lo, &kh_hi);
    o2m_valid_taps(iw0, 1, p->k_w, p->w_in, &kw_lo, &kw_hi);
    for (kh = kh_lo; kh < kh_hi; ++kh) {
        const int8_t *xr = xc + (ih0 + kh) * p->w_in + iw0;
        const int8_t *wr = wc + kh * p->k_w;
        for (kw = kw_lo; kw < kw_hi; ++kw) {
            acc += ((int32_t)xr[kw] + off) * (int32_t)wr[kw];
        }
    }
    return acc;
}

void o2m_depthwise_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                 int8_t *y, int8_t *scratch)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t mult = p->c_out / p->c_in;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t chunks = p->k_w <= 4 ? 1 : 2;
    const int32_t kh_n = p->k_h;
    const int32_t sw = p->stride_w;
    /* interior: the window's rows inside the input, and its 4 * chunks bytes read by the
       word loads inside the row (no tap reads padding, no load leaves the tensor) */
    int32_t ow_lo = (p->pad_left + sw - 1) / sw;
    int32_t ow_hi = (p->w_in - 4 * chunks + p->pad_left) >= 0 ? (p->w_in - 4 * chunks + p->pad_left) / sw + 1 : 0;
    int32_t oh_lo = (p->pad_top + p->stride_h - 1) / p->stride_h;
    int32_t oh_hi = (p->h_in - kh_n + p->pad_top) >= 0 ? (p->h_in - kh_n + p->pad_top) / p->stride_h + 1 : 0;
    const int32_t pairs = kh_n == 3 && p->k_w == 3 && sw == 1;
    int32_t we[O2M_DSP_DW_MAX_K][2], wo[O2M_DSP_DW_MAX_K][2];
    int32_t b, oc, oh, ow, i, j;
    (void)scratch;
    ow_hi = ow_hi < p->w_out ? ow_hi : p->w_out;
    oh_hi = oh_hi < p->h_out ? oh_hi : p->h_out;
    if (ow_lo > ow_hi) {
        ow_lo = ow_hi;
    }
    for (b = 0; b < p->n; ++b) {
        for (oc = 0; oc < p->c_out; ++oc) {
            const int8_t *xc = x + (b * p->c_in + oc / mult) * plane_in;
            const int8_t *wc = w + oc * p->k_h * p->k_w;
            int8_t *yc = y + (b * p->c_out + oc) * plane;
            const int32_t folded = p->bias[oc];
            int32_t sum_w = 0, bias;
            o2m_dsp_rq q;
            o2m_dsp_rq_load(r, oc, &q);
            for (i = 0; i < kh_n; ++i) {
                for (j = 0; j < 2; ++j) {
                    int32_t t[4], m;
                    for (m = 0; m < 4; ++m) {
                        const int32_t kw = 4 * j + m;
                        t[m] = kw < p->k_w ? wc[i * p->k_w + kw] : 0;
                        sum_w += t[m];
                    }
                    we[i][j] = o2m_pack16(t[0], t[2]);
                    wo[i][j] = o2m_pack16(t[1], t[3]);
                }
            }
            bias = (int32_t)((uint32_t)folded + (uint32_t)p->pad_value * (uint32_t)sum_w);
            for (oh = 0; oh < p->h_out; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int8_t *yr = yc + oh * p->w_out;
                const int8_t *xr = xc + ih0 * p->w_in - p->pad_left;
                int32_t lo = ow_lo, hi = ow_hi;
                if (oh < oh_lo || oh >= oh_hi) {
                    lo = hi = p->w_out; /* the whole row is border */
                }
                for (ow = 0; ow < lo; ++ow) {
                    yr[ow] = o2m_dsp_out(o2m_dw_border(p, xc, wc, bias, ih0, ow * sw - p->pad_left), &q, r);
                }
                if (pairs) {
                    /* two outputs per step: x0..x3 feed out0 (x0 x1 x2) and out1 (x1 x2 x3);
                       the pair's word load reads x0..x3, inside the row while ow + 1 < hi */
                    const int32_t e0 = we[0][0], e1 = we[1][0], e2 = we[2][0];
                    const int32_t m0 = wo[0][0], m1 = wo[1][0], m2 = wo[2][0];
                    const int8_t *r0 = xr, *r1 = xr + p->w_in, *r2 = xr + 2 * p->w_in;
                    for (; ow + 1 < hi; ow += 2) {
                        int32_t a0 = folded, a1 = folded;
                        uint32_t v;
                        int32_t ev, od;
                        v = o2m_ld32(r0 + ow);
                        ev = o2m_sxtb16(v);
                        od = o2m_sxtb16_r8(v);
                        a0 = o2m_smlad(ev, e0, a0);
                        a0 = o2m_smlabb(od, m0, a0);
                        a1 = o2m_smlad(od, e0, a1);
                        a1 = o2m_smlatb(ev, m0, a1);
                        v = o2m_ld32(r1 + ow);
                        ev = o2m_sxtb16(v);
                        od = o2m_sxtb16_r8(v);
                        a0 = o2m_smlad(ev, e1, a0);
                        a0 = o2m_smlabb(od, m1, a0);
                        a1 = o2m_smlad(od, e1, a1);
                        a1 = o2m_smlatb(ev, m1, a1);
                        v = o2m_ld32(r2 + ow);
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
                for (; ow < hi; ++ow) {
                    const int8_t *s = xr + ow * sw;
                    int32_t acc = folded;
                    for (i = 0; i < kh_n; ++i, s += p->w_in) {
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
                for (; ow < p->w_out; ++ow) {
                    yr[ow] = o2m_dsp_out(o2m_dw_border(p, xc, wc, bias, ih0, ow * sw - p->pad_left), &q, r);
                }
            }
        }
    }
}

void o2m_depthwise_conv2d_s8_dsp_inplace(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                         int8_t *y, int8_t *scratch)
{
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    o2m_conv2d_s8_dsp_params one = *p;
    int32_t k;
    one.n = 1;
    one.c_in = 1;
    one.c_out = 1;
    for (k = 0; k < p->n * p->c_in; ++k) {
        const int32_t c = k % p->c_in;
        one.bias = p->bias + c;
        one.raw_bias = p->raw_bias != NULL ? p->raw_bias + c : NULL;
        if (p->requant.per_channel) {
            one.requant.multipliers = p->requant.multipliers + c;
            one.requant.shifts = p->requant.shifts + c;
        }
        o2m_depthwise_conv2d_s8_dsp(&one, x + k * plane_in, w + c * p->k_h * p->k_w, scratch, NULL);
        /* bytes [k*plane, (k+1)*plane) lie inside input planes <= k: all read by now */
        memcpy(y + k * plane, scratch, (size_t)plane);
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
        /* three weight rows per step: x, three row pointers and three accumulators stay in
           registers (four rows spill on v7E-M) */
        for (n = 0; n < p->out_features; n += 3) {
            const int32_t live = p->out_features - n < 3 ? p->out_features - n : 3;
            const int8_t *w0 = w + n * k;
            const int8_t *w1 = live > 1 ? w0 + k : w0;
            const int8_t *w2 = live > 2 ? w0 + 2 * k : w0;
            const int8_t *xs = xb;
            int32_t a[3];
            int32_t a0, a1, a2;
            for (t = 0; t < 3; ++t) {
                a[t] = p->bias[n + (t < live ? t : 0)];
            }
            a0 = a[0];
            a1 = a[1];
            a2 = a[2];
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
                xs += 4;
                w0 += 4;
                w1 += 4;
                w2 += 4;
            }
            for (i = k & 3; i > 0; --i) {
                const int32_t xv = *xs++;
                a0 += *w0++ * xv;
                a1 += *w1++ * xv;
                a2 += *w2++ * xv;
            }
            a[0] = a0;
            a[1] = a1;
            a[2] = a2;
            for (t = 0; t < live; ++t) {
                o2m_dsp_rq q;
                o2m_dsp_rq_load(r, n + t, &q);
                yb[n + t] = o2m_dsp_out(a[t], &q, r);
            }
        }
    }
}
