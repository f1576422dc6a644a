/*
 * int8 softmax exactly as tflite::reference_ops::Softmax<int8_t, int8_t>:
 * gemmlowp fixed-point exp over Q5.26 input differences, a Q12.19 sum and a
 * Newton-Raphson reciprocal. Output scale is 1/256 with zero point -128.
 */
#include "tm_kernels.h"

#include "tm_fixedpoint.h"

enum {
    SCALED_DIFF_INT_BITS = 5, /* exp() input format Q5.26 */
    ACCUM_INT_BITS = 12       /* sum of exps Q12.19 */
};

#define FP_ONE_Q0 INT32_MAX /* gemmlowp's One() with 0 integer bits */

/* exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static int32_t exp_on_interval(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    /* Taylor expansion around -1/8. */
    const int32_t x = a + (1 << 28);
    const int32_t x2 = tm_srdhm(x, x);
    const int32_t x3 = tm_srdhm(x2, x);
    const int32_t x4 = tm_srdhm(x2, x2);
    const int32_t x4_over_4 = tm_rdbpot(x4, 2);
    const int32_t poly = tm_rdbpot(tm_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + tm_srdhm(constant_term, x + poly);
}

/* gemmlowp::exp_on_negative_values for a Q5.26 input, Q0.31 result. */
static int32_t exp_on_negative_values(int32_t a)
{
    enum { FRAC_BITS = 31 - SCALED_DIFF_INT_BITS };
    static const int32_t barrel[7] = {/* exp(-2^e) for e = -2 .. 4, Q0.31 */
                                      1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = 1 << (FRAC_BITS - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int32_t result = exp_on_interval(tm_sat_shl(a_mod_quarter_minus_quarter, SCALED_DIFF_INT_BITS));
    int32_t e;
    /* Every e < SCALED_DIFF_INT_BITS applies; the -32 clamp only exists for
     * formats with more integer bits. */
    for (e = -2; e <= 4; e++) {
        if (remainder & (1 << (FRAC_BITS + e))) {
            result = tm_srdhm(result, barrel[e + 2]);
        }
    }
    return a == 0 ? FP_ONE_Q0 : result;
}

/* gemmlowp::one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out. */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int32_t f2_one = 1 << 29;
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    /* RoundingHalfSum(a, One) */
    const int64_t sum = (int64_t)a + FP_ONE_Q0;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = constant_48_over_17 + tm_srdhm(half_denominator, constant_neg_32_over_17);
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t one_minus_hdx = f2_one - tm_srdhm(half_denominator, x);
        x = x + tm_sat_shl(tm_srdhm(x, one_minus_hdx), 2);
    }
    return tm_sat_shl(x, 1);
}

/* tflite::GetReciprocal */
static int32_t reciprocal(int32_t x, int32_t x_integer_digits, int32_t *num_bits_over_unit)
{
    int32_t headroom_plus_one = 0;
    uint32_t u = (uint32_t)x;
    while (headroom_plus_one < 32 && !(u & 0x80000000u)) {
        u <<= 1;
        headroom_plus_one++;
    }
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    return one_over_one_plus_x((int32_t)(u - 0x80000000u));
}

static int32_t scaled_diff(const tm_softmax_t *p, int32_t diff)
{
    /* MultiplyByQuantizedMultiplierGreaterThanOne */
    return tm_srdhm(tm_shl(diff, p->input_left_shift), p->input_mult);
}

void tm_softmax_s8(const tm_softmax_t *p, const int8_t *in, int8_t *out)
{
    int32_t r, c;
    for (r = 0; r < p->rows; r++, in += p->depth, out += p->depth) {
        int32_t max_in_row = INT8_MIN, sum_of_exps = 0, num_bits_over_unit, shifted_scale;
        for (c = 0; c < p->depth; c++) {
            max_in_row = in[c] > max_in_row ? in[c] : max_in_row;
        }
        for (c = 0; c < p->depth; c++) {
            const int32_t diff = in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = exp_on_negative_values(scaled_diff(p, diff));
                sum_of_exps += tm_rdbpot(e, ACCUM_INT_BITS); /* Rescale Q0.31 -> Q12.19 */
            }
        }
        shifted_scale = reciprocal(sum_of_exps, ACCUM_INT_BITS, &num_bits_over_unit);
        for (c = 0; c < p->depth; c++) {
            const int32_t diff = in[c] - max_in_row;
            int32_t v = INT8_MIN;
            if (diff >= p->diff_min) {
                const int32_t e = exp_on_negative_values(scaled_diff(p, diff));
                const int32_t unsat = tm_rdbpot(tm_srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8);
                v = tm_clamp(unsat + INT8_MIN, INT8_MIN, INT8_MAX);
            }
            out[c] = (int8_t)v;
        }
    }
}
