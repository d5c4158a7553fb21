/*
 * o2m_binary.c - binary (XNOR-popcount) kernels.  See o2m_binary.h.
 *
 * Popcount: the SWAR sequence reduces a 32-bit word to nibble counts (0..4)
 * and then byte counts (0..8); the four bytes are summed into an accumulator
 * with one USADA8 (sum of absolute byte differences, plus accumulator) on
 * cores with the DSP extension, else with a multiply by 0x01010101 and a
 * shift.  Cortex-M4 has no popcount instruction (__builtin_popcount is a
 * library call there).  Two words share one byte-sum step by adding their
 * nibble counts first (see bin_group_acc).
 *
 * GEMM, rows of up to 4 words (K <= 128, e.g. BERT-tiny's hidden size): one
 * activation row stays in registers while all weight rows stream past it,
 * so each activation word is loaded once per row and reused for every
 * output channel.  Longer rows: the same over chunks of 4 words, the partial
 * counts kept as int32 in the output row's own storage until the last chunk
 * (float output), or a two-words-per-step loop (packed output).
 * Conv: 2 output pixels (adjacent, same taps) x 2 output channels at a time,
 * so each activation word feeds two weight rows and each weight word two
 * pixels; with dilation 1 the taps of one kernel row are one contiguous run
 * of words in both the input and the weights; taps outside the input are
 * skipped (zero padding), and the count of taps inside gives the dot product.
 *
 * Defining O2M_BINARY_NO_TILING at compile time keeps only the 1 x 1 paths
 * (for benchmarks); results are identical.
 */
#include <string.h>

#include "o2m_binary.h"
#include "o2m_internal.h"

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define O2M_BIN_HAVE_USADA8 1
#endif


/*
 * Masks of the SWAR popcount.  Written as (v & 0xAA..) >> 1 rather than
 * (v >> 1) & 0x55.., the first two steps map to AND + SUB/ADD with a shifted
 * operand on Thumb-2 (2 and 3 instructions instead of 3 and 4); GCC would
 * canonicalize the constant form back, so on ARM the two masks live in
 * registers that the compiler cannot see through.
 */
typedef struct {
    uint32_t a; /* 0xAAAAAAAA */
    uint32_t c; /* 0xCCCCCCCC */
} bin_masks;

O2M_FORCE_INLINE bin_masks bin_masks_make(void)
{
    bin_masks m;
    m.a = 0xAAAAAAAAu;
    m.c = 0xCCCCCCCCu;
#if defined(O2M_BIN_HAVE_USADA8) && defined(__GNUC__)
    __asm__("" : "+r"(m.a));
    __asm__("" : "+r"(m.c));
#endif
    return m;
}

/* Four byte counts (0..8 each) of the bits of v. */
O2M_FORCE_INLINE uint32_t bin_bytecounts(uint32_t v, bin_masks m)
{
    v = v - ((v & m.a) >> 1);
    v = (v & 0x33333333u) + ((v & m.c) >> 2);
    return (v + (v >> 4)) & 0x0F0F0F0Fu;
}

/*
 * Accumulating popcounts: acc = bin_acc(acc, v) for each word, starting from
 * 0; bin_pop(acc, words) is then the total popcount.  With USADA8 the
 * accumulator holds sum(0xCC - byte count) over the bytes (USADA8 against the
 * 0xCC.. mask already in a register instead of a zero register), i.e.
 * 816 * words - popcount.
 */
O2M_FORCE_INLINE uint32_t bin_acc(uint32_t acc, uint32_t v, bin_masks m)
{
#ifdef O2M_BIN_HAVE_USADA8
    return __usada8(bin_bytecounts(v, m), m.c, acc);
#else
    return acc + ((bin_bytecounts(v, m) * 0x01010101u) >> 24);
#endif
}

O2M_FORCE_INLINE int32_t bin_pop(uint32_t acc, int32_t words)
{
#ifdef O2M_BIN_HAVE_USADA8
    return 816 * words - (int32_t)acc;
#else
    (void)words;
    return (int32_t)acc;
#endif
}

