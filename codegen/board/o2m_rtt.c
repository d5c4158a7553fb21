/* onnx2mcu RTT channel: see o2m_rtt.h. */
#include "o2m_rtt.h"

static char o2m_rtt_up[O2M_RTT_BUFFER_BYTES];
static char o2m_rtt_down[16];
/* The name debuggers look up in the ELF; the layout is the documented one. */
o2m_rtt_control_block _SEGGER_RTT;

static void o2m_rtt_init(void)
{
    static const char id[] = "SEGGER RTT";
    volatile char *dst = _SEGGER_RTT.id;
    unsigned i;
    _SEGGER_RTT.max_up_buffers = 1;
    _SEGGER_RTT.max_down_buffers = 1;
    _SEGGER_RTT.up[0].name = "Terminal";
    _SEGGER_RTT.up[0].buffer = o2m_rtt_up;
    _SEGGER_RTT.up[0].size = O2M_RTT_BUFFER_BYTES;
    _SEGGER_RTT.up[0].wr_off = 0u;
    _SEGGER_RTT.up[0].rd_off = 0u;
    _SEGGER_RTT.up[0].flags = 2u;
    _SEGGER_RTT.down[0].name = "Terminal";
    _SEGGER_RTT.down[0].buffer = o2m_rtt_down;
    _SEGGER_RTT.down[0].size = sizeof o2m_rtt_down;
    _SEGGER_RTT.down[0].wr_off = 0u;
    _SEGGER_RTT.down[0].rd_off = 0u;
    _SEGGER_RTT.down[0].flags = 0u;
    __asm__ volatile("" ::: "memory");
    for (i = 1u; i < sizeof id; ++i) { /* the id last, its first byte very last */
        dst[i] = id[i];
    }
    __asm__ volatile("" ::: "memory");
    dst[0] = id[0];
}

void o2m_rtt_puts(const char *text)
{
    o2m_rtt_ring *ring = &_SEGGER_RTT.up[0];
    if (_SEGGER_RTT.id[0] != 'S') {
        o2m_rtt_init();
    }
    while (*text != '\0') {
        uint32_t wr = ring->wr_off;
        uint32_t next = wr + 1u == ring->size ? 0u : wr + 1u;
        if (next == ring->rd_off) {
            continue; /* full: wait for the probe to read */
        }
        ring->buffer[wr] = *text++;
        __asm__ volatile("" ::: "memory");
        ring->wr_off = next;
    }
}

static volatile uint32_t o2m_rtt_done_count;

__attribute__((noinline)) void o2m_rtt_finished(void)
{
    o2m_rtt_done_count = o2m_rtt_done_count + 1u;
}
