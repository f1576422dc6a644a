/* Reset and exception entry for the Cortex-M4F on QEMU mps2-an386.
 *
 * Deliberately minimal: the vector table, a reset handler that sets up the C runtime and the
 * FPU, and a fault handler that reports and exits instead of hanging, so a crashing model
 * shows up on the host as an error with an exit code rather than as a timeout. */
#include <stdint.h>

#include "board.h"
#include "mps2_an386.h"

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];

int app_main(void);
void Reset_Handler(void);
void SysTick_Handler(void);
void UART0_RX_Handler(void);
void Fault_Handler(void);

static void Default_Handler(void) { Fault_Handler(); }

/* Only the vectors the firmware can raise are populated; the rest fault loudly. */
__attribute__((section(".isr_vector"), used)) static void (*const vector_table[16 + MPS2_NUM_IRQS])(void) = {
    [0] = (void (*)(void))__stack_top,
    [1] = Reset_Handler,
    [2] = Default_Handler,  /* NMI */
    [3] = Fault_Handler,    /* HardFault */
    [4] = Fault_Handler,    /* MemManage */
    [5] = Fault_Handler,    /* BusFault */
    [6] = Fault_Handler,    /* UsageFault */
    [11] = Default_Handler, /* SVCall */
    [12] = Default_Handler, /* DebugMon */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 + MPS2_IRQ_UART0_RX] = UART0_RX_Handler,
};

__attribute__((noreturn, used)) void Reset_Handler(void)
{
    /* Paint the whole stack except the few words this function already uses, so the high-water
     * mark covers everything main() does.  Plain C is safe here: this frame has no locals on
     * the stack below the current sp. */
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __stack_bottom; (uint32_t)p < sp - 16; p++)
        *p = STACK_PAINT;

    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;

    /* Full access to CP10/CP11 before any compiler-generated VFP instruction can run. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n isb" ::: "memory");

    board_exit(app_main());
}
