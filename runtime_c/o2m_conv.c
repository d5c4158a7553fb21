/*
 * o2m_conv.c - 2-D convolution and pooling, float32, NCHW.  See o2m_conv.h.
 *
 * Every output value is accumulated in the same order (ic, kh, kw ascending,
 * starting from 0, bias added last), whatever path or tile computes it.
 * Windows are split once per row into border columns (taps checked against
 * the input) and interior columns (all taps inside), where the register
 * tiles run without any bounds check.
 */
#include "o2m_conv.h"
#include "o2m_internal.h"

/* Geometry shared by the helpers below. */
typedef struct {
    int32_t cin_g;   /* input channels per group */
    int32_t h, w;    /* input plane */
    int32_t kh, kw;  /* kernel */
    int32_t dh, dw;  /* dilation */
    int32_t sw;      /* column stride */
} conv_geom;

/* Output columns [*lo, *hi) whose windows lie entirely inside the input row. */
static void interior_cols(int32_t pad_left, int32_t w_in, int32_t w_out, int32_t k_w, int32_t stride,
                          int32_t dil, int32_t *lo, int32_t *hi)
{
    const int32_t last_start = w_in - 1 - (k_w - 1) * dil + pad_left; /* largest ow*stride */
    int32_t a = (pad_left + stride - 1) / stride;
    int32_t b = last_start < 0 ? 0 : last_start / stride + 1;
    if (a > w_out) {
        a = w_out;
    }
    if (b > w_out) {
        b = w_out;
    }
    if (b < a) {
        b = a;
    }
    *lo = a;
    *hi = b;
}

/* One output value (without bias): taps kh in [kh_lo, kh_hi), kw in [kw_lo, kw_hi). */
static float conv_point(const conv_geom *g, const float *restrict xg, const float *restrict wo,
                        int32_t ih0, int32_t iw0, int32_t kh_lo, int32_t kh_hi, int32_t kw_lo,
                        int32_t kw_hi)
{
    const int32_t plane = g->h * g->w;
    const int32_t ksize = g->kh * g->kw;
    float acc = 0.0f;
    int32_t ic, kh, kw;
    for (ic = 0; ic < g->cin_g; ++ic) {
        const float *xc = xg + (size_t)ic * plane;
        const float *wc = wo + (size_t)ic * ksize;
        for (kh = kh_lo; kh < kh_hi; ++kh) {
            const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w;
            const float *wr = wc + kh * g->kw;
            for (kw = kw_lo; kw < kw_hi; ++kw) {
                acc += xr[iw0 + kw * g->dw] * wr[kw];
            }
        }
    }
    return acc;
}

