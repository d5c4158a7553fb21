/*
 * o2m_tensor.c - data movement and casts.  See o2m_tensor.h.
 *
 * Elements are moved with memcpy of a constant size (1, 2, 4 or 8 bytes),
 * which compilers turn into one load and one store and which is valid for
 * any element type.
 */
#include <string.h>

#include "o2m_internal.h"
#include "o2m_tensor.h"

typedef unsigned char byte;

/* n elements from s (stride ss) to d (stride ds); strides in elements. */
static void copy_row(int32_t n, const byte *s, int32_t ss, byte *d, int32_t ds, int32_t es)
{
    int32_t i;
    if (ss == 1 && ds == 1) {
        memcpy(d, s, (size_t)n * (size_t)es);
        return;
    }
    {
        const ptrdiff_t sb = (ptrdiff_t)ss * es;
        const ptrdiff_t db = (ptrdiff_t)ds * es;
        switch (es) {
        case 1:
            for (i = 0; i < n; ++i) {
                *d = *s;
                s += sb;
                d += db;
            }
            break;
        case 2:
            for (i = 0; i < n; ++i) {
                memcpy(d, s, 2);
                s += sb;
                d += db;
            }
            break;
        case 4:
            for (i = 0; i < n; ++i) {
                memcpy(d, s, 4);
                s += sb;
                d += db;
            }
            break;
        case 8:
            for (i = 0; i < n; ++i) {
                memcpy(d, s, 8);
                s += sb;
                d += db;
            }
            break;
        default:
            for (i = 0; i < n; ++i) {
                memcpy(d, s, (size_t)es);
                s += sb;
                d += db;
            }
            break;
        }
    }
}

/* Bytes over two dims, one of them short (k = 2..4, a transpose between NHWC and NCHW with few
 * channels): d[i*dl + j*dk] = s[i*sl + j*sk] for i < n, j < k, the k lanes unrolled, so each
 * byte costs a load and a store (the generic walk pays a row's set-up for every k bytes, or a
 * pointer step per byte). */
static void copy_bytes_k(int32_t n, int32_t k, const byte *s, ptrdiff_t sl, ptrdiff_t sk, byte *d,
                         ptrdiff_t dl, ptrdiff_t dk)
{
    const byte *s1 = s + sk;
    byte *d1 = d + dk;
    ptrdiff_t os = 0, od = 0;
    int32_t i;
    if (k == 2) {
        for (i = 0; i < n; ++i, os += sl, od += dl) {
            d[od] = s[os];
            d1[od] = s1[os];
        }
    } else if (k == 3) {
        const byte *s2 = s + 2 * sk;
        byte *d2 = d + 2 * dk;
        i = 0;
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* Three planes from / to packed triples, four at a time through words: the packed side
         * [r0 g0 b0 r1] [g1 b1 r2 g2] [b2 r3 g3 b3], the planes [r0 r1 r2 r3] and so on. */
        if (sk == 1 && sl == 3 && dl == 1) {
            for (; i + 4 <= n; i += 4) {
                uint32_t w0, w1, w2, r, g, b;
                memcpy(&w0, s + 3 * i, 4);
                memcpy(&w1, s + 3 * i + 4, 4);
                memcpy(&w2, s + 3 * i + 8, 4);
                r = (w0 & 0xffu) | ((w0 >> 16) & 0xff00u) | (w1 & 0xff0000u) | ((w2 << 16) & 0xff000000u);
                g = ((w0 >> 8) & 0xffu) | ((w1 << 8) & 0xff00u) | ((w1 >> 8) & 0xff0000u) | ((w2 << 8) & 0xff000000u);
                b = ((w0 >> 16) & 0xffu) | (w1 & 0xff00u) | ((w2 << 16) & 0xff0000u) | (w2 & 0xff000000u);
                memcpy(d + i, &r, 4);
                memcpy(d1 + i, &g, 4);
                memcpy(d2 + i, &b, 4);
            }
        } else if (sl == 1 && dk == 1 && dl == 3) {
            for (; i + 4 <= n; i += 4) {
                uint32_t w0, w1, w2, r, g, b;
                memcpy(&r, s + i, 4);
                memcpy(&g, s1 + i, 4);
                memcpy(&b, s2 + i, 4);
                w0 = (r & 0xffu) | ((g & 0xffu) << 8) | ((b & 0xffu) << 16) | ((r & 0xff00u) << 16);
                w1 = ((g >> 8) & 0xffu) | (b & 0xff00u) | (r & 0xff0000u) | ((g << 8) & 0xff000000u);
                w2 = ((b >> 16) & 0xffu) | ((r >> 16) & 0xff00u) | ((g >> 8) & 0xff0000u) | (b & 0xff000000u);
                memcpy(d + 3 * i, &w0, 4);
                memcpy(d + 3 * i + 4, &w1, 4);
                memcpy(d + 3 * i + 8, &w2, 4);
            }
        }
#endif
        os = (ptrdiff_t)i * sl;
        od = (ptrdiff_t)i * dl;
        for (; i < n; ++i, os += sl, od += dl) {
            d[od] = s[os];
            d1[od] = s1[os];
            d2[od] = s2[os];
        }
    } else {
        const byte *s2 = s + 2 * sk, *s3 = s + 3 * sk;
        byte *d2 = d + 2 * dk, *d3 = d + 3 * dk;
        for (i = 0; i < n; ++i, os += sl, od += dl) {
            d[od] = s[os];
            d1[od] = s1[os];
            d2[od] = s2[os];
            d3[od] = s3[os];
        }
    }
}

