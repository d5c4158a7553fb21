/*
 * o2m_s8_elementwise.c - int8 Add, Sub, Mul, LUT, requantize.  See o2m_s8_elementwise.h.
 */
#include "o2m_s8_elementwise.h"

static int8_t clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

static int8_t add_one(const o2m_add_s8_params *p, int32_t subtract, int32_t a, int32_t b)
{
    int32_t s1, s2, raw;
    if (p->float_mode) {
        const float va = p->ratio_a * (float)(a + p->value_offset_a);
        const float vb = p->ratio_b * (float)(b + p->value_offset_b);
        float v = subtract ? va - vb + p->float_offset_sub : va + vb + p->float_offset;
        const float lo = (float)(p->act_min + p->value_offset_y);
        const float hi = (float)(p->act_max + p->value_offset_y);
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        return (int8_t)(o2m_s8_round_even(v) - p->value_offset_y);
    }
    s1 = o2m_s8_mbqm((a + p->input1_offset) * (1 << p->left_shift), p->input1_multiplier, p->input1_shift);
    s2 = o2m_s8_mbqm((b + p->input2_offset) * (1 << p->left_shift), p->input2_multiplier, p->input2_shift);
    raw = subtract ? s1 - s2 : s1 + s2;
    return clamp_s8(o2m_s8_mbqm(raw, p->output_multiplier, p->output_shift) + p->output_offset, p->act_min,
                    p->act_max);
}

static int8_t mul_one(const o2m_mul_s8_params *p, int32_t a, int32_t b)
{
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    if (p->float_mode) {
        return o2m_s8_requant_float(prod, p->float_scale, p->output_offset, p->act_min, p->act_max);
    }
    return o2m_s8_requant_fixed(prod, p->output_multiplier, p->output_shift, p->output_offset, p->act_min,
                                p->act_max);
}

/* kind: 0 add, 1 sub, 2 mul.  Walks the output in C order with an odometer over dims. */
static void binary_nd(int32_t kind, const o2m_add_s8_params *pa, const o2m_mul_s8_params *pm, int32_t rank,
                      const int32_t *dims, const int32_t *a_strides, const int32_t *b_strides, const int8_t *a,
                      const int8_t *b, int8_t *y)
{
    int32_t index[O2M_MAX_DIMS];
    int64_t count = 1;
    int64_t i, ia = 0, ib = 0;
    int32_t d;
    for (d = 0; d < rank; ++d) {
        index[d] = 0;
        count *= dims[d];
    }
    for (i = 0; i < count; ++i) {
        y[i] = kind == 2 ? mul_one(pm, a[ia], b[ib]) : add_one(pa, kind, a[ia], b[ib]);
        for (d = rank - 1; d >= 0; --d) {
            ++index[d];
            ia += a_strides[d];
            ib += b_strides[d];
            if (index[d] < dims[d]) {
                break;
            }
            ia -= (int64_t)a_strides[d] * dims[d];
            ib -= (int64_t)b_strides[d] * dims[d];
            index[d] = 0;
        }
    }
}

void o2m_add_s8(const o2m_add_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    binary_nd(0, p, NULL, rank, dims, a_strides, b_strides, a, b, y);
}

void o2m_sub_s8(const o2m_add_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    binary_nd(1, p, NULL, rank, dims, a_strides, b_strides, a, b, y);
}

void o2m_mul_s8(const o2m_mul_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    binary_nd(2, NULL, p, rank, dims, a_strides, b_strides, a, b, y);
}

void o2m_lut_s8(int32_t n, const int8_t *x, const int8_t *table, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = table[(int32_t)x[i] + 128];
    }
}

void o2m_requantize_s8(const o2m_requantize_s8_params *p, int32_t n, const int8_t *x, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t v = (int32_t)x[i] + p->input_offset;
        y[i] = p->float_mode ? o2m_s8_requant_float(v, p->scale, p->output_offset, -128, 127)
                             : o2m_s8_requant_fixed(v, p->multiplier, p->shift, p->output_offset, -128, 127);
    }
}
