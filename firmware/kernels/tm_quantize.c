/* QUANTIZE from int8 to int8: a requantisation, as TFLite's reference Requantize. */
#include "tm_internal.h"

void tm_requantize_s8(const tm_requantize_t *p, const int8_t *in, int8_t *out)
{
    const tm_requantize_t q = *p; /* a local copy: int8 stores cannot alias it */
    int32_t i;
    for (i = 0; i < q.size; i++) {
        const int32_t v = tm_mbqm((int32_t)in[i] - q.in_zp, q.mult, q.shift) + q.out_zp;
        out[i] = (int8_t)tm_clamp(v, -128, 127);
    }
}
