/* ADD of two int8 tensors of the same shape. */
#include "tm_internal.h"

void tm_add_s8(const tm_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        const int32_t x1 = tm_shl(p->in1_offset + in1[i], p->left_shift);
        const int32_t x2 = tm_shl(p->in2_offset + in2[i], p->left_shift);
        /* Both scalings are MultiplyByQuantizedMultiplierSmallerThanOneExp,
         * which is tm_mbqm with a non-positive shift. */
        const int32_t sum = tm_mbqm(x1, p->in1_mult, p->in1_shift) + tm_mbqm(x2, p->in2_mult, p->in2_shift);
        const int32_t v = tm_mbqm(sum, p->out_mult, p->out_shift) + p->out_zp;
        out[i] = (int8_t)tm_clamp(v, p->act_min, p->act_max);
    }
}
