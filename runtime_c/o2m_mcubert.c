/*
 * o2m_mcubert.c - MCUBERT kernels (float32).  See o2m_mcubert.h.
 *
 * One small matrix-product core (mc_gemm) serves every step: it sums over k in
 * ascending order, either from 0.0f or continuing the value already in y, so
 * splitting a product over k into consecutive pieces (heads of the output
 * projection, inner tiles of the FFN, key chunks of P V) gives the same bits
 * as one product.
 */
#include "o2m_internal.h"
#include "o2m_mcubert.h"

/* One row of y: y[j] (+)= sum_k a[k*acs] * b[k*brs + j*bcs] */
O2M_FORCE_INLINE void mc_row(int32_t n, int32_t k, const float *a, int32_t acs, const float *b,
                             int32_t brs, int32_t bcs, float *y, int32_t accumulate)
{
    int32_t j, kk;
    for (j = 0; j + 3 < n; j += 4) {
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        const float *pa = a;
        const float *pb = b + (size_t)j * bcs;
        if (accumulate) {
            s0 = y[j];
            s1 = y[j + 1];
            s2 = y[j + 2];
            s3 = y[j + 3];
        }
        for (kk = 0; kk < k; ++kk) {
            const float v = *pa;
            s0 += v * pb[0];
            s1 += v * pb[bcs];
            s2 += v * pb[2 * bcs];
            s3 += v * pb[3 * bcs];
            pa += acs;
            pb += brs;
        }
        y[j] = s0;
        y[j + 1] = s1;
        y[j + 2] = s2;
        y[j + 3] = s3;
    }
    for (; j < n; ++j) {
        float acc = accumulate ? y[j] : 0.0f;
        const float *pa = a;
        const float *pb = b + (size_t)j * bcs;
        for (kk = 0; kk < k; ++kk) {
            acc += *pa * *pb;
            pa += acs;
            pb += brs;
        }
        y[j] = acc;
    }
}

/* The whole product, 2 rows x 4 columns at a time (each loaded value feeds 2 or 4
 * multiply-adds); bcs is a parameter so that a constant 1 folds into an inlined copy. */
