/*
 * o2m_elementwise.c - unary, binary (broadcasting), where, prelu.
 * See o2m_elementwise.h for the contracts.
 *
 * Pointers here are deliberately not `restrict`: outputs may alias inputs
 * (each element is read before the element at the same index is written).
 */
#include "o2m_elementwise.h"
#include "o2m_internal.h"

/* ======================================================= N-d broadcasting
 * The broadcasting kernels walk the output (dense, shape dims) row by row;
 * up to three operands follow it with their own element strides.  Before
 * walking, dims of size 1 are dropped and neighbouring dims that are
 * contiguous for every operand are merged, so a same-shape call becomes a
 * single row.
 */
typedef void (*row_fn)(int32_t n, const void *a, int32_t as, const void *b, int32_t bs,
                       const void *c, int32_t cs, void *y);

static void nd_walk(int32_t rank, const int32_t *dims, const int32_t *as, const int32_t *bs,
                    const int32_t *cs, const void *a, int32_t ea, const void *b, int32_t eb,
                    const void *c, int32_t ec, void *y, int32_t ey, row_fn fn)
{
    /* merged dims, innermost first */
    int32_t nd[O2M_MAX_DIMS];
    int32_t ns[3][O2M_MAX_DIMS];
    int32_t idx[O2M_MAX_DIMS];
    int32_t nr = 0;
    int32_t d, rows, r;
    ptrdiff_t oa = 0, ob = 0, oc = 0;
    const char *pa = (const char *)a;
    const char *pb = (const char *)b;
    const char *pc = (const char *)c;
    char *py = (char *)y;

    for (d = 0; d < rank; ++d) {
        if (dims[d] == 0) {
            return; /* empty output */
        }
    }
    for (d = rank - 1; d >= 0; --d) {
        const int32_t sa = as ? as[d] : 0;
        const int32_t sb = bs ? bs[d] : 0;
        const int32_t sc = cs ? cs[d] : 0;
        if (dims[d] == 1) {
            continue;
        }
        if (nr > 0 && sa == ns[0][nr - 1] * nd[nr - 1] && sb == ns[1][nr - 1] * nd[nr - 1] &&
            sc == ns[2][nr - 1] * nd[nr - 1]) {
            nd[nr - 1] *= dims[d];
            continue;
        }
        nd[nr] = dims[d];
        ns[0][nr] = sa;
        ns[1][nr] = sb;
        ns[2][nr] = sc;
        ++nr;
    }
    if (nr == 0) { /* a single element */
        nd[0] = 1;
        ns[0][0] = ns[1][0] = ns[2][0] = 0;
        nr = 1;
    }
    rows = 1;
    for (d = 1; d < nr; ++d) {
        rows *= nd[d];
        idx[d] = 0;
    }
    for (r = 0; r < rows; ++r) {
        fn(nd[0], pa + oa * ea, ns[0][0], pb + ob * eb, ns[1][0], pc ? pc + oc * ec : pc, ns[2][0],
           py + (ptrdiff_t)r * nd[0] * ey);
        for (d = 1; d < nr; ++d) { /* advance the row index, dim 1 fastest */
            oa += ns[0][d];
            ob += ns[1][d];
            oc += ns[2][d];
            if (++idx[d] < nd[d]) {
                break;
            }
            idx[d] = 0;
            oa -= (ptrdiff_t)ns[0][d] * nd[d];
            ob -= (ptrdiff_t)ns[1][d] * nd[d];
            oc -= (ptrdiff_t)ns[2][d] * nd[d];
        }
    }
}

/* ======================================================== binary families
 * EXPR combines `u` (left operand) and `v` (right operand).
 */
