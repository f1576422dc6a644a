/*
 * Private fixed-point helpers: the gemmlowp primitives that TFLite's reference
 * int8 kernels are defined in terms of. Written out in C99 so the rounding is
 * identical bit for bit; signed right shifts are assumed arithmetic (true for
 * GCC, Clang and Arm compilers).
 */
#ifndef TM_FIXEDPOINT_H
#define TM_FIXEDPOINT_H

#include <stdint.h>

/*
 * gemmlowp::SaturatingRoundingDoublingHighMul (VQRDMULH). gemmlowp adds a
 * sign-dependent nudge (2^30 or 1 - 2^30) and divides by 2^31 truncating
 * towards zero; for negative products that equals flooring (ab + 2^30) / 2^31,
 * so one arithmetic shift serves both signs and saves the 64-bit sign fix-up.
 */
static inline int32_t tm_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp::RoundingDivideByPOT: round half away from zero. */
static inline int32_t tm_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^shift with the wrap-around TFLite's `x * (1 << shift)` has in practice. */
static inline int32_t tm_shl(int32_t x, int32_t shift) { return (int32_t)((uint32_t)x << shift); }

/*
 * tflite::MultiplyByQuantizedMultiplier, double-rounding variant (TFLM default).
 * Multipliers come from QuantizeMultiplier and are never negative, so SRDHM's
 * INT32_MIN * INT32_MIN saturation cannot occur and its test is left out.
 */
static inline int32_t tm_mbqm(int32_t x, int32_t mult, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t prod = (int64_t)tm_shl(x, left) * (int64_t)mult;
    return tm_rdbpot((int32_t)((prod + ((int64_t)1 << 30)) >> 31), right);
}

/* gemmlowp::SaturatingRoundingMultiplyByPOT for a positive exponent. */
static inline int32_t tm_sat_shl(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return tm_shl(x, exponent);
}

static inline int32_t tm_clamp(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

#endif /* TM_FIXEDPOINT_H */
