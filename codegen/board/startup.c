/*
 * onnx2mcu startup code for Cortex-M (ARMv6-M and ARMv7E-M), written for the
 * onnx2mcu board projects; the same file serves every board.
 *
 *   - vector table in section .isr_vector (placed at the start of FLASH by board.ld)
 *   - Reset_Handler: copy .data from flash, zero .bss, enable the FPU (when the
 *     code is compiled for one), set up newlib's semihosting I/O, exit(main())
 *   - every fault / unexpected exception prints a line on the semihosting
 *     console and ends the program with SYS_EXIT_EXTENDED and O2M_FAULT_EXIT_CODE,
 *     so a crash under QEMU returns at once instead of hanging.
 */
#include <stdint.h>
#include <stdlib.h>

#define O2M_FAULT_EXIT_CODE 99

#if defined(__ARM_ARCH_6M__) || (defined(__ARM_ARCH) && __ARM_ARCH == 6)
#define O2M_ARMV6M 1
#define O2M_IRQ_VECTORS 32
#else
#define O2M_ARMV6M 0
#define O2M_IRQ_VECTORS 64
#endif

/* Symbols from board.ld. */
extern uint32_t __data_load__[];
extern uint32_t __data_start__[];
extern uint32_t __data_end__[];
extern uint32_t __bss_start__[];
extern uint32_t __bss_end__[];
extern uint32_t __stack_top__[];
extern uint32_t __ram_start__[];
extern uint32_t __ram_end__[];

int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void o2m_unexpected_handler(void);
void o2m_fault_report(const uint32_t *frame, uint32_t exc_return);
void HardFault_Handler(void);
void NMI_Handler(void) __attribute__((weak, alias("o2m_unexpected_handler")));
void SVC_Handler(void) __attribute__((weak, alias("o2m_unexpected_handler")));
void PendSV_Handler(void) __attribute__((weak, alias("o2m_unexpected_handler")));
void SysTick_Handler(void) __attribute__((weak, alias("o2m_unexpected_handler")));
#if !O2M_ARMV6M
void MemManage_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("o2m_unexpected_handler")));
#endif

typedef void (*o2m_handler_t)(void);

struct o2m_vector_table {
    uint32_t *initial_sp;
    o2m_handler_t system[15];
    o2m_handler_t irq[O2M_IRQ_VECTORS];
};

#define O2M_IRQ4 o2m_unexpected_handler, o2m_unexpected_handler, o2m_unexpected_handler, o2m_unexpected_handler
#define O2M_IRQ16 O2M_IRQ4, O2M_IRQ4, O2M_IRQ4, O2M_IRQ4

__attribute__((section(".isr_vector"), used))
const struct o2m_vector_table o2m_vectors = {
    __stack_top__,
    {
        Reset_Handler,
        NMI_Handler,
        HardFault_Handler,
#if O2M_ARMV6M
        0, 0, 0, 0, 0, 0, 0,
        SVC_Handler,
        0, 0,
#else
        MemManage_Handler,
        BusFault_Handler,
        UsageFault_Handler,
        0, 0, 0, 0,
        SVC_Handler,
        DebugMon_Handler,
        0,
#endif
        PendSV_Handler,
        SysTick_Handler,
    },
#if O2M_IRQ_VECTORS == 32
    { O2M_IRQ16, O2M_IRQ16 },
#else
    { O2M_IRQ16, O2M_IRQ16, O2M_IRQ16, O2M_IRQ16 },
#endif
};

#define O2M_REG(addr) (*(volatile uint32_t *)(addr))
#define O2M_SCB_VTOR 0xE000ED08u
#define O2M_SCB_CPACR 0xE000ED88u
#define O2M_SCB_ICSR 0xE000ED04u
#define O2M_SCB_CFSR 0xE000ED28u
#define O2M_SCB_HFSR 0xE000ED2Cu
#define O2M_SCB_MMFAR 0xE000ED34u
#define O2M_SCB_BFAR 0xE000ED38u

void Reset_Handler(void)
{
    uint32_t *src = __data_load__;
    uint32_t *dst = __data_start__;
    while (dst < __data_end__) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < __bss_end__; ++dst) {
        *dst = 0u;
    }
#if !O2M_ARMV6M
    /* Point VTOR at our table (it may be aliased at 0 only at boot). */
    O2M_REG(O2M_SCB_VTOR) = (uint32_t)(uintptr_t)&o2m_vectors;
#endif
#if defined(__ARM_FP)
    /* CP10 and CP11 full access, or the first floating-point instruction faults. */
    O2M_REG(O2M_SCB_CPACR) |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
#ifdef O2M_IO_RTT
    /* RTT harness: no semihosting (a board without a debugger would stop at its BKPT). */
    (void)main();
    for (;;) {
        __asm__ volatile("wfi");
    }
