/* Board port for QEMU mps2-an386 (Cortex-M4F), the emulated stand-in for the nRF52840 target.
 *
 * Timing: QEMU does not model DWT CYCCNT, so ticks come from SysTick on the CPU clock (25 MHz).
 * Run QEMU with -icount shift=0 and virtual time advances exactly 1 ns per guest instruction,
 * so one tick is 40 emulated instructions.  The host checks that ratio with board_calibration_loop
 * rather than trusting this comment. */
#include "board.h"
#include "mps2_an386.h"

extern uint32_t __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps++; }

/* The RX interrupt exists only to wake the core from WFI; the data is read by board_getc. */
void UART0_RX_Handler(void) { UART0_INTCLEAR = UART_INT_RX; }

void board_init(void)
{
    UART0_BAUDDIV = MPS2_SYSCLK_HZ / 115200u;
    UART0_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << MPS2_IRQ_UART0_RX;

    SYST_RVR = SYST_MAX_RELOAD;
    board_ticks_reset();
}

int board_getc(void)
{
    /* Sleep instead of spinning so an idle QEMU leaves the shared host CPU alone.  Interrupts are
     * masked across the check and the WFI: a byte arriving in between still wakes the core
     * (pending IRQs end WFI even when masked) and cannot be lost. */
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (UART0_STATE & UART_STATE_RXFULL)
            break;
        __asm volatile("wfi");
        __asm volatile("cpsie i" ::: "memory");
    }
    __asm volatile("cpsie i" ::: "memory");
    return (int)(UART0_DATA & 0xFFu);
}

void board_putc(char c)
{
    while (UART0_STATE & UART_STATE_TXFULL)
        ;
    UART0_DATA = (uint8_t)c;
}

void board_flush(void) {}

void board_ticks_reset(void)
{
    SYST_CSR = 0;
    systick_wraps = 0;
    SYST_CVR = 0; /* any write clears the counter; it reloads on the next clock */
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CPU;
    /* Until that reload the counter reads 0, which board_ticks would take for a full period.
     * Waiting for it costs under one tick and makes the count start exactly at a reload. */
    while (SYST_CVR == 0)
        ;
}

uint64_t board_ticks(void)
{
    uint32_t wraps, value;
    do { /* re-read if the counter wrapped between the two reads */
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (wraps != systick_wraps);
    return (uint64_t)wraps * (SYST_MAX_RELOAD + 1u) + (SYST_MAX_RELOAD - value);
}

uint32_t board_tick_hz(void) { return MPS2_SYSCLK_HZ; }
const char *board_tick_source(void) { return "systick"; }

uint32_t board_stack_size(void) { return (uint32_t)((char *)__stack_top - (char *)__stack_bottom); }

uint32_t board_stack_high_water(void)
{
    /* The stack grows down from __stack_top; the lowest overwritten paint word marks the deepest
     * use.  A value that happens to equal the paint pattern can hide at most that one word. */
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == STACK_PAINT)
        p++;
    return (uint32_t)((const char *)__stack_top - (const char *)p);
}

uint32_t board_data_bytes(void) { return (uint32_t)((char *)__data_end - (char *)__data_start); }
uint32_t board_bss_bytes(void) { return (uint32_t)((char *)__bss_end - (char *)__bss_start); }

const void *board_preload(uint32_t addr, uint32_t len)
{
    if (addr < MPS2_PSRAM_BASE || len > MPS2_PSRAM_SIZE || addr - MPS2_PSRAM_BASE > MPS2_PSRAM_SIZE - len)
        return 0;
    return (const void *)addr;
}

const char *board_name(void) { return "mps2_an386"; }

void board_calibration_loop(uint32_t n)
{
    if (n == 0)
        return;
    __asm volatile("1: subs %0, %0, #1\n"
                   "   bne 1b\n"
                   : "+r"(n)
                   :
                   : "cc");
}

/* Semihosting SYS_EXIT_EXTENDED: QEMU exits with `code` as its own exit status. */
void board_exit(int code)
{
    static const uint32_t ADP_Stopped_ApplicationExit = 0x20026u;
    volatile uint32_t block[2] = {ADP_Stopped_ApplicationExit, (uint32_t)code};
    register uint32_t r0 __asm("r0") = 0x20; /* SYS_EXIT_EXTENDED */
    register uint32_t r1 __asm("r1") = (uint32_t)block;
    __asm volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) /* only reached without a semihosting debugger (real hardware) */
        __asm volatile("wfi");
}

/* A fault is reported as a plain (unchecksummed) line, which the host logs, then QEMU exits
 * with a distinctive status so the host can tell a crash from a protocol problem. */
__attribute__((used, noreturn)) static void fault_report(const uint32_t *frame)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char msg[] = "\n!FAULT pc=";
    uint32_t pc = frame[6]; /* stacked r0-r3, r12, lr, pc, xpsr */
    for (const char *s = msg; *s; s++)
        board_putc(*s);
    for (int shift = 28; shift >= 0; shift -= 4)
        board_putc(hex[(pc >> shift) & 0xFu]);
    board_putc('\n');
    board_exit(BOARD_FAULT_EXIT);
}

__attribute__((naked)) void Fault_Handler(void)
{
    __asm volatile("tst lr, #4\n"
                   "ite eq\n"
                   "mrseq r0, msp\n"
                   "mrsne r0, psp\n"
                   "b fault_report\n");
}
