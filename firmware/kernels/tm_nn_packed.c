/*
 * Packed matrix products: the dense convolutions' engine (tm_conv.c, tm_conv_fc.c).
 *
 * Weights are sign-extended ahead of time (tinymighty/codegen) into int16 pairs, so the multiply
 * loop loads ready SMLAD operands; activations are sign-extended once per pixel into the same pair
 * layout (tm_nn_pack1) and then serve every output channel. The product is blocked 3 pixels by
 * 2 output channels: per pair of k positions one LDM brings the three pixels' operands, one LDRD
 * the two channels', and six SMLADs use them, 8 instructions for 12 multiply-accumulates.
 *
 * Layouts (k padded with zero weights to k8, a multiple of 8; kp = k8 / 2 k-pairs; cout padded
 * to an even count with an all-zero channel):
 *   k-pair j = 2q + h of quad q (k positions 4q..4q+3): h = 0 pairs (4q, 4q + 2), h = 1 pairs
 *   (4q + 1, 4q + 3), as SXTB16 and SXTB16 ROR #8 split a word; low half first.
 *   activations, 3 pixels: word 3j + p is pixel p's k-pair j.
 *   weights, per channel pair (c, c + 1): two int32 biases, then per k-pair j the words of c
 *   and of c + 1.
 *   accumulators, per channel pair: c for pixels 0, 1, 2, then c + 1 for pixels 0, 1, 2.
 * The weights and biases may be stored doubled (dbl = 1), which lets the requantisation round
 * with one SMMULR (see tm_nn_prequant3); the code generator doubles them only where it has
 * checked that twice the largest possible accumulator fits in int32.
 */
#include "tm_internal.h"

void tm_nn_pack1(const int8_t *src, int32_t rows, int32_t run, int32_t row_step, int32_t kq, int32_t *dst)
{
    int32_t q = 0, r, b;
    for (r = 0; r < rows; r++, src += row_step) {
        const int8_t *s = src;
        for (b = 0; b < run; b += 4, s += 4, dst += 6, q++) {
            const uint32_t x = tm_read4u(s);
            dst[0] = tm_pair_ev(x);
            dst[3] = tm_pair_od(x);
        }
    }
    for (; q < kq; q++, dst += 6) { /* k padding: weights are zero there */
        dst[0] = 0;
        dst[3] = 0;
    }
}

#if defined(__ARM_FEATURE_DSP)
/*
 * r0-r2 the pixels' sources, r3 dst, [sp] rows, [sp + 4] run, [sp + 8] row_step. Per quad: three
 * loads, six SXTB16 and one STM of the six words (pixels 0-2 even pairs, then odd pairs).
 */
static __attribute__((naked, noinline)) void pack3_rows(TM_ASM_ARG const int8_t *s0,
                                                        TM_ASM_ARG const int8_t *s1,
                                                        TM_ASM_ARG const int8_t *s2, TM_ASM_ARG int32_t *dst,
                                                        TM_ASM_ARG int32_t rows, TM_ASM_ARG int32_t run,
                                                        TM_ASM_ARG int32_t row_step)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldr r4, [sp, #36]\n\t"
                     "ldr r5, [sp, #40]\n\t"
                     "ldr r6, [sp, #44]\n\t"
                     "sub r6, r6, r5\n"
                     "1:\n\t"
                     "mov r7, r5\n"
                     "2:\n\t"
                     "ldr r11, [r0], #4\n\t"
                     "ldr r12, [r1], #4\n\t"
                     "ldr lr, [r2], #4\n\t"
                     "sxtb16 r8, r11\n\t"
                     "sxtb16 r9, r12\n\t"
                     "sxtb16 r10, lr\n\t"
                     "sxtb16 r11, r11, ror #8\n\t"
                     "sxtb16 r12, r12, ror #8\n\t"
                     "sxtb16 lr, lr, ror #8\n\t"
                     "stm r3!, {r8-r12, lr}\n\t"
                     "subs r7, r7, #4\n\t"
                     "bne 2b\n\t"
                     "add r0, r0, r6\n\t"
                     "add r1, r1, r6\n\t"
                     "add r2, r2, r6\n\t"
                     "subs r4, r4, #1\n\t"
                     "bne 1b\n\t"
                     "pop {r4-r11, pc}\n");
}
#endif

