/* o2m_misc.c - see o2m_misc.h for the contracts. */
#include "o2m_misc.h"

#include <math.h>
#include <string.h>

#define UNARY_D(name, expr)                                         \
    void o2m_##name##_f32(int32_t n, const float *x, float *y) {    \
        int32_t i;                                                  \
        for (i = 0; i < n; ++i) {                                   \
            double v = (double)x[i];                                \
            y[i] = (float)(expr);                                   \
        }                                                           \
    }

UNARY_D(sin, sin(v))
UNARY_D(cos, cos(v))
UNARY_D(tan, tan(v))
UNARY_D(asin, asin(v))
UNARY_D(acos, acos(v))
UNARY_D(atan, atan(v))
UNARY_D(sinh, sinh(v))
UNARY_D(cosh, cosh(v))
UNARY_D(asinh, asinh(v))
UNARY_D(acosh, acosh(v))
UNARY_D(atanh, atanh(v))

static double softplus_d(double v) {
    /* log(1 + e^v) without overflow */
    return v > 0.0 ? v + log1p(exp(-v)) : log1p(exp(v));
}

UNARY_D(mish, v * tanh(softplus_d(v)))

void o2m_swish_f32(int32_t n, const float *x, float *y, float alpha) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        double v = (double)x[i];
        y[i] = (float)(v / (1.0 + exp(-(double)alpha * v)));
    }
}

void o2m_thresholded_relu_f32(int32_t n, const float *x, float *y, float alpha) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = x[i] > alpha ? x[i] : 0.0f;
    }
}

void o2m_shrink_f32(int32_t n, const float *x, float *y, float lambd, float bias) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        float v = x[i];
        y[i] = v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0f);
    }
}

void o2m_isnan_f32(int32_t n, const float *x, uint8_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (uint8_t)(x[i] != x[i]);
    }
}

void o2m_isinf_f32(int32_t n, const float *x, uint8_t *y, int32_t detect_pos, int32_t detect_neg) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        float v = x[i];
        y[i] = (uint8_t)((detect_pos && v == INFINITY) || (detect_neg && v == -INFINITY));
    }
}

/* ----- strided walks ------------------------------------------------------ */
static int32_t nd_offset(int32_t rank, const int32_t *dims, const int32_t *strides, int32_t i) {
    int32_t d, off = 0;
    for (d = rank - 1; d >= 0; --d) {
        off += (i % dims[d]) * strides[d];
        i /= dims[d];
    }
    return off;
}

static int32_t nd_count(int32_t rank, const int32_t *dims) {
    int32_t d, n = 1;
    for (d = 0; d < rank; ++d) {
        n *= dims[d];
    }
    return n;
}

void o2m_mod_nd_f32(int32_t rank, const int32_t *dims, const int32_t *sa, const int32_t *sb,
                    const float *a, const float *b, float *y, int32_t fmod_flag) {
    int32_t i, n = nd_count(rank, dims);
    for (i = 0; i < n; ++i) {
        float va = a[nd_offset(rank, dims, sa, i)], vb = b[nd_offset(rank, dims, sb, i)];
        float r = fmodf(va, vb);
        if (!fmod_flag && r != 0.0f && ((r < 0.0f) != (vb < 0.0f))) {
            r += vb;
        }
        y[i] = r;
    }
}

#define MOD_INT(suffix, T)                                                                       \
    void o2m_mod_nd_##suffix(int32_t rank, const int32_t *dims, const int32_t *sa,               \
                             const int32_t *sb, const T *a, const T *b, T *y, int32_t fmod_flag) { \
        int32_t i, n = nd_count(rank, dims);                                                     \
        for (i = 0; i < n; ++i) {                                                                \
            T va = a[nd_offset(rank, dims, sa, i)], vb = b[nd_offset(rank, dims, sb, i)];        \
            T r = 0;                                                                             \
            if (vb != 0 && !(vb == -1)) {                                                        \
                r = (T)(va % vb);                                                                \
                if (!fmod_flag && r != 0 && ((r < 0) != (vb < 0))) {                             \
                    r = (T)(r + vb);                                                             \
                }                                                                                \
            }                                                                                    \
            y[i] = r;                                                                            \
        }                                                                                        \
    }

MOD_INT(s32, int32_t)
MOD_INT(s64, int64_t)

