// Tiny but Mighty: one keyword-spotting variant for the Arduino Nano 33 BLE Sense
// (core arduino:mbed_nano, board arduino:mbed_nano:nano33ble), exported by the workflow
// (tinymighty.device.arduino); README.md in this folder says how to flash and measure it.
//
// Protocol mode (the default): the sketch speaks firmware/PROTOCOL.md over USB Serial, so that
// `firmware.backend: serial` measures it.  Live mode (TM_LIVE 1 in tm_sketch.h): the PDM microphone
// feeds the keyword spotter and keyword events are printed on Serial.
#include "board_arduino.h"

void setup() { tm_sketch_setup(); }

void loop() { tm_sketch_loop(); }
