/*
 * o2m_tensor.h - data movement: strided copy (slice, expand, tile, concat,
 * split, transpose), pad, gather, depth/space rearrangement, casts.
 *
 * Data-movement kernels are type-agnostic: `elem_size` is the element size
 * in bytes (1, 2, 4 and 8 are fast paths; any size works).  Strides count
 * elements.  None needs scratch memory; none runs in place unless stated.
 */
#ifndef O2M_TENSOR_H
#define O2M_TENSOR_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Generic N-d strided copy, rank 0..O2M_COPY_MAX_DIMS:
 *   for every index (i0..i_{r-1}) < dims:
 *     dst[sum i_d * dst_strides[d]] = src[sum i_d * src_strides[d]]
 * `src` / `dst` point at the element of index (0, ..., 0); strides may be
 * negative (reversed slices) or 0 in src (Expand, Tile as a 2r-D view).
 * dst_strides == NULL means dst is dense with shape dims.
 *   Slice:     src = x + start offset, src_strides = step * x strides.
 *   Expand:    src_strides 0 on broadcast dims.
 *   Concat:    one call per input, dst = y + offset, dst_strides = y strides.
 *   Transpose: see o2m_transpose.
 * src and dst must not overlap.
 */
void o2m_copy_nd(int32_t rank, const int32_t *dims, const void *src, const int32_t *src_strides,
                 void *dst, const int32_t *dst_strides, int32_t elem_size);

/* y = x.transpose(perm) for dense x of shape in_dims (rank <= O2M_COPY_MAX_DIMS). */
void o2m_transpose(int32_t rank, const int32_t *in_dims, const int32_t *perm, const void *x,
                   void *y, int32_t elem_size);

/*
 * `blocks` runs of `bytes` bytes each: run b from src + b * src_stride to
 * dst + b * dst_stride (strides in bytes).  TiledRows gathers the rows of a
 * tile into its scratch with it and scatters them back.
 */
void o2m_copy_blocks(int32_t blocks, int32_t bytes, const void *src, int32_t src_stride,
                     void *dst, int32_t dst_stride);

/*
 * Concat of `count` dense inputs along one axis, each viewed as
 * [outer, sizes[j]] where sizes[j] = (axis dim of input j) * inner;
 * y is [outer, sum sizes].
 */
void o2m_concat(int32_t outer, int32_t count, const void *const *inputs, const int32_t *sizes,
                void *y, int32_t elem_size);
/* The inverse: x [outer, sum sizes] -> outputs[j] [outer, sizes[j]]. */
void o2m_split(int32_t outer, int32_t count, const void *x, const int32_t *sizes,
               void *const *outputs, int32_t elem_size);

/* Pad modes. */
#define O2M_PAD_CONSTANT 0
#define O2M_PAD_REFLECT 1 /* mirror without repeating the edge (numpy 'reflect') */
#define O2M_PAD_EDGE 2    /* repeat the edge */
#define O2M_PAD_WRAP 3    /* periodic */

/*
 * Pad (rank 1..O2M_MAX_DIMS): y[j] = x[map(j - pads_begin)] per dim, where
 * map leaves in-range indices alone and otherwise follows `mode`; in
 * constant mode an out-of-range index gives *value (elem_size bytes; zero
 * bytes when value is NULL).  out_dims[d] = in_dims[d] + begin + end is
 * computed by the caller; negative pads crop.
 */
void o2m_pad(int32_t mode, int32_t rank, const int32_t *in_dims, const int32_t *out_dims,
             const int32_t *pads_begin, const void *x, const void *value, void *y,
             int32_t elem_size);

/*
 * Gather along one axis: x [outer, axis_dim, inner], indices [count],
 * y [outer, count, inner]:  y[o][j][:] = x[o][idx[j]][:].
 * Negative indices count from the end; indices still out of range are
 * clamped to [0, axis_dim - 1] (never read out of bounds).
 */
void o2m_gather(int32_t outer, int32_t axis_dim, int32_t inner, int32_t count, const void *x,
                const int64_t *indices, void *y, int32_t elem_size);
void o2m_gather_s32(int32_t outer, int32_t axis_dim, int32_t inner, int32_t count,
                    const void *x, const int32_t *indices, void *y, int32_t elem_size);

/*
 * DepthToSpace: x [n, c, h, w] -> y [n, c / (b*b), h*b, w*b].
 * crd = 0: DCR mode (ONNX default), x channel (i*b + j) * (c/(b*b)) + oc;
 * crd = 1: CRD mode, x channel oc * b*b + i*b + j.
 */
void o2m_depth_to_space(int32_t n, int32_t c, int32_t h, int32_t w, int32_t block, int32_t crd,
                        const void *x, void *y, int32_t elem_size);
/* SpaceToDepth: x [n, c, h, w] -> y [n, c*b*b, h/b, w/b], y channel (i*b + j) * c + ic. */
void o2m_space_to_depth(int32_t n, int32_t c, int32_t h, int32_t w, int32_t block, const void *x,
                        void *y, int32_t elem_size);

/*
 * Casts, y[i] = (TO)x[i].  Float to integer truncates toward zero and
 * saturates; NaN gives 0.  Anything to bool: != 0 (NaN is true).  Bool in:
 * any non-zero byte is 1.  In-place: only when the element sizes are equal
 * (f32 <-> s32).
 */
void o2m_cast_f32_s64(int32_t n, const float *x, int64_t *y);
void o2m_cast_f32_s32(int32_t n, const float *x, int32_t *y);
void o2m_cast_f32_b8(int32_t n, const float *x, uint8_t *y);
void o2m_cast_s64_f32(int32_t n, const int64_t *x, float *y);
void o2m_cast_s32_f32(int32_t n, const int32_t *x, float *y);
void o2m_cast_b8_f32(int32_t n, const uint8_t *x, float *y);
void o2m_cast_s64_s32(int32_t n, const int64_t *x, int32_t *y); /* wraps like numpy */
void o2m_cast_s32_s64(int32_t n, const int32_t *x, int64_t *y);
void o2m_cast_s64_b8(int32_t n, const int64_t *x, uint8_t *y);
void o2m_cast_s32_b8(int32_t n, const int32_t *x, uint8_t *y);
void o2m_cast_b8_s64(int32_t n, const uint8_t *x, int64_t *y);
void o2m_cast_b8_s32(int32_t n, const uint8_t *x, int32_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_TENSOR_H */
