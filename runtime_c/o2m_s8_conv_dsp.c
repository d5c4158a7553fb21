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

/* GCC's pre-allocation scheduler hoists the loads of a fully used tile loop and spills its
 * accumulators (the packed 3x3 tile: ~2.1 instead of ~1.7 instructions per MAC on Cortex-M4). */
#if defined(__GNUC__) && !defined(__clang__)
#define O2M_DSP_NO_PRESCHED __attribute__((optimize("no-schedule-insns")))
#else
#define O2M_DSP_NO_PRESCHED
#endif

/* Inlined into each caller with constant arguments (one specialised loop per variant). */
#if defined(__GNUC__)
#define O2M_DSP_ALWAYS_INLINE __attribute__((always_inline))
#else
#define O2M_DSP_ALWAYS_INLINE
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


/* The same step in C (the forms' plain twins), on the accumulators a0..a7 in scope. */
#define O2M_PW_MAC8_C(wp, p0, p1)                  \
    do {                                           \
        uint32_t v_ = o2m_ld32(wp);                \
        int32_t t_ = o2m_sxtb16(v_);               \
        a0 = o2m_smlad(t_, (p0), a0);              \
        a1 = o2m_smlad(t_, (p1), a1);              \
        t_ = o2m_sxtb16_r8(v_);                    \
        a2 = o2m_smlad(t_, (p0), a2);              \
        a3 = o2m_smlad(t_, (p1), a3);              \
        v_ = o2m_ld32((wp) + 4);                   \
        t_ = o2m_sxtb16(v_);                       \
        a4 = o2m_smlad(t_, (p0), a4);              \
        a5 = o2m_smlad(t_, (p1), a5);              \
        t_ = o2m_sxtb16_r8(v_);                    \
        a6 = o2m_smlad(t_, (p0), a6);              \
        a7 = o2m_smlad(t_, (p1), a7);              \
    } while (0)

/* Both pointwise forms' channel-pair step once its operands b (pixel 0) and a (pixel 1) hold the
 * pair's SMLAD halves: two weight words (four output channels x the pair) into a0..a7. */
#define O2M_PW_MAC8                                \
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
    O2M_PW_MAC8

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
        O2M_PW_MAC8_C(wp, p0, p1);
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
    O2M_PW_MAC8

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
        O2M_PW_MAC8_C(wp, p0, p1);
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

/* ----------------------------------------------------------------- dense 3x3, packed weights */
/* Two halfwords as one word, lo | hi << 16 (PKHBT lo, hi, LSL #16), and the two high
 * halfwords, hi(a) | hi(b) << 16 (PKHTB b, a, ASR #16). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline uint32_t o2m_pk_lo(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline uint32_t o2m_pk_hi(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
}
#else
static inline uint32_t o2m_pk_lo(uint32_t a, uint32_t b)
{
    return (a & 0xFFFFu) | (b << 16);
}

static inline uint32_t o2m_pk_hi(uint32_t a, uint32_t b)
{
    return (a >> 16) | (b & 0xFFFF0000u);
}
#endif

static inline uint32_t o2m_ld16(const int8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One tap of a 2x2 tile (channels c, c + 1; pixels 0 and 1): v0 = [x_a, x_b] of pixel 0,
 * v1 of pixel 1 (input channels 2j, 2j + 1 as int16 halves); wp the channels' four weights
 * (one half of the tap's eight bytes).  Two channels, not four: four accumulators, the
 * operands and three pointers fit the registers (eight accumulators spill). */
#define O2M_C3_MAC(v0, v1, wp)                                                                   \
    do {                                                                                         \
        const uint32_t u_ = o2m_ld32(wp);                                                        \
        const int32_t e_ = o2m_sxtb16(u_), o_ = o2m_sxtb16_r8(u_);                              \
        a00 = o2m_smlad(e_, v0, a00);                                                            \
        a01 = o2m_smlad(e_, v1, a01);                                                            \
        a10 = o2m_smlad(o_, v0, a10);                                                            \
        a11 = o2m_smlad(o_, v1, a11);                                                            \
    } while (0)

/* Stride 1: pixel 0's tap at ra[kw] (plane 2j) and rb[kw] (plane 2j + 1), pixel 1's one
 * byte on: two halfword loads give [a0 a1 b0 b1]; SXTB16 = [a0 b0], ROR 8 = [a1 b1]. */
#define O2M_C3_TAP1(ra, rb, kw, wp)                                                              \
    do {                                                                                         \
        const uint32_t t_ = o2m_ld16((ra) + (kw)) | (o2m_ld16((rb) + (kw)) << 16);               \
        const int32_t v0_ = o2m_sxtb16(t_), v1_ = o2m_sxtb16_r8(t_);                            \
        O2M_C3_MAC(v0_, v1_, wp);                                                                \
    } while (0)

/* Stride 2: pixel 1's tap two bytes on: words [a0 . a1 .] and [b0 . b1 .] repacked to
 * [a0 . b0 .] and [a1 . b1 .] (PKHBT, PKHTB), each SXTB16. */
#define O2M_C3_TAP2(ra, rb, kw, wp)                                                              \
    do {                                                                                         \
        const uint32_t ua_ = o2m_ld32((ra) + (kw)), ub_ = o2m_ld32((rb) + (kw));                 \
        const int32_t v0_ = o2m_sxtb16(o2m_pk_lo(ua_, ub_)), v1_ = o2m_sxtb16(o2m_pk_hi(ua_, ub_)); \
        O2M_C3_MAC(v0_, v1_, wp);                                                                \
    } while (0)

/* Requantize and store channels g..g+3 (those below c_out) of pixel y[0] (acc[0, 2, 4, 6]), and
 * of y[1] (acc[1, 3, 5, 7]) when `two`. */
static void o2m_c3_store(const o2m_conv2d_s8_dsp_params *p, int32_t g, const int32_t *acc, int8_t *y,
                         int32_t plane, int32_t two)
{
    int32_t i;
    for (i = 0; i < 4 && g + i < p->c_out; ++i) {
        o2m_dsp_rq q;
        o2m_dsp_rq_load(&p->requant, g + i, &q);
        y[(g + i) * plane] = o2m_dsp_out(acc[2 * i], &q, &p->requant);
        if (two) {
            y[(g + i) * plane + 1] = o2m_dsp_out(acc[2 * i + 1], &q, &p->requant);
        }
    }
}

/* Channel oc's folded bias (0 past c_out) plus pad_value * the channel's weights of the taps
 * in `skipped` (bit t: tap t = kh * 3 + kw, summed over the input channels, p->tap_sums): the
 * kernels below skip the taps of a window that leave the input, which the folded bias
 * counts as reading pad_value.  Mod 2^32, like the int32 accumulator. */
O2M_DSP_NOINLINE static int32_t o2m_c3_bias(const o2m_conv2d_s8_dsp_params *p, int32_t oc, uint32_t skipped)
{
    uint32_t b;
    int32_t t;
    if (oc >= p->c_out) {
        return 0;
    }
    b = (uint32_t)p->bias[oc];
    for (t = 0; t < 9 && skipped != 0; ++t) {
        if (skipped & (1u << t)) {
            b += (uint32_t)p->pad_value * (uint32_t)p->tap_sums[oc * 9 + t];
        }
    }
    return (int32_t)b;
}

/* The taps outside kernel rows [kh_lo, kh_hi) and columns [kw_lo, kw_hi), as a bit mask. */
static uint32_t o2m_c3_skipped(int32_t kh_lo, int32_t kh_hi, int32_t kw_lo, int32_t kw_hi)
{
    uint32_t m = 0;
    int32_t kh, kw;
    for (kh = 0; kh < 3; ++kh) {
        for (kw = 0; kw < 3; ++kw) {
            if (kh < kh_lo || kh >= kh_hi || kw < kw_lo || kw >= kw_hi) {
                m |= 1u << (kh * 3 + kw);
            }
        }
    }
    return m;
}

/* The kinds of pixel pairs o2m_conv3_pair takes: both windows' columns inside the input,
 * pixel 0's first column left of it (pad), pixel 1's last column right of it. */
#define O2M_C3_INNER 0
#define O2M_C3_LEFT 1
#define O2M_C3_RIGHT 2

/* Operand i of a kernel row (x_i: the values at load position i, i = 0..4), 0 for the
 * positions a pair kind leaves out (a tap outside the input contributes through the bias). */
static inline int32_t o2m_c3_x(int32_t i, int32_t x0, int32_t x1, int32_t x2, int32_t x3, int32_t x4)
{
    return i == 0 ? x0 : i == 1 ? x1 : i == 2 ? x2 : i == 3 ? x3 : i == 4 ? x4 : 0;
}

/* A kernel row's three taps (O2M_C3_TAPK: tap kw) for the 2x2 tile from its operands
 * x0..x4: pixel 0's tap kw reads position kw + d, pixel 1's kw + d + s (s = stride_w);
 * positions < 0, or 4 without x4 (has4 == 0), are left out. */
