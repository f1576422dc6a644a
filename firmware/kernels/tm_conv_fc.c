/*
 * CONV_2D fused with the FULLY_CONNECTED layer it feeds (see tm_conv_fc_t):
 *   tm_conv2d_fc_s8_{dd,ds,sd,ss}, one per pair of dense/sparse weight
 *   encodings: tm_nn_pconv_driver (dense conv, three pixels at a time) or
 *   tm_nn_conv_driver (sparse conv, pixel pair by pixel pair) computes the conv
 *   outputs and hands them to the FC's accumulate function below;
 *   tm_conv2d_fc_s8_sc, sparse taps and sparse FC columns: only the conv
 *   outputs the FC reads are computed.
 * Also home to tm_nn_gather_border, which the sc kernel shares with the
 * convolution driver and the depthwise kernel (see there why here).
 */
#include "tm_internal.h"

/* Four FC outputs (rows w, w + k, w + 2k, w + 3k) over n columns, n a multiple of 4: each word of
 * conv outputs is split into its pairs once for the four rows. */
static TM_NOINLINE void dense_rows4(const int8_t *w, int32_t k, const int8_t *x, int32_t n, int8_t *state)
{
    int32_t a0 = tm_load32(state), a1 = tm_load32(state + 4), a2 = tm_load32(state + 8),
            a3 = tm_load32(state + 12);
    const int8_t *end = x + n;
    for (; x != end; x += 4, w += 4) {
        const uint32_t v = tm_read4u(x);
        const int32_t xe = tm_pair_ev(v), xo = tm_pair_od(v);
        uint32_t r = tm_read4u(w);
        a0 = tm_pair_dot(xe, tm_pair_ev(r), a0);
        a0 = tm_pair_dot(xo, tm_pair_od(r), a0);
        r = tm_read4u(w + k);
        a1 = tm_pair_dot(xe, tm_pair_ev(r), a1);
        a1 = tm_pair_dot(xo, tm_pair_od(r), a1);
        r = tm_read4u(w + 2 * k);
        a2 = tm_pair_dot(xe, tm_pair_ev(r), a2);
        a2 = tm_pair_dot(xo, tm_pair_od(r), a2);
        r = tm_read4u(w + 3 * k);
        a3 = tm_pair_dot(xe, tm_pair_ev(r), a3);
        a3 = tm_pair_dot(xo, tm_pair_od(r), a3);
    }
    tm_store32(state, a0);
    tm_store32(state + 4, a1);
    tm_store32(state + 8, a2);
    tm_store32(state + 12, a3);
}

/* The same for 4-bit weights (w at column base's group, rows k / 2 bytes apart), n a multiple of 8:
 * each word of weights is 8 columns; masked, its nibbles are 16 times the weights, so the sums are
 * taken 16 times too, and divided exactly at the end. */
static TM_NOINLINE void dense_rows4_w4(const int8_t *w, int32_t row_bytes, const int8_t *x, int32_t n,
                                       int8_t *state)
{
    int32_t o, t[4] = {0, 0, 0, 0};
    const int8_t *end = x + n;
    for (; x != end; x += 8, w += 4) {
        const uint32_t v0 = tm_read4u(x), v1 = tm_read4u(x + 4);
        const int32_t e0 = tm_pair_ev(v0), o0 = tm_pair_od(v0), e1 = tm_pair_ev(v1), o1 = tm_pair_od(v1);
        for (o = 0; o < 4; o++) {
            const uint32_t r = tm_read4u(w + o * row_bytes);
            const uint32_t lo = (r << 4) & 0xf0f0f0f0u, hi = r & 0xf0f0f0f0u;
            t[o] = tm_pair_dot(e0, tm_pair_ev(lo), t[o]);
            t[o] = tm_pair_dot(o0, tm_pair_od(lo), t[o]);
            t[o] = tm_pair_dot(e1, tm_pair_ev(hi), t[o]);
            t[o] = tm_pair_dot(o1, tm_pair_od(hi), t[o]);
        }
    }
    for (o = 0; o < 4; o++, state += 4) {
        tm_store32(state, tm_load32(state) + (t[o] >> 4));
    }
}

