/* Board port for the Arduino Nano 33 BLE Sense, the half that needs the Arduino core (arduino:mbed_nano):
 * the protocol channel on USB Serial, the sketch's setup and loop, and in live mode the PDM microphone.
 * The plain-C half (cycle counter, the board's figures) is board_nano33ble.c.
 *
 * Only the Arduino API is used here (Serial, yield, millis, PDM), so the same file also builds on the host
 * against the stand-in of firmware/board/nano33ble/standin/, where Serial is a pty: the protocol tests run
 * this glue there. */
#include <Arduino.h>

extern "C" {
#include "board.h"
#include "board_nano33ble.h"
#include "model.h"
#include "pipeline.h"
int app_main(void);
}

#include "board_arduino.h"

/* USB CDC sends a packet per write, so a reply goes out a line at a time (board_flush ends every line);
 * a longer line leaves in pieces of this size. */
static char tx_buf[128];
static size_t tx_len;

extern "C" void board_init(void)
{
    Serial.begin(115200); /* USB CDC ignores the baud rate */
    /* Wait until the host opens the port, so that it sees READY. */
    while (!Serial)
        yield();
    board_cycle_counter_init();
}

extern "C" int board_getc(void)
{
    while (Serial.available() <= 0)
        yield();
    return Serial.read();
}

extern "C" void board_flush(void)
{
    if (tx_len) {
        Serial.write(reinterpret_cast<const uint8_t *>(tx_buf), tx_len);
        tx_len = 0;
    }
    Serial.flush();
}

extern "C" void board_putc(char c)
{
    if (tx_len == sizeof tx_buf)
        board_flush();
    tx_buf[tx_len++] = c;
}

/* No one to exit to: after EXIT the board idles until it is reset (PROTOCOL.md). */
extern "C" void board_exit(int code)
{
    (void)code;
    board_flush();
    for (;;)
        delay(1000);
}

#if !TM_LIVE

void tm_sketch_setup(void) { board_exit(app_main()); }

void tm_sketch_loop(void) {}

#else /* live mode: microphone -> features -> network -> recognizer -> keyword events on Serial */

#include <PDM.h>

#include "fe_frontend.h"

#if TM_INPUT_SIZE != FE_FRAMES * FE_CHANNELS
#error "live mode needs a network that takes the feature extractor's window (features.kind: micro)"
#endif

/* Samples from the microphone's interrupt to the loop: a ring of whole strides, written only by on_audio
 * and read only by tm_sketch_loop, so the two indices need no lock. */
#define RING_STRIDES 16
static int16_t ring[RING_STRIDES * FE_STRIDE];
static volatile uint32_t ring_written, ring_read; /* samples, counted from the start */
static volatile uint32_t ring_dropped;            /* samples lost because the loop fell behind */
static uint32_t strides;                          /* strides processed */
static const char *const LABELS[TM_OUTPUT_SIZE] = TM_LIVE_LABELS;

static void on_audio(void)
{
    int16_t chunk[256];
    int bytes = PDM.available();
    while (bytes > 0) {
        const int n = PDM.read(chunk, bytes < (int)sizeof chunk ? bytes : (int)sizeof chunk) / 2;
        for (int i = 0; i < n; i++) {
            if (ring_written - ring_read == sizeof ring / sizeof ring[0]) {
                ring_dropped++;
                continue;
            }
            ring[ring_written % (sizeof ring / sizeof ring[0])] = chunk[i];
            ring_written++;
        }
        bytes = PDM.available();
    }
}

static void halt(const char *why)
{
    Serial.println(why);
    board_exit(1);
}

void tm_sketch_setup(void)
{
    Serial.begin(115200);
    const uint32_t start = millis(); /* a host that opens the port within 3 s sees the first line */
    while (!Serial && millis() - start < 3000)
        yield();
    board_cycle_counter_init();
    const rc_settings s = {TM_LIVE_WINDOW,   TM_LIVE_THRESHOLD, TM_LIVE_SUPPRESSION,
                           TM_LIVE_KEYWORDS, TM_OUTPUT_SIZE,    TM_OUTPUT_ZERO_POINT};
    if (pl_live_begin(TM_LIVE_INTERVAL, &s) != 0)
        halt("LIVE FAILED: the recognizer settings in tm_sketch.h do not fit the firmware");
    PDM.onReceive(on_audio);
    PDM.setGain(TM_LIVE_GAIN);
    if (!PDM.begin(1, FE_SAMPLE_RATE))
        halt("LIVE FAILED: the PDM microphone did not start");
    Serial.print("LIVE model=");
    Serial.print(TM_MODEL_HASH);
    Serial.print(" rate=");
    Serial.println((unsigned long)FE_SAMPLE_RATE);
}

void tm_sketch_loop(void)
{
    int16_t stride[FE_STRIDE];
    while (ring_written - ring_read >= FE_STRIDE) {
        const uint32_t from = ring_read % (sizeof ring / sizeof ring[0]);
        for (uint32_t i = 0; i < FE_STRIDE; i++)
            stride[i] = ring[from + i]; /* whole strides never wrap: the ring is a multiple of one */
        ring_read = ring_read + FE_STRIDE;
        rc_event ev;
        board_ticks_reset();
        const int fired = pl_live_stride(stride, &ev);
        const uint64_t cycles = board_ticks();
        strides++;
        if (fired < 0)
            halt("LIVE FAILED: tm_invoke returned an error");
        if (fired) {
            Serial.print("EVENT ");
            Serial.print(LABELS[ev.cls]);
            Serial.print(" class=");
            Serial.print((unsigned long)ev.cls);
            Serial.print(" score=");
            Serial.print((long)ev.score);
            Serial.print(" stride=");
            Serial.print((unsigned long)strides);
            Serial.print(" cycles=");
            Serial.println((unsigned long)cycles);
        }
    }
    if (ring_dropped) {
        Serial.print("OVERRUN dropped=");
        Serial.println((unsigned long)ring_dropped);
        ring_dropped = 0;
    }
}

#endif
