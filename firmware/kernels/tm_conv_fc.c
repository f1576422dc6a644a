/*
 * CONV_2D fused with the FULLY_CONNECTED layer it feeds (see tm_conv_fc_t):
 *   tm_conv2d_fc_s8_{dd,ds,sd,ss}, one per pair of dense/sparse weight
 *   encodings: tm_nn_conv_driver computes the conv outputs pixel pair by pixel
 *   pair and hands them to the FC's accumulate function below;
 *   tm_conv2d_fc_s8_sc, sparse taps and sparse FC columns: only the conv
 *   outputs the FC reads are computed.
 * Also home to tm_nn_gather_border, which the sc kernel shares with the
 * convolution driver and the depthwise kernel (see there why here).
 */
#include "tm_internal.h"

/* Dense FC weights: state is cout int32 accumulators; x holds columns [base, base + n). */
static void dense_accumulate(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state)
{
    const tm_matmul_t *m = (const tm_matmul_t *)mm;
    const int32_t k = m->k, cout = m->cout;
    const int8_t *w = m->w + base;
    int32_t o;
    for (o = 0; o + 2 <= cout; o += 2, w += 2 * k, state += 8) {
        int32_t acc[2];
        acc[0] = tm_load32(state);
        acc[1] = tm_load32(state + 4);
        tm_nn_dot_2x1(w, w + k, x, n, acc);
        tm_store32(state, acc[0]);
        tm_store32(state + 4, acc[1]);
    }
    if (o < cout) {
        tm_store32(state, tm_nn_dot_1x1(w, x, n, tm_load32(state)));
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
    const tm_matmul_t *c = (const tm_matmul_t *)p->conv, *f = (const tm_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {dense_accumulate, f, &f->rq, NULL, f->cout};
    tm_nn_conv_driver(&p->win, c->k, c->cout, c, tm_nn_dense_cols, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_ds(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_matmul_t *c = (const tm_matmul_t *)p->conv;
    const tm_sparse_matmul_t *f = (const tm_sparse_matmul_t *)p->fc;
    const tm_nn_sink_t sink = {sparse_accumulate, f, &f->rq, f->row_start, f->cout};
    tm_nn_conv_driver(&p->win, c->k, c->cout, c, tm_nn_dense_cols, in, out, scratch, &sink);
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
    const int8_t *end = val + (n & ~1);
    for (; val != end; val += 2, off += 2) {
        acc += (int32_t)val[0] * src[off[0]];
        acc += (int32_t)val[1] * src[off[1]];
    }
    if (n & 1) {
        acc += (int32_t)val[0] * src[off[0]];
    }
    return acc;
}

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
    const tm_window_t g = p->win; /* local copies: int8 stores cannot alias them */
    const tm_sparse_taps_t *cv = (const tm_sparse_taps_t *)p->conv;
    const tm_sparse_cols_t *fc = (const tm_sparse_cols_t *)p->fc;
    const tm_requant_t rq = cv->rq;
    const int32_t cout = cv->cout, fc_cout = fc->cout, n_cols = fc->n_cols;
    const int32_t *start = cv->row_start, *in_off = cv->in_off, *col_off = cv->col_off;
    const int8_t *cval = cv->val, *fval = fc->val;
    const uint16_t *cols = fc->col;
    const uint8_t *cnt = fc->cnt, *rows = fc->row;
    int8_t *col = scratch + 4 * fc_cout;
    const int8_t *src = in;
    const int32_t *off = in_off;
    int32_t y_lo, y_hi, x_lo, x_hi, i, n, pix = -1;
    tm_interior(g.pad_h, g.stride_h, (g.k_h - 1) * g.dil_h + 1, g.in_h, g.out_h, &y_lo, &y_hi);
    tm_interior(g.pad_w, g.stride_w, (g.k_w - 1) * g.dil_w + 1, g.in_w, g.out_w, &x_lo, &x_hi);
    for (i = 0; i < fc_cout; i++) {
        tm_store32(scratch + 4 * i, fc->rq.bias[i]);
    }
    for (n = 0; n < n_cols; n++) {
        const int32_t j = cols[n], pj = j / cout, c = j - pj * cout;
        int32_t acc, x, m;
        if (pj != pix) {
            const int32_t oy = pj / g.out_w, ox = pj - oy * g.out_w;
            const int32_t iy0 = oy * g.stride_h - g.pad_h, ix0 = ox * g.stride_w - g.pad_w;
            pix = pj;
            if (oy >= y_lo && oy < y_hi && ox >= x_lo && ox < x_hi) {
                src = in + (iy0 * g.in_w + ix0) * g.in_c;
                off = in_off;
            } else {
                tm_nn_gather_border(&g, in, iy0, ix0, col);
                src = col;
                off = col_off;
            }
        }
        acc = taps_dot(cval + start[c], off + start[c], start[c + 1] - start[c], src, rq.bias[c]);
        x = tm_requant(&rq, c, acc);
        for (m = *cnt++; m > 0; m--) {
            int8_t *a = scratch + 4 * *rows++;
            tm_store32(a, tm_load32(a) + (int32_t)*fval++ * x);
        }
    }
    for (i = 0; i < fc_cout; i++) {
        out[i] = tm_nn_requant_cold(&fc->rq, i, tm_load32(scratch + 4 * i));
    }
}