/*
 * Nibble-level accumulation (short rows): the nibble counts (0..4) of two
 * words add up without overflow (0..8), so a pair costs one byte-sum step.
 * With USADA8 the byte sum of n is 16 * (high nibbles) + (low nibbles); a
 * second USADA8 of the low nibbles alone separates the two:
 *   hi += sum(0xCC - byte of n), lo += sum(0xCC - byte of (n & 0x0F..)),
 *   popcount = 816 * groups - lo + (lo - hi) / 16.
 */
O2M_FORCE_INLINE uint32_t bin_nibbles(uint32_t v, bin_masks m)
{
    v = v - ((v & m.a) >> 1);
    return (v & 0x33333333u) + ((v & m.c) >> 2);
}

O2M_FORCE_INLINE void bin_group_acc(uint32_t *hi, uint32_t *lo, uint32_t n, bin_masks m)
{
#ifdef O2M_BIN_HAVE_USADA8
    *hi = __usada8(n, m.c, *hi);
    *lo = __usada8(n & 0x0F0F0F0Fu, m.c, *lo);
#else
    (void)m;
    (void)lo;
    n = (n & 0x0F0F0F0Fu) + ((n >> 4) & 0x0F0F0F0Fu);
    *hi += (n * 0x01010101u) >> 24;
#endif
}

O2M_FORCE_INLINE int32_t bin_group_pop(uint32_t hi, uint32_t lo, int32_t groups)
{
#ifdef O2M_BIN_HAVE_USADA8
    return 816 * groups - (int32_t)lo + (int32_t)((lo - hi) >> 4);
#else
    (void)lo;
    (void)groups;
    return (int32_t)hi;
#endif
}

/* Where and how results go. */
typedef struct {
    int32_t bits;       /* 0: float output, 1: packed output */
    const float *aff;   /* float mode: [channels][2] multiplier, bias */
    const int32_t *thr; /* bits mode: [channels][2] direction, threshold */
    float *yf;
    uint32_t *yb;
    int32_t row_stride; /* float: elements between rows; bits: words between rows */
    int32_t col_stride; /* float: elements between channels */
} bin_out;

O2M_FORCE_INLINE void bin_put(const bin_out *o, int32_t row, int32_t col, int32_t dot)
{
    if (o->bits) {
        if (o->thr[2 * col] * dot < o->thr[2 * col + 1]) {
            o->yb[row * o->row_stride + (col >> 5)] |= (uint32_t)1u << (col & 31);
        }
    } else {
        const float v = (float)dot * o->aff[2 * col];
        o->yf[row * o->row_stride + col * o->col_stride] = v + o->aff[2 * col + 1];
    }
}

/* ------------------------------------------------------------------ runs
 * Accumulated popcounts of XORs over `len` consecutive words (bin_acc form).
 * Rows of x are `xs` words apart, weight rows `ws` words apart.
 */
O2M_FORCE_INLINE void bin_run_2x2(const uint32_t *x0, int32_t xs, const uint32_t *w0, int32_t ws,
                                  int32_t len, uint32_t a[4])
{
    const bin_masks mk = bin_masks_make();
    const uint32_t *x1 = x0 + xs;
    const uint32_t *w1 = w0 + ws;
    uint32_t a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3];
    int32_t t;
    for (t = 0; t < len; ++t) {
        const uint32_t u0 = x0[t];
        const uint32_t u1 = x1[t];
        uint32_t v = w0[t];
        a00 = bin_acc(a00, u0 ^ v, mk);
        a10 = bin_acc(a10, u1 ^ v, mk);
        v = w1[t];
        a01 = bin_acc(a01, u0 ^ v, mk);
        a11 = bin_acc(a11, u1 ^ v, mk);
    }
    a[0] = a00;
    a[1] = a01;
    a[2] = a10;
    a[3] = a11;
}

O2M_FORCE_INLINE void bin_run_1x2(const uint32_t *x0, const uint32_t *w0, int32_t ws, int32_t len,
                                  uint32_t a[2])
{
    const bin_masks mk = bin_masks_make();
    const uint32_t *w1 = w0 + ws;
    uint32_t a0 = a[0], a1 = a[1];
    int32_t t;
    for (t = 0; t < len; ++t) {
        const uint32_t u = x0[t];
        a0 = bin_acc(a0, u ^ w0[t], mk);
        a1 = bin_acc(a1, u ^ w1[t], mk);
    }
    a[0] = a0;
    a[1] = a1;
}