/* ----- CumSum ------------------------------------------------------------- */
#define CUMSUM(suffix, T, ACC)                                                                   \
    void o2m_cumsum_##suffix(int32_t outer, int32_t n, int32_t inner, const T *x, T *y,         \
                             int32_t exclusive, int32_t reverse) {                               \
        int32_t o, i, j;                                                                         \
        for (o = 0; o < outer; ++o) {                                                            \
            for (j = 0; j < inner; ++j) {                                                        \
                ACC acc = 0;                                                                     \
                for (i = 0; i < n; ++i) {                                                        \
                    int32_t at = reverse ? n - 1 - i : i;                                        \
                    int32_t idx = (o * n + at) * inner + j;                                      \
                    ACC v = (ACC)x[idx];                                                         \
                    if (exclusive) {                                                             \
                        y[idx] = (T)acc;                                                         \
                        acc += v;                                                                \
                    } else {                                                                     \
                        acc += v;                                                                \
                        y[idx] = (T)acc;                                                         \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

CUMSUM(f32, float, double)
CUMSUM(s32, int32_t, int32_t)
CUMSUM(s64, int64_t, int64_t)

/* ----- TopK: k selection passes, each taking the best element ranked after the
 * previous pick in the order (value, then lower index first). ----------------- */
#define TOPK(suffix, T)                                                                          \
    void o2m_topk_##suffix(int32_t outer, int32_t n, int32_t inner, int32_t k, int32_t largest, \
                           const T *x, T *values, int64_t *indices) {                            \
        int32_t o, j, r, i;                                                                      \
        for (o = 0; o < outer; ++o) {                                                            \
            for (j = 0; j < inner; ++j) {                                                        \
                const T *row = x + (size_t)o * n * inner + j;                                    \
                int32_t prev = -1;                                                               \
                for (r = 0; r < k; ++r) {                                                        \
                    int32_t best = -1;                                                           \
                    for (i = 0; i < n; ++i) {                                                    \
                        T v = row[(size_t)i * inner];                                            \
                        if (prev >= 0) {                                                         \
                            T pv = row[(size_t)prev * inner];                                    \
                            int after = largest ? (v < pv || (v == pv && i > prev))              \
                                                : (v > pv || (v == pv && i > prev));             \
                            if (!after) {                                                        \
                                continue;                                                        \
                            }                                                                    \
                        }                                                                        \
                        if (best < 0) {                                                          \
                            best = i;                                                            \
                        } else {                                                                 \
                            T bv = row[(size_t)best * inner];                                    \
                            if (largest ? v > bv : v < bv) {                                     \
                                best = i;                                                        \
                            }                                                                    \
                        }                                                                        \
                    }                                                                            \
                    if (best < 0) {                                                              \
                        best = prev < 0 ? 0 : prev;                                              \
                    }                                                                            \
                    values[((size_t)o * k + r) * inner + j] = row[(size_t)best * inner];         \
                    indices[((size_t)o * k + r) * inner + j] = best;                             \
                    prev = best;                                                                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }

TOPK(f32, float)
TOPK(s32, int32_t)
TOPK(s64, int64_t)

void o2m_hardmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y) {
    int32_t o, j, i;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < inner; ++j) {
            size_t base = (size_t)o * n * inner + j;
            int32_t best = 0;
            for (i = 1; i < n; ++i) {
                if (x[base + (size_t)i * inner] > x[base + (size_t)best * inner]) {
                    best = i;
                }
            }
            for (i = 0; i < n; ++i) {
                y[base + (size_t)i * inner] = i == best ? 1.0f : 0.0f;
            }
        }
    }
}

/* ----- element-generic index ops -------------------------------------------- */
void o2m_trilu(int32_t batch, int32_t rows, int32_t cols, int64_t k, int32_t upper,
               int32_t elem_size, const void *x, void *y) {
    const unsigned char *src = (const unsigned char *)x;
    unsigned char *dst = (unsigned char *)y;
    int32_t b, i, j;
    for (b = 0; b < batch; ++b) {
        for (i = 0; i < rows; ++i) {
            for (j = 0; j < cols; ++j) {
                size_t at = (((size_t)b * rows + i) * cols + j) * (size_t)elem_size;
                int64_t diff = (int64_t)j - (int64_t)i;
                int keep = upper ? diff >= k : diff <= k;
                if (!keep) {
                    memset(dst + at, 0, (size_t)elem_size);
                } else if (dst != src) {
                    memcpy(dst + at, src + at, (size_t)elem_size);
                }
            }
        }
    }
}

void o2m_eyelike(int32_t rows, int32_t cols, int64_t k, int32_t elem_size, const void *one,
                 void *y) {
    unsigned char *dst = (unsigned char *)y;
    int32_t i;
    memset(dst, 0, (size_t)rows * cols * elem_size);
    for (i = 0; i < rows; ++i) {
        int64_t j = (int64_t)i + k;
        if (j >= 0 && j < cols) {
            memcpy(dst + ((size_t)i * cols + (size_t)j) * elem_size, one, (size_t)elem_size);
        }
    }
}

static int64_t index_at(const void *indices, int32_t kind, size_t i) {
    if (kind == 0) {
        return (int64_t)((const float *)indices)[i];
    }
    if (kind == 1) {
        return (int64_t)((const int32_t *)indices)[i];
    }
    return ((const int64_t *)indices)[i];
}

void o2m_onehot(int32_t outer, int32_t depth, int32_t inner, const void *indices,
                int32_t index_kind, int32_t elem_size, const void *values, void *y) {
    const unsigned char *val = (const unsigned char *)values;
    unsigned char *dst = (unsigned char *)y;
    int32_t o, d, j;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < inner; ++j) {
            int64_t idx = index_at(indices, index_kind, (size_t)o * inner + j);
            if (idx < 0) {
                idx += depth;
            }
            for (d = 0; d < depth; ++d) {
                size_t at = (((size_t)o * depth + d) * inner + j) * (size_t)elem_size;
                memcpy(dst + at, val + (idx == d ? (size_t)elem_size : 0), (size_t)elem_size);
            }
        }
    }
}

void o2m_gather_elements(int32_t rank, const int32_t *dims, const int32_t *x_strides,
                         int32_t axis, int32_t axis_len, int32_t elem_size, const void *x,
                         const void *indices, int32_t idx64, void *y) {
    const unsigned char *src = (const unsigned char *)x;
    unsigned char *dst = (unsigned char *)y;
    int32_t i, d, n = nd_count(rank, dims);
    for (i = 0; i < n; ++i) {
        int32_t rest = i;
        int64_t off = 0;
        for (d = rank - 1; d >= 0; --d) {
            int64_t coord = rest % dims[d];
            rest /= dims[d];
            if (d == axis) {
                coord = index_at(indices, idx64 ? 2 : 1, (size_t)i);
                if (coord < 0) {
                    coord += axis_len;
                }
            }
            off += coord * x_strides[d];
        }
        memcpy(dst + (size_t)i * elem_size, src + (size_t)off * elem_size, (size_t)elem_size);
    }
}

void o2m_gather_nd(int32_t batch, int32_t groups, int32_t depth, int32_t slice_elems,
                   int32_t batch_stride, const int32_t *x_dims, const int32_t *x_strides,
                   int32_t elem_size, const void *x, const void *indices, int32_t idx64,
                   void *y) {
    const unsigned char *src = (const unsigned char *)x;
    unsigned char *dst = (unsigned char *)y;
    int32_t b, g, j;
    for (b = 0; b < batch; ++b) {
        for (g = 0; g < groups; ++g) {
            size_t tuple = ((size_t)b * groups + g) * depth;
            int64_t off = (int64_t)b * batch_stride;
            for (j = 0; j < depth; ++j) {
                int64_t v = index_at(indices, idx64 ? 2 : 1, tuple + j);
                if (v < 0) {
                    v += x_dims[j];
                }
                off += v * x_strides[j];
            }
            memcpy(dst + ((size_t)b * groups + g) * slice_elems * elem_size,
                   src + (size_t)off * elem_size, (size_t)slice_elems * elem_size);
        }
    }
}

void o2m_range_f32(int32_t n, float start, float delta, float *y) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (float)((double)start + (double)i * (double)delta);
    }
}

