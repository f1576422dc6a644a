/*
 * Internals shared by the kernel files, in the manner of CMSIS-NN's
 * arm_nnsupportfunctions.h; generated code includes tm_kernels.h only.
 *
 *   static inline: the Cortex-M4 SIMD instructions (or their host stand-ins),
 *   requantisation, byte moves and window geometry;
 *   prototypes: the support functions that several ops call, each defined
 *   once: in tm_nn_requant.c, tm_nn_matmul.c and tm_nn_conv.c, and
 *   tm_nn_gather_border in tm_conv_fc.c (see there).
 *
 * The gemmlowp fixed-point primitives are in tm_fixedpoint.h.
 */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tm_fixedpoint.h"
#include "tm_kernels.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define TM_DSP 1
static inline int32_t tm_sxtb16(uint32_t x) { return __sxtb16((int32_t)x); }
static inline int32_t tm_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
static inline int32_t tm_smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t tm_smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
/* ACLE has no rotate operand for SXTB16 and GCC does not fuse a separate ROR. */
static inline int32_t tm_sxtb16_ror8(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#elif defined(TM_EMULATE_DSP)
/* Host stand-ins for SXTB16/SMLAD so the SIMD path is testable off-target. */
#define TM_DSP 1
static inline int32_t tm_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(int32_t)(int8_t)(x & 0xffu) & 0xffffu;
    const uint32_t hi = (uint32_t)(int32_t)(int8_t)((x >> 16) & 0xffu) & 0xffffu;
    return (int32_t)(lo | (hi << 16));
}
static inline int32_t tm_smlad(int32_t a, int32_t b, int32_t acc)
{
    const int32_t lo = (int32_t)(int16_t)(a & 0xffff) * (int32_t)(int16_t)(b & 0xffff);
    const int32_t hi = (int32_t)(int16_t)((uint32_t)a >> 16) * (int32_t)(int16_t)((uint32_t)b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
static inline int32_t tm_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xffff) * (int16_t)(b & 0xffff)));
}
static inline int32_t tm_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return tm_smlabb((int32_t)((uint32_t)a >> 16), (int32_t)((uint32_t)b >> 16), acc);
}
static inline int32_t tm_sxtb16_ror8(uint32_t x) { return tm_sxtb16((x >> 8) | (x << 24)); }
#else
#define TM_DSP 0
#endif

/* A word from any address: one LDR on Cortex-M4, which loads unaligned words. */
static inline uint32_t tm_read4u(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/*
 * The int16 pairs the packed kernels multiply (see tm_nn_packed.c): bytes 0 and 2 of a word, and
 * bytes 1 and 3, sign-extended, the first in the low half (SXTB16 and SXTB16 ROR #8).
 */
#if TM_DSP
static inline int32_t tm_pair_ev(uint32_t x) { return tm_sxtb16(x); }
static inline int32_t tm_pair_od(uint32_t x) { return tm_sxtb16_ror8(x); }
#else
static inline int32_t tm_pair_ev(uint32_t x)
{
    return (int32_t)(((uint32_t)(int32_t)(int8_t)(x & 0xffu) & 0xffffu) |
                     ((uint32_t)(int8_t)(x >> 16) << 16));
}
static inline int32_t tm_pair_od(uint32_t x) { return tm_pair_ev(x >> 8); }
#endif

/* acc + the dot product of two int16 pairs (SMLAD). */
#if TM_DSP
static inline int32_t tm_pair_dot(int32_t x, int32_t y, int32_t acc) { return tm_smlad(x, y, acc); }
#else
static inline int32_t tm_pair_dot(int32_t x, int32_t y, int32_t acc)
{
    return acc + (int32_t)(int16_t)(x & 0xffff) * (int16_t)(y & 0xffff) +
           (int32_t)(int16_t)((uint32_t)x >> 16) * (int16_t)((uint32_t)y >> 16);
}
#endif

/* Multiply-accumulate of the low (lo) or high (hi) int16 halves of two pairs: SMLABB, SMLATT. */
#if TM_DSP
static inline int32_t tm_mla_lo(int32_t x, int32_t y, int32_t acc) { return tm_smlabb(x, y, acc); }
static inline int32_t tm_mla_hi(int32_t x, int32_t y, int32_t acc) { return tm_smlatt(x, y, acc); }
#else
static inline int32_t tm_mla_lo(int32_t x, int32_t y, int32_t acc)
{
    return acc + (int32_t)(int16_t)(x & 0xffff) * (int16_t)(y & 0xffff);
}
static inline int32_t tm_mla_hi(int32_t x, int32_t y, int32_t acc)
{
    return acc + (int32_t)(int16_t)((uint32_t)x >> 16) * (int16_t)((uint32_t)y >> 16);
}
#endif

/* (a * b + 2^31) >> 32, the high word of a product rounded (SMMULR). */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t tm_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t tm_ssat8(int32_t x) { return __ssat(x, 8); }
#else
static inline int32_t tm_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
}
static inline int32_t tm_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
#endif

