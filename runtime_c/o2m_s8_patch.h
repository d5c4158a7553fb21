/*
 * o2m_s8_patch.h - the data movement of patch-based inference (MCUNetV2): a PatchedChain
 * node (onnx2mcu/ops/patch.py) runs its int8 convs patch by patch on buffers in its
 * scratch, with the o2m_s8_conv / o2m_s8_conv_dsp kernels; these two copy a patch's input
 * region in and its output region out.
 *
 * Copied into a project, and included by its model.c, only when the model has a
 * PatchedChain (docs/ARCHITECTURE.md, kernels).  No scratch, no allocation.
 */
#ifndef O2M_S8_PATCH_H
#define O2M_S8_PATCH_H

#include "o2m_s8_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * dst[ch][r - r0][col - c0] (NCHW, c x (r1 - r0) x (c1 - c0)) for r in [r0, r1), col in
 * [c0, c1) of the image x padded by pad_top / pad_left (and any bottom / right pads): the
 * pixel (r - pad_top, col - pad_left) of x, or pad_value outside x.  x is [1][c][h][w]
 * (nhwc 0) or [1][h][w][c] (nhwc 1: the Transpose to NCHW done on the way).
 */
void o2m_patch_gather_s8(const int8_t *x, int32_t nhwc, int32_t c, int32_t h, int32_t w, int32_t pad_top,
                         int32_t pad_left, int8_t pad_value, int32_t r0, int32_t r1, int32_t c0, int32_t c1,
                         int8_t *dst);

/* y[0][ch][r][col] = src[ch][r - r0][col - c0] for the region; y is [1][c][h][w]. */
void o2m_patch_scatter_s8(const int8_t *src, int32_t c, int32_t h, int32_t w, int32_t r0, int32_t r1,
                          int32_t c0, int32_t c1, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_PATCH_H */