void tm_nn_pack3(const int8_t *const src[3], int32_t rows, int32_t run, int32_t row_step, int32_t kq,
                 int32_t *dst)
{
#if defined(__ARM_FEATURE_DSP)
    int32_t q = rows * run >> 2;
    pack3_rows(src[0], src[1], src[2], dst, rows, run, row_step);
    for (dst += 6 * q; q < kq; q++, dst += 6) {
        dst[0] = dst[1] = dst[2] = dst[3] = dst[4] = dst[5] = 0;
    }
#else
    int32_t p;
    for (p = 0; p < 3; p++) {
        tm_nn_pack1(src[p], rows, run, row_step, kq, dst + p);
    }
#endif
}

/*
 * The words of a window crossing the border, quad column by quad column (bytes 4b..4b+3 of each
 * kernel row): rows outside the input are the zero point; in the rows inside, each quad is one word
 * of the input row, shifted and completed with zero-point bytes where it sticks out on the left
 * (lo) or the right (hi) - the same for every row, so only loads, shifts and stores are left in the
 * row loop. Only bytes of the input are read (unaligned words where needed). No quad sticks out on
 * both sides: windows wider than the input go elsewhere. pairs: store each word as its two int16
 * pairs into the packed activations (words 6 apart, ev then od 3 later); else as the word itself,
 * into a [k_h][k_w][in_c] column.
 */
static inline __attribute__((always_inline)) void border_store(int32_t *d, uint32_t v, int32_t pairs)
{
    if (pairs) {
        d[0] = tm_pair_ev(v);
        d[3] = tm_pair_od(v);
    } else {
        memcpy(d, &v, 4);
    }
}

static inline __attribute__((always_inline)) void
border_words(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, void *dst, int32_t pairs)
{
    const int32_t c_n = g->in_c, run = g->k_w * c_n, row_bytes = g->in_w * c_n, ixb = ix0 * c_n, k_h = g->k_h;
    const int32_t rstep = g->dil_h * row_bytes, quads = run >> 2, dstep = pairs ? 6 * quads : quads;
    const uint32_t zraw = (uint8_t)g->in_zp * 0x01010101u;
    const int32_t lo = ix0 < 0 ? -ixb : 0, hi = row_bytes - ixb < run ? row_bytes - ixb : run;
    int32_t ky_lo = iy0 >= 0 ? 0 : (g->dil_h - 1 - iy0) / g->dil_h;
    int32_t ky_hi = iy0 >= g->in_h ? 0 : (g->in_h - iy0 + g->dil_h - 1) / g->dil_h, b;
    ky_hi = ky_hi < k_h ? ky_hi : k_h;
    ky_lo = ky_lo < ky_hi ? ky_lo : ky_hi;
    for (b = 0; b < run; b += 4) {
        int32_t *d = (int32_t *)dst + (pairs ? 6 : 1) * (b >> 2);
        int32_t ky;
        for (ky = 0; ky < ky_lo; ky++, d += dstep) {
            border_store(d, zraw, pairs);
        }
        if (b + 4 <= lo || b >= hi) { /* all padding */
            for (; ky < ky_hi; ky++, d += dstep) {
                border_store(d, zraw, pairs);
            }
        } else {
            const int8_t *p = in + (iy0 + ky_lo * g->dil_h) * row_bytes; /* the first row inside */
            uint32_t fill = 0;
            int32_t sl = 0, sr = 0;
            if (b < lo) { /* lo - b bytes of padding, then the row's first bytes */
                sl = 8 * (lo - b);
                fill = zraw >> (32 - sl);
            } else if (b + 4 > hi) { /* the row's last bytes, then b + 4 - hi bytes of padding */
                sr = 8 * (b + 4 - hi);
                fill = zraw << (32 - sr);
                p += ixb + hi - 4;
            } else {
                p += ixb + b;
            }
            for (; ky < ky_hi; ky++, p += rstep, d += dstep) {
                border_store(d, ((tm_read4u(p) << sl) >> sr) | fill, pairs);
            }
        }
        for (; ky < k_h; ky++, d += dstep) {
            border_store(d, zraw, pairs);
        }
    }
}

