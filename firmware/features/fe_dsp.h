/*
 * The Cortex-M4 SIMD instructions the frontend uses, on two 16-bit lanes packed in a 32-bit word
 * (lo = bits 15:0, e.g. the real part; hi = bits 31:16, the imaginary part).
 *
 * On a core with the DSP extension they are the ACLE intrinsics; elsewhere (the host build the
 * tests use) portable stand-ins with the same results, so both builds run one code path.  Lane
 * arithmetic wraps modulo 2^16 (as C's int16 stores do); the halving forms shift the exact sum.
 */
#ifndef FE_DSP_H
#define FE_DSP_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>

/* No ACLE intrinsic for SMULxy in GCC 12; plain C compiles to them (see fe_smulbb below). */
static inline int32_t fe_smulbb(uint32_t a, uint32_t b)
{
    return (int16_t)(a & 0xFFFFu) * (int16_t)(b & 0xFFFFu);
}
static inline int32_t fe_smultt(uint32_t a, uint32_t b) { return (int16_t)(a >> 16) * (int16_t)(b >> 16); }
static inline int32_t fe_smulbt(uint32_t a, uint32_t b)
{
    return (int16_t)(a & 0xFFFFu) * (int16_t)(b >> 16);
}
static inline int32_t fe_smultb(uint32_t a, uint32_t b)
{
    return (int16_t)(a >> 16) * (int16_t)(b & 0xFFFFu);
}
static inline int32_t fe_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t fe_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb(a, b, acc); }
static inline int32_t fe_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt(a, b, acc); }
static inline int32_t fe_smlsd(uint32_t a, uint32_t b, int32_t acc) { return __smlsd(a, b, acc); }
static inline int32_t fe_smladx(uint32_t a, uint32_t b, int32_t acc) { return __smladx(a, b, acc); }
static inline int32_t fe_smuad(uint32_t a, uint32_t b) { return __smuad(a, b); }
static inline uint32_t fe_sadd16(uint32_t a, uint32_t b) { return (uint32_t)__sadd16(a, b); }
static inline uint32_t fe_ssub16(uint32_t a, uint32_t b) { return (uint32_t)__ssub16(a, b); }
static inline uint32_t fe_sasx(uint32_t a, uint32_t b) { return (uint32_t)__sasx(a, b); }
static inline uint32_t fe_ssax(uint32_t a, uint32_t b) { return (uint32_t)__ssax(a, b); }
static inline uint32_t fe_shadd16(uint32_t a, uint32_t b) { return (uint32_t)__shadd16(a, b); }
static inline uint32_t fe_shsub16(uint32_t a, uint32_t b) { return (uint32_t)__shsub16(a, b); }
static inline int32_t fe_ssat8(int32_t x) { return __ssat(x, 8); }

/* Lane-wise signed max.  SEL reads the GE flags SSUB16 sets, so the pair stays in one asm. */
static inline uint32_t fe_max16(uint32_t mx, uint32_t v)
{
    uint32_t t;
    __asm__("ssub16 %0, %2, %1\n\tsel %1, %2, %1" : "=&r"(t), "+r"(mx) : "r"(v) : "cc");
    (void)t;
    return mx;
}

/* Lane-wise signed min and max of v into *mn and *mx. */
static inline void fe_minmax16(uint32_t *mn, uint32_t *mx, uint32_t v)
{
    uint32_t t, lo = *mn, hi = *mx;
    __asm__("ssub16 %0, %3, %2\n\t"
            "sel    %2, %3, %2\n\t"
            "ssub16 %0, %1, %3\n\t"
            "sel    %1, %3, %1"
            : "=&r"(t), "+r"(lo), "+r"(hi)
            : "r"(v)
            : "cc");
    (void)t;
    *mn = lo;
    *mx = hi;
}

#else /* portable stand-ins */

static inline int32_t fe_lo(uint32_t a) { return (int16_t)(a & 0xFFFFu); }
static inline int32_t fe_hi(uint32_t a) { return (int16_t)(a >> 16); }
static inline uint32_t fe_pack(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}
static inline int32_t fe_wrap32(int64_t x) { return (int32_t)(uint32_t)(uint64_t)x; }