void o2m_range_s32(int32_t n, int32_t start, int32_t delta, int32_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = start + i * delta;
    }
}

void o2m_range_s64(int32_t n, int64_t start, int64_t delta, int64_t *y) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = start + (int64_t)i * delta;
    }
}

/* ----- normalizations --------------------------------------------------------- */
void o2m_normalize_f32(int32_t kind, int32_t nk, const int32_t *kdims, const int32_t *kstrides,
                       int32_t nr, const int32_t *rdims, const int32_t *rstrides, float eps,
                       const float *x, float *y) {
    int32_t kept = nd_count(nk, kdims), count = nd_count(nr, rdims);
    int32_t k, r;
    for (k = 0; k < kept; ++k) {
        int32_t base = nd_offset(nk, kdims, kstrides, k);
        double mean = 0.0, second = 0.0, scale, shift = 0.0;
        for (r = 0; r < count; ++r) {
            double v = (double)x[base + nd_offset(nr, rdims, rstrides, r)];
            mean += v;
            second += kind == O2M_NORM_L1 ? fabs(v) : v * v;
        }
        switch (kind) {
        case O2M_NORM_STANDARD: {
            double var = 0.0;
            mean /= count;
            for (r = 0; r < count; ++r) {
                double dv = (double)x[base + nd_offset(nr, rdims, rstrides, r)] - mean;
                var += dv * dv;
            }
            scale = 1.0 / sqrt(var / count + (double)eps);
            shift = mean;
            break;
        }
        case O2M_NORM_RMS:
            scale = 1.0 / sqrt(second / count + (double)eps);
            break;
        case O2M_NORM_MVN:
            mean /= count;
            scale = 1.0 / (sqrt(second / count - mean * mean) + 1e-9);
            shift = mean;
            break;
        case O2M_NORM_L1:
            scale = 1.0 / second;
            break;
        default:
            scale = 1.0 / sqrt(second);
            break;
        }
        for (r = 0; r < count; ++r) {
            int32_t at = base + nd_offset(nr, rdims, rstrides, r);
            y[at] = (float)(((double)x[at] - shift) * scale);
        }
    }
}

