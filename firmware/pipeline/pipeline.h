/*
 * The keyword spotter on the device (protocol version 2, firmware/PROTOCOL.md): 16-bit PCM that the
 * host preloaded runs through the feature extractor (features/), the network (tm_invoke) and the
 * recognizer (recognizer.h), as a deployed spotter runs them on audio as it arrives.
 *
 *   PIPE    what this image's pipeline is: the features config and its RAM
 *   STREAM  one recording, stride by stride: events, network outputs, instructions per stage
 *   CLIPS   one-second clips one by one, each from a reset frontend: class and outputs (accuracy)
 *
 * Built only into images made with FEATURES=<tables dir> (firmware/Makefile), which defines
 * TM_PIPELINE; the handlers are registered in app/main.c.
 */
#ifndef TM_PIPELINE_H
#define TM_PIPELINE_H

#include <stdint.h>

#include "recognizer.h"

/* Inferences can be run every 1..PL_MAX_INTERVAL strides.  The feature window keeps that many columns
 * beyond the network's FE_FRAMES, so the network always reads the newest FE_FRAMES columns as one
 * contiguous block, and the window moves its columns to the front only once every PL_MAX_INTERVAL
 * columns. */
#define PL_MAX_INTERVAL 8

int pl_cmd_pipe(int argc, char **argv);
int pl_cmd_stream(int argc, char **argv);
int pl_cmd_clips(int argc, char **argv);

/* Live mode (the Arduino sketch built with TM_LIVE): what STREAM does to a preloaded recording, done to
 * microphone audio as it arrives.  pl_live_begin checks the settings as STREAM does and starts from a
 * reset frontend and recognizer: 0, or -1 when the network does not take the features' window or the
 * settings are unusable.  pl_live_stride takes FE_STRIDE new samples: 1 with *ev filled when a keyword
 * fired, 0 when none did, -1 when tm_invoke failed. */
int pl_live_begin(uint32_t interval, const rc_settings *s);
int pl_live_stride(const int16_t *samples, rc_event *ev);

#endif /* TM_PIPELINE_H */
