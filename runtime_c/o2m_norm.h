/*
 * o2m_norm.h - softmax, normalisations, reductions, arg-reductions (float32).
 *
 * Axis views: a tensor reduced or normalised along one axis is seen as
 * [outer, n, inner] (outer = product of the dims before the axis, n = the
 * axis, inner = product of the dims after it).  Reducing several adjacent
 * axes is one call with n = their product; non-adjacent axes need a
 * transpose first (or, for sum/max/min/prod, one call per axis).
 * No scratch memory.
 */
#ifndef O2M_NORM_H
#define O2M_NORM_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Softmax along n of x viewed as [outer, n, inner]:
 *   y = e^(x - max) / sum e^(x - max)   (sum ascending over n; y = e * (1/sum)).
 * In-place: yes (y == x).
 */
void o2m_softmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y);
/* y = x - max - log(sum e^(x - max)).  In-place: yes. */
void o2m_logsoftmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y);

/*
 * Layer normalisation over the last n elements of each of `outer` rows:
 *   mean = sum(x) / n;  var = sum((x - mean)^2) / n;
 *   y = (x - mean) * (1 / sqrt(var + eps)) * gamma + beta
 * gamma / beta ([n]) may be NULL (1 / 0).  In-place: yes (y == x).
 */
void o2m_layernorm_f32(int32_t outer, int32_t n, const float *x, const float *gamma,
                       const float *beta, float eps, float *y);

/*
 * Batch normalisation (inference), x / y [n, c, hw]:
 *   o2m_batchnorm_f32:        y = x * scale[c] + shift[c]  (scale / shift folded by the caller)
 *   o2m_batchnorm_stats_f32:  y = (x - mean[c]) * (gamma[c] / sqrt(var[c] + eps)) + beta[c]
 * In-place: yes (y == x).
 */
void o2m_batchnorm_f32(int32_t n, int32_t c, int32_t hw, const float *x, const float *scale,
                       const float *shift, float *y);
void o2m_batchnorm_stats_f32(int32_t n, int32_t c, int32_t hw, const float *x,
                             const float *gamma, const float *beta, const float *mean,
                             const float *var, float eps, float *y);

/* Reduction kinds for o2m_reduce_f32. */
#define O2M_REDUCE_SUM 0
#define O2M_REDUCE_MEAN 1
#define O2M_REDUCE_MAX 2       /* NaN propagates; empty: -inf */
#define O2M_REDUCE_MIN 3       /* NaN propagates; empty: +inf */
#define O2M_REDUCE_PROD 4
#define O2M_REDUCE_L1 5        /* sum |x| */
#define O2M_REDUCE_L2 6        /* sqrt(sum x^2) */
#define O2M_REDUCE_SUMSQUARE 7 /* sum x^2 */
#define O2M_REDUCE_LOGSUM 8    /* log(sum x) */
#define O2M_REDUCE_LOGSUMEXP 9 /* max + log(sum e^(x - max)) */

/*
 * y[o][i] = reduce_{k ascending} x[o][k][i]; x [outer, n, inner], y [outer, inner].
 * Mean is the sum divided by n.  In-place: yes (y == x; each output is
 * written after every input it overwrites has been read).
 */
void o2m_reduce_f32(int32_t kind, int32_t outer, int32_t n, int32_t inner, const float *x,
                    float *y);

/*
 * Index (int64) along n of the largest / smallest value of x [outer, n, inner];
 * ties give the first index, or the last when select_last_index != 0.
 * y [outer, inner].  Not in place.
 */
void o2m_argmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x,
                    int32_t select_last_index, int64_t *y);
void o2m_argmin_f32(int32_t outer, int32_t n, int32_t inner, const float *x,
                    int32_t select_last_index, int64_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_NORM_H */
