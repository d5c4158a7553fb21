/*
 * o2m_s8_softmax.h - int8 Softmax with TFLite's fixed-point arithmetic.
 * Conventions: o2m_s8_common.h.  Bit-exact with onnx2mcu.qmath.softmax_s8.
 */
#ifndef O2M_S8_SOFTMAX_H
#define O2M_S8_SOFTMAX_H

#include "o2m_s8_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Differences x - max(x) are scaled into Q5.26 by (input_multiplier,
 * input_left_shift) (beta * input_scale folded in); those below diff_min
 * give exp = 0.  Output scale 1/256, zero point -128. */
typedef struct {
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} o2m_softmax_s8_params;

/* Softmax along the middle axis of x [outer, axis_dim, inner] (ONNX axis
 * view; inner = 1 for the last axis).  Not in place. */
void o2m_softmax_s8(const o2m_softmax_s8_params *p, int32_t outer, int32_t axis_dim, int32_t inner,
                    const int8_t *x, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_SOFTMAX_H */