#if TM_DSP
/* A compiler barrier: keeps GCC from hoisting the next load above it, which
 * would need one register more than the loop has and spill. */
#if defined(__GNUC__)
#define TM_NO_HOIST() __asm__ volatile("" ::: "memory")
#else
#define TM_NO_HOIST() ((void)0)
#endif

static inline uint32_t tm_read4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one (unaligned-capable) LDR on Cortex-M4 */
    return v;
}
#endif

#if defined(__GNUC__)
#define TM_NOINLINE __attribute__((noinline))
#else
#define TM_NOINLINE
#endif

/* A parameter of a naked (assembly-only) function, which reads it from its register. */
#define TM_ASM_ARG __attribute__((unused))

/* Callers pass a local copy of the layer's tm_requant_t: the compiler must
 * assume any int8 store may alias the const struct and would reload it. */
static inline int8_t tm_requant(const tm_requant_t *rq, int32_t c, int32_t acc)
{
    const int32_t v = tm_mbqm(acc, rq->mult[c], rq->shift[c]) + rq->out_zp;
    return (int8_t)tm_clamp(v, rq->act_min, rq->act_max);
}

/* The same, out of line (tm_nn_requant.c): for cold paths, which need not carry their own copy. */
int8_t tm_nn_requant_cold(const tm_requant_t *rq, int32_t c, int32_t acc);

/* Receptive-field rows are a few bytes long: inline word moves beat a libc call. */
static inline void tm_copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        memcpy(dst, src, 4);
    }
    for (; n > 0; n--) {
        *dst++ = *src++;
    }
}

/* n > 0 and a multiple of 4. */
static inline void tm_copy_words(int8_t *dst, const int8_t *src, int32_t n)
{
    const int8_t *end = src + n;
    do {
        memcpy(dst, src, 4);
        dst += 4;
        src += 4;
    } while (src != end);
}

/*
 * Output rows (or columns) [*lo, *hi) whose windows lie entirely inside the
 * input: o * stride >= pad and o * stride - pad + span <= size.
 */
static inline void tm_interior(int32_t pad, int32_t stride, int32_t span, int32_t size, int32_t out,
                               int32_t *lo, int32_t *hi)
{
    const int32_t room = size + pad - span;
    int32_t l = (pad + stride - 1) / stride;
    int32_t h = room < 0 ? 0 : room / stride + 1;
    h = h < out ? h : out;
    *lo = l < h ? l : h;
    *hi = h;
}

static inline int32_t tm_load32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void tm_store32(int8_t *p, int32_t v) { memcpy(p, &v, sizeof v); }

/* ---- Matrix products (tm_nn_matmul.c) ---- */

/* Two weight rows w0, w1 with one column a: acc = {w0.a, w1.a}. */
void tm_nn_dot_2x1(const int8_t *w0, const int8_t *w1, const int8_t *a, int32_t k, int32_t acc[2]);
/* One weight row with one column: acc + w.a. */
int32_t tm_nn_dot_1x1(const int8_t *w, const int8_t *a, int32_t k, int32_t acc);

/*
 * All output channels for one or two contiguous k-byte columns: a, and b ==
 * a + k (or b == out_b == NULL for one). One function per weight encoding;
 * the conv and FC drivers take it as a parameter.
 */
typedef void (*tm_nn_cols_fn)(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b);

/* Dense weights, mm a tm_matmul_t. */
void tm_nn_dense_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b);
/* Dense 4-bit weights, mm a tm_matmul_t (see tm_kernels.h). */
void tm_nn_dense_cols_w4(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b);
/* Sparse weights, mm a tm_sparse_matmul_t. */
void tm_nn_sparse_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b);

/* Column j of row w of a 4-bit tm_matmul_t (see tm_kernels.h). */
static inline int32_t tm_nibble_w4(const int8_t *w, int32_t j)
{
    static const uint8_t slot[8] = {0, 2, 4, 6, 1, 3, 5, 7}; /* nibble holding column 8g + r */
    const int32_t i = slot[j & 7];
    const uint8_t byte = (uint8_t)w[4 * (j >> 3) + (i >> 1)];
    return (int32_t)(int8_t)((i & 1 ? byte : byte << 4) & 0xf0) >> 4;
}

/* ---- Packed matrix products (tm_nn_packed.c) ---- */

