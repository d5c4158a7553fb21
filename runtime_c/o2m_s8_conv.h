/*
 * o2m_s8_conv.h - int8 convolution, fully connected and batched matmul
 * (NCHW, int32 accumulators, per-channel or per-tensor requantization).
 * Conventions: o2m_s8_common.h.  Bit-exact with onnx2mcu.ops.int8_ref.
 */
#ifndef O2M_S8_CONV_H
#define O2M_S8_CONV_H

#include "o2m_s8_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t n;                   /* batch */
    int32_t c_in, h_in, w_in;    /* input  [n, c_in, h_in, w_in] */
    int32_t c_out, h_out, w_out; /* output [n, c_out, h_out, w_out] */
    int32_t k_h, k_w;            /* weights [c_out, c_in / groups, k_h, k_w] */
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;   /* bottom/right pads live in h_out / w_out */
    int32_t groups;              /* divides c_in and c_out */
    int32_t input_offset;        /* -input zero point */
    o2m_s8_requant requant;      /* per output channel */
    int32_t filter_offset;       /* -weight zero point (per tensor; 0 for symmetric weights) */
} o2m_conv2d_s8_params;

/*
 * acc[n][oc][oh][ow] = bias[oc] + sum_{ic,kh,kw} (x[n][g*cin_g+ic][ih][iw] + input_offset)
 *                                                * (w[oc][ic][kh][kw] + filter_offset)
 *   ih = oh*stride_h - pad_top + kh*dil_h, iw = ow*stride_w - pad_left + kw*dil_w;
 *   taps outside the input contribute 0 (padding with the input zero point).
 * y = requant(acc, oc).  bias may be NULL.  Dispatches to the depthwise
 * kernel when groups == c_in == c_out / multiplier.
 */
void o2m_conv2d_s8(const o2m_conv2d_s8_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                   int8_t *y);

/* Depthwise: groups == c_in, c_out a multiple of c_in; output channel oc
 * reads input channel oc / (c_out / c_in); weights [c_out, 1, k_h, k_w]. */
void o2m_depthwise_conv2d_s8(const o2m_conv2d_s8_params *p, const int8_t *x, const int8_t *w,
                             const int32_t *bias, int8_t *y);

/* In-place depthwise (TinyEngine's): groups == c_in == c_out, h_out * w_out <= h_in * w_in.
 * y may start at x (the output over its dying input, onnx2mcu/memory.py shrinking in place)
 * or lie elsewhere.  Each (batch, channel) plane is computed by o2m_depthwise_conv2d_s8 into
 * `scratch` (h_out * w_out bytes), then copied to its place in y, which overlaps only input
 * planes already read.  Same bytes as o2m_depthwise_conv2d_s8. */
void o2m_depthwise_conv2d_s8_inplace(const o2m_conv2d_s8_params *p, const int8_t *x, const int8_t *w,
                                     const int32_t *bias, int8_t *y, int8_t *scratch);

typedef struct {
    int32_t batch;          /* rows of x and y */
    int32_t in_features;    /* K */
    int32_t out_features;   /* N */
    int32_t input_offset;   /* -input zero point */
    int32_t filter_offset;  /* -weight zero point (0 for symmetric weights) */
    o2m_s8_requant requant; /* per output feature */
} o2m_fully_connected_s8_params;

/* y[b][n] = requant(bias[n] + sum_k (x[b][k] + input_offset) * (w[n][k] + filter_offset), n);
 * x [batch, K], w [N, K], bias [N] or NULL, y [batch, N]. */
void o2m_fully_connected_s8(const o2m_fully_connected_s8_params *p, const int8_t *x, const int8_t *w,
                            const int32_t *bias, int8_t *y);

typedef struct {
    int32_t batch, m, n, k;
    int32_t a_batch_stride;  /* elements between batches of a (0: broadcast) */
    int32_t b_batch_stride;  /* elements between batches of b (0: broadcast) */
    int32_t a_offset;        /* -zero point of a */
    int32_t b_offset;        /* -zero point of b */
    o2m_s8_requant requant;  /* per column n */
} o2m_batch_matmul_s8_params;

/* y[t][i][j] = requant(bias[j] + sum_k (a[t][i][k] + a_offset) * (b[t][k][j] + b_offset), j);
 * a [batch, m, k] and b [batch, k, n] by their batch strides, y dense [batch, m, n]. */
void o2m_batch_matmul_s8(const o2m_batch_matmul_s8_params *p, const int8_t *a, const int8_t *b,
                         const int32_t *bias, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_CONV_H */
