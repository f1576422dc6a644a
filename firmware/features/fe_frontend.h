/*
 * Keyword-spotting features on the device: TF's audio micro frontend (window, FFT, power spectrum,
 * mel filterbank, noise reduction, PCAN gain control, log) in fixed-point C, then the int8
 * quantisation of the model input.
 *
 * For the same int16 samples, a column is bit for bit the uint16 output of TF Lite's
 * AudioMicrofrontend op configured as the workflow calls it (features.kind: micro); fe_quantize
 * then gives exactly what the host makes of it (op output * 10/256, quantised with the model's
 * input scale and zero point).  The configuration is fixed at compile time by fe_config.h, which
 * tinymighty.data.micro_frontend generates with the tables (fe_tables.c) for a features config.
 *
 * No heap, no libm.  All state lives in one fe_state the caller owns (static, usually); it is the
 * frontend's whole RAM apart from a few hundred bytes of stack.  The FFT is kissfft's fixed-point
 * one, arithmetic for arithmetic, so its rounding matches; the noise estimate and PCAN state carry
 * from column to column, as in the op.
 *
 * Streaming: fe_reset once, then fe_stride for every FE_STRIDE new samples; each call after the
 * first full window gives one new column (the caller keeps its ring of the last FE_FRAMES).
 * Per clip: fe_clip, which resets and runs one zero-padded clip, as the op runs on each clip.
 */
#ifndef FE_FRONTEND_H
#define FE_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "fe_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t fft[FE_FFT_COMPLEX];  /* FFT work buffer, (re, im) int16 pairs */
    uint32_t input[FE_WINDOW / 2]; /* the window's samples, int16 pairs, oldest first */
    uint32_t noise[FE_CHANNELS];   /* noise estimate per channel (also PCAN's input) */
    uint32_t used;                 /* samples in input */
} fe_state;

/* Starts over: empty window, zero noise estimate (the op's state before its first sample). */
void fe_reset(fe_state *st);

/* Takes samples until the window is full or they run out; returns how many it took.  When the
 * window filled, writes one column to out and sets *ready to 1 (else 0).  samples == NULL feeds
 * zeros.  This is the op's own loop step; fe_stride and fe_clip are built on it. */
size_t fe_feed(fe_state *st, const int16_t *samples, size_t n, uint16_t out[FE_CHANNELS], int *ready);

/* Streaming: FE_STRIDE new samples in; returns 1 and writes a column to out when one is ready
 * (every call once the first window is full), else 0. */
int fe_stride(fe_state *st, const int16_t samples[FE_STRIDE], uint16_t out[FE_CHANNELS]);

/* Per-clip mode: resets, then runs the first min(n, FE_CLIP_SAMPLES) samples padded with zeros to
 * FE_CLIP_SAMPLES (tinymighty.data.audio.fit_length).  Writes FE_FRAMES columns; returns that. */
int fe_clip(fe_state *st, const int16_t *pcm, size_t n, uint16_t out[][FE_CHANNELS]);

/* One column to the model's int8 input: clamp(round_half_even(f32(v * 10/256) / scale) + zp), with
 * scale > 0.  IEEE single precision step for step like numpy's float32 in npio.quantize_input (the
 * product is exact, the division correctly rounded), so the result is the same on the MCU (FPU or
 * soft float) and the host.  Not with -ffast-math. */
void fe_quantize(const uint16_t in[FE_CHANNELS], int8_t out[FE_CHANNELS], float scale, int32_t zero_point);

/* Stages, for FE_PROFILE builds: the build defines fe_profile_begin() and fe_profile_mark(stage),
 * called before the window and after each stage of a column. */
enum { FE_STAGE_WINDOW, FE_STAGE_FFT, FE_STAGE_FILTERBANK, FE_STAGE_NOISE_PCAN, FE_STAGE_LOG, FE_STAGES };
#ifdef FE_PROFILE
void fe_profile_begin(void);
void fe_profile_mark(int stage);
#endif

#ifdef __cplusplus
}
#endif

#endif /* FE_FRONTEND_H */