/* Two output columns (iw0 and iw0 + sw) of one output channel, interior. */
static void conv_tile_1x2(const conv_geom *g, const float *restrict xg, const float *restrict wo,
                          int32_t ih0, int32_t iw0, int32_t kh_lo, int32_t kh_hi, float *acc)
{
    const int32_t plane = g->h * g->w;
    const int32_t ksize = g->kh * g->kw;
    const int32_t sw = g->sw;
    float a0 = 0.0f, a1 = 0.0f;
    int32_t ic, kh, kw;
    for (ic = 0; ic < g->cin_g; ++ic) {
        const float *xc = xg + (size_t)ic * plane;
        const float *wc = wo + (size_t)ic * ksize;
        for (kh = kh_lo; kh < kh_hi; ++kh) {
            const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w + iw0;
            const float *wr = wc + kh * g->kw;
            for (kw = 0; kw < g->kw; ++kw) {
                const float *xp = xr + kw * g->dw;
                const float wv = wr[kw];
                a0 += xp[0] * wv;
                a1 += xp[sw] * wv;
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* 2 output channels x 2 output columns, interior. acc = {c0x0, c0x1, c1x0, c1x1}. */
static void conv_tile_2x2(const conv_geom *g, const float *restrict xg, const float *restrict w0,
                          const float *restrict w1, int32_t ih0, int32_t iw0, int32_t kh_lo,
                          int32_t kh_hi, float *acc)
{
    const int32_t plane = g->h * g->w;
    const int32_t ksize = g->kh * g->kw;
    const int32_t sw = g->sw;
    float a00 = 0.0f, a01 = 0.0f, a10 = 0.0f, a11 = 0.0f;
    int32_t ic, kh, kw;
    for (ic = 0; ic < g->cin_g; ++ic) {
        const float *xc = xg + (size_t)ic * plane;
        const float *wc0 = w0 + (size_t)ic * ksize;
        const float *wc1 = w1 + (size_t)ic * ksize;
        for (kh = kh_lo; kh < kh_hi; ++kh) {
            const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w + iw0;
            const float *wr0 = wc0 + kh * g->kw;
            const float *wr1 = wc1 + kh * g->kw;
            for (kw = 0; kw < g->kw; ++kw) {
                const float *xp = xr + kw * g->dw;
                const float xa = xp[0];
                const float xb = xp[sw];
                const float wa = wr0[kw];
                const float wb = wr1[kw];
                a00 += xa * wa;
                a01 += xb * wa;
                a10 += xa * wb;
                a11 += xb * wb;
            }
        }
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

void o2m_conv2d_generic_f32(const o2m_conv2d_params *p, const float *restrict x,
                            const float *restrict w, const float *restrict bias,
                            float *restrict y)
{
    const int32_t OH = p->h_out, OW = p->w_out;
    const int32_t cin_g = p->c_in / p->groups;
    const int32_t cout_g = p->c_out / p->groups;
    const int32_t in_plane = p->h_in * p->w_in;
    const int32_t out_plane = OH * OW;
    const int32_t w_per_oc = cin_g * p->k_h * p->k_w;
    conv_geom geo;
    int32_t ow_lo, ow_hi;
    float lo, hi;
    int32_t n, grp, oc, oh, ow;

    geo.cin_g = cin_g;
    geo.h = p->h_in;
    geo.w = p->w_in;
    geo.kh = p->k_h;
    geo.kw = p->k_w;
    geo.dh = p->dil_h;
    geo.dw = p->dil_w;
    geo.sw = p->stride_w;
    o2m__act_bounds(&p->act, &lo, &hi);
    interior_cols(p->pad_left, p->w_in, OW, p->k_w, p->stride_w, p->dil_w, &ow_lo, &ow_hi);

    for (n = 0; n < p->n; ++n) {
        for (grp = 0; grp < p->groups; ++grp) {
            const float *xg = x + ((size_t)n * p->c_in + (size_t)grp * cin_g) * in_plane;
            const int32_t oc_end = (grp + 1) * cout_g;
            for (oc = grp * cout_g; oc < oc_end; oc += 2) {
                const int32_t pair = oc + 1 < oc_end;
                const float *w0 = w + (size_t)oc * w_per_oc;
                const float *w1 = pair ? w0 + w_per_oc : w0;
                const float b0 = bias ? bias[oc] : 0.0f;
                const float b1 = (bias && pair) ? bias[oc + 1] : 0.0f;
                float *y0 = y + ((size_t)n * p->c_out + oc) * out_plane;
                float *y1 = y0 + out_plane;
                for (oh = 0; oh < OH; ++oh) {
                    const int32_t ih0 = oh * p->stride_h - p->pad_top;
                    int32_t kh_lo, kh_hi;
                    float *r0 = y0 + (size_t)oh * OW;
                    float *r1 = y1 + (size_t)oh * OW;
                    o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);
                    ow = 0;
                    while (ow < OW) {
                        const int32_t iw0 = ow * p->stride_w - p->pad_left;
                        if (ow >= ow_lo && ow + 1 < ow_hi) {
                            float acc[4];
                            if (pair) {
                                conv_tile_2x2(&geo, xg, w0, w1, ih0, iw0, kh_lo, kh_hi, acc);
                                r1[ow] = o2m__clamp(acc[2] + b1, lo, hi);
                                r1[ow + 1] = o2m__clamp(acc[3] + b1, lo, hi);
                            } else {
                                conv_tile_1x2(&geo, xg, w0, ih0, iw0, kh_lo, kh_hi, acc);
                            }
                            r0[ow] = o2m__clamp(acc[0] + b0, lo, hi);
                            r0[ow + 1] = o2m__clamp(acc[1] + b0, lo, hi);
                            ow += 2;
                        } else {
                            int32_t kw_lo, kw_hi;
                            o2m__tap_range(iw0, p->w_in, p->k_w, p->dil_w, &kw_lo, &kw_hi);
                            r0[ow] = o2m__clamp(
                                conv_point(&geo, xg, w0, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi) + b0,
                                lo, hi);
                            if (pair) {
                                r1[ow] = o2m__clamp(
                                    conv_point(&geo, xg, w1, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi) +
                                        b1,
                                    lo, hi);
                            }
                            ow += 1;
                        }
                    }
                }
            }
        }
    }
}

void o2m_conv2d_depthwise_f32(const o2m_conv2d_params *p, const float *restrict x,
                              const float *restrict w, const float *restrict bias,
                              float *restrict y)
{
    const int32_t OH = p->h_out, OW = p->w_out;
    const int32_t W = p->w_in;
    const int32_t KW = p->k_w;
    const int32_t SW = p->stride_w, DW = p->dil_w;
    const int32_t mult = p->c_out / p->c_in;
    const int32_t in_plane = p->h_in * W;
    const int32_t out_plane = OH * OW;
    const int32_t ksize = p->k_h * KW;
    conv_geom geo;
    int32_t ow_lo, ow_hi;
    float lo, hi;
    int32_t n, oc, oh, ow, kh, kw;

    geo.cin_g = 1;
    geo.h = p->h_in;
    geo.w = W;
    geo.kh = p->k_h;
    geo.kw = KW;
    geo.dh = p->dil_h;
    geo.dw = DW;
    geo.sw = SW;
    o2m__act_bounds(&p->act, &lo, &hi);
    interior_cols(p->pad_left, W, OW, KW, SW, DW, &ow_lo, &ow_hi);

    for (n = 0; n < p->n; ++n) {
        for (oc = 0; oc < p->c_out; ++oc) {
            const float *xc = x + ((size_t)n * p->c_in + oc / mult) * in_plane;
            const float *wk = w + (size_t)oc * ksize;
            const float b = bias ? bias[oc] : 0.0f;
            float *yc = y + ((size_t)n * p->c_out + oc) * out_plane;
            for (oh = 0; oh < OH; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int32_t kh_lo, kh_hi;
                float *yr = yc + (size_t)oh * OW;
                o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);
                ow = 0;
                while (ow < OW) {
                    const int32_t iw0 = ow * SW - p->pad_left;
                    if (ow >= ow_lo && ow + 3 < ow_hi) {
                        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
                        for (kh = kh_lo; kh < kh_hi; ++kh) {
                            const float *xr = xc + (size_t)(ih0 + kh * p->dil_h) * W + iw0;
                            const float *wr = wk + kh * KW;
                            for (kw = 0; kw < KW; ++kw) {
                                const float *xp = xr + kw * DW;
                                const float wv = wr[kw];
                                a0 += xp[0] * wv;
                                a1 += xp[SW] * wv;
                                a2 += xp[2 * SW] * wv;
                                a3 += xp[3 * SW] * wv;
                            }
                        }
                        yr[ow] = o2m__clamp(a0 + b, lo, hi);
                        yr[ow + 1] = o2m__clamp(a1 + b, lo, hi);
                        yr[ow + 2] = o2m__clamp(a2 + b, lo, hi);
                        yr[ow + 3] = o2m__clamp(a3 + b, lo, hi);
                        ow += 4;
                    } else {
                        int32_t kw_lo, kw_hi;
                        o2m__tap_range(iw0, W, KW, DW, &kw_lo, &kw_hi);
                        yr[ow] = o2m__clamp(
                            conv_point(&geo, xc, wk, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi) + b, lo,
                            hi);
                        ow += 1;
                    }
                }
            }
        }
    }
}

void o2m_conv2d_1x1_f32(const o2m_conv2d_params *p, const float *restrict x,
                        const float *restrict w, const float *restrict bias, float *restrict y)
{
    const int32_t C = p->c_in;
    const int32_t K = p->c_out;
    const int32_t HW = p->h_in * p->w_in;
    float lo, hi;
    int32_t n, oc, px, ic;

    o2m__act_bounds(&p->act, &lo, &hi);
    for (n = 0; n < p->n; ++n) {
        const float *xn = x + (size_t)n * C * HW;
        float *yn = y + (size_t)n * K * HW;
        for (oc = 0; oc + 1 < K; oc += 2) {
            const float *w0 = w + (size_t)oc * C;
            const float *w1 = w0 + C;
            const float b0 = bias ? bias[oc] : 0.0f;
            const float b1 = bias ? bias[oc + 1] : 0.0f;
            float *y0 = yn + (size_t)oc * HW;
            float *y1 = y0 + HW;
            for (px = 0; px + 3 < HW; px += 4) {
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
                float c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
                const float *xp = xn + px;
                for (ic = 0; ic < C; ++ic) {
                    const float wa = w0[ic];
                    const float wb = w1[ic];
                    const float x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
                    a0 += x0 * wa;
                    a1 += x1 * wa;
                    a2 += x2 * wa;
                    a3 += x3 * wa;
                    c0 += x0 * wb;
                    c1 += x1 * wb;
                    c2 += x2 * wb;
                    c3 += x3 * wb;
                    xp += HW;
                }
                y0[px] = o2m__clamp(a0 + b0, lo, hi);
                y0[px + 1] = o2m__clamp(a1 + b0, lo, hi);
                y0[px + 2] = o2m__clamp(a2 + b0, lo, hi);
                y0[px + 3] = o2m__clamp(a3 + b0, lo, hi);
                y1[px] = o2m__clamp(c0 + b1, lo, hi);
                y1[px + 1] = o2m__clamp(c1 + b1, lo, hi);
                y1[px + 2] = o2m__clamp(c2 + b1, lo, hi);
                y1[px + 3] = o2m__clamp(c3 + b1, lo, hi);
            }
            for (; px < HW; ++px) {
                float a0 = 0.0f, c0 = 0.0f;
                const float *xp = xn + px;
                for (ic = 0; ic < C; ++ic) {
                    a0 += xp[0] * w0[ic];
                    c0 += xp[0] * w1[ic];
                    xp += HW;
                }
                y0[px] = o2m__clamp(a0 + b0, lo, hi);
                y1[px] = o2m__clamp(c0 + b1, lo, hi);
            }
        }
        if (oc < K) { /* odd number of output channels: the last one alone */
            const float *w0 = w + (size_t)oc * C;
            const float b0 = bias ? bias[oc] : 0.0f;
            float *y0 = yn + (size_t)oc * HW;
            for (px = 0; px + 3 < HW; px += 4) {
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
                const float *xp = xn + px;
                for (ic = 0; ic < C; ++ic) {
                    const float wa = w0[ic];
                    a0 += xp[0] * wa;
                    a1 += xp[1] * wa;
                    a2 += xp[2] * wa;
                    a3 += xp[3] * wa;
                    xp += HW;
                }
                y0[px] = o2m__clamp(a0 + b0, lo, hi);
                y0[px + 1] = o2m__clamp(a1 + b0, lo, hi);
                y0[px + 2] = o2m__clamp(a2 + b0, lo, hi);
                y0[px + 3] = o2m__clamp(a3 + b0, lo, hi);
            }
            for (; px < HW; ++px) {
                float a0 = 0.0f;
                const float *xp = xn + px;
                for (ic = 0; ic < C; ++ic) {
                    a0 += xp[0] * w0[ic];
                    xp += HW;
                }
                y0[px] = o2m__clamp(a0 + b0, lo, hi);
            }
        }
    }
}

/* ------------------------------------------------------- register-tiled */
/*
 * o2m_conv2d_tiled_f32: 4 output channels x 2 output columns per step, 8 accumulators in
 * registers, each multiply-add an O2M_MAC (fused where the FPU has it).  Every output is still
 * the sum over ic, kh, kw ascending from 0, bias added last.  The four channels' weights are
 * read through four pointers (a tail of fewer than 4 channels repeats its last channel and
 * stores only the real ones).
 */

/* acc[2 * j + c] += x_c * w_j: the 4 channels j of a tile and its 2 columns c. */
#define O2M_TILE_MAC(xa, xb, wa, wb, wc, wd)                                                         \
    do {                                                                                           \
        const float xa_ = (xa), xb_ = (xb);                                                        \
        const float wa_ = (wa), wb_ = (wb), wc_ = (wc), wd_ = (wd);                                \
        a00 = O2M_MAC(a00, xa_, wa_);                                                              \
        a01 = O2M_MAC(a01, xb_, wa_);                                                              \
        a10 = O2M_MAC(a10, xa_, wb_);                                                              \
        a11 = O2M_MAC(a11, xb_, wb_);                                                              \
        a20 = O2M_MAC(a20, xa_, wc_);                                                              \
        a21 = O2M_MAC(a21, xb_, wc_);                                                              \
        a30 = O2M_MAC(a30, xa_, wd_);                                                              \
        a31 = O2M_MAC(a31, xb_, wd_);                                                              \
    } while (0)

#define O2M_TILE_DECL float a00 = 0.0f, a01 = 0.0f, a10 = 0.0f, a11 = 0.0f, a20 = 0.0f, a21 = 0.0f, \
                            a30 = 0.0f, a31 = 0.0f

#define O2M_TILE_OUT(acc)                                                                          \
    do {                                                                                           \
        (acc)[0] = a00;                                                                            \
        (acc)[1] = a01;                                                                            \
        (acc)[2] = a10;                                                                            \
        (acc)[3] = a11;                                                                            \
        (acc)[4] = a20;                                                                            \
        (acc)[5] = a21;                                                                            \
        (acc)[6] = a30;                                                                            \
        (acc)[7] = a31;                                                                            \
    } while (0)

/*
 * 3x3 kernel, dilation 1, all 9 taps inside: x points at the window's top-left input of the
 * first column, S is the column stride (a constant where inlined), wq the 4 channels'
 * weights of input channel 0 (9 apart per input channel).
 */
O2M_FORCE_INLINE void tile4x2_3x3(const float *restrict x, int32_t row, int32_t plane, int32_t cin,
                                  const float *const *wq, int32_t S, float *restrict acc)
{
    const float *restrict w0 = wq[0];
    const float *restrict w1 = wq[1];
    const float *restrict w2 = wq[2];
    const float *restrict w3 = wq[3];
    int32_t ic;
    O2M_TILE_DECL;
    for (ic = 0; ic < cin; ++ic) {
        const float *restrict r0 = x;
        const float *restrict r1 = r0 + row;
        const float *restrict r2 = r1 + row;
        O2M_TILE_MAC(r0[0], r0[S], w0[0], w1[0], w2[0], w3[0]);
        O2M_TILE_MAC(r0[1], r0[S + 1], w0[1], w1[1], w2[1], w3[1]);
        O2M_TILE_MAC(r0[2], r0[S + 2], w0[2], w1[2], w2[2], w3[2]);
        O2M_TILE_MAC(r1[0], r1[S], w0[3], w1[3], w2[3], w3[3]);
        O2M_TILE_MAC(r1[1], r1[S + 1], w0[4], w1[4], w2[4], w3[4]);
        O2M_TILE_MAC(r1[2], r1[S + 2], w0[5], w1[5], w2[5], w3[5]);
        O2M_TILE_MAC(r2[0], r2[S], w0[6], w1[6], w2[6], w3[6]);
        O2M_TILE_MAC(r2[1], r2[S + 1], w0[7], w1[7], w2[7], w3[7]);
        O2M_TILE_MAC(r2[2], r2[S + 2], w0[8], w1[8], w2[8], w3[8]);
        x += plane;
        w0 += 9;
        w1 += 9;
        w2 += 9;
        w3 += 9;
    }
    O2M_TILE_OUT(acc);
}

/* 1x1 kernel: x points at the first column's input, S the column stride. */
O2M_FORCE_INLINE void tile4x2_1x1(const float *restrict x, int32_t plane, int32_t cin,
                                  const float *const *wq, int32_t S, float *restrict acc)
{
    const float *restrict w0 = wq[0];
    const float *restrict w1 = wq[1];
    const float *restrict w2 = wq[2];
    const float *restrict w3 = wq[3];
    int32_t ic;
    O2M_TILE_DECL;
    for (ic = 0; ic < cin; ++ic) {
        O2M_TILE_MAC(x[0], x[S], w0[ic], w1[ic], w2[ic], w3[ic]);
        x += plane;
    }
    O2M_TILE_OUT(acc);
}

/* Any kernel: taps kh in [kh_lo, kh_hi), every kw inside the input row. */
static void tile4x2_any(const conv_geom *g, const float *restrict xg, const float *const *wq,
                        int32_t ih0, int32_t iw0, int32_t kh_lo, int32_t kh_hi, float *restrict acc)
{
    const int32_t plane = g->h * g->w;
    const int32_t ksize = g->kh * g->kw;
    const int32_t sw = g->sw;
    int32_t ic, kh, kw;
    O2M_TILE_DECL;
    for (ic = 0; ic < g->cin_g; ++ic) {
        const float *xc = xg + (size_t)ic * plane;
        const size_t wc = (size_t)ic * ksize;
        for (kh = kh_lo; kh < kh_hi; ++kh) {
            const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w + iw0;
            const size_t wr = wc + (size_t)kh * g->kw;
            for (kw = 0; kw < g->kw; ++kw) {
                const float *xp = xr + kw * g->dw;
                O2M_TILE_MAC(xp[0], xp[sw], wq[0][wr + kw], wq[1][wr + kw], wq[2][wr + kw],
                             wq[3][wr + kw]);
            }
        }
    }
    O2M_TILE_OUT(acc);
}

/* 4 channels x 1 column (borders): taps kh in [kh_lo, kh_hi), kw in [kw_lo, kw_hi). */
static void tile4x1(const conv_geom *g, const float *restrict xg, const float *const *wq, int32_t ih0,
                    int32_t iw0, int32_t kh_lo, int32_t kh_hi, int32_t kw_lo, int32_t kw_hi,
                    float *restrict acc)
{
    const int32_t plane = g->h * g->w;
    const int32_t ksize = g->kh * g->kw;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int32_t ic, kh, kw;
    for (ic = 0; ic < g->cin_g; ++ic) {
        const float *xc = xg + (size_t)ic * plane;
        const size_t wc = (size_t)ic * ksize;
        for (kh = kh_lo; kh < kh_hi; ++kh) {
            const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w;
            const size_t wr = wc + (size_t)kh * g->kw;
            for (kw = kw_lo; kw < kw_hi; ++kw) {
                const float xv = xr[iw0 + kw * g->dw];
                a0 = O2M_MAC(a0, xv, wq[0][wr + kw]);
                a1 = O2M_MAC(a1, xv, wq[1][wr + kw]);
                a2 = O2M_MAC(a2, xv, wq[2][wr + kw]);
                a3 = O2M_MAC(a3, xv, wq[3][wr + kw]);
            }
        }
    }
    acc[0] = a0;
    acc[2] = a1;
    acc[4] = a2;
    acc[6] = a3;
}

/*
 * Pointwise (1x1, stride 1, no pads: each input plane is one run of hw pixels): 4 channels x
 * 4 consecutive pixels, 16 accumulators.  acc[4 * j + c].
 */
static void pw_tile4x4(const float *restrict x, int32_t hw, int32_t cin, const float *const *wq,
                       float *restrict acc)
{
    const float *restrict w0 = wq[0];
    const float *restrict w1 = wq[1];
    const float *restrict w2 = wq[2];
    const float *restrict w3 = wq[3];
    float a00 = 0.0f, a01 = 0.0f, a02 = 0.0f, a03 = 0.0f, a10 = 0.0f, a11 = 0.0f, a12 = 0.0f,
          a13 = 0.0f, a20 = 0.0f, a21 = 0.0f, a22 = 0.0f, a23 = 0.0f, a30 = 0.0f, a31 = 0.0f,
          a32 = 0.0f, a33 = 0.0f;
    int32_t ic;
    for (ic = 0; ic < cin; ++ic) {
        const float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        const float wa = w0[ic], wb = w1[ic], wc = w2[ic], wd = w3[ic];
        a00 = O2M_MAC(a00, x0, wa);
        a01 = O2M_MAC(a01, x1, wa);
        a02 = O2M_MAC(a02, x2, wa);
        a03 = O2M_MAC(a03, x3, wa);
        a10 = O2M_MAC(a10, x0, wb);
        a11 = O2M_MAC(a11, x1, wb);
        a12 = O2M_MAC(a12, x2, wb);
        a13 = O2M_MAC(a13, x3, wb);
        a20 = O2M_MAC(a20, x0, wc);
        a21 = O2M_MAC(a21, x1, wc);
        a22 = O2M_MAC(a22, x2, wc);
        a23 = O2M_MAC(a23, x3, wc);
        a30 = O2M_MAC(a30, x0, wd);
        a31 = O2M_MAC(a31, x1, wd);
        a32 = O2M_MAC(a32, x2, wd);
        a33 = O2M_MAC(a33, x3, wd);
        x += hw;
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a02;
    acc[3] = a03;
    acc[4] = a10;
    acc[5] = a11;
    acc[6] = a12;
    acc[7] = a13;
    acc[8] = a20;
    acc[9] = a21;
    acc[10] = a22;
    acc[11] = a23;
    acc[12] = a30;
    acc[13] = a31;
    acc[14] = a32;
    acc[15] = a33;
}

/* Pointwise, 4 channels x 1 pixel. acc[4 * j]. */
static void pw_tile4x1(const float *restrict x, int32_t hw, int32_t cin, const float *const *wq,
                       float *restrict acc)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int32_t ic;
    for (ic = 0; ic < cin; ++ic) {
        const float xv = x[0];
        a0 = O2M_MAC(a0, xv, wq[0][ic]);
        a1 = O2M_MAC(a1, xv, wq[1][ic]);
        a2 = O2M_MAC(a2, xv, wq[2][ic]);
        a3 = O2M_MAC(a3, xv, wq[3][ic]);
        x += hw;
    }
    acc[0] = a0;
    acc[4] = a1;
    acc[8] = a2;
    acc[12] = a3;
}

/*
 * Store `cols` outputs of each of the tile's `count` channels: y_j[at + c] = act(acc[step * j + c]
 * + bias_j).  Without an activation no clamp (the same value: the clamp bounds are infinite).
 */
static void store_tile(float *const *yq, int32_t count, size_t at, const float *acc, int32_t step,
                       int32_t cols, const float *bq, int32_t clamp, float lo, float hi)
{
    int32_t j, c;
    for (j = 0; j < count; ++j) {
        float *yr = yq[j] + at;
        const float *ar = acc + step * j;
        if (clamp) {
            for (c = 0; c < cols; ++c) {
                yr[c] = o2m__clamp(ar[c] + bq[j], lo, hi);
            }
        } else {
            for (c = 0; c < cols; ++c) {
                yr[c] = ar[c] + bq[j];
            }
        }
    }
}

/* The pointwise form of o2m_conv2d_tiled_f32 for one batch item and one 4-channel tile. */
static void pointwise_tiled(const float *restrict xn, int32_t hw, int32_t cin, const float *const *wq,
                            float *const *yq, int32_t count, const float *bq, int32_t clamp, float lo,
                            float hi)
{
    float acc[16];
    int32_t px = 0;
    for (; px + 3 < hw; px += 4) {
        pw_tile4x4(xn + px, hw, cin, wq, acc);
        store_tile(yq, count, (size_t)px, acc, 4, 4, bq, clamp, lo, hi);
    }
    for (; px < hw; ++px) {
        pw_tile4x1(xn + px, hw, cin, wq, acc);
        store_tile(yq, count, (size_t)px, acc, 4, 1, bq, clamp, lo, hi);
    }
}

void o2m_conv2d_tiled_f32(const o2m_conv2d_params *p, const float *restrict x,
                          const float *restrict w, const float *restrict bias, float *restrict y)
{
    const int32_t OH = p->h_out, OW = p->w_out, W = p->w_in;
    const int32_t cin_g = p->c_in / p->groups;
    const int32_t cout_g = p->c_out / p->groups;
    const int32_t in_plane = p->h_in * W;
    const int32_t out_plane = OH * OW;
    const int32_t w_per_oc = cin_g * p->k_h * p->k_w;
    const int32_t k3 = p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1;
    const int32_t k1 = p->k_h == 1 && p->k_w == 1;
    const int32_t pointwise = k1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                              p->pad_left == 0 && OH == p->h_in && OW == W;
    const int32_t clamp = p->act.kind != O2M_ACT_NONE;
    const int32_t S = p->stride_w;
    conv_geom geo;
    int32_t ow_lo, ow_hi;
    float lo, hi;
    int32_t n, grp, oc, oh, ow, j;

    geo.cin_g = cin_g;
    geo.h = p->h_in;
    geo.w = W;
    geo.kh = p->k_h;
    geo.kw = p->k_w;
    geo.dh = p->dil_h;
    geo.dw = p->dil_w;
    geo.sw = S;
    o2m__act_bounds(&p->act, &lo, &hi);
    interior_cols(p->pad_left, W, OW, p->k_w, S, p->dil_w, &ow_lo, &ow_hi);

    for (n = 0; n < p->n; ++n) {
        for (grp = 0; grp < p->groups; ++grp) {
            const float *xg = x + ((size_t)n * p->c_in + (size_t)grp * cin_g) * in_plane;
            const int32_t oc_end = (grp + 1) * cout_g;
            for (oc = grp * cout_g; oc < oc_end; oc += 4) {
                const int32_t count = oc_end - oc < 4 ? oc_end - oc : 4;
                const float *wq[4];
                float bq[4];
                float *yq[4];
                for (j = 0; j < 4; ++j) {
                    const int32_t c = oc + (j < count ? j : count - 1);
                    wq[j] = w + (size_t)c * w_per_oc;
                    bq[j] = bias ? bias[c] : 0.0f;
                    yq[j] = y + ((size_t)n * p->c_out + c) * out_plane;
                }
                if (pointwise) {
                    pointwise_tiled(xg, in_plane, cin_g, wq, yq, count, bq, clamp, lo, hi);
                    continue;
                }
                for (oh = 0; oh < OH; ++oh) {
                    const int32_t ih0 = oh * p->stride_h - p->pad_top;
                    const size_t out_row = (size_t)oh * OW;
                    int32_t kh_lo, kh_hi, full;
                    o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);
                    full = kh_lo == 0 && kh_hi == p->k_h;
                    ow = 0;
                    while (ow < OW) {
                        const int32_t iw0 = ow * S - p->pad_left;
                        float acc[8];
                        if (ow >= ow_lo && ow + 1 < ow_hi) {
                            if (full && (k3 || k1)) {
                                /* the unrolled tiles, no bounds checks */
                                const float *xw = xg + (size_t)ih0 * W + iw0;
                                if (k3 && S == 1) {
                                    tile4x2_3x3(xw, W, in_plane, cin_g, wq, 1, acc);
                                } else if (k3 && S == 2) {
                                    tile4x2_3x3(xw, W, in_plane, cin_g, wq, 2, acc);
                                } else if (k3) {
                                    tile4x2_3x3(xw, W, in_plane, cin_g, wq, S, acc);
                                } else if (S == 1) {
                                    tile4x2_1x1(xw, in_plane, cin_g, wq, 1, acc);
                                } else {
                                    tile4x2_1x1(xw, in_plane, cin_g, wq, S, acc);
                                }
                            } else {
                                tile4x2_any(&geo, xg, wq, ih0, iw0, kh_lo, kh_hi, acc);
                            }
                            store_tile(yq, count, out_row + ow, acc, 2, 2, bq, clamp, lo, hi);
                            ow += 2;
                        } else {
                            int32_t kw_lo, kw_hi;
                            o2m__tap_range(iw0, W, p->k_w, p->dil_w, &kw_lo, &kw_hi);
                            tile4x1(&geo, xg, wq, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, acc);
                            store_tile(yq, count, out_row + ow, acc, 2, 1, bq, clamp, lo, hi);
                            ow += 1;
                        }
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------- depthwise, fused */
/*
 * o2m_conv2d_depthwise_tiled_f32: o2m_conv2d_depthwise_f32's sums (kh, kw ascending from 0,
 * bias last) with O2M_MAC multiply-adds; a 3x3 (dilation 1) channel keeps its 9 weights in
 * registers and its windows wholly inside the input run unrolled, 4 output columns per step
 * (or 1); other windows run the general 4-column tile or one output at a time.
 */

/* One kernel row of 3 taps (weights ka, kb, kc) for the 4 columns S apart from r. */
#define O2M_DW_ROW(r, ka, kb, kc)                                                                  \
    do {                                                                                           \
        a0 = O2M_MAC(a0, (r)[0], ka);                                                              \
        a1 = O2M_MAC(a1, (r)[S], ka);                                                              \
        a2 = O2M_MAC(a2, (r)[2 * S], ka);                                                          \
        a3 = O2M_MAC(a3, (r)[3 * S], ka);                                                          \
        a0 = O2M_MAC(a0, (r)[1], kb);                                                              \
        a1 = O2M_MAC(a1, (r)[S + 1], kb);                                                          \
        a2 = O2M_MAC(a2, (r)[2 * S + 1], kb);                                                      \
        a3 = O2M_MAC(a3, (r)[3 * S + 1], kb);                                                      \
        a0 = O2M_MAC(a0, (r)[2], kc);                                                              \
        a1 = O2M_MAC(a1, (r)[S + 2], kc);                                                          \
        a2 = O2M_MAC(a2, (r)[2 * S + 2], kc);                                                      \
        a3 = O2M_MAC(a3, (r)[3 * S + 2], kc);                                                      \
    } while (0)

/* The 9 weights of a 3x3 channel, kept in registers by the callers. */
typedef struct {
    float k0, k1, k2, k3, k4, k5, k6, k7, k8;
} dw_k3;

/* 3x3, 4 output columns S apart; x at the first window's top-left input. */
O2M_FORCE_INLINE void dw_tile4_3x3(const float *restrict x, int32_t row, dw_k3 k, int32_t S,
                                   float *restrict acc)
{
    const float *restrict r1 = x + row;
    const float *restrict r2 = r1 + row;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    O2M_DW_ROW(x, k.k0, k.k1, k.k2);
    O2M_DW_ROW(r1, k.k3, k.k4, k.k5);
    O2M_DW_ROW(r2, k.k6, k.k7, k.k8);
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* 3x3, one output; x at its window's top-left input. */
O2M_FORCE_INLINE float dw_point_3x3(const float *restrict x, int32_t row, dw_k3 k)
{
    const float *restrict r1 = x + row;
    const float *restrict r2 = r1 + row;
    float a = 0.0f;
    a = O2M_MAC(a, x[0], k.k0);
    a = O2M_MAC(a, x[1], k.k1);
    a = O2M_MAC(a, x[2], k.k2);
    a = O2M_MAC(a, r1[0], k.k3);
    a = O2M_MAC(a, r1[1], k.k4);
    a = O2M_MAC(a, r1[2], k.k5);
    a = O2M_MAC(a, r2[0], k.k6);
    a = O2M_MAC(a, r2[1], k.k7);
    a = O2M_MAC(a, r2[2], k.k8);
    return a;
}

/* Any kernel, 4 output columns whose kw taps are all inside; kh in [kh_lo, kh_hi). */
static void dw_tile4_any(const conv_geom *g, const float *restrict xc, const float *restrict wk,
                         int32_t ih0, int32_t iw0, int32_t kh_lo, int32_t kh_hi, float *restrict acc)
{
    const int32_t sw = g->sw;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int32_t kh, kw;
    for (kh = kh_lo; kh < kh_hi; ++kh) {
        const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w + iw0;
        const float *wr = wk + kh * g->kw;
        for (kw = 0; kw < g->kw; ++kw) {
            const float *xp = xr + kw * g->dw;
            const float wv = wr[kw];
            a0 = O2M_MAC(a0, xp[0], wv);
            a1 = O2M_MAC(a1, xp[sw], wv);
            a2 = O2M_MAC(a2, xp[2 * sw], wv);
            a3 = O2M_MAC(a3, xp[3 * sw], wv);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Any kernel, one output: taps kh in [kh_lo, kh_hi), kw in [kw_lo, kw_hi). */
static float dw_point_any(const conv_geom *g, const float *restrict xc, const float *restrict wk,
                          int32_t ih0, int32_t iw0, int32_t kh_lo, int32_t kh_hi, int32_t kw_lo,
                          int32_t kw_hi)
{
    float a = 0.0f;
    int32_t kh, kw;
    for (kh = kh_lo; kh < kh_hi; ++kh) {
        const float *xr = xc + (size_t)(ih0 + kh * g->dh) * g->w;
        const float *wr = wk + kh * g->kw;
        for (kw = kw_lo; kw < kw_hi; ++kw) {
            a = O2M_MAC(a, xr[iw0 + kw * g->dw], wr[kw]);
        }
    }
    return a;
}

void o2m_conv2d_depthwise_tiled_f32(const o2m_conv2d_params *p, const float *restrict x,
                                    const float *restrict w, const float *restrict bias,
                                    float *restrict y)
{
    const int32_t OH = p->h_out, OW = p->w_out, W = p->w_in;
    const int32_t S = p->stride_w;
    const int32_t mult = p->c_out / p->c_in;
    const int32_t in_plane = p->h_in * W;
    const int32_t out_plane = OH * OW;
    const int32_t ksize = p->k_h * p->k_w;
    const int32_t k3 = p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1;
    const int32_t clamp = p->act.kind != O2M_ACT_NONE;
    conv_geom geo;
    int32_t ow_lo, ow_hi;
    float lo, hi;
    int32_t n, oc, oh, ow, i;

    geo.cin_g = 1;
    geo.h = p->h_in;
    geo.w = W;
    geo.kh = p->k_h;
    geo.kw = p->k_w;
    geo.dh = p->dil_h;
    geo.dw = p->dil_w;
    geo.sw = S;
    o2m__act_bounds(&p->act, &lo, &hi);
    interior_cols(p->pad_left, W, OW, p->k_w, S, p->dil_w, &ow_lo, &ow_hi);

    for (n = 0; n < p->n; ++n) {
        for (oc = 0; oc < p->c_out; ++oc) {
            const float *xc = x + ((size_t)n * p->c_in + oc / mult) * in_plane;
            const float *wk = w + (size_t)oc * ksize;
            const float b = bias ? bias[oc] : 0.0f;
            float *yc = y + ((size_t)n * p->c_out + oc) * out_plane;
            dw_k3 k = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            if (k3) {
                k.k0 = wk[0];
                k.k1 = wk[1];
                k.k2 = wk[2];
                k.k3 = wk[3];
                k.k4 = wk[4];
                k.k5 = wk[5];
                k.k6 = wk[6];
                k.k7 = wk[7];
                k.k8 = wk[8];
            }
            for (oh = 0; oh < OH; ++oh) {
                const int32_t ih0 = oh * p->stride_h - p->pad_top;
                int32_t kh_lo, kh_hi, full;
                float *yr = yc + (size_t)oh * OW;
                o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);
                full = k3 && kh_lo == 0 && kh_hi == 3;
                ow = 0;
                while (ow < OW) {
                    const int32_t iw0 = ow * S - p->pad_left;
                    float acc[4];
                    int32_t cols = 1;
                    if (ow >= ow_lo && ow + 3 < ow_hi) {
                        cols = 4;
                        if (full) {
                            const float *xw = xc + (size_t)ih0 * W + iw0;
                            if (S == 1) {
                                dw_tile4_3x3(xw, W, k, 1, acc);
                            } else if (S == 2) {
                                dw_tile4_3x3(xw, W, k, 2, acc);
                            } else {
                                dw_tile4_3x3(xw, W, k, S, acc);
                            }
                        } else {
                            dw_tile4_any(&geo, xc, wk, ih0, iw0, kh_lo, kh_hi, acc);
                        }
                    } else if (full && ow >= ow_lo && ow < ow_hi) {
                        acc[0] = dw_point_3x3(xc + (size_t)ih0 * W + iw0, W, k);
                    } else {
                        int32_t kw_lo, kw_hi;
                        o2m__tap_range(iw0, W, p->k_w, p->dil_w, &kw_lo, &kw_hi);
                        acc[0] = dw_point_any(&geo, xc, wk, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi);
                    }
                    for (i = 0; i < cols; ++i) {
                        yr[ow + i] = clamp ? o2m__clamp(acc[i] + b, lo, hi) : acc[i] + b;
                    }
                    ow += cols;
                }
            }
        }
    }
}

void o2m_conv2d_f32(const o2m_conv2d_params *p, const float *restrict x, const float *restrict w,
                    const float *restrict bias, float *restrict y)
{
    if (p->groups == p->c_in && p->groups > 0 && p->c_out % p->c_in == 0) {
        o2m_conv2d_depthwise_f32(p, x, w, bias, y);
    } else if (p->groups == 1 && p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 &&
               p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0 && p->h_out == p->h_in &&
               p->w_out == p->w_in) {
        o2m_conv2d_1x1_f32(p, x, w, bias, y);
    } else {
        o2m_conv2d_generic_f32(p, x, w, bias, y);
    }
}

/* ---------------------------------------------------------------- pooling */

void o2m_maxpool2d_f32(const o2m_pool2d_params *p, const float *restrict x, float *restrict y)
{
    const int32_t in_plane = p->h_in * p->w_in;
    const int32_t planes = p->n * p->c;
    int32_t pl, oh, ow, kh, kw;
    for (pl = 0; pl < planes; ++pl) {
        const float *xc = x + (size_t)pl * in_plane;
        float *yc = y + (size_t)pl * p->h_out * p->w_out;
        for (oh = 0; oh < p->h_out; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            int32_t kh_lo, kh_hi;
            o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);
            for (ow = 0; ow < p->w_out; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                int32_t kw_lo, kw_hi;
                float m = -INFINITY;
                o2m__tap_range(iw0, p->w_in, p->k_w, p->dil_w, &kw_lo, &kw_hi);
                for (kh = kh_lo; kh < kh_hi; ++kh) {
                    const float *xr = xc + (size_t)(ih0 + kh * p->dil_h) * p->w_in;
                    for (kw = kw_lo; kw < kw_hi; ++kw) {
                        const float v = xr[iw0 + kw * p->dil_w];
                        m = (v > m || v != v) ? v : m;
                    }
                }
                yc[(size_t)oh * p->w_out + ow] = m;
            }
        }
    }
}

void o2m_avgpool2d_f32(const o2m_pool2d_params *p, const float *restrict x, float *restrict y)
{
    const int32_t in_plane = p->h_in * p->w_in;
    const int32_t planes = p->n * p->c;
    int32_t pl, oh, ow, kh, kw;
    for (pl = 0; pl < planes; ++pl) {
        const float *xc = x + (size_t)pl * in_plane;
        float *yc = y + (size_t)pl * p->h_out * p->w_out;
        for (oh = 0; oh < p->h_out; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            int32_t kh_lo, kh_hi, ph_lo, ph_hi;
            o2m__tap_range(ih0, p->h_in, p->k_h, p->dil_h, &kh_lo, &kh_hi);
            o2m__tap_range(ih0 + p->pad_top, p->h_in + p->pad_top + p->pad_bottom, p->k_h,
                           p->dil_h, &ph_lo, &ph_hi);
            for (ow = 0; ow < p->w_out; ++ow) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                int32_t kw_lo, kw_hi, pw_lo, pw_hi, count;
                float s = 0.0f;
                o2m__tap_range(iw0, p->w_in, p->k_w, p->dil_w, &kw_lo, &kw_hi);
                for (kh = kh_lo; kh < kh_hi; ++kh) {
                    const float *xr = xc + (size_t)(ih0 + kh * p->dil_h) * p->w_in;
                    for (kw = kw_lo; kw < kw_hi; ++kw) {
                        s += xr[iw0 + kw * p->dil_w];
                    }
                }
                if (p->count_include_pad) {
                    o2m__tap_range(iw0 + p->pad_left, p->w_in + p->pad_left + p->pad_right,
                                   p->k_w, p->dil_w, &pw_lo, &pw_hi);
                    count = (ph_hi > ph_lo ? ph_hi - ph_lo : 0) * (pw_hi > pw_lo ? pw_hi - pw_lo : 0);
                } else {
                    count = (kh_hi > kh_lo ? kh_hi - kh_lo : 0) * (kw_hi > kw_lo ? kw_hi - kw_lo : 0);
                }
                yc[(size_t)oh * p->w_out + ow] = s / (float)count;
            }
        }
    }
}

void o2m_global_avgpool_f32(int32_t nc, int32_t hw, const float *restrict x, float *restrict y)
{
    int32_t c, i;
    for (c = 0; c < nc; ++c) {
        const float *xc = x + (size_t)c * hw;
        float s = 0.0f;
        for (i = 0; i < hw; ++i) {
            s += xc[i];
        }
        y[c] = s / (float)hw;
    }
}

void o2m_global_maxpool_f32(int32_t nc, int32_t hw, const float *restrict x, float *restrict y)
{
    int32_t c, i;
    for (c = 0; c < nc; ++c) {
        const float *xc = x + (size_t)c * hw;
        float m = -INFINITY;
        for (i = 0; i < hw; ++i) {
            const float v = xc[i];
            m = (v > m || v != v) ? v : m;
        }
        y[c] = m;
    }
}