#define O2M_C3_TAPK(x0, x1, x2, x3, x4, wk, kw, d, s, has4)                                     \
    do {                                                                                         \
        if ((kw) + (d) >= 0 && (kw) + (d) + (s) <= ((has4) ? 4 : 3)) {                          \
            O2M_C3_MAC(o2m_c3_x((kw) + (d), x0, x1, x2, x3, x4),                                 \
                       o2m_c3_x((kw) + (d) + (s), x0, x1, x2, x3, x4), (wk) + 8 * (kw));         \
        } else if ((kw) + (d) >= 0) { /* pixel 1's tap left out */                               \
            O2M_C3_MAC1(o2m_c3_x((kw) + (d), x0, x1, x2, x3, x4), a00, a10, (wk) + 8 * (kw));    \
        } else { /* pixel 0's tap left out */                                                    \
            O2M_C3_MAC1(o2m_c3_x((kw) + (d) + (s), x0, x1, x2, x3, x4), a01, a11, (wk) + 8 * (kw)); \
        }                                                                                        \
    } while (0)

/* One pixel's tap for channels oc, oc + 1 (accumulators c0, c1). */
#define O2M_C3_MAC1(v, c0, c1, wp)                                                               \
    do {                                                                                         \
        const uint32_t u1_ = o2m_ld32(wp);                                                       \
        c0 = o2m_smlad(o2m_sxtb16(u1_), v, c0);                                                  \
        c1 = o2m_smlad(o2m_sxtb16_r8(u1_), v, c1);                                               \
    } while (0)

#define O2M_C3_ROW(x0, x1, x2, x3, x4, wk, d, s, has4)                                           \
    do {                                                                                         \
        O2M_C3_TAPK(x0, x1, x2, x3, x4, wk, 0, d, s, has4);                                      \
        O2M_C3_TAPK(x0, x1, x2, x3, x4, wk, 1, d, s, has4);                                      \
        O2M_C3_TAPK(x0, x1, x2, x3, x4, wk, 2, d, s, has4);                                      \
    } while (0)

/* One kernel row of one input channel pair: a word per plane (+ a byte for has4) covering
 * the pair's six taps, repacked to x_i = [a_i b_i], then O2M_C3_ROW. */
#define O2M_C3_PAIRSTEP(ra, rb, wk, d, s, has4)                                                  \
    do {                                                                                         \
        const uint32_t ua = o2m_ld32(ra), ub = o2m_ld32(rb);                                     \
        const uint32_t ea = (uint32_t)o2m_sxtb16(ua), eb = (uint32_t)o2m_sxtb16(ub);             \
        const uint32_t oa = (uint32_t)o2m_sxtb16_r8(ua), ob = (uint32_t)o2m_sxtb16_r8(ub);       \
        const int32_t x0 = (int32_t)o2m_pk_lo(ea, eb), x2 = (int32_t)o2m_pk_hi(ea, eb);          \
        const int32_t x1 = (int32_t)o2m_pk_lo(oa, ob), x3 = (int32_t)o2m_pk_hi(oa, ob);          \
        const int32_t x4 = (has4) ? o2m_pack16((ra)[4], (rb)[4]) : 0;                            \
        O2M_C3_ROW(x0, x1, x2, x3, x4, wk, d, s, has4);                                          \
    } while (0)

/* The 2x2 tile of channels oc, oc + 1 (their weights from wp: half of the tap's eight bytes,
 * stepping 8 per tap) for a pixel pair of kind `kind`, over the kernel rows [kh_lo, kh_hi)
 * (rows that leave the input are skipped); col = the pair's load position in plane 0 (x +
 * iw0, + 1 for LEFT, - 1 for stride-1 RIGHT), ih0 the windows' first row.  Each row and
 * input channel pair loads one word per plane (plus a byte for stride-2 INNER) covering the
 * six taps, repacked to x_i = [a_i b_i].  Always inlined with constant s2 and kind. */
