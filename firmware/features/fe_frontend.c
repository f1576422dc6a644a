/*
 * TF's audio micro frontend in fixed point, bit-exact to the op (see fe_frontend.h).
 *
 * The arithmetic follows tensorflow/lite/experimental/microfrontend/lib and the kissfft
 * (FIXED_POINT=16) real FFT it uses, with the same rounding and the same 16/32/64-bit wrap points;
 * the data layout is this file's own: samples and complex values travel as int16 pairs in 32-bit
 * words, so the Cortex-M4 handles two lanes per instruction (fe_dsp.h).
 */
#include "fe_frontend.h"

#include <float.h>
#include <string.h>

#include "fe_dsp.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0 || defined(__FAST_MATH__)
#error "fe_quantize needs IEEE float arithmetic evaluated in float (FLT_EVAL_METHOD 0, no -ffast-math)"
#endif
#if FE_WINDOW % 4 != 0 || FE_STRIDE % 2 != 0 || FE_STRIDE > FE_WINDOW
#error "fe_config.h: the window must be a multiple of 4 samples, the stride even and no longer"
#endif

#ifdef FE_PROFILE
#define FE_BEGIN() fe_profile_begin()
#define FE_MARK(stage) fe_profile_mark(stage)
#else
#define FE_BEGIN() ((void)0)
#define FE_MARK(stage) ((void)0)
#endif

#define FE_Q14 (1 << 14) /* kissfft's sround() rounding term */

static inline int fe_msb(uint32_t x) { return x ? 32 - __builtin_clz(x) : 0; } /* bits needed */

/* ---- window: Hann, Q12, max |value| for the FFT's input scaling ------------------------------ */

/* One pair of windowed samples from the two products: each (x * c) >> 12 truncated to int16. */
static inline uint32_t fe_win_pair(int32_t lo, int32_t hi) { return FE_PKHTB((uint32_t)hi << 4, lo, 12); }

/* The op's max |value| the slow way: 16-bit |v|, so -32768 wraps to itself and never counts. */
static int32_t fe_max_abs_exact(const uint32_t *buf)
{
    int32_t mx = 0;
    for (unsigned i = 0; i < FE_FFT_COMPLEX; i++) {
        const int32_t v[2] = {(int16_t)(buf[i] & 0xFFFFu), (int16_t)(buf[i] >> 16)};
        for (int j = 0; j < 2; j++) {
            const int32_t a = (int16_t)(v[j] < 0 ? -v[j] : v[j]);
            mx = a > mx ? a : mx;
        }
    }
    return mx;
}

/* Windows the input into the FFT buffer, already in the order the FFT's stages want it, and
 * returns the op's max |value| (see fe_max_abs_exact; the lane-wise max and min give it unless a
 * value is -32768, which takes the slow path). */
static int32_t fe_window(fe_state *st)
{
    const uint32_t *in = st->input;
    uint32_t *buf = st->fft;
    uint32_t mx = 0, mn = 0;
    size_t n = 0;
#if FE_WINDOW_HALF
    /* The window is symmetric: pair j and pair W/2-1-j share coefficients, swapped in the second. */
    for (size_t j = 0; j < FE_WINDOW / 4; j++) {
        const uint32_t c = fe_window_coef[j];
        const uint32_t x = in[j], y = in[FE_WINDOW / 2 - 1 - j];
        const uint32_t v = fe_win_pair(fe_smulbb(x, c), fe_smultt(x, c));
        const uint32_t u = fe_win_pair(fe_smulbt(y, c), fe_smultb(y, c));
        fe_minmax16(&mn, &mx, v);
        fe_minmax16(&mn, &mx, u);
        buf[fe_fft_dest[j]] = v;
        buf[fe_fft_dest[FE_WINDOW / 2 - 1 - j]] = u;
    }
    n = FE_WINDOW / 2;
#else
    for (; n < FE_WINDOW / 2; n++) {
        const uint32_t x = in[n], c = fe_window_coef[n];
        const uint32_t v = fe_win_pair(fe_smulbb(x, c), fe_smultt(x, c));
        fe_minmax16(&mn, &mx, v);
        buf[fe_fft_dest[n]] = v;
    }
#endif
    for (; n < FE_FFT_COMPLEX; n++) /* zero padding up to the FFT length */
        buf[fe_fft_dest[n]] = 0;
    const int32_t min_lo = (int16_t)(mn & 0xFFFFu), min_hi = (int16_t)(mn >> 16);
    if (min_lo == -32768 || min_hi == -32768)
        return fe_max_abs_exact(buf);
    int32_t m = (int16_t)(mx & 0xFFFFu);
    m = (int16_t)(mx >> 16) > m ? (int16_t)(mx >> 16) : m;
    m = -min_lo > m ? -min_lo : m;
    return -min_hi > m ? -min_hi : m;
}