/* Dense FC weights: state is cout int32 accumulators; x holds columns [base, base + n). Four rows
 * at a time where the columns come in words, the rest one product at a time. */
static void dense_accumulate(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state)
{
    const tm_matmul_t *m = (const tm_matmul_t *)mm;
    const int32_t k = m->k, cout = m->cout;
    const int8_t *w = m->w + base;
    int32_t o = 0, j;
    if ((n & 3) == 0) {
        for (; o + 4 <= cout; o += 4, w += 4 * k, state += 16) {
            dense_rows4(w, k, x, n, state);
        }
    }
    for (; o < cout; o++, w += k, state += 4) {
        int32_t acc = tm_load32(state);
        for (j = 0; j < n; j++) {
            acc += (int32_t)w[j] * x[j];
        }
        tm_store32(state, acc);
    }
}

/* The same for 4-bit FC weights (see tm_matmul_t): four rows at a time over groups of 8 columns. */
static void dense_accumulate_w4(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state)
{
    const tm_matmul_t *m = (const tm_matmul_t *)mm;
    const int32_t row_bytes = m->k >> 1, cout = m->cout;
    int32_t o = 0, j;
    if (((n | base) & 7) == 0) {
        for (; o + 4 <= cout; o += 4, state += 16) {
            dense_rows4_w4(m->w + o * row_bytes + (base >> 1), row_bytes, x, n, state);
        }
    }
    for (; o < cout; o++, state += 4) {
        const int8_t *row = m->w + o * row_bytes;
        int32_t acc = tm_load32(state);
        for (j = 0; j < n; j++) {
            acc += tm_nibble_w4(row, base + j) * x[j];
        }
        tm_store32(state, acc);
    }
}

/* Sparse FC weights: state is cout accumulators, then cout cursors into idx/val.
 * A row's column indices ascend, so its cursor only moves forward. */
static void sparse_accumulate(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state)
{
    const tm_sparse_matmul_t *m = (const tm_sparse_matmul_t *)mm;
    const uint16_t *idx = m->idx;
    const int8_t *val = m->val;
    const int32_t cout = m->cout, limit = base + n;
    int32_t o;
    for (o = 0; o < cout; o++) {
        const int32_t end = m->row_start[o + 1];
        int32_t acc = tm_load32(state + 4 * o), j = tm_load32(state + 4 * (cout + o));
        for (; j < end && idx[j] < limit; j++) {
            acc += (int32_t)val[j] * x[idx[j] - base];
        }
        tm_store32(state + 4 * o, acc);
        tm_store32(state + 4 * (cout + o), j);
    }
}

