/* DEPTHWISE_CONV_2D: any shape (tm_dwconv2d_s8), and 3x3 stride-1 SAME in place (tm_dwconv3x3_s8; _s4 with
 * 4-bit weights). */
#include "tm_internal.h"

/*
 * Four adjacent channels (depth multiplier 1) over all taps of one window:
 * channels are contiguous in NHWC and in the [tap][channel] weights, so one
 * word load serves four lanes. SXTB16 splits lanes (0,2) and (1,3) and
 * SMLABB/SMLATT multiply-accumulate each lane separately.
 */
static void dw_taps4(const int8_t *win, int32_t row_step, int32_t col_step, const int8_t *w, int32_t w_step,
                     int32_t k_h, int32_t k_w, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ky++, win += row_step) {
        const int8_t *src = win;
        for (kx = 0; kx < k_w; kx++, src += col_step, w += w_step) {
#if TM_DSP
            const uint32_t vx = tm_read4(src), vw = tm_read4(w);
            const int32_t x_ev = tm_sxtb16(vx), w_ev = tm_sxtb16(vw);
            const int32_t x_od = tm_sxtb16_ror8(vx), w_od = tm_sxtb16_ror8(vw);
            a0 = tm_smlabb(x_ev, w_ev, a0);
            a2 = tm_smlatt(x_ev, w_ev, a2);
            a1 = tm_smlabb(x_od, w_od, a1);
            a3 = tm_smlatt(x_od, w_od, a3);
#else
            a0 += (int32_t)src[0] * w[0];
            a1 += (int32_t)src[1] * w[1];
            a2 += (int32_t)src[2] * w[2];
            a3 += (int32_t)src[3] * w[3];
#endif
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One output channel oc (input channel ic) over all taps of one window. */
static int32_t dw_taps1(const int8_t *win, int32_t row_step, int32_t col_step, const int8_t *w,
                        int32_t w_step, int32_t k_h, int32_t k_w, int32_t acc)
{
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ky++, win += row_step) {
        for (kx = 0; kx < k_w; kx++, w += w_step) {
            acc += (int32_t)win[kx * col_step] * *w;
        }
    }
    return acc;
}

void tm_dwconv2d_s8(const tm_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_window_t g = p->win; /* a local copy: int8 stores cannot alias it */
    const int32_t cin = g.in_c, mult = p->depth_mult, cout = cin * mult;
    const int32_t span_h = (g.k_h - 1) * g.dil_h + 1, span_w = (g.k_w - 1) * g.dil_w + 1;
    /* Four channels at a time needs them to map one to one onto input channels. */
    const int32_t quads = mult == 1 ? cout / 4 * 4 : 0;
    const tm_requant_t rq = p->rq;
    int32_t oy, ox, c;

    for (oy = 0; oy < g.out_h; oy++) {
        for (ox = 0; ox < g.out_w; ox++, out += cout) {
            const int32_t iy0 = oy * g.stride_h - g.pad_h;
            const int32_t ix0 = ox * g.stride_w - g.pad_w;
            const int8_t *win;
            int32_t row_step, col_step;
            /* Interior windows are read in place; border windows are copied
             * once with zero-point padding, so the tap loop never branches. */
            if (iy0 >= 0 && ix0 >= 0 && iy0 + span_h <= g.in_h && ix0 + span_w <= g.in_w) {
                win = in + (iy0 * g.in_w + ix0) * cin;
                row_step = g.dil_h * g.in_w * cin;
                col_step = g.dil_w * cin;
            } else {
                tm_nn_gather_border(&p->win, in, iy0, ix0, scratch);
                win = scratch;
                row_step = g.k_w * cin;
                col_step = cin;
            }
            for (c = 0; c < quads; c += 4) {
                int32_t acc[4] = {rq.bias[c], rq.bias[c + 1], rq.bias[c + 2], rq.bias[c + 3]};
                dw_taps4(win + c, row_step, col_step, p->w + c, cout, g.k_h, g.k_w, acc);
                out[c] = tm_requant(&rq, c, acc[0]);
                out[c + 1] = tm_requant(&rq, c + 1, acc[1]);
                out[c + 2] = tm_requant(&rq, c + 2, acc[2]);
                out[c + 3] = tm_requant(&rq, c + 3, acc[3]);
            }
            for (; c < cout; c++) { /* output channel c reads input channel c / mult */
                out[c] = tm_requant(
                    &rq, c,
                    dw_taps1(win + c / mult, row_step, col_step, p->w + c, cout, g.k_h, g.k_w, rq.bias[c]));
            }
        }
    }
}

/* One tap of four channels: a word of input, split into (c, c+2) and (c+1, c+3), times its weights. */
#define DW_TAP(p, t)                                                                                         \
    do {                                                                                                     \
        const uint32_t x_ = tm_read4u(p);                                                                    \
        const int32_t ev_ = tm_pair_ev(x_), od_ = tm_pair_od(x_);                                            \
        a0 = tm_mla_lo(ev_, w[4 + 2 * (t)], a0);                                                             \
        a2 = tm_mla_hi(ev_, w[4 + 2 * (t)], a2);                                                             \
        a1 = tm_mla_lo(od_, w[5 + 2 * (t)], a1);                                                             \
        a3 = tm_mla_hi(od_, w[5 + 2 * (t)], a3);                                                             \
    } while (0)

#if defined(__ARM_FEATURE_DSP)
/*
 * The accumulators of nq groups of four channels of an interior window: r0 its top-left input
 * pixel (at the first channel), r1 the input row's bytes, r2 the pixel's bytes (in_c), r3 the
 * weights (22 words per four channels), [sp] nq, [sp + 4] where the 4 * nq sums go. Per tap one
 * load, two SXTB16, one LDRD of the tap's weight pairs and four SMLABB/SMLATT.
 */
static __attribute__((naked, noinline)) void dw3x3_sums(TM_ASM_ARG const int8_t *win,
                                                        TM_ASM_ARG int32_t row_bytes, TM_ASM_ARG int32_t c_n,
                                                        TM_ASM_ARG const int32_t *w, TM_ASM_ARG int32_t nq,
                                                        TM_ASM_ARG int32_t *sums)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldr r4, [sp, #36]\n\t"
                     "ldr r5, [sp, #40]\n\t"
                     "sub sp, sp, #8\n\t"
                     "str r4, [sp, #0]\n\t"
                     "str r5, [sp, #4]\n\t"
                     "add r1, r0, r1\n\t"
                     "add lr, r1, r1\n\t"
                     "sub lr, lr, r0\n\t"
                     "add r12, r2, r2\n"
                     "1:\n\t"
                     "ldm r3!, {r4-r7}\n\t"
#define TM_DW_TAP(addr)                                                                                      \
    "ldr r8, " addr "\n\t"                                                                                   \
    "ldrd r10, r11, [r3], #8\n\t"                                                                            \
    "sxtb16 r9, r8\n\t"                                                                                      \
    "sxtb16 r8, r8, ror #8\n\t"                                                                              \
    "smlabb r4, r9, r10, r4\n\t"                                                                             \
    "smlatt r6, r9, r10, r6\n\t"                                                                             \
    "smlabb r5, r8, r11, r5\n\t"                                                                             \
    "smlatt r7, r8, r11, r7\n\t"
                     TM_DW_TAP("[r0]") TM_DW_TAP("[r0, r2]") TM_DW_TAP("[r0, r12]") TM_DW_TAP("[r1]")
                         TM_DW_TAP("[r1, r2]") TM_DW_TAP("[r1, r12]") TM_DW_TAP("[lr]") TM_DW_TAP("[lr, r2]")
                             TM_DW_TAP("[lr, r12]")
#undef TM_DW_TAP
                                 "ldr r8, [sp, #4]\n\t"
                                 "stm r8!, {r4-r7}\n\t"
                                 "str r8, [sp, #4]\n\t"
                                 "add r0, r0, #4\n\t"
                                 "add r1, r1, #4\n\t"
                                 "add lr, lr, #4\n\t"
                                 "ldr r8, [sp, #0]\n\t"
                                 "subs r8, r8, #1\n\t"
                                 "str r8, [sp, #0]\n\t"
                                 "bne 1b\n\t"
                                 "add sp, sp, #8\n\t"
                                 "pop {r4-r11, pc}\n");
}
#endif

