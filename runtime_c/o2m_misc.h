/*
 * o2m_misc.h - the less common ops: trigonometric / hyperbolic and other
 * unary math, IsNaN / IsInf, Mod, CumSum, TopK, Hardmax, Trilu, EyeLike,
 * OneHot, GatherElements, GatherND, Range, normalizations over any axes
 * (Instance/Group/RMS/Lp/MeanVariance), LRN, LpPool / GlobalLpPool.
 *
 * Copied into a project, and included by its model.c, only when the model
 * calls one of these kernels (docs/ARCHITECTURE.md, kernels).  No scratch
 * memory, no allocation.  Element-generic kernels take `elem_size` in bytes.
 * Index inputs are int64 (`idx64` 1) or int32 (`idx64` 0).
 */
#ifndef O2M_MISC_H
#define O2M_MISC_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Unary float32 math, computed in double and rounded.  In-place: yes. */
void o2m_sin_f32(int32_t n, const float *x, float *y);
void o2m_cos_f32(int32_t n, const float *x, float *y);
void o2m_tan_f32(int32_t n, const float *x, float *y);
void o2m_asin_f32(int32_t n, const float *x, float *y);
void o2m_acos_f32(int32_t n, const float *x, float *y);
void o2m_atan_f32(int32_t n, const float *x, float *y);
void o2m_sinh_f32(int32_t n, const float *x, float *y);
void o2m_cosh_f32(int32_t n, const float *x, float *y);
void o2m_asinh_f32(int32_t n, const float *x, float *y);
void o2m_acosh_f32(int32_t n, const float *x, float *y);
void o2m_atanh_f32(int32_t n, const float *x, float *y);
void o2m_mish_f32(int32_t n, const float *x, float *y);
void o2m_swish_f32(int32_t n, const float *x, float *y, float alpha);
void o2m_thresholded_relu_f32(int32_t n, const float *x, float *y, float alpha);
void o2m_shrink_f32(int32_t n, const float *x, float *y, float lambd, float bias);
/* bool outputs (uint8_t 0/1). */
void o2m_isnan_f32(int32_t n, const float *x, uint8_t *y);
void o2m_isinf_f32(int32_t n, const float *x, uint8_t *y, int32_t detect_pos, int32_t detect_neg);

/* y = a mod b over a strided walk (dims / strides as o2m_add_nd_f32).  fmod 1: the
 * sign of the dividend (C fmod); 0: the sign of the divisor (integers only).
 * An integer division by zero gives 0. */
void o2m_mod_nd_f32(int32_t rank, const int32_t *dims, const int32_t *sa, const int32_t *sb,
                    const float *a, const float *b, float *y, int32_t fmod_flag);
void o2m_mod_nd_s32(int32_t rank, const int32_t *dims, const int32_t *sa, const int32_t *sb,
                    const int32_t *a, const int32_t *b, int32_t *y, int32_t fmod_flag);
void o2m_mod_nd_s64(int32_t rank, const int32_t *dims, const int32_t *sa, const int32_t *sb,
                    const int64_t *a, const int64_t *b, int64_t *y, int32_t fmod_flag);

/* Cumulative sum along the middle axis of [outer, n, inner].  In-place: yes. */
void o2m_cumsum_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y,
                    int32_t exclusive, int32_t reverse);
void o2m_cumsum_s32(int32_t outer, int32_t n, int32_t inner, const int32_t *x, int32_t *y,
                    int32_t exclusive, int32_t reverse);
void o2m_cumsum_s64(int32_t outer, int32_t n, int32_t inner, const int64_t *x, int64_t *y,
                    int32_t exclusive, int32_t reverse);

/* TopK along the middle axis of [outer, n, inner]: the k largest (largest 1) or
 * smallest, sorted, ties to the lower index.  values [outer, k, inner]. */
void o2m_topk_f32(int32_t outer, int32_t n, int32_t inner, int32_t k, int32_t largest,
                  const float *x, float *values, int64_t *indices);
void o2m_topk_s32(int32_t outer, int32_t n, int32_t inner, int32_t k, int32_t largest,
                  const int32_t *x, int32_t *values, int64_t *indices);
void o2m_topk_s64(int32_t outer, int32_t n, int32_t inner, int32_t k, int32_t largest,
                  const int64_t *x, int64_t *values, int64_t *indices);

/* Hardmax along the middle axis: 1 at the first maximum, else 0.  In-place: yes. */
void o2m_hardmax_f32(int32_t outer, int32_t n, int32_t inner, const float *x, float *y);

