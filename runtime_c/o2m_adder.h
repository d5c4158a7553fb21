/*
 * o2m_adder.h - adder (L1-distance) layers, float32 and int8.
 *
 * An adder layer replaces the multiply-accumulate by a negated L1 distance:
 *   acc(i, j) = sum_k |x[i][k] - w[j][k]|,   y = (-acc) * scale[j] + bias[j]
 * (`scale` NULL: no multiplication, `bias` NULL: no addition); graph_opt folds
 * the batch norm that follows an adder layer into scale and bias.
 *
 * float32: acc starts at 0.0f and adds |x - w| for k ascending, one rounding
 *          per operation, so results equal a sequential float32 sum.
 * int8:    acc is an exact int32 (x and w int8, the same zero point); the
 *          float finish is (float)(-acc) * scale + bias.  On Cortex-M4/M7
 *          (__ARM_FEATURE_DSP) four |a - b| are summed per USADA8 after
 *          mapping int8 to uint8 with XOR 0x80 (which keeps |a - b|).
 *
 * GEMM tiles: 2 rows x 4 output channels.  Conv: im2col of two output pixels
 * into caller-provided scratch, then the GEMM tile, so the sum order over the
 * receptive field is (channel, kernel row, kernel column) ascending, and
 * padded taps read `pad` (0 for float; the input zero point for int8).
 * Outputs must not overlap inputs; no kernel allocates.
 */
#ifndef O2M_ADDER_H
#define O2M_ADDER_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t m; /* rows of x */
    int32_t n; /* output channels: rows of w */
    int32_t k; /* reduction length */
} o2m_adder_gemm_params;

/* x: [m, k], w: [n, k], y: [m, n] dense. */
void o2m_adder_gemm_f32(const o2m_adder_gemm_params *p, const float *x, const float *w,
                        const float *scale, const float *bias, float *y);
void o2m_adder_gemm_s8(const o2m_adder_gemm_params *p, const int8_t *x, const int8_t *w,
                       const float *scale, const float *bias, float *y);

typedef struct {
    int32_t n, c_in, h_in, w_in; /* NCHW input */
    int32_t c_out, h_out, w_out; /* NCHW output */
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;
    int32_t pad; /* int8 only: value of padded taps (the input zero point) */
} o2m_adder_conv_params;

/* Scratch elements the conv kernels need (times sizeof the input type). */
#define O2M_ADDER_CONV_SCRATCH(c_in, k_h, k_w) (2 * (c_in) * (k_h) * (k_w))

/*
 * 2-D adder convolution (group 1): x NCHW, w [c_out, c_in, k_h, k_w],
 * y NCHW float.  `scratch` holds O2M_ADDER_CONV_SCRATCH elements of x's type.
 */
void o2m_adder_conv_f32(const o2m_adder_conv_params *p, const float *x, const float *w,
                        const float *scale, const float *bias, float *scratch, float *y);
void o2m_adder_conv_s8(const o2m_adder_conv_params *p, const int8_t *x, const int8_t *w,
                       const float *scale, const float *bias, int8_t *scratch, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_ADDER_H */