void tm_pack_border(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int32_t kq,
                    int32_t *dst, int8_t *row)
{
    int32_t q;
    (void)row;
    border_words(g, in, iy0, ix0, dst, 1);
    dst += 6 * (g->k_h * g->k_w * g->in_c >> 2);
    for (q = kq - (g->k_h * g->k_w * g->in_c >> 2); q > 0; q--, dst += 6) { /* k padding */
        dst[0] = 0;
        dst[3] = 0;
    }
}

/*
 * Border windows of convolutions whose kernel rows are one or two words (the sparse fused kernel's
 * gathers): each row inside the input is its words, the first shifted in behind lo bytes of padding
 * when the window starts before the input, the last completed with padding when it ends after it.
 * Only bytes of the input are read. Other shapes: border_words.
 */
void tm_nn_gather_words(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int8_t *col)
{
    const int32_t c_n = g->in_c, run = g->k_w * c_n, row_bytes = g->in_w * c_n, ixb = ix0 * c_n, k_h = g->k_h;
    const int32_t rstep = g->dil_h * row_bytes, words = run >> 2;
    const uint32_t zraw = (uint8_t)g->in_zp * 0x01010101u;
    const int32_t lo = ix0 < 0 ? -ixb : 0, hi = row_bytes - ixb < run ? row_bytes - ixb : run;
    int32_t ky_lo = iy0 >= 0 ? 0 : (g->dil_h - 1 - iy0) / g->dil_h;
    int32_t ky_hi = iy0 >= g->in_h ? 0 : (g->in_h - iy0 + g->dil_h - 1) / g->dil_h, n;
    uint32_t *d = (uint32_t *)(void *)col;
    const int8_t *p;
    if (run > 8 || lo >= 4 || hi <= run - 4 || (lo > 0 && hi < run)) {
        border_words(g, in, iy0, ix0, col, 0);
        return;
    }
    ky_hi = ky_hi < k_h ? ky_hi : k_h;
    ky_lo = ky_lo < ky_hi ? ky_lo : ky_hi;
    for (n = ky_lo * words; n > 0; n--) {
        *d++ = zraw;
    }
    p = in + (iy0 + ky_lo * g->dil_h) * row_bytes; /* the first row inside */
    n = ky_hi - ky_lo;
    if (lo > 0) { /* starts lo (< 4) bytes before the row */
        const int32_t sl = 8 * lo;
        const uint32_t fill = zraw >> (32 - sl);
        for (; n > 0; n--, p += rstep, d += words) {
            d[0] = (tm_read4u(p) << sl) | fill;
            if (words == 2) {
                d[1] = tm_read4u(p + 4 - lo);
            }
        }
    } else if (hi < run) { /* ends run - hi (< 4) bytes after the row */
        const int32_t sr = 8 * (run - hi);
        const uint32_t fill = zraw << (32 - sr);
        for (p += ixb; n > 0; n--, p += rstep, d += words) {
            if (words == 2) {
                d[0] = tm_read4u(p);
            }
            d[words - 1] = (tm_read4u(p + hi - 4) >> sr) | fill;
        }
    } else {
        for (p += ixb; n > 0; n--, p += rstep, d += words) {
            d[0] = tm_read4u(p);
            if (words == 2) {
                d[1] = tm_read4u(p + 4);
            }
        }
    }
    for (n = (k_h - ky_hi) * words; n > 0; n--) {
        *d++ = zraw;
    }
}

