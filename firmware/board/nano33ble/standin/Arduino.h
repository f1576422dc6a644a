/* A stand-in for the part of the Arduino API (as the arduino:mbed_nano core has it) that the sketch's glue,
 * board_arduino.cpp, uses.  Two uses: the nRF52840 link check compiles the glue against it for syntax and
 * types only (nothing of it is linked for the MCU), and on the host standin.cpp implements it, with Serial
 * on a pty, so that the protocol tests run the glue. */
#ifndef TM_STANDIN_ARDUINO_H
#define TM_STANDIN_ARDUINO_H

#include <stddef.h>
#include <stdint.h>

class StandinSerial
{
  public:
    void begin(unsigned long baud);
    explicit operator bool();
    int available();
    int read();
    size_t write(uint8_t c);
    size_t write(const uint8_t *buf, size_t n);
    void flush();
    size_t print(const char *s);
    size_t print(long v, int base = 10);
    size_t print(unsigned long v, int base = 10);
    size_t println(const char *s);
    size_t println(long v, int base = 10);
    size_t println(unsigned long v, int base = 10);
    size_t println();
};

extern StandinSerial Serial;

unsigned long millis(void);
void delay(unsigned long ms);
void yield(void);

#endif
