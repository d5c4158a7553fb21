/*
 * o2m_recurrent.h - ONNX RNN, GRU and LSTM (float32), every direction and layout.
 *
 * Semantics as the ONNX operators (numpy reference: onnx2mcu/ops/recurrent.py).
 * Gate order in w [dirs][gates*hidden][input], r [dirs][gates*hidden][hidden] and
 * b [dirs][2*gates*hidden] (Wb then Rb): RNN i; GRU z r h; LSTM i o f c.
 * Peepholes p [dirs][3*hidden]: i o f.
 *
 * Work per direction: the input projection x_t w^T + biases is one GEMM over
 * `chunk` time steps at a time (the whole sequence when it fits the scratch the
 * op declared), then each step adds h r^T and applies the gates.  The state
 * (h, and c for LSTM) lives in the scratch, so the optional outputs may be NULL.
 *
 * Strides (in elements) describe both layouts:
 *   x[t][b]      at x  + t * x_t  + b * x_b                (rows of `input`)
 *   y[t][d][b]   at y  + t * y_t  + d * y_d + b * y_b       (rows of `hidden`)
 *   h0/c0/y_h/y_c[d][b] at s + d * s_d + b * s_b            (rows of `hidden`)
 *
 * Scratch (floats): chunk*batch*gates*hidden + batch*hidden*(LSTM ? 2 : 1)
 * + gates*hidden + hidden; its size is the op's scratch_bytes formula
 * (onnx2mcu/ops/recurrent.py, RecurrentSpec.scratch_floats).
 * seq_lens (NULL: every entry runs `seq` steps): steps t >= seq_lens[b] are
 * skipped (y is 0 there; the reverse direction starts at seq_lens[b] - 1).
 * No output may overlap an input.
 */
#ifndef O2M_RECURRENT_H
#define O2M_RECURRENT_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define O2M_RNN_KIND_RNN 0
#define O2M_RNN_KIND_GRU 1
#define O2M_RNN_KIND_LSTM 2

/* Activation codes (alpha / beta as in the ONNX spec of RNN activations). */
#define O2M_RNN_ACT_SIGMOID 0
#define O2M_RNN_ACT_TANH 1
#define O2M_RNN_ACT_RELU 2
#define O2M_RNN_ACT_HARDSIGMOID 3     /* clamp(alpha x + beta, 0, 1) */
#define O2M_RNN_ACT_AFFINE 4          /* alpha x + beta */
#define O2M_RNN_ACT_LEAKYRELU 5       /* x >= 0 ? x : alpha x */
#define O2M_RNN_ACT_THRESHOLDEDRELU 6 /* x > alpha ? x : 0 */
#define O2M_RNN_ACT_SCALEDTANH 7      /* alpha tanh(beta x) */
#define O2M_RNN_ACT_ELU 8             /* x >= 0 ? x : alpha (e^x - 1) */
#define O2M_RNN_ACT_SOFTSIGN 9        /* x / (1 + |x|) */
#define O2M_RNN_ACT_SOFTPLUS 10       /* log(1 + e^x) */

typedef struct {
    int32_t code;
    float alpha;
    float beta;
} o2m_rnn_act;

typedef struct {
    int32_t kind;                /* O2M_RNN_KIND_* */
    int32_t seq, batch, input, hidden;
    int32_t dirs;                /* 1 or 2 */
    int32_t reverse;             /* direction 0 runs backwards (direction="reverse") */
    int32_t linear_before_reset; /* GRU */
    int32_t input_forget;        /* LSTM: f = 1 - i */
    int32_t has_clip;
    float clip;                  /* gate pre-activations clamped to [-clip, clip] */
    int32_t chunk;               /* time steps per input-projection GEMM (>= 1) */
    int32_t x_t, x_b, y_t, y_d, y_b, s_d, s_b;
    o2m_rnn_act act[2][3];       /* per direction: f (g, h) */
} o2m_rnn_params;

void o2m_recurrent_f32(const o2m_rnn_params *p, const float *x, const float *w, const float *r,
                       const float *b, const int32_t *seq_lens, const float *h0, const float *c0,
                       const float *peep, float *y, float *y_h, float *y_c, float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* O2M_RECURRENT_H */