void o2m_lrn_f32(int32_t n, int32_t c, int32_t inner, int32_t size, float alpha, float beta,
                 float bias, const float *x, float *y) {
    int32_t b, ch, j, t;
    int32_t before = (size - 1) / 2, after = size - 1 - (size - 1) / 2;
    for (b = 0; b < n; ++b) {
        for (ch = 0; ch < c; ++ch) {
            for (j = 0; j < inner; ++j) {
                double total = 0.0;
                for (t = ch - before; t <= ch + after; ++t) {
                    if (t >= 0 && t < c) {
                        double v = (double)x[((size_t)b * c + t) * inner + j];
                        total += v * v;
                    }
                }
                y[((size_t)b * c + ch) * inner + j] =
                    (float)((double)x[((size_t)b * c + ch) * inner + j] /
                            pow((double)bias + (double)alpha / size * total, (double)beta));
            }
        }
    }
}

/* The pools' geometry: geom = {N*C, rank, then per dim (lifted to 3): in, out, kernel,
 * stride, dilation, pad_begin}; the planes' element counts come back in *plane_in/out. */
static void pool_window3(const int32_t *geom, int32_t in[3], int32_t out[3], int32_t ker[3],
                         int32_t st[3], int32_t dil[3], int32_t pb[3], int32_t *plane_in,
                         int32_t *plane_out) {
    int32_t d;
    *plane_in = 1;
    *plane_out = 1;
    for (d = 0; d < 3; ++d) {
        in[d] = geom[2 + 6 * d];
        out[d] = geom[3 + 6 * d];
        ker[d] = geom[4 + 6 * d];
        st[d] = geom[5 + 6 * d];
        dil[d] = geom[6 + 6 * d];
        pb[d] = geom[7 + 6 * d];
        *plane_in *= in[d];
        *plane_out *= out[d];
    }
}

static double pow_p(double v, int32_t p) {
    v = fabs(v);
    return p == 1 ? v : (p == 2 ? v * v : pow(v, (double)p));
}

void o2m_lppool_f32(const int32_t *geom, int32_t p, const float *x, float *y) {
    int32_t nc = geom[0];
    int32_t in[3], out[3], ker[3], st[3], dil[3], pb[3];
    int32_t plane_in, plane_out, c, o0, o1, o2, k0, k1, k2;
    pool_window3(geom, in, out, ker, st, dil, pb, &plane_in, &plane_out);
    for (c = 0; c < nc; ++c) {
        const float *xc = x + (size_t)c * plane_in;
        float *yc = y + (size_t)c * plane_out;
        for (o0 = 0; o0 < out[0]; ++o0) {
            for (o1 = 0; o1 < out[1]; ++o1) {
                for (o2 = 0; o2 < out[2]; ++o2) {
                    double total = 0.0;
                    for (k0 = 0; k0 < ker[0]; ++k0) {
                        int32_t i0 = o0 * st[0] - pb[0] + k0 * dil[0];
                        if (i0 < 0 || i0 >= in[0]) {
                            continue;
                        }
                        for (k1 = 0; k1 < ker[1]; ++k1) {
                            int32_t i1 = o1 * st[1] - pb[1] + k1 * dil[1];
                            if (i1 < 0 || i1 >= in[1]) {
                                continue;
                            }
                            for (k2 = 0; k2 < ker[2]; ++k2) {
                                int32_t i2 = o2 * st[2] - pb[2] + k2 * dil[2];
                                if (i2 < 0 || i2 >= in[2]) {
                                    continue;
                                }
                                total += pow_p((double)xc[((size_t)i0 * in[1] + i1) * in[2] + i2], p);
                            }
                        }
                    }
                    yc[((size_t)o0 * out[1] + o1) * out[2] + o2] =
                        (float)(p == 1 ? total : (p == 2 ? sqrt(total) : pow(total, 1.0 / p)));
                }
            }
        }
    }
}

