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

/* Inferences can be run every 1..PL_MAX_INTERVAL strides.  The feature window keeps that many columns
 * beyond the network's FE_FRAMES, so the network always reads the newest FE_FRAMES columns as one
 * contiguous block, and the window moves its columns to the front only once every PL_MAX_INTERVAL
 * columns. */
#define PL_MAX_INTERVAL 8

int pl_cmd_pipe(int argc, char **argv);
int pl_cmd_stream(int argc, char **argv);
int pl_cmd_clips(int argc, char **argv);

#endif /* TM_PIPELINE_H */
