/* onnx2mcu read-back protocol: see o2m_io.h. Uses only fputs (no printf), so it
   adds little code and few instructions on a board. */
#include "o2m_io.h"

#include <stdio.h>
#include <string.h>

#ifdef O2M_IO_RTT
#include "o2m_rtt.h"
#define O2M_PUTS(text) o2m_rtt_puts(text)
#else
#define O2M_PUTS(text) fputs(text, stdout)
#endif

#define O2M_WORDS_PER_LINE 8

static const char o2m_hex_digits[] = "0123456789abcdef";

static char *o2m_put_hex(char *p, uint64_t value, int digits)
{
    int i;
    for (i = digits - 1; i >= 0; --i) {
        *p++ = o2m_hex_digits[(unsigned)(value >> (4 * i)) & 0xFu];
    }
    return p;
}

static void o2m_header(const char *name, size_t count, const char *dtype)
{
    char number[24];
    char *p = number + sizeof number;
    size_t n = count;
    *--p = '\0';
    do {
        *--p = (char)('0' + (int)(n % 10u));
        n /= 10u;
    } while (n != 0u);
    O2M_PUTS("OUT ");
    O2M_PUTS(name);
    O2M_PUTS(" ");
    O2M_PUTS(p);
    O2M_PUTS(" ");
    O2M_PUTS(dtype);
    O2M_PUTS("\n");
}

/* Words come from a callback-free switch so that every dtype shares one loop. */
enum o2m_kind { O2M_F32, O2M_I32, O2M_U32, O2M_I16, O2M_U16, O2M_I8, O2M_U8, O2M_I64 };

static uint64_t o2m_word(enum o2m_kind kind, const void *data, size_t i)
{
    uint32_t bits;
    switch (kind) {
    case O2M_F32:
        memcpy(&bits, (const float *)data + i, sizeof bits);
        return bits;
    case O2M_I32:
        return (uint32_t)((const int32_t *)data)[i];
    case O2M_U32:
        return ((const uint32_t *)data)[i];
    case O2M_I16:
        return (uint32_t)(int32_t)((const int16_t *)data)[i];
    case O2M_U16:
        return ((const uint16_t *)data)[i];
    case O2M_I8:
        return (uint32_t)(int32_t)((const int8_t *)data)[i];
    case O2M_U8:
        return ((const uint8_t *)data)[i];
    case O2M_I64:
        return (uint64_t)((const int64_t *)data)[i];
    }
    return 0u;
}

static void o2m_out(const char *name, const char *dtype, enum o2m_kind kind, const void *data, size_t count)
{
    char line[O2M_WORDS_PER_LINE * 17 + 2];
    int digits = kind == O2M_I64 ? 16 : 8;
    size_t i = 0;
    o2m_header(name, count, dtype);
    while (i < count) {
        char *p = line;
        int k;
        for (k = 0; k < O2M_WORDS_PER_LINE && i < count; ++k, ++i) {
            if (k != 0) {
                *p++ = ' ';
            }
            p = o2m_put_hex(p, o2m_word(kind, data, i), digits);
        }
        *p++ = '\n';
        *p = '\0';
        O2M_PUTS(line);
    }
}

void o2m_out_f32(const char *name, const float *data, size_t count) { o2m_out(name, "f32", O2M_F32, data, count); }
void o2m_out_s32(const char *name, const int32_t *data, size_t count) { o2m_out(name, "s32", O2M_I32, data, count); }
void o2m_out_u32(const char *name, const uint32_t *data, size_t count) { o2m_out(name, "u32", O2M_U32, data, count); }
void o2m_out_s16(const char *name, const int16_t *data, size_t count) { o2m_out(name, "s16", O2M_I16, data, count); }
void o2m_out_u16(const char *name, const uint16_t *data, size_t count) { o2m_out(name, "u16", O2M_U16, data, count); }
void o2m_out_s8(const char *name, const int8_t *data, size_t count) { o2m_out(name, "s8", O2M_I8, data, count); }
void o2m_out_u8(const char *name, const uint8_t *data, size_t count) { o2m_out(name, "u8", O2M_U8, data, count); }
void o2m_out_b8(const char *name, const uint8_t *data, size_t count) { o2m_out(name, "b8", O2M_U8, data, count); }
void o2m_out_s64(const char *name, const int64_t *data, size_t count) { o2m_out(name, "s64", O2M_I64, data, count); }

void o2m_done(void)
{
    O2M_PUTS("DONE\n");
#ifdef O2M_IO_RTT
    o2m_rtt_finished();
#else
    fflush(stdout);
#endif
}

/* Marker functions: the QEMU plugin adds up the instructions executed from each
   entry into o2m_mark_begin to the next entry into o2m_mark_end. The distinct
   volatile stores keep the calls from being deleted and the two functions from
   being folded into one address; noinline keeps each a real entry point. */
static volatile uint32_t o2m_mark_state;

#if defined(__GNUC__) && !defined(__clang__)
#define O2M_NOINLINE __attribute__((noinline, noclone))
#elif defined(__GNUC__)
#define O2M_NOINLINE __attribute__((noinline))
#else
#define O2M_NOINLINE
#endif

O2M_NOINLINE void o2m_mark_begin(void)
{
    o2m_mark_state = 1u;
}

O2M_NOINLINE void o2m_mark_end(void)
{
    o2m_mark_state = 2u;
}