O2M_DSP_ALWAYS_INLINE static inline void o2m_conv3_tile(const o2m_conv2d_s8_dsp_params *p, const int8_t *col, int32_t ih0,
                                  int32_t kh_lo, int32_t kh_hi, const int8_t *wp, int32_t *acc, int32_t s2,
                                  int32_t kind)
{
    const int32_t w_in = p->w_in;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t step = 2 * plane_in;
    const int32_t pairs = p->c_in >> 1;
    const int32_t s = s2 ? 2 : 1;
    const int32_t d = kind == O2M_C3_LEFT ? -1 : (kind == O2M_C3_RIGHT && !s2) ? 1 : 0;
    const int32_t has4 = s2 && kind == O2M_C3_INNER;
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t j, kh;
    int32_t done = 0;
    if (kh_lo == 0 && kh_hi == 3) {
        /* all three kernel rows: input channel pair outer, the rows unrolled inside (loads
           at + w_in, + 2 w_in: register offsets), no per-row loop overhead */
        const int8_t *ra = col + ih0 * w_in;
        const int8_t *rb = ra + plane_in;
        const int8_t *wk = wp;
        const int32_t w2 = 2 * w_in;
        for (j = pairs; j > 0; --j, ra += step, rb += step, wk += 72) {
            O2M_C3_PAIRSTEP(ra, rb, wk, d, s, has4);
            O2M_C3_PAIRSTEP(ra + w_in, rb + w_in, wk + 24, d, s, has4);
            O2M_C3_PAIRSTEP(ra + w2, rb + w2, wk + 48, d, s, has4);
        }
        if (p->c_in & 1) {
            /* the last input channel paired with itself (its partner's weights are 0) */
            O2M_C3_PAIRSTEP(ra, ra, wk, d, s, has4);
            O2M_C3_PAIRSTEP(ra + w_in, ra + w_in, wk + 24, d, s, has4);
            O2M_C3_PAIRSTEP(ra + w2, ra + w2, wk + 48, d, s, has4);
        }
        done = 1;
        kh_hi = 0; /* no row left */
    }
    /* kernel row outer, input channel pair inner: the inner loop steps three pointers by
       constants (the tile, the pointers and the operands stay in registers) */
    for (kh = kh_lo; kh < kh_hi; ++kh) {
        const int8_t *ra = col + (ih0 + kh) * w_in;
        const int8_t *rb = ra + plane_in;
        const int8_t *wk = wp + 24 * kh;
        /* two channel pairs per step (the second at + step: register-offset loads) */
        for (j = done ? 0 : pairs >> 1; j > 0; --j, ra += 2 * step, rb += 2 * step, wk += 144) {
            O2M_C3_PAIRSTEP(ra, rb, wk, d, s, has4);
            O2M_C3_PAIRSTEP(ra + step, rb + step, wk + 72, d, s, has4);
        }
        if ((pairs & 1) && !done) {
            O2M_C3_PAIRSTEP(ra, rb, wk, d, s, has4);
        }
        if (p->c_in & 1) {
            /* the last input channel alone: its partner's weights are 0, so only the low
               halves of the operands matter */
            const int8_t *rl = col + pairs * step + (ih0 + kh) * w_in;
            const uint32_t u = o2m_ld32(rl);
            const int32_t e = o2m_sxtb16(u), o = o2m_sxtb16_r8(u); /* [x0 x2], [x1 x3] */
            const int32_t x2 = (int32_t)((uint32_t)e >> 16), x3 = (int32_t)((uint32_t)o >> 16);
            const int32_t x4 = has4 ? rl[4] : 0;
            const int8_t *wl = wp + pairs * 72 + 24 * kh;
            O2M_C3_ROW(e, o, x2, x3, x4, wl, d, s, has4);
        }
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* o2m_c3_bias, its common case (no tap skipped) inline. */
static inline int32_t o2m_c3_b(const o2m_conv2d_s8_dsp_params *p, int32_t oc, uint32_t skipped)
{
    return skipped == 0 && oc < p->c_out ? p->bias[oc] : o2m_c3_bias(p, oc, skipped);
}

/* Every output channel, two at a time, of a pixel pair of kind `kind` (constant, as s2):
 * o2m_conv3_tile, then the 2x2 store. */
O2M_DSP_ALWAYS_INLINE static inline void o2m_conv3_channels(const o2m_conv2d_s8_dsp_params *p, const int8_t *col,
                                                            int32_t ih0, int32_t kh_lo, int32_t kh_hi,
                                                            uint32_t skip0, uint32_t skip1, int8_t *y,
                                                            int32_t plane, int32_t s2, int32_t kind)
{
    const int32_t group = ((p->c_in + 1) >> 1) * 72;
    int32_t oc;
    for (oc = 0; oc < p->c_out; oc += 2) {
        const int8_t *wp = p->packed + (oc >> 2) * group + (oc & 2) * 2;
        int32_t acc[4];
        acc[0] = o2m_c3_b(p, oc, skip0);
        acc[1] = skip1 == skip0 ? acc[0] : o2m_c3_b(p, oc, skip1);
        acc[2] = o2m_c3_b(p, oc + 1, skip0);
        acc[3] = skip1 == skip0 ? acc[2] : o2m_c3_b(p, oc + 1, skip1);
        o2m_conv3_tile(p, col, ih0, kh_lo, kh_hi, wp, acc, s2, kind);
        {
            const o2m_dsp_requant *r = &p->requant;
            o2m_dsp_rq q;
            o2m_dsp_rq_load(r, oc, &q);
            y[oc * plane] = o2m_dsp_out(acc[0], &q, r);
            y[oc * plane + 1] = o2m_dsp_out(acc[1], &q, r);
            if (oc + 1 < p->c_out) {
                o2m_dsp_rq_load(r, oc + 1, &q);
                y[(oc + 1) * plane] = o2m_dsp_out(acc[2], &q, r);
                y[(oc + 1) * plane + 1] = o2m_dsp_out(acc[3], &q, r);
            }
        }
    }
}

/* A run of n INNER pixel pairs along an output row (the pairs' load positions col,
 * col + 2 stride_w, ...; outputs y[0..2n)), output channel pair outer: the channels'
 * biases and rescales are loaded once per run, not once per pair. */
O2M_DSP_ALWAYS_INLINE static inline void o2m_conv3_run_k(const o2m_conv2d_s8_dsp_params *p, const int8_t *col,
                                                         int32_t ih0, int32_t kh_lo, int32_t kh_hi, int32_t n,
                                                         int8_t *y, int32_t plane, int32_t s2)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t group = ((p->c_in + 1) >> 1) * 72;
    const uint32_t rows = kh_lo == 0 && kh_hi == 3 ? 0u : o2m_c3_skipped(kh_lo, kh_hi, 0, 3);
    int32_t oc, k;
    for (oc = 0; oc < p->c_out; oc += 2) {
        const int8_t *wp = p->packed + (oc >> 2) * group + (oc & 2) * 2;
        const int32_t two = oc + 1 < p->c_out;
        const int32_t b0 = o2m_c3_b(p, oc, rows), b1 = o2m_c3_b(p, oc + 1, rows);
        const int8_t *c = col;
        int8_t *y0 = y + oc * plane;
        o2m_dsp_rq q0, q1;
        o2m_dsp_rq_load(r, oc, &q0);
        o2m_dsp_rq_load(r, two ? oc + 1 : oc, &q1);
        for (k = n; k > 0; --k, c += s2 ? 4 : 2, y0 += 2) {
            int32_t acc[4];
            acc[0] = acc[1] = b0;
            acc[2] = acc[3] = b1;
            o2m_conv3_tile(p, c, ih0, kh_lo, kh_hi, wp, acc, s2, O2M_C3_INNER);
            y0[0] = o2m_dsp_out(acc[0], &q0, r);
            y0[1] = o2m_dsp_out(acc[1], &q0, r);
            if (two) {
                y0[plane] = o2m_dsp_out(acc[2], &q1, r);
                y0[plane + 1] = o2m_dsp_out(acc[3], &q1, r);
            }
        }
    }
}

O2M_DSP_NOINLINE O2M_DSP_NO_PRESCHED static void o2m_conv3_run(const o2m_conv2d_s8_dsp_params *p,
                                                               const int8_t *col, int32_t ih0, int32_t kh_lo,
                                                               int32_t kh_hi, int32_t n, int8_t *y, int32_t plane)
{
    if (p->stride_w == 2) {
        o2m_conv3_run_k(p, col, ih0, kh_lo, kh_hi, n, y, plane, 1);
    } else {
        o2m_conv3_run_k(p, col, ih0, kh_lo, kh_hi, n, y, plane, 0);
    }
}

/* A pixel pair of kind `kind` (windows' rows [kh_lo, kh_hi) inside the input; col as
 * o2m_conv3_tile's), every output channel. */
O2M_DSP_NOINLINE O2M_DSP_NO_PRESCHED static void o2m_conv3_pair(const o2m_conv2d_s8_dsp_params *p,
                                                                const int8_t *col, int32_t ih0, int32_t kh_lo,
                                                                int32_t kh_hi, int32_t kind, int8_t *y,
                                                                int32_t plane)
{
    const uint32_t rows = kh_lo == 0 && kh_hi == 3 ? 0u : o2m_c3_skipped(kh_lo, kh_hi, 0, 3);
    const uint32_t skip0 = kind == O2M_C3_LEFT ? rows | o2m_c3_skipped(0, 3, 1, 3) : rows;
    const uint32_t skip1 = kind == O2M_C3_RIGHT ? rows | o2m_c3_skipped(0, 3, 0, 2) : rows;
    if (p->stride_w == 2) {
        if (kind == O2M_C3_INNER) {
            o2m_conv3_channels(p, col, ih0, kh_lo, kh_hi, skip0, skip1, y, plane, 1, O2M_C3_INNER);
        } else if (kind == O2M_C3_LEFT) {
            o2m_conv3_channels(p, col, ih0, kh_lo, kh_hi, skip0, skip1, y, plane, 1, O2M_C3_LEFT);
        } else {
            o2m_conv3_channels(p, col, ih0, kh_lo, kh_hi, skip0, skip1, y, plane, 1, O2M_C3_RIGHT);
        }
    } else {
        if (kind == O2M_C3_INNER) {
            o2m_conv3_channels(p, col, ih0, kh_lo, kh_hi, skip0, skip1, y, plane, 0, O2M_C3_INNER);
        } else if (kind == O2M_C3_LEFT) {
            o2m_conv3_channels(p, col, ih0, kh_lo, kh_hi, skip0, skip1, y, plane, 0, O2M_C3_LEFT);
        } else {
            o2m_conv3_channels(p, col, ih0, kh_lo, kh_hi, skip0, skip1, y, plane, 0, O2M_C3_RIGHT);
        }
    }
}

/* One output pixel (any: its window may leave the input), every channel, four at a time,
 * over its valid taps (the skipped ones through the bias, o2m_c3_bias). */
O2M_DSP_NOINLINE O2M_DSP_NO_PRESCHED static void o2m_conv3_one(const o2m_conv2d_s8_dsp_params *p, const int8_t *x,
                                                               int8_t *y, int32_t plane, int32_t ih0, int32_t iw0)
{
    const int32_t w_in = p->w_in;
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t step = 2 * plane_in;
    const int32_t pairs = p->c_in >> 1;
    const int32_t jn = (p->c_in + 1) >> 1;
    int32_t kh_lo, kh_hi, kw_lo, kw_hi, g, j, kh, kw;
    uint32_t skipped;
    o2m_valid_taps(ih0, 1, 3, p->h_in, &kh_lo, &kh_hi);
    o2m_valid_taps(iw0, 1, 3, p->w_in, &kw_lo, &kw_hi);
    skipped = o2m_c3_skipped(kh_lo, kh_hi, kw_lo, kw_hi);
    for (g = 0; g < p->c_out; g += 4) {
        int32_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        const int8_t *wg = p->packed + (g >> 2) * jn * 72;
        int32_t a0 = o2m_c3_bias(p, g, skipped), a1 = o2m_c3_bias(p, g + 1, skipped);
        int32_t a2 = o2m_c3_bias(p, g + 2, skipped), a3 = o2m_c3_bias(p, g + 3, skipped);
        for (kh = kh_lo; kh < kh_hi; ++kh) {
            for (kw = kw_lo; kw < kw_hi; ++kw) {
                const int8_t *xa = x + (ih0 + kh) * w_in + iw0 + kw;
                const int8_t *wt = wg + (kh * 3 + kw) * 8;
                for (j = pairs; j > 0; --j, xa += step, wt += 72) {
                    const int32_t v = o2m_pack16(xa[0], xa[plane_in]);
                    uint32_t u = o2m_ld32(wt);
                    a0 = o2m_smlad(o2m_sxtb16(u), v, a0);
                    a1 = o2m_smlad(o2m_sxtb16_r8(u), v, a1);
                    u = o2m_ld32(wt + 4);
                    a2 = o2m_smlad(o2m_sxtb16(u), v, a2);
                    a3 = o2m_smlad(o2m_sxtb16_r8(u), v, a3);
                }
                if (p->c_in & 1) {
                    const int32_t v = xa[0]; /* the partner's weights are 0 */
                    uint32_t u = o2m_ld32(wt);
                    a0 = o2m_smlad(o2m_sxtb16(u), v, a0);
                    a1 = o2m_smlad(o2m_sxtb16_r8(u), v, a1);
                    u = o2m_ld32(wt + 4);
                    a2 = o2m_smlad(o2m_sxtb16(u), v, a2);
                    a3 = o2m_smlad(o2m_sxtb16_r8(u), v, a3);
                }
            }
        }
        acc[0] = a0;
        acc[2] = a1;
        acc[4] = a2;
        acc[6] = a3;
        o2m_c3_store(p, g, acc, y, plane, 0);
    }
}

/* Dense 3x3 with packed weights (p->packed): pairs of pixels whose window columns lie inside
 * the input through o2m_conv3_pair (border rows skip their outside kernel rows), the rest
 * one by one through o2m_conv3_one. */
static void o2m_conv3_packed(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, int8_t *y)
{
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    const int32_t sw = p->stride_w;
    int32_t b, oh, ow;
    for (b = 0; b < p->n; ++b) {
        const int8_t *xb = x + b * p->c_in * plane_in;
        int8_t *yb = y + b * p->c_out * plane;
        for (oh = 0; oh < p->h_out; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            int32_t kh_lo, kh_hi;
            o2m_valid_taps(ih0, 1, 3, p->h_in, &kh_lo, &kh_hi);
            for (ow = 0; ow < p->w_out;) {
                const int32_t iw0 = ow * sw - p->pad_left;
                const int32_t end1 = iw0 + sw + 3; /* one past pixel 1's window */
                int8_t *yp = yb + oh * p->w_out + ow;
                /* the loads read positions [col, col + 4) (+ 1 byte for stride-2 INNER),
                   each a tap of the pair's windows inside the input */
                if (ow + 1 >= p->w_out) {
                    o2m_conv3_one(p, xb, yp, plane, ih0, iw0);
                    ow += 1;
                    continue;
                }
                if (iw0 >= 0 && end1 <= p->w_in) {
                    /* the run of INNER pairs from here */
                    int32_t n = 1;
                    while (ow + 2 * n + 1 < p->w_out && end1 + 2 * n * sw <= p->w_in) {
                        ++n;
                    }
                    o2m_conv3_run(p, xb + iw0, ih0, kh_lo, kh_hi, n, yp, plane);
                    ow += 2 * n;
                    continue;
                } else if (iw0 == -1 && end1 <= p->w_in && 4 <= p->w_in) {
                    o2m_conv3_pair(p, xb, ih0, kh_lo, kh_hi, O2M_C3_LEFT, yp, plane);
                } else if (iw0 >= 2 - sw && end1 == p->w_in + 1) {
                    o2m_conv3_pair(p, xb + iw0 + sw - 2, ih0, kh_lo, kh_hi, O2M_C3_RIGHT, yp, plane);
                } else {
                    o2m_conv3_one(p, xb, yp, plane, ih0, iw0);
                    ow += 1;
                    continue;
                }
                ow += 2;
            }
        }
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
    if (p->packed != NULL) {
        o2m_conv3_packed(p, x, y); /* faster than the im2col form: scratch unused */
    } else if (p->pw_weights != NULL && o2m_is_pointwise(p) && p->h_in * p->w_in >= 2) {
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

/* The per-plane form without a ring (planes too wide for the stack buffer). */
static void o2m_dw_wide(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y)
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

/* The padded-row form.  Every input row a window reads is copied once (per output channel)
 * into a ring of k_h rows of `pw` bytes: [pad_value x pad_left][the row][pad_value ...];
 * kernel rows above or below the input read a row of pad_value.  Every tap then reads a
 * byte of its own: an input value or the zero point (whose product is cancelled by the
 * folded bias, as the portable kernel's skipped tap), so every output takes the same
 * straight loop with no border test; the word loads' bytes past the last tap are pad bytes
 * times zero weights.  The ring lives on the stack (O2M_DSP_DW_ROWS bytes); planes too wide
 * for it take o2m_dw_wide.  Sums per output row go to an int32 run, then requantized by a
 * loop holding the channel's constants in registers. */
#define O2M_DSP_DW_ROWS 1024
#define O2M_DSP_DW_SPAN 128

typedef struct {
    int32_t mult, left, right, mask, off, lo, hi, bias;
} o2m_dw_rq;

typedef struct {
    const o2m_conv2d_s8_dsp_params *p;
    int8_t *ring; /* k_h rows of pw bytes, then the pad row; or the whole padded plane */
    int32_t pw;
    int32_t whole; /* rows of the whole padded plane, or 0: the ring */
} o2m_dw_ctx;

/* `rows` rows of n bytes, source rows contiguous, destination rows `pitch` apart: words, the
 * last one ending at the row's end (it may overlap the one before). */
static O2M_DSP_NOINLINE void o2m_dw_copy(int8_t *d, int32_t pitch, const int8_t *s, int32_t n, int32_t rows)
{
    int32_t i;
    if (n >= 4) {
        for (; rows > 0; --rows, d += pitch, s += n) {
            for (i = 0; i < n - 4; i += 4) {
                o2m_st32(d + i, o2m_ld32(s + i));
            }
            o2m_st32(d + n - 4, o2m_ld32(s + n - 4));
        }
        return;
    }
    for (; rows > 0; --rows, d += pitch, s += n) {
        for (i = 0; i < n; ++i) {
            d[i] = s[i];
        }
    }
}

/* o2m_dsp_out over a run of sums (the same arithmetic, the constants in locals). */
static O2M_DSP_NOINLINE void o2m_dw_requant(const int32_t *acc, int32_t n, int8_t *y, const o2m_dw_rq *q)
{
    const int32_t bias = q->bias, mult = q->mult, left = q->left, right = q->right, mask = q->mask, half = q->mask >> 1;
    const int32_t off = q->off, lo = q->lo, hi = q->hi;
    int32_t i;
    for (i = 0; i < n; ++i) {
        int32_t v = (int32_t)(((uint32_t)acc[i] + (uint32_t)bias) << left);
        int32_t rem, threshold;
        v = (int32_t)(((int64_t)v * mult + ((int64_t)1 << 30)) >> 31);
        rem = v & mask;
        threshold = half + (int32_t)((uint32_t)v >> 31);
        v = (v >> right) + (rem > threshold ? 1 : 0);
        v += off;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        y[i] = (int8_t)v;
    }
}

/* Depthwise-only instructions: SMUAD, SMLABT, SMLATT, and the high word of
 * acc * mult + k - [acc < 0] * 2^31 (SMLAL, then the correction as one ADDS / ADC pair). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t o2m_dw_smuad(int32_t a, int32_t b)
{
    return __smuad(a, b);
}

static inline int32_t o2m_dw_smlabt(int32_t a, int32_t b, int32_t acc)
{
    return __smlabt(a, b, acc);
}

static inline int32_t o2m_dw_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return __smlatt(a, b, acc);
}

static inline int32_t o2m_dw_ssat8(int32_t v)
{
    return __ssat(v, 8);
}

static inline int32_t o2m_dw_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

static inline int32_t o2m_dw_rq_hi(int32_t a, int32_t mult, uint32_t klo, int32_t khi)
{
    uint32_t lo = klo;
    int32_t hi = khi;
    const int32_t t = a >> 31;
    __asm__("smlal %0, %1, %2, %3\n\t"
            "adds %0, %0, %4, lsl #31\n\t"
            "adc %1, %1, %4"
            : "+&r"(lo), "+&r"(hi)
            : "r"(a), "r"(mult), "r"(t)
            : "cc");
    return hi;
}
#else
static inline int32_t o2m_dw_smuad(int32_t a, int32_t b)
{
    return o2m_smlad(a, b, 0);
}

static inline int32_t o2m_dw_smlabt(int32_t a, int32_t b, int32_t acc)
{
    return o2m_smlabb(a, (int32_t)((uint32_t)b >> 16), acc);
}

static inline int32_t o2m_dw_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return o2m_smlatb(a, (int32_t)((uint32_t)b >> 16), acc);
}

static inline int32_t o2m_dw_ssat8(int32_t v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}

static inline int32_t o2m_dw_smmlar(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)(((int64_t)acc * 4294967296LL + (int64_t)a * b + 2147483648LL) >> 32);
}

static inline int32_t o2m_dw_rq_hi(int32_t a, int32_t mult, uint32_t klo, int32_t khi)
{
    const int64_t k = (int64_t)(((uint64_t)(uint32_t)khi << 32) | klo);
    const int64_t u = (int64_t)a * mult + k - (a < 0 ? ((int64_t)1 << 31) : 0);
    return (int32_t)(u >> 32);
}
#endif

/* The same for right shifts r >= 1 and multipliers > 0 (every channel of a TFLite model but
 * left shifts): TFLite's two roundings in one, hi32(acc * mult + 2^30 + 2^(r+30) - s * 2^31)
 * >> (r - 1) with s = [acc < 0].  Why: with u = acc * mult + 2^30, srdhm is v = floor(u / 2^31)
 * and the rounding divide is floor((v + 2^(r-1) - [v < 0]) / 2^r); floors nest, so this is
 * floor((u + (2^(r-1) - [v < 0]) * 2^31) / 2^(31+r)), the shift by 31 + r >= 32 a high word
 * shifted by r - 1.  [v < 0] and [acc < 0] differ only where v == 0 (-2^30 <= acc * mult < 0),
 * where both give 0 since 2^(r-1) - 1 < 2^r.  No int64 overflow: |acc * mult| < 2^62. */
static O2M_DSP_NOINLINE void o2m_dw_requant_r(const int32_t *acc, int32_t n, int8_t *y, const o2m_dw_rq *q)
{
    const int32_t bias = q->bias, mult = q->mult, sh = q->right - 1, off = q->off, lo = q->lo, hi = q->hi;
    const uint64_t k = ((uint64_t)1 << 30) + ((uint64_t)1 << (q->right + 30));
    const uint32_t klo = (uint32_t)k;
    const int32_t khi = (int32_t)(k >> 32);
    int32_t i;
    if (q->right >= 2 && q->right <= 22) {
        /* k = 2^30 + 2^(r-2) * 2^32, and the zero point added to the high word before the
           shift: (h >> sh) + off == (h + off * 2^sh) >> sh; |h| <= 2^30 + 2^20 + 1 and
           |off * 2^sh| <= 2^28 keep the sum inside int32 */
        const int32_t khi_off = (int32_t)((uint32_t)khi + ((uint32_t)off << sh));
        if (lo == -128 && hi == 127) {
            for (i = 0; i < n; ++i) {
                const int32_t a = (int32_t)((uint32_t)acc[i] + (uint32_t)bias);
                y[i] = (int8_t)o2m_dw_ssat8(o2m_dw_rq_hi(a, mult, 1u << 30, khi_off) >> sh);
            }
            return;
        }
        for (i = 0; i < n; ++i) {
            const int32_t a = (int32_t)((uint32_t)acc[i] + (uint32_t)bias);
            int32_t v = o2m_dw_rq_hi(a, mult, 1u << 30, khi_off) >> sh;
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            y[i] = (int8_t)v;
        }
        return;
    }
    for (i = 0; i < n; ++i) {
        const int32_t a = (int32_t)((uint32_t)acc[i] + (uint32_t)bias);
        int32_t v = (o2m_dw_rq_hi(a, mult, klo, khi) >> sh) + off;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        y[i] = (int8_t)v;
    }
}

/* The doubled form (o2m_dw_plane's `dbl`: 2 <= r <= 22, mult > 0, and every accumulator of
 * the channel inside +-2^30, so twice it is an int32): the sums come from doubled weights
 * (2w fits an int16 half), and with a2 = 2 * acc the two roundings and the zero point are one
 * SMMLAR and a shift: 2W = 2 acc mult + 2^31 + (2^(r-1) - s) 2^32 (W of o2m_dw_requant_r), so
 * out - off = floor(2W / 2^(32+r)) = smmlar(a2, mult, 2^(r-1) - s) >> r, and off * 2^r joins
 * the addend (|addend| <= 2^21 + 2^29: the high word stays an int32). */
static O2M_DSP_NOINLINE void o2m_dw_requant_d(const int32_t *acc, int32_t n, int8_t *y, const o2m_dw_rq *q)
{
    const int32_t bias2 = (int32_t)((uint32_t)q->bias * 2u), mult = q->mult, sh = q->right;
    const int32_t c = (int32_t)((1u << (sh - 1)) + ((uint32_t)q->off << sh)), lo = q->lo, hi = q->hi;
    int32_t i;
    if (lo == -128 && hi == 127) {
        for (i = 0; i < n; ++i) {
            const int32_t a = acc[i] + bias2;
            y[i] = (int8_t)o2m_dw_ssat8(o2m_dw_smmlar(a, mult, c + (a >> 31)) >> sh);
        }
        return;
    }
    for (i = 0; i < n; ++i) {
        const int32_t a = acc[i] + bias2;
        int32_t v = o2m_dw_smmlar(a, mult, c + (a >> 31)) >> sh;
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        y[i] = (int8_t)v;
    }
}

/* One 3x3 output from the three rows' words at r0, r1, r2 (the odd last output of a row run):
 * e0, e1, e2 hold taps 0 and 2 of rows 0, 1, 2 as halfword pairs, m01 tap 1 of row 0 (low)
 * and of row 1 (high), m2 tap 1 of row 2, as the two-output loops hold them. */
static inline int32_t o2m_dw3_single(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t e0, int32_t m01,
                                     int32_t e1, int32_t e2, int32_t m2)
{
    int32_t a;
    uint32_t v = o2m_ld32(r0);
    a = o2m_dw_smuad(o2m_sxtb16(v), e0);
    a = o2m_smlabb(o2m_sxtb16_r8(v), m01, a);
    v = o2m_ld32(r1);
    a = o2m_smlad(o2m_sxtb16(v), e1, a);
    a = o2m_dw_smlabt(o2m_sxtb16_r8(v), m01, a);
    v = o2m_ld32(r2);
    a = o2m_smlad(o2m_sxtb16(v), e2, a);
    return o2m_smlabb(o2m_sxtb16_r8(v), m2, a);
}

/* 3x3 stride 1: two outputs per step, x0..x3 feed out0 (x0 x1 x2) and out1 (x1 x2 x3);
 * wt = [w00 w02] [w10 w12] [w20 w22] [w01 w11] [w21 0]; sums without the bias. */
static O2M_DSP_NOINLINE void o2m_dw3_s1(const int8_t *row, int32_t d1, int32_t d2, int32_t step, int32_t rows,
                                        int32_t n, const int32_t *wt, int32_t *acc)
{
    const int32_t e0 = wt[0], e1 = wt[1], e2 = wt[2], m01 = wt[3], m2 = wt[4];
    for (; rows > 0; --rows, row += step) {
    const int8_t *r0 = row, *r1 = row + d1, *r2 = row + d2;
    int32_t *const end = acc + (n & ~1);
    for (; acc != end; r0 += 2, r1 += 2, r2 += 2, acc += 2) {
        int32_t a0, a1, ev, od;
        uint32_t v;
        v = o2m_ld32(r0);
        ev = o2m_sxtb16(v);
        od = o2m_sxtb16_r8(v);
        a0 = o2m_dw_smuad(ev, e0);
        a0 = o2m_smlabb(od, m01, a0);
        a1 = o2m_dw_smuad(od, e0);
        a1 = o2m_smlatb(ev, m01, a1);
        v = o2m_ld32(r1);
        ev = o2m_sxtb16(v);
        od = o2m_sxtb16_r8(v);
        a0 = o2m_smlad(ev, e1, a0);
        a0 = o2m_dw_smlabt(od, m01, a0);
        a1 = o2m_smlad(od, e1, a1);
        a1 = o2m_dw_smlatt(ev, m01, a1);
        v = o2m_ld32(r2);
        ev = o2m_sxtb16(v);
        od = o2m_sxtb16_r8(v);
        a0 = o2m_smlad(ev, e2, a0);
        a0 = o2m_smlabb(od, m2, a0);
        a1 = o2m_smlad(od, e2, a1);
        a1 = o2m_smlatb(ev, m2, a1);
        acc[0] = a0;
        acc[1] = a1;
    }
    if (n & 1) {
        *acc++ = o2m_dw3_single(r0, r1, r2, e0, m01, e1, e2, m2);
    }
    }
}

/* 3x3 stride 2 (wt as above): two outputs per step from the words x0..x3, x4..x7 of each
 * kernel row: out0 = x0 x1 x2, out1 = x2 x3 x4 (top halves against the weights' halves). */
static O2M_DSP_NOINLINE void o2m_dw3_s2(const int8_t *row, int32_t d1, int32_t d2, int32_t step, int32_t rows,
                                        int32_t n, const int32_t *wt, int32_t *acc)
{
    const int32_t e0 = wt[0], e1 = wt[1], e2 = wt[2], m01 = wt[3], m2 = wt[4];
    for (; rows > 0; --rows, row += step) {
        const int8_t *r0 = row, *r1 = row + d1, *r2 = row + d2;
        int32_t *const end = acc + (n & ~1);
        for (; acc != end; r0 += 4, r1 += 4, r2 += 4, acc += 2) {
            int32_t a0, a1, ev, od, ev1;
            uint32_t v;
            v = o2m_ld32(r0);
            ev = o2m_sxtb16(v);
            od = o2m_sxtb16_r8(v);
            ev1 = o2m_sxtb16(o2m_ld32(r0 + 4));
            a0 = o2m_dw_smuad(ev, e0);
            a0 = o2m_smlabb(od, m01, a0);
            a1 = o2m_smlatb(ev, e0, 0);
            a1 = o2m_smlatb(od, m01, a1);
            a1 = o2m_dw_smlabt(ev1, e0, a1);
            v = o2m_ld32(r1);
            ev = o2m_sxtb16(v);
            od = o2m_sxtb16_r8(v);
            ev1 = o2m_sxtb16(o2m_ld32(r1 + 4));
            a0 = o2m_smlad(ev, e1, a0);
            a0 = o2m_dw_smlabt(od, m01, a0);
            a1 = o2m_smlatb(ev, e1, a1);
            a1 = o2m_dw_smlatt(od, m01, a1);
            a1 = o2m_dw_smlabt(ev1, e1, a1);
            v = o2m_ld32(r2);
            ev = o2m_sxtb16(v);
            od = o2m_sxtb16_r8(v);
            ev1 = o2m_sxtb16(o2m_ld32(r2 + 4));
            a0 = o2m_smlad(ev, e2, a0);
            a0 = o2m_smlabb(od, m2, a0);
            a1 = o2m_smlatb(ev, e2, a1);
            a1 = o2m_smlatb(od, m2, a1);
            a1 = o2m_dw_smlabt(ev1, e2, a1);
            acc[0] = a0;
            acc[1] = a1;
        }
        if (n & 1) {
            *acc++ = o2m_dw3_single(r0, r1, r2, e0, m01, e1, e2, m2);
        }
    }
}

/* Any k_w <= 8, any stride: one kernel row at a time over the run (its weights in
 * registers), one or two words per output; sw == 0 asks for the stride-1 pair form
 * (k_w 5..7: the second word's fourth weight is 0). */
static O2M_DSP_NOINLINE void o2m_dw_row(const int8_t *r, int32_t sw, int32_t chunks, const int32_t *we,
                                        const int32_t *wo, int32_t n, int32_t *acc)
{
    const int32_t e0 = we[0], m0 = wo[0];
    if (chunks == 1) {
        for (; n > 0; --n, r += sw, ++acc) {
            const uint32_t v = o2m_ld32(r);
            int32_t a = *acc;
            a = o2m_smlad(o2m_sxtb16(v), e0, a);
            a = o2m_smlad(o2m_sxtb16_r8(v), m0, a);
            *acc = a;
        }
    } else if (sw == 0) {
        /* stride 1, k_w 5..7 (the caller's sw == 0): two outputs per step from the words
           x0..x3, x4..x7; out1's odd-offset taps pair a top half with a bottom half */
        const int32_t e1 = we[1], m1 = wo[1];
        for (; n >= 2; n -= 2, r += 2, acc += 2) {
            const uint32_t v = o2m_ld32(r), u = o2m_ld32(r + 4);
            const int32_t ev0 = o2m_sxtb16(v), od0 = o2m_sxtb16_r8(v);
            const int32_t ev1 = o2m_sxtb16(u), od1 = o2m_sxtb16_r8(u);
            int32_t a0 = acc[0], a1 = acc[1];
            a0 = o2m_smlad(ev0, e0, a0);
            a0 = o2m_smlad(od0, m0, a0);
            a0 = o2m_smlad(ev1, e1, a0);
            a0 = o2m_smlad(od1, m1, a0);
            a1 = o2m_smlad(od0, e0, a1);
            a1 = o2m_smlatb(ev0, m0, a1);
            a1 = o2m_dw_smlabt(ev1, m0, a1);
            a1 = o2m_smlad(od1, e1, a1);
            a1 = o2m_smlatb(ev1, m1, a1);
            acc[0] = a0;
            acc[1] = a1;
        }
        if (n > 0) {
            const uint32_t v = o2m_ld32(r), u = o2m_ld32(r + 4);
            int32_t a = *acc;
            a = o2m_smlad(o2m_sxtb16(v), e0, a);
            a = o2m_smlad(o2m_sxtb16_r8(v), m0, a);
            a = o2m_smlad(o2m_sxtb16(u), e1, a);
            a = o2m_smlad(o2m_sxtb16_r8(u), m1, a);
            *acc = a;
        }
    } else {
        const int32_t e1 = we[1], m1 = wo[1];
        for (; n > 0; --n, r += sw, ++acc) {
            const uint32_t v = o2m_ld32(r), u = o2m_ld32(r + 4);
            int32_t a = *acc;
            a = o2m_smlad(o2m_sxtb16(v), e0, a);
            a = o2m_smlad(o2m_sxtb16_r8(v), m0, a);
            a = o2m_smlad(o2m_sxtb16(u), e1, a);
            a = o2m_smlad(o2m_sxtb16_r8(u), m1, a);
            *acc = a;
        }
    }
}

/* Bytes of one ring row: the padded input row, and every byte a word load reads. */
static int32_t o2m_dw_ring_width(const o2m_conv2d_s8_dsp_params *p)
{
    const int32_t chunks = p->k_w <= 4 ? 1 : 2;
    const int32_t have = p->pad_left + p->w_in;
    /* 3x3 stride 2 pairs read 8 bytes from 2 ow */
    int32_t need = (p->w_out - 1) * p->stride_w + 4 * chunks + (p->stride_w == 2 && chunks == 1 ? 4 : 0);
    need = need > have ? need : have;
    return (need + 3) & ~3;
}

/* One output plane (channel oc, input plane xc) into yc. */
static void o2m_dw_plane(const o2m_dw_ctx *c, const int8_t *xc, int32_t oc, const int8_t *wc, int8_t *yc)
{
    const o2m_conv2d_s8_dsp_params *p = c->p;
    const o2m_dsp_requant *r = &p->requant;
    const int32_t kh_n = p->k_h, kw_n = p->k_w, sw = p->stride_w, pw = c->pw, w_out = p->w_out;
    const int32_t chunks = kw_n <= 4 ? 1 : 2;
    const int32_t row_sw = sw == 1 && kw_n >= 5 && kw_n <= 7 ? 0 : sw;
    const int32_t form = kh_n == 3 && kw_n == 3 ? (sw == 1 ? 1 : sw == 2 ? 2 : 0) : 0;
    const int8_t *pad_row = c->ring + kh_n * pw;
    const int8_t *rows[O2M_DSP_DW_MAX_K];
    int32_t we[O2M_DSP_DW_MAX_K][2], wo[O2M_DSP_DW_MAX_K][2], w3[5], pv[O2M_DSP_DW_MAX_K];
    int32_t acc[O2M_DSP_DW_SPAN];
    int32_t next = 0, oh, ow0, i, j, fast_rq, dbl;
    o2m_dw_rq q;
    {
        o2m_dsp_rq rq;
        o2m_dsp_rq_load(r, oc, &rq);
        q.mult = rq.mult;
        q.left = rq.left;
        q.right = rq.right;
        q.mask = rq.mask;
        q.off = r->output_offset;
        q.lo = r->act_min;
        q.hi = r->act_max;
        q.bias = p->bias[oc];
    }
    fast_rq = q.right >= 1 && q.mult > 0;
    {
        /* |acc| <= |folded| + k_h k_w 128 * 128 (the int32 sum equals the portable one) */
        const int64_t bound = (int64_t)(q.bias < 0 ? -(int64_t)q.bias : q.bias) + (int64_t)kh_n * kw_n * 16384;
        dbl = fast_rq && q.right >= 2 && q.right <= 22 && bound < ((int64_t)1 << 30);
        fast_rq = dbl ? 2 : fast_rq;
    }
    if (form != 0) {
        const int32_t d = dbl ? 2 : 1;
        for (i = 0; i < 3; ++i) {
            w3[i] = o2m_pack16(d * wc[3 * i], d * wc[3 * i + 2]);
        }
        w3[3] = o2m_pack16(d * wc[1], d * wc[4]);
        w3[4] = o2m_pack16(d * wc[7], 0);
    } else {
        for (i = 0; i < kh_n; ++i) {
            pv[i] = 0;
            for (j = 0; j < chunks; ++j) {
                int32_t t[4], m;
                for (m = 0; m < 4; ++m) {
                    const int32_t kw = 4 * j + m;
                    t[m] = kw < kw_n ? (dbl ? 2 : 1) * wc[i * kw_n + kw] : 0;
                    pv[i] += t[m];
                }
                we[i][j] = o2m_pack16(t[0], t[2]);
                wo[i][j] = o2m_pack16(t[1], t[3]);
            }
            pv[i] *= p->pad_value; /* a kernel row over a padded row adds pad_value * its sum */
        }
    }
    if (c->whole) {
        /* the whole padded plane: row ih at ring + (pad_top + ih) * pw; runs of whole rows */
        const int32_t per = O2M_DSP_DW_SPAN / w_out, step = p->stride_h * pw;
        const int32_t last = c->whole - p->pad_top < p->h_in ? c->whole - p->pad_top : p->h_in;
        o2m_dw_copy(c->ring + p->pad_top * pw + p->pad_left, pw, xc, p->w_in, last);
        for (oh = 0; oh < p->h_out; oh += per) {
            const int32_t nr = p->h_out - oh < per ? p->h_out - oh : per;
            const int8_t *base = c->ring + oh * step;
            if (form == 1) {
                o2m_dw3_s1(base, pw, 2 * pw, step, nr, w_out, w3, acc);
            } else if (form == 2) {
                o2m_dw3_s2(base, pw, 2 * pw, step, nr, w_out, w3, acc);
            } else {
                /* kernel rows over padding are skipped: their pad_value * row sum is added */
                for (j = 0; j < nr; ++j) {
                    const int32_t ih0 = (oh + j) * p->stride_h - p->pad_top;
                    const int32_t i_lo = ih0 < 0 ? -ih0 : 0;
                    const int32_t i_hi = p->h_in - ih0 < kh_n ? p->h_in - ih0 : kh_n;
                    int32_t *aj = acc + j * w_out, k0 = 0, ow;
                    for (i = 0; i < kh_n; ++i) {
                        k0 += i < i_lo || i >= i_hi ? pv[i] : 0;
                    }
                    for (ow = 0; ow < w_out; ++ow) {
                        aj[ow] = k0;
                    }
                    for (i = i_lo; i < i_hi; ++i) {
                        o2m_dw_row(base + j * step + i * pw, row_sw, chunks, we[i], wo[i], w_out, aj);
                    }
                }
            }
            if (fast_rq == 2) {
                o2m_dw_requant_d(acc, nr * w_out, yc + oh * w_out, &q);
            } else if (fast_rq) {
                o2m_dw_requant_r(acc, nr * w_out, yc + oh * w_out, &q);
            } else {
                o2m_dw_requant(acc, nr * w_out, yc + oh * w_out, &q);
            }
        }
        return;
    }
    for (oh = 0; oh < p->h_out; ++oh) {
        const int32_t ih0 = oh * p->stride_h - p->pad_top;
        const int32_t end = ih0 + kh_n < p->h_in ? ih0 + kh_n : p->h_in;
        int8_t *yr = yc + oh * w_out;
        if (next < ih0) {
            next = ih0; /* rows no window reads (stride > k_h) */
        }
        for (; next < end; ++next) {
            o2m_dw_copy(c->ring + (next % kh_n) * pw + p->pad_left, pw, xc + next * p->w_in, p->w_in, 1);
        }
        for (i = 0; i < kh_n; ++i) {
            const int32_t ih = ih0 + i;
            rows[i] = ih < 0 || ih >= p->h_in ? pad_row : c->ring + (ih % kh_n) * pw;
        }
        for (ow0 = 0; ow0 < w_out; ow0 += O2M_DSP_DW_SPAN) {
            const int32_t n = w_out - ow0 < O2M_DSP_DW_SPAN ? w_out - ow0 : O2M_DSP_DW_SPAN;
            const int32_t at = ow0 * sw;
            if (form == 1) {
                o2m_dw3_s1(rows[0] + at, (int32_t)(rows[1] - rows[0]), (int32_t)(rows[2] - rows[0]), 0, 1, n, w3,
                           acc);
            } else if (form == 2) {
                o2m_dw3_s2(rows[0] + at, (int32_t)(rows[1] - rows[0]), (int32_t)(rows[2] - rows[0]), 0, 1, n, w3,
                           acc);
            } else {
                int32_t k0 = 0;
                for (i = 0; i < kh_n; ++i) {
                    k0 += rows[i] == pad_row ? pv[i] : 0;
                }
                for (j = 0; j < n; ++j) {
                    acc[j] = k0;
                }
                for (i = 0; i < kh_n; ++i) {
                    if (rows[i] != pad_row) {
                        o2m_dw_row(rows[i] + at, row_sw, chunks, we[i], wo[i], n, acc);
                    }
                }
            }
            if (fast_rq == 2) {
                o2m_dw_requant_d(acc, n, yr + ow0, &q);
            } else if (fast_rq) {
                o2m_dw_requant_r(acc, n, yr + ow0, &q);
            } else {
                o2m_dw_requant(acc, n, yr + ow0, &q);
            }
        }
    }
}

/* The ring for p in buf (O2M_DSP_DW_ROWS bytes): 0 if it does not fit. */
static int32_t o2m_dw_ring(const o2m_conv2d_s8_dsp_params *p, int8_t *buf, o2m_dw_ctx *c)
{
    c->p = p;
    c->ring = buf;
    c->pw = o2m_dw_ring_width(p);
    c->whole = (p->h_out - 1) * p->stride_h + p->k_h;
    if ((int64_t)c->whole * c->pw > O2M_DSP_DW_ROWS || p->w_out > O2M_DSP_DW_SPAN) {
        c->whole = 0;
        if ((int64_t)(p->k_h + 1) * c->pw > O2M_DSP_DW_ROWS) {
            return 0;
        }
    }
    memset(buf, (int)(int8_t)p->pad_value, (size_t)((c->whole ? c->whole : p->k_h + 1) * c->pw));
    return 1;
}

void o2m_depthwise_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                 int8_t *y, int8_t *scratch)
{
    uint32_t words[O2M_DSP_DW_ROWS / 4];
    const int32_t mult = p->c_out / p->c_in;
    const int32_t plane_in = p->h_in * p->w_in, plane = p->h_out * p->w_out;
    o2m_dw_ctx c;
    int32_t b, oc;
    (void)scratch;
    if (!o2m_dw_ring(p, (int8_t *)words, &c)) {
        o2m_dw_wide(p, x, w, y);
        return;
    }
    for (b = 0; b < p->n; ++b) {
        for (oc = 0; oc < p->c_out; ++oc) {
            o2m_dw_plane(&c, x + (b * p->c_in + oc / mult) * plane_in, oc, w + oc * p->k_h * p->k_w,
                         y + (b * p->c_out + oc) * plane);
        }
    }
}

/* Whether output row oh may be written as soon as it is computed, over the plane's own
 * input: its bytes end at or before the first input row not yet copied to the ring. */
static int32_t o2m_dw_rows_behind(const o2m_conv2d_s8_dsp_params *p)
{
    int32_t oh;
    for (oh = 0; oh < p->h_out; ++oh) {
        int32_t end = oh * p->stride_h - p->pad_top + p->k_h;
        end = end < p->h_in ? end : p->h_in;
        if ((int64_t)(oh + 1) * p->w_out > (int64_t)end * p->w_in) {
            return 0;
        }
    }
    return 1;
}

void o2m_depthwise_conv2d_s8_dsp_inplace(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                         int8_t *y, int8_t *scratch)
{
    uint32_t words[O2M_DSP_DW_ROWS / 4];
    const int32_t plane_in = p->h_in * p->w_in;
    const int32_t plane = p->h_out * p->w_out;
    o2m_dw_ctx c;
    int32_t k;
    if (o2m_dw_ring(p, (int8_t *)words, &c)) {
        const int32_t behind = c.whole || o2m_dw_rows_behind(p); /* whole: copied before written */
        for (k = 0; k < p->n * p->c_in; ++k) {
            const int32_t ch = k % p->c_in;
            if (behind) {
                /* bytes before the plane's uncopied rows: earlier planes, or rows copied */
                o2m_dw_plane(&c, x + k * plane_in, ch, w + ch * p->k_h * p->k_w, y + k * plane);
            } else {
                o2m_dw_plane(&c, x + k * plane_in, ch, w + ch * p->k_h * p->k_w, scratch);
                /* bytes [k*plane, (k+1)*plane) lie inside input planes <= k: all read by now */
                memcpy(y + k * plane, scratch, (size_t)plane);
            }
        }
        return;
    }
    {
        o2m_conv2d_s8_dsp_params one = *p;
        one.n = 1;
        one.c_in = 1;
        one.c_out = 1;
        for (k = 0; k < p->n * p->c_in; ++k) {
            const int32_t ch = k % p->c_in;
            one.bias = p->bias + ch;
            one.raw_bias = p->raw_bias != NULL ? p->raw_bias + ch : NULL;
            if (p->requant.per_channel) {
                one.requant.multipliers = p->requant.multipliers + ch;
                one.requant.shifts = p->requant.shifts + ch;
            }
            o2m_dw_wide(&one, x + k * plane_in, w + ch * p->k_h * p->k_w, scratch);
            memcpy(y + k * plane, scratch, (size_t)plane);
        }
    }
}

/* ----------------------------------------------------------------- fully connected */
/* acc[r] += w_r . x over k values for three weight rows (w, w + k, w + 2k): one word of x,
 * unpacked once (SXTB16, SXTB16 ROR 8), serves the three rows' words; x, the three row
 * pointers and accumulators stay in registers (four rows, or two words per step, spill on
 * v7E-M): per four values 4 loads, 8 SXTB16 and 6 SMLAD for 12 multiply-adds. */
#if !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__))
O2M_DSP_NOINLINE static void o2m_fc_rows3(const int8_t *x, const int8_t *w, int32_t k, int32_t *acc)
{
    const int8_t *w0 = w, *w1 = w + k, *w2 = w1 + k;
    const int8_t *end = x + (k & ~3);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2];
    int32_t i;
    while (x < end) {
        const uint32_t xv = o2m_ld32(x);
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
        x += 4;
        w0 += 4;
        w1 += 4;
        w2 += 4;
    }
    for (i = k & 3; i > 0; --i) {
        const int32_t xv = *x++;
        a0 += *w0++ * xv;
        a1 += *w1++ * xv;
        a2 += *w2++ * xv;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
}
#endif

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define O2M_FC_ROWS 4
/* One word of x against the words of four weight rows (w0, w0 + k, w2, w2 + k), all four
 * pointers stepping by 4: 5 loads, 10 SXTB16 and 8 SMLAD for 16 multiply-adds. */
#define O2M_FC_WORD4 \
    "ldr    %[t], [%[x]], #4\n\t" \
    "sxtb16 %[xe], %[t]\n\t" \
    "sxtb16 %[xo], %[t], ror #8\n\t" \
    "ldr    %[t], [%[w0], %[k]]\n\t" \
    "sxtb16 %[v], %[t]\n\t" \
    "smlad  %[a1], %[v], %[xe], %[a1]\n\t" \
    "sxtb16 %[t], %[t], ror #8\n\t" \
    "smlad  %[a1], %[t], %[xo], %[a1]\n\t" \
    "ldr    %[t], [%[w0]], #4\n\t" \
    "sxtb16 %[v], %[t]\n\t" \
    "smlad  %[a0], %[v], %[xe], %[a0]\n\t" \
    "sxtb16 %[t], %[t], ror #8\n\t" \
    "smlad  %[a0], %[t], %[xo], %[a0]\n\t" \
    "ldr    %[t], [%[w2], %[k]]\n\t" \
    "sxtb16 %[v], %[t]\n\t" \
    "smlad  %[a3], %[v], %[xe], %[a3]\n\t" \
    "sxtb16 %[t], %[t], ror #8\n\t" \
    "smlad  %[a3], %[t], %[xo], %[a3]\n\t" \
    "ldr    %[t], [%[w2]], #4\n\t" \
    "sxtb16 %[v], %[t]\n\t" \
    "smlad  %[a2], %[v], %[xe], %[a2]\n\t" \
    "sxtb16 %[t], %[t], ror #8\n\t" \
    "smlad  %[a2], %[t], %[xo], %[a2]\n\t"

#define O2M_FC_OPERANDS                                                                                  \
    : [x] "+r"(x), [w0] "+r"(w0), [w2] "+r"(w2), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),        \
      [a3] "+r"(a3), [xe] "=&r"(xe), [xo] "=&r"(xo), [v] "=&r"(v), [t] "=&r"(t)                        \
    : [end] "r"(end), [k] "r"(k)                                                                         \
    : "cc", "memory"

/* acc[r] += w_r . x over the k & ~3 first values for four weight rows w, w + k, w + 2k,
 * w + 3k, in assembly: in C the four rows spill (the compiler keeps four row pointers; here
 * rows 1 and 3 are addressed as [w0 + k] and [w2 + k], so x, its end, w0, w2, k, the four
 * accumulators, x's two unpacked halves and two temporaries fit the register file; each row's
 * word is loaded once and unpacked through one temporary).  Four words per loop step: 94
 * instructions for 64 multiply-adds. */
O2M_DSP_NOINLINE static void o2m_fc_rows4_words(const int8_t *x, const int8_t *w, int32_t k, int32_t *acc)
{
    const int8_t *end = x + (k & ~15);
    const int8_t *w0 = w, *w2 = w + 2 * k;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t xe, xo, v, t;
    if (x != end) { /* four words per step */
        __asm__ volatile("1:\n\t" O2M_FC_WORD4 O2M_FC_WORD4 O2M_FC_WORD4 O2M_FC_WORD4
                         "cmp    %[x], %[end]\n\t"
                         "bne    1b\n\t" O2M_FC_OPERANDS);
    }
    end = x + (k & 12);
    if (x != end) { /* the last one to three words */
        __asm__ volatile("1:\n\t" O2M_FC_WORD4 "cmp    %[x], %[end]\n\t"
                         "bne    1b\n\t" O2M_FC_OPERANDS);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#undef O2M_FC_WORD4
#undef O2M_FC_OPERANDS
#endif

/* acc[0] += w . x over k values: one weight row (the last out_features % 4 rows). */
O2M_DSP_NOINLINE static int32_t o2m_fc_row(const int8_t *x, const int8_t *w, int32_t k, int32_t a)
{
    const int8_t *end = x + (k & ~3);
    int32_t i;
    while (x < end) {
        const uint32_t xv = o2m_ld32(x);
        const uint32_t v = o2m_ld32(w);
        a = o2m_smlad(o2m_sxtb16(v), o2m_sxtb16(xv), a);
        a = o2m_smlad(o2m_sxtb16_r8(v), o2m_sxtb16_r8(xv), a);
        x += 4;
        w += 4;
    }
    for (i = k & 3; i > 0; --i) {
        a += *w++ * *x++;
    }
    return a;
}

void o2m_fully_connected_s8_dsp(const o2m_fully_connected_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                int8_t *y)
{
    const o2m_dsp_requant *r = &p->requant;
    const int32_t k = p->in_features;
    const int32_t rows = p->out_features;
    o2m_dsp_rq q;
    int32_t b, n, t;
    o2m_dsp_rq_load(r, 0, &q); /* per tensor: the only one; per channel: reloaded per row */
    for (b = 0; b < p->batch; ++b) {
        const int8_t *xb = x + b * k;
        int8_t *yb = y + b * rows;
#ifdef O2M_FC_ROWS
        for (n = 0; n + 4 <= rows; n += 4) {
            const int8_t *wn = w + n * k;
            int32_t acc[4], i;
            for (t = 0; t < 4; ++t) {
                acc[t] = p->bias[n + t];
            }
            o2m_fc_rows4_words(xb, wn, k, acc);
            for (i = k & ~3; i < k; ++i) { /* the k % 4 last values */
                for (t = 0; t < 4; ++t) {
                    acc[t] += wn[t * k + i] * xb[i];
                }
            }
#else
        for (n = 0; n + 3 <= rows; n += 3) {
            int32_t acc[3];
            for (t = 0; t < 3; ++t) {
                acc[t] = p->bias[n + t];
            }
            o2m_fc_rows3(xb, w + n * k, k, acc);
#endif
            for (t = 0; t < (int32_t)(sizeof acc / sizeof acc[0]); ++t) {
                if (r->per_channel) {
                    o2m_dsp_rq_load(r, n + t, &q);
                }
                yb[n + t] = o2m_dsp_out(acc[t], &q, r);
            }
        }
        for (; n < rows; ++n) { /* the last rows: one at a time */
            if (r->per_channel) {
                o2m_dsp_rq_load(r, n, &q);
            }
            yb[n] = o2m_dsp_out(o2m_fc_row(xb, w + n * k, k, p->bias[n]), &q, r);
        }
    }
}

/* ----------------------------------------------------------------- batched MatMul of activations */
/* One dot product of row a (its (a + a_offset) int16 pairs in `ap`, kp of them, and the odd
 * last value) with column j of b [k, n]: the rows' tails and the columns' tails. */
static int32_t o2m_bmm_dot(const int32_t *ap, int32_t kp, int32_t last, const int8_t *b, int32_t n,
                           int32_t j, int32_t k)
{
    int32_t q, acc = 0;
    for (q = 0; q < kp; ++q) {
        acc = o2m_smlad(ap[q], o2m_pack16(b[(2 * q) * n + j], b[(2 * q + 1) * n + j]), acc);
    }
    if (k & 1) {
        acc += last * b[(k - 1) * n + j];
    }
    return acc;
}

/* The halves of two SXTB16 results paired: (lo of x, lo of y) and (hi of x, hi of y): PKHBT
 * and PKHTB on v7E-M. */
static inline int32_t o2m_pair_lo(int32_t x, int32_t y)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(x), "r"(y));
    return r;
#else
    return (int32_t)(((uint32_t)x & 0xFFFFu) | ((uint32_t)y << 16));
#endif
}

static inline int32_t o2m_pair_hi(int32_t x, int32_t y)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(y), "r"(x));
    return r;
#else
    return (int32_t)(((uint32_t)x >> 16) | ((uint32_t)y & 0xFFFF0000u));
#endif
}

/* Columns j..j+3 of b's rows 2q and 2q+1 as four (b[2q][c], b[2q+1][c]) SMLAD operands. */
#define O2M_BMM_COLS4(bq, n)                                                      \
    const uint32_t w0 = o2m_ld32(bq), w1 = o2m_ld32((bq) + (n));                  \
    const int32_t e0 = o2m_sxtb16(w0), e1 = o2m_sxtb16(w1);                        \
    const int32_t o0 = o2m_sxtb16_r8(w0), o1 = o2m_sxtb16_r8(w1);                  \
    const int32_t p0 = o2m_pair_lo(e0, e1), p2 = o2m_pair_hi(e0, e1);             \
    const int32_t p1 = o2m_pair_lo(o0, o1), p3 = o2m_pair_hi(o0, o1)

/* Four columns of b (from b, stride n) against two rows of a (their int16 pairs ap0, ap1). */
static O2M_DSP_NOINLINE void o2m_bmm_cols4x2(const int32_t *ap0, const int32_t *ap1, int32_t kp,
                                             const int8_t *b, int32_t n, int32_t *acc)
{
    int32_t q;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (q = 0; q < kp; ++q) {
        O2M_BMM_COLS4(b + 2 * q * n, n);
        const int32_t x0 = ap0[q], x1 = ap1[q];
        a0 = o2m_smlad(x0, p0, a0);
        a1 = o2m_smlad(x0, p1, a1);
        a2 = o2m_smlad(x0, p2, a2);
        a3 = o2m_smlad(x0, p3, a3);
        c0 = o2m_smlad(x1, p0, c0);
        c1 = o2m_smlad(x1, p1, c1);
        c2 = o2m_smlad(x1, p2, c2);
        c3 = o2m_smlad(x1, p3, c3);
    }
    acc[0] += a0;
    acc[1] += a1;
    acc[2] += a2;
    acc[3] += a3;
    acc[4] += c0;
    acc[5] += c1;
    acc[6] += c2;
    acc[7] += c3;
}

/* The same for one row (an odd last row, or one-row tiles). */
static O2M_DSP_NOINLINE void o2m_bmm_cols4x1(const int32_t *ap0, int32_t kp, const int8_t *b, int32_t n,
                                             int32_t *acc)
{
    int32_t q;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (q = 0; q < kp; ++q) {
        O2M_BMM_COLS4(b + 2 * q * n, n);
        const int32_t x0 = ap0[q];
        a0 = o2m_smlad(x0, p0, a0);
        a1 = o2m_smlad(x0, p1, a1);
        a2 = o2m_smlad(x0, p2, a2);
        a3 = o2m_smlad(x0, p3, a3);
    }
    acc[0] += a0;
    acc[1] += a1;
    acc[2] += a2;
    acc[3] += a3;
}

/* Row i of a as (a + a_offset) int16 pairs; returns the odd last value and sets *sum to the sum
 * of (a + a_offset) over the row (b's offset then adds b_offset * sum to every dot product). */
static int32_t o2m_bmm_pairs(const int8_t *row, int32_t k, int32_t offset, int32_t *ap, int32_t *sum)
{
    int32_t q, s = 0, last = 0;
    for (q = 0; q < k / 2; ++q) {
        const int32_t lo = row[2 * q] + offset, hi = row[2 * q + 1] + offset;
        ap[q] = o2m_pack16(lo, hi);
        s += lo + hi;
    }
    if (k & 1) {
        last = row[k - 1] + offset;
        s += last;
    }
    *sum = s;
    return last;
}

void o2m_batch_matmul_s8_dsp(const o2m_batch_matmul_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int32_t m = p->m, n = p->n, k = p->k, kp = p->k / 2;
    int32_t ap[2][O2M_BMM_DSP_MAX_K / 2];
    int32_t t, i, j, r;
    for (t = 0; t < p->batch; ++t) {
        const int8_t *at = a + (int64_t)t * p->a_batch_stride;
        const int8_t *bt = b + (int64_t)t * p->b_batch_stride;
        int8_t *yt = y + (int64_t)t * m * n;
        for (i = 0; i < m; i += 2) {
            const int32_t rows = i + 1 < m ? 2 : 1;
            int32_t last[2] = {0, 0}, sum[2] = {0, 0};
            for (r = 0; r < rows; ++r) {
                last[r] = o2m_bmm_pairs(at + (i + r) * k, k, p->a_offset, ap[r], &sum[r]);
            }
            for (j = 0; j + 4 <= n; j += 4) {
                int32_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                int32_t c;
                if (rows == 2) {
                    o2m_bmm_cols4x2(ap[0], ap[1], kp, bt + j, n, acc);
                } else {
                    o2m_bmm_cols4x1(ap[0], kp, bt + j, n, acc);
                }
                for (r = 0; r < rows; ++r) {
                    for (c = 0; c < 4; ++c) {
                        int32_t v = acc[4 * r + c] + p->b_offset * sum[r];
                        if (k & 1) {
                            v += last[r] * bt[(k - 1) * n + j + c];
                        }
                        yt[(i + r) * n + j + c] = o2m_s8_requant_channel(&p->requant, j + c, v);
                    }
                }
            }
            for (; j < n; ++j) {
                for (r = 0; r < rows; ++r) {
                    const int32_t v = o2m_bmm_dot(ap[r], kp, last[r], bt, n, j, k) + p->b_offset * sum[r];
                    yt[(i + r) * n + j] = o2m_s8_requant_channel(&p->requant, j, v);
                }
            }
        }
    }
}
