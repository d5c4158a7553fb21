/*
 * o2m_s8_quantize.c - TFLite's float -> int8 QUANTIZE.  See o2m_s8_quantize.h.
 *
 * round_half_away_from_zero(v) for |v| <= 2^20 from one truncating conversion of 2v (exact: a
 * power-of-two scaling): with t = trunc(2v), round(v) = trunc((t + sign(t)) / 2), sign(0) = +1.
 * For v >= 0, t = floor(2|v|) and (t + 1) / 2 truncated is floor((floor(2|v|) + 1) / 2) =
 * floor(|v| + 1/2), the rounding half up std::round applies to |v|; for v < 0 the same with the
 * sign flipped (-0.5 < v < 0 gives t = 0, hence 0).  Beyond |v| = 2^20 the result saturates
 * whatever the rounding (|zero_point| <= 128), so t may be clamped to [-2^21, 2^21 - 1] first;
 * NaN gives t = 0, hence zero_point.  The Cortex-M form does the conversion with VCVT (which
 * saturates and maps NaN to 0, as the explicit clamps of the portable form do) and the clamps
 * with SSAT; both equal the reference loop (onnx2mcu.ops.int8, QuantizeInt8):
 *   a = |v| (NaN: 0) clamped to 2^20; q = trunc(a) + (a - trunc(a) >= 0.5); sign; + zp; saturate.
 */
#include <string.h>

#include "o2m_s8_quantize.h"

#if defined(__GNUC__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define O2M_Q_ARM 1
/* trunc(v), saturated to int32, NaN -> 0: one VCVT.S32.F32. */
static inline int32_t trunc_sat(float v)
{
    float r;
    int32_t i;
    __asm__("vcvt.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    memcpy(&i, &r, sizeof i);
    return i;
}
#define O2M_SSAT(v, bits) __extension__({                         \
    int32_t r_;                                                    \
    __asm__("ssat %0, %1, %2" : "=r"(r_) : "I"(bits), "r"(v));    \
    r_;                                                            \
})
#endif

void o2m_quantize_away_s8(int32_t n, const float *x, float scale, int32_t zero_point, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v2 = (x[i] / scale) * 2.0f;
        int32_t t, q;
#ifdef O2M_Q_ARM
        t = O2M_SSAT(trunc_sat(v2), 22);
#else
        if (v2 != v2) {
            t = 0;
        } else if (v2 <= -2097152.0f) {
            t = -2097152;
        } else if (v2 >= 2097151.0f) {
            t = 2097151;
        } else {
            t = (int32_t)v2;
        }
#endif
        q = (t + ((t >> 31) | 1)) / 2 + zero_point;
#ifdef O2M_Q_ARM
        y[i] = (int8_t)O2M_SSAT(q, 8);
#else
        y[i] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
#endif
    }
}
