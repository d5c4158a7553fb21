/*
 * o2m_norm.c - softmax, normalisations, reductions, arg-reductions.
 * See o2m_norm.h for the contracts.  No restrict: outputs may alias inputs.
 */
#include "o2m_internal.h"
#include "o2m_norm.h"

/* Softmax (log_form = 0) or log-softmax (1) of one strided line of n values. */
/* exp in float32 operations only, in a fixed order that the simulator repeats
 * (onnx2mcu/ops/norm.py, softmax_exp): k = floor(x log2e + 0.5), r = (x - k ln2_hi) - k ln2_lo,
 * a degree-6 polynomial of r, times 2^k (built from its exponent bits: exact, the result stays
 * a normal float); 0 below -86.  About 2 ulp from the true exp, and the same bits everywhere,
 * so an int8 model's Softmax float island quantizes to the simulator's integers. */
static float softmax_exp(float x)
{
    float kf, r, p;
    union {
        uint32_t u;
        float f;
    } two_k;
    if (x != x) {
        return x;
    }
    if (x < -86.0f) {
        return 0.0f;
    }
    kf = floorf(x * 1.44269504f + 0.5f);
    r = (x - kf * 0.693145752f) - kf * 1.42860677e-6f;
    p = 1.38888889e-3f;
    p = p * r + 8.33333333e-3f;
    p = p * r + 4.16666667e-2f;
    p = p * r + 1.66666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    two_k.u = (uint32_t)((int32_t)kf + 127) << 23;
    return p * two_k.f;
}

static void softmax_line(int32_t n, int32_t stride, const float *x, float *y, int32_t log_form)
{
    float mx = -INFINITY;
    float sum = 0.0f;
    int32_t k;
    for (k = 0; k < n; ++k) {
        const float v = x[(size_t)k * stride];
        mx = v > mx ? v : mx;
    }
    if (log_form) {
        float log_sum;
        for (k = 0; k < n; ++k) {
            sum += expf(x[(size_t)k * stride] - mx);
        }
        log_sum = logf(sum);
        /* (x - max) first: x - (max + log_sum) would round away small differences of large x */
        for (k = 0; k < n; ++k) {
            y[(size_t)k * stride] = (x[(size_t)k * stride] - mx) - log_sum;
        }
    } else {
        float inv;
        for (k = 0; k < n; ++k) {
            const float e = softmax_exp(x[(size_t)k * stride] - mx);
            y[(size_t)k * stride] = e;
            sum += e;
        }
        inv = 1.0f / sum;
        for (k = 0; k < n; ++k) {
            y[(size_t)k * stride] *= inv;
        }
    }
}

static void softmax_view(int32_t outer, int32_t n, int32_t inner, const float *x, float *y,
                         int32_t log_form)
{
    int32_t o, i;
    for (o = 0; o < outer; ++o) {
        const size_t base = (size_t)o * n * inner;
        for (i = 0; i < inner; ++i) {
            softmax_line(n, inner, x + base + i, y + base + i, log_form);
        }
    }
}

void o2m_softmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y)
{
    softmax_view(outer, n, inner, x, y, 0);
}

void o2m_logsoftmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y)
{
    softmax_view(outer, n, inner, x, y, 1);
}

void o2m_layernorm_f32(int32_t outer, int32_t n, const float *x, const float *gamma,
                       const float *beta, float eps, float *y)
{
    int32_t o, k;
    for (o = 0; o < outer; ++o) {
        const float *xr = x + (size_t)o * n;
        float *yr = y + (size_t)o * n;
        float sum = 0.0f, sq = 0.0f, mean, inv;
        for (k = 0; k < n; ++k) {
            sum += xr[k];
        }
        mean = sum / (float)n;
        for (k = 0; k < n; ++k) {
            const float d = xr[k] - mean;
            sq += d * d;
        }
        inv = 1.0f / sqrtf(sq / (float)n + eps);
        for (k = 0; k < n; ++k) {
            float v = (xr[k] - mean) * inv;
            if (gamma) {
                v *= gamma[k];
            }
            if (beta) {
                v += beta[k];
            }
            yr[k] = v;
        }
    }
}

void o2m_batchnorm_f32(int32_t n, int32_t c, int32_t hw, const float *x, const float *scale,
                       const float *shift, float *y)
{
    int32_t b, ch, i;
    for (b = 0; b < n; ++b) {
        for (ch = 0; ch < c; ++ch) {
            const size_t base = ((size_t)b * c + ch) * hw;
            const float s = scale[ch];
            const float t = shift[ch];
            for (i = 0; i < hw; ++i) {
                y[base + i] = x[base + i] * s + t;
            }
        }
    }
}

