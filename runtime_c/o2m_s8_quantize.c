/*
 * o2m_s8_quantize.c - TFLite's float -> int8 QUANTIZE.  See o2m_s8_quantize.h.
 *
 * round_half_away_from_zero(v) for |v| <= 2^20 from one truncating conversion of 2v (exact: a
 * power-of-two scaling): with t = trunc(2v), round(v) = (t + (t >= 0)) >> 1 (>> flooring).
 * For v >= 0, t = floor(2|v|) and (t + 1) >> 1 = floor((floor(2|v|) + 1) / 2) = floor(|v| + 1/2),
 * the rounding half up std::round applies to |v|; for v < 0, t = -floor(2|v|) and
 * floor(t / 2) = -ceil(floor(2|v|) / 2) = -floor((floor(2|v|) + 1) / 2), the same with the sign
 * flipped (-0.5 < v < 0 gives t = 0, hence 0).  + zero_point rides inside the shift as
 * + 2*zero_point.  Beyond |v| = 2^20 the result saturates whatever the rounding
 * (|zero_point| <= 128), so t may be clamped to [-2^21, 2^21 - 1] first; NaN gives t = 0, hence
 * zero_point.  The Cortex-M form converts with VCVT to fixed point with one fraction bit (trunc(2v),
 * saturating, NaN -> 0, as the explicit clamps of the portable form) and clamps with SSAT (the
 * last one shifting by 1 on the way); both equal the reference loop (onnx2mcu.ops.int8,
 * QuantizeInt8):
 *   a = |v| (NaN: 0) clamped to 2^20; q = trunc(a) + (a - trunc(a) >= 0.5); sign; + zp; saturate.
 */
#include <string.h>

#include "o2m_s8_quantize.h"

#if defined(__GNUC__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define O2M_Q_ARM 1
/* trunc(2v) saturated to [-2^21, 2^21 - 1] (NaN -> 0): VCVT.S32.F32 #1 (to fixed point with one
 * fraction bit, truncating, saturating), SSAT #22. */
static inline int32_t trunc2_sat(float v)
{
    int32_t i, r;
    __asm__("vcvt.s32.f32 %0, %0, #1" : "+t"(v));
    memcpy(&i, &v, sizeof i);
    __asm__("ssat %0, #22, %1" : "=r"(r) : "r"(i));
    return r;
}

/* (x >> 1) saturated to [-128, 127]: SSAT #8 with ASR #1. */
static inline int32_t half_sat8(int32_t x)
{
    int32_t r;
    __asm__("ssat %0, #8, %1, asr #1" : "=r"(r) : "r"(x));
    return r;
}
#endif

void o2m_quantize_away_s8(int32_t n, const float *x, float scale, int32_t zero_point, int8_t *y)
{
    const int32_t c = 1 + 2 * zero_point;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i] / scale;
        int32_t t;
#ifdef O2M_Q_ARM
        t = trunc2_sat(v);
        y[i] = (int8_t)half_sat8(t - (int32_t)((uint32_t)t >> 31) + c);
#else
        const float v2 = v * 2.0f;
        int32_t q;
        if (v2 != v2) {
            t = 0;
        } else if (v2 <= -2097152.0f) {
            t = -2097152;
        } else if (v2 >= 2097151.0f) {
            t = 2097151;
        } else {
            t = (int32_t)v2;
        }
        q = (t - (int32_t)((uint32_t)t >> 31) + c) >> 1;
        y[i] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
#endif
    }
}
