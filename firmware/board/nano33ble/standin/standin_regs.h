/* The core registers on the host build of the sketch's glue (nrf52840.h includes this when TM_STANDIN is
 * defined).  Every register is a word the stand-in keeps; reaching the cycle counter brings it up to date
 * from the host's monotonic clock at 64 MHz while DEMCR.TRCENA and DWT_CTRL.CYCCNTENA are set, so the board
 * layer's enable sequence matters here as on the board. */
#ifndef TM_STANDIN_REGS_H
#define TM_STANDIN_REGS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

volatile uint32_t *tm_standin_reg(uint32_t addr);

#ifdef __cplusplus
}
#endif

#define TM_REG32(addr) (*tm_standin_reg(addr))
#define TM_BOARD_NAME "nano33ble_standin" /* not the board: the report must not take it for one */

#endif