/* ---- FFT: kissfft's fixed-point complex FFT of FE_FFT_COMPLEX points, in place --------------- */

/* C_FIXDIV(c, div) multiplies each lane by k = 32767 / div, rounds and shifts by 15.  The constant
 * word holds k (low half) and 2k (high half): the high lane's product comes out doubled, already
 * where PKHTB wants it. */
#define FE_FIXDIV_K(div) ((uint32_t)(32767 / (div)) | ((uint32_t)(2 * (32767 / (div))) << 16))
#define FE_K4 FE_FIXDIV_K(4)
#define FE_K2 FE_FIXDIV_K(2)

static inline uint32_t fe_fixdiv(uint32_t a, uint32_t kk)
{
    return FE_PKHTB(fe_smlatt(a, kk, 2 * FE_Q14), fe_smlabb(a, kk, FE_Q14), 15);
}

/* The op scales the window's output up by `shift` before the FFT, in 16 bits; the first stage
 * folds it into its C_FIXDIV: the multiplies read only the low 16 bits of each shifted lane. */
static inline uint32_t fe_fixdiv_shift(uint32_t a, int shift, uint32_t kk)
{
    return FE_PKHTB(fe_smlatt((a & 0xFFFF0000u) << shift, kk, 2 * FE_Q14), fe_smlabb(a << shift, kk, FE_Q14),
                    15);
}

/* C_MUL: complex product, each part rounded and >> 15. */
static inline uint32_t fe_cmul(uint32_t a, uint32_t w)
{
    return fe_pack_q15(fe_smlsd(a, w, FE_Q14), fe_smladx(a, w, FE_Q14));
}

/* kf_bfly4 on p[0], p[m], p[2m], p[3m] (a0..a3 already C_FIXDIV'ed) with twiddles w1..w3. */
static inline void fe_bfly4(uint32_t *p, size_t m, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                            uint32_t w1, uint32_t w2, uint32_t w3)
{
    const uint32_t s0 = fe_cmul(a1, w1), s1 = fe_cmul(a2, w2), s2 = fe_cmul(a3, w3);
    const uint32_t s5 = fe_ssub16(a0, s1);
    a0 = fe_sadd16(a0, s1);
    const uint32_t s3 = fe_sadd16(s0, s2), s4 = fe_ssub16(s0, s2);
    p[2 * m] = fe_ssub16(a0, s3);
    p[0] = fe_sadd16(a0, s3);
    p[m] = fe_ssax(s5, s4);     /* (s5.r + s4.i, s5.i - s4.r) */
    p[3 * m] = fe_sasx(s5, s4); /* (s5.r - s4.i, s5.i + s4.r) */
}

#if !FE_FFT_RADIX2
/* The first stage (m = 1, every twiddle fe_fft_twiddle[0]) on the freshly windowed buffer. */
static void fe_radix4_first(uint32_t *f, int shift)
{
    const uint32_t w = fe_fft_twiddle[0];
    for (uint32_t *p = f; p < f + FE_FFT_COMPLEX; p += 4)
        fe_bfly4(p, 1, fe_fixdiv_shift(p[0], shift, FE_K4), fe_fixdiv_shift(p[1], shift, FE_K4),
                 fe_fixdiv_shift(p[2], shift, FE_K4), fe_fixdiv_shift(p[3], shift, FE_K4), w, w, w);
}
#endif

