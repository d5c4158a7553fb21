/*
 * o2m_binary.h - binary (XNOR-popcount) layers: activation packing, GEMM, conv.
 *
 * Bit convention (the same in the Python simulator, onnx2mcu/ops/binary.py):
 *   a value v is binarized to -1 when v < 0 and to +1 otherwise (so 0.0f,
 *   -0.0f and NaN give +1); bit 1 stands for -1, bit 0 for +1.
 *   Bits are packed along the last (reduction) axis into 32-bit words, LSB
 *   first: element a of a row is bit (a % 32) of word (a / 32).  A row of K
 *   elements takes (K + 31) / 32 words; the unused high bits of the last word
 *   are 0 in every operand (+1 in both, so they never count in a popcount).
 *
 * For two rows of K signs, dot = K - 2 * popcount(x XOR w) (summed over words).
 *
 * Output modes of the GEMM and conv kernels:
 *   float: y = (float)dot * affine[2c] + affine[2c + 1]   (affine is
 *          [channels][2]: multiplier, bias; single precision, one rounding per
 *          operation).
 *   bits:  the next layer's binarized input, packed: bit c of the output row is
 *          1 exactly when thr[2c] * dot < thr[2c + 1] (thr is [channels][2],
 *          thr[2c] is +1 or -1).
 *          graph_opt chooses thr so that this equals "float output < 0".
 *
 * Kernels are tiled over output channels (each activation word feeds several
 * weight rows) and rows (each weight word feeds two activation rows).  On
 * Cortex-M4/M7 (__ARM_FEATURE_DSP) the per-byte bit counts of the SWAR
 * popcount are summed with USADA8; elsewhere with a portable multiply.
 * No scratch memory; no kernel allocates; outputs must not overlap inputs.
 */
#ifndef O2M_BINARY_H
#define O2M_BINARY_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Words of a packed row of `k` elements. */
#define O2M_BIT_WORDS(k) (((k) + 31) / 32)

/*
 * Pack signs of x viewed as [outer, len, inner] along `len`:
 *   y is [outer, inner, O2M_BIT_WORDS(len)] words; bit a of row (o, i) is
 *   1 when x[(o * len + a) * inner + i] < 0.
 * inner = 1 packs the last axis; NCHW with (outer, len, inner) = (N, C, H*W)
 * gives channel-packed NHWC.
 */
void o2m_pack_bits_f32(int32_t outer, int32_t len, int32_t inner, const float *x, uint32_t *y);

typedef struct {
    int32_t m; /* activation rows */
    int32_t n; /* output channels (weight rows) */
    int32_t k; /* reduction length in elements (bits) */
} o2m_binary_gemm_params;

/*
 * x: [m, words] packed, w: [n, words] packed (words = O2M_BIT_WORDS(k)).
 * y[i][j] = (float)dot(x_i, w_j) * affine[2j] + affine[2j + 1]   (y dense [m, n])
 */
void o2m_binary_gemm_f32(const o2m_binary_gemm_params *p, const uint32_t *x, const uint32_t *w,
                         const float *affine, float *y);

/*
 * Same product, output packed: y is [m, O2M_BIT_WORDS(n)] words; bit j of
 * row i is (thr[2j] * dot(x_i, w_j) < thr[2j + 1]).
 */
void o2m_binary_gemm_bits(const o2m_binary_gemm_params *p, const uint32_t *x, const uint32_t *w,
                          const int32_t *thr, uint32_t *y);

typedef struct {
    int32_t n, c_in, h_in, w_in; /* input batch, channels, height, width */
    int32_t c_out, h_out, w_out;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left; /* bottom/right padding follows from h_out, w_out */
} o2m_binary_conv_params;

/*
 * 2-D binary convolution (group 1).
 *   x: [n, h_in, w_in, O2M_BIT_WORDS(c_in)] channel-packed (NHWC);
 *   w: [c_out, k_h, k_w, O2M_BIT_WORDS(c_in)] channel-packed.
 * Padding contributes 0 (like a zero-padded convolution of the +-1 values):
 * dot sums only the taps inside the input, dot = taps * c_in - 2 * popcount.
 * y: float NCHW [n, c_out, h_out, w_out], y = (float)dot * affine[2c] + affine[2c + 1].
 */
void o2m_binary_conv_f32(const o2m_binary_conv_params *p, const uint32_t *x, const uint32_t *w,
                         const float *affine, float *y);

/* Same convolution, output channel-packed NHWC [n, h_out, w_out, O2M_BIT_WORDS(c_out)]
 * with bit c = (thr[2c] * dot < thr[2c + 1]). */
void o2m_binary_conv_bits(const o2m_binary_conv_params *p, const uint32_t *x, const uint32_t *w,
                          const int32_t *thr, uint32_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_BINARY_H */
