/*
 * o2m_resize.h - Resize (nearest / linear / cubic, any coordinate transform) as
 * separable taps computed at compile time.
 *
 * Per dim d (rank <= O2M_MAX_DIMS) and output index o: taps[d] input indices
 * idx[off[d] + o * taps[d] + t] with weights w[...]; y is the sum over every
 * combination of one tap per dim of the product of the weights times x at
 * those indices (accumulated in double).  An idx of -1 at the first tap of
 * (d, o) marks an output outside the crop (tf_crop_and_resize): it gets
 * `extrapolation`.  Copied and included only when a model resizes.
 */
#ifndef O2M_RESIZE_H
#define O2M_RESIZE_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

void o2m_resize_f32(int32_t rank, const int32_t *in_dims, const int32_t *out_dims,
                    const int32_t *taps, const int32_t *off, const int32_t *idx, const float *w,
                    float extrapolation, const float *x, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_RESIZE_H */
