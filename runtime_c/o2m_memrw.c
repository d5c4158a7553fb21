/*
 * o2m_memrw.c - the kernel of the memory rewrites (docs/ARCHITECTURE.md, memory model):
 * a float32 NCHW convolution that applies an activation to its input as it loads
 * it (the activation's output is never stored), an optional batch norm on its
 * result, and an "accumulate into the output" mode.
 *
 * There is no o2m_memrw.h: every runtime_c header is copied into every project,
 * so the generated model.c declares the one prototype itself (codegen/emit/memrw.py)
 * and projects that do not use this kernel stay byte-identical.
 *
 * g = {n, c_in, h_in, w_in, c_out, h_out, w_out, k_h, k_w, stride_h, stride_w,
 *      dil_h, dil_w, pad_top, pad_left, groups} (bottom/right pads live in h_out/w_out).
 * v    = sum_{ic, kh, kw} prologue(x[..]) * w[..]  (ic, kh, kw ascending, from 0.0f; taps
 *        outside the input count as 0, the prologue is not applied to them), + bias[oc]
 *        (bias may be NULL); prologue is an O2M_ACT_* kind, `lo`/`hi` its Clip bounds;
 * v    = (v - bn_mean[oc]) / sqrtf(bn_var[oc] + eps) * bn_scale[oc] + bn_bias[oc] when
 *        bn_scale is not NULL (all four are then given);
 * y[i] = acc[i] + v when acc is not NULL, else v.  acc may equal y (in place: each element
 *        is read before it is written); otherwise acc and y do not overlap, nor x and y.
 */
#include <math.h>

#include "o2m_common.h"

void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps,
                          const float *x, const float *w, const float *bias, const float *bn_scale,
                          const float *bn_bias, const float *bn_mean, const float *bn_var,
                          const float *acc, float *y);

static float o2m_memrw_prologue(int32_t kind, float lo, float hi, float v)
{
    if (v != v) {
        return v; /* NaN passes through */
    }
    switch (kind) {
    case O2M_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case O2M_ACT_RELU6:
        return v > 6.0f ? 6.0f : (v > 0.0f ? v : 0.0f);
    case O2M_ACT_CLIP:
        return v > hi ? hi : (v < lo ? lo : v);
    default:
        return v;
    }
}

void o2m_memrw_conv2d_f32(const int32_t *g, int32_t prologue, float lo, float hi, float eps,
                          const float *x, const float *w, const float *bias, const float *bn_scale,
                          const float *bn_bias, const float *bn_mean, const float *bn_var,
                          const float *acc, float *y)
{
    const int32_t batch = g[0], c_in = g[1], h_in = g[2], w_in = g[3], c_out = g[4];
    const int32_t h_out = g[5], w_out = g[6], k_h = g[7], k_w = g[8];
    const int32_t stride_h = g[9], stride_w = g[10], dil_h = g[11], dil_w = g[12];
    const int32_t pad_top = g[13], pad_left = g[14], groups = g[15];
    const int32_t cin_g = c_in / groups;
    const int32_t cout_g = c_out / groups;
    int32_t n, oc, oh, ow, ic, kh, kw;
    for (n = 0; n < batch; ++n) {
        for (oc = 0; oc < c_out; ++oc) {
            const int32_t group = oc / cout_g;
            const float inv = bn_scale != NULL ? 1.0f / sqrtf(bn_var[oc] + eps) : 1.0f;
            for (oh = 0; oh < h_out; ++oh) {
                for (ow = 0; ow < w_out; ++ow) {
                    const int32_t index = ((n * c_out + oc) * h_out + oh) * w_out + ow;
                    float v = 0.0f;
                    for (ic = 0; ic < cin_g; ++ic) {
                        const float *xc = x + (n * c_in + group * cin_g + ic) * h_in * w_in;
                        const float *wc = w + (oc * cin_g + ic) * k_h * k_w;
                        for (kh = 0; kh < k_h; ++kh) {
                            const int32_t ih = oh * stride_h - pad_top + kh * dil_h;
                            if (ih < 0 || ih >= h_in) {
                                continue;
                            }
                            for (kw = 0; kw < k_w; ++kw) {
                                const int32_t iw = ow * stride_w - pad_left + kw * dil_w;
                                if (iw < 0 || iw >= w_in) {
                                    continue;
                                }
                                v += o2m_memrw_prologue(prologue, lo, hi, xc[ih * w_in + iw])
                                     * wc[kh * k_w + kw];
                            }
                        }
                    }
                    if (bias != NULL) {
                        v += bias[oc];
                    }
                    if (bn_scale != NULL) {
                        v = (v - bn_mean[oc]) * inv * bn_scale[oc] + bn_bias[oc];
                    }
                    y[index] = acc != NULL ? acc[index] + v : v;
                }
            }
        }
    }
}
