/* o2m_convt.c - see o2m_convt.h for the contract. */
#include "o2m_convt.h"

/* Input index hit by output position `full` through kernel tap `k`, or -1. */
static int32_t source(int32_t full, int32_t k, int32_t stride, int32_t dil, int32_t len) {
    int32_t t = full - k * dil;
    if (t < 0 || t % stride != 0) {
        return -1;
    }
    t /= stride;
    return t < len ? t : -1;
}

void o2m_conv_transpose_f32(const int32_t *geom, const float *x, const float *w,
                            const float *bias, float *y) {
    int32_t n = geom[0], groups = geom[1], cg = geom[2], mg = geom[3];
    int32_t in[3], out[3], ker[3], st[3], dil[3], beg[3], d;
    int32_t plane_in = 1, plane_out = 1, taps = 1;
    int32_t b, g, m, c, o0, o1, o2, k0, k1, k2;
    for (d = 0; d < 3; ++d) {
        in[d] = geom[4 + 6 * d];
        out[d] = geom[5 + 6 * d];
        ker[d] = geom[6 + 6 * d];
        st[d] = geom[7 + 6 * d];
        dil[d] = geom[8 + 6 * d];
        beg[d] = geom[9 + 6 * d];
        plane_in *= in[d];
        plane_out *= out[d];
        taps *= ker[d];
    }
    for (b = 0; b < n; ++b) {
        for (g = 0; g < groups; ++g) {
            for (m = 0; m < mg; ++m) {
                int32_t oc = g * mg + m;
                float *yp = y + ((size_t)b * groups * mg + oc) * plane_out;
                for (o0 = 0; o0 < out[0]; ++o0) {
                    for (o1 = 0; o1 < out[1]; ++o1) {
                        for (o2 = 0; o2 < out[2]; ++o2) {
                            float acc = bias ? bias[oc] : 0.0f;
                            for (k0 = 0; k0 < ker[0]; ++k0) {
                                int32_t i0 = source(o0 + beg[0], k0, st[0], dil[0], in[0]);
                                if (i0 < 0) {
                                    continue;
                                }
                                for (k1 = 0; k1 < ker[1]; ++k1) {
                                    int32_t i1 = source(o1 + beg[1], k1, st[1], dil[1], in[1]);
                                    if (i1 < 0) {
                                        continue;
                                    }
                                    for (k2 = 0; k2 < ker[2]; ++k2) {
                                        int32_t i2 = source(o2 + beg[2], k2, st[2], dil[2], in[2]);
                                        size_t pix, tap;
                                        if (i2 < 0) {
                                            continue;
                                        }
                                        pix = ((size_t)i0 * in[1] + i1) * in[2] + i2;
                                        tap = ((size_t)k0 * ker[1] + k1) * ker[2] + k2;
                                        for (c = 0; c < cg; ++c) {
                                            int32_t ic = g * cg + c;
                                            acc += x[((size_t)b * groups * cg + ic) * plane_in + pix] *
                                                   w[((size_t)ic * mg + m) * taps + tap];
                                        }
                                    }
                                }
                            }
                            yp[((size_t)o0 * out[1] + o1) * out[2] + o2] = acc;
                        }
                    }
                }
            }
        }
    }
}