O2M_FORCE_INLINE uint32_t bin_run_1x1(const uint32_t *x0, const uint32_t *w0, int32_t len, uint32_t a)
{
    const bin_masks mk = bin_masks_make();
    int32_t t;
    for (t = 0; t < len; ++t) {
        a = bin_acc(a, x0[t] ^ w0[t], mk);
    }
    return a;
}

/* ------------------------------------------------------------------ packing */
void o2m_pack_bits_f32(int32_t outer, int32_t len, int32_t inner, const float *x, uint32_t *y)
{
    const int32_t words = O2M_BIT_WORDS(len);
    int32_t o, i, t, b;
    for (o = 0; o < outer; ++o) {
        const float *xo = x + (size_t)o * len * inner;
        for (i = 0; i < inner; ++i) {
            const float *xi = xo + i;
            for (t = 0; t < words; ++t) {
                const int32_t count = (len - 32 * t) < 32 ? (len - 32 * t) : 32;
                const float *xt = xi + (size_t)32 * t * inner;
                uint32_t word = 0u;
                if (inner == 1) {
                    for (b = 0; b < count; ++b) {
                        word |= (uint32_t)(xt[b] < 0.0f) << b;
                    }
                } else {
                    for (b = 0; b < count; ++b) {
                        word |= (uint32_t)(xt[(size_t)b * inner] < 0.0f) << b;
                    }
                }
                *y++ = word;
            }
        }
    }
}

/* ------------------------------------------------------------------ GEMM */
/*
 * Short rows (WC <= 4 words, a constant after inlining): the activation row
 * stays in registers while every weight row streams past it.
 */
O2M_FORCE_INLINE void bin_gemm_short(const o2m_binary_gemm_params *p, const uint32_t *x,
                                     const uint32_t *w, const bin_out *o, const int32_t WC)
{
    const bin_masks mk = bin_masks_make();
    const int32_t M = p->m, N = p->n, K = p->k;
    const uint32_t *wend = w + (size_t)N * WC;
    int32_t i;
    for (i = 0; i < M; ++i) {
        const uint32_t *x0 = x + (size_t)i * WC;
        const uint32_t u0 = x0[0];
        const uint32_t u1 = WC > 1 ? x0[1] : 0u;
        const uint32_t u2 = WC > 2 ? x0[2] : 0u;
        const uint32_t u3 = WC > 3 ? x0[3] : 0u;
        const uint32_t *wj;
        const float *ap = o->aff;
        const int32_t *tp = o->thr;
        float *yf = o->bits ? NULL : o->yf + (size_t)i * o->row_stride;
        uint32_t *yb = o->bits ? o->yb + (size_t)i * o->row_stride : NULL;
        uint32_t bit = 1u;
        for (wj = w; wj != wend; wj += WC) {
            uint32_t hi = 0u, lo = 0u;
            int32_t dot;
            uint32_t n = bin_nibbles(u0 ^ wj[0], mk);
            if (WC > 1) {
                n += bin_nibbles(u1 ^ wj[1], mk);
            }
            bin_group_acc(&hi, &lo, n, mk);
            if (WC > 2) {
                n = bin_nibbles(u2 ^ wj[2], mk);
                if (WC > 3) {
                    n += bin_nibbles(u3 ^ wj[3], mk);
                }
                bin_group_acc(&hi, &lo, n, mk);
            }
            dot = K - 2 * bin_group_pop(hi, lo, (WC + 1) / 2);
            if (o->bits) {
                if (tp[0] * dot < tp[1]) {
                    *yb |= bit;
                }
                tp += 2;
                bit <<= 1;
                if (bit == 0u) {
                    bit = 1u;
                    ++yb;
                }
            } else {
                *yf++ = (float)dot * ap[0] + ap[1];
                ap += 2;
            }
        }
    }
}

/*
 * Longer rows, float output: the row is cut into chunks of up to 4 words; for
 * each chunk the activation words stay in registers while every weight row
 * streams past (as in bin_gemm_short), and the partial popcounts are kept as
 * int32 in the output row's own storage (copied with memcpy) until the last
 * chunk, after which one pass turns them into float results.
 */
