/*
 * o2m_dynquant.h - dynamic quantization (onnxruntime's quantize_dynamic):
 * DynamicQuantizeLinear (float32 -> uint8 with a scale computed at run
 * time), MatMulInteger and ConvInteger (8-bit operands with zero points,
 * exact int32 sums).
 *
 * Copied into a project, and included by its model.c, only when the model
 * calls one of these kernels (docs/ARCHITECTURE.md, kernels).  No scratch
 * memory, no allocation, nothing runs in place.
 *
 * The integer kernels accumulate in int32: the caller guarantees that the
 * inner size (k, or c_in / groups * k_h * k_w) is at most 33025, so that no
 * sum of products of two values in [-255, 255] can overflow.  Integer sums
 * are exact, so the result does not depend on the summation order.
 */
#ifndef O2M_DYNQUANT_H
#define O2M_DYNQUANT_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ONNX DynamicQuantizeLinear, float32 arithmetic as onnxruntime's:
 *   lo = min(0, min x), hi = max(0, max x)
 *   scale = hi == lo ? 1.0f : (hi - lo) / 255.0f
 *   zero_point = round_half_even(clamp(0 - lo / scale, 0, 255))
 *   y[i] = clamp(round_half_even(x[i] / scale) + zero_point, 0, 255)
 * Rounding is done by hand (no dependence on the floating-point
 * environment).  Inputs are assumed finite.  y_scale and y_zero_point
 * receive one value each (either may be NULL).
 */
void o2m_dynamic_quantize_u8(int32_t count, const float *x, uint8_t *y, float *y_scale,
                             uint8_t *y_zero_point);

typedef struct {
    int32_t m, n, k; /* each batch: [m, k] x [k, n] -> [m, n] */
    /* broadcast batch dims of the output and the element strides of A and
     * B along them (0: broadcast), as o2m_matmul_params (o2m_linalg.h) */
    int32_t batch_rank;
    int32_t batch_dims[O2M_MATMUL_MAX_BATCH];
    int32_t a_strides[O2M_MATMUL_MAX_BATCH];
    int32_t b_strides[O2M_MATMUL_MAX_BATCH];
    int32_t b_zp_per_column; /* b_zero_point holds n values (else one) */
} o2m_matmul_integer_params;

/*
 * ONNX MatMulInteger (numpy.matmul batching):
 *   y[b][i][j] = sum_k (a[b][i][k] - a_zp) * (b[b][k][j] - b_zp[j or 0])
 * a_zero_point (one value) and b_zero_point may be NULL (0).  Suffix: the
 * element types of A then B.
 */
void o2m_matmul_integer_u8u8(const o2m_matmul_integer_params *p, const uint8_t *a, const uint8_t *b,
                             const uint8_t *a_zero_point, const uint8_t *b_zero_point, int32_t *y);
void o2m_matmul_integer_u8s8(const o2m_matmul_integer_params *p, const uint8_t *a, const int8_t *b,
                             const uint8_t *a_zero_point, const int8_t *b_zero_point, int32_t *y);
void o2m_matmul_integer_s8u8(const o2m_matmul_integer_params *p, const int8_t *a, const uint8_t *b,
                             const int8_t *a_zero_point, const uint8_t *b_zero_point, int32_t *y);
void o2m_matmul_integer_s8s8(const o2m_matmul_integer_params *p, const int8_t *a, const int8_t *b,
                             const int8_t *a_zero_point, const int8_t *b_zero_point, int32_t *y);

typedef struct {
    int32_t n;                   /* batch */
    int32_t c_in, h_in, w_in;    /* input  [n, c_in, h_in, w_in] */
    int32_t c_out, h_out, w_out; /* output [n, c_out, h_out, w_out] */
    int32_t k_h, k_w;            /* kernel; weights [c_out, c_in / groups, k_h, k_w] */
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;   /* bottom/right pads live in h_out / w_out */
    int32_t groups;              /* divides c_in and c_out */
    int32_t w_zp_per_channel;    /* w_zero_point holds c_out values (else one) */
} o2m_conv_integer_params;

/*
 * ONNX ConvInteger, NCHW (1-D: h_in = h_out = k_h = 1):
 *   y[n][oc][oh][ow] = sum_{ic, kh, kw} (x[n][g*cin_g + ic][ih][iw] - x_zp)
 *                                        * (w[oc][ic][kh][kw] - w_zp[oc or 0])
 * with g = oc / (c_out / groups), ih = oh*stride_h - pad_top + kh*dil_h,
 * iw = ow*stride_w - pad_left + kw*dil_w; padded taps contribute 0.
 * x_zero_point (one value) and w_zero_point may be NULL (0).
 */
void o2m_conv_integer_u8u8(const o2m_conv_integer_params *p, const uint8_t *x, const uint8_t *w,
                           const uint8_t *x_zero_point, const uint8_t *w_zero_point, int32_t *y);
void o2m_conv_integer_u8s8(const o2m_conv_integer_params *p, const uint8_t *x, const int8_t *w,
                           const uint8_t *x_zero_point, const int8_t *w_zero_point, int32_t *y);
void o2m_conv_integer_s8u8(const o2m_conv_integer_params *p, const int8_t *x, const uint8_t *w,
                           const int8_t *x_zero_point, const uint8_t *w_zero_point, int32_t *y);
void o2m_conv_integer_s8s8(const o2m_conv_integer_params *p, const int8_t *x, const int8_t *w,
                           const int8_t *x_zero_point, const int8_t *w_zero_point, int32_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_DYNQUANT_H */
