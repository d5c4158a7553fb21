/*
 * o2m_adder.c - adder (L1-distance) kernels.  See o2m_adder.h.
 *
 * One GEMM core per element type computes a tile of 2 rows x 4 output
 * channels (each x value is compared with 4 weights, each weight with 2 x
 * values), with 1 x 4, 2 x 1 and 1 x 1 edges; results go through an output
 * descriptor with row and channel strides, so the conv reuses the core on
 * im2col rows and writes NCHW directly.
 *
 * Defining O2M_ADDER_NO_TILING at compile time keeps only the 1 x 1 paths
 * (for benchmarks); results are identical.
 */
#include <string.h>

#include "o2m_adder.h"
#include "o2m_internal.h"

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define O2M_ADD_HAVE_USADA8 1
#endif

#ifdef O2M_ADDER_NO_TILING
#define ADD_TILE 0
#else
#define ADD_TILE 1
#endif

typedef struct {
    const float *scale; /* may be NULL */
    const float *bias;  /* may be NULL */
    float *y;
    int32_t row_stride; /* elements between rows of y */
    int32_t col_stride; /* elements between channels of y */
} add_out;

O2M_FORCE_INLINE void add_put(const add_out *o, int32_t row, int32_t col, float neg)
{
    float v = neg;
    if (o->scale) {
        v = v * o->scale[col];
    }
    if (o->bias) {
        v = v + o->bias[col];
    }
    o->y[row * o->row_stride + col * o->col_stride] = v;
}

/* ------------------------------------------------------------------ float32 */
O2M_FORCE_INLINE void add_gemm_f32(int32_t M, int32_t N, int32_t K, const float *x, const float *w,
                                   const add_out *o)
{
    int32_t i = 0, j, k;
#if ADD_TILE
    for (; i + 1 < M; i += 2) {
        const float *x0 = x + (size_t)i * K;
        const float *x1 = x0 + K;
        for (j = 0; j + 3 < N; j += 4) {
            const float *w0 = w + (size_t)j * K;
            const float *w1 = w0 + K;
            const float *w2 = w1 + K;
            const float *w3 = w2 + K;
            float s00 = 0.0f, s01 = 0.0f, s02 = 0.0f, s03 = 0.0f;
            float s10 = 0.0f, s11 = 0.0f, s12 = 0.0f, s13 = 0.0f;
            for (k = 0; k < K; ++k) {
                const float u0 = x0[k];
                const float u1 = x1[k];
                float v = w0[k];
                s00 += fabsf(u0 - v);
                s10 += fabsf(u1 - v);
                v = w1[k];
                s01 += fabsf(u0 - v);
                s11 += fabsf(u1 - v);
                v = w2[k];
                s02 += fabsf(u0 - v);
                s12 += fabsf(u1 - v);
                v = w3[k];
                s03 += fabsf(u0 - v);
                s13 += fabsf(u1 - v);
            }
            add_put(o, i, j, -s00);
            add_put(o, i, j + 1, -s01);
            add_put(o, i, j + 2, -s02);
            add_put(o, i, j + 3, -s03);
            add_put(o, i + 1, j, -s10);
            add_put(o, i + 1, j + 1, -s11);
            add_put(o, i + 1, j + 2, -s12);
            add_put(o, i + 1, j + 3, -s13);
        }
        for (; j < N; ++j) {
            const float *w0 = w + (size_t)j * K;
            float s0 = 0.0f, s1 = 0.0f;
            for (k = 0; k < K; ++k) {
                const float v = w0[k];
                s0 += fabsf(x0[k] - v);
                s1 += fabsf(x1[k] - v);
            }
            add_put(o, i, j, -s0);
            add_put(o, i + 1, j, -s1);
        }
    }
#endif
    for (; i < M; ++i) {
        const float *x0 = x + (size_t)i * K;
        j = 0;
#if ADD_TILE
        for (; j + 3 < N; j += 4) {
            const float *w0 = w + (size_t)j * K;
            const float *w1 = w0 + K;
            const float *w2 = w1 + K;
            const float *w3 = w2 + K;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (k = 0; k < K; ++k) {
                const float u = x0[k];
                s0 += fabsf(u - w0[k]);
                s1 += fabsf(u - w1[k]);
                s2 += fabsf(u - w2[k]);
                s3 += fabsf(u - w3[k]);
            }
            add_put(o, i, j, -s0);
            add_put(o, i, j + 1, -s1);
            add_put(o, i, j + 2, -s2);
            add_put(o, i, j + 3, -s3);
        }
#endif
        for (; j < N; ++j) {
            const float *w0 = w + (size_t)j * K;
            float s = 0.0f;
            for (k = 0; k < K; ++k) {
                s += fabsf(x0[k] - w0[k]);
            }
            add_put(o, i, j, -s);
        }
    }
}

