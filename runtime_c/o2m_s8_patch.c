/* o2m_s8_patch.c - see o2m_s8_patch.h for the contracts. */
#include "o2m_s8_patch.h"

#include <string.h>

void o2m_patch_gather_s8(const int8_t *x, int32_t nhwc, int32_t c, int32_t h, int32_t w, int32_t pad_top,
                         int32_t pad_left, int8_t pad_value, int32_t r0, int32_t r1, int32_t c0, int32_t c1,
                         int8_t *dst) {
    const int32_t rows = r1 - r0, cols = c1 - c0;
    int32_t ch, r, col;
    for (ch = 0; ch < c; ++ch) {
        for (r = 0; r < rows; ++r) {
            const int32_t sr = r0 + r - pad_top;
            int8_t *out = dst + ((size_t)ch * (size_t)rows + (size_t)r) * (size_t)cols;
            if (sr < 0 || sr >= h) {
                memset(out, (unsigned char)pad_value, (size_t)cols);
                continue;
            }
            for (col = 0; col < cols; ++col) {
                const int32_t sc = c0 + col - pad_left;
                if (sc < 0 || sc >= w) {
                    out[col] = pad_value;
                } else if (nhwc) {
                    out[col] = x[((size_t)sr * (size_t)w + (size_t)sc) * (size_t)c + (size_t)ch];
                } else {
                    out[col] = x[((size_t)ch * (size_t)h + (size_t)sr) * (size_t)w + (size_t)sc];
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
