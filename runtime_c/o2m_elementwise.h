/*
 * o2m_elementwise.h - unary and broadcasting binary elementwise kernels.
 *
 * In-place: every kernel in this file accepts an output pointer equal to an
 * input pointer whose element layout equals the output's (same shape, not
 * broadcast).  Broadcast operands must not overlap the output.
 * No scratch memory.
 *
 * Types suffix:  _f32 float, _s64 int64_t, _s32 int32_t, _b8 bool (uint8_t 0/1).
 */
#ifndef O2M_ELEMENTWISE_H
#define O2M_ELEMENTWISE_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ unary
 * y[i] = f(x[i]) for i in [0, n).  In-place: yes (y == x).
 */
void o2m_relu_f32(int32_t n, const float *x, float *y);
/* y = min(max(x, lo), hi); pass -INFINITY / INFINITY for a missing bound. */
void o2m_clip_f32(int32_t n, const float *x, float *y, float lo, float hi);
void o2m_sigmoid_f32(int32_t n, const float *x, float *y);  /* 1 / (1 + e^-x), no overflow */
void o2m_tanh_f32(int32_t n, const float *x, float *y);
void o2m_erf_f32(int32_t n, const float *x, float *y);
void o2m_gelu_f32(int32_t n, const float *x, float *y);      /* 0.5 x (1 + erf(x / sqrt 2)) */
/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void o2m_gelu_tanh_f32(int32_t n, const float *x, float *y);
/* y = clamp(alpha x + beta, 0, 1)   (ONNX defaults 0.2, 0.5) */
void o2m_hardsigmoid_f32(int32_t n, const float *x, float *y, float alpha, float beta);
void o2m_hardswish_f32(int32_t n, const float *x, float *y); /* x clamp(x/6 + 1/2, 0, 1) */
void o2m_leakyrelu_f32(int32_t n, const float *x, float *y, float alpha); /* x < 0: alpha x */
void o2m_elu_f32(int32_t n, const float *x, float *y, float alpha); /* x < 0: alpha (e^x - 1) */
/* x > 0: gamma x, else gamma alpha (e^x - 1)  (ONNX defaults 1.67326, 1.0507) */
void o2m_selu_f32(int32_t n, const float *x, float *y, float alpha, float gamma);
void o2m_softplus_f32(int32_t n, const float *x, float *y); /* log(1 + e^x), no overflow */
void o2m_softsign_f32(int32_t n, const float *x, float *y); /* x / (1 + |x|) */
void o2m_sqrt_f32(int32_t n, const float *x, float *y);
void o2m_reciprocal_f32(int32_t n, const float *x, float *y);
void o2m_exp_f32(int32_t n, const float *x, float *y);
void o2m_log_f32(int32_t n, const float *x, float *y);
void o2m_neg_f32(int32_t n, const float *x, float *y);
void o2m_abs_f32(int32_t n, const float *x, float *y);
void o2m_floor_f32(int32_t n, const float *x, float *y);
void o2m_ceil_f32(int32_t n, const float *x, float *y);
void o2m_round_f32(int32_t n, const float *x, float *y); /* half to even (ONNX Round) */
void o2m_sign_f32(int32_t n, const float *x, float *y);  /* -1, 0, 1 (NaN stays NaN) */
void o2m_neg_s64(int32_t n, const int64_t *x, int64_t *y);
void o2m_abs_s64(int32_t n, const int64_t *x, int64_t *y);
void o2m_neg_s32(int32_t n, const int32_t *x, int32_t *y);
void o2m_abs_s32(int32_t n, const int32_t *x, int32_t *y);
void o2m_not_b8(int32_t n, const uint8_t *x, uint8_t *y);

/* ------------------------------------------------------- binary, broadcast
 * For OP in add, sub, mul, div, pow, max, min (float; pow and NaN-propagating
 * max / min as numpy) and add, sub, mul, div, max, min (int64, int32;
 * division truncates toward zero, x / 0 gives 0), three forms each:
 *
 *   void o2m_OP_T(int32_t n, const T *a, const T *b, T *y);
 *       same shape: y[i] = a[i] OP b[i].  In-place: y == a or y == b.
 *
 *   void o2m_OP_bc_T(int32_t outer, int32_t mid, int32_t inner,
 *                    const T *x, const T *v, int32_t v_first, T *y);
 *       x, y: [outer, mid, inner]; v: [mid] broadcast over outer and inner.
 *       y[o][m][i] = v_first ? v[m] OP x[o][m][i] : x[o][m][i] OP v[m].
 *       Covers scalar (mid = 1), last-axis (inner = 1) and per-channel NCHW
 *       (outer = N, mid = C, inner = H*W) broadcasts.  In-place: y == x.
 *
 *   void o2m_OP_nd_T(int32_t rank, const int32_t *dims,
 *                    const int32_t *a_strides, const int32_t *b_strides,
 *                    const T *a, const T *b, T *y);
 *       general numpy broadcast, rank 0..O2M_MAX_DIMS: y is dense with shape
 *       dims; a_strides[d] / b_strides[d] are the element strides of each
 *       operand along output dim d (0 where broadcast).  Negative strides
 *       are allowed.  In-place: y == a (or b) when that operand is dense
 *       with the output's shape.
 *
 * Comparisons equal, less, greater, less_equal, greater_equal exist in the
 * same three forms for T = f32, s64, s32 (equal also for b8) and write
 * uint8_t 0/1 to y; logical_and, logical_or, logical_xor exist for u8.
 * Comparisons of f32 / s64 / s32 cannot run in place (the output type
 * differs); the b8 ones can.
 */
