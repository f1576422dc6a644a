/*
 * QEMU mps2-an386 harness for the frontend: runs preloaded PCM through it and prints the columns
 * (and their int8 quantisation) plus SysTick counts, so the host can check the Cortex-M4 build
 * bit for bit and count its instructions (QEMU -icount shift=0: one instruction per ns).
 *
 * Built from the board's startup.c/board.c/link.ld with this file as app_main (see
 * tests/test_frontend.py).  Input at PSRAM (board_preload), little-endian:
 *   u32 magic "FEB1", u32 mode (0 per clip, 1 stream), u32 clips, u32 samples (per clip / total),
 *   f32 scale, i32 zero point, u32 flags (1: print columns, 2: print int8 columns), int16 pcm[]
 * Output lines: "calib <ticks> <instructions>", "col <hex>", "q <hex>", "run <ticks> <columns>",
 * "quant <ticks> <columns>", "stage <i> <ticks>" (FE_PROFILE builds), "state <bytes>", "end".
 */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "fe_frontend.h"

#define FEB_MAGIC 0x31424546u
#define FEB_ADDR 0x21000000u
#define FEB_MAX_SAMPLES (4u * 1024u * 1024u)

typedef struct {
    uint32_t magic, mode, clips, samples;
    float scale;
    int32_t zero_point;
    uint32_t flags;
} feb_header;

static fe_state st;
static uint16_t cols[FE_FRAMES > 0 ? FE_FRAMES : 1][FE_CHANNELS];

static void put_str(const char *s)
{
    while (*s)
        board_putc(*s++);
}

static void put_u64(uint64_t v)
{
    char buf[21];
    int n = 0;
    do {
        buf[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (n)
        board_putc(buf[--n]);
}

static void put_u32(uint32_t v) { put_u64(v); }

static void put_hex(const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        board_putc(hex[p[i] >> 4]);
        board_putc(hex[p[i] & 15u]);
    }
}

static void line_end(void)
{
    board_putc('\n');
    board_flush();
}

#ifdef FE_PROFILE
static uint64_t stage_ticks[FE_STAGES];
static uint64_t mark;
void fe_profile_begin(void) { mark = board_ticks(); }
void fe_profile_mark(int stage)
{
    const uint64_t now = board_ticks();
    stage_ticks[stage] += now - mark;
    mark = board_ticks();
}
#endif

static uint64_t quant_ticks;
static uint32_t quant_columns;

static void emit(const feb_header *h, const uint16_t col[FE_CHANNELS])
{
    int8_t q[FE_CHANNELS];
    const uint64_t t0 = board_ticks();
    fe_quantize(col, q, h->scale, h->zero_point);
    quant_ticks += board_ticks() - t0;
    quant_columns++;
    if (h->flags & 1u) {
        put_str("col ");
        put_hex((const uint8_t *)col, sizeof(uint16_t) * FE_CHANNELS);
        line_end();
    }
    if (h->flags & 2u) {
        put_str("q ");
        put_hex((const uint8_t *)q, sizeof q);
        line_end();
    }
}

int app_main(void)
{
    board_init();
    const feb_header *h = board_preload(FEB_ADDR, sizeof(feb_header));
    if (h == 0 || h->magic != FEB_MAGIC || h->samples > FEB_MAX_SAMPLES || h->clips == 0) {
        put_str("error bad header");
        line_end();
        return 2;
    }
    const int16_t *pcm = board_preload(FEB_ADDR + sizeof *h, h->clips * h->samples * 2u);
    if (pcm == 0) {
        put_str("error pcm does not fit");
        line_end();
        return 2;
    }

    board_ticks_reset();
    board_calibration_loop(100000u);
    const uint64_t calib = board_ticks();
    put_str("calib ");
    put_u64(calib);
    put_str(" 200000");
    line_end();

    uint64_t run = 0;
    uint32_t columns = 0;
    board_ticks_reset();
    if (h->mode == 0) {
        for (uint32_t c = 0; c < h->clips; c++) {
            const uint64_t t0 = board_ticks();
            const int n = fe_clip(&st, pcm + (size_t)c * h->samples, h->samples, cols);
            run += board_ticks() - t0;
            columns += (uint32_t)n;
            for (int i = 0; i < n; i++)
                emit(h, cols[i]);
        }
    } else {
        fe_reset(&st);
        uint32_t done = 0;
        for (; done + FE_STRIDE <= h->samples; done += FE_STRIDE) {
            uint16_t col[FE_CHANNELS];
            const uint64_t t0 = board_ticks();
            const int n = fe_stride(&st, pcm + done, col);
            run += board_ticks() - t0;
            columns += (uint32_t)n;
            if (n)
                emit(h, col);
        }
    }
    put_str("run ");
    put_u64(run);
    put_str(" ");
    put_u32(columns);
    line_end();
    put_str("quant ");
    put_u64(quant_ticks);
    put_str(" ");
    put_u32(quant_columns);
    line_end();
#ifdef FE_PROFILE
    for (int s = 0; s < FE_STAGES; s++) {
        put_str("stage ");
        put_u32((uint32_t)s);
        put_str(" ");
        put_u64(stage_ticks[s]);
        line_end();
    }
#endif
    put_str("state ");
    put_u32((uint32_t)sizeof(fe_state));
    line_end();
    put_str("end");
    line_end();
    return 0;
}