/* The sums of channels [c, c + 4 * nq) of a window given tap by tap (tap[t]: its input pixel). */
static void dw3x3_sums_taps(const int8_t *const tap[9], int32_t c, const int32_t *w, int32_t nq,
                            int32_t *sums)
{
    for (; nq > 0; nq--, c += 4, w += 22, sums += 4) {
        int32_t a0 = w[0], a1 = w[1], a2 = w[2], a3 = w[3];
        DW_TAP(tap[0] + c, 0);
        DW_TAP(tap[1] + c, 1);
        DW_TAP(tap[2] + c, 2);
        DW_TAP(tap[3] + c, 3);
        DW_TAP(tap[4] + c, 4);
        DW_TAP(tap[5] + c, 5);
        DW_TAP(tap[6] + c, 6);
        DW_TAP(tap[7] + c, 7);
        DW_TAP(tap[8] + c, 8);
        sums[0] = a0;
        sums[1] = a1;
        sums[2] = a2;
        sums[3] = a3;
    }
}
#undef DW_TAP

/* n outputs of channels c.. from their sums. fast: rnd (shift holds right shifts); full: no clamp but int8's.
 */
static inline __attribute__((always_inline)) void dw3x3_requant(const tm_dw3x3_t *p, const int32_t *sums,
                                                                int32_t c, int32_t n, int8_t *dst,
                                                                int32_t fast, int32_t full)
{
    const int32_t *mult = p->rq.mult + c, *rnd = p->rq.rnd + (fast ? c : 0);
    const int8_t *shift = p->rq.shift + c;
    const int32_t lo = p->rq.act_min, hi = p->rq.act_max;
    int32_t i;
    for (i = 0; i < n; i++) {
        int32_t v;
        if (fast) {
            const int32_t t = tm_smmulr(sums[i], mult[i]);
            v = tm_ssat8((t + (t >> 31) + rnd[i]) >> shift[i]);
        } else {
            v = tm_mbqm(sums[i] >> p->dbl, mult[i], shift[i]) + p->rq.out_zp;
        }
        dst[i] = (int8_t)(full ? v : tm_clamp(v, lo, hi));
    }
}

