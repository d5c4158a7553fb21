/*
 * onnx2mcu read-back protocol (the same on the host and on a board).
 *
 * The program prints, on stdout, for each output:
 *     OUT <name> <count> <dtype>
 *     <count> words in hex, separated by spaces/newlines (8 per line)
 * and finally a line
 *     DONE
 * dtype is f32 (IEEE-754 bits of each float, 8 hex digits), s32/u32/s16/u16/s8/u8/b8
 * (the value as a 32-bit two's-complement word, 8 hex digits) or s64 (16 hex digits).
 * Names must not contain white space. simulator/run_c.py:parse_outputs reads it back
 * bit-exactly.
 *
 * o2m_mark_begin()/o2m_mark_end() bracket the code whose instructions the QEMU
 * plugin should count separately (e.g. one inference; several begin..end pairs are
 * added up); they do nothing else.
 */
#ifndef O2M_IO_H
#define O2M_IO_H

#include <stddef.h>
#include <stdint.h>

void o2m_out_f32(const char *name, const float *data, size_t count);
void o2m_out_s32(const char *name, const int32_t *data, size_t count);
void o2m_out_u32(const char *name, const uint32_t *data, size_t count);
void o2m_out_s16(const char *name, const int16_t *data, size_t count);
void o2m_out_u16(const char *name, const uint16_t *data, size_t count);
void o2m_out_s8(const char *name, const int8_t *data, size_t count);
void o2m_out_u8(const char *name, const uint8_t *data, size_t count);
void o2m_out_b8(const char *name, const uint8_t *data, size_t count);
void o2m_out_s64(const char *name, const int64_t *data, size_t count);
void o2m_done(void);

void o2m_mark_begin(void);
void o2m_mark_end(void);

#endif /* O2M_IO_H */