void tm_pack_gathered(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int32_t kq,
                      int32_t *dst, int8_t *col)
{
    const int32_t c_n = g->in_c;
    int32_t ky, kx, i;
    for (i = 0; i < 4 * kq; i++) { /* zero-point padding; past k it meets zero weights */
        col[i] = (int8_t)g->in_zp;
    }
    for (ky = 0; ky < g->k_h; ky++) {
        const int32_t iy = iy0 + ky * g->dil_h;
        for (kx = 0; kx < g->k_w && iy >= 0 && iy < g->in_h; kx++) {
            const int32_t ix = ix0 + kx * g->dil_w;
            if (ix >= 0 && ix < g->in_w) {
                tm_copy_bytes(col + (ky * g->k_w + kx) * c_n, in + (iy * g->in_w + ix) * c_n, c_n);
            }
        }
    }
    tm_nn_pack1(col, 1, 4 * kq, 0, kq, dst);
}

#if defined(__ARM_FEATURE_DSP)
/*
 * r0 activations, r1 weights, r2 kp (a multiple of 4), r3 channel pairs, [sp] accumulators out.
 * Accumulators r4-r6 (channel c) and r7-r9 (c + 1); r10-r12 the pixels' k-pair, r2/r3 the
 * channels' k-pair; lr marks the end of the activations. Naked: the frame is the push and the
 * 16 bytes below it (the stack analysis reads both from the code).
 */
__attribute__((naked)) void tm_nn_mm3x2(TM_ASM_ARG const int32_t *a, TM_ASM_ARG const int32_t *w,
                                        TM_ASM_ARG int32_t kp, TM_ASM_ARG int32_t cpairs,
                                        TM_ASM_ARG int32_t *acc)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "ldr r12, [sp, #36]\n\t"
                     "sub sp, sp, #16\n\t"
                     "str r0, [sp, #0]\n\t"
                     "str r3, [sp, #4]\n\t"
                     "str r12, [sp, #8]\n\t"
                     "add lr, r2, r2, lsl #1\n\t"
                     "add lr, r0, lr, lsl #2\n"
                     "1:\n\t"
                     "ldrd r4, r7, [r1], #8\n\t"
                     "mov r5, r4\n\t"
                     "mov r6, r4\n\t"
                     "mov r8, r7\n\t"
                     "mov r9, r7\n\t"
                     "ldr r0, [sp, #0]\n"
                     "2:\n\t"
#define TM_MM3X2_STEP                                                                                        \
    "ldm r0!, {r10, r11, r12}\n\t"                                                                           \
    "ldrd r2, r3, [r1], #8\n\t"                                                                              \
    "smlad r4, r10, r2, r4\n\t"                                                                              \
    "smlad r5, r11, r2, r5\n\t"                                                                              \
    "smlad r6, r12, r2, r6\n\t"                                                                              \
    "smlad r7, r10, r3, r7\n\t"                                                                              \
    "smlad r8, r11, r3, r8\n\t"                                                                              \
    "smlad r9, r12, r3, r9\n\t"
                     TM_MM3X2_STEP TM_MM3X2_STEP TM_MM3X2_STEP TM_MM3X2_STEP
#undef TM_MM3X2_STEP
                     "cmp r0, lr\n\t"
                     "bne 2b\n\t"
                     "ldr r2, [sp, #8]\n\t"
                     "stm r2!, {r4-r9}\n\t"
                     "str r2, [sp, #8]\n\t"
                     "ldr r3, [sp, #4]\n\t"
                     "subs r3, r3, #1\n\t"
                     "str r3, [sp, #4]\n\t"
                     "bne 1b\n\t"
                     "add sp, sp, #16\n\t"
                     "pop {r4-r11, pc}\n");
}
#else
void tm_nn_mm3x2(const int32_t *a, const int32_t *w, int32_t kp, int32_t cpairs, int32_t *acc)
{
    int32_t c, j, p;
    for (c = 0; c < cpairs; c++, acc += 6) {
        for (p = 0; p < 3; p++) {
            acc[p] = w[0];
            acc[3 + p] = w[1];
        }
        w += 2;
        for (j = 0; j < kp; j++, w += 2) {
            for (p = 0; p < 3; p++) {
                acc[p] = tm_pair_dot(a[3 * j + p], w[0], acc[p]);
                acc[3 + p] = tm_pair_dot(a[3 * j + p], w[1], acc[3 + p]);
            }
        }
    }
}
#endif

