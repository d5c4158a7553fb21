/*
 * o2m_linalg.h - matrix products, float32.
 *
 * Both kernels tile the output in 2 rows x 4 columns; every output value is
 * sum_{k ascending} a*b starting from 0.0f, then scaled / biased as stated.
 * No scratch memory; the output must not overlap any input.
 */
#ifndef O2M_LINALG_H
#define O2M_LINALG_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t m, n, k; /* each batch: [m, k] x [k, n] -> [m, n] */
    /* Broadcast batch dimensions of the OUTPUT (outermost first; 0..4 of
     * them) and, per dimension, the element stride of that dimension in A
     * and in B (0 where that operand is broadcast).  The matrices inside one
     * batch are dense row-major; the output is dense [batch..., m, n]. */
    int32_t batch_rank;
    int32_t batch_dims[O2M_MATMUL_MAX_BATCH];
    int32_t a_strides[O2M_MATMUL_MAX_BATCH];
    int32_t b_strides[O2M_MATMUL_MAX_BATCH];
    o2m_act act; /* fused activation */
} o2m_matmul_params;

/*
 * numpy.matmul with broadcast batch dims:
 *   y[b][i][j] = act( sum_k a[b][i][k] * b[b][k][j] + bias[j] )
 * `bias` ([n]) may be NULL (then no addition at all).  1-D operands are the
 * caller's business (m = 1 or n = 1 views).
 */
void o2m_matmul_f32(const o2m_matmul_params *p, const float *a, const float *b,
                    const float *bias, float *y);

typedef struct {
    int32_t m, n, k;
    int32_t trans_a; /* A stored [k, m] instead of [m, k] */
    int32_t trans_b; /* B stored [n, k] instead of [k, n] */
    float alpha, beta;
    /* element strides of C along m and along n: C[i][j] = c[i*c_stride_m + j*c_stride_n];
     * e.g. [n] bias: 0, 1;  [m, 1]: 1, 0;  scalar: 0, 0;  [m, n]: n, 1. */
    int32_t c_stride_m, c_stride_n;
    o2m_act act; /* fused activation */
} o2m_gemm_params;

/*
 * ONNX Gemm:  y[i][j] = act( alpha * sum_k A[i][k] * B[k][j] + beta * C[i][j] )
 * `c` may be NULL (no C term).  y is dense [m, n].
 */
void o2m_gemm_f32(const o2m_gemm_params *p, const float *a, const float *b,
                  const float *c, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_LINALG_H */