/* A later radix-4 stage: blocks of 4m, twiddle triples for k = 0 .. m-1 from tw; returns the
 * next stage's triples.  On the Cortex-M4 the same arithmetic in assembly below: GCC's version
 * of this loop spills pointers and costs a quarter more instructions. */
#if defined(__ARM_FEATURE_DSP) && defined(__thumb2__) && !defined(FE_PORTABLE_FFT)
_Static_assert(FE_K4 == 0x3FFE1FFFu, "fe_radix4's assembly loads FE_K4 as 0x3ffe1fff");
__attribute__((naked, noinline)) static const uint32_t *
fe_radix4_asm(uint32_t *f __attribute__((unused)), size_t m __attribute__((unused)),
              const uint32_t *tw __attribute__((unused)), const uint32_t *end __attribute__((unused)))
{
    /* Basic asm only (a naked function).  In the loop: r0 p, r1 4m, r2 end of the stage's twiddles,
     * r3 FE_K4, r4 2^14, r5 2^15, r6 12m, r7 twiddle pointer, r8-r11 a0-a3, r12 twiddle, lr scratch;
     * [sp] the end of the buffer. */
    /* clang-format off */
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "push   {r3}\n\t"
        "lsl    r1, r1, #2\n\t"
        "add    r6, r1, r1, lsl #1\n\t"
        "add    r2, r2, r6\n\t"
        "movw   r3, #0x1fff\n\t"
        "movt   r3, #0x3ffe\n\t"
        "mov    r4, #0x4000\n\t"
        "mov    r5, #0x8000\n"
        "1:\n\t"
        "sub    r7, r2, r6\n"
        "2:\n\t"
        /* s0 = C_MUL(C_FIXDIV(p[m], 4), w^k) */
        "ldr    r9, [r0, r1]\n\t"
        "ldr    r12, [r7], #4\n\t"
        "smlatt lr, r9, r3, r5\n\t"
        "smlabb r9, r9, r3, r4\n\t"
        "pkhtb  r9, lr, r9, asr #15\n\t"
        "smladx lr, r9, r12, r4\n\t"
        "smlsd  r9, r9, r12, r4\n\t"
        "lsl    lr, lr, #1\n\t"
        "pkhtb  r9, lr, r9, asr #15\n\t"
        /* s1 = C_MUL(C_FIXDIV(p[2m], 4), w^2k) */
        "ldr    r10, [r0, r1, lsl #1]\n\t"
        "ldr    r12, [r7], #4\n\t"
        "smlatt lr, r10, r3, r5\n\t"
        "smlabb r10, r10, r3, r4\n\t"
        "pkhtb  r10, lr, r10, asr #15\n\t"
        "smladx lr, r10, r12, r4\n\t"
        "smlsd  r10, r10, r12, r4\n\t"
        "lsl    lr, lr, #1\n\t"
        "pkhtb  r10, lr, r10, asr #15\n\t"
        /* s2 = C_MUL(C_FIXDIV(p[3m], 4), w^3k) */
        "ldr    r11, [r0, r6]\n\t"
        "ldr    r12, [r7], #4\n\t"
        "smlatt lr, r11, r3, r5\n\t"
        "smlabb r11, r11, r3, r4\n\t"
        "pkhtb  r11, lr, r11, asr #15\n\t"
        "smladx lr, r11, r12, r4\n\t"
        "smlsd  r11, r11, r12, r4\n\t"
        "lsl    lr, lr, #1\n\t"
        "pkhtb  r11, lr, r11, asr #15\n\t"
        /* a0 = C_FIXDIV(p[0], 4), then the radix-4 combination */
        "ldr    r8, [r0]\n\t"
        "smlatt lr, r8, r3, r5\n\t"
        "smlabb r8, r8, r3, r4\n\t"
        "pkhtb  r8, lr, r8, asr #15\n\t"
        "ssub16 r12, r8, r10\n\t" /* s5 = a0 - s1 */
        "sadd16 r8, r8, r10\n\t"  /* a0 += s1 */
        "sadd16 r10, r9, r11\n\t" /* s3 = s0 + s2 */
        "ssub16 r9, r9, r11\n\t"  /* s4 = s0 - s2 */
        "ssub16 r11, r8, r10\n\t"
        "sadd16 r8, r8, r10\n\t"
        "str    r11, [r0, r1, lsl #1]\n\t"
        "ssax   r10, r12, r9\n\t"
        "sasx   r11, r12, r9\n\t"
        "str    r10, [r0, r1]\n\t"
        "str    r11, [r0, r6]\n\t"
        "str    r8, [r0], #4\n\t"
        "cmp    r7, r2\n\t"
        "bne    2b\n\t"
        "add    r0, r0, r6\n\t"
        "ldr    r12, [sp]\n\t"
        "cmp    r0, r12\n\t"
        "blo    1b\n\t"
        "mov    r0, r2\n\t"
        "add    sp, sp, #4\n\t"
        "pop    {r4-r11, pc}\n\t");
    /* clang-format on */
}