O2M_FORCE_INLINE void bin_chunk(const uint32_t *x0, const uint32_t *w, int32_t ws, int32_t N,
                                const int32_t WC, float *yrow, int32_t first)
{
    const bin_masks mk = bin_masks_make();
    const uint32_t u0 = x0[0];
    const uint32_t u1 = WC > 1 ? x0[1] : 0u;
    const uint32_t u2 = WC > 2 ? x0[2] : 0u;
    const uint32_t u3 = WC > 3 ? x0[3] : 0u;
    const uint32_t *wj = w;
    float *yp = yrow;
    float *yend = yrow + N;
    for (; yp != yend; ++yp, wj += ws) {
        uint32_t hi = 0u, lo = 0u;
        int32_t pop;
        uint32_t n = bin_nibbles(u0 ^ wj[0], mk);
        if (WC > 1) {
            n += bin_nibbles(u1 ^ wj[1], mk);
        }
        bin_group_acc(&hi, &lo, n, mk);
        if (WC > 2) {
            n = bin_nibbles(u2 ^ wj[2], mk);
            if (WC > 3) {
                n += bin_nibbles(u3 ^ wj[3], mk);
            }
            bin_group_acc(&hi, &lo, n, mk);
        }
        pop = bin_group_pop(hi, lo, (WC + 1) / 2);
        if (!first) {
            int32_t prev;
            memcpy(&prev, yp, sizeof prev);
            pop += prev;
        }
        memcpy(yp, &pop, sizeof pop);
    }
}

O2M_FORCE_INLINE int32_t bin_row_1x1(const uint32_t *x0, const uint32_t *w0, int32_t W)
{
    const bin_masks mk = bin_masks_make();
    uint32_t h0 = 0u, l0 = 0u;
    int32_t t;
    for (t = 0; t + 1 < W; t += 2) {
        bin_group_acc(&h0, &l0, bin_nibbles(x0[t] ^ w0[t], mk) + bin_nibbles(x0[t + 1] ^ w0[t + 1], mk),
                      mk);
    }
    if (t < W) {
        bin_group_acc(&h0, &l0, bin_nibbles(x0[t] ^ w0[t], mk), mk);
    }
    return bin_group_pop(h0, l0, (W + 1) / 2);
}

O2M_FORCE_INLINE void bin_gemm_long(const o2m_binary_gemm_params *p, const uint32_t *x,
                                    const uint32_t *w, const bin_out *o)
{
    const int32_t M = p->m, N = p->n, K = p->k;
    const int32_t W = O2M_BIT_WORDS(K);
    int32_t i, j, t;
    for (i = 0; i < M; ++i) {
        const uint32_t *x0 = x + (size_t)i * W;
        if (o->bits) {
            for (j = 0; j < N; ++j) {
                bin_put(o, i, j, K - 2 * bin_row_1x1(x0, w + (size_t)j * W, W));
            }
            continue;
        }
        {
            float *yrow = o->yf + (size_t)i * o->row_stride;
            for (t = 0; t + 3 < W; t += 4) {
                bin_chunk(x0 + t, w + t, W, N, 4, yrow, t == 0);
            }
            switch (W - t) {
            case 1:
                bin_chunk(x0 + t, w + t, W, N, 1, yrow, 0);
                break;
            case 2:
                bin_chunk(x0 + t, w + t, W, N, 2, yrow, 0);
                break;
            case 3:
                bin_chunk(x0 + t, w + t, W, N, 3, yrow, 0);
                break;
            default:
                break;
            }
            for (j = 0; j < N; ++j) {
                int32_t pop;
                memcpy(&pop, yrow + j, sizeof pop);
                yrow[j] = (float)(K - 2 * pop) * o->aff[2 * j] + o->aff[2 * j + 1];
            }
        }
    }
}