O2M_FORCE_INLINE void mc_gemm_body(int32_t m, int32_t n, int32_t k, const float *a, int32_t ars,
                                   int32_t acs, const float *b, int32_t brs, int32_t bcs, float *y,
                                   int32_t yrs, int32_t accumulate)
{
    int32_t i, j, kk;
    for (i = 0; i + 1 < m; i += 2) {
        const float *a0 = a + (size_t)i * ars;
        const float *a1 = a0 + ars;
        float *y0 = y + (size_t)i * yrs;
        float *y1 = y0 + yrs;
        for (j = 0; j + 3 < n; j += 4) {
            float s00 = 0.0f, s01 = 0.0f, s02 = 0.0f, s03 = 0.0f;
            float s10 = 0.0f, s11 = 0.0f, s12 = 0.0f, s13 = 0.0f;
            const float *pa0 = a0;
            const float *pa1 = a1;
            const float *pb = b + (size_t)j * bcs;
            if (accumulate) {
                s00 = y0[j];
                s01 = y0[j + 1];
                s02 = y0[j + 2];
                s03 = y0[j + 3];
                s10 = y1[j];
                s11 = y1[j + 1];
                s12 = y1[j + 2];
                s13 = y1[j + 3];
            }
            for (kk = 0; kk < k; ++kk) {
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
            y0[j] = s00;
            y0[j + 1] = s01;
            y0[j + 2] = s02;
            y0[j + 3] = s03;
            y1[j] = s10;
            y1[j + 1] = s11;
            y1[j + 2] = s12;
            y1[j + 3] = s13;
        }
        if (j < n) {
            mc_row(n - j, k, a0, acs, b + (size_t)j * bcs, brs, bcs, y0 + j, accumulate);
            mc_row(n - j, k, a1, acs, b + (size_t)j * bcs, brs, bcs, y1 + j, accumulate);
        }
    }
    if (i < m) {
        mc_row(n, k, a + (size_t)i * ars, acs, b, brs, bcs, y + (size_t)i * yrs, accumulate);
    }
}

/* y[i*yrs + j] = (accumulate ? y[i*yrs + j] : 0) + sum_k a[i*ars + k*acs] * b[k*brs + j*bcs] */
static void mc_gemm(int32_t m, int32_t n, int32_t k, const float *a, int32_t ars, int32_t acs,
                    const float *b, int32_t brs, int32_t bcs, float *y, int32_t yrs,
                    int32_t accumulate)
{
    if (bcs == 1) {
        mc_gemm_body(m, n, k, a, ars, acs, b, brs, 1, y, yrs, accumulate);
    } else {
        mc_gemm_body(m, n, k, a, ars, acs, b, brs, bcs, y, yrs, accumulate);
    }
}

/* ----- clustered low-rank embedding ------------------------------------------ */

static void clemb_row(const o2m_clemb_params *p, int64_t id, const uint8_t *map,
                      const int32_t *meta, const float *a, const float *pm, float *y)
{
    const int32_t dim = p->dim;
    int32_t pos, lo, hi, d, k, b;
    const int32_t *m;
    const float *coef;
    const float *mean;
    const float *basis;
    if (id < 0) {
        id += p->vocab;
    }
    if (id < 0 || id >= p->vocab) {
        for (d = 0; d < dim; ++d) {
            y[d] = 0.0f;
        }
        return;
    }
    if (p->map_bytes > 0) {
        const uint8_t *e = map + (size_t)id * (size_t)p->map_bytes;
        uint32_t v = 0;
        for (b = p->map_bytes - 1; b >= 0; --b) {
            v = (v << 8) | e[b];
        }
        pos = (int32_t)v;
    } else {
        pos = (int32_t)id;
    }
    /* the last cluster whose start is <= pos */
    lo = 0;
    hi = p->clusters - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2;
        if (meta[(size_t)mid * 5] <= pos) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    m = meta + (size_t)lo * 5;
    coef = a + (size_t)m[3] + (size_t)(pos - m[0]) * (size_t)m[2];
    mean = pm + (size_t)m[4];
    basis = mean + dim;
    for (d = 0; d < dim; ++d) {
        y[d] = 0.0f;
    }
    for (k = 0; k < m[2]; ++k) {
        const float c = coef[k];
        const float *row = basis + (size_t)k * dim;
        for (d = 0; d < dim; ++d) {
            y[d] += c * row[d];
        }
    }
    for (d = 0; d < dim; ++d) {
        y[d] += mean[d];
    }
}

void o2m_clustered_embedding_s64(const o2m_clemb_params *p, int32_t n, const int64_t *ids,
                                 const uint8_t *map, const int32_t *meta, const float *a,
                                 const float *pm, float *y)
{
    int32_t t;
    for (t = 0; t < n; ++t) {
        clemb_row(p, ids[t], map, meta, a, pm, y + (size_t)t * p->dim);
    }
}

void o2m_clustered_embedding_s32(const o2m_clemb_params *p, int32_t n, const int32_t *ids,
                                 const uint8_t *map, const int32_t *meta, const float *a,
                                 const float *pm, float *y)
{
    int32_t t;
    for (t = 0; t < n; ++t) {
        clemb_row(p, (int64_t)ids[t], map, meta, a, pm, y + (size_t)t * p->dim);
    }
}

/* ----- clustered embedding, int8 factors ------------------------------------------- */

static void clemb8_row(const o2m_clemb_params *p, int64_t id, const uint8_t *map,
                       const int32_t *meta, const int8_t *a, const int8_t *pm,
                       const float *scales, int32_t row_scales, float *y)
{
    const int32_t dim = p->dim;
    int32_t pos, lo, hi, d, k, b;
    const int32_t *m;
    const int8_t *coef;
    const int8_t *mean;
    const int8_t *basis;
    float factor, s_mu;
    if (id < 0) {
        id += p->vocab;
    }
    if (id < 0 || id >= p->vocab) {
        for (d = 0; d < dim; ++d) {
            y[d] = 0.0f;
        }
        return;
    }
    if (p->map_bytes > 0) {
        const uint8_t *e = map + (size_t)id * (size_t)p->map_bytes;
        uint32_t v = 0;
        for (b = p->map_bytes - 1; b >= 0; --b) {
            v = (v << 8) | e[b];
        }
        pos = (int32_t)v;
    } else {
        pos = (int32_t)id;
    }
    lo = 0;
    hi = p->clusters - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2;
        if (meta[(size_t)mid * 5] <= pos) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    m = meta + (size_t)lo * 5;
    coef = a + (size_t)m[3] + (size_t)(pos - m[0]) * (size_t)m[2];
    mean = pm + (size_t)m[4];
    basis = mean + dim;
    factor = scales[2 * p->clusters + (row_scales ? pos : lo)] * scales[2 * lo];
    s_mu = scales[2 * lo + 1];
    for (d = 0; d < dim; ++d) {
        int32_t acc = 0;
        for (k = 0; k < m[2]; ++k) {
            acc += (int32_t)coef[k] * (int32_t)basis[(size_t)k * dim + d];
        }
        y[d] = (float)acc * factor + s_mu * (float)mean[d];
    }
}

void o2m_clustered_embedding_int8_s64(const o2m_clemb_params *p, int32_t n, const int64_t *ids,
                                      const uint8_t *map, const int32_t *meta, const int8_t *a,
                                      const int8_t *pm, const float *scales, int32_t row_scales,
                                      float *y)
{
    int32_t t;
    for (t = 0; t < n; ++t) {
        clemb8_row(p, ids[t], map, meta, a, pm, scales, row_scales, y + (size_t)t * p->dim);
    }
}

void o2m_clustered_embedding_int8_s32(const o2m_clemb_params *p, int32_t n, const int32_t *ids,
                                      const uint8_t *map, const int32_t *meta, const int8_t *a,
                                      const int8_t *pm, const float *scales, int32_t row_scales,
                                      float *y)
{
    int32_t t;
    for (t = 0; t < n; ++t) {
        clemb8_row(p, (int64_t)ids[t], map, meta, a, pm, scales, row_scales, y + (size_t)t * p->dim);
    }
}

/* ----- tiled attention ----------------------------------------------------------- */

/* rows x [r, hidden] times columns [c0, c0+dh) of w [hidden, inner]: ((x w) + b) * scale */
static void project(const o2m_attention_params *p, int32_t r, const float *x, const float *w,
                    const float *bias, int32_t c0, float scale, float *out)
{
    const int32_t dh = p->head_dim;
    const int32_t inner = p->heads * dh;
    int32_t i, j;
    mc_gemm(r, dh, p->hidden, x, p->hidden, 1, w + c0, inner, 1, out, dh, 0);
    for (i = 0; i < r; ++i) {
        float *o = out + (size_t)i * dh;
        for (j = 0; j < dh; ++j) {
            float v = o[j];
            if (bias) {
                v += bias[c0 + j];
            }
            if (scale != 1.0f) {
                v *= scale;
            }
            o[j] = v;
        }
    }
}

/* Scale, mask and softmax of the score rows [r, seq] of query rows t0.. */
static void score_rows(const o2m_attention_params *p, int32_t r, int32_t t0, const float *mask,
                       float *s)
{
    const int32_t n = p->seq;
    int32_t i, j;
    for (i = 0; i < r; ++i) {
        float *row = s + (size_t)i * n;
        const float *mrow = mask ? mask + (size_t)(t0 + i) * p->mask_row_stride : NULL;
        float mx = -INFINITY;
        float sum = 0.0f;
        float inv;
        for (j = 0; j < n; ++j) {
            float v = row[j];
            if (p->s_scale != 1.0f) {
                v *= p->s_scale;
            }
            if (mrow) {
                v += mrow[j];
            }
            row[j] = v;
            mx = v > mx ? v : mx;
        }
        for (j = 0; j < n; ++j) {
            const float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        inv = 1.0f / sum;
        for (j = 0; j < n; ++j) {
            float v = row[j] * inv;
            if (p->nan_to_zero && v != v) {
                v = 0.0f;
            }
            row[j] = v;
        }
    }
}

int32_t o2m_attention_tile_rows(const o2m_attention_params *p, int32_t t0, int32_t *in_output)
{
    const int32_t left = p->seq - t0;
    const int64_t free_floats = (int64_t)left * p->out_dim - (int64_t)p->tile_k * p->head_dim;
    const int64_t per_row = (int64_t)p->out_dim + p->head_dim + p->seq;
    int64_t rows = free_floats > 0 ? free_floats / per_row : 0;
    int32_t fixed = p->tile_q < left ? p->tile_q : left;
    if (p->cache_kv || rows <= fixed) {
        *in_output = 0;
        return fixed;
    }
    *in_output = 1;
    return (int32_t)(rows < left ? rows : left);
}

/* One query tile of one head: rows t0..t0+r of batch x; adds C_h wo_h into y rows. */
static void attend(const o2m_attention_params *p, int32_t h, int32_t t0, int32_t r,
                   const float *x, const float *wq, const float *bq, const float *wk,
                   const float *bk, const float *wv, const float *bv, const float *wo,
                   const float *mask, float *qc, float *s, float *kv, const float *k_all,
                   const float *v_all, float *y)
{
    const int32_t dh = p->head_dim, n = p->seq, c0 = h * dh;
    int32_t k0;
    project(p, r, x + (size_t)t0 * p->hidden, wq, bq, c0, p->q_scale, qc);
    if (k_all) {
        mc_gemm(r, n, dh, qc, dh, 1, k_all, 1, dh, s, n, 0);
    } else {
        for (k0 = 0; k0 < n; k0 += p->tile_k) {
            const int32_t kn = n - k0 < p->tile_k ? n - k0 : p->tile_k;
            project(p, kn, x + (size_t)k0 * p->hidden, wk, bk, c0, p->k_scale, kv);
            mc_gemm(r, kn, dh, qc, dh, 1, kv, 1, dh, s + k0, n, 0);
        }
    }
    score_rows(p, r, t0, mask, s);
    /* the context overwrites Q, which is no longer needed */
    if (v_all) {
        mc_gemm(r, dh, n, s, n, 1, v_all, dh, 1, qc, dh, 0);
    } else {
        for (k0 = 0; k0 < n; k0 += p->tile_k) {
            const int32_t kn = n - k0 < p->tile_k ? n - k0 : p->tile_k;
            project(p, kn, x + (size_t)k0 * p->hidden, wv, bv, c0, 1.0f, kv);
            mc_gemm(r, dh, kn, s + k0, n, 1, kv, dh, 1, qc, dh, k0 > 0);
        }
    }
    mc_gemm(r, p->out_dim, dh, qc, dh, 1, wo + (size_t)c0 * p->out_dim, p->out_dim, 1,
            y + (size_t)t0 * p->out_dim, p->out_dim, h > 0);
}

static void add_bias_rows(int32_t r, int32_t n, const float *bias, float *y)
{
    int32_t i, j;
    if (!bias) {
        return;
    }
    for (i = 0; i < r; ++i) {
        for (j = 0; j < n; ++j) {
            y[(size_t)i * n + j] += bias[j];
        }
    }
}

void o2m_tiled_attention_f32(const o2m_attention_params *p, const float *x, const float *wq,
                             const float *bq, const float *wk, const float *bk, const float *wv,
                             const float *bv, const float *wo, const float *bo, const float *mask,
                             float *scratch, float *y)
{
    const int32_t dh = p->head_dim, n = p->seq, tq = p->tile_q;
    int32_t b, h, t0;
    for (b = 0; b < p->batch; ++b) {
        const float *xb = x + (size_t)b * n * p->hidden;
        const float *mb = mask ? mask + (size_t)b * p->mask_batch_stride : NULL;
        float *yb = y + (size_t)b * n * p->out_dim;
        if (p->cache_kv) {
            float *qc = scratch;
            float *s = qc + (size_t)tq * dh;
            float *k_all = s + (size_t)tq * n;
            float *v_all = k_all + (size_t)n * dh;
            for (h = 0; h < p->heads; ++h) {
                project(p, n, xb, wk, bk, h * dh, p->k_scale, k_all);
                project(p, n, xb, wv, bv, h * dh, 1.0f, v_all);
                for (t0 = 0; t0 < n; t0 += tq) {
                    const int32_t r = n - t0 < tq ? n - t0 : tq;
                    attend(p, h, t0, r, xb, wq, bq, wk, bk, wv, bv, wo, mb, qc, s, NULL, k_all,
                           v_all, yb);
                }
            }
            add_bias_rows(n, p->out_dim, bo, yb);
        } else {
            for (t0 = 0; t0 < n;) {
                int32_t in_output;
                const int32_t r = o2m_attention_tile_rows(p, t0, &in_output);
                float *qc = in_output ? yb + (size_t)(t0 + r) * p->out_dim : scratch;
                float *s = qc + (size_t)r * dh;
                float *kv = s + (size_t)r * n;
                for (h = 0; h < p->heads; ++h) {
                    attend(p, h, t0, r, xb, wq, bq, wk, bk, wv, bv, wo, mb, qc, s, kv, NULL, NULL,
                           yb);
                }
                add_bias_rows(r, p->out_dim, bo, yb + (size_t)t0 * p->out_dim);
                t0 += r;
            }
        }
    }
}

/* ----- tiled FFN --------------------------------------------------------------------- */

static float ffn_act(float v, int32_t kind)
{
    switch (kind) {
    case O2M_FFN_GELU:
        return (v * (erff(v / 1.41421353816986083984375f) + 1.0f)) * 0.5f;
    case O2M_FFN_GELU_TANH:
        return 0.5f * v * (1.0f + tanhf(0.79788456080286535588f * (v + 0.044715f * v * v * v)));
    default:
        return v > 0.0f ? v : 0.0f;
    }
}

void o2m_tiled_ffn_f32(const o2m_ffn_params *p, const float *x, const float *w1, const float *b1,
                       const float *w2, const float *b2, float *scratch, float *y)
{
    int32_t r0, f0, i, j;
    for (r0 = 0; r0 < p->rows; r0 += p->tile_rows) {
        const int32_t r = p->rows - r0 < p->tile_rows ? p->rows - r0 : p->tile_rows;
        const float *xr = x + (size_t)r0 * p->hidden;
        float *yr = y + (size_t)r0 * p->out_dim;
        for (f0 = 0; f0 < p->inner; f0 += p->tile_f) {
            const int32_t f = p->inner - f0 < p->tile_f ? p->inner - f0 : p->tile_f;
            mc_gemm(r, f, p->hidden, xr, p->hidden, 1, w1 + f0, p->inner, 1, scratch, f, 0);
            for (i = 0; i < r; ++i) {
                float *hrow = scratch + (size_t)i * f;
                for (j = 0; j < f; ++j) {
                    float v = hrow[j];
                    if (b1) {
                        v += b1[f0 + j];
                    }
                    hrow[j] = ffn_act(v, p->activation);
                }
            }
            mc_gemm(r, p->out_dim, f, scratch, f, 1, w2 + (size_t)f0 * p->out_dim, p->out_dim, 1,
                    yr, p->out_dim, f0 > 0);
        }
        add_bias_rows(r, p->out_dim, b2, yr);
    }
}
