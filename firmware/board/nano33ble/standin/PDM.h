/* The stand-in for the mbed core's PDM library (the Nano 33 BLE Sense's MP34DT05 microphone): the calls
 * of live mode, with the core's signatures.  See Arduino.h in this folder. */
#ifndef TM_STANDIN_PDM_H
#define TM_STANDIN_PDM_H

#include <stddef.h>

class PDMClass
{
  public:
    int begin(int channels, int sampleRate); /* 1 when the microphone started */
    void end();
    int available();                        /* bytes ready to read */
    int read(void *buffer, size_t size);    /* bytes read, at most size */
    void onReceive(void (*callback)(void)); /* called (in an interrupt, on the board) as audio arrives */
    void setGain(int gain);
};

extern PDMClass PDM;

#endif