void o2m_copy_nd(int32_t rank, const int32_t *dims, const void *src, const int32_t *src_strides,
                 void *dst, const int32_t *dst_strides, int32_t elem_size)
{
    int32_t nd[O2M_COPY_MAX_DIMS]; /* merged dims, innermost first */
    int32_t ns[O2M_COPY_MAX_DIMS];
    int32_t nt[O2M_COPY_MAX_DIMS];
    int32_t idx[O2M_COPY_MAX_DIMS];
    int32_t dense = 1;
    int32_t nr = 0, d, rows, r;
    ptrdiff_t so = 0, to = 0;
    const byte *s = (const byte *)src;
    byte *t = (byte *)dst;

    for (d = 0; d < rank; ++d) {
        if (dims[d] == 0) {
            return;
        }
    }
    for (d = rank - 1; d >= 0; --d) {
        const int32_t ss = src_strides[d];
        const int32_t ts = dst_strides ? dst_strides[d] : dense;
        dense *= dims[d];
        if (dims[d] == 1) {
            continue;
        }
        if (nr > 0 && ss == ns[nr - 1] * nd[nr - 1] && ts == nt[nr - 1] * nd[nr - 1]) {
            nd[nr - 1] *= dims[d];
            continue;
        }
        nd[nr] = dims[d];
        ns[nr] = ss;
        nt[nr] = ts;
        ++nr;
    }
    if (nr == 0) {
        memcpy(t, s, (size_t)elem_size);
        return;
    }
    if (elem_size == 1 && nr == 2 && (nd[0] <= 4 || nd[1] <= 4) && !(ns[0] == 1 && nt[0] == 1)) {
        if (nd[1] <= 4) {
            copy_bytes_k(nd[0], nd[1], s, ns[0], ns[1], t, nt[0], nt[1]);
        } else {
            copy_bytes_k(nd[1], nd[0], s, ns[1], ns[0], t, nt[1], nt[0]);
        }
        return;
    }
    rows = 1;
    for (d = 1; d < nr; ++d) {
        rows *= nd[d];
        idx[d] = 0;
    }
    for (r = 0; r < rows; ++r) {
        copy_row(nd[0], s + so * elem_size, ns[0], t + to * elem_size, nt[0], elem_size);
        for (d = 1; d < nr; ++d) {
            so += ns[d];
            to += nt[d];
            if (++idx[d] < nd[d]) {
                break;
            }
            idx[d] = 0;
            so -= (ptrdiff_t)ns[d] * nd[d];
            to -= (ptrdiff_t)nt[d] * nd[d];
        }
    }
}

