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
/* Sparse weights, mm a tm_sparse_matmul_t. */
void tm_nn_sparse_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b);

/* ---- Receptive fields (tm_conv_fc.c) and the convolution driver (tm_nn_conv.c) ---- */

/*
 * The [k_h][k_w][in_c] field of a window with top-left input pixel (iy0, ix0),
 * padded with the input zero point where it crosses the border: filled with
 * the zero point, then the rows and columns inside the input are copied in
 * (one run per row, or one per tap if dilated). No padded copy of the input is
 * made: convolutions send only border (and dilated) windows here, depthwise
 * ones only border windows.
 */
void tm_nn_gather_border(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int8_t *col);

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
 * Unfused (sink == NULL): outputs go to out, scratch holds two k-byte columns.
 * Fused: out is the FC output; scratch holds the sink's state (4 * fc_cout
 * bytes, 8 * fc_cout with cursors), the two columns, then a 2 * cout chunk.
 */
void tm_nn_conv_driver(const tm_window_t *g, int32_t k, int32_t cout, const void *mm, tm_nn_cols_fn cols,
                       const int8_t *in, int8_t *out, int8_t *scratch, const tm_nn_sink_t *sink);

#endif /* TM_INTERNAL_H */