/* Pixel p's k values, rows runs of run bytes (a multiple of 4) row_step apart, into the packed
 * activations of three pixels (dst = their start + p); quads past rows * run / 4 up to kq are 0. */
void tm_nn_pack1(const int8_t *src, int32_t rows, int32_t run, int32_t row_step, int32_t kq, int32_t *dst);
/* Three pixels at once, each rows runs of run bytes (a multiple of 4) row_step apart. */
void tm_nn_pack3(const int8_t *const src[3], int32_t rows, int32_t run, int32_t row_step, int32_t kq,
                 int32_t *dst);
/* The window packers tm_pack_border and tm_pack_gathered are in tm_kernels.h. */
/* The 3-pixel by 2-channel product over all cpairs channel pairs: acc gets 6 int32 per pair,
 * which is 3 per output channel (pixels 0, 1, 2). */
void tm_nn_mm3x2(const int32_t *a, const int32_t *w, int32_t kp, int32_t cpairs, int32_t *acc);
/* Requantises n (1..3) pixels' accumulators of a product: pixel p's cout outputs to out + p * out_step. */
void tm_nn_prequant3(const tm_pmm_t *m, const int32_t *acc, int32_t n, int8_t *out, int32_t out_step);

/* ---- Receptive fields (tm_conv_fc.c) and the convolution drivers (tm_nn_conv.c) ---- */

/*
 * The [k_h][k_w][in_c] field of a window with top-left input pixel (iy0, ix0),
 * padded with the input zero point where it crosses the border: filled with
 * the zero point, then the rows and columns inside the input are copied in
 * (one run per row, or one per tap if dilated). No padded copy of the input is
 * made: convolutions send only border (and dilated) windows here, depthwise
 * ones only border windows.
 */
void tm_nn_gather_border(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int8_t *col);
/* The same a word at a time (tm_nn_packed.c), for windows whose rows are whole words (k_w * in_c a
 * multiple of 4), without column dilation and no wider than the input. */
void tm_nn_gather_words(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int8_t *col);

/*
 * Where a convolution's outputs go when it is fused with the FULLY_CONNECTED
 * layer it feeds: each pair of output pixels is computed into a small chunk and
 * at once multiplied into the FC's int32 accumulators, so the conv output
 * tensor never exists. The FC's input is the conv output in NHWC order, so
 * pixel i's channels are FC columns [i * cout, (i + 1) * cout); integer sums do
 * not depend on their order, so the FC gets exactly the sums it would get from
 * the whole tensor. Accumulators (and, for sparse weights, cursors) live in
 * scratch and are read and written with memcpy, the arena being an int8 array.
 */
typedef void (*tm_nn_accumulate_fn)(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state);

typedef struct {
    tm_nn_accumulate_fn accumulate;
    const void *mm;           /* the FC's weights: tm_matmul_t or tm_sparse_matmul_t */
    const tm_requant_t *rq;   /* the FC's requantisation (its input zero point folded in) */
    const int32_t *row_start; /* sparse FC weights: where each row's cursor starts; else NULL */
    int32_t cout;             /* FC outputs */
} tm_nn_sink_t;

/*
 * Dense convolutions, packed weights (tm_pmm_t): three output pixels at a time, each receptive
 * field packed straight from the input where it lies inside it and its rows are whole words,
 * otherwise gathered (padded) into a column first. Unfused (sink == NULL), outputs go to out
 * (pixels in order, so a 1x1 stride-1 convolution with cout <= in_c may write over its input).
 * Scratch: [sink state: 4 * fc_cout, 8 * fc_cout with cursors], packed activations 12 * kp
 * (fused: after each product, the three pixels' requantised outputs if 3 * cout fits, else they
 * follow), then accumulators 24 * ceil(cout / 2), which a column of 2 * kp bytes shares.
 */
void tm_nn_pconv_driver(const tm_window_t *g, const tm_pmm_t *mm, const int8_t *in, int8_t *out,
                        int8_t *scratch, const tm_nn_sink_t *sink);

/*
 * Sparse weights, tm_nn_cols_fn. Unfused (sink == NULL): outputs go to out, scratch holds two k-byte columns.
 * Fused: out is the FC output; scratch holds the sink's state (4 * fc_cout
 * bytes, 8 * fc_cout with cursors), the two columns, then a 2 * cout chunk.
 */
void tm_nn_conv_driver(const tm_window_t *g, int32_t k, int32_t cout, const void *mm, tm_nn_cols_fn cols,
                       const int8_t *in, int8_t *out, int8_t *scratch, const tm_nn_sink_t *sink);

#endif /* TM_INTERNAL_H */
