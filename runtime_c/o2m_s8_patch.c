/* o2m_s8_patch.c - see o2m_s8_patch.h for the contracts. */
#include "o2m_s8_patch.h"

#include <string.h>

void o2m_patch_gather_s8(const int8_t *x, int32_t nhwc, int32_t c, int32_t h, int32_t w, int32_t pad_top,
                         int32_t pad_left, int8_t pad_value, int32_t r0, int32_t r1, int32_t c0, int32_t c1,
                         int8_t *dst) {
    const int32_t rows = r1 - r0, cols = c1 - c0;
    const size_t plane = (size_t)rows * (size_t)cols;
    /* the columns of the region inside x: [lo, hi) of the patch row; pad_value elsewhere */
    int32_t lo = pad_left - c0, hi = pad_left + w - c0;
    int32_t ch, r, col;
    lo = lo < 0 ? 0 : (lo > cols ? cols : lo);
    hi = hi > cols ? cols : (hi < lo ? lo : hi);
    for (r = 0; r < rows; ++r) {
        const int32_t sr = r0 + r - pad_top;
        const int32_t inside = sr >= 0 && sr < h && hi > lo;
        for (ch = 0; ch < c; ++ch) {
            int8_t *out = dst + (size_t)ch * plane + (size_t)r * (size_t)cols;
            if (!inside) {
                memset(out, (unsigned char)pad_value, (size_t)cols);
                continue;
            }
            memset(out, (unsigned char)pad_value, (size_t)lo);
            memset(out + hi, (unsigned char)pad_value, (size_t)(cols - hi));
            if (!nhwc) {
                memcpy(out + lo, x + ((size_t)ch * (size_t)h + (size_t)sr) * (size_t)w + (size_t)(c0 + lo - pad_left),
                       (size_t)(hi - lo));
            }
        }
        if (inside && nhwc) {
            /* one pass along the row, channels innermost as x stores them */
            const int8_t *src = x + ((size_t)sr * (size_t)w + (size_t)(c0 + lo - pad_left)) * (size_t)c;
            int8_t *out = dst + (size_t)r * (size_t)cols;
            for (col = lo; col < hi; ++col) {
                for (ch = 0; ch < c; ++ch) {
                    out[(size_t)ch * plane + (size_t)col] = *src++;
                }
            }
        }
    }
}

void o2m_patch_scatter_s8(const int8_t *src, int32_t c, int32_t h, int32_t w, int32_t r0, int32_t r1,
                          int32_t c0, int32_t c1, int8_t *y) {
    const int32_t rows = r1 - r0, cols = c1 - c0;
    int32_t ch, r;
    for (ch = 0; ch < c; ++ch) {
        for (r = 0; r < rows; ++r) {
            memcpy(y + ((size_t)ch * (size_t)h + (size_t)(r0 + r)) * (size_t)w + (size_t)c0,
                   src + ((size_t)ch * (size_t)rows + (size_t)r) * (size_t)cols, (size_t)cols);
        }
    }
}
