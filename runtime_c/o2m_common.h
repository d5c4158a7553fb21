/*
 * o2m_common.h - types shared by every onnx2mcu runtime kernel.
 *
 * Conventions for all kernels (see o2m_kernels.h for the list):
 *   - C99, no dynamic memory, no VLAs, no recursion.  Kernels never allocate;
 *     none of the float32 kernels needs scratch memory (see each contract).
 *   - Tensors are dense, row-major (C order) unless a kernel takes strides.
 *     Sizes, counts and strides are int32_t and count ELEMENTS, not bytes,
 *     except `elem_size`, which is the size of one element in bytes.
 *   - Unless a contract says otherwise, an output must not overlap any input.
 *     Kernels documented as "in-place: yes" accept an output pointer equal to
 *     the named input pointer (exactly equal, not a partial overlap).
 *   - bool tensors are uint8_t holding 0 or 1 (like numpy's bool).
 *   - Accumulation is sequential in the documented order, so a result only
 *     depends on the inputs, never on tiling or on the target.
 */
#ifndef O2M_COMMON_H
#define O2M_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Largest rank accepted by the broadcasting, pad and transpose kernels. */
#define O2M_MAX_DIMS 6
/* Largest rank accepted by o2m_copy_nd (Tile of a 4-D tensor needs 8). */
#define O2M_COPY_MAX_DIMS 8
/* Largest number of batch dimensions of o2m_matmul_f32. */
#define O2M_MATMUL_MAX_BATCH 4

/* Fused activation kinds (o2m_act.kind). */
#define O2M_ACT_NONE 0  /* y = v                        */
#define O2M_ACT_RELU 1  /* y = max(v, 0)                */
#define O2M_ACT_RELU6 2 /* y = min(max(v, 0), 6)        */
#define O2M_ACT_CLIP 3  /* y = min(max(v, min), max)    */

/* Activation fused into conv / gemm / matmul outputs.  `min`/`max` are read
 * only for O2M_ACT_CLIP.  NaN passes through every kind unchanged. */
typedef struct {
    int32_t kind;
    float min;
    float max;
} o2m_act;

#endif /* O2M_COMMON_H */
