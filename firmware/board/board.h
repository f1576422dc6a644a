/* Board abstraction: everything the app needs from the hardware, nothing more.
 *
 * A port (e.g. an Arduino Nano 33 BLE Sense / nRF52840) provides board/<name>/ with these
 * functions; app/ never touches registers.  Ticks come from whatever deterministic counter the
 * board has (SysTick under QEMU icount, DWT CYCCNT on real silicon), so the app reports ticks
 * plus board_tick_hz() and the host decides what a tick means. */
#ifndef TM_BOARD_H
#define TM_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* An Arduino sketch is built without this project's Makefile, so nothing passes it -D options: an exported
 * sketch (tinymighty.device.arduino) states them in tm_sketch.h, next to this file.  Every other build
 * has no such file. */
#if defined(__has_include)
#if __has_include("tm_sketch.h")
#include "tm_sketch.h"
#endif
#endif

#define BOARD_EOF (-1)

/* Exit status after a CPU fault, distinct from any status main() returns. */
#define BOARD_FAULT_EXIT 99

void board_init(void);

/* Blocking byte I/O on the protocol channel.  board_getc returns BOARD_EOF only when the
 * channel can never deliver more data (host build: stdin closed). */
int board_getc(void);
void board_putc(char c);
void board_flush(void); /* called at the end of every line */

/* Tick counter for timing inferences.  board_ticks() counts from the last board_ticks_reset();
 * resetting right before the measured code keeps the count free of timer-interrupt jitter. */
void board_ticks_reset(void);
uint64_t board_ticks(void);
uint32_t board_tick_hz(void);
const char *board_tick_source(void); /* short token, e.g. "systick" */

/* Stack usage: bytes reserved for the main stack and the deepest use since boot (the stack is
 * painted at reset).  Both 0 where the board cannot measure it (host build). */
uint32_t board_stack_size(void);
uint32_t board_stack_high_water(void);

/* Static RAM of the image (initialised data and zeroed bss), 0 where unknown. */
uint32_t board_data_bytes(void);
uint32_t board_bss_bytes(void);

/* Memory the host placed before boot (QEMU -device loader).  Returns a pointer to len bytes at
 * the device address addr, or NULL if that range is not preloadable memory on this board. */
const void *board_preload(uint32_t addr, uint32_t len);

const char *board_name(void);

/* Runs a loop of exactly 2*n instructions (subs + bne) so the host can check the tick-to-
 * instruction conversion against a known count. */
void board_calibration_loop(uint32_t n);

void board_exit(int code) __attribute__((noreturn));

#endif
