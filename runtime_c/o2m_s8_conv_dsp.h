/*
 * o2m_s8_conv_dsp.h - the "arm-dsp" int8 convolution and fully connected kernels:
 * Cortex-M4/M7/M33/M55 fast paths (SXTB16, SMLAD, SMLAxy, unaligned 32-bit loads)
 * beside the portable o2m_s8_conv.c, bit-exact with it (docs/ARCHITECTURE.md, kernels).
 *
 * Where __ARM_FEATURE_DSP is not defined (the host build of a Cortex-M project, other
 * cores) the same algorithms run on plain C twins of the instructions, so the file
 * always compiles and always gives the same bytes.
 *
 * Contract beyond o2m_s8_common.h (fixed-point requantization only; the emitter is
 * codegen/emit/int8_dsp.py):
 *   - `bias` is FOLDED at compile time: bias[oc] + input_offset * sum of the
 *     channel's weights (mod 2^32), so the inner loops multiply the raw int8 values;
 *     padded taps read the input zero point (`pad_value` = -input_offset), whose product
 *     with the folded offset is 0, as the portable kernel's skipped taps are.  int32
 *     sums wrap alike in any order, so the accumulator equals the portable one's.
 *   - Activations NCHW, weights in ONNX order [c_out][c_in][k_h][k_w] (not re-laid out),
 *     except the dense 3x3 kernel's `packed` copy (below).
 */
#ifndef O2M_S8_CONV_DSP_H
#define O2M_S8_CONV_DSP_H

#include "o2m_s8_common.h"
#include "o2m_s8_conv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const int32_t *multipliers; /* Q31 per channel (or [0] for all) */
    const int32_t *shifts;      /* TFLite shift: > 0 left, < 0 right */
    int32_t per_channel;
    int32_t output_offset;      /* + output zero point */
    int32_t act_min, act_max;
} o2m_dsp_requant;

typedef struct {
    int32_t n;
    int32_t c_in, h_in, w_in;
    int32_t c_out, h_out, w_out;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;
    int32_t pad_value;          /* the input zero point */
    const int32_t *bias;        /* folded bias (see above), never NULL */
    const int32_t *raw_bias;    /* the model's bias (border outputs), or NULL */
    const int32_t *taps;        /* dense conv: per weight index (ic, kh, kw), the input offset
                                   ic * h_in * w_in + kh * dil_h * w_in + kw * dil_w (NULL: depthwise) */
    o2m_dsp_requant requant;
    const int8_t *packed;       /* dense 3x3, dil 1, stride_w 1 or 2: the weights re-laid by the
                                   emitter (the layout below), or NULL */
    const int32_t *tap_sums;    /* with packed: per output channel, per tap t = kh * 3 + kw, the
                                   sum of its weights over the input channels */
    const int8_t *pw_weights;   /* dense 1x1 stride-1 unpadded conv, h_in * w_in >= 2: its weights
                                   re-laid out for the 4x2 tiles (codegen/emit/int8_dsp.py
                                   pointwise_weights, the same c_out * c_in bytes), then `w` is not
                                   read (the emitter may pass these same bytes): per whole group of
                                   four output channels, per input channel pair (c, c+1), c + 1 <
                                   c_in, the bytes w0(c) w1(c) w0(c+1) w1(c+1) w2(c) w3(c) w2(c+1)
                                   w3(c+1), then (odd c_in) w0..w3 of the last input channel; then
                                   the c_out % 4 last rows in ONNX order.  NULL: the forms below */
} o2m_conv2d_s8_dsp_params;

/* The packed 3x3 weights: per group of four output channels g, per pair of input channels j
 * (2j, 2j + 1), per tap t = kh * 3 + kw, eight bytes
 *   w[4g][2j][t] w[4g+1][2j][t] w[4g][2j+1][t] w[4g+1][2j+1][t]
 *   w[4g+2][2j][t] w[4g+3][2j][t] w[4g+2][2j+1][t] w[4g+3][2j+1][t]
 * (0 past c_out or c_in): SXTB16 of a word gives one channel's two input-channel weights,
 * SXTB16 ROR 8 the next channel's.  ceil(c_out/4) * ceil(c_in/2) * 72 bytes. */

