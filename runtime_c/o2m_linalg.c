/*
 * o2m_linalg.c - matrix products, float32.  See o2m_linalg.h.
 *
 * One core computes y = clamp(alpha * (A B) + beta * C) for one matrix with
 * arbitrary element strides on A and B (this covers transposes without a
 * copy), tiled 2 rows x 4 columns so that each loaded value feeds 2 or 4
 * multiply-adds.  Contiguous B rows (the usual case) get their own inlined
 * copy of the tile so that the four B loads use immediate offsets.
 */
#include "o2m_internal.h"
#include "o2m_linalg.h"

typedef struct {
    int32_t m, n, k;
    int32_t a_rs, a_cs; /* A[i][k] = a[i*a_rs + k*a_cs] */
    int32_t b_rs, b_cs; /* B[k][j] = b[k*b_rs + j*b_cs] */
    float alpha, beta;
    int32_t c_rs, c_cs; /* C[i][j] = c[i*c_rs + j*c_cs] */
    float lo, hi;       /* activation clamp */
} mm_desc;

static inline float mm_finish(const mm_desc *d, float acc, const float *restrict c, int32_t i,
                              int32_t j)
{
    float v = d->alpha * acc;
    if (c) {
        v += d->beta * c[i * d->c_rs + j * d->c_cs];
    }
    return o2m__clamp(v, d->lo, d->hi);
}

/* The whole matrix; bcs is d->b_cs, passed separately so that a constant 1
 * can be propagated into an inlined copy. */
O2M_FORCE_INLINE void mm_body(const mm_desc *d, const float *restrict a, const float *restrict b,
                           const float *restrict c, float *restrict y, int32_t bcs)
{
    const int32_t M = d->m, N = d->n, K = d->k;
    const int32_t acs = d->a_cs, brs = d->b_rs;
    int32_t i, j, kk;

    for (i = 0; i + 1 < M; i += 2) {
        const float *ar0 = a + (size_t)i * d->a_rs;
        const float *ar1 = ar0 + d->a_rs;
        float *y0 = y + (size_t)i * N;
        float *y1 = y0 + N;
        for (j = 0; j + 3 < N; j += 4) {
            float s00 = 0.0f, s01 = 0.0f, s02 = 0.0f, s03 = 0.0f;
            float s10 = 0.0f, s11 = 0.0f, s12 = 0.0f, s13 = 0.0f;
            const float *pa0 = ar0;
            const float *pa1 = ar1;
            const float *pb = b + (size_t)j * bcs;
            for (kk = 0; kk < K; ++kk) {
                const float x0 = *pa0;
                const float x1 = *pa1;
                const float b0 = pb[0];
                const float b1 = pb[bcs];
                const float b2 = pb[2 * bcs];
                const float b3 = pb[3 * bcs];
                s00 += x0 * b0;
                s01 += x0 * b1;
                s02 += x0 * b2;
                s03 += x0 * b3;
                s10 += x1 * b0;
                s11 += x1 * b1;
                s12 += x1 * b2;
                s13 += x1 * b3;
                pa0 += acs;
                pa1 += acs;
                pb += brs;
            }
            y0[j] = mm_finish(d, s00, c, i, j);
            y0[j + 1] = mm_finish(d, s01, c, i, j + 1);
            y0[j + 2] = mm_finish(d, s02, c, i, j + 2);
            y0[j + 3] = mm_finish(d, s03, c, i, j + 3);
            y1[j] = mm_finish(d, s10, c, i + 1, j);
            y1[j + 1] = mm_finish(d, s11, c, i + 1, j + 1);
            y1[j + 2] = mm_finish(d, s12, c, i + 1, j + 2);
            y1[j + 3] = mm_finish(d, s13, c, i + 1, j + 3);
        }
        for (; j < N; ++j) {
            float s0 = 0.0f, s1 = 0.0f;
            const float *pa0 = ar0;
            const float *pa1 = ar1;
            const float *pb = b + (size_t)j * bcs;
            for (kk = 0; kk < K; ++kk) {
                const float bv = *pb;
                s0 += *pa0 * bv;
                s1 += *pa1 * bv;
                pa0 += acs;
                pa1 += acs;
                pb += brs;
            }
            y0[j] = mm_finish(d, s0, c, i, j);
            y1[j] = mm_finish(d, s1, c, i + 1, j);
        }
    }
    if (i < M) { /* odd row count: the last row alone */
        const float *ar0 = a + (size_t)i * d->a_rs;
        float *y0 = y + (size_t)i * N;
        for (j = 0; j + 3 < N; j += 4) {
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            const float *pa0 = ar0;
            const float *pb = b + (size_t)j * bcs;
            for (kk = 0; kk < K; ++kk) {
                const float x0 = *pa0;
                s0 += x0 * pb[0];
                s1 += x0 * pb[bcs];
                s2 += x0 * pb[2 * bcs];
                s3 += x0 * pb[3 * bcs];
                pa0 += acs;
                pb += brs;
            }
            y0[j] = mm_finish(d, s0, c, i, j);
            y0[j + 1] = mm_finish(d, s1, c, i, j + 1);
            y0[j + 2] = mm_finish(d, s2, c, i, j + 2);
            y0[j + 3] = mm_finish(d, s3, c, i, j + 3);
        }
        for (; j < N; ++j) {
            float s0 = 0.0f;
            const float *pa0 = ar0;
            const float *pb = b + (size_t)j * bcs;
            for (kk = 0; kk < K; ++kk) {
                s0 += *pa0 * *pb;
                pa0 += acs;
                pb += brs;
            }
            y0[j] = mm_finish(d, s0, c, i, j);
        }
    }
}