/* ------------------------------------------------------------------ int8 */
#ifdef O2M_ADD_HAVE_USADA8
/* Four consecutive int8 as uint8 lanes (XOR 0x80 keeps |a - b|); unaligned is fine. */
O2M_FORCE_INLINE uint32_t add_ld4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v ^ 0x80808080u;
}
#endif

O2M_FORCE_INLINE uint32_t add_absdiff(int8_t a, int8_t b)
{
    const int32_t d = (int32_t)a - (int32_t)b;
    return (uint32_t)(d < 0 ? -d : d);
}

/* sum_k |x0[k] - w0[k]| for k in [k0, K) (the scalar tail) */
O2M_FORCE_INLINE uint32_t add_tail_s8(const int8_t *x0, const int8_t *w0, int32_t k0, int32_t K,
                                      uint32_t a)
{
    int32_t k;
    for (k = k0; k < K; ++k) {
        a += add_absdiff(x0[k], w0[k]);
    }
    return a;
}

O2M_FORCE_INLINE void add_gemm_s8(int32_t M, int32_t N, int32_t K, const int8_t *x, const int8_t *w,
                                  const add_out *o)
{
    int32_t i = 0, j, k;
#ifdef O2M_ADD_HAVE_USADA8
    const int32_t K4 = K & ~3;
#else
    const int32_t K4 = 0;
#endif
    (void)k;
#if ADD_TILE
    for (; i + 1 < M; i += 2) {
        const int8_t *x0 = x + (size_t)i * K;
        const int8_t *x1 = x0 + K;
        for (j = 0; j + 3 < N; j += 4) {
            const int8_t *w0 = w + (size_t)j * K;
            const int8_t *w1 = w0 + K;
            const int8_t *w2 = w1 + K;
            const int8_t *w3 = w2 + K;
            uint32_t s00 = 0u, s01 = 0u, s02 = 0u, s03 = 0u;
            uint32_t s10 = 0u, s11 = 0u, s12 = 0u, s13 = 0u;
#ifdef O2M_ADD_HAVE_USADA8
            for (k = 0; k < K4; k += 4) {
                const uint32_t u0 = add_ld4(x0 + k);
                const uint32_t u1 = add_ld4(x1 + k);
                uint32_t v = add_ld4(w0 + k);
                s00 = __usada8(u0, v, s00);
                s10 = __usada8(u1, v, s10);
                v = add_ld4(w1 + k);
                s01 = __usada8(u0, v, s01);
                s11 = __usada8(u1, v, s11);
                v = add_ld4(w2 + k);
                s02 = __usada8(u0, v, s02);
                s12 = __usada8(u1, v, s12);
                v = add_ld4(w3 + k);
                s03 = __usada8(u0, v, s03);
                s13 = __usada8(u1, v, s13);
            }
#endif
            s00 = add_tail_s8(x0, w0, K4, K, s00);
            s01 = add_tail_s8(x0, w1, K4, K, s01);
            s02 = add_tail_s8(x0, w2, K4, K, s02);
            s03 = add_tail_s8(x0, w3, K4, K, s03);
            s10 = add_tail_s8(x1, w0, K4, K, s10);
            s11 = add_tail_s8(x1, w1, K4, K, s11);
            s12 = add_tail_s8(x1, w2, K4, K, s12);
            s13 = add_tail_s8(x1, w3, K4, K, s13);
            add_put(o, i, j, (float)-(int32_t)s00);
            add_put(o, i, j + 1, (float)-(int32_t)s01);
            add_put(o, i, j + 2, (float)-(int32_t)s02);
            add_put(o, i, j + 3, (float)-(int32_t)s03);
            add_put(o, i + 1, j, (float)-(int32_t)s10);
            add_put(o, i + 1, j + 1, (float)-(int32_t)s11);
            add_put(o, i + 1, j + 2, (float)-(int32_t)s12);
            add_put(o, i + 1, j + 3, (float)-(int32_t)s13);
        }
        for (; j < N; ++j) {
            const int8_t *w0 = w + (size_t)j * K;
            uint32_t s0 = 0u, s1 = 0u;
#ifdef O2M_ADD_HAVE_USADA8
            for (k = 0; k < K4; k += 4) {
                const uint32_t v = add_ld4(w0 + k);
                s0 = __usada8(add_ld4(x0 + k), v, s0);
                s1 = __usada8(add_ld4(x1 + k), v, s1);
            }
#endif
            s0 = add_tail_s8(x0, w0, K4, K, s0);
            s1 = add_tail_s8(x1, w0, K4, K, s1);
            add_put(o, i, j, (float)-(int32_t)s0);
            add_put(o, i + 1, j, (float)-(int32_t)s1);
        }
    }
#endif
    for (; i < M; ++i) {
        const int8_t *x0 = x + (size_t)i * K;
        j = 0;
#if ADD_TILE
        for (; j + 3 < N; j += 4) {
            const int8_t *w0 = w + (size_t)j * K;
            const int8_t *w1 = w0 + K;
            const int8_t *w2 = w1 + K;
            const int8_t *w3 = w2 + K;
            uint32_t s0 = 0u, s1 = 0u, s2 = 0u, s3 = 0u;
#ifdef O2M_ADD_HAVE_USADA8
            for (k = 0; k < K4; k += 4) {
                const uint32_t u = add_ld4(x0 + k);
                s0 = __usada8(u, add_ld4(w0 + k), s0);
                s1 = __usada8(u, add_ld4(w1 + k), s1);
                s2 = __usada8(u, add_ld4(w2 + k), s2);
                s3 = __usada8(u, add_ld4(w3 + k), s3);
            }
#endif
            s0 = add_tail_s8(x0, w0, K4, K, s0);
            s1 = add_tail_s8(x0, w1, K4, K, s1);
            s2 = add_tail_s8(x0, w2, K4, K, s2);
            s3 = add_tail_s8(x0, w3, K4, K, s3);
            add_put(o, i, j, (float)-(int32_t)s0);
            add_put(o, i, j + 1, (float)-(int32_t)s1);
            add_put(o, i, j + 2, (float)-(int32_t)s2);
            add_put(o, i, j + 3, (float)-(int32_t)s3);
        }
#endif
        for (; j < N; ++j) {
            const int8_t *w0 = w + (size_t)j * K;
            uint32_t s = 0u;
#ifdef O2M_ADD_HAVE_USADA8
            for (k = 0; k < K4; k += 4) {
                s = __usada8(add_ld4(x0 + k), add_ld4(w0 + k), s);
            }
#endif
            s = add_tail_s8(x0, w0, K4, K, s);
            add_put(o, i, j, (float)-(int32_t)s);
        }
    }
}