/* Trilu over [batch, rows, cols]: keeps j - i >= k (upper) or j - i <= k.  In-place: yes. */
void o2m_trilu(int32_t batch, int32_t rows, int32_t cols, int64_t k, int32_t upper,
               int32_t elem_size, const void *x, void *y);
/* EyeLike: zeros, `one` on the diagonal j - i == k. */
void o2m_eyelike(int32_t rows, int32_t cols, int64_t k, int32_t elem_size, const void *one,
                 void *y);
/* OneHot: y[outer, depth, inner] = values[1] where index == d, else values[0];
 * indices [outer, inner] of kind 0 float32, 1 int32, 2 int64 (negative: + depth). */
void o2m_onehot(int32_t outer, int32_t depth, int32_t inner, const void *indices,
                int32_t index_kind, int32_t elem_size, const void *values, void *y);

/* GatherElements: y (dims `dims`, dense) at i = x at the coordinates of i with
 * the `axis` coordinate replaced by indices[i] (negative: + axis_len). */
void o2m_gather_elements(int32_t rank, const int32_t *dims, const int32_t *x_strides,
                         int32_t axis, int32_t axis_len, int32_t elem_size, const void *x,
                         const void *indices, int32_t idx64, void *y);
/* GatherND: for each of `batch` x `groups` index tuples of length `depth`, copies
 * a slice of `slice_elems` from x + b * batch_stride + sum idx_j * strides[j]. */
void o2m_gather_nd(int32_t batch, int32_t groups, int32_t depth, int32_t slice_elems,
                   int32_t batch_stride, const int32_t *x_dims, const int32_t *x_strides,
                   int32_t elem_size, const void *x, const void *indices, int32_t idx64,
                   void *y);

/* Range: y[i] = start + i * delta (computed in double for float32). */
void o2m_range_f32(int32_t n, float start, float delta, float *y);
void o2m_range_s32(int32_t n, int32_t start, int32_t delta, int32_t *y);
void o2m_range_s64(int32_t n, int64_t start, int64_t delta, int64_t *y);

/* Normalization over a set of reduced dims, for each position of the kept dims
 * (each a strided walk, up to O2M_MAX_DIMS dims).  Kinds: */
#define O2M_NORM_STANDARD 0 /* (x - mean) / sqrt(var + eps)          */
#define O2M_NORM_RMS 1      /* x / sqrt(mean(x^2) + eps)              */
#define O2M_NORM_MVN 2      /* (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9) */
#define O2M_NORM_L1 3       /* x / sum |x|                            */
#define O2M_NORM_L2 4       /* x / sqrt(sum x^2)                      */
/* In-place: yes. */
void o2m_normalize_f32(int32_t kind, int32_t nk, const int32_t *kdims, const int32_t *kstrides,
                       int32_t nr, const int32_t *rdims, const int32_t *rstrides, float eps,
                       const float *x, float *y);

/* LRN over the channels of [n, c, inner]. */
void o2m_lrn_f32(int32_t n, int32_t c, int32_t inner, int32_t size, float alpha, float beta,
                 float bias, const float *x, float *y);

/* LpPool over up to 3 spatial dims.  geom: nc, rank, then per dim (3 each, unused
 * dims 1 / 0): in, out, kernel, stride, dilation, pad_begin. */
void o2m_lppool_f32(const int32_t *geom, int32_t p, const float *x, float *y);
void o2m_global_lppool_f32(int32_t nc, int32_t hw, int32_t p, const float *x, float *y);

/* The float forms of BinaryMatMul / BinaryConv: dot = sum of +1 where the signs
 * (v < 0) agree, -1 where they differ (padding taps count 0); y = float(dot) *
 * mult[j] + bias[j] (either may be NULL), one float rounding per step.
 * x [m, k], w [n, k] -> y [m, n]; conv NCHW, group 1, geom: n, c, h, w, m, oh,
 * ow, kh, kw, stride h, w, dilation h, w, pad top, left. */
void o2m_sign_matmul_f32(int32_t m, int32_t n, int32_t k, const float *x, const float *w,
                         const float *mult, const float *bias, float *y);
void o2m_sign_conv_f32(const int32_t *geom, const float *x, const float *w, const float *mult,
                       const float *bias, float *y);