static void mm_core(const mm_desc *d, const float *restrict a, const float *restrict b,
                    const float *restrict c, float *restrict y)
{
    if (d->b_cs == 1) {
        mm_body(d, a, b, c, y, 1);
    } else {
        mm_body(d, a, b, c, y, d->b_cs);
    }
}

void o2m_matmul_f32(const o2m_matmul_params *p, const float *restrict a, const float *restrict b,
                    const float *restrict bias, float *restrict y)
{
    int32_t idx[O2M_MATMUL_MAX_BATCH] = {0, 0, 0, 0};
    const int32_t rank = p->batch_rank;
    const size_t out_step = (size_t)p->m * p->n;
    int32_t total = 1;
    int32_t bt, d;
    mm_desc desc;

    desc.m = p->m;
    desc.n = p->n;
    desc.k = p->k;
    desc.a_rs = p->k;
    desc.a_cs = 1;
    desc.b_rs = p->n;
    desc.b_cs = 1;
    desc.alpha = 1.0f;
    desc.beta = 1.0f;
    desc.c_rs = 0;
    desc.c_cs = 1;
    o2m__act_bounds(&p->act, &desc.lo, &desc.hi);

    for (d = 0; d < rank; ++d) {
        total *= p->batch_dims[d];
    }
    for (bt = 0; bt < total; ++bt) {
        ptrdiff_t a_off = 0, b_off = 0;
        for (d = 0; d < rank; ++d) {
            a_off += (ptrdiff_t)idx[d] * p->a_strides[d];
            b_off += (ptrdiff_t)idx[d] * p->b_strides[d];
        }
        mm_core(&desc, a + a_off, b + b_off, bias, y + (size_t)bt * out_step);
        for (d = rank - 1; d >= 0; --d) { /* next batch index, last dim fastest */
            if (++idx[d] < p->batch_dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}

void o2m_gemm_f32(const o2m_gemm_params *p, const float *restrict a, const float *restrict b,
                  const float *restrict c, float *restrict y)
{
    mm_desc desc;
    desc.m = p->m;
    desc.n = p->n;
    desc.k = p->k;
    if (p->trans_a) { /* stored [k, m] */
        desc.a_rs = 1;
        desc.a_cs = p->m;
    } else {
        desc.a_rs = p->k;
        desc.a_cs = 1;
    }
    if (p->trans_b) { /* stored [n, k] */
        desc.b_rs = 1;
        desc.b_cs = p->k;
    } else {
        desc.b_rs = p->n;
        desc.b_cs = 1;
    }
    desc.alpha = p->alpha;
    desc.beta = p->beta;
    desc.c_rs = p->c_stride_m;
    desc.c_cs = p->c_stride_n;
    o2m__act_bounds(&p->act, &desc.lo, &desc.hi);
    mm_core(&desc, a, b, c, y);
}
