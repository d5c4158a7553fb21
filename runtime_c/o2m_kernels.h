/*
 * o2m_kernels.h - every onnx2mcu runtime kernel (float32 first).
 *
 * Include this one header.  Families and their contracts:
 *   o2m_common.h       shared types, limits, fused activation (o2m_act)
 *   o2m_conv.h         conv2d (general / depthwise / 1x1), max/avg/global pool
 *   o2m_linalg.h       matmul (batch broadcast), gemm
 *   o2m_elementwise.h  unary activations and math, broadcasting binary ops,
 *                      comparisons, logical ops, where, prelu
 *   o2m_norm.h         softmax, log-softmax, layernorm, batchnorm,
 *                      reductions, argmax / argmin
 *   o2m_tensor.h       strided N-d copy (slice, expand, tile, concat, split),
 *                      transpose, pad, gather, depth/space, casts
 *   o2m_quant.h        quantize / dequantize linear (int8, uint8)
 *   o2m_mcubert.h      clustered embedding, tiled attention and FFN (scratch)
 *   o2m_binary.h       binary (XNOR-popcount) GEMM / conv, sign packing
 *   o2m_adder.h        adder (L1) GEMM / conv, float32 and int8 (conv: scratch)
 *   o2m_recurrent.h    RNN, GRU, LSTM (scratch: projection and state)
 *
 * Build: C99; link with -lm.  No kernel allocates: a kernel that needs scratch memory
 * takes it as an argument, sized by the formula its kernel entry names
 * (docs/ARCHITECTURE.md, kernels).
 * For small binaries compile with -ffunction-sections -fdata-sections and
 * link with -Wl,--gc-sections so that only the kernels a model calls stay.
 * Results match numpy to ~1e-6 relative; bit-exact reproduction across
 * targets needs -ffp-contract=off (the default under -std=c99).
 */
#ifndef O2M_KERNELS_H
#define O2M_KERNELS_H

#include "o2m_common.h"
#include "o2m_adder.h"
#include "o2m_binary.h"
#include "o2m_conv.h"
#include "o2m_elementwise.h"
#include "o2m_linalg.h"
#include "o2m_mcubert.h"
#include "o2m_norm.h"
#include "o2m_quant.h"
#include "o2m_recurrent.h"
#include "o2m_tensor.h"

#endif /* O2M_KERNELS_H */
