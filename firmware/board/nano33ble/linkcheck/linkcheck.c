/* The nRF52840 link check's stand-in for what the Arduino core and board_arduino.cpp give the sketch on the
 * board: a vector table and reset handler (mbed OS's) and the protocol channel (USB Serial), reduced to
 * what lets the sketch's C sources link as one image.  That image is measured (flash, RAM, stack), never
 * run: the channel here carries nothing. */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

int app_main(void);
void Reset_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((section(".isr_vector"), used)) static void (*const vector_table[2])(void) = {
    (void (*)(void))__stack_top,
    Reset_Handler,
};

__attribute__((noreturn, used)) void Reset_Handler(void)
{
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    SCB_CPACR |= (0xFu << 20); /* the FPU, before any VFP instruction */
    __asm volatile("dsb\n isb" ::: "memory");
    board_exit(app_main());
}

void board_init(void) {}
int board_getc(void) { return BOARD_EOF; }
void board_putc(char c) { (void)c; }
void board_flush(void) {}

void board_exit(int code)
{
    (void)code;
    for (;;)
        __asm volatile("wfi");
}
