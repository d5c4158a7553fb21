/* o2m_resize.c - see o2m_resize.h for the contract. */
#include "o2m_resize.h"

void o2m_resize_f32(int32_t rank, const int32_t *in_dims, const int32_t *out_dims,
                    const int32_t *taps, const int32_t *off, const int32_t *idx, const float *w,
                    float extrapolation, const float *x, float *y) {
    int32_t in_strides[O2M_MAX_DIMS], base[O2M_MAX_DIMS], tap[O2M_MAX_DIMS];
    int32_t d, total = 1, combos = 1;
    int32_t i;
    for (d = rank - 1; d >= 0; --d) {
        in_strides[d] = d == rank - 1 ? 1 : in_strides[d + 1] * in_dims[d + 1];
        total *= out_dims[d];
        combos *= taps[d];
    }
    for (i = 0; i < total; ++i) {
        int32_t rest = i, outside = 0, c;
        double acc = 0.0;
        for (d = rank - 1; d >= 0; --d) {
            int32_t o = rest % out_dims[d];
            rest /= out_dims[d];
            base[d] = off[d] + o * taps[d];
            if (idx[base[d]] < 0) {
                outside = 1;
            }
            tap[d] = 0;
        }
        if (outside) {
            y[i] = extrapolation;
            continue;
        }
        for (c = 0; c < combos; ++c) {
            int32_t at = 0;
            double weight = 1.0;
            for (d = 0; d < rank; ++d) {
                at += idx[base[d] + tap[d]] * in_strides[d];
                weight *= (double)w[base[d] + tap[d]];
            }
            acc += weight * (double)x[at];
            for (d = rank - 1; d >= 0; --d) { /* next combination */
                if (++tap[d] < taps[d]) {
                    break;
                }
                tap[d] = 0;
            }
        }
        y[i] = (float)acc;
    }
}