/* Untiled reference loop (benchmarks: O2M_BINARY_NO_TILING). */
O2M_FORCE_INLINE void bin_gemm_plain(const o2m_binary_gemm_params *p, const uint32_t *x,
                                     const uint32_t *w, const bin_out *o)
{
    const int32_t M = p->m, N = p->n, K = p->k;
    const int32_t W = O2M_BIT_WORDS(K);
    int32_t i, j;
    for (i = 0; i < M; ++i) {
        for (j = 0; j < N; ++j) {
            const uint32_t a = bin_run_1x1(x + (size_t)i * W, w + (size_t)j * W, W, 0u);
            bin_put(o, i, j, K - 2 * bin_pop(a, W));
        }
    }
}

O2M_FORCE_INLINE void bin_gemm(const o2m_binary_gemm_params *p, const uint32_t *x,
                               const uint32_t *w, const bin_out *o)
{
#ifdef O2M_BINARY_NO_TILING
    bin_gemm_plain(p, x, w, o);
#else
    switch (O2M_BIT_WORDS(p->k)) {
    case 1:
        bin_gemm_short(p, x, w, o, 1);
        break;
    case 2:
        bin_gemm_short(p, x, w, o, 2);
        break;
    case 3:
        bin_gemm_short(p, x, w, o, 3);
        break;
    case 4:
        bin_gemm_short(p, x, w, o, 4);
        break;
    default:
        bin_gemm_long(p, x, w, o);
        break;
    }
#endif
}

void o2m_binary_gemm_f32(const o2m_binary_gemm_params *p, const uint32_t *x, const uint32_t *w,
                         const float *affine, float *y)
{
    bin_out o;
    o.bits = 0;
    o.aff = affine;
    o.thr = NULL;
    o.yf = y;
    o.yb = NULL;
    o.row_stride = p->n;
    o.col_stride = 1;
    bin_gemm(p, x, w, &o);
}

void o2m_binary_gemm_bits(const o2m_binary_gemm_params *p, const uint32_t *x, const uint32_t *w,
                          const int32_t *thr, uint32_t *y)
{
    bin_out o;
    o.bits = 1;
    o.aff = NULL;
    o.thr = thr;
    o.yf = NULL;
    o.yb = y;
    o.row_stride = O2M_BIT_WORDS(p->n);
    o.col_stride = 0;
    memset(y, 0, (size_t)p->m * (size_t)o.row_stride * sizeof(uint32_t));
    bin_gemm(p, x, w, &o);
}

/* ------------------------------------------------------------------ conv */
/* Popcount accumulators of output pixel(s) at (ih0, iw0) against channels m..m+1
 * (two pixels `xs` words apart when `pair`, else one; two channels when `two`). */
O2M_FORCE_INLINE void bin_conv_taps(const o2m_binary_conv_params *p, const uint32_t *xn,
                                    const uint32_t *wm, int32_t ih0, int32_t iw0, int32_t ilo,
                                    int32_t ihi, int32_t jlo, int32_t jhi, int32_t pair, int32_t two,
                                    uint32_t a[4])
{
    const int32_t cw = O2M_BIT_WORDS(p->c_in);
    const int32_t ws = p->k_h * p->k_w * cw;
    const int32_t xs = p->stride_w * cw;
    const int32_t run = p->dil_w == 1 ? (jhi - jlo) * cw : cw;
    int32_t i, j;
    for (i = ilo; i < ihi; ++i) {
        const uint32_t *xr = xn + (size_t)(ih0 + i * p->dil_h) * p->w_in * cw;
        const uint32_t *wr = wm + (size_t)i * p->k_w * cw;
        for (j = jlo; j < jhi; j += (p->dil_w == 1 ? jhi - jlo : 1)) {
            const uint32_t *xt = xr + (size_t)(iw0 + j * p->dil_w) * cw;
            const uint32_t *wt = wr + (size_t)j * cw;
#ifndef O2M_BINARY_NO_TILING
            if (pair && two) {
                bin_run_2x2(xt, xs, wt, ws, run, a);
            } else if (two) {
                bin_run_1x2(xt, wt, ws, run, a);
            } else
#endif
            {
                a[0] = bin_run_1x1(xt, wt, run, a[0]);
                if (two) {
                    a[1] = bin_run_1x1(xt, wt + ws, run, a[1]);
                }
                if (pair) {
                    a[2] = bin_run_1x1(xt + xs, wt, run, a[2]);
                    if (two) {
                        a[3] = bin_run_1x1(xt + xs, wt + ws, run, a[3]);
                    }
                }
            }
        }
    }
}