enum { DW_GROUP = 4 }; /* four-channel groups summed per call: 64 bytes of sums on the stack */

static inline __attribute__((always_inline)) void
dw3x3_rows(const tm_dw3x3_t *p, const int8_t *in, int8_t *out, int8_t *ring, int32_t fast, int32_t full)
{
    const int32_t c_n = p->win.in_c, h = p->win.in_h, w = p->win.in_w, n = h * w, slots = w + 2, g = p->group;
    int32_t c0, i;
    for (c0 = 0; c0 < c_n; c0 += g) { /* channels are independent: one pass per group */
        int32_t slot = 0, oy = 0, ox = 0;
        for (i = 0; i < n; i++) {
            int8_t *dst = ring + slot * g;
            const int8_t *tap[9];
            int32_t sums[4 * DW_GROUP];
            int32_t t, c, interior = oy >= 1 && oy < h - 1 && ox >= 1 && ox < w - 1;
            if (i >= slots) {
                tm_copy_words(out + (i - slots) * c_n + c0, dst, g);
            }
            if (!interior) {
                /* Taps outside the input read zero points from this pixel's own ring slot, free now:
                 * each four channels' taps are read before their outputs are written there. */
                const uint32_t z = (uint8_t)p->win.in_zp * 0x01010101u;
                for (t = 0; t < g; t += 4) {
                    memcpy(dst + t, &z, 4);
                }
                for (t = 0; t < 9; t++) {
                    const int32_t y = oy - 1 + t / 3, x = ox - 1 + t % 3;
                    tap[t] = y >= 0 && y < h && x >= 0 && x < w ? in + (y * w + x) * c_n + c0 : dst;
                }
            }
            for (c = 0; c < g; c += 4 * DW_GROUP) {
                const int32_t nq = (g - c) >> 2 < DW_GROUP ? (g - c) >> 2 : DW_GROUP;
                const int32_t *wq = p->w + 22 * ((c0 + c) >> 2);
#if defined(__ARM_FEATURE_DSP)
                if (interior) {
                    dw3x3_sums(in + ((oy - 1) * w + ox - 1) * c_n + c0 + c, w * c_n, c_n, wq, nq, sums);
                } else
#endif
                {
                    if (interior) {
                        const int8_t *q = in + ((oy - 1) * w + ox - 1) * c_n + c0;
                        for (t = 0; t < 9; t++) {
                            tap[t] = q + ((t / 3) * w + t % 3) * c_n;
                        }
                    }
                    dw3x3_sums_taps(tap, c, wq, nq, sums);
                }
                dw3x3_requant(p, sums, c0 + c, 4 * nq, dst + c, fast, full);
            }
            if (++slot == slots) {
                slot = 0;
            }
            if (++ox == w) {
                ox = 0;
                oy++;
            }
        }
        for (i = n > slots ? n - slots : 0; i < n; i++) {
            tm_copy_words(out + i * c_n + c0, ring + (i % slots) * g, g);
        }
    }
}