#define O2M_DECLARE_BINARY(NAME, T, TS, U)                                                         \
    void o2m_##NAME##_##TS(int32_t n, const T *a, const T *b, U *y);                               \
    void o2m_##NAME##_bc_##TS(int32_t outer, int32_t mid, int32_t inner, const T *x, const T *v,   \
                              int32_t v_first, U *y);                                              \
    void o2m_##NAME##_nd_##TS(int32_t rank, const int32_t *dims, const int32_t *a_strides,         \
                              const int32_t *b_strides, const T *a, const T *b, U *y)

O2M_DECLARE_BINARY(add, float, f32, float);
O2M_DECLARE_BINARY(sub, float, f32, float);
O2M_DECLARE_BINARY(mul, float, f32, float);
O2M_DECLARE_BINARY(div, float, f32, float);
O2M_DECLARE_BINARY(pow, float, f32, float);
O2M_DECLARE_BINARY(max, float, f32, float);
O2M_DECLARE_BINARY(min, float, f32, float);

O2M_DECLARE_BINARY(add, int64_t, s64, int64_t);
O2M_DECLARE_BINARY(sub, int64_t, s64, int64_t);
O2M_DECLARE_BINARY(mul, int64_t, s64, int64_t);
O2M_DECLARE_BINARY(div, int64_t, s64, int64_t);
O2M_DECLARE_BINARY(max, int64_t, s64, int64_t);
O2M_DECLARE_BINARY(min, int64_t, s64, int64_t);

O2M_DECLARE_BINARY(add, int32_t, s32, int32_t);
O2M_DECLARE_BINARY(sub, int32_t, s32, int32_t);
O2M_DECLARE_BINARY(mul, int32_t, s32, int32_t);
O2M_DECLARE_BINARY(div, int32_t, s32, int32_t);
O2M_DECLARE_BINARY(max, int32_t, s32, int32_t);
O2M_DECLARE_BINARY(min, int32_t, s32, int32_t);

O2M_DECLARE_BINARY(equal, float, f32, uint8_t);
O2M_DECLARE_BINARY(less, float, f32, uint8_t);
O2M_DECLARE_BINARY(greater, float, f32, uint8_t);
O2M_DECLARE_BINARY(less_equal, float, f32, uint8_t);
O2M_DECLARE_BINARY(greater_equal, float, f32, uint8_t);
O2M_DECLARE_BINARY(equal, int64_t, s64, uint8_t);
O2M_DECLARE_BINARY(less, int64_t, s64, uint8_t);
O2M_DECLARE_BINARY(greater, int64_t, s64, uint8_t);
O2M_DECLARE_BINARY(less_equal, int64_t, s64, uint8_t);
O2M_DECLARE_BINARY(greater_equal, int64_t, s64, uint8_t);
O2M_DECLARE_BINARY(equal, int32_t, s32, uint8_t);
O2M_DECLARE_BINARY(less, int32_t, s32, uint8_t);
O2M_DECLARE_BINARY(greater, int32_t, s32, uint8_t);
O2M_DECLARE_BINARY(less_equal, int32_t, s32, uint8_t);
O2M_DECLARE_BINARY(greater_equal, int32_t, s32, uint8_t);
O2M_DECLARE_BINARY(equal, uint8_t, b8, uint8_t);
O2M_DECLARE_BINARY(logical_and, uint8_t, b8, uint8_t);
O2M_DECLARE_BINARY(logical_or, uint8_t, b8, uint8_t);
O2M_DECLARE_BINARY(logical_xor, uint8_t, b8, uint8_t);

/* ------------------------------------------------------------------ where
 * y = cond ? a : b with numpy broadcasting (same stride convention as the
 * _nd binaries; cond is uint8_t).  In-place: y == a or y == b when dense
 * with the output's shape.
 */
void o2m_where_nd_f32(int32_t rank, const int32_t *dims, const int32_t *c_strides,
                      const int32_t *a_strides, const int32_t *b_strides, const uint8_t *cond,
                      const float *a, const float *b, float *y);
void o2m_where_nd_s64(int32_t rank, const int32_t *dims, const int32_t *c_strides,
                      const int32_t *a_strides, const int32_t *b_strides, const uint8_t *cond,
                      const int64_t *a, const int64_t *b, int64_t *y);
void o2m_where_nd_s32(int32_t rank, const int32_t *dims, const int32_t *c_strides,
                      const int32_t *a_strides, const int32_t *b_strides, const uint8_t *cond,
                      const int32_t *a, const int32_t *b, int32_t *y);

/* ------------------------------------------------------------------ prelu
 * y = x < 0 ? slope * x : x, slope broadcast to x (x and y dense, same shape).
 * In-place: yes (y == x).
 */
void o2m_prelu_f32(int32_t n, const float *x, const float *slope, float *y); /* slope [n] */
/* x, y [outer, mid, inner], slope [mid] (e.g. per channel) */
void o2m_prelu_bc_f32(int32_t outer, int32_t mid, int32_t inner, const float *x,
                      const float *slope, float *y);
/* x, y dense with shape dims; slope_strides per dim (0 where broadcast) */
void o2m_prelu_nd_f32(int32_t rank, const int32_t *dims, const int32_t *slope_strides,
                      const float *x, const float *slope, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_ELEMENTWISE_H */