void o2m_global_lppool_f32(int32_t nc, int32_t hw, int32_t p, const float *x, float *y) {
    int32_t c, i;
    for (c = 0; c < nc; ++c) {
        double total = 0.0;
        for (i = 0; i < hw; ++i) {
            total += pow_p((double)x[(size_t)c * hw + i], p);
        }
        y[c] = (float)(p == 1 ? total : (p == 2 ? sqrt(total) : pow(total, 1.0 / p)));
    }
}

/* ----- the float forms of the binarized ops (sign x sign dot products) ------- */
static float finish_sign(int32_t dot, const float *mult, const float *bias, int32_t j) {
    float v = (float)dot;
    if (mult) {
        v = v * mult[j];
    }
    if (bias) {
        v = v + bias[j];
    }
    return v;
}

void o2m_sign_matmul_f32(int32_t m, int32_t n, int32_t k, const float *x, const float *w,
                         const float *mult, const float *bias, float *y) {
    int32_t i, j, t;
    for (i = 0; i < m; ++i) {
        for (j = 0; j < n; ++j) {
            int32_t dot = 0;
            for (t = 0; t < k; ++t) {
                dot += ((x[(size_t)i * k + t] < 0.0f) == (w[(size_t)j * k + t] < 0.0f)) ? 1 : -1;
            }
            y[(size_t)i * n + j] = finish_sign(dot, mult, bias, j);
        }
    }
}

void o2m_sign_conv_f32(const int32_t *geom, const float *x, const float *w, const float *mult,
                       const float *bias, float *y) {
    int32_t n = geom[0], c = geom[1], h = geom[2], wd = geom[3], m = geom[4];
    int32_t oh = geom[5], ow = geom[6], kh = geom[7], kw = geom[8], sh = geom[9], sw = geom[10];
    int32_t dh = geom[11], dw = geom[12], pt = geom[13], pl = geom[14];
    int32_t b, oc, r, q, i, j, ch;
    for (b = 0; b < n; ++b) {
        for (oc = 0; oc < m; ++oc) {
            for (r = 0; r < oh; ++r) {
                for (q = 0; q < ow; ++q) {
                    int32_t dot = 0;
                    for (i = 0; i < kh; ++i) {
                        int32_t ih = r * sh - pt + i * dh;
                        if (ih < 0 || ih >= h) {
                            continue;
                        }
                        for (j = 0; j < kw; ++j) {
                            int32_t iw = q * sw - pl + j * dw;
                            if (iw < 0 || iw >= wd) {
                                continue;
                            }
                            for (ch = 0; ch < c; ++ch) {
                                float xv = x[(((size_t)b * c + ch) * h + ih) * wd + iw];
                                float wv = w[(((size_t)oc * c + ch) * kh + i) * kw + j];
                                dot += ((xv < 0.0f) == (wv < 0.0f)) ? 1 : -1;
                            }
                        }
                    }
                    y[(((size_t)b * m + oc) * oh + r) * ow + q] = finish_sign(dot, mult, bias, oc);
                }
            }
        }
    }
}