static inline int32_t fe_smulbb(uint32_t a, uint32_t b) { return fe_lo(a) * fe_lo(b); }
static inline int32_t fe_smultt(uint32_t a, uint32_t b) { return fe_hi(a) * fe_hi(b); }
static inline int32_t fe_smulbt(uint32_t a, uint32_t b) { return fe_lo(a) * fe_hi(b); }
static inline int32_t fe_smultb(uint32_t a, uint32_t b) { return fe_hi(a) * fe_lo(b); }
static inline int32_t fe_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return fe_wrap32((int64_t)acc + fe_lo(a) * fe_lo(b));
}
static inline int32_t fe_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
    return fe_wrap32((int64_t)acc + fe_hi(a) * fe_lo(b));
}
static inline int32_t fe_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return fe_wrap32((int64_t)acc + fe_hi(a) * fe_hi(b));
}
static inline int32_t fe_smlsd(uint32_t a, uint32_t b, int32_t acc)
{
    return fe_wrap32((int64_t)acc + (int64_t)fe_lo(a) * fe_lo(b) - (int64_t)fe_hi(a) * fe_hi(b));
}
static inline int32_t fe_smladx(uint32_t a, uint32_t b, int32_t acc)
{
    return fe_wrap32((int64_t)acc + (int64_t)fe_lo(a) * fe_hi(b) + (int64_t)fe_hi(a) * fe_lo(b));
}
static inline int32_t fe_smuad(uint32_t a, uint32_t b)
{
    return fe_wrap32((int64_t)fe_lo(a) * fe_lo(b) + (int64_t)fe_hi(a) * fe_hi(b));
}
static inline uint32_t fe_sadd16(uint32_t a, uint32_t b)
{
    return fe_pack(fe_lo(a) + fe_lo(b), fe_hi(a) + fe_hi(b));
}
static inline uint32_t fe_ssub16(uint32_t a, uint32_t b)
{
    return fe_pack(fe_lo(a) - fe_lo(b), fe_hi(a) - fe_hi(b));
}
/* lo = a.lo - b.hi, hi = a.hi + b.lo */
static inline uint32_t fe_sasx(uint32_t a, uint32_t b)
{
    return fe_pack(fe_lo(a) - fe_hi(b), fe_hi(a) + fe_lo(b));
}
/* lo = a.lo + b.hi, hi = a.hi - b.lo */
static inline uint32_t fe_ssax(uint32_t a, uint32_t b)
{
    return fe_pack(fe_lo(a) + fe_hi(b), fe_hi(a) - fe_lo(b));
}
static inline uint32_t fe_shadd16(uint32_t a, uint32_t b)
{
    return fe_pack((fe_lo(a) + fe_lo(b)) >> 1, (fe_hi(a) + fe_hi(b)) >> 1);
}
static inline uint32_t fe_shsub16(uint32_t a, uint32_t b)
{
    return fe_pack((fe_lo(a) - fe_lo(b)) >> 1, (fe_hi(a) - fe_hi(b)) >> 1);
}
static inline int32_t fe_ssat8(int32_t x) { return x < -128 ? -128 : x > 127 ? 127 : x; }
static inline uint32_t fe_max16(uint32_t mx, uint32_t v)
{
    return fe_pack(fe_lo(v) >= fe_lo(mx) ? fe_lo(v) : fe_lo(mx),
                   fe_hi(v) >= fe_hi(mx) ? fe_hi(v) : fe_hi(mx));
}
static inline void fe_minmax16(uint32_t *mn, uint32_t *mx, uint32_t v)
{
    *mx = fe_max16(*mx, v);
    *mn = fe_pack(fe_lo(*mn) >= fe_lo(v) ? fe_lo(v) : fe_lo(*mn),
                  fe_hi(*mn) >= fe_hi(v) ? fe_hi(v) : fe_hi(*mn));
}

#endif

/* FE_PKHTB(top, bottom, n): bits 31:16 of top over bits 15:0 of (bottom >> n), n an arithmetic
 * shift of 1..31; FE_PKHBT(bottom, top): bits 15:0 of bottom, bits 31:16 of top.  One PKHTB /
 * PKHBT each on the M4 (GCC does not find them itself). */
#if defined(__ARM_FEATURE_DSP)
#define FE_PKHTB(top, bottom, n)                                                                             \
    __extension__({                                                                                          \
        uint32_t fe_r_;                                                                                      \
        __asm__("pkhtb %0, %1, %2, asr #" #n : "=r"(fe_r_) : "r"((uint32_t)(top)), "r"((int32_t)(bottom)));  \
        fe_r_;                                                                                               \
    })
#define FE_PKHBT(bottom, top)                                                                                \
    __extension__({                                                                                          \
        uint32_t fe_r_;                                                                                      \
        __asm__("pkhbt %0, %1, %2" : "=r"(fe_r_) : "r"((uint32_t)(bottom)), "r"((uint32_t)(top)));           \
        fe_r_;                                                                                               \
    })
#else
#define FE_PKHTB(top, bottom, n)                                                                             \
    (((uint32_t)(top)&0xFFFF0000u) | ((uint32_t)((int32_t)(bottom) >> (n)) & 0xFFFFu))
#define FE_PKHBT(bottom, top) (((uint32_t)(bottom)&0xFFFFu) | ((uint32_t)(top)&0xFFFF0000u))
#endif

/* (lo >> 15, hi >> 15), each truncated to 16 bits: kissfft's sround() on two lanes. */
static inline uint32_t fe_pack_q15(int32_t lo, int32_t hi) { return FE_PKHTB((uint32_t)hi << 1, lo, 15); }

#endif /* FE_DSP_H */