/* ------------------------------------------------------------------ API */
void o2m_adder_gemm_f32(const o2m_adder_gemm_params *p, const float *x, const float *w,
                        const float *scale, const float *bias, float *y)
{
    add_out o;
    o.scale = scale;
    o.bias = bias;
    o.y = y;
    o.row_stride = p->n;
    o.col_stride = 1;
    add_gemm_f32(p->m, p->n, p->k, x, w, &o);
}

void o2m_adder_gemm_s8(const o2m_adder_gemm_params *p, const int8_t *x, const int8_t *w,
                       const float *scale, const float *bias, float *y)
{
    add_out o;
    o.scale = scale;
    o.bias = bias;
    o.y = y;
    o.row_stride = p->n;
    o.col_stride = 1;
    add_gemm_s8(p->m, p->n, p->k, x, w, &o);
}

/* The receptive field of output pixel `pix` as one row in (c, i, j) order. */
#define ADD_IM2COL(T, PADV)                                                                      \
    do {                                                                                         \
        const int32_t oh_ = pix / p->w_out;                                                      \
        const int32_t ih0_ = oh_ * p->stride_h - p->pad_top;                                     \
        const int32_t iw0_ = (pix - oh_ * p->w_out) * p->stride_w - p->pad_left;                 \
        T *r_ = row;                                                                             \
        int32_t c_, i_, j_;                                                                      \
        for (c_ = 0; c_ < p->c_in; ++c_) {                                                       \
            const T *xc_ = xn + (size_t)c_ * p->h_in * p->w_in;                                  \
            for (i_ = 0; i_ < p->k_h; ++i_) {                                                    \
                const int32_t ih_ = ih0_ + i_ * p->dil_h;                                        \
                if (ih_ < 0 || ih_ >= p->h_in) {                                                 \
                    for (j_ = 0; j_ < p->k_w; ++j_) {                                            \
                        *r_++ = (PADV);                                                          \
                    }                                                                            \
                    continue;                                                                    \
                }                                                                                \
                for (j_ = 0; j_ < p->k_w; ++j_) {                                                \
                    const int32_t iw_ = iw0_ + j_ * p->dil_w;                                    \
                    *r_++ = (iw_ < 0 || iw_ >= p->w_in) ? (PADV) : xc_[ih_ * p->w_in + iw_];     \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    } while (0)

void o2m_adder_conv_f32(const o2m_adder_conv_params *p, const float *x, const float *w,
                        const float *scale, const float *bias, float *scratch, float *y)
{
    const int32_t K = p->c_in * p->k_h * p->k_w;
    const int32_t pixels = p->h_out * p->w_out;
    int32_t n, pix0;
    add_out o;
    o.scale = scale;
    o.bias = bias;
    o.row_stride = 1;
    o.col_stride = pixels;
    for (n = 0; n < p->n; ++n) {
        const float *xn = x + (size_t)n * p->c_in * p->h_in * p->w_in;
        for (pix0 = 0; pix0 < pixels; pix0 += 2) {
            const int32_t rows = pixels - pix0 < 2 ? pixels - pix0 : 2;
            int32_t r;
            for (r = 0; r < rows; ++r) {
                const int32_t pix = pix0 + r;
                float *row = scratch + (size_t)r * K;
                ADD_IM2COL(float, 0.0f);
            }
            o.y = y + (size_t)n * p->c_out * pixels + pix0;
            add_gemm_f32(rows, p->c_out, K, scratch, w, &o);
        }
    }
}

void o2m_adder_conv_s8(const o2m_adder_conv_params *p, const int8_t *x, const int8_t *w,
                       const float *scale, const float *bias, int8_t *scratch, float *y)
{
    const int32_t K = p->c_in * p->k_h * p->k_w;
    const int32_t pixels = p->h_out * p->w_out;
    const int8_t padv = (int8_t)p->pad;
    int32_t n, pix0;
    add_out o;
    o.scale = scale;
    o.bias = bias;
    o.row_stride = 1;
    o.col_stride = pixels;
    for (n = 0; n < p->n; ++n) {
        const int8_t *xn = x + (size_t)n * p->c_in * p->h_in * p->w_in;
        for (pix0 = 0; pix0 < pixels; pix0 += 2) {
            const int32_t rows = pixels - pix0 < 2 ? pixels - pix0 : 2;
            int32_t r;
            for (r = 0; r < rows; ++r) {
                const int32_t pix = pix0 + r;
                int8_t *row = scratch + (size_t)r * K;
                ADD_IM2COL(int8_t, padv);
            }
            o.y = y + (size_t)n * p->c_out * pixels + pix0;
            add_gemm_s8(rows, p->c_out, K, scratch, w, &o);
        }
    }
}
