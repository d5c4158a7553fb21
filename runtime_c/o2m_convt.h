/*
 * o2m_convt.h - ConvTranspose (float32) over 1 to 3 spatial dims, with groups,
 * strides, dilations, pads / output_padding (given as the crop `begin` into the
 * full output) and an optional bias.  Output-driven: each output element sums
 * the input pixels and kernel taps that land on it, so no scratch is needed.
 * x [n, groups * cg, in...], w [groups * cg, mg, k...], y [n, groups * mg, out...].
 * geom: n, groups, cg, mg, then per dim (3, unused dims 1 / 0): in, out, kernel,
 * stride, dilation, begin.  Copied and included only when a model uses it.
 */
#ifndef O2M_CONVT_H
#define O2M_CONVT_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

void o2m_conv_transpose_f32(const int32_t *geom, const float *x, const float *w,
                            const float *bias, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_CONVT_H */
