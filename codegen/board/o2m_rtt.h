/*
 * onnx2mcu RTT channel: the read-back protocol (o2m_io.h) over a SEGGER-RTT-compatible
 * control block in RAM, so results come back over SWD on any Cortex-M with no UART or
 * clock setup. Written for onnx2mcu from the documented control-block layout
 * (docs/ARCHITECTURE.md, "RTT"): pyOCD, OpenOCD and J-Link find it by its "SEGGER RTT" id.
 *
 * Up-buffer 0 holds O2M_RTT_BUFFER_BYTES bytes; a write blocks while the buffer is full
 * (mode 2), so nothing is lost when a probe reads; size the buffer to hold the whole
 * output when nobody reads until the end (the generated Makefile does).
 */
#ifndef O2M_RTT_H
#define O2M_RTT_H

#include <stdint.h>

#ifndef O2M_RTT_BUFFER_BYTES
#define O2M_RTT_BUFFER_BYTES 1024
#endif

typedef struct {
    const char *name;
    char *buffer;
    uint32_t size;
    volatile uint32_t wr_off; /* written by the target */
    volatile uint32_t rd_off; /* written by the probe */
    uint32_t flags;           /* 0 skip, 1 trim, 2 block when full */
} o2m_rtt_ring;

typedef struct {
    char id[16]; /* "SEGGER RTT", written last so a probe never sees a half-made block */
    int32_t max_up_buffers;
    int32_t max_down_buffers;
    o2m_rtt_ring up[1];
    o2m_rtt_ring down[1];
} o2m_rtt_control_block;

extern o2m_rtt_control_block _SEGGER_RTT;

void o2m_rtt_puts(const char *text);
/* Called once when every output is written: a debugger breaks here to read the buffer. */
void o2m_rtt_finished(void);

#endif /* O2M_RTT_H */
