/* The keyword spotter's pipeline: features -> network -> recognizer (see pipeline.h). */
#include "pipeline.h"

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "board.h"
#include "fe_frontend.h"
#include "model.h"
#include "proto.h"
#include "recognizer.h"

#define PL_COLUMNS (FE_FRAMES + PL_MAX_INTERVAL)
#define PL_FEATURES (FE_FRAMES * FE_CHANNELS)

/* All of the pipeline's RAM.  The window holds the latest columns, oldest first, as the network
 * reads them; words, so the shift after an inference can copy words. */
static fe_state pl_fe;
static uint32_t pl_window[(PL_COLUMNS * FE_CHANNELS + 3) / 4];
static int8_t pl_out[TM_OUTPUT_SIZE];
static rc_state pl_rc;

#ifdef FE_PROFILE
/* Profiling builds (EXTRA_CFLAGS=-DFE_PROFILE, scripts/bench_pipeline.py): ticks per frontend stage and for
 * the quantisation, reported by STREAM.  The timer reads add to every stage, so the totals of a profiling
 * build are not the pipeline's; its shares are. */
static uint64_t pl_stage_ticks[FE_STAGES + 1], pl_mark;
void fe_profile_begin(void) { pl_mark = board_ticks(); }
void fe_profile_mark(int stage)
{
    const uint64_t now = board_ticks();
    pl_stage_ticks[stage] += now - pl_mark;
    pl_mark = board_ticks();
}
static const char *const PL_STAGE_KEYS[FE_STAGES + 1] = {"fe_window",     "fe_fft", "fe_filterbank",
                                                         "fe_noise_pcan", "fe_log", "fe_quantize"};
#endif

static int8_t *pl_column(uint32_t i) { return (int8_t *)pl_window + i * FE_CHANNELS; }

/* Drops the oldest `by` columns: the FE_FRAMES columns after them move to the front. */
static void pl_shift(uint32_t by)
{
    const uint32_t off = by * FE_CHANNELS, n = PL_FEATURES;
    if ((off | n) % 4u == 0) {
        uint32_t *dst = pl_window;
        const uint32_t *src = pl_window + off / 4u;
        for (uint32_t i = n / 4u; i; i--)
            *dst++ = *src++;
    } else {
        int8_t *dst = pl_column(0);
        const int8_t *src = dst + off;
        for (uint32_t i = n; i; i--)
            *dst++ = *src++;
    }
}