/* Element kinds of the generic kernels below. */
#define O2M_KIND_F32 0
#define O2M_KIND_S8 1
#define O2M_KIND_U8 2
#define O2M_KIND_S32 3
#define O2M_KIND_S64 4
#define O2M_KIND_B8 5
/* Ops of o2m_int_binary_nd (comparisons write bool). */
#define O2M_IOP_ADD 0
#define O2M_IOP_SUB 1
#define O2M_IOP_MUL 2
#define O2M_IOP_DIV 3  /* truncates toward zero; x / 0 gives 0 */
#define O2M_IOP_MOD 4  /* sign of the divisor */
#define O2M_IOP_FMOD 5 /* sign of the dividend */
#define O2M_IOP_MAX 6
#define O2M_IOP_MIN 7
#define O2M_IOP_EQ 8
#define O2M_IOP_LT 9
#define O2M_IOP_LE 10
#define O2M_IOP_GT 11
#define O2M_IOP_GE 12
/* Integer arithmetic of `kind` (int8 / uint8 ...) in int64, wrapped to the type,
 * over a strided walk as o2m_add_nd_f32.  In-place: yes (a or b). */
void o2m_int_binary_nd(int32_t op, int32_t kind, int32_t rank, const int32_t *dims,
                       const int32_t *sa, const int32_t *sb, const void *a, const void *b,
                       void *y);
/* y = min(max(x, lo), hi) for integers of `kind`; lo / hi may be NULL. */
void o2m_int_clip(int32_t kind, int32_t n, const void *x, const void *lo, const void *hi,
                  void *y);
/* Cast between any two kinds (float to integer truncates toward zero). */
void o2m_cast_any(int32_t n, int32_t from_kind, int32_t to_kind, const void *x, void *y);
/* y = pow(a, b) in double, with y of a's kind (integers truncate), a and b of any kinds. */
void o2m_pow_nd(int32_t base_kind, int32_t exp_kind, int32_t rank, const int32_t *dims,
                const int32_t *sa, const int32_t *sb, const void *a, const void *b, void *y);
/* LayerNormalization's Mean and InvStdDev outputs over rows of n (either may be NULL). */
void o2m_moments_f32(int32_t outer, int32_t n, const float *x, float eps, float *mean,
                     float *inv_std);

/* N-d Max (kind 0, optional int64 Indices numbered as ONNX's storage_order says) and
 * Average (kind 1) pooling over 1 to 3 spatial dims; geom as o2m_lppool_f32, pads_end the
 * end pads per dim (the average's divisor counts them with count_include_pad). */
void o2m_pool_nd_f32(int32_t kind, const int32_t *geom, const int32_t *pads_end,
                     int32_t count_include_pad, int32_t storage_order, const float *x, float *y,
                     int64_t *indices);
/* N-d (1-D to 3-D) MaxPool of integer values (kind O2M_KIND_S8 or O2M_KIND_U8, no
 * quantization: the maximum of the raw integers); geom as o2m_lppool_f32. */
void o2m_maxpool_nd_int(int32_t kind, const int32_t *geom, const void *x, void *y);
/* Reductions over any set of axes (kept / reduced dims as o2m_normalize_f32); y dense. */
#define O2M_RND_SUM 0
#define O2M_RND_MEAN 1
#define O2M_RND_MAX 2
#define O2M_RND_MIN 3
#define O2M_RND_PROD 4
#define O2M_RND_L1 5
#define O2M_RND_L2 6
#define O2M_RND_SUMSQUARE 7
#define O2M_RND_LOGSUM 8
#define O2M_RND_LOGSUMEXP 9
void o2m_reduce_nd_f32(int32_t kind, int32_t nk, const int32_t *kdims, const int32_t *kstrides,
                       int32_t nr, const int32_t *rdims, const int32_t *rstrides, const float *x,
                       float *y);
/* CumSum with the axis read at run time (negative: from the end). */
void o2m_cumsum_dyn_f32(int32_t rank, const int32_t *dims, int64_t axis, const float *x, float *y,
                        int32_t exclusive, int32_t reverse);
void o2m_cumsum_dyn_s32(int32_t rank, const int32_t *dims, int64_t axis, const int32_t *x,
                        int32_t *y, int32_t exclusive, int32_t reverse);
void o2m_cumsum_dyn_s64(int32_t rank, const int32_t *dims, int64_t axis, const int64_t *x,
                        int64_t *y, int32_t exclusive, int32_t reverse);

/* Where with values of any element size (c bool; strides as o2m_where_nd_f32).  In-place: yes. */
void o2m_where_nd_any(int32_t rank, const int32_t *dims, const int32_t *sc, const int32_t *sa,
                      const int32_t *sb, const uint8_t *c, const void *a, const void *b,
                      int32_t elem_size, void *y);
/* ReduceMax (is_max 1: any) / ReduceMin (0: all) of bools over any axes. */
void o2m_reduce_nd_b8(int32_t is_max, int32_t nk, const int32_t *kdims, const int32_t *kstrides,
                      int32_t nr, const int32_t *rdims, const int32_t *rstrides, const uint8_t *x,
                      uint8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_MISC_H */