/* ----- small-integer (int8 / uint8) elementwise ops and generic casts ------------ */
static int64_t load_kind(const void *p, int32_t kind, int32_t i) {
    switch (kind) {
    case O2M_KIND_S8: return ((const int8_t *)p)[i];
    case O2M_KIND_U8: return ((const uint8_t *)p)[i];
    case O2M_KIND_S32: return ((const int32_t *)p)[i];
    case O2M_KIND_S64: return ((const int64_t *)p)[i];
    case O2M_KIND_B8: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static void store_kind(void *p, int32_t kind, int32_t i, int64_t v) {
    switch (kind) {
    case O2M_KIND_S8: ((int8_t *)p)[i] = (int8_t)v; break;
    case O2M_KIND_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case O2M_KIND_S32: ((int32_t *)p)[i] = (int32_t)v; break;
    case O2M_KIND_S64: ((int64_t *)p)[i] = v; break;
    case O2M_KIND_B8: ((uint8_t *)p)[i] = (uint8_t)(v != 0); break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

void o2m_int_binary_nd(int32_t op, int32_t kind, int32_t rank, const int32_t *dims,
                       const int32_t *sa, const int32_t *sb, const void *a, const void *b,
                       void *y) {
    int32_t i, n = nd_count(rank, dims);
    for (i = 0; i < n; ++i) {
        int64_t va = load_kind(a, kind, nd_offset(rank, dims, sa, i));
        int64_t vb = load_kind(b, kind, nd_offset(rank, dims, sb, i));
        int64_t r = 0;
        int out_bool = 0;
        switch (op) {
        case O2M_IOP_ADD: r = va + vb; break;
        case O2M_IOP_SUB: r = va - vb; break;
        case O2M_IOP_MUL: r = va * vb; break;
        case O2M_IOP_DIV: r = vb != 0 ? va / vb : 0; break;
        case O2M_IOP_MOD:
        case O2M_IOP_FMOD:
            r = vb != 0 ? va % vb : 0;
            if (op == O2M_IOP_MOD && r != 0 && ((r < 0) != (vb < 0))) {
                r += vb;
            }
            break;
        case O2M_IOP_MAX: r = va > vb ? va : vb; break;
        case O2M_IOP_MIN: r = va < vb ? va : vb; break;
        case O2M_IOP_EQ: r = va == vb; out_bool = 1; break;
        case O2M_IOP_LT: r = va < vb; out_bool = 1; break;
        case O2M_IOP_LE: r = va <= vb; out_bool = 1; break;
        case O2M_IOP_GT: r = va > vb; out_bool = 1; break;
        default: r = va >= vb; out_bool = 1; break;
        }
        store_kind(y, out_bool ? O2M_KIND_B8 : kind, i, r);
    }
}

void o2m_int_clip(int32_t kind, int32_t n, const void *x, const void *lo, const void *hi,
                  void *y) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        int64_t v = load_kind(x, kind, i);
        if (lo && v < load_kind(lo, kind, 0)) {
            v = load_kind(lo, kind, 0);
        }
        if (hi && v > load_kind(hi, kind, 0)) {
            v = load_kind(hi, kind, 0);
        }
        store_kind(y, kind, i, v);
    }
}

static double load_double(const void *p, int32_t kind, int32_t i) {
    return kind == O2M_KIND_F32 ? (double)((const float *)p)[i] : (double)load_kind(p, kind, i);
}

void o2m_cast_any(int32_t n, int32_t from_kind, int32_t to_kind, const void *x, void *y) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        if (to_kind == O2M_KIND_F32) {
            ((float *)y)[i] = (float)load_double(x, from_kind, i);
        } else if (from_kind == O2M_KIND_F32) {
            double v = load_double(x, from_kind, i);
            if (to_kind == O2M_KIND_B8) {
                store_kind(y, to_kind, i, v != 0.0);
            } else {
                /* truncation toward zero; NaN and out-of-int64 values give 0 */
                store_kind(y, to_kind, i, (v == v && fabs(v) < 9.2e18) ? (int64_t)v : 0);
            }
        } else {
            store_kind(y, to_kind, i, load_kind(x, from_kind, i));
        }
    }
}

void o2m_pow_nd(int32_t base_kind, int32_t exp_kind, int32_t rank, const int32_t *dims,
                const int32_t *sa, const int32_t *sb, const void *a, const void *b, void *y) {
    int32_t i, n = nd_count(rank, dims);
    for (i = 0; i < n; ++i) {
        double r = pow(load_double(a, base_kind, nd_offset(rank, dims, sa, i)),
                       load_double(b, exp_kind, nd_offset(rank, dims, sb, i)));
        if (base_kind == O2M_KIND_F32) {
            ((float *)y)[i] = (float)r;
        } else {
            store_kind(y, base_kind, i, (r == r && fabs(r) < 9.2e18) ? (int64_t)r : 0);
        }
    }
}

void o2m_moments_f32(int32_t outer, int32_t n, const float *x, float eps, float *mean,
                     float *inv_std) {
    int32_t o, i;
    for (o = 0; o < outer; ++o) {
        double m = 0.0, var = 0.0;
        for (i = 0; i < n; ++i) {
            m += (double)x[(size_t)o * n + i];
        }
        m /= n;
        for (i = 0; i < n; ++i) {
            double d = (double)x[(size_t)o * n + i] - m;
            var += d * d;
        }
        if (mean) {
            mean[o] = (float)m;
        }
        if (inv_std) {
            inv_std[o] = (float)(1.0 / sqrt(var / n + (double)eps));
        }
    }
}

/* ----- N-d MaxPool of raw int8 / uint8 ------------------------------------------------ */
void o2m_maxpool_nd_int(int32_t kind, const int32_t *geom, const void *x, void *y) {
    int32_t in[3], out[3], ker[3], st[3], dil[3], pb[3];
    int32_t plane_in, plane_out, c, o0, o1, o2, k0, k1, k2;
    pool_window3(geom, in, out, ker, st, dil, pb, &plane_in, &plane_out);
    for (c = 0; c < geom[0]; ++c) {
        for (o0 = 0; o0 < out[0]; ++o0) {
            for (o1 = 0; o1 < out[1]; ++o1) {
                for (o2 = 0; o2 < out[2]; ++o2) {
                    int64_t best = kind == O2M_KIND_U8 ? 0 : -128; /* the type's minimum */
                    for (k0 = 0; k0 < ker[0]; ++k0) {
                        int32_t i0 = o0 * st[0] - pb[0] + k0 * dil[0];
                        for (k1 = 0; k1 < ker[1]; ++k1) {
                            int32_t i1 = o1 * st[1] - pb[1] + k1 * dil[1];
                            for (k2 = 0; k2 < ker[2]; ++k2) {
                                int32_t i2 = o2 * st[2] - pb[2] + k2 * dil[2];
                                if (i0 >= 0 && i0 < in[0] && i1 >= 0 && i1 < in[1] && i2 >= 0 &&
                                    i2 < in[2]) {
                                    int64_t v = load_kind(x, kind, c * plane_in +
                                                          (i0 * in[1] + i1) * in[2] + i2);
                                    best = v > best ? v : best;
                                }
                            }
                        }
                    }
                    store_kind(y, kind, c * plane_out + (o0 * out[1] + o1) * out[2] + o2, best);
                }
            }
        }
    }
}