/*
 * 3x3 depthwise, stride 1, SAME, in place, one group of channels at a time (they
 * do not mix): output pixel n is computed into slot n % (in_w + 2) of a ring in
 * scratch and written to out only when pixel n + in_w + 2 is computed, by when
 * no later window reads input pixel n (the farthest tap back is n - in_w - 1).
 */
void tm_dwconv3x3_s8(const tm_dw3x3_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    if (p->rq.rnd == NULL) {
        dw3x3_rows(p, in, out, scratch, 0, 0);
    } else if (p->rq.act_min == -128 && p->rq.act_max == 127) {
        dw3x3_rows(p, in, out, scratch, 1, 1);
    } else {
        dw3x3_rows(p, in, out, scratch, 1, 0);
    }
}

/* A nibble of TFLite's INT4 bytes as a signed value: hi 0 the low nibble, 1 the high one. */
static inline int32_t dw_nibble(uint8_t byte, int32_t hi)
{
    return (int32_t)(int8_t)((hi ? byte : (uint8_t)(byte << 4)) & 0xf0) >> 4;
}

static inline int32_t dw_pair(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xffffu) | ((uint32_t)hi << 16));
}

/*
 * The weight stream tm_dwconv3x3_s8 reads (see tm_dw3x3_t) from 4-bit weights: per four channels c..c+3
 * their biases, then per tap the pairs (c, c+2) and (c+1, c+3). In_c is a multiple of 4, so channels c, c+1
 * of a tap share one byte and c+2, c+3 the next.
 */
static void dw3x3_unpack_w4(const tm_dw3x3_w4_t *p, int32_t *stream)
{
    const int32_t c_n = p->dw.win.in_c, scale = p->dw.dbl ? 2 : 1;
    int32_t c, t;
    for (c = 0; c < c_n; c += 4) {
        *stream++ = p->bias[c];
        *stream++ = p->bias[c + 1];
        *stream++ = p->bias[c + 2];
        *stream++ = p->bias[c + 3];
        for (t = 0; t < 9; t++) {
            const uint8_t *b = p->w4 + ((t * c_n + c) >> 1);
            *stream++ = dw_pair(dw_nibble(b[0], 0) * scale, dw_nibble(b[1], 0) * scale);
            *stream++ = dw_pair(dw_nibble(b[0], 1) * scale, dw_nibble(b[1], 1) * scale);
        }
    }
}

/* The 3x3 kernel on 4-bit weights: unpacked once per call (a few instructions per weight, against one
 * multiply per weight for every pixel), after the ring, which in_c a multiple of 4 keeps word-aligned. */
void tm_dwconv3x3_s4(const tm_dw3x3_w4_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    tm_dw3x3_t dw = p->dw;
    int32_t *stream = (int32_t *)(void *)(scratch + (dw.win.in_w + 2) * dw.group);
    dw3x3_unpack_w4(p, stream);
    dw.w = stream;
    tm_dwconv3x3_s8(&dw, in, out, scratch);
}