static const uint32_t *fe_radix4(uint32_t *f, size_t m, const uint32_t *tw)
{
    return fe_radix4_asm(f, m, tw, f + FE_FFT_COMPLEX);
}
#else
static const uint32_t *fe_radix4(uint32_t *f, size_t m, const uint32_t *tw)
{
    for (uint32_t *blk = f; blk < f + FE_FFT_COMPLEX; blk += 4 * m) {
        const uint32_t *w = tw;
        for (uint32_t *p = blk; p < blk + m; p++, w += 3)
            fe_bfly4(p, m, fe_fixdiv(p[0], FE_K4), fe_fixdiv(p[m], FE_K4), fe_fixdiv(p[2 * m], FE_K4),
                     fe_fixdiv(p[3 * m], FE_K4), w[0], w[1], w[2]);
    }
    return tw + 3 * m;
}
#endif

#if FE_FFT_RADIX2
/* The radix-2 stage (kf_bfly2) kissfft runs first when the length is 2 * 4^k: m = 1. */
static void fe_radix2_first(uint32_t *f, int shift)
{
    const uint32_t w = fe_fft_twiddle[0];
    for (uint32_t *p = f; p < f + FE_FFT_COMPLEX; p += 2) {
        const uint32_t a0 = fe_fixdiv_shift(p[0], shift, FE_K2);
        const uint32_t t = fe_cmul(fe_fixdiv_shift(p[1], shift, FE_K2), w);
        p[1] = fe_ssub16(a0, t);
        p[0] = fe_sadd16(a0, t);
    }
}
#endif

/* kiss_fftr's split of the packed complex FFT into the real signal's spectrum, in place, for
 * bins 1 .. FE_FFT_COMPLEX - 1 (DC and Nyquist are outside every filterbank). */
static void fe_real_split(uint32_t *f)
{
    const uint32_t *sw = fe_fft_super;
    for (uint32_t *lo = f + 1, *hi = f + FE_FFT_COMPLEX - 1; lo <= hi; lo++, hi--) {
        const uint32_t x = *lo, y = *hi;
        const uint32_t conj_y = FE_PKHBT(y, fe_ssub16(0, y)); /* (y.r, -y.i), the negation in 16 bits */
        const uint32_t fpk = fe_fixdiv(x, FE_K2), fpnk = fe_fixdiv(conj_y, FE_K2);
        const uint32_t f1k = fe_sadd16(fpk, fpnk);
        const uint32_t tw = fe_cmul(fe_ssub16(fpk, fpnk), *sw++);
        *lo = fe_shadd16(f1k, tw); /* ((f1k + tw) >> 1) per part */
        /* ((f1k.r - tw.r) >> 1, (tw.i - f1k.i) >> 1); in the middle (lo == hi) this write stays */
        *hi = FE_PKHBT(fe_shsub16(f1k, tw), fe_shsub16(tw, f1k));
    }
}

static void fe_fft(uint32_t *f, int shift)
{
    const uint32_t *tw = fe_fft_twiddle;
    size_t m;
#if FE_FFT_RADIX2
    fe_radix2_first(f, shift);
    m = 2;
#else
    fe_radix4_first(f, shift);
    m = 4;
#endif
    for (; m < FE_FFT_COMPLEX; m *= 4)
        tw = fe_radix4(f, m, tw);
    fe_real_split(f);
}