#else
    initialise_monitor_handles();
    exit(main());
#endif
}

/* ----- raw semihosting: no libc, usable from a fault handler ------------- */
#define O2M_SYS_WRITE0 0x04
#define O2M_SYS_EXIT 0x18
#define O2M_SYS_EXIT_EXTENDED 0x20
#define O2M_ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define O2M_ADP_STOPPED_RUNTIME_ERROR 0x20023u

#ifdef O2M_IO_RTT
#include "o2m_rtt.h"
/* RTT harness: a fault's line goes to the RTT buffer, then the core waits for the debugger. */
static uint32_t o2m_semihost(uint32_t op, const void *arg)
{
    if (op == O2M_SYS_WRITE0) {
        o2m_rtt_puts((const char *)arg);
        o2m_rtt_finished();
    }
    for (;;) {
        __asm__ volatile("wfi");
    }
    return 0u;
}
#else
static uint32_t o2m_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
#endif

static void o2m_fault_exit(void)
{
    static uint32_t block[2];
    block[0] = O2M_ADP_STOPPED_APPLICATION_EXIT;
    block[1] = O2M_FAULT_EXIT_CODE;
    o2m_semihost(O2M_SYS_EXIT_EXTENDED, block);
    /* A host without SYS_EXIT_EXTENDED: plain SYS_EXIT with an error reason (exit code 1). */
    o2m_semihost(O2M_SYS_EXIT, (const void *)(uintptr_t)O2M_ADP_STOPPED_RUNTIME_ERROR);
    for (;;) {
    }
}

static char o2m_msg[192];
static unsigned o2m_msg_len;

static void o2m_msg_str(const char *s)
{
    while (*s != '\0' && o2m_msg_len + 1u < sizeof o2m_msg) {
        o2m_msg[o2m_msg_len++] = *s++;
    }
    o2m_msg[o2m_msg_len] = '\0';
}

static void o2m_msg_hex(const char *label, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    char text[12];
    int i;
    text[0] = '0';
    text[1] = 'x';
    for (i = 0; i < 8; ++i) {
        text[2 + i] = digits[(value >> (28 - 4 * i)) & 0xFu];
    }
    text[10] = '\0';
    o2m_msg_str(label);
    o2m_msg_str(text);
}

static int o2m_in_ram(const uint32_t *p, unsigned words)
{
    return p >= __ram_start__ && p + words <= __ram_end__;
}

/* Called from HardFault_Handler with the stacked exception frame (or NULL). */
void o2m_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr = O2M_REG(O2M_SCB_ICSR) & 0x1FFu;
    o2m_msg_len = 0;
    o2m_msg_str("onnx2mcu: FAULT");
    o2m_msg_hex(" exception=", ipsr);
    if (frame != 0 && o2m_in_ram(frame, 8)) {
        o2m_msg_hex(" pc=", frame[6]);
        o2m_msg_hex(" lr=", frame[5]);
        o2m_msg_hex(" sp=", (uint32_t)(uintptr_t)frame);
    } else {
        o2m_msg_str(" (stack pointer outside RAM: stack overflow?)");
    }
    o2m_msg_hex(" exc_return=", exc_return);
#if !O2M_ARMV6M
    o2m_msg_hex(" cfsr=", O2M_REG(O2M_SCB_CFSR));
    o2m_msg_hex(" hfsr=", O2M_REG(O2M_SCB_HFSR));
    o2m_msg_hex(" bfar=", O2M_REG(O2M_SCB_BFAR));
    o2m_msg_hex(" mmfar=", O2M_REG(O2M_SCB_MMFAR));
#endif
    o2m_msg_str("\n");
    o2m_semihost(O2M_SYS_WRITE0, o2m_msg);
    o2m_fault_exit();
}

/* Pick MSP or PSP by EXC_RETURN bit 2, then hand over to the C reporter.
   Thumb-1 only, so the same code serves ARMv6-M. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile(
        "movs r0, #4\n\t"
        "mov r1, lr\n\t"
        "tst r0, r1\n\t"
        "beq 1f\n\t"
        "mrs r0, psp\n\t"
        "b 2f\n"
        "1:\n\t"
        "mrs r0, msp\n"
        "2:\n\t"
        "ldr r2, =o2m_fault_report\n\t"
        "bx r2\n\t"
        ".ltorg\n");
}

void o2m_unexpected_handler(void)
{
    o2m_msg_len = 0;
    o2m_msg_str("onnx2mcu: unexpected exception");
    o2m_msg_hex(" exception=", O2M_REG(O2M_SCB_ICSR) & 0x1FFu);
    o2m_msg_str("\n");
    o2m_semihost(O2M_SYS_WRITE0, o2m_msg);
    o2m_fault_exit();
}