#define O2M_DEFINE_BINARY(NAME, T, TS, U, EXPR)                                                    \
    static void NAME##_##TS##_row(int32_t n, const void *pa, int32_t as, const void *pb,           \
                                  int32_t bs, const void *pc, int32_t cs, void *py)                \
    {                                                                                              \
        const T *a = (const T *)pa;                                                                \
        const T *b = (const T *)pb;                                                                \
        U *y = (U *)py;                                                                            \
        int32_t i;                                                                                 \
        (void)pc;                                                                                  \
        (void)cs;                                                                                  \
        if (as == 1 && bs == 1) {                                                                  \
            for (i = 0; i < n; ++i) {                                                              \
                const T u = a[i];                                                                  \
                const T v = b[i];                                                                  \
                y[i] = (U)(EXPR);                                                                  \
            }                                                                                      \
        } else if (bs == 0) {                                                                      \
            const T v = b[0];                                                                      \
            for (i = 0; i < n; ++i) {                                                              \
                const T u = a[(ptrdiff_t)i * as];                                                  \
                y[i] = (U)(EXPR);                                                                  \
            }                                                                                      \
        } else if (as == 0) {                                                                      \
            const T u = a[0];                                                                      \
            for (i = 0; i < n; ++i) {                                                              \
                const T v = b[(ptrdiff_t)i * bs];                                                  \
                y[i] = (U)(EXPR);                                                                  \
            }                                                                                      \
        } else {                                                                                   \
            for (i = 0; i < n; ++i) {                                                              \
                const T u = a[(ptrdiff_t)i * as];                                                  \
                const T v = b[(ptrdiff_t)i * bs];                                                  \
                y[i] = (U)(EXPR);                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    void o2m_##NAME##_##TS(int32_t n, const T *a, const T *b, U *y)                                \
    {                                                                                              \
        int32_t i;                                                                                 \
        for (i = 0; i < n; ++i) {                                                                  \
            const T u = a[i];                                                                      \
            const T v = b[i];                                                                      \
            y[i] = (U)(EXPR);                                                                      \
        }                                                                                          \
    }                                                                                              \
    void o2m_##NAME##_bc_##TS(int32_t outer, int32_t mid, int32_t inner, const T *x, const T *vec, \
                              int32_t v_first, U *y)                                               \
    {                                                                                              \
        int32_t o, m, i;                                                                           \
        for (o = 0; o < outer; ++o) {                                                              \
            const T *xo = x + (size_t)o * mid * inner;                                             \
            U *yo = y + (size_t)o * mid * inner;                                                   \
            if (inner == 1) {                                                                      \
                if (v_first) {                                                                     \
                    for (m = 0; m < mid; ++m) {                                                    \
                        const T u = vec[m];                                                        \
                        const T v = xo[m];                                                         \
                        yo[m] = (U)(EXPR);                                                         \
                    }                                                                              \
                } else {                                                                           \
                    for (m = 0; m < mid; ++m) {                                                    \
                        const T u = xo[m];                                                         \
                        const T v = vec[m];                                                        \
                        yo[m] = (U)(EXPR);                                                         \
                    }                                                                              \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            for (m = 0; m < mid; ++m) {                                                            \
                const T s = vec[m];                                                                \
                const T *xr = xo + (size_t)m * inner;                                              \
                U *yr = yo + (size_t)m * inner;                                                    \
                if (v_first) {                                                                     \
                    const T u = s;                                                                 \
                    for (i = 0; i < inner; ++i) {                                                  \
                        const T v = xr[i];                                                         \
                        yr[i] = (U)(EXPR);                                                         \
                    }                                                                              \
                } else {                                                                           \
                    const T v = s;                                                                 \
                    for (i = 0; i < inner; ++i) {                                                  \
                        const T u = xr[i];                                                         \
                        yr[i] = (U)(EXPR);                                                         \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    void o2m_##NAME##_nd_##TS(int32_t rank, const int32_t *dims, const int32_t *a_strides,         \
                              const int32_t *b_strides, const T *a, const T *b, U *y)              \
    {                                                                                              \
        nd_walk(rank, dims, a_strides, b_strides, NULL, a, (int32_t)sizeof(T), b,                  \
                (int32_t)sizeof(T), NULL, 0, y, (int32_t)sizeof(U), NAME##_##TS##_row);            \
    }

#define O2M_FMAX(u, v) (((u) > (v) || (u) != (u)) ? (u) : (v))
#define O2M_FMIN(u, v) (((u) < (v) || (u) != (u)) ? (u) : (v))

O2M_DEFINE_BINARY(add, float, f32, float, u + v)
O2M_DEFINE_BINARY(sub, float, f32, float, u - v)
O2M_DEFINE_BINARY(mul, float, f32, float, u * v)
O2M_DEFINE_BINARY(div, float, f32, float, u / v)
O2M_DEFINE_BINARY(pow, float, f32, float, powf(u, v))
O2M_DEFINE_BINARY(max, float, f32, float, O2M_FMAX(u, v))
O2M_DEFINE_BINARY(min, float, f32, float, O2M_FMIN(u, v))

O2M_DEFINE_BINARY(add, int64_t, s64, int64_t, u + v)
O2M_DEFINE_BINARY(sub, int64_t, s64, int64_t, u - v)
O2M_DEFINE_BINARY(mul, int64_t, s64, int64_t, u * v)
O2M_DEFINE_BINARY(div, int64_t, s64, int64_t, v == 0 ? 0 : u / v)
O2M_DEFINE_BINARY(max, int64_t, s64, int64_t, u > v ? u : v)
O2M_DEFINE_BINARY(min, int64_t, s64, int64_t, u < v ? u : v)

O2M_DEFINE_BINARY(add, int32_t, s32, int32_t, u + v)
O2M_DEFINE_BINARY(sub, int32_t, s32, int32_t, u - v)
O2M_DEFINE_BINARY(mul, int32_t, s32, int32_t, u * v)
O2M_DEFINE_BINARY(div, int32_t, s32, int32_t, v == 0 ? 0 : u / v)
O2M_DEFINE_BINARY(max, int32_t, s32, int32_t, u > v ? u : v)
O2M_DEFINE_BINARY(min, int32_t, s32, int32_t, u < v ? u : v)

O2M_DEFINE_BINARY(equal, float, f32, uint8_t, u == v)
O2M_DEFINE_BINARY(less, float, f32, uint8_t, u < v)
O2M_DEFINE_BINARY(greater, float, f32, uint8_t, u > v)
O2M_DEFINE_BINARY(less_equal, float, f32, uint8_t, u <= v)
O2M_DEFINE_BINARY(greater_equal, float, f32, uint8_t, u >= v)
O2M_DEFINE_BINARY(equal, int64_t, s64, uint8_t, u == v)
O2M_DEFINE_BINARY(less, int64_t, s64, uint8_t, u < v)
O2M_DEFINE_BINARY(greater, int64_t, s64, uint8_t, u > v)
O2M_DEFINE_BINARY(less_equal, int64_t, s64, uint8_t, u <= v)
O2M_DEFINE_BINARY(greater_equal, int64_t, s64, uint8_t, u >= v)
O2M_DEFINE_BINARY(equal, int32_t, s32, uint8_t, u == v)
O2M_DEFINE_BINARY(less, int32_t, s32, uint8_t, u < v)
O2M_DEFINE_BINARY(greater, int32_t, s32, uint8_t, u > v)
O2M_DEFINE_BINARY(less_equal, int32_t, s32, uint8_t, u <= v)
O2M_DEFINE_BINARY(greater_equal, int32_t, s32, uint8_t, u >= v)
O2M_DEFINE_BINARY(equal, uint8_t, b8, uint8_t, (u != 0) == (v != 0))
O2M_DEFINE_BINARY(logical_and, uint8_t, b8, uint8_t, (u != 0) && (v != 0))
O2M_DEFINE_BINARY(logical_or, uint8_t, b8, uint8_t, (u != 0) || (v != 0))
O2M_DEFINE_BINARY(logical_xor, uint8_t, b8, uint8_t, (u != 0) != (v != 0))

/* ================================================================== where */
#define O2M_DEFINE_WHERE(T, TS)                                                                    \
    static void where_##TS##_row(int32_t n, const void *pc, int32_t cs, const void *pa,            \
                                 int32_t as, const void *pb, int32_t bs, void *py)                 \
    {                                                                                              \
        const uint8_t *c = (const uint8_t *)pc;                                                    \
        const T *a = (const T *)pa;                                                                \
        const T *b = (const T *)pb;                                                                \
        T *y = (T *)py;                                                                            \
        int32_t i;                                                                                 \
        for (i = 0; i < n; ++i) {                                                                  \
            y[i] = c[(ptrdiff_t)i * cs] ? a[(ptrdiff_t)i * as] : b[(ptrdiff_t)i * bs];             \
        }                                                                                          \
    }                                                                                              \
    void o2m_where_nd_##TS(int32_t rank, const int32_t *dims, const int32_t *c_strides,            \
                           const int32_t *a_strides, const int32_t *b_strides,                     \
                           const uint8_t *cond, const T *a, const T *b, T *y)                      \
    {                                                                                              \
        nd_walk(rank, dims, c_strides, a_strides, b_strides, cond, 1, a, (int32_t)sizeof(T), b,    \
                (int32_t)sizeof(T), y, (int32_t)sizeof(T), where_##TS##_row);                      \
    }

O2M_DEFINE_WHERE(float, f32)
O2M_DEFINE_WHERE(int64_t, s64)
O2M_DEFINE_WHERE(int32_t, s32)

/* ================================================================== prelu */
void o2m_prelu_f32(int32_t n, const float *x, const float *slope, float *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = v < 0.0f ? v * slope[i] : v;
    }
}

void o2m_prelu_bc_f32(int32_t outer, int32_t mid, int32_t inner, const float *x,
                      const float *slope, float *y)
{
    int32_t o, m, i;
    for (o = 0; o < outer; ++o) {
        for (m = 0; m < mid; ++m) {
            const float s = slope[m];
            const size_t base = ((size_t)o * mid + m) * inner;
            for (i = 0; i < inner; ++i) {
                const float v = x[base + i];
                y[base + i] = v < 0.0f ? v * s : v;
            }
        }
    }
}

static void prelu_row(int32_t n, const void *pa, int32_t as, const void *pb, int32_t bs,
                      const void *pc, int32_t cs, void *py)
{
    const float *x = (const float *)pa;
    const float *s = (const float *)pb;
    float *y = (float *)py;
    int32_t i;
    (void)pc;
    (void)cs;
    for (i = 0; i < n; ++i) {
        const float v = x[(ptrdiff_t)i * as];
        y[i] = v < 0.0f ? v * s[(ptrdiff_t)i * bs] : v;
    }
}

void o2m_prelu_nd_f32(int32_t rank, const int32_t *dims, const int32_t *slope_strides,
                      const float *x, const float *slope, float *y)
{
    int32_t xs[O2M_MAX_DIMS];
    int32_t d, step = 1;
    for (d = rank - 1; d >= 0; --d) {
        xs[d] = step;
        step *= dims[d];
    }
    nd_walk(rank, dims, xs, slope_strides, NULL, x, 4, slope, 4, NULL, 0, y, 4, prelu_row);
}

/* ================================================================== unary */
#define O2M_DEFINE_UNARY(NAME, T, TS, EXPR)                                                        \
    void o2m_##NAME##_##TS(int32_t n, const T *x, T *y)                                            \
    {                                                                                              \
        int32_t i;                                                                                 \
        for (i = 0; i < n; ++i) {                                                                  \
            const T v = x[i];                                                                      \
            y[i] = (EXPR);                                                                         \
        }                                                                                          \
    }

static inline float sigmoidf_(float v)
{
    if (v >= 0.0f) {
        return 1.0f / (1.0f + expf(-v));
    } else {
        const float e = expf(v);
        return e / (1.0f + e);
    }
}

static inline float softplusf_(float v)
{
    /* log(1 + e^v) = max(v, 0) + log1p(e^-|v|) */
    return (v > 0.0f ? v : 0.0f) + log1pf(expf(-fabsf(v)));
}

static inline float signf_(float v)
{
    return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v); /* keeps 0, -0 and NaN */
}

#define O2M_SQRT1_2 0.70710678118654752440f
#define O2M_SQRT_2_OVER_PI 0.79788456080286535588f

O2M_DEFINE_UNARY(relu, float, f32, v < 0.0f ? 0.0f : v)
O2M_DEFINE_UNARY(sigmoid, float, f32, sigmoidf_(v))
O2M_DEFINE_UNARY(tanh, float, f32, tanhf(v))
O2M_DEFINE_UNARY(erf, float, f32, erff(v))
O2M_DEFINE_UNARY(gelu, float, f32, 0.5f * v * (1.0f + erff(v * O2M_SQRT1_2)))
O2M_DEFINE_UNARY(gelu_tanh, float, f32,
                 0.5f * v * (1.0f + tanhf(O2M_SQRT_2_OVER_PI * (v + 0.044715f * v * v * v))))
O2M_DEFINE_UNARY(hardswish, float, f32, v * o2m__clamp(v * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f))
O2M_DEFINE_UNARY(softplus, float, f32, softplusf_(v))
O2M_DEFINE_UNARY(softsign, float, f32, v / (1.0f + fabsf(v)))
O2M_DEFINE_UNARY(sqrt, float, f32, sqrtf(v))
O2M_DEFINE_UNARY(reciprocal, float, f32, 1.0f / v)
O2M_DEFINE_UNARY(exp, float, f32, expf(v))
O2M_DEFINE_UNARY(log, float, f32, logf(v))
O2M_DEFINE_UNARY(neg, float, f32, -v)
O2M_DEFINE_UNARY(abs, float, f32, fabsf(v))
O2M_DEFINE_UNARY(floor, float, f32, floorf(v))
O2M_DEFINE_UNARY(ceil, float, f32, ceilf(v))
O2M_DEFINE_UNARY(round, float, f32, o2m__round_half_even(v))
O2M_DEFINE_UNARY(sign, float, f32, signf_(v))
O2M_DEFINE_UNARY(neg, int64_t, s64, -v)
O2M_DEFINE_UNARY(abs, int64_t, s64, v < 0 ? -v : v)
O2M_DEFINE_UNARY(neg, int32_t, s32, -v)
O2M_DEFINE_UNARY(abs, int32_t, s32, v < 0 ? -v : v)
O2M_DEFINE_UNARY(not, uint8_t, b8, (uint8_t)(v == 0))

void o2m_clip_f32(int32_t n, const float *x, float *y, float lo, float hi)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = o2m__clamp(x[i], lo, hi);
    }
}

void o2m_hardsigmoid_f32(int32_t n, const float *x, float *y, float alpha, float beta)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = o2m__clamp(alpha * x[i] + beta, 0.0f, 1.0f);
    }
}

void o2m_leakyrelu_f32(int32_t n, const float *x, float *y, float alpha)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = v < 0.0f ? alpha * v : v;
    }
}

void o2m_elu_f32(int32_t n, const float *x, float *y, float alpha)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = v < 0.0f ? alpha * expm1f(v) : v;
    }
}

void o2m_selu_f32(int32_t n, const float *x, float *y, float alpha, float gamma)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = v > 0.0f ? gamma * v : gamma * (alpha * expm1f(v));
    }
}
