/*
 * o2m_internal.h - helpers shared by the kernel sources; not a public API.
 */
#ifndef O2M_INTERNAL_H
#define O2M_INTERNAL_H

#include <math.h>

#include "o2m_common.h"

/* A static function that must be inlined (so that constant arguments fold). */
#if defined(__GNUC__) || defined(__clang__)
#define O2M_FORCE_INLINE static inline __attribute__((always_inline))
#else
#define O2M_FORCE_INLINE static inline
#endif

/*
 * O2M_MAC(acc, a, b) = acc + a * b.  One fused multiply-add (a single rounding) where the
 * target does it in hardware: FP_FAST_FMAF (C99 math.h) or the compiler's __FP_FAST_FMAF
 * (newlib's math.h does not define the former; GCC predefines the latter for Cortex-M4F and
 * M7: VFMA.F32).  Elsewhere a multiply and an add, as the portable kernels compute (the
 * projects build with -ffp-contract=off, so the compiler fuses nothing by itself).  Only the
 * register-tiled kernels use it, so their results may differ from the portable kernels'
 * in the last bits on such targets.
 */
#if defined(FP_FAST_FMAF) || defined(__FP_FAST_FMAF)
#define O2M_MAC(acc, a, b) fmaf((a), (b), (acc))
#define O2M_MAC_FUSED 1
#else
#define O2M_MAC(acc, a, b) ((acc) + (a) * (b))
#define O2M_MAC_FUSED 0
#endif

/* Lower and upper bound that implement an o2m_act as a clamp. */
static inline void o2m__act_bounds(const o2m_act *act, float *lo, float *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    switch (act->kind) {
    case O2M_ACT_RELU:
        *lo = 0.0f;
        break;
    case O2M_ACT_RELU6:
        *lo = 0.0f;
        *hi = 6.0f;
        break;
    case O2M_ACT_CLIP:
        *lo = act->min;
        *hi = act->max;
        break;
    default:
        break;
    }
}

/* Clamp that lets NaN through (comparisons with NaN are false). */
static inline float o2m__clamp(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/*
 * Taps k in [0, k_size) whose position start + k * dilation falls inside
 * [0, size): the range is [*lo, *hi) (empty when *hi <= *lo).
 */
static inline void o2m__tap_range(int32_t start, int32_t size, int32_t k_size, int32_t dilation,
                                  int32_t *lo, int32_t *hi)
{
    int32_t first = 0;
    int32_t last;
    if (start < 0) {
        first = (-start + dilation - 1) / dilation;
    }
    if (start > size - 1) {
        *lo = 0;
        *hi = 0;
        return;
    }
    last = (size - 1 - start) / dilation + 1;
    *lo = first;
    *hi = last < k_size ? last : k_size;
}

/* Round half to even, independent of the floating-point environment. */
static inline float o2m__round_half_even(float v)
{
    const float f = floorf(v);
    const float d = v - f;
    if (d > 0.5f) {
        return f + 1.0f;
    }
    if (d < 0.5f) {
        return f;
    }
    /* exactly halfway: pick the even neighbour */
    return (fmodf(f, 2.0f) == 0.0f) ? f : f + 1.0f;
}

#endif /* O2M_INTERNAL_H */
