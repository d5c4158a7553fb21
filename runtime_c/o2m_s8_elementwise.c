/*
 * o2m_s8_elementwise.c - int8 Add, Sub, Mul, LUT, requantize.  See o2m_s8_elementwise.h.
 */
#include "o2m_s8_elementwise.h"

static int8_t clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

/* Float-mode Add is onnxruntime's AVX2/FMA3 QLinearAdd (onnx2mcu.qmath.add_params):
 * y = fmaf(S, rS, fmaf(K, rK, float_offset)), S the streamed operand (b when
 * float_swap), on the raw integers. */
static int8_t add_one(const o2m_add_s8_params *p, int32_t subtract, int32_t a, int32_t b)
{
    int32_t s1, s2, raw;
    if (p->float_mode) {
        const float fa = (float)(a + p->value_offset_a);
        const float fb = (float)(b + p->value_offset_b);
        float v;
        if (subtract) {
            v = p->ratio_a * fa - p->ratio_b * fb + p->float_offset_sub;
        } else if (p->float_swap) {
            v = o2m_s8_fmaf(fb, p->ratio_b, o2m_s8_fmaf(fa, p->ratio_a, p->float_offset));
        } else {
            v = o2m_s8_fmaf(fa, p->ratio_a, o2m_s8_fmaf(fb, p->ratio_b, p->float_offset));
        }
        {
            const float lo = (float)(p->act_min + p->value_offset_y);
            const float hi = (float)(p->act_max + p->value_offset_y);
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
        }
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

/* kind: 0 add, 1 sub, 2 mul.  Walks the output in C order with an odometer over dims: the
 * reference form, used by the fast paths below for what they do not cover. */
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

/* ------------------------------------------------------------------ fast paths
 *
 * One fixed-point rescale (o2m_s8_mbqm) with its shifts and rounding mask unpacked once.
 * o2m_s8_srdhm (nudge 2^30 for a non-negative product, 1 - 2^30 for a negative one, then
 * truncation toward zero) equals floor((a*b + 2^30) / 2^31) for every pair but
 * INT32_MIN * INT32_MIN: for a product p >= 0 both are floor((p + 2^30) / 2^31); for p = -k < 0,
 * trunc((-k + 1 - 2^30) / 2^31) = -floor((k - 1 + 2^30) / 2^31) = floor((-k + 2^30) / 2^31).
 * rq_init refuses a multiplier of INT32_MIN, so the pair never occurs; it also refuses shifts
 * o2m_s8_mbqm does not define (left or right part above 31).  rq_apply is then o2m_s8_mbqm. */
typedef struct {
    int32_t mult, left, right, mask;
} rq_t;

static int32_t rq_init(rq_t *q, int32_t multiplier, int32_t shift)
{
    q->mult = multiplier;
    q->left = shift > 0 ? shift : 0;
    q->right = shift > 0 ? 0 : -shift;
    if (multiplier == INT32_MIN || q->left > 31 || q->right > 31) {
        return 0;
    }
    q->mask = (int32_t)(((uint64_t)1 << q->right) - 1u);
    return 1;
}

static inline int32_t rq_apply(int32_t x, const rq_t *q)
{
    int32_t v = (int32_t)((uint32_t)x << q->left);
    int32_t rem, threshold;
    v = (int32_t)(((int64_t)v * q->mult + ((int64_t)1 << 30)) >> 31);
    rem = v & q->mask;
    threshold = (q->mask >> 1) + (int32_t)((uint32_t)v >> 31);
    return (v >> q->right) + (rem > threshold ? 1 : 0);
}

/* An operand walk after merging: dims innermost first, dims of size 1 dropped, neighbours
 * merged where both operands (and the dense output) continue. */
typedef struct {
    int32_t rank;
    int32_t dims[O2M_MAX_DIMS];
    int32_t sa[O2M_MAX_DIMS];
    int32_t sb[O2M_MAX_DIMS];
} walk_t;

static void walk_init(walk_t *w, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                      const int32_t *b_strides)
{
    int32_t d;
    w->rank = 0;
    for (d = rank - 1; d >= 0; --d) {
        const int32_t n = w->rank;
        if (dims[d] == 1) {
            continue;
        }
        if (n > 0 && a_strides[d] == w->sa[n - 1] * w->dims[n - 1] && b_strides[d] == w->sb[n - 1] * w->dims[n - 1]) {
            w->dims[n - 1] *= dims[d];
            continue;
        }
        w->dims[n] = dims[d];
        w->sa[n] = a_strides[d];
        w->sb[n] = b_strides[d];
        ++w->rank;
    }
    if (w->rank == 0) {
        w->rank = 1;
        w->dims[0] = 1;
        w->sa[0] = 0;
        w->sb[0] = 0;
    }
}

/* Fixed-mode Add / Sub state: the two input rescales as 256-entry tables of s1(a), s2(b)
 * (s2 negated for Sub, as a wrapping 32-bit value) when the tensor is large enough to pay
 * for them, else the rescales themselves. */
typedef struct {
    const o2m_add_s8_params *p;
    rq_t q1, q2, qo;
    int32_t subtract;
    const int32_t *ta; /* indexed by the int8 value (the table's middle) */
    const int32_t *tb;
    int32_t small;     /* |ta| + |tb| < 2^29: the DSP output rescale applies */
} add_fixed_t;

static inline int32_t add_in1(const add_fixed_t *s, int32_t a)
{
    return rq_apply((a + s->p->input1_offset) * (1 << s->p->left_shift), &s->q1);
}

static inline int32_t add_in2(const add_fixed_t *s, int32_t b)
{
    const int32_t v = rq_apply((b + s->p->input2_offset) * (1 << s->p->left_shift), &s->q2);
    return s->subtract ? (int32_t)(0u - (uint32_t)v) : v;
}

static inline int8_t add_out(const add_fixed_t *s, int32_t s1, int32_t s2)
{
    int32_t v = rq_apply((int32_t)((uint32_t)s1 + (uint32_t)s2), &s->qo) + s->p->output_offset;
    v = v < s->p->act_min ? s->p->act_min : v;
    return (int8_t)(v > s->p->act_max ? s->p->act_max : v);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define O2M_ADD_DSP 1
/* acc + ((x * m + 2^31) >> 32), one SMMLAR (acc * 2^32 added to the product changes nothing
 * below bit 32). */
static inline int32_t smmlar(int32_t x, int32_t m, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(m), "r"(acc));
    return r;
}

/* v saturated to [-128, 127], one SSAT. */
static inline int32_t ssat8(int32_t v)
{
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
}

/*
 * The DSP form of add_out over tables holding 2*s1, 2*s2 (tb negated for Sub), used when
 * |2*s1| + |2*s2| < 2^30, the output multiplier is >= 0 and its shift has left == 0,
 * 1 <= right <= 22:
 *   floor((raw*m + 2^30) / 2^31) = (2*raw*m + 2^31) >> 32 (SMMULR), |v| <= |raw| < 2^29;
 *   o2m_s8_rdbp(v, right) rounds half away from zero: (v + 2^(right-1) - (v < 0)) >> right;
 *   (v < 0) may be read as (raw < 0): they differ only where v = 0 and raw < 0, and there
 *   (2^(right-1) - 1) >> right = 2^(right-1) >> right = 0;
 *   + zp: adding zp*2^right before the shift is the same (|sum| < 2^29 + 2^21 + 2^29 < 2^31),
 *   so bias = 2^(right-1) + zp*2^right rides in SMMLAR's accumulator;
 *   clamp: to [-128, 127] with SSAT, then to [lo, hi] inside it when the activation asks.
 */
typedef struct {
    const int32_t *ta, *tb; /* indexed by the int8 value */
    int32_t m, right, bias, lo, hi;
    int32_t lin; /* 1: b's term is b * 2^20 (tb unused, b's constant in ta); 2: the same for a */
} add_dsp_t;

#define O2M_ADD_DSP_ONE(va, vb, clamp, out)                                                   \
    do {                                                                                      \
        const int32_t r_ = ta[va] + tb[vb];                                                   \
        int32_t v_ = ssat8((smmlar(r_, m, bias) + (r_ >> 31)) >> right);                      \
        if (clamp) {                                                                          \
            v_ = v_ < lo ? lo : v_;                                                           \
            v_ = v_ > hi ? hi : v_;                                                           \
        }                                                                                     \
        (out) = (int8_t)v_;                                                                   \
    } while (0)

/* The full-range same-shape loop with the rounding shift as SSAT's own ASR operand (an
 * immediate: one loop per common shift). */
#define O2M_ADD_DSP_ONE_R(R, j)                                                               \
    do {                                                                                      \
        const int32_t r_ = ta[a[j]] + tb[b[j]];                                               \
        const int32_t u_ = smmlar(r_, m, bias) + (r_ >> 31);                                  \
        int32_t v_;                                                                           \
        __asm__("ssat %0, #8, %1, asr #" #R : "=r"(v_) : "r"(u_));                            \
        y[j] = (int8_t)v_;                                                                    \
    } while (0)
#define O2M_ADD_DSP_RUN_R(R)                                                                  \
    static __attribute__((noinline)) void add_run_dsp_##R(const add_dsp_t *k, int32_t n, const int8_t *a, \
                                                          const int8_t *b, int8_t *y)         \
    {                                                                                         \
        const int32_t *ta = k->ta, *tb = k->tb;                                               \
        const int32_t m = k->m, bias = k->bias;                                               \
        int32_t i;                                                                            \
        for (i = 0; i + 4 <= n; i += 4) {                                                     \
            O2M_ADD_DSP_ONE_R(R, i);                                                          \
            O2M_ADD_DSP_ONE_R(R, i + 1);                                                      \
            O2M_ADD_DSP_ONE_R(R, i + 2);                                                      \
            O2M_ADD_DSP_ONE_R(R, i + 3);                                                      \
        }                                                                                     \
        for (; i < n; ++i) {                                                                  \
            O2M_ADD_DSP_ONE_R(R, i);                                                          \
        }                                                                                     \
    }
/* The same when one operand's rescale is exact and linear (multiplier 2^30, shift 0, left shift
 * 20: s = (x + offset) * 2^19, so 2*s = x * 2^20 + offset * 2^20, the constant folded into the
 * other operand's table): raw = t[u] + v * 2^20, one ADD with LSL #20 in place of a load. */
#define O2M_ADD_DSP_LIN_ONE_R(R, j)                                                           \
    do {                                                                                      \
        const int32_t r_ = t[u[j]] + (int32_t)((uint32_t)(int32_t)v[j] << 20);                \
        const int32_t w_ = smmlar(r_, m, bias) + (r_ >> 31);                                  \
        int32_t o_;                                                                           \
        __asm__("ssat %0, #8, %1, asr #" #R : "=r"(o_) : "r"(w_));                            \
        y[j] = (int8_t)o_;                                                                    \
    } while (0)
#define O2M_ADD_DSP_LIN_R(R)                                                                  \
    static __attribute__((noinline)) void add_run_lin_##R(const add_dsp_t *k, int32_t n, const int32_t *t, \
                                                          const int8_t *u, const int8_t *v, int8_t *y) \
    {                                                                                         \
        const int32_t m = k->m, bias = k->bias;                                               \
        int32_t i;                                                                            \
        for (i = 0; i + 4 <= n; i += 4) {                                                     \
            O2M_ADD_DSP_LIN_ONE_R(R, i);                                                      \
            O2M_ADD_DSP_LIN_ONE_R(R, i + 1);                                                  \
            O2M_ADD_DSP_LIN_ONE_R(R, i + 2);                                                  \
            O2M_ADD_DSP_LIN_ONE_R(R, i + 3);                                                  \
        }                                                                                     \
        for (; i < n; ++i) {                                                                  \
            O2M_ADD_DSP_LIN_ONE_R(R, i);                                                      \
        }                                                                                     \
    }
O2M_ADD_DSP_LIN_R(16)
O2M_ADD_DSP_LIN_R(17)
O2M_ADD_DSP_LIN_R(18)
O2M_ADD_DSP_LIN_R(19)
O2M_ADD_DSP_LIN_R(20)
#undef O2M_ADD_DSP_LIN_R
#undef O2M_ADD_DSP_LIN_ONE_R

O2M_ADD_DSP_RUN_R(16)
O2M_ADD_DSP_RUN_R(17)
O2M_ADD_DSP_RUN_R(18)
O2M_ADD_DSP_RUN_R(19)
O2M_ADD_DSP_RUN_R(20)
#undef O2M_ADD_DSP_RUN_R
#undef O2M_ADD_DSP_ONE_R

static __attribute__((noinline)) void add_run_dsp(const add_dsp_t *k, int32_t n, const int8_t *a, int32_t sa,
                                                  const int8_t *b, int32_t sb, int8_t *y)
{
    const int32_t *ta = k->ta, *tb = k->tb;
    const int32_t m = k->m, right = k->right, bias = k->bias, lo = k->lo, hi = k->hi;
    int32_t i;
    if (k->lin != 0) { /* add_fast set it only for this form: same shape, full range, 16..20 */
        const int32_t *t = k->lin == 1 ? ta : tb;
        const int8_t *u = k->lin == 1 ? a : b, *v = k->lin == 1 ? b : a;
        switch (right) {
        case 16:
            add_run_lin_16(k, n, t, u, v, y);
            break;
        case 17:
            add_run_lin_17(k, n, t, u, v, y);
            break;
        case 18:
            add_run_lin_18(k, n, t, u, v, y);
            break;
        case 19:
            add_run_lin_19(k, n, t, u, v, y);
            break;
        default:
            add_run_lin_20(k, n, t, u, v, y);
            break;
        }
    } else if (sa == 1 && sb == 1 && lo == -128 && hi == 127 && right >= 16 && right <= 20) {
        switch (right) {
        case 16:
            add_run_dsp_16(k, n, a, b, y);
            break;
        case 17:
            add_run_dsp_17(k, n, a, b, y);
            break;
        case 18:
            add_run_dsp_18(k, n, a, b, y);
            break;
        case 19:
            add_run_dsp_19(k, n, a, b, y);
            break;
        default:
            add_run_dsp_20(k, n, a, b, y);
            break;
        }
    } else if (sa == 1 && sb == 1 && lo == -128 && hi == 127) {
        for (i = 0; i + 4 <= n; i += 4) { /* LDRSB per byte: as cheap as extracting it from a word */
            O2M_ADD_DSP_ONE(a[i], b[i], 0, y[i]);
            O2M_ADD_DSP_ONE(a[i + 1], b[i + 1], 0, y[i + 1]);
            O2M_ADD_DSP_ONE(a[i + 2], b[i + 2], 0, y[i + 2]);
            O2M_ADD_DSP_ONE(a[i + 3], b[i + 3], 0, y[i + 3]);
        }
        for (; i < n; ++i) {
            O2M_ADD_DSP_ONE(a[i], b[i], 0, y[i]);
        }
    } else if (sa == 1 && sb == 1) {
        for (i = 0; i < n; ++i) {
            O2M_ADD_DSP_ONE(a[i], b[i], 1, y[i]);
        }
    } else {
        for (i = 0; i < n; ++i) {
            O2M_ADD_DSP_ONE(*a, *b, 1, y[i]);
            a += sa;
            b += sb;
        }
    }
}
#undef O2M_ADD_DSP_ONE
#endif

/* n outputs of table-driven Add / Sub along one run; a, b step by sa, sb elements. */
static void add_row_tab(const add_fixed_t *s, int32_t n, const int8_t *a, int32_t sa, const int8_t *b,
                        int32_t sb, int8_t *y)
{
    const int32_t *ta = s->ta;
    const int32_t *tb = s->tb;
    int32_t i;
    if (sa == 1 && sb == 1) {
        for (i = 0; i < n; ++i) {
            y[i] = add_out(s, ta[a[i]], tb[b[i]]);
        }
    } else {
        for (i = 0; i < n; ++i) {
            y[i] = add_out(s, ta[a[(ptrdiff_t)i * sa]], tb[b[(ptrdiff_t)i * sb]]);
        }
    }
}

/* The same without tables (small tensors); a broadcast operand is rescaled once. */
static void add_row_direct(const add_fixed_t *s, int32_t n, const int8_t *a, int32_t sa, const int8_t *b,
                           int32_t sb, int8_t *y)
{
    int32_t i;
    if (sb == 0) {
        const int32_t s2 = add_in2(s, *b);
        for (i = 0; i < n; ++i) {
            y[i] = add_out(s, add_in1(s, a[(ptrdiff_t)i * sa]), s2);
        }
    } else if (sa == 0) {
        const int32_t s1 = add_in1(s, *a);
        for (i = 0; i < n; ++i) {
            y[i] = add_out(s, s1, add_in2(s, b[(ptrdiff_t)i * sb]));
        }
    } else {
        for (i = 0; i < n; ++i) {
            y[i] = add_out(s, add_in1(s, a[(ptrdiff_t)i * sa]), add_in2(s, b[(ptrdiff_t)i * sb]));
        }
    }
}

/* Float-mode Add / Sub along one run: add_one's arithmetic with the part that depends on one
 * operand alone looked up (ka: a's term, kb: b's term, each exactly as add_one computes it). */
typedef struct {
    const o2m_add_s8_params *p;
    int32_t subtract;
    const float *ka; /* indexed by the int8 value (the table's middle) */
    const float *kb;
    float lo, hi;
} add_float_t;

static void add_row_float(const add_float_t *s, int32_t n, const int8_t *a, int32_t sa, const int8_t *b,
                          int32_t sb, int8_t *y)
{
    const o2m_add_s8_params *p = s->p;
    const int32_t oy = p->value_offset_y;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t va = a[(ptrdiff_t)i * sa];
        const int32_t vb = b[(ptrdiff_t)i * sb];
        float v;
        if (s->subtract) {
            v = s->ka[va] - s->kb[vb] + p->float_offset_sub;
        } else if (p->float_swap) {
            v = o2m_s8_fmaf((float)(vb + p->value_offset_b), p->ratio_b, s->ka[va]);
        } else {
            v = o2m_s8_fmaf((float)(va + p->value_offset_a), p->ratio_a, s->kb[vb]);
        }
        v = v < s->lo ? s->lo : v;
        v = v > s->hi ? s->hi : v;
        y[i] = (int8_t)(o2m_s8_round_even(v) - oy);
    }
}

/* t[k + 128] = rq_apply((k + offset) * 2^left_shift, q) for every int8 k, negated (wrapping)
 * when neg, doubled when dbl (the caller knows it fits).  With no left part in q and every
 * (k + offset) * 2^left_shift inside int32 (as o2m_s8_mbqm's operand is), the 64-bit products
 * x*mult + 2^30 step by 2^left_shift * mult from k to k + 1: one addition per entry instead of
 * a multiply; otherwise rq_apply itself. */
static int32_t add_linear(int32_t offset, int32_t left_shift, const rq_t *q)
{
    const int64_t x0 = ((int64_t)offset - 128) * ((int64_t)1 << (left_shift & 31));
    const int64_t x1 = ((int64_t)offset + 127) * ((int64_t)1 << (left_shift & 31));
    return q->left == 0 && q->mult >= 0 && left_shift >= 0 && left_shift <= 30 && x0 >= INT32_MIN &&
           x1 <= INT32_MAX;
}

static void add_table(int32_t *t, int32_t offset, int32_t left_shift, const rq_t *q, int32_t neg, int32_t dbl,
                      int32_t plus)
{
    int32_t k;
    if (add_linear(offset, left_shift, q)) {
        const int64_t x0 = ((int64_t)offset - 128) * ((int64_t)1 << left_shift);
        const int64_t step = ((int64_t)1 << left_shift) * q->mult;
        const int32_t mask = q->mask, half = q->mask >> 1, right = q->right;
        int64_t acc = x0 * q->mult + ((int64_t)1 << 30);
        for (k = 0; k < 256; ++k, acc += step) {
            const int32_t v = (int32_t)(acc >> 31);
            int32_t r = (v >> right) + ((v & mask) > half - (v >> 31) ? 1 : 0);
            r = neg ? (int32_t)(0u - (uint32_t)r) : r;
            t[k] = (dbl ? r * 2 : r) + plus;
        }
        return;
    }
    for (k = 0; k < 256; ++k) {
        int32_t r = rq_apply((k - 128 + offset) * (1 << left_shift), q);
        r = neg ? (int32_t)(0u - (uint32_t)r) : r;
        t[k] = (dbl ? r * 2 : r) + plus;
    }
}

#ifdef O2M_ADD_DSP
#define dsp_lin(d) ((d)->lin)
#else
#define dsp_lin(d) 0
#endif

/* Tables pay for themselves from about this many outputs. */
#define O2M_ADD_TABLE_MIN 512

static void add_fast(const o2m_add_s8_params *p, int32_t subtract, int32_t rank, const int32_t *dims,
                     const int32_t *a_strides, const int32_t *b_strides, const int8_t *a, const int8_t *b,
                     int8_t *y)
{
    walk_t w;
    int32_t idx[O2M_MAX_DIMS];
    union { /* 2 KiB of stack: fixed mode's or float mode's tables */
        int32_t i[2][256];
        float f[2][256];
    } tabs;
    int32_t *const ta = tabs.i[0], *const tb = tabs.i[1];
    float *const fa = tabs.f[0], *const fb = tabs.f[1];
    add_fixed_t fx;
    add_float_t fl;
#ifdef O2M_ADD_DSP
    add_dsp_t dsp;
    memset(&dsp, 0, sizeof dsp);
#endif
    memset(&fx, 0, sizeof fx);
    memset(&fl, 0, sizeof fl);
    int64_t count = 1, rows = 1, r;
    ptrdiff_t oa = 0, ob = 0;
    int32_t d, k, use_tab = 0;
    for (d = 0; d < rank; ++d) {
        count *= dims[d];
    }
    if (count == 0) {
        return;
    }
    walk_init(&w, rank, dims, a_strides, b_strides);
    use_tab = count >= O2M_ADD_TABLE_MIN;
    if (p->float_mode && !use_tab) {
        fl.p = p; /* add_one per element */
        fl.ka = fl.kb = NULL;
    } else if (p->float_mode) {
        fl.p = p;
        fl.subtract = subtract;
        fl.lo = (float)(p->act_min + p->value_offset_y);
        fl.hi = (float)(p->act_max + p->value_offset_y);
        for (k = -128; k < 128; ++k) {
            const float xa = (float)(k + p->value_offset_a);
            const float xb = (float)(k + p->value_offset_b);
            if (subtract) {
                fa[k + 128] = p->ratio_a * xa;
                fb[k + 128] = p->ratio_b * xb;
            } else {
                fa[k + 128] = o2m_s8_fmaf(xa, p->ratio_a, p->float_offset); /* inner term when swapped */
                fb[k + 128] = o2m_s8_fmaf(xb, p->ratio_b, p->float_offset); /* inner term otherwise */
            }
        }
        fl.ka = fa + 128;
        fl.kb = fb + 128;
    } else {
        int64_t max_a = 0, max_b = 0;
        fx.p = p;
        fx.subtract = subtract;
        fx.small = 0;
        if (!rq_init(&fx.q1, p->input1_multiplier, p->input1_shift) ||
            !rq_init(&fx.q2, p->input2_multiplier, p->input2_shift) ||
            !rq_init(&fx.qo, p->output_multiplier, p->output_shift)) {
            binary_nd(subtract, p, NULL, rank, dims, a_strides, b_strides, a, b, y);
            return;
        }
        if (use_tab) {
            /* s1, s2 are monotonic in the int8 value where add_linear holds (x = (k + offset) *
             * 2^left_shift grows with k, a rescale by a non-negative multiplier keeps the order):
             * the ends bound them; otherwise every value does */
            const int32_t ends = add_linear(p->input1_offset, p->left_shift, &fx.q1) &&
                                 add_linear(p->input2_offset, p->left_shift, &fx.q2);
            int32_t dbl = 0;
            for (k = -128; k < 128; k += ends ? 255 : 1) {
                const int32_t va = add_in1(&fx, k), vb = add_in2(&fx, k);
                const int64_t ma = va < 0 ? -(int64_t)va : va, mb = vb < 0 ? -(int64_t)vb : vb;
                max_a = ma > max_a ? ma : max_a;
                max_b = mb > max_b ? mb : max_b;
            }
            fx.small = max_a + max_b < ((int64_t)1 << 29);
            fx.ta = ta + 128;
            fx.tb = tb + 128;
#ifdef O2M_ADD_DSP
            if (fx.small && fx.qo.mult >= 0 && fx.qo.left == 0 && fx.qo.right >= 1 && fx.qo.right <= 22 &&
                p->output_offset >= -128 && p->output_offset <= 128 && p->act_min >= -128 &&
                p->act_max <= 127) {
                dbl = 1;
                dsp.ta = ta + 128;
                dsp.tb = tb + 128;
                dsp.m = fx.qo.mult;
                dsp.right = fx.qo.right;
                dsp.bias = (1 << (fx.qo.right - 1)) + p->output_offset * (1 << fx.qo.right);
                dsp.lo = p->act_min;
                dsp.hi = p->act_max;
                use_tab = 2;
                if (w.sa[0] == 1 && w.sb[0] == 1 && p->act_min == -128 && p->act_max == 127 &&
                    fx.qo.right >= 16 && fx.qo.right <= 20 && p->left_shift == 20) {
                    /* every run is the same-shape full-range form: an exact linear operand needs no table */
                    if (!subtract && p->input2_multiplier == (1 << 30) && p->input2_shift == 0) {
                        dsp.lin = 1;
                    } else if (p->input1_multiplier == (1 << 30) && p->input1_shift == 0) {
                        dsp.lin = 2;
                    }
                }
            }
#endif
            if (dsp_lin(&dsp) == 1) {
                add_table(ta, p->input1_offset, p->left_shift, &fx.q1, 0, dbl, p->input2_offset * (1 << 20));
            } else if (dsp_lin(&dsp) == 2) {
                add_table(tb, p->input2_offset, p->left_shift, &fx.q2, subtract, dbl, p->input1_offset * (1 << 20));
            } else {
                add_table(ta, p->input1_offset, p->left_shift, &fx.q1, 0, dbl, 0);
                add_table(tb, p->input2_offset, p->left_shift, &fx.q2, subtract, dbl, 0);
            }
        }
    }
    for (d = 1; d < w.rank; ++d) {
        rows *= w.dims[d];
        idx[d] = 0;
    }
    for (r = 0; r < rows; ++r) {
        int8_t *yr = y + r * w.dims[0];
        if (p->float_mode && !use_tab) {
            int32_t i;
            for (i = 0; i < w.dims[0]; ++i) {
                yr[i] = add_one(p, subtract, a[oa + (ptrdiff_t)i * w.sa[0]], b[ob + (ptrdiff_t)i * w.sb[0]]);
            }
        } else if (p->float_mode) {
            add_row_float(&fl, w.dims[0], a + oa, w.sa[0], b + ob, w.sb[0], yr);
#ifdef O2M_ADD_DSP
        } else if (use_tab == 2) {
            add_run_dsp(&dsp, w.dims[0], a + oa, w.sa[0], b + ob, w.sb[0], yr);
#endif
        } else if (use_tab) {
            add_row_tab(&fx, w.dims[0], a + oa, w.sa[0], b + ob, w.sb[0], yr);
        } else {
            add_row_direct(&fx, w.dims[0], a + oa, w.sa[0], b + ob, w.sb[0], yr);
        }
        for (d = 1; d < w.rank; ++d) {
            oa += w.sa[d];
            ob += w.sb[d];
            if (++idx[d] < w.dims[d]) {
                break;
            }
            idx[d] = 0;
            oa -= (ptrdiff_t)w.sa[d] * w.dims[d];
            ob -= (ptrdiff_t)w.sb[d] * w.dims[d];
        }
    }
}

/* Fixed- or float-mode Mul along merged runs, the rescale unpacked once. */
static void mul_fast(const o2m_mul_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                     const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    walk_t w;
    int32_t idx[O2M_MAX_DIMS];
    rq_t q;
    int64_t count = 1, rows = 1, r;
    memset(&q, 0, sizeof q);
    ptrdiff_t oa = 0, ob = 0;
    int32_t d, i;
    for (d = 0; d < rank; ++d) {
        count *= dims[d];
    }
    if (count == 0) {
        return;
    }
    if (!p->float_mode && !rq_init(&q, p->output_multiplier, p->output_shift)) {
        binary_nd(2, NULL, p, rank, dims, a_strides, b_strides, a, b, y);
        return;
    }
    walk_init(&w, rank, dims, a_strides, b_strides);
    for (d = 1; d < w.rank; ++d) {
        rows *= w.dims[d];
        idx[d] = 0;
    }
    for (r = 0; r < rows; ++r) {
        int8_t *yr = y + r * w.dims[0];
        const int8_t *ar = a + oa;
        const int8_t *br = b + ob;
        const int32_t sa = w.sa[0], sb = w.sb[0];
        if (p->float_mode) {
            for (i = 0; i < w.dims[0]; ++i) {
                yr[i] = mul_one(p, ar[(ptrdiff_t)i * sa], br[(ptrdiff_t)i * sb]);
            }
        } else {
            for (i = 0; i < w.dims[0]; ++i) {
                const int32_t prod = (ar[(ptrdiff_t)i * sa] + p->input1_offset) * (br[(ptrdiff_t)i * sb] + p->input2_offset);
                int32_t v = rq_apply(prod, &q) + p->output_offset;
                v = v < p->act_min ? p->act_min : v;
                yr[i] = (int8_t)(v > p->act_max ? p->act_max : v);
            }
        }
        for (d = 1; d < w.rank; ++d) {
            oa += w.sa[d];
            ob += w.sb[d];
            if (++idx[d] < w.dims[d]) {
                break;
            }
            idx[d] = 0;
            oa -= (ptrdiff_t)w.sa[d] * w.dims[d];
            ob -= (ptrdiff_t)w.sb[d] * w.dims[d];
        }
    }
}

void o2m_add_s8(const o2m_add_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    add_fast(p, 0, rank, dims, a_strides, b_strides, a, b, y);
}

void o2m_sub_s8(const o2m_add_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    add_fast(p, 1, rank, dims, a_strides, b_strides, a, b, y);
}

void o2m_mul_s8(const o2m_mul_s8_params *p, int32_t rank, const int32_t *dims, const int32_t *a_strides,
                const int32_t *b_strides, const int8_t *a, const int8_t *b, int8_t *y)
{
    mul_fast(p, rank, dims, a_strides, b_strides, a, b, y);
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