/* Into stream: (8 + 8 * kp) * ceil(cout / 2) bytes. */
void tm_unpack_w4(const tm_pmm_t *m, int32_t *stream)
{
    const int32_t k = m->k, kp = m->kp, cout = m->cout;
    int32_t c, j, h;
    for (c = 0; c < cout; c += 2) {
        *stream++ = m->bias[c];
        *stream++ = c + 1 < cout ? m->bias[c + 1] : 0;
        for (j = 0; j < kp; j++) {
            for (h = 0; h < 2; h++) { /* k-pair j of channel c + h: k positions ka and ka + 2 */
                const int32_t ka = 4 * (j >> 1) + (j & 1), ch = c + h;
                int32_t v[2], e;
                for (e = 0; e < 2; e++) {
                    const int32_t kk = ka + 2 * e, idx = ch * k + kk;
                    const uint8_t byte = m->w4[idx >> 1];
                    const int32_t nib = (int32_t)(int8_t)((idx & 1 ? byte : byte << 4) & 0xf0) >> 4;
                    v[e] = ch < cout && kk < k ? nib << m->dbl : 0;
                }
                *stream++ = (int32_t)(((uint32_t)v[0] & 0xffffu) | ((uint32_t)v[1] << 16));
            }
        }
    }
}

static inline int32_t prq_fast(int32_t acc2, int32_t mult, int32_t rnd, int32_t e)
{
    const int32_t t = tm_smmulr(acc2, mult);
    return tm_ssat8((t + (t >> 31) + rnd) >> e);
}

/* Any number of pixels and any activation clamp, fast or exact rounding. */
static TM_NOINLINE void prequant_any(const tm_pmm_t *m, const int32_t *acc, int32_t n, int8_t *out,
                                     int32_t out_step)
{
    const tm_prq_t *rq = &m->rq;
    int32_t c, p;
    for (c = 0; c < m->cout; c++, acc += 3) {
        for (p = 0; p < n; p++) {
            const int32_t v =
                rq->rnd != NULL
                    ? prq_fast(acc[p], rq->mult[c], rq->rnd[c], rq->shift[c])
                    : tm_mul_by_quant_mult(acc[p] >> m->dbl, rq->mult[c], rq->shift[c]) + rq->out_zp;
            out[p * out_step + c] = (int8_t)tm_clamp(v, rq->act_min, rq->act_max);
        }
    }
}

void tm_nn_prequant3(const tm_pmm_t *m, const int32_t *acc, int32_t n, int8_t *out, int32_t out_step)
{
    const int32_t *mult = m->rq.mult, *rnd = m->rq.rnd;
    const int8_t *shift = m->rq.shift;
    const int32_t cout = m->cout;
    int8_t *o1 = out + out_step, *o2 = o1 + out_step;
    int32_t c;
    if (rnd == NULL || n != 3 || m->rq.act_min != -128 || m->rq.act_max != 127) {
        prequant_any(m, acc, n, out, out_step);
        return;
    }
    for (c = 0; c < cout; c++, acc += 3) { /* the common case: three pixels, no clamp but int8's */
        const int32_t mu = mult[c], r = rnd[c], e = shift[c];
        out[c] = (int8_t)prq_fast(acc[0], mu, r, e);
        o1[c] = (int8_t)prq_fast(acc[1], mu, r, e);
        o2[c] = (int8_t)prq_fast(acc[2], mu, r, e);
    }
}