/* ---- filterbank: power spectrum, triangular mel bands, rounded square root ------------------- */

/* The op's square root (filterbank.c Sqrt32/Sqrt64): floor(sqrt(n)) rounded up when the remainder
 * exceeds the root, except at the cap (0xFFFF on the 32-bit path, 0xFFFFFFFF on the 64-bit one).
 * With an FPU and n < 2^54 (every real spectrum) the root starts from one VSQRT, a few units off
 * at most, and 32-bit integer squares correct it exactly; otherwise it is found bit by bit. */
#if defined(FE_SQRT_BITWISE) /* (tests: the FPU-less path on the host) */
#elif defined(__ARM_FP) && (__ARM_FP & 4)
#define FE_SQRTF(x, y) __asm__("vsqrt.f32 %0, %1" : "=t"(y) : "t"(x))
#elif !defined(__arm__)
#define FE_SQRTF(x, y) ((y) = __builtin_sqrtf(x))
#endif

static uint32_t fe_sqrt_round(uint64_t n)
{
    const uint32_t hi = (uint32_t)(n >> 32);
    const uint32_t cap = hi ? 0xFFFFFFFFu : 0xFFFFu;
    uint32_t r;
#ifdef FE_SQRTF
    if (hi < (1u << 22)) {
        const int half = hi ? (fe_msb(hi) + 1) >> 1 : 0; /* n >> 2 * half fits 32 bits */
        float y;
        FE_SQRTF((float)(uint32_t)(n >> (2 * half)), y);
        r = (uint32_t)(y * (float)(1u << half)); /* < 2^28 */
        /* n - r^2 fits 32 signed bits here, so the low words give it exactly. */
        int32_t rem = (int32_t)((uint32_t)n - r * r);
        while (rem < 0) {
            r--;
            rem += (int32_t)(2 * r + 1);
        }
        while ((uint32_t)rem > 2 * r) {
            rem -= (int32_t)(2 * r + 1);
            r++;
        }
        return ((uint32_t)rem > r && r != cap) ? r + 1 : r;
    }
#endif
    uint64_t rem = n, root = 0, bit = (uint64_t)1 << 62;
    while (bit > rem)
        bit >>= 2;
    for (; bit; bit >>= 2) {
        if (rem >= root + bit) {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
    }
    r = (uint32_t)root;
    return (rem > r && r != cap) ? r + 1 : r;
}

/* Band b's bins weight into channel b - 1 and unweight into channel b (band 0 feeds only channel
 * 0, band FE_CHANNELS only channel FE_CHANNELS - 1).  Energies are |X|^2 as int32 (the op's wrap),
 * the sums 64-bit; out[c] = rounded sqrt(sum) >> shift. */
static void fe_filterbank(const uint32_t *spectrum, int shift, uint32_t out[FE_CHANNELS])
{
    const uint32_t *bin = spectrum + FE_FB_START;
    const uint16_t *w = fe_fb_weight;
#if FE_FB_UNWEIGHTS
    const uint16_t *u = fe_fb_unweight;
#endif
    uint64_t carry = 0;
    for (unsigned band = 0; band <= FE_CHANNELS; band++) {
        uint64_t w_acc = carry, u_acc = 0;
        for (const uint32_t *end = spectrum + FE_FB_START + fe_fb_band[band + 1]; bin < end; bin++, w++) {
            const int64_t e = fe_smuad(*bin, *bin);
#if FE_FB_UNWEIGHTS
            const int32_t uw = *u++;
#else
            const int32_t uw = 4096 - *w;
#endif
            w_acc += (uint64_t)(*w * e);
            u_acc += (uint64_t)(uw * e);
        }
        if (band > 0)
            out[band - 1] = fe_sqrt_round(w_acc) >> shift;
        carry = u_acc;
    }
}

/* ---- noise reduction, PCAN gain control, log ------------------------------------------------- */

/* The PCAN gain for a noise estimate: a quadratic per power-of-two interval (WideDynamicFunction). */
static int32_t fe_pcan_gain(uint32_t x)
{
    if (x <= 2)
        return fe_pcan_lut[x];
    const int interval = fe_msb(x);
    const int16_t *l = fe_pcan_lut + 2 + 3 * (interval - 2);
    const int32_t frac = (int32_t)((interval < 11 ? x << (11 - interval) : x >> (interval - 11)) & 0x3FFu);
    int32_t r = (l[2] * frac) >> 5;
    r += (int32_t)((uint32_t)l[1] << 5);
    r *= frac;
    r = (r + FE_Q14) >> 15;
    return (int16_t)(r + l[0]);
}

/* log(x) * 2^FE_LOG_SCALE_SHIFT, x > 1: log2 from the top bit plus a 128-segment table of the
 * fraction's correction, then * ln 2 (45426 in Q16). */
static uint32_t fe_log(uint32_t x)
{
    const uint32_t integer = (uint32_t)fe_msb(x) - 1;
    int32_t frac = (int32_t)(x - (1u << integer));
    frac = integer < 16 ? frac << (16 - integer) : frac >> (integer - 16);
    const uint32_t seg = (uint32_t)frac >> 9;
    const int32_t c0 = fe_log_lut[seg], c1 = fe_log_lut[seg + 1];
    const int32_t rel = ((c1 - c0) * (frac - (int32_t)(seg << 9))) >> 16;
    const uint32_t log2 = (integer << 16) + (uint32_t)(frac + c0 + rel);
    const uint32_t loge = (uint32_t)(((uint64_t)45426u * log2 + 32768u) >> 16);
    return ((loge << FE_LOG_SCALE_SHIFT) + 32768u) >> 16;
}

/* Noise reduction (a smoothed noise estimate subtracted, a floor kept) then PCAN (a gain from
 * that estimate, then the shrink curve) for one channel. */
static inline uint32_t fe_noise_pcan_one(uint32_t *noise, uint32_t s, uint32_t smooth)
{
    const uint32_t up = s << FE_NR_SMOOTHING_BITS;
    uint32_t est = (uint32_t)(((uint64_t)up * smooth + (uint64_t)*noise * ((1u << 14) - smooth)) >> 14);
    *noise = est;
    const uint32_t gain = (uint32_t)fe_pcan_gain(est); /* the estimate just updated */
    if (est > up)
        est = up;
    const uint32_t floor = (uint32_t)(((uint64_t)s * FE_NR_MIN_SIGNAL) >> 14);
    const uint32_t sub = (up - est) >> FE_NR_SMOOTHING_BITS;
    const uint32_t cleaned = sub > floor ? sub : floor;
    const uint32_t snr = (uint32_t)(((uint64_t)cleaned * gain) >> FE_PCAN_SNR_SHIFT);
    return snr < (2u << 12) ? (snr * snr) >> 20 : (snr >> 6) - (1u << 6);
}

static void fe_noise_pcan(fe_state *st, uint32_t sig[FE_CHANNELS])
{
    unsigned i = 0;
    for (; i + 1 < FE_CHANNELS; i += 2) { /* even channels smooth with FE_NR_EVEN, odd with FE_NR_ODD */
        sig[i] = fe_noise_pcan_one(&st->noise[i], sig[i], FE_NR_EVEN);
        sig[i + 1] = fe_noise_pcan_one(&st->noise[i + 1], sig[i + 1], FE_NR_ODD);
    }
    if (i < FE_CHANNELS)
        sig[i] = fe_noise_pcan_one(&st->noise[i], sig[i], FE_NR_EVEN);
}

static void fe_log_scale(const uint32_t sig[FE_CHANNELS], uint16_t out[FE_CHANNELS])
{
    for (unsigned i = 0; i < FE_CHANNELS; i++) {
#if FE_LOG_CORRECTION >= 0
        const uint32_t v = sig[i] << FE_LOG_CORRECTION;
#else
        const uint32_t v = sig[i] >> -FE_LOG_CORRECTION;
#endif
        const uint32_t l = v > 1 ? fe_log(v) : 0;
        out[i] = (uint16_t)(l < 0xFFFFu ? l : 0xFFFFu);
    }
}

/* ---- one column ------------------------------------------------------------------------------ */

static void fe_column(fe_state *st, uint16_t out[FE_CHANNELS])
{
    uint32_t sig[FE_CHANNELS];
    FE_BEGIN();
    const int shift = 15 - fe_msb((uint32_t)fe_window(st));
    FE_MARK(FE_STAGE_WINDOW);
    fe_fft(st->fft, shift);
    FE_MARK(FE_STAGE_FFT);
    fe_filterbank(st->fft, shift, sig);
    FE_MARK(FE_STAGE_FILTERBANK);
    fe_noise_pcan(st, sig);
    FE_MARK(FE_STAGE_NOISE_PCAN);
    fe_log_scale(sig, out);
    FE_MARK(FE_STAGE_LOG);
}

void fe_reset(fe_state *st) { memset(st, 0, sizeof *st); }

/* Sample `pos` of the window buffer; all its accesses stay 32-bit (no type punning). */
static inline void fe_put(uint32_t *pairs, size_t pos, int16_t sample)
{
    const unsigned sh = (pos & 1u) * 16u;
    pairs[pos / 2] = (pairs[pos / 2] & ~(0xFFFFu << sh)) | ((uint32_t)(uint16_t)sample << sh);
}

size_t fe_feed(fe_state *st, const int16_t *samples, size_t n, uint16_t out[FE_CHANNELS], int *ready)
{
    size_t take = FE_WINDOW - st->used;
    if (take > n)
        take = n;
    const size_t at = st->used;
    size_t i = 0;
    if (samples == NULL) {
        for (; i < take; i++)
            fe_put(st->input, at + i, 0);
    } else {
        if ((at & 1u) == 0) { /* whole pairs */
            i = take & ~(size_t)1;
            memcpy(st->input + at / 2, samples, i * sizeof *samples);
        }
        for (; i < take; i++)
            fe_put(st->input, at + i, samples[i]);
    }
    st->used += (uint32_t)take;
    *ready = 0;
    if (st->used < FE_WINDOW)
        return take;
    fe_column(st, out);
    /* Keep the last FE_WINDOW - FE_STRIDE samples for the next window (FE_STRIDE is even). */
    memmove(st->input, st->input + FE_STRIDE / 2, (FE_WINDOW - FE_STRIDE) * sizeof(int16_t));
    st->used = FE_WINDOW - FE_STRIDE;
    *ready = 1;
    return take;
}

int fe_stride(fe_state *st, const int16_t samples[FE_STRIDE], uint16_t out[FE_CHANNELS])
{
    int columns = 0;
    for (size_t done = 0; done < FE_STRIDE;) {
        int ready;
        done += fe_feed(st, samples + done, FE_STRIDE - done, out, &ready);
        columns += ready; /* at most one: a stride never spans two windows (FE_STRIDE <= FE_WINDOW) */
    }
    return columns;
}

int fe_clip(fe_state *st, const int16_t *pcm, size_t n, uint16_t out[][FE_CHANNELS])
{
    fe_reset(st);
    if (n > FE_CLIP_SAMPLES)
        n = FE_CLIP_SAMPLES;
    int frames = 0;
    for (size_t done = 0; done < FE_CLIP_SAMPLES && frames < FE_FRAMES;) {
        int ready;
        const size_t left = done < n ? n - done : FE_CLIP_SAMPLES - done;
        done += fe_feed(st, done < n ? pcm + done : NULL, left, out[frames], &ready);
        frames += ready;
    }
    return frames;
}

void fe_quantize(const uint16_t in[FE_CHANNELS], int8_t out[FE_CHANNELS], float scale, int32_t zero_point)
{
    for (unsigned i = 0; i < FE_CHANNELS; i++) {
        const float x = (float)in[i] * 0.0390625f; /* * 10/256: exact */
        float y = x / scale;                       /* one correctly rounded division, as numpy */
        y = y < 1024.0f ? y : 1024.0f;             /* y >= 0; past 1024 the result saturates anyway */
        /* round half to even (np.round): adding 1.5 * 2^23 leaves no fraction bits */
        out[i] = (int8_t)fe_ssat8((int32_t)((y + 12582912.0f) - 12582912.0f) + zero_point);
    }
}
