/* The sketch's entry points (kws.ino calls them from setup() and loop()). */
#ifndef TM_BOARD_ARDUINO_H
#define TM_BOARD_ARDUINO_H

/* Protocol mode: runs firmware/PROTOCOL.md over USB Serial and never returns.  Live mode (TM_LIVE):
 * starts the microphone and the keyword spotter. */
void tm_sketch_setup(void);

/* Live mode: runs the keyword spotter on the audio that arrived since the last call. */
void tm_sketch_loop(void);

#endif