void tm_conv2d_fc_s8_dd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_matmul_t *f = (const tm_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {dense_accumulate, f, &f->rq, NULL, f->cout};
    tm_nn_pconv_driver(&p->win, (const tm_pmm_t *)p->conv, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_ds(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_sparse_matmul_t *f = (const tm_sparse_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {sparse_accumulate, f, &f->rq, f->row_start, f->cout};
    tm_nn_pconv_driver(&p->win, (const tm_pmm_t *)p->conv, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_d4(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_matmul_t *f = (const tm_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {dense_accumulate_w4, f, &f->rq, NULL, f->cout};
    tm_nn_pconv_driver(&p->win, (const tm_pmm_t *)p->conv, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_sd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_sparse_matmul_t *c = (const tm_sparse_matmul_t *)p->conv;
    const tm_matmul_t *f = (const tm_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {dense_accumulate, f, &f->rq, NULL, f->cout};
    tm_nn_conv_driver(&p->win, c->k, c->cout, c, tm_nn_sparse_cols, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_ss(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_sparse_matmul_t *c = (const tm_sparse_matmul_t *)p->conv, *f = (const tm_sparse_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {sparse_accumulate, f, &f->rq, f->row_start, f->cout};
    tm_nn_conv_driver(&p->win, c->k, c->cout, c, tm_nn_sparse_cols, in, out, scratch, &sink);
}

/*
 * ---- Border windows, padded as they are gathered ----
 * tm_nn_gather_border is defined in this file, not in tm_nn_conv.c, for
 * tm_conv2d_fc_s8_sc below: GCC (-fipa-ra, on at -O2) allocates registers
 * around a call by what the callee really clobbers when it has compiled the
 * callee in the same file, and the sc kernel's code depends on it (elsewhere,
 * 520 more emulated instructions per TinyConv inference at 90 % sparsity).
 * tm_nn_conv.c and tm_depthwise_conv.c compile to the same code either way.
 */

static TM_NOINLINE void fill_bytes(int8_t *dst, int32_t value, int32_t n)
{
    const uint32_t word = (uint8_t)value * 0x01010101u;
    for (; n >= 4; n -= 4, dst += 4) {
        memcpy(dst, &word, 4);
    }
    for (; n > 0; n--) {
        *dst++ = (int8_t)value;
    }
}

/* Taps [*lo, *hi) of a k-tap window starting at o0, dil apart, inside [0, size). */
static void clip_taps(int32_t o0, int32_t dil, int32_t k, int32_t size, int32_t *lo, int32_t *hi)
{
    int32_t l = o0 >= 0 ? 0 : (dil - 1 - o0) / dil;
    int32_t h = o0 >= size ? 0 : (size - o0 + dil - 1) / dil;
    h = h < k ? h : k;
    *lo = l < h ? l : h;
    *hi = h;
}

void tm_nn_gather_border(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int8_t *col)
{
    const int32_t c_n = g->in_c, run = g->k_w * c_n, zp = g->in_zp;
    const int32_t row_step = g->dil_h * g->in_w * c_n, tap_step = g->dil_w * c_n;
    int32_t ky_lo, ky_hi, kx_lo, kx_hi, rows, j;
    const int8_t *src;
    int8_t *dst;
    clip_taps(iy0, g->dil_h, g->k_h, g->in_h, &ky_lo, &ky_hi);
    clip_taps(ix0, g->dil_w, g->k_w, g->in_w, &kx_lo, &kx_hi);
    rows = kx_hi > kx_lo ? ky_hi - ky_lo : 0;
    if (rows == 0 || kx_hi - kx_lo != g->k_w) {
        fill_bytes(col, zp, g->k_h * run);
    } else { /* whole rows are copied: pad only the rows above and below */
        fill_bytes(col, zp, ky_lo * run);
        fill_bytes(col + ky_hi * run, zp, (g->k_h - ky_hi) * run);
    }
    if (rows == 0) {
        return;
    }
    src = in + ((iy0 + ky_lo * g->dil_h) * g->in_w + ix0 + kx_lo * g->dil_w) * c_n;
    dst = col + ky_lo * run + kx_lo * c_n;
    if (g->dil_w == 1) { /* one run per row */
        const int32_t len = (kx_hi - kx_lo) * c_n;
        do {
            tm_copy_bytes(dst, src, len);
            src += row_step;
            dst += run;
        } while (--rows);
        return;
    }
    do { /* dilated columns: one run per tap */
        for (j = 0; j < kx_hi - kx_lo; j++) {
            tm_copy_bytes(dst + j * c_n, src + j * tap_step, c_n);
        }
        src += row_step;
        dst += run;
    } while (--rows);
}

/* One output channel from its n nonzero taps: src[off[j]] is tap j's input byte. */
static inline int32_t taps_dot(const int8_t *val, const int32_t *off, int32_t n, const int8_t *src,
                               int32_t acc)
{
    for (; n > 0; n--) {
        acc += (int32_t)*val++ * src[*off++];
    }
    return acc;
}

/* The current pixel of tm_conv2d_fc_s8_sc, for sc_columns (offsets: the assembly reads them). */
typedef struct {
    int32_t j_end;            /* 0: the pixel's columns are below it */
    const int8_t *src;        /* 4: its window: in the input, or gathered */
    const tm_sc_chan_t *chan; /* 8: the records, in_off or col_off ones, minus its first column */
    int32_t *acc_fc;          /* 12 */
} sc_pixel_t;

/*
 * The live columns of one pixel in the fast form (tm_sc_chan_t, no clamp but int8's): from prog
 * while below px->j_end (the stream ends in 0xffff); returns where it stopped. Per column: its
 * channel's record (px->chan indexed by the column), its taps two at a time, the requantisation,
 * and its nonzero FC weights.
 */
#if defined(__ARM_FEATURE_DSP)
static __attribute__((naked, noinline)) const uint16_t *sc_columns(TM_ASM_ARG const uint16_t *prog,
                                                                   TM_ASM_ARG const sc_pixel_t *px)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "mov r3, r1\n\t"
                     "ldr r1, [r3, #0]\n\t"
                     "ldr r2, [r3, #4]\n\t"
                     "ldr lr, [r3, #8]\n"
                     "1:\n\t"
                     "ldrh r8, [r0], #2\n\t"
                     "cmp r8, r1\n\t"
                     "bhs 9f\n\t"
                     "rsb r8, r8, r8, lsl #3\n\t"
                     "add r10, lr, r8, lsl #2\n\t"
                     "ldm r10, {r4-r7}\n"
                     "2:\n\t"
                     "ldrd r8, r11, [r6], #8\n\t"
                     "ldrsb r8, [r2, r8]\n\t"
                     "ldrsb r11, [r2, r11]\n\t"
                     "ldrsb r9, [r5], #1\n\t"
                     "ldrsb r12, [r5], #1\n\t"
                     "smlabb r4, r8, r9, r4\n\t"
                     "smlabb r4, r11, r12, r4\n\t"
                     "cmp r5, r7\n\t"
                     "bne 2b\n\t"
                     "add r10, r10, #16\n\t"
                     "ldm r10, {r9, r11, r12}\n\t"
                     "lsl r4, r4, #1\n\t"
                     "smmulr r4, r4, r9\n\t"
                     "add r4, r4, r4, asr #31\n\t"
                     "add r4, r4, r11\n\t"
                     "asr r4, r4, r12\n\t"
                     "ssat r4, #8, r4\n\t"
                     "ldrh r5, [r0], #2\n\t"
                     "ldr r11, [r3, #12]\n\t"
                     "cmp r5, #0\n\t"
                     "beq 1b\n"
                     "4:\n\t"
                     "ldrh r8, [r0], #2\n\t"
                     "uxtb r9, r8\n\t"
                     "sxtb r8, r8, ror #8\n\t"
                     "ldr r12, [r11, r9, lsl #2]\n\t"
                     "mla r12, r8, r4, r12\n\t"
                     "str r12, [r11, r9, lsl #2]\n\t"
                     "subs r5, r5, #1\n\t"
                     "bne 4b\n\t"
                     "b 1b\n"
                     "9:\n\t"
                     "subs r0, r0, #2\n\t"
                     "pop {r4-r11, pc}\n");
}
#else
static const uint16_t *sc_columns(const uint16_t *prog, const sc_pixel_t *px)
{
    while (*prog < px->j_end) {
        const tm_sc_chan_t *ch = px->chan + *prog++;
        const int32_t t = tm_smmulr(
            taps_dot(ch->val, ch->off, (int32_t)(ch->val_end - ch->val), px->src, ch->bias) << 1, ch->mult);
        const int32_t x = tm_ssat8((t + (t >> 31) + ch->rnd) >> ch->shift);
        int32_t e;
        for (e = *prog++; e > 0; e--, prog++) {
            px->acc_fc[*prog & 0xff] += (int32_t)(int8_t)(*prog >> 8) * x;
        }
    }
    return prog;
}
#endif

/*
 * Sparse conv fused with a column-sparse FC. Only the conv outputs some nonzero
 * FC weight reads are computed (the live columns, in NHWC order, so a pixel's
 * channels come together): each is its channel's nonzero taps read straight
 * from the input (interior windows) or from the window gathered with padding
 * (border windows, once per pixel), requantised exactly as the conv alone does,
 * and multiplied into the FC accumulators of its column's nonzeros. Skipped
 * outputs meet only zero weights, so every FC sum is unchanged.
 * Scratch: fc_cout int32 accumulators, then a k-byte column.
 */
void tm_conv2d_fc_s8_sc(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_window_t *g = &p->win;
    const tm_sparse_taps_t *cv = (const tm_sparse_taps_t *)p->conv;
    const tm_sparse_cols_t *fc = (const tm_sparse_cols_t *)p->fc;
    const int32_t cout = cv->cout, fast = cv->chan != NULL && cv->rq.act_min == -128 && cv->rq.act_max == 127;
    const int32_t words = ((g->k_w * g->in_c) & 3) == 0 && g->dil_w == 1 && g->k_w <= g->in_w;
    const uint16_t *prog = fc->prog;
    int8_t *col = scratch + 4 * fc->cout;
    sc_pixel_t px;
    int32_t i, y_lo, y_hi, x_lo, x_hi;
    px.acc_fc = (int32_t *)(void *)scratch;
    tm_interior(g->pad_h, g->stride_h, (g->k_h - 1) * g->dil_h + 1, g->in_h, g->out_h, &y_lo, &y_hi);
    tm_interior(g->pad_w, g->stride_w, (g->k_w - 1) * g->dil_w + 1, g->in_w, g->out_w, &x_lo, &x_hi);
    for (i = 0; i < fc->cout; i++) {
        px.acc_fc[i] = fc->rq.bias[i];
    }
    while (*prog != 0xffffu) {
        const int32_t pj = *prog / cout, oy = pj / g->out_w, ox = pj - oy * g->out_w, j_base = pj * cout;
        const int32_t iy0 = oy * g->stride_h - g->pad_h, ix0 = ox * g->stride_w - g->pad_w;
        const int32_t inside = oy >= y_lo && oy < y_hi && ox >= x_lo && ox < x_hi;
        px.j_end = j_base + cout;
        if (inside) {
            px.src = in + (iy0 * g->in_w + ix0) * g->in_c;
        } else {
            if (words) {
                tm_nn_gather_words(g, in, iy0, ix0, col);
            } else {
                tm_nn_gather_border(g, in, iy0, ix0, col);
            }
            px.src = col;
        }
        if (fast) { /* chan: cout records with in_off, then cout with col_off; indexed by column */
            px.chan = (const tm_sc_chan_t *)(uintptr_t)((uintptr_t)(cv->chan + (inside ? 0 : cout)) -
                                                        (uintptr_t)j_base * sizeof(tm_sc_chan_t));
            prog = sc_columns(prog, &px);
            continue;
        }
        while (*prog < px.j_end) { /* the general form */
            const int32_t c = *prog++ - j_base, s = cv->row_start[c];
            const int32_t *off = inside ? cv->in_off : cv->col_off;
            const int32_t x = tm_requant(
                &cv->rq, c, taps_dot(cv->val + s, off + s, cv->row_start[c + 1] - s, px.src, cv->rq.bias[c]));
            int32_t e;
            for (e = *prog++; e > 0; e--, prog++) {
                px.acc_fc[*prog & 0xff] += (int32_t)(int8_t)(*prog >> 8) * x;
            }
        }
    }
    for (i = 0; i < fc->cout; i++) {
        out[i] = tm_nn_requant_cold(&fc->rq, i, px.acc_fc[i]);
    }
}
