/*
 * o2m_quant.h - QuantizeLinear / DequantizeLinear (int8, uint8; per tensor
 * or per axis).
 *
 * Axis view: x [outer, axis_dim, inner]; scale (and zero point) hold
 * axis_dim values.  Per tensor is outer = 1, axis_dim = 1, inner = count.
 * No scratch memory; not in place (element sizes differ).
 */
#ifndef O2M_QUANT_H
#define O2M_QUANT_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * y = saturate(round_half_even(x / scale) + zero_point); zero_point may be
 * NULL (0).  NaN gives zero_point.
 */
void o2m_quantize_s8(int32_t outer, int32_t axis_dim, int32_t inner, const float *x,
                     const float *scale, const int8_t *zero_point, int8_t *y);
void o2m_quantize_u8(int32_t outer, int32_t axis_dim, int32_t inner, const float *x,
                     const float *scale, const uint8_t *zero_point, uint8_t *y);

/* y = (float)(x - zero_point) * scale; zero_point may be NULL (0). */
void o2m_dequantize_s8(int32_t outer, int32_t axis_dim, int32_t inner, const int8_t *x,
                       const float *scale, const int8_t *zero_point, float *y);
void o2m_dequantize_u8(int32_t outer, int32_t axis_dim, int32_t inner, const uint8_t *x,
                       const float *scale, const uint8_t *zero_point, float *y);
/* int32 (e.g. quantized biases). */
void o2m_dequantize_s32(int32_t outer, int32_t axis_dim, int32_t inner, const int32_t *x,
                        const float *scale, const int32_t *zero_point, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_QUANT_H */
