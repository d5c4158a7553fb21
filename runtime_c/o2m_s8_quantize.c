/*
 * o2m_s8_quantize.c - TFLite's float -> int8 QUANTIZE.  See o2m_s8_quantize.h.
 */
#include "o2m_s8_quantize.h"

void o2m_quantize_away_s8(int32_t n, const float *x, float scale, int32_t zero_point, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i] / scale;
        float a = v < 0.0f ? -v : v;
        int32_t q;
        if (a != a) {
            a = 0.0f;
        }
        a = a > 1048576.0f ? 1048576.0f : a; /* saturates below anyway; keeps the cast defined */
        q = (int32_t)a;                       /* truncating a non-negative value: its floor */
        if (a - (float)q >= 0.5f) {           /* exact below 2^23 (a + 0.5f would round 0.49999997f */
            ++q;                              /* and 1.4999999f up): std::round, as TFLite */
        }
        q = (v < 0.0f ? -q : q) + zero_point;
        y[i] = (int8_t)(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
}
