/* What the two halves of the Nano 33 BLE Sense board layer share: board_nano33ble.c (plain C: the cycle
 * counter and the board's figures) and board_arduino.cpp (the Arduino core: Serial, setup/loop, the
 * microphone). */
#ifndef TM_BOARD_NANO33BLE_H
#define TM_BOARD_NANO33BLE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Powers the DWT unit and starts its cycle counter; board_init calls it before anything is timed. */
void board_cycle_counter_init(void);

#ifdef __cplusplus
}
#endif

#endif