/*
 * Dense convolution (groups == 1), two forms, both a 2x2 register-tiled GEMM (two output
 * channels x two output pixels, four int32 accumulators, SMLAD against SXTB16-unpacked
 * weight words):
 *   scratch != NULL (O2M_DSP_CONV_SCRATCH(K) bytes, 4-byte aligned, K = c_in*k_h*k_w):
 *     im2col of two pixels (padded taps = pad_value), their words unpacked to int16
 *     pairs once for all output channels; a 1x1 stride-1 unpadded conv gathers its
 *     columns with a strided copy;
 *   scratch == NULL: interior pixels read their taps in place through `taps`; pixels
 *     whose window leaves the input take the portable sum over their valid taps.
 * The emitter passes scratch only where it does not raise the arena's peak.
 * packed != NULL (3x3, dilation 1, stride_w 1 or 2; the emitter packs c_in >= 3): the
 * scratch is not used.  Per kernel row and input channel pair, one word per plane (stride
 * 2: and a byte) holds the six taps of two output pixels; repacked (SXTB16, PKHBT/PKHTB)
 * into [x_2j x_2j+1] halfword pairs they meet SXTB16-unpacked packed weight words in SMLAD,
 * a 2x2 tile (two channels x two pixels).  Kernel rows that leave the input are skipped
 * (`tap_sums` corrects the folded bias), as a pair's outside column at a 1-pixel padded
 * edge; other border pixels take a one-pixel form of the same loop.
 * A 1x1 stride-1 unpadded conv with pw_weights (h_in * w_in >= 2) takes neither: four
 * output channels x two pixels per tile (eight accumulators, a hand-scheduled SMLAD loop
 * on v7E-M), the input read in place, `w` unused; with `scratch` (O2M_DSP_PW_SCRATCH(c_in)
 * bytes, 4-byte aligned) each pixel pair's operands are unpacked there once for all
 * output channels.
 */
void o2m_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w, int8_t *y,
                       int8_t *scratch);

/*
 * Depthwise (groups == c_in, c_out = mult * c_in), dil 1, k_h <= 8, k_w <= 8, no scratch
 * (`scratch` unused, may be NULL).  Per output channel, the input rows are copied once into a
 * stack buffer (about 2.2 KB of stack in all, -O2 Cortex-M4) with the padding written out as
 * pad_value: the whole padded plane when it fits (1 KB), else a ring of k_h rows, so every
 * output takes the same border-free loop: 3x3 stride 1 two outputs per step, 3x3 stride 2,
 * any other window one kernel row at a time (stride 1, k_w 5..7: two outputs per step;
 * kernel rows over top or bottom padding skipped, their pad_value * row sum added).  Sums of
 * a run of rows are then requantized together (TFLite's arithmetic, two roundings fused: one
 * SMMLAR or SMLAL per output).  Planes too wide for the ring (k_h + 1 padded rows over 1 KB)
 * take the per-plane form: interior outputs in place, borders summing their valid taps.
 */
void o2m_depthwise_conv2d_s8_dsp(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                 int8_t *y, int8_t *scratch);

/* In place (TinyEngine's): groups == c_in == c_out, h_out * w_out <= h_in * w_in; y may start
 * at x.  Each (batch, channel) plane is computed as by the kernel above; it is written straight
 * into y when the rows it overwrites have been copied to the stack buffer by then (the whole
 * plane is; with the ring, each output row must end before the first input row not yet
 * copied), else into `scratch` (h_out * w_out bytes) and copied to its place, which overlaps
 * only input planes already read (o2m_depthwise_conv2d_s8_inplace's rule).  Same bytes as the
 * kernel above. */
void o2m_depthwise_conv2d_s8_dsp_inplace(const o2m_conv2d_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                         int8_t *y, int8_t *scratch);

typedef struct {
    int32_t batch, in_features, out_features;
    const int32_t *bias;        /* folded: bias[n] + input_offset * sum_k w[n][k]; never NULL */
    o2m_dsp_requant requant;
} o2m_fully_connected_s8_dsp_params;

/* Fully connected with symmetric weights (filter_offset 0): three weight rows per step
 * against one input row. */
void o2m_fully_connected_s8_dsp(const o2m_fully_connected_s8_dsp_params *p, const int8_t *x, const int8_t *w,
                                int8_t *y);


#define O2M_DSP_COL(k) ((((k) + 3) / 4) * 4)
#define O2M_DSP_CONV_SCRATCH(k) (6 * O2M_DSP_COL(k))
/* The pointwise 4x2 tiles' optional scratch: two int32 operands per input channel pair. */
#define O2M_DSP_PW_SCRATCH(c_in) (8 * ((c_in) / 2))

/* int8 batched MatMul of two activations (attention's Q K^T and P V): the portable kernel's
 * params and results (o2m_s8_conv.h, o2m_batch_matmul_s8 without bias), four columns of b by
 * two rows of a per step, SMLAD over pairs of k; k at most O2M_BMM_DSP_MAX_K (the rows' int16
 * pairs live on the stack: 2 * O2M_BMM_DSP_MAX_K bytes each). */
#define O2M_BMM_DSP_MAX_K 512
void o2m_batch_matmul_s8_dsp(const o2m_batch_matmul_s8_params *p, const int8_t *a, const int8_t *b, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_CONV_DSP_H */