/* ----- N-d (1-D to 3-D) Max / AveragePool, with MaxPool's Indices --------------------- */
void o2m_pool_nd_f32(int32_t kind, const int32_t *geom, const int32_t *pads_end,
                     int32_t count_include_pad, int32_t storage_order, const float *x, float *y,
                     int64_t *indices) {
    int32_t nc = geom[0], d;
    int32_t in[3], out[3], ker[3], st[3], dil[3], pb[3], pe[3], sidx[3];
    int32_t plane_in, plane_out, c, o0, o1, o2, k0, k1, k2;
    pool_window3(geom, in, out, ker, st, dil, pb, &plane_in, &plane_out);
    for (d = 0; d < 3; ++d) {
        pe[d] = pads_end[d];
    }
    /* element strides of the Indices numbering: row-major, or column-major over the
     * spatial dims (storage_order 1); unused leading dims have size 1 */
    if (storage_order) {
        int32_t first = 3 - geom[1], acc = 1;
        for (d = first; d < 3; ++d) {
            sidx[d] = acc;
            acc *= in[d];
        }
        for (d = 0; d < first; ++d) {
            sidx[d] = 0;
        }
    } else {
        sidx[2] = 1;
        sidx[1] = in[2];
        sidx[0] = in[1] * in[2];
    }
    for (c = 0; c < nc; ++c) {
        const float *xc = x + (size_t)c * plane_in;
        for (o0 = 0; o0 < out[0]; ++o0) {
            for (o1 = 0; o1 < out[1]; ++o1) {
                for (o2 = 0; o2 < out[2]; ++o2) {
                    double total = 0.0;
                    float best = -INFINITY;
                    int64_t best_at = -1;
                    int32_t count = 0;
                    size_t at_out = (size_t)c * plane_out + ((size_t)o0 * out[1] + o1) * out[2] + o2;
                    for (k0 = 0; k0 < ker[0]; ++k0) {
                        int32_t i0 = o0 * st[0] - pb[0] + k0 * dil[0];
                        for (k1 = 0; k1 < ker[1]; ++k1) {
                            int32_t i1 = o1 * st[1] - pb[1] + k1 * dil[1];
                            for (k2 = 0; k2 < ker[2]; ++k2) {
                                int32_t i2 = o2 * st[2] - pb[2] + k2 * dil[2];
                                int inside = i0 >= 0 && i0 < in[0] && i1 >= 0 && i1 < in[1] &&
                                             i2 >= 0 && i2 < in[2];
                                if (!inside) {
                                    if (count_include_pad && i0 >= -pb[0] && i0 < in[0] + pe[0] &&
                                        i1 >= -pb[1] && i1 < in[1] + pe[1] && i2 >= -pb[2] &&
                                        i2 < in[2] + pe[2]) {
                                        ++count;
                                    }
                                    continue;
                                }
                                {
                                    float v = xc[((size_t)i0 * in[1] + i1) * in[2] + i2];
                                    ++count;
                                    total += (double)v;
                                    if (best_at < 0 || v > best) {
                                        best = v;
                                        best_at = (int64_t)c * plane_in + (int64_t)i0 * sidx[0] +
                                                  (int64_t)i1 * sidx[1] + (int64_t)i2 * sidx[2];
                                    }
                                }
                            }
                        }
                    }
                    if (kind == 0) {
                        y[at_out] = best;
                        if (indices) {
                            indices[at_out] = best_at;
                        }
                    } else {
                        y[at_out] = (float)(count ? total / count : 0.0);
                    }
                }
            }
        }
    }
}

