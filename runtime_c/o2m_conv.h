/*
 * o2m_conv.h - 2-D convolution and pooling, float32, NCHW.
 *
 * Output sizes are computed by the caller (ceil_mode, auto_pad and the
 * bottom/right pads are folded into h_out / w_out); the kernels only need the
 * top/left pads to place windows, and read nothing outside the input.
 * A 1-D convolution or pool is the 2-D one with h_in = h_out = k_h = 1.
 * Strides and dilations are >= 1; pads >= 0.
 * None of these kernels needs scratch memory and none runs in place.
 */
#ifndef O2M_CONV_H
#define O2M_CONV_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t n;                   /* batch */
    int32_t c_in, h_in, w_in;    /* input  [n, c_in, h_in, w_in] */
    int32_t c_out, h_out, w_out; /* output [n, c_out, h_out, w_out] */
    int32_t k_h, k_w;            /* kernel; weights [c_out, c_in / groups, k_h, k_w] */
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;   /* bottom/right pads live in h_out / w_out */
    int32_t groups;              /* divides c_in and c_out */
    o2m_act act;                 /* fused activation */
} o2m_conv2d_params;

/*
 * y[n][oc][oh][ow] = act( sum_{ic, kh, kw} x[n][g*cin_g + ic][ih][iw] * w[oc][ic][kh][kw]
 *                         + bias[oc] )
 *   with g = oc / (c_out / groups), ih = oh*stride_h - pad_top + kh*dil_h,
 *   iw = ow*stride_w - pad_left + kw*dil_w; taps outside the input count as 0.
 * The sum runs over ic, then kh, then kw (all ascending) starting from 0.0f;
 * the bias (0 when `bias` is NULL) is added after the sum.
 * Dispatches to o2m_conv2d_depthwise_f32 when groups == c_in (any channel
 * multiplier; includes c_in == 1), to o2m_conv2d_1x1_f32 when its
 * preconditions hold, and otherwise to o2m_conv2d_generic_f32.  All paths
 * give bit-identical results; generated code may call a specialised one
 * directly when its preconditions hold at compile time.
 */
void o2m_conv2d_f32(const o2m_conv2d_params *p, const float *x, const float *w,
                    const float *bias, float *y);

/* Any geometry; tiles 2 output channels x 2 output columns in the interior. */
void o2m_conv2d_generic_f32(const o2m_conv2d_params *p, const float *x, const float *w,
                            const float *bias, float *y);

/* Depthwise: requires groups == c_in and c_out a multiple of c_in (channel
 * multiplier c_out / c_in).  Output channel oc reads input channel
 * oc / (c_out / c_in).  Tiles 4 output columns. */
void o2m_conv2d_depthwise_f32(const o2m_conv2d_params *p, const float *x, const float *w,
                              const float *bias, float *y);

/* Pointwise: requires k_h == k_w == 1, stride 1, no pads, groups == 1,
 * h_out == h_in and w_out == w_in.  Tiles 2 output channels x 4 pixels. */
void o2m_conv2d_1x1_f32(const o2m_conv2d_params *p, const float *x, const float *w,
                        const float *bias, float *y);

/*
 * Register-tiled convolution, any geometry (groups included): 4 output channels x 2 output
 * columns per step, with unrolled 3x3 (dilation 1) and 1x1 tiles for the windows entirely
 * inside the input and general tiles for the border.  Same sum order as above, but each
 * multiply-add is fused (one rounding) where the FPU has a fused multiply-add (Cortex-M4F,
 * M7: FP_FAST_FMAF / __FP_FAST_FMAF), so its results may differ from o2m_conv2d_f32's in the
 * last bits there; elsewhere they are identical.  Chosen by the code generator for the
 * cores whose kernel preference lists it (codegen/emit/conv.py).
 */
void o2m_conv2d_tiled_f32(const o2m_conv2d_params *p, const float *x, const float *w,
                          const float *bias, float *y);

/* Depthwise (o2m_conv2d_depthwise_f32's preconditions and sums) with O2M_MAC multiply-adds:
 * 3x3 windows inside the input unrolled with the channel's weights in registers, 4 output
 * columns per step.  Like o2m_conv2d_tiled_f32: the portable bits where the FPU has no fused
 * multiply-add, the last bits may differ where it has. */
void o2m_conv2d_depthwise_tiled_f32(const o2m_conv2d_params *p, const float *x, const float *w,
                                    const float *bias, float *y);

typedef struct {
    int32_t n, c;                  /* input [n, c, h_in, w_in], output [n, c, h_out, w_out] */
    int32_t h_in, w_in;
    int32_t h_out, w_out;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;          /* 1 when the op has no dilations */
    int32_t pad_top, pad_left;
    int32_t pad_bottom, pad_right; /* only used by avgpool with count_include_pad */
    int32_t count_include_pad;     /* avgpool: divide by taps inside the padded input */
} o2m_pool2d_params;

/* Max over the window taps inside the input (pads never win);
 * -INFINITY when a window has no tap inside the input. */
void o2m_maxpool2d_f32(const o2m_pool2d_params *p, const float *x, float *y);

/* Sum of the window taps inside the input (row-major order) divided by the
 * number of those taps, or, with count_include_pad, by the number of taps
 * inside the padded input [-pad_top, h_in + pad_bottom) x [-pad_left,
 * w_in + pad_right) (ONNX / onnxruntime semantics, including ceil_mode
 * windows that run past the pads).  0 / 0 gives NaN. */
void o2m_avgpool2d_f32(const o2m_pool2d_params *p, const float *x, float *y);

/* x: [nc, hw] -> y: [nc]; mean (sequential sum, then / hw) and max. */
void o2m_global_avgpool_f32(int32_t nc, int32_t hw, const float *x, float *y);
void o2m_global_maxpool_f32(int32_t nc, int32_t hw, const float *x, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_CONV_H */
