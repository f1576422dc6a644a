/* The Cortex-M4 core registers the Nano 33 BLE Sense board layer uses: the DWT cycle counter, from the
 * ARMv7-M Architecture Reference Manual's addresses (no CMSIS header, so the same file compiles for the link
 * check, in the Arduino core and on the host).
 *
 * TM_REG32 is how a register is reached.  The host build of the sketch's glue has no such addresses: it
 * defines TM_STANDIN and gets each register from the stand-in (standin/standin_regs.h), which models the
 * cycle counter on the host's clock. */
#ifndef TM_NRF52840_H
#define TM_NRF52840_H

#include <stdint.h>

#ifdef TM_STANDIN
#include "standin_regs.h"
#else
#define TM_REG32(addr) (*(volatile uint32_t *)(addr))
#endif

/* Debug Exception and Monitor Control: TRCENA powers the DWT and ITM units. */
#define DEMCR TM_REG32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)

/* Data Watchpoint and Trace unit: CYCCNT counts core clock cycles while CYCCNTENA is set. */
#define DWT_CTRL TM_REG32(0xE0001000u)
#define DWT_CYCCNT TM_REG32(0xE0001004u)
#define DWT_CTRL_CYCCNTENA (1u << 0)

/* The nRF52840's CPU clock: HCLK is 64 MHz whatever the core is doing. */
#define NRF52840_HCLK_HZ 64000000u

#endif