static uint32_t pl_argmax(const int8_t *v, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* ERR MODEL unless the network takes exactly the features' window; returns 0 when it does. */
static int pl_model_mismatch(void)
{
    if (TM_INPUT_SIZE == PL_FEATURES && TM_OUTPUT_SIZE <= RC_MAX_CLASSES)
        return 0;
    tx_begin("ERR MODEL the network takes ");
    tx_u32(TM_INPUT_SIZE);
    tx_str(" int8 values and gives ");
    tx_u32(TM_OUTPUT_SIZE);
    tx_str("; the features give ");
    tx_u32(FE_FRAMES);
    tx_str("x");
    tx_u32(FE_CHANNELS);
    tx_str(" = ");
    tx_u32(PL_FEATURES);
    tx_str(" and the recognizer takes at most ");
    tx_u32(RC_MAX_CLASSES);
    tx_str(" classes");
    tx_end();
    return -1;
}

/* ERR ARGS naming the buffer's sample rate and the features'; returns 0 when they agree. */
static int pl_rate_mismatch(uint32_t rate)
{
    if (rate == FE_SAMPLE_RATE)
        return 0;
    tx_begin("ERR ARGS the PCM is ");
    tx_u32(rate);
    tx_str(" Hz but this firmware's features take ");
    tx_u32(FE_SAMPLE_RATE);
    tx_str(" Hz");
    tx_end();
    return -1;
}

/* The preloaded PCM of `clips` buffers of `samples` samples each, or NULL after ERR RANGE. */
static const int16_t *pl_pcm(uint32_t addr, uint32_t clips, uint32_t samples)
{
    const uint64_t bytes = (uint64_t)clips * samples * 2u;
    const void *p = bytes <= 0xFFFFFFFFu && (addr & 1u) == 0 ? board_preload(addr, (uint32_t)bytes) : NULL;
    if (!p)
        reply_error("RANGE", "the PCM is not in preloadable memory (or not 2-byte aligned)");
    return p;
}

static void tx_key_u64(const char *key, uint64_t v) { tx_key(key), tx_u64(v); }

/* The frontend's stack, measured: paints the free stack below the stack pointer (down to
 * __stack_bottom, the linker script's), computes three columns of silence and a quantisation from a
 * reset state, and finds the deepest word overwritten.  Interrupts are off meanwhile, so only the
 * frontend writes there.  Afterwards the words no code had reached before get the board's own paint
 * back (the pattern still at the bottom), so MEM's high-water mark stays true.  0 where there is no
 * __stack_bottom (the host build). */
#define PL_PAINT 0xC5C5C5C5u
extern uint32_t __stack_bottom[] __attribute__((weak));
static uint32_t pl_frontend_stack(void)
{
#if defined(__arm__)
    uint16_t col[FE_CHANNELS];
    uint32_t *sp;
    if (!__stack_bottom)
        return 0;
    for (uint32_t i = 0; i < sizeof pl_window / sizeof pl_window[0]; i++)
        pl_window[i] = 0; /* FE_STRIDE samples of silence; the window is reset before any use */
    fe_reset(&pl_fe);
    __asm volatile("cpsid i\n mov %0, sp" : "=r"(sp)::"memory");
    volatile uint32_t *low = __stack_bottom;
    const uint32_t words = (uint32_t)(sp - __stack_bottom), board_paint = low[0];
    uint32_t unused = 0; /* words at the bottom that still hold the board's paint */
    while (unused < words && low[unused] == board_paint)
        unused++;
    for (uint32_t i = 0; i < words; i++)
        low[i] = PL_PAINT;
    for (int k = 0; k < 3; k++)
        if (fe_stride(&pl_fe, (const int16_t *)pl_window, col))
            fe_quantize(col, pl_column(FE_FRAMES), TM_INPUT_SCALE, TM_INPUT_ZERO_POINT);
    uint32_t untouched = 0;
    while (untouched < words && low[untouched] == PL_PAINT)
        untouched++;
    for (uint32_t i = 0; i < words; i++)
        if (i < untouched && i < unused)
            low[i] = board_paint;
    __asm volatile("cpsie i" ::: "memory");
    return (words - untouched) * 4u;
#else
    return 0;
#endif
}

int pl_cmd_pipe(int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return -1;
    tx_ok("PIPE");
    tx_key("fe"), tx_str(FE_CONFIG_HASH);
    tx_key("rate"), tx_u32(FE_SAMPLE_RATE);
    tx_key("window"), tx_u32(FE_WINDOW);
    tx_key("stride"), tx_u32(FE_STRIDE);
    tx_key("channels"), tx_u32(FE_CHANNELS);
    tx_key("frames"), tx_u32(FE_FRAMES);
    tx_key("clip"), tx_u32(FE_CLIP_SAMPLES);
    tx_key("fe_state"), tx_u32(sizeof pl_fe);
    tx_key("window_buf"), tx_u32(sizeof pl_window);
    tx_key("rc_state"), tx_u32(sizeof pl_rc);
    tx_key("fe_stack"), tx_u32(pl_frontend_stack());
    tx_key("max_interval"), tx_u32(PL_MAX_INTERVAL);
    tx_key("max_window"), tx_u32(RC_MAX_WINDOW);
    tx_key("max_classes"), tx_u32(RC_MAX_CLASSES);
    tx_end();
    return 0;
}

/* STREAM <addr> <samples> <rate> <interval> <window> <threshold> <suppression> <keywords> */
int pl_cmd_stream(int argc, char **argv)
{
    uint32_t addr, samples, rate, interval;
    rc_settings s = {.classes = TM_OUTPUT_SIZE, .zero_point = TM_OUTPUT_ZERO_POINT};
    if (argc != 9 || proto_parse_u32(argv[1], &addr) || proto_parse_u32(argv[2], &samples) ||
        proto_parse_u32(argv[3], &rate) || proto_parse_u32(argv[4], &interval) ||
        proto_parse_u32(argv[5], &s.window) || proto_parse_u32(argv[6], &s.threshold) ||
        proto_parse_u32(argv[7], &s.suppression) || proto_parse_u32(argv[8], &s.keywords))
        return -1;
    if (pl_model_mismatch() || pl_rate_mismatch(rate))
        return 0;
    if (samples % FE_STRIDE || samples < FE_CLIP_SAMPLES) {
        tx_begin("ERR ARGS the PCM has ");
        tx_u32(samples);
        tx_str(" samples but a stream takes whole ");
        tx_u32(FE_STRIDE);
        tx_str("-sample strides, at least ");
        tx_u32(FE_CLIP_SAMPLES);
        tx_str(" samples (one clip)");
        tx_end();
        return 0;
    }
    if (interval < 1 || interval > PL_MAX_INTERVAL || rc_check(&s)) {
        reply_error("ARGS",
                    "need interval 1..8, window 1..32, a threshold below 2^31 and keyword classes of the "
                    "network's outputs");
        return 0;
    }
    const int16_t *pcm = pl_pcm(addr, 1, samples);
    if (!pcm)
        return 0;

    uint64_t pre = 0, net = 0, post = 0, pre_max = 0, net_max = 0, post_max = 0;
    uint32_t columns = 0, tail = 0, inferences = 0, events = 0, crc = 0;
    const uint32_t strides = samples / FE_STRIDE;
    fe_reset(&pl_fe);
    rc_reset(&pl_rc);
#ifdef FE_PROFILE
    for (int k = 0; k <= FE_STAGES; k++)
        pl_stage_ticks[k] = 0;
#endif
    board_ticks_reset();
    for (uint32_t i = 0; i < strides; i++) {
        uint16_t col[FE_CHANNELS];
        const uint64_t t0 = board_ticks();
        if (tail == PL_COLUMNS) { /* full: keep the newest FE_FRAMES columns, once every PL_MAX_INTERVAL */
            pl_shift(PL_MAX_INTERVAL);
            tail = FE_FRAMES;
        }
        const int ready = fe_stride(&pl_fe, pcm + (size_t)i * FE_STRIDE, col);
        if (ready) {
#ifdef FE_PROFILE
            const uint64_t q0 = board_ticks();
            fe_quantize(col, pl_column(tail++), TM_INPUT_SCALE, TM_INPUT_ZERO_POINT);
            pl_stage_ticks[FE_STAGES] += board_ticks() - q0;
#else
            fe_quantize(col, pl_column(tail++), TM_INPUT_SCALE, TM_INPUT_ZERO_POINT);
#endif
            columns++;
        }
        const uint64_t t1 = board_ticks();
        pre += t1 - t0;
        pre_max = t1 - t0 > pre_max ? t1 - t0 : pre_max;
        if (!ready || columns < FE_FRAMES || (columns - FE_FRAMES) % interval)
            continue;

        const int status = tm_invoke(pl_column(tail - FE_FRAMES), pl_out);
        const uint64_t t2 = board_ticks();
        rc_event ev;
        const int fired = status == 0 && rc_update(&pl_rc, &s, pl_out, &ev);
        const uint64_t t3 = board_ticks();
        if (status != 0) {
            tx_begin("ERR MODEL tm_invoke returned ");
            tx_i32(status);
            tx_end();
            return 0;
        }
        net += t2 - t1;
        net_max = t2 - t1 > net_max ? t2 - t1 : net_max;
        post += t3 - t2;
        post_max = t3 - t2 > post_max ? t3 - t2 : post_max;
        crc = crc32_update(crc, pl_out, TM_OUTPUT_SIZE);
        tx_begin("D INF ");
        tx_u32(inferences);
        tx_str(" ");
        tx_u32(columns);
        tx_str(" ");
        tx_hex_bytes(pl_out, TM_OUTPUT_SIZE);
        tx_end();
        if (fired) {
            tx_begin("D EVENT ");
            tx_u32(inferences);
            tx_str(" ");
            tx_u32(columns);
            tx_str(" ");
            tx_u32(ev.cls);
            tx_str(" ");
            tx_i32(ev.score);
            tx_end();
            events++;
        }
        inferences++;
    }
    tx_ok("STREAM");
    tx_key("samples"), tx_u32(samples);
    tx_key("strides"), tx_u32(strides);
    tx_key("columns"), tx_u32(columns);
    tx_key("inferences"), tx_u32(inferences);
    tx_key("events"), tx_u32(events);
    tx_key_u64("pre_ticks", pre);
    tx_key_u64("pre_max", pre_max);
    tx_key_u64("net_ticks", net);
    tx_key_u64("net_max", net_max);
    tx_key_u64("post_ticks", post);
    tx_key_u64("post_max", post_max);
#ifdef FE_PROFILE
    for (int k = 0; k <= FE_STAGES; k++)
        tx_key_u64(PL_STAGE_KEYS[k], pl_stage_ticks[k]);
#endif
    tx_key("crc32"), tx_hex32(crc);
    tx_end();
    return 0;
}

/* One clip into the window's first FE_FRAMES columns, from a reset frontend, zero-padded to
 * FE_CLIP_SAMPLES (or cut), as fe_clip and the host's fit_length do. */
static void pl_clip_features(const int16_t *pcm, uint32_t n)
{
    fe_reset(&pl_fe);
    if (n > FE_CLIP_SAMPLES)
        n = FE_CLIP_SAMPLES;
    uint32_t frames = 0;
    for (uint32_t done = 0; done < FE_CLIP_SAMPLES && frames < FE_FRAMES;) {
        int ready;
        uint16_t col[FE_CHANNELS];
        const uint32_t left = done < n ? n - done : FE_CLIP_SAMPLES - done;
        done += (uint32_t)fe_feed(&pl_fe, done < n ? pcm + done : NULL, left, col, &ready);
        if (ready)
            fe_quantize(col, pl_column(frames++), TM_INPUT_SCALE, TM_INPUT_ZERO_POINT);
    }
}

/* CLIPS <addr> <count> <samples> <rate> */
int pl_cmd_clips(int argc, char **argv)
{
    uint32_t addr, count, samples, rate;
    if (argc != 5 || proto_parse_u32(argv[1], &addr) || proto_parse_u32(argv[2], &count) ||
        proto_parse_u32(argv[3], &samples) || proto_parse_u32(argv[4], &rate))
        return -1;
    if (pl_model_mismatch() || pl_rate_mismatch(rate))
        return 0;
    if (samples == 0 || count == 0) {
        reply_error("ARGS", "the PCM is empty: need at least one clip of at least one sample");
        return 0;
    }
    const int16_t *pcm = pl_pcm(addr, count, samples);
    if (!pcm)
        return 0;
    uint64_t pre = 0, net = 0, pre_max = 0, net_max = 0;
    uint32_t crc = 0;
    board_ticks_reset();
    for (uint32_t i = 0; i < count; i++) {
        const uint64_t t0 = board_ticks();
        pl_clip_features(pcm + (size_t)i * samples, samples);
        const uint64_t t1 = board_ticks();
        const int status = tm_invoke(pl_column(0), pl_out);
        const uint64_t t2 = board_ticks();
        if (status != 0) {
            tx_begin("ERR MODEL tm_invoke returned ");
            tx_i32(status);
            tx_end();
            return 0;
        }
        pre += t1 - t0;
        pre_max = t1 - t0 > pre_max ? t1 - t0 : pre_max;
        net += t2 - t1;
        net_max = t2 - t1 > net_max ? t2 - t1 : net_max;
        crc = crc32_update(crc, pl_out, TM_OUTPUT_SIZE);
        tx_begin("D CLIP ");
        tx_u32(i);
        tx_str(" ");
        tx_u32(pl_argmax(pl_out, TM_OUTPUT_SIZE));
        tx_str(" ");
        tx_hex_bytes(pl_out, TM_OUTPUT_SIZE);
        tx_end();
    }
    tx_ok("CLIPS");
    tx_key("n"), tx_u32(count);
    tx_key_u64("pre_ticks", pre);
    tx_key_u64("pre_max", pre_max);
    tx_key_u64("net_ticks", net);
    tx_key_u64("net_max", net_max);
    tx_key("crc32"), tx_hex32(crc);
    tx_end();
    return 0;
}

/* Live mode: STREAM's steps on audio as it arrives, one stride per call, untimed and without data lines.
 * STREAM keeps its own inline copy of these few steps: sharing them moved its code, and with it the
 * instruction counts the workflow measures.  Images that do not call these lose them (and their state)
 * to --gc-sections. */
static rc_settings pl_live_rc;
static uint32_t pl_live_interval, pl_live_columns, pl_live_tail;

int pl_live_begin(uint32_t interval, const rc_settings *s)
{
    if (TM_INPUT_SIZE != PL_FEATURES || TM_OUTPUT_SIZE > RC_MAX_CLASSES || interval < 1 ||
        interval > PL_MAX_INTERVAL || rc_check(s))
        return -1;
    pl_live_rc = *s;
    pl_live_interval = interval;
    pl_live_columns = pl_live_tail = 0;
    fe_reset(&pl_fe);
    rc_reset(&pl_rc);
    return 0;
}

int pl_live_stride(const int16_t *samples, rc_event *ev)
{
    uint16_t col[FE_CHANNELS];
    if (pl_live_tail == PL_COLUMNS) {
        pl_shift(PL_MAX_INTERVAL);
        pl_live_tail = FE_FRAMES;
    }
    if (!fe_stride(&pl_fe, samples, col))
        return 0;
    fe_quantize(col, pl_column(pl_live_tail++), TM_INPUT_SCALE, TM_INPUT_ZERO_POINT);
    const uint32_t columns = ++pl_live_columns;
    if (columns < FE_FRAMES || (columns - FE_FRAMES) % pl_live_interval)
        return 0;
    if (tm_invoke(pl_column(pl_live_tail - FE_FRAMES), pl_out) != 0)
        return -1;
    return rc_update(&pl_rc, &pl_live_rc, pl_out, ev);
}