/* ----- reductions over any set of axes ------------------------------------------------ */
void o2m_reduce_nd_f32(int32_t kind, int32_t nk, const int32_t *kdims, const int32_t *kstrides,
                       int32_t nr, const int32_t *rdims, const int32_t *rstrides, const float *x,
                       float *y) {
    int32_t kept = nd_count(nk, kdims), count = nd_count(nr, rdims), k, r;
    for (k = 0; k < kept; ++k) {
        int32_t base = nd_offset(nk, kdims, kstrides, k);
        double acc = kind == O2M_RND_PROD ? 1.0 : 0.0, top = -INFINITY;
        float best = 0.0f;
        if (kind == O2M_RND_LOGSUMEXP) {
            for (r = 0; r < count; ++r) {
                double v = (double)x[base + nd_offset(nr, rdims, rstrides, r)];
                top = v > top ? v : top;
            }
        }
        for (r = 0; r < count; ++r) {
            float v = x[base + nd_offset(nr, rdims, rstrides, r)];
            double dv = (double)v;
            switch (kind) {
            case O2M_RND_MAX: best = (r == 0 || v > best) ? v : best; break;
            case O2M_RND_MIN: best = (r == 0 || v < best) ? v : best; break;
            case O2M_RND_PROD: acc *= dv; break;
            case O2M_RND_L1: acc += fabs(dv); break;
            case O2M_RND_L2:
            case O2M_RND_SUMSQUARE: acc += dv * dv; break;
            case O2M_RND_LOGSUMEXP: acc += exp(dv - top); break;
            default: acc += dv; break;
            }
        }
        switch (kind) {
        case O2M_RND_MAX:
        case O2M_RND_MIN: y[k] = best; break;
        case O2M_RND_MEAN: y[k] = (float)(acc / count); break;
        case O2M_RND_L2: y[k] = (float)sqrt(acc); break;
        case O2M_RND_LOGSUM: y[k] = (float)log(acc); break;
        case O2M_RND_LOGSUMEXP: y[k] = (float)(top + log(acc)); break;
        default: y[k] = (float)acc; break;
        }
    }
}

/* ----- CumSum whose axis is only known at run time -------------------------------------- */
static void axis_view_of(int32_t rank, const int32_t *dims, int64_t axis, int32_t *outer,
                         int32_t *n, int32_t *inner) {
    int32_t d;
    if (axis < 0) {
        axis += rank;
    }
    *outer = 1;
    *n = 1;
    *inner = 1;
    for (d = 0; d < rank; ++d) {
        if (d < axis) {
            *outer *= dims[d];
        } else if (d == axis) {
            *n = dims[d];
        } else {
            *inner *= dims[d];
        }
    }
}

#define CUMSUM_DYN(suffix, T)                                                                    \
    void o2m_cumsum_dyn_##suffix(int32_t rank, const int32_t *dims, int64_t axis, const T *x,     \
                                 T *y, int32_t exclusive, int32_t reverse) {                     \
        int32_t outer, n, inner;                                                                 \
        axis_view_of(rank, dims, axis, &outer, &n, &inner);                                      \
        o2m_cumsum_##suffix(outer, n, inner, x, y, exclusive, reverse);                          \
    }

CUMSUM_DYN(f32, float)
CUMSUM_DYN(s32, int32_t)
CUMSUM_DYN(s64, int64_t)

/* ----- Where over values of any element size; Max / Min reductions of bools --------------- */
void o2m_where_nd_any(int32_t rank, const int32_t *dims, const int32_t *sc, const int32_t *sa,
                      const int32_t *sb, const uint8_t *c, const void *a, const void *b,
                      int32_t elem_size, void *y) {
    const unsigned char *pa = (const unsigned char *)a, *pb = (const unsigned char *)b;
    unsigned char *py = (unsigned char *)y;
    int32_t i, n = nd_count(rank, dims);
    for (i = 0; i < n; ++i) {
        const unsigned char *src = c[nd_offset(rank, dims, sc, i)]
                                       ? pa + (size_t)nd_offset(rank, dims, sa, i) * elem_size
                                       : pb + (size_t)nd_offset(rank, dims, sb, i) * elem_size;
        memmove(py + (size_t)i * elem_size, src, (size_t)elem_size);
    }
}

void o2m_reduce_nd_b8(int32_t is_max, int32_t nk, const int32_t *kdims, const int32_t *kstrides,
                      int32_t nr, const int32_t *rdims, const int32_t *rstrides, const uint8_t *x,
                      uint8_t *y) {
    int32_t kept = nd_count(nk, kdims), count = nd_count(nr, rdims), k, r;
    for (k = 0; k < kept; ++k) {
        int32_t base = nd_offset(nk, kdims, kstrides, k);
        uint8_t acc = is_max ? 0 : 1;
        for (r = 0; r < count; ++r) {
            uint8_t v = x[base + nd_offset(nr, rdims, rstrides, r)] != 0;
            acc = is_max ? (uint8_t)(acc | v) : (uint8_t)(acc & v);
        }
        y[k] = acc;
    }
}
