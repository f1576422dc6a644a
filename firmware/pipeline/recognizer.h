/*
 * The keyword spotter's post-processing: turns the stream of network outputs into keyword events.
 *
 * Per inference: the scores (each output minus the output zero point, so a softmax output gives
 * 0..255) go into a window of the last `window` inferences, whose per-class sums are kept.  Once
 * the window is full, the class with the largest sum (the first on ties) fires an event when it is
 * a keyword and its sum exceeds `threshold`; after an event, no other fires for `suppression`
 * inferences.  Integers only, so tinymighty/device/recognizer.py (the host's reference) gives the
 * same events for the same outputs, exactly.  No heap; all state is the caller's rc_state.
 */
#ifndef RC_RECOGNIZER_H
#define RC_RECOGNIZER_H

#include <stdint.h>

#define RC_MAX_CLASSES 8 /* network outputs the recognizer takes */
#define RC_MAX_WINDOW 32 /* inferences a window can average */

typedef struct {
    uint32_t window;      /* inferences averaged, 1..RC_MAX_WINDOW */
    uint32_t threshold;   /* a keyword fires when its window sum is above this */
    uint32_t suppression; /* inferences after an event in which none fires */
    uint32_t keywords;    /* bit c set: class c is a keyword (the others never fire) */
    uint32_t classes;     /* outputs per inference, 1..RC_MAX_CLASSES */
    int32_t zero_point;   /* the network's output zero point */
} rc_settings;

typedef struct {
    int16_t scores[RC_MAX_WINDOW][RC_MAX_CLASSES]; /* the window, a ring */
    int32_t sum[RC_MAX_CLASSES];
    uint32_t count; /* scores in the window (up to window) */
    uint32_t next;  /* ring slot the next scores go to */
    uint32_t quiet; /* inferences left in which no event fires */
} rc_state;

typedef struct {
    uint32_t cls;
    int32_t score; /* the window sum that fired */
} rc_event;

/* 0 when the settings are usable, else -1. */
int rc_check(const rc_settings *s);

void rc_reset(rc_state *st);

/* Takes one inference's int8 outputs; returns 1 and fills *ev when a keyword fires, else 0. */
int rc_update(rc_state *st, const rc_settings *s, const int8_t *out, rc_event *ev);

#endif /* RC_RECOGNIZER_H */
