/*
 * o2m_s8_quantize.h - TFLite's QUANTIZE of a float tensor to int8 (per tensor): the rounding
 * of --requant fixed at a model's float input (ONNX's QuantizeLinear, o2m_quant.h, rounds
 * half to even; TFLite rounds half away from zero).  Bit-exact with
 * onnx2mcu.ops.int8 (QuantizeInt8).  Conventions: o2m_s8_common.h.
 */
#ifndef O2M_S8_QUANTIZE_H
#define O2M_S8_QUANTIZE_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = saturate(round_half_away_from_zero(x[i] / scale) + zero_point); NaN gives zero_point.
 * y may start at x (in place, onnx2mcu/memory.py shrinking in place): the loop goes forward and
 * output byte i overwrites only input float i / 4, already read. */
void o2m_quantize_away_s8(int32_t n, const float *x, float scale, int32_t zero_point, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_QUANTIZE_H */
