/*
 * o2m_s8_pool.h - int8 MaxPool, AveragePool and Mean (NCHW).  Input and
 * output of the pools share scale and zero point (TFLite's contract).
 * Conventions: o2m_s8_common.h.  Bit-exact with onnx2mcu.ops.int8_ref.
 */
#ifndef O2M_S8_POOL_H
#define O2M_S8_POOL_H

#include "o2m_s8_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t n, c;
    int32_t h_in, w_in, h_out, w_out;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;   /* bottom/right pads live in h_out / w_out */
    int32_t act_min, act_max;    /* fused activation bounds (-128, 127 for none) */
    int32_t count_include_pad;   /* avgpool: divide by k_h*k_w, padded taps hold pad_value */
    int32_t pad_value;           /* the input zero point (a real 0) */
} o2m_pool2d_s8_params;

/* Max over the taps inside the input (every window must hold one), clamped. */
void o2m_maxpool2d_s8(const o2m_pool2d_s8_params *p, const int8_t *x, int8_t *y);

/* sum / count rounded half away from zero (count: valid taps, or k_h*k_w with
 * count_include_pad), clamped.  Raw int8 values are summed: no rescale. */
void o2m_avgpool2d_s8(const o2m_pool2d_s8_params *p, const int8_t *x, int8_t *y);

#define O2M_S8_MEAN_RESCALE 0 /* TFLite's spatial mean: requant(sum(x - zp_in)) / count + zp_out */
#define O2M_S8_MEAN_SAME 1    /* equal in/out quantization: raw sum / count, rounded */
#define O2M_S8_MEAN_FLOAT 2   /* onnxruntime's: round_half_even((float)sum(x - zp_in) * scale) + zp_out */

typedef struct {
    int32_t method;                /* O2M_S8_MEAN_* */
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier, shift;     /* s_in / s_out (method RESCALE) */
    float scale;                   /* s_in / (s_out * reduce) (method FLOAT) */
} o2m_mean_s8_params;

/* Mean over the middle axis of x [outer, reduce, inner] -> y [outer, inner]
 * (GlobalAveragePool: outer = N*C, reduce = H*W, inner = 1).  Division by
 * reduce rounds half away from zero. */
void o2m_mean_s8(const o2m_mean_s8_params *p, int32_t outer, int32_t reduce, int32_t inner, const int8_t *x,
                 int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_POOL_H */
