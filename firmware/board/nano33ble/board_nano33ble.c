/* Board port for the Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F at 64 MHz): the part of board.h that
 * is plain C.  The Arduino-specific rest (USB Serial, setup/loop, the PDM microphone) is board_arduino.cpp.
 *
 * Timing: the DWT cycle counter, so a tick is one core clock cycle at 64 MHz (real cycles, wait states and
 * all).  It is 32 bits wide and wraps every 67 s; board_ticks widens it, which holds as long as it is read
 * at least that often while a count is running (every timed region here is far shorter).
 *
 * Memory: the Arduino core (mbed OS) owns the linker script, the stack and the start-up code, so this image
 * cannot tell its own static RAM or stack apart from the core's: MEM reports 0 for them, as board.h allows,
 * and the host takes those figures from the nRF52840 link check of the same sources instead.  No memory is
 * preloadable: the host sends inputs with LOAD. */
#include "board.h"
#include "board_nano33ble.h"
#include "nrf52840.h"

#ifndef TM_BOARD_NAME
#define TM_BOARD_NAME "nano33ble_sense"
#endif

static uint32_t ticks_high, ticks_last; /* the upper word of the widened count, and the last raw read */

void board_cycle_counter_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

void board_ticks_reset(void)
{
    ticks_high = 0;
    ticks_last = 0;
    DWT_CYCCNT = 0;
}

uint64_t board_ticks(void)
{
    const uint32_t now = DWT_CYCCNT;
    if (now < ticks_last)
        ticks_high++;
    ticks_last = now;
    return ((uint64_t)ticks_high << 32) | now;
}

uint32_t board_tick_hz(void) { return NRF52840_HCLK_HZ; }
const char *board_tick_source(void) { return "cycles"; }

uint32_t board_stack_size(void) { return 0; }
uint32_t board_stack_high_water(void) { return 0; }
uint32_t board_data_bytes(void) { return 0; }
uint32_t board_bss_bytes(void) { return 0; }

const void *board_preload(uint32_t addr, uint32_t len)
{
    (void)addr, (void)len;
    return 0;
}

const char *board_name(void) { return TM_BOARD_NAME; }

void board_calibration_loop(uint32_t n)
{
#if defined(__arm__)
    if (n == 0)
        return;
    __asm volatile("1: subs %0, %0, #1\n"
                   "   bne 1b\n"
                   : "+r"(n)
                   :
                   : "cc");
#else /* the host build of the glue: the count only means something on the MCU */
    for (volatile uint32_t i = n; i; i--)
        ;
#endif
}
