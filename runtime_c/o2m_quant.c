/*
 * o2m_quant.c - QuantizeLinear / DequantizeLinear.  See o2m_quant.h.
 */
#include "o2m_internal.h"
#include "o2m_quant.h"

/* Quantize may run in place (y starting at x: onnx2mcu/memory.py, shrinking in place): the
 * elements go forward, so output byte i overwrites only input float i / 4, already read. */

/* round(x / scale) + zp, saturated to [lo, hi]. */
static int32_t quantize_one(float v, float scale, int32_t zp, int32_t lo, int32_t hi)
{
    float q = o2m__round_half_even(v / scale);
    if (q != q) {
        q = 0.0f;
    }
    q += (float)zp;
    if (q <= (float)lo) {
        return lo;
    }
    if (q >= (float)hi) {
        return hi;
    }
    return (int32_t)q;
}

#define O2M_DEFINE_QUANT(SUFFIX, T, LO, HI)                                                        \
    void o2m_quantize_##SUFFIX(int32_t outer, int32_t axis_dim, int32_t inner, const float *x,     \
                               const float *scale, const T *zero_point, T *y)                      \
    {                                                                                              \
        int32_t o, a, i;                                                                           \
        for (o = 0; o < outer; ++o) {                                                              \
            for (a = 0; a < axis_dim; ++a) {                                                       \
                const size_t base = ((size_t)o * axis_dim + a) * inner;                            \
                const float s = scale[a];                                                          \
                const int32_t zp = zero_point ? (int32_t)zero_point[a] : 0;                        \
                for (i = 0; i < inner; ++i) {                                                      \
                    y[base + i] = (T)quantize_one(x[base + i], s, zp, LO, HI);                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

#define O2M_DEFINE_DEQUANT(SUFFIX, T, W)                                                           \
    void o2m_dequantize_##SUFFIX(int32_t outer, int32_t axis_dim, int32_t inner, const T *x,       \
                                 const float *scale, const T *zero_point, float *y)                \
    {                                                                                              \
        int32_t o, a, i;                                                                           \
        for (o = 0; o < outer; ++o) {                                                              \
            for (a = 0; a < axis_dim; ++a) {                                                       \
                const size_t base = ((size_t)o * axis_dim + a) * inner;                            \
                const float s = scale[a];                                                          \
                const W zp = zero_point ? (W)zero_point[a] : 0;                                    \
                for (i = 0; i < inner; ++i) {                                                      \
                    y[base + i] = (float)((W)x[base + i] - zp) * s;                                \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

O2M_DEFINE_QUANT(s8, int8_t, -128, 127)
O2M_DEFINE_QUANT(u8, uint8_t, 0, 255)
/* W: a type wide enough for x - zero_point (int64 only where needed: on
 * Cortex-M an int64 -> float conversion is a library call) */
O2M_DEFINE_DEQUANT(s8, int8_t, int32_t)
O2M_DEFINE_DEQUANT(u8, uint8_t, int32_t)
O2M_DEFINE_DEQUANT(s32, int32_t, int64_t)