void o2m_transpose(int32_t rank, const int32_t *in_dims, const int32_t *perm, const void *x,
                   void *y, int32_t elem_size)
{
    int32_t in_strides[O2M_COPY_MAX_DIMS];
    int32_t dims[O2M_COPY_MAX_DIMS];
    int32_t strides[O2M_COPY_MAX_DIMS];
    int32_t d, step = 1;
    for (d = rank - 1; d >= 0; --d) {
        in_strides[d] = step;
        step *= in_dims[d];
    }
    for (d = 0; d < rank; ++d) {
        dims[d] = in_dims[perm[d]];
        strides[d] = in_strides[perm[d]];
    }
    o2m_copy_nd(rank, dims, x, strides, y, NULL, elem_size);
}

void o2m_copy_blocks(int32_t blocks, int32_t bytes, const void *src, int32_t src_stride,
                     void *dst, int32_t dst_stride)
{
    int32_t b;
    for (b = 0; b < blocks; ++b) {
        memcpy((byte *)dst + (size_t)b * (size_t)dst_stride,
               (const byte *)src + (size_t)b * (size_t)src_stride, (size_t)bytes);
    }
}

void o2m_concat(int32_t outer, int32_t count, const void *const *inputs, const int32_t *sizes,
                void *y, int32_t elem_size)
{
    int32_t o, j;
    byte *t = (byte *)y;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < count; ++j) {
            const size_t bytes = (size_t)sizes[j] * (size_t)elem_size;
            memcpy(t, (const byte *)inputs[j] + (size_t)o * bytes, bytes);
            t += bytes;
        }
    }
}

void o2m_split(int32_t outer, int32_t count, const void *x, const int32_t *sizes,
               void *const *outputs, int32_t elem_size)
{
    int32_t o, j;
    const byte *s = (const byte *)x;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < count; ++j) {
            const size_t bytes = (size_t)sizes[j] * (size_t)elem_size;
            memcpy((byte *)outputs[j] + (size_t)o * bytes, s, bytes);
            s += bytes;
        }
    }
}

/* Source index of padded index i (already shifted by the begin pad) along a
 * dim of size d, or -1 for "use the constant". */
static int32_t pad_map(int32_t i, int32_t d, int32_t mode)
{
    if (i >= 0 && i < d) {
        return i;
    }
    if (d <= 0) {
        return -1;
    }
    switch (mode) {
    case O2M_PAD_EDGE:
        return i < 0 ? 0 : d - 1;
    case O2M_PAD_REFLECT: {
        const int32_t period = 2 * (d - 1);
        if (period == 0) {
            return 0;
        }
        i %= period;
        if (i < 0) {
            i += period;
        }
        return i < d ? i : period - i;
    }
    case O2M_PAD_WRAP:
        i %= d;
        return i < 0 ? i + d : i;
    default:
        return -1;
    }
}

/* n copies of the elem_size-byte *value (zero bytes when value is NULL) from t: memset for
 * zeros and bytes, else the first copy and then doubling memcpys. */
static void fill_value(byte *t, int32_t n, const void *value, int32_t elem_size)
{
    size_t done, total = (size_t)n * (size_t)elem_size;
    if (n <= 0) {
        return;
    }
    if (!value) {
        memset(t, 0, total);
        return;
    }
    if (elem_size == 1) {
        memset(t, *(const byte *)value, total);
        return;
    }
    memcpy(t, value, (size_t)elem_size);
    for (done = (size_t)elem_size; done < total; done *= 2) {
        memcpy(t + done, t, done < total - done ? done : total - done);
    }
}

