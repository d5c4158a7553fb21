/*
 * o2m_mcubert.h - MCUBERT kernels (float32): clustered low-rank embedding
 * lookup, tiled multi-head attention, tiled feed-forward block.
 *
 * These run the onnx2mcu-domain ops ClusteredEmbedding, TiledAttention and
 * TiledFFN (onnx2mcu/ops/mcubert.py, made by graph_opt/embedding.py and
 * graph_opt/tiling.py).  Every output value is computed in float32 with sums
 * in ascending index order starting from 0.0f (biases added after the sum),
 * so a tiled result only depends on the inputs, not on the tile sizes.
 * No kernel allocates; scratch comes from the caller (the model's arena).
 * Outputs must not overlap inputs or scratch.
 */
#ifndef O2M_MCUBERT_H
#define O2M_MCUBERT_H

#include "o2m_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----- clustered low-rank embedding ----------------------------------------
 * A table [vocab, dim] stored as clusters.  meta is int32 [clusters][5]:
 * (start, count, rank, a_offset, p_offset) with starts ascending from 0.
 * Token t sits at position pos(t) of the cluster order: map[t] read as a
 * little-endian unsigned integer of map_bytes bytes (1..4), or t itself when
 * map_bytes is 0 (then map may be NULL).  With c the cluster whose range
 * holds pos and i = pos - start_c:
 *   y[d] = (sum_{k < rank} a[a_off + i*rank + k] * p[p_off + dim + k*dim + d]) + p[p_off + d]
 * (p[p_off .. p_off+dim) is the cluster's mean row).  Negative ids count from
 * the end (id + vocab); ids still out of range give a row of zeros.
 * y is [n, dim]; one token at a time, rank*dim MACs each, no scratch. */
typedef struct {
    int32_t vocab, dim, clusters, map_bytes;
} o2m_clemb_params;

void o2m_clustered_embedding_s64(const o2m_clemb_params *p, int32_t n, const int64_t *ids,
                                 const uint8_t *map, const int32_t *meta, const float *a,
                                 const float *pm, float *y);
void o2m_clustered_embedding_s32(const o2m_clemb_params *p, int32_t n, const int32_t *ids,
                                 const uint8_t *map, const int32_t *meta, const float *a,
                                 const float *pm, float *y);

/* int8 factors (ClusteredEmbeddingInt8): a and pm are int8 at the same offsets;
 * scales is float32: (s_p, s_mu) of cluster c at 2c, 2c+1, then s_a of
 * cluster-order position pos at 2*clusters + pos (row_scales != 0) or of
 * cluster c at 2*clusters + c (row_scales == 0).
 *   acc = sum_k a[a_off + i*rank + k] * pm[p_off + dim + k*dim + d]   (int32, exact)
 *   y[d] = (float)acc * (s_a * s_p) + s_mu * (float)pm[p_off + d]      (float32, in this order) */
void o2m_clustered_embedding_int8_s64(const o2m_clemb_params *p, int32_t n, const int64_t *ids,
                                      const uint8_t *map, const int32_t *meta, const int8_t *a,
                                      const int8_t *pm, const float *scales, int32_t row_scales,
                                      float *y);
void o2m_clustered_embedding_int8_s32(const o2m_clemb_params *p, int32_t n, const int32_t *ids,
                                      const uint8_t *map, const int32_t *meta, const int8_t *a,
                                      const int8_t *pm, const float *scales, int32_t row_scales,
                                      float *y);

/* ----- tiled multi-head self-attention ---------------------------------------
 * x [batch, seq, hidden]; wq, wk, wv [hidden, heads*head_dim]; wo
 * [heads*head_dim, out_dim]; biases bq, bk, bv [heads*head_dim], bo [out_dim]
 * (each may be NULL).  For head h (columns h*head_dim ..):
 *   Q = ((x wq_h) + bq_h) * q_scale,  K = ((x wk_h) + bk_h) * k_scale,  V = (x wv_h) + bv_h
 *   S = (Q K^T) * s_scale + mask,  P = softmax rows of S (y = e * (1/sum), as
 *   o2m_softmax_f32), NaN -> 0 if nan_to_zero,  C_h = P V
 *   y = (sum_h C_h wo_h) + bo      (the sum over heads continues the sum over k)
 * s_scale is skipped when it is 1.  mask (may be NULL) is additive:
 * mask[b*mask_batch_stride + i*mask_row_stride + j] for query i, key j.
 *
 * cache_kv = 1: heads one at a time; K and V of the head computed once;
 *   query rows in tiles of tile_q.  Scratch floats:
 *   tile_q*head_dim + tile_q*seq + 2*seq*head_dim.
 * cache_kv = 0: query tiles outer, heads inner; K and V recomputed for each
 *   (tile, head) in chunks of tile_k keys.  Scratch floats:
 *   tile_q*head_dim + tile_q*seq + tile_k*head_dim.  Besides, a tile may use
 *   the rows of y after it (not yet written) as its scratch: the tile then
 *   has floor(((seq - t0)*out_dim - tile_k*head_dim) / (out_dim + head_dim + seq))
 *   rows when that is more than tile_q (see o2m_attention_tile_rows).
 * The score tile always holds complete rows: the softmax is exact. */
typedef struct {
    int32_t batch, seq, hidden, heads, head_dim, out_dim;
    int32_t tile_q, tile_k, cache_kv, nan_to_zero;
    float q_scale, k_scale, s_scale;
    int32_t mask_batch_stride, mask_row_stride;
} o2m_attention_params;

void o2m_tiled_attention_f32(const o2m_attention_params *p, const float *x, const float *wq,
                             const float *bq, const float *wk, const float *bk, const float *wv,
                             const float *bv, const float *wo, const float *bo, const float *mask,
                             float *scratch, float *y);

/* Rows of the query tile that starts at row t0 (cache_kv = 0), and whether
 * it lives in y's unwritten rows (1) or in the scratch buffer (0). */
int32_t o2m_attention_tile_rows(const o2m_attention_params *p, int32_t t0, int32_t *in_output);

/* ----- tiled feed-forward block ------------------------------------------------
 * x [rows, hidden], w1 [hidden, inner], b1 [inner], w2 [inner, out_dim],
 * b2 [out_dim] (biases may be NULL):
 *   y = (sum over inner tiles of act((x w1_f) + b1_f) w2_f) + b2
 * computed over tiles of tile_rows rows and tile_f inner columns; the sum
 * over inner tiles continues the sum over k, so y does not depend on tiles.
 * activation: 0 gelu   (v * (erff(v / sqrt2) + 1)) * 0.5
 *             1 gelu_tanh  0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3)))
 *             2 relu
 * Scratch floats: tile_rows * tile_f. */
#define O2M_FFN_GELU 0
#define O2M_FFN_GELU_TANH 1
#define O2M_FFN_RELU 2

typedef struct {
    int32_t rows, hidden, inner, out_dim, tile_rows, tile_f, activation;
} o2m_ffn_params;

void o2m_tiled_ffn_f32(const o2m_ffn_params *p, const float *x, const float *w1, const float *b1,
                       const float *w2, const float *b2, float *scratch, float *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_MCUBERT_H */