void o2m_batchnorm_stats_f32(int32_t n, int32_t c, int32_t hw, const float *x,
                             const float *gamma, const float *beta, const float *mean,
                             const float *var, float eps, float *y)
{
    int32_t b, ch, i;
    for (b = 0; b < n; ++b) {
        for (ch = 0; ch < c; ++ch) {
            const size_t base = ((size_t)b * c + ch) * hw;
            const float s = gamma[ch] / sqrtf(var[ch] + eps);
            const float m = mean[ch];
            const float t = beta[ch];
            for (i = 0; i < hw; ++i) {
                y[base + i] = (x[base + i] - m) * s + t;
            }
        }
    }
}

/* One reduction of n values spaced `stride` apart. */
static float reduce_line(int32_t kind, int32_t n, int32_t stride, const float *x)
{
    float acc;
    int32_t k;
    switch (kind) {
    case O2M_REDUCE_MAX:
        acc = -INFINITY;
        for (k = 0; k < n; ++k) {
            const float v = x[(size_t)k * stride];
            acc = (v > acc || v != v) ? v : acc;
        }
        return acc;
    case O2M_REDUCE_MIN:
        acc = INFINITY;
        for (k = 0; k < n; ++k) {
            const float v = x[(size_t)k * stride];
            acc = (v < acc || v != v) ? v : acc;
        }
        return acc;
    case O2M_REDUCE_PROD:
        acc = 1.0f;
        for (k = 0; k < n; ++k) {
            acc *= x[(size_t)k * stride];
        }
        return acc;
    case O2M_REDUCE_L1:
        acc = 0.0f;
        for (k = 0; k < n; ++k) {
            acc += fabsf(x[(size_t)k * stride]);
        }
        return acc;
    case O2M_REDUCE_L2:
    case O2M_REDUCE_SUMSQUARE:
        acc = 0.0f;
        for (k = 0; k < n; ++k) {
            const float v = x[(size_t)k * stride];
            acc += v * v;
        }
        return kind == O2M_REDUCE_L2 ? sqrtf(acc) : acc;
    case O2M_REDUCE_LOGSUMEXP: {
        float mx = -INFINITY;
        for (k = 0; k < n; ++k) {
            const float v = x[(size_t)k * stride];
            mx = v > mx ? v : mx;
        }
        if (mx == INFINITY || mx == -INFINITY) {
            return mx; /* all -inf (or empty), or a +inf term */
        }
        acc = 0.0f;
        for (k = 0; k < n; ++k) {
            acc += expf(x[(size_t)k * stride] - mx);
        }
        return mx + logf(acc);
    }
    default: /* SUM, MEAN, LOGSUM */
        acc = 0.0f;
        for (k = 0; k < n; ++k) {
            acc += x[(size_t)k * stride];
        }
        if (kind == O2M_REDUCE_MEAN) {
            return acc / (float)n;
        }
        if (kind == O2M_REDUCE_LOGSUM) {
            return logf(acc);
        }
        return acc;
    }
}

void o2m_reduce_f32(int32_t kind, int32_t outer, int32_t n, int32_t inner, const float *x,
                    float *y)
{
    int32_t o, i;
    for (o = 0; o < outer; ++o) {
        const float *xo = x + (size_t)o * n * inner;
        for (i = 0; i < inner; ++i) {
            const float r = reduce_line(kind, n, inner, xo + i);
            y[(size_t)o * inner + i] = r;
        }
    }
}

static void arg_reduce(int32_t outer, int32_t n, int32_t inner, const float *x, int32_t last,
                       int32_t want_max, int64_t *y)
{
    int32_t o, i, k;
    for (o = 0; o < outer; ++o) {
        const float *xo = x + (size_t)o * n * inner;
        for (i = 0; i < inner; ++i) {
            int32_t best = 0;
            float bv = xo[i];
            for (k = 1; k < n; ++k) {
                const float v = xo[(size_t)k * inner + i];
                const int32_t better = want_max ? (last ? v >= bv : v > bv)
                                                : (last ? v <= bv : v < bv);
                if (better) {
                    bv = v;
                    best = k;
                }
            }
            y[(size_t)o * inner + i] = best;
        }
    }
}

void o2m_argmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x,
                    int32_t select_last_index, int64_t *y)
{
    arg_reduce(outer, n, inner, x, select_last_index, 1, y);
}

void o2m_argmin_f32(int32_t outer, int32_t n, int32_t inner, const float *x,
                    int32_t select_last_index, int64_t *y)
{
    arg_reduce(outer, n, inner, x, select_last_index, 0, y);
}