void o2m_pad(int32_t mode, int32_t rank, const int32_t *in_dims, const int32_t *out_dims,
             const int32_t *pads_begin, const void *x, const void *value, void *y,
             int32_t elem_size)
{
    int32_t in_strides[O2M_MAX_DIMS];
    int32_t idx[O2M_MAX_DIMS];
    const byte *s = (const byte *)x;
    byte *t = (byte *)y;
    const int32_t vsize = elem_size; /* the size of *value; elem_size grows below */
    int32_t d, step = 1, rows = 1, r, j, run;
    int32_t w_in, w_out, pb, lo, hi;

    if (rank <= 0) {
        memcpy(t, s, (size_t)elem_size);
        return;
    }
    /* Trailing unpadded dims move whole blocks: fold them into the element (pad_map leaves
     * in-range indices alone whatever the mode). */
    while (rank > 1 && in_dims[rank - 1] == out_dims[rank - 1] && pads_begin[rank - 1] == 0) {
        elem_size *= in_dims[rank - 1];
        --rank;
    }
    run = elem_size / vsize; /* copies of *value per (folded) element */
    for (d = rank - 1; d >= 0; --d) {
        in_strides[d] = step;
        step *= in_dims[d];
    }
    for (d = 0; d < rank - 1; ++d) {
        rows *= out_dims[d];
        idx[d] = 0;
    }
    w_in = in_dims[rank - 1];
    w_out = out_dims[rank - 1];
    pb = pads_begin[rank - 1];
    /* output columns [lo, hi) copy input columns [lo - pb, hi - pb) */
    lo = pb > 0 ? pb : 0;
    hi = pb + w_in < w_out ? pb + w_in : w_out;
    if (lo > w_out) {
        lo = w_out;
    }
    if (hi < lo) {
        hi = lo;
    }
    for (r = 0; r < rows; ++r) {
        byte *tr = t + (size_t)r * w_out * elem_size;
        ptrdiff_t off = 0;
        int32_t fill = 0;
        for (d = 0; d < rank - 1; ++d) {
            const int32_t m = pad_map(idx[d] - pads_begin[d], in_dims[d], mode);
            if (m < 0) {
                fill = 1;
                break;
            }
            off += (ptrdiff_t)m * in_strides[d];
        }
        if (fill) {
            fill_value(tr, w_out * run, value, vsize);
        } else {
            const byte *sr = s + off * elem_size;
            if (hi > lo) {
                memcpy(tr + (size_t)lo * elem_size, sr + (ptrdiff_t)(lo - pb) * elem_size,
                       (size_t)(hi - lo) * elem_size);
            }
            if (mode == O2M_PAD_CONSTANT) {
                fill_value(tr, lo * run, value, vsize);
                fill_value(tr + (size_t)hi * elem_size, (w_out - hi) * run, value, vsize);
            } else {
                for (j = 0; j < w_out; ++j) {
                    if (j == lo) {
                        j = hi;
                        if (j >= w_out) {
                            break;
                        }
                    }
                    {
                        const int32_t m = pad_map(j - pb, w_in, mode);
                        if (m < 0) {
                            fill_value(tr + (size_t)j * elem_size, run, value, vsize);
                        } else {
                            memcpy(tr + (size_t)j * elem_size, sr + (size_t)m * elem_size,
                                   (size_t)elem_size);
                        }
                    }
                }
            }
        }
        for (d = rank - 2; d >= 0; --d) {
            if (++idx[d] < out_dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}

static int32_t fix_index(int64_t k, int32_t axis_dim)
{
    if (k < 0) {
        k += axis_dim;
    }
    if (k < 0) {
        k = 0;
    }
    if (k > axis_dim - 1) {
        k = axis_dim - 1;
    }
    return (int32_t)k;
}

void o2m_gather(int32_t outer, int32_t axis_dim, int32_t inner, int32_t count, const void *x,
                const int64_t *indices, void *y, int32_t elem_size)
{
    const size_t row = (size_t)inner * (size_t)elem_size;
    byte *t = (byte *)y;
    int32_t o, j;
    for (o = 0; o < outer; ++o) {
        const byte *xo = (const byte *)x + (size_t)o * axis_dim * row;
        for (j = 0; j < count; ++j) {
            memcpy(t, xo + (size_t)fix_index(indices[j], axis_dim) * row, row);
            t += row;
        }
    }
}

void o2m_gather_s32(int32_t outer, int32_t axis_dim, int32_t inner, int32_t count,
                    const void *x, const int32_t *indices, void *y, int32_t elem_size)
{
    const size_t row = (size_t)inner * (size_t)elem_size;
    byte *t = (byte *)y;
    int32_t o, j;
    for (o = 0; o < outer; ++o) {
        const byte *xo = (const byte *)x + (size_t)o * axis_dim * row;
        for (j = 0; j < count; ++j) {
            memcpy(t, xo + (size_t)fix_index(indices[j], axis_dim) * row, row);
            t += row;
        }
    }
}

void o2m_depth_to_space(int32_t n, int32_t c, int32_t h, int32_t w, int32_t block, int32_t crd,
                        const void *x, void *y, int32_t elem_size)
{
    const int32_t bb = block * block;
    const int32_t oc_count = c / bb;
    const size_t plane = (size_t)h * w;
    const byte *s = (const byte *)x;
    byte *t = (byte *)y;
    int32_t b, oc, hh, i, ww, j;
    for (b = 0; b < n; ++b) {
        for (oc = 0; oc < oc_count; ++oc) {
            for (hh = 0; hh < h; ++hh) {
                for (i = 0; i < block; ++i) {
                    for (ww = 0; ww < w; ++ww) {
                        for (j = 0; j < block; ++j) {
                            const int32_t ic =
                                crd ? oc * bb + i * block + j : (i * block + j) * oc_count + oc;
                            const size_t at =
                                ((size_t)b * c + ic) * plane + (size_t)hh * w + (size_t)ww;
                            memcpy(t, s + at * elem_size, (size_t)elem_size);
                            t += elem_size;
                        }
                    }
                }
            }
        }
    }
}

void o2m_space_to_depth(int32_t n, int32_t c, int32_t h, int32_t w, int32_t block, const void *x,
                        void *y, int32_t elem_size)
{
    const int32_t oh = h / block, ow = w / block;
    const byte *s = (const byte *)x;
    byte *t = (byte *)y;
    int32_t b, i, j, ic, hh, ww;
    for (b = 0; b < n; ++b) {
        for (i = 0; i < block; ++i) {
            for (j = 0; j < block; ++j) {
                for (ic = 0; ic < c; ++ic) {
                    for (hh = 0; hh < oh; ++hh) {
                        const size_t row =
                            ((size_t)b * c + ic) * h * w + (size_t)(hh * block + i) * w + j;
                        for (ww = 0; ww < ow; ++ww) {
                            memcpy(t, s + (row + (size_t)ww * block) * elem_size,
                                   (size_t)elem_size);
                            t += elem_size;
                        }
                    }
                }
            }
        }
    }
}

/* ----------------------------------------------------------------- casts */
static int64_t f32_to_s64(float v)
{
    if (v != v) {
        return 0;
    }
    if (v >= 9223372036854775807.0f) { /* 2^63 */
        return INT64_MAX;
    }
    if (v <= -9223372036854775808.0f) {
        return INT64_MIN;
    }
    return (int64_t)v;
}

static int32_t f32_to_s32(float v)
{
    if (v != v) {
        return 0;
    }
    if (v >= 2147483648.0f) {
        return INT32_MAX;
    }
    if (v <= -2147483648.0f) {
        return INT32_MIN;
    }
    return (int32_t)v;
}

#define O2M_DEFINE_CAST(NAME, TI, TO, EXPR)                                                        \
    void o2m_cast_##NAME(int32_t n, const TI *x, TO *y)                                            \
    {                                                                                              \
        int32_t i;                                                                                 \
        for (i = 0; i < n; ++i) {                                                                  \
            const TI v = x[i];                                                                     \
            y[i] = (EXPR);                                                                         \
        }                                                                                          \
    }

O2M_DEFINE_CAST(f32_s64, float, int64_t, f32_to_s64(v))
O2M_DEFINE_CAST(f32_s32, float, int32_t, f32_to_s32(v))
O2M_DEFINE_CAST(f32_b8, float, uint8_t, (uint8_t)(v != 0.0f))
O2M_DEFINE_CAST(s64_f32, int64_t, float, (float)v)
O2M_DEFINE_CAST(s32_f32, int32_t, float, (float)v)
O2M_DEFINE_CAST(b8_f32, uint8_t, float, v != 0 ? 1.0f : 0.0f)
O2M_DEFINE_CAST(s64_s32, int64_t, int32_t, (int32_t)(uint32_t)(uint64_t)v)
O2M_DEFINE_CAST(s32_s64, int32_t, int64_t, (int64_t)v)
O2M_DEFINE_CAST(s64_b8, int64_t, uint8_t, (uint8_t)(v != 0))
O2M_DEFINE_CAST(s32_b8, int32_t, uint8_t, (uint8_t)(v != 0))
O2M_DEFINE_CAST(b8_s64, uint8_t, int64_t, (int64_t)(v != 0))
O2M_DEFINE_CAST(b8_s32, uint8_t, int32_t, (int32_t)(v != 0))
