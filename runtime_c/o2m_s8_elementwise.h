/*
 * o2m_s8_elementwise.h - int8 Add, Sub, Mul (numpy broadcasting), table
 * lookup for unary ops, int8 -> int8 requantization.
 * Conventions: o2m_s8_common.h.  Bit-exact with onnx2mcu.ops.int8_ref.
 */
#ifndef O2M_S8_ELEMENTWISE_H
#define O2M_S8_ELEMENTWISE_H

#include "o2m_s8_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Add / Sub (TFLite's scheme): each input, offset by its zero point and
 * shifted left by left_shift (20), is rescaled by its multiplier to the common
 * scale 2*max(s1, s2); the sum (difference) is rescaled to the output, offset
 * and clamped.  Float mode (float_mode != 0): y = round_half_even(clamp(
 * ratio_a*a +/- ratio_b*b + offset)), offset = float_offset (Add) or
 * float_offset_sub (Sub), on the model's integers: stored value + value_offset_*
 * (128 for uint8 values held as int8; 0 otherwise).
 */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
    int32_t float_mode;
    float ratio_a, ratio_b, float_offset, float_offset_sub;
    int32_t value_offset_a, value_offset_b, value_offset_y;
} o2m_add_s8_params;

/* Mul: y = clamp(requant((a + input1_offset) * (b + input2_offset)) + output_offset). */
typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
    int32_t float_mode;
    float float_scale;
} o2m_mul_s8_params;

/*
 * Broadcast form (rank 0..O2M_MAX_DIMS): y is dense with shape dims;
 * a_strides[d] / b_strides[d] are each operand's element strides along
 * output dim d (0 where broadcast).  In-place: y == a (or b) when that
 * operand is dense with the output's shape.
 */
void o2m_add_s8(const o2m_add_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y);
void o2m_sub_s8(const o2m_add_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y);
void o2m_mul_s8(const o2m_mul_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y);

/* y[i] = table[x[i] + 128] (256 entries built at compile time from the op's
 * float definition, onnx2mcu.qmath.lut_s8).  In-place: y == x. */
void o2m_lut_s8(int32_t n, const int8_t *x, const int8_t *table, int8_t *y);

/* int8 -> int8 rescale: y = clamp(requant(x + input_offset) + output_offset, -128, 127);
 * fixed mode with (multiplier, shift), float mode (float_mode != 0) with scale. */
typedef struct {
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
    int32_t float_mode;
    float scale;
} o2m_requantize_s8_params;

void o2m_requantize_s8(const o2m_requantize_s8_params *p, int32_t n, const int8_t *x, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* O2M_S8_ELEMENTWISE_H */