O2M_FORCE_INLINE void bin_conv(const o2m_binary_conv_params *p, const uint32_t *x,
                               const uint32_t *w, bin_out *o)
{
    const int32_t C = p->c_in, M = p->c_out;
    const int32_t cw = O2M_BIT_WORDS(C);
    const int32_t KH = p->k_h, KW = p->k_w;
    const int32_t ws = KH * KW * cw; /* words between output channels in w */
    const int32_t pixels = p->h_out * p->w_out;
    float *yf0 = o->yf;
    uint32_t *yb0 = o->yb;
    int32_t n, oh, ow, m;

    for (n = 0; n < p->n; ++n) {
        const uint32_t *xn = x + (size_t)n * p->h_in * p->w_in * cw;
        if (o->bits) {
            o->yb = yb0 + (size_t)n * pixels * o->row_stride;
        } else {
            o->yf = yf0 + (size_t)n * M * pixels;
        }
        for (oh = 0; oh < p->h_out; ++oh) {
            const int32_t ih0 = oh * p->stride_h - p->pad_top;
            int32_t ilo, ihi;
            o2m__tap_range(ih0, p->h_in, KH, p->dil_h, &ilo, &ihi);
            for (ow = 0; ow < p->w_out; ow += 1) {
                const int32_t iw0 = ow * p->stride_w - p->pad_left;
                const int32_t pix = oh * p->w_out + ow;
                int32_t jlo, jhi, taps, pair = 0, words;
                o2m__tap_range(iw0, p->w_in, KW, p->dil_w, &jlo, &jhi);
                if (ihi <= ilo || jhi <= jlo) {
                    ilo = ihi = jlo = jhi = 0;
                }
                taps = (ihi - ilo) * (jhi - jlo);
                words = taps * cw;
#ifndef O2M_BINARY_NO_TILING
                if (ow + 1 < p->w_out && taps > 0) { /* next pixel: same taps? then a pair */
                    int32_t jlo2, jhi2;
                    o2m__tap_range(iw0 + p->stride_w, p->w_in, KW, p->dil_w, &jlo2, &jhi2);
                    pair = jlo2 == jlo && jhi2 == jhi;
                }
#endif
                for (m = 0; m < M; m += 2) {
                    const int32_t two = m + 1 < M;
                    uint32_t a[4] = {0u, 0u, 0u, 0u};
                    bin_conv_taps(p, xn, w + (size_t)m * ws, ih0, iw0, ilo, ihi, jlo, jhi, pair,
                                  two, a);
                    bin_put(o, pix, m, taps * C - 2 * bin_pop(a[0], words));
                    if (two) {
                        bin_put(o, pix, m + 1, taps * C - 2 * bin_pop(a[1], words));
                    }
                    if (pair) {
                        bin_put(o, pix + 1, m, taps * C - 2 * bin_pop(a[2], words));
                        if (two) {
                            bin_put(o, pix + 1, m + 1, taps * C - 2 * bin_pop(a[3], words));
                        }
                    }
                }
                ow += pair;
            }
        }
    }
}

void o2m_binary_conv_f32(const o2m_binary_conv_params *p, const uint32_t *x, const uint32_t *w,
                         const float *affine, float *y)
{
    bin_out o;
    o.bits = 0;
    o.aff = affine;
    o.thr = NULL;
    o.yf = y;
    o.yb = NULL;
    o.row_stride = 1;
    o.col_stride = p->h_out * p->w_out;
    bin_conv(p, x, w, &o);
}

void o2m_binary_conv_bits(const o2m_binary_conv_params *p, const uint32_t *x, const uint32_t *w,
                          const int32_t *thr, uint32_t *y)
{
    bin_out o;
    o.bits = 1;
    o.aff = NULL;
    o.thr = thr;
    o.yf = NULL;
    o.yb = y;
    o.row_stride = O2M_BIT_WORDS(p->c_out);
    o.col_stride = 0;
    memset(y, 0, (size_t)p->n * p->h_out * p->w_out * (size_t)o.row_stride * sizeof(uint32_t));
    bin_conv(p, x, w, &o);
}
