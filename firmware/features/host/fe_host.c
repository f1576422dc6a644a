/*
 * Batch entry points for the host binding (tinymighty/data/micro_frontend.py, via ctypes): whole
 * clips and recordings in one call.  They only loop over fe_clip / fe_stride / fe_quantize, so the
 * host runs the device's code path.  Not part of the firmware.
 */
#include <stddef.h>
#include <stdint.h>

#include "fe_frontend.h"

const char *fe_host_config(void) { return FE_CONFIG_HASH; }

size_t fe_host_state_bytes(void) { return sizeof(fe_state); }

/* The caller passes the state (fe_host_state_bytes, 4-aligned), so concurrent calls do not share one. */

/* n_clips clips of `len` samples each, back to back; out: n_clips * FE_FRAMES columns. */
int fe_host_clips(fe_state *st, const int16_t *pcm, size_t n_clips, size_t len, uint16_t *out)
{
    for (size_t c = 0; c < n_clips; c++) {
        uint16_t(*cols)[FE_CHANNELS] = (uint16_t(*)[FE_CHANNELS])(out + c * FE_FRAMES * FE_CHANNELS);
        if (fe_clip(st, pcm + c * len, len, cols) != FE_FRAMES)
            return -1;
    }
    return 0;
}

/* One recording streamed stride by stride from a reset state (a last partial stride goes
 * through fe_feed, as the op would take it); returns the number of columns written. */
size_t fe_host_stream(fe_state *st, const int16_t *pcm, size_t n, size_t stride, uint16_t *out,
                      size_t max_columns)
{
    size_t columns = 0, done = 0;
    fe_reset(st);
    if (stride != FE_STRIDE)
        return 0;
    for (; done + FE_STRIDE <= n; done += FE_STRIDE) {
        uint16_t col[FE_CHANNELS];
        if (fe_stride(st, pcm + done, col)) {
            if (columns == max_columns)
                return columns + 1;
            for (size_t i = 0; i < FE_CHANNELS; i++)
                out[columns * FE_CHANNELS + i] = col[i];
            columns++;
        }
    }
    while (done < n) {
        int ready;
        uint16_t col[FE_CHANNELS];
        done += fe_feed(st, pcm + done, n - done, col, &ready);
        if (ready) {
            if (columns == max_columns)
                return columns + 1;
            for (size_t i = 0; i < FE_CHANNELS; i++)
                out[columns * FE_CHANNELS + i] = col[i];
            columns++;
        }
    }
    return columns;
}

void fe_host_quantize(const uint16_t *in, size_t n_columns, int8_t *out, float scale, int32_t zero_point)
{
    for (size_t c = 0; c < n_columns; c++)
        fe_quantize(in + c * FE_CHANNELS, out + c * FE_CHANNELS, scale, zero_point);
}
