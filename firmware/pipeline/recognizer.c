#include "recognizer.h"

#include <string.h>

int rc_check(const rc_settings *s)
{
    if (s->window < 1 || s->window > RC_MAX_WINDOW || s->classes < 1 || s->classes > RC_MAX_CLASSES)
        return -1;
    if (s->threshold > 0x7FFFFFFFu || (s->keywords >> s->classes) != 0 || s->keywords == 0)
        return -1;
    return 0;
}

void rc_reset(rc_state *st) { memset(st, 0, sizeof *st); }

int rc_update(rc_state *st, const rc_settings *s, const int8_t *out, rc_event *ev)
{
    int16_t *slot = st->scores[st->next];
    const int full = st->count == s->window;
    for (uint32_t c = 0; c < s->classes; c++) {
        const int16_t score = (int16_t)(out[c] - s->zero_point);
        if (full)
            st->sum[c] -= slot[c];
        slot[c] = score;
        st->sum[c] += score;
    }
    st->next = st->next + 1 == s->window ? 0 : st->next + 1;
    if (!full)
        st->count++;
    if (st->quiet) {
        st->quiet--;
        return 0;
    }
    if (st->count < s->window)
        return 0;
    uint32_t best = 0;
    for (uint32_t c = 1; c < s->classes; c++)
        if (st->sum[c] > st->sum[best])
            best = c;
    if (!((s->keywords >> best) & 1u) || st->sum[best] <= (int32_t)s->threshold)
        return 0;
    ev->cls = best;
    ev->score = st->sum[best];
    st->quiet = s->suppression;
    return 1;
}
