/*
 * The convolution drivers shared by tm_conv.c (plain convolutions) and
 * tm_conv_fc.c (convolutions fused with the fully connected layer they feed):
 *   tm_nn_pconv_driver, dense (packed) weights: receptive fields packed three
 *   output pixels at a time, multiplied by tm_nn_mm3x2 (tm_nn_packed.c);
 *   tm_nn_conv_driver, sparse weights: receptive fields gathered two output
 *   pixels at a time into contiguous columns, multiplied by a weight encoding's
 *   tm_nn_cols_fn (tm_nn_matmul.c).
 */
#include "tm_internal.h"

static void sink_init(const tm_nn_sink_t *sink, int8_t *state)
{
    int32_t i;
    for (i = 0; i < sink->cout; i++) {
        tm_store32(state + 4 * i, sink->rq->bias[i]);
        if (sink->row_start != NULL) {
            tm_store32(state + 4 * (sink->cout + i), sink->row_start[i]);
        }
    }
}

static void sink_finish(const tm_nn_sink_t *sink, const int8_t *state, int8_t *out)
{
    int32_t i;
    for (i = 0; i < sink->cout; i++) {
        out[i] = tm_nn_requant_cold(sink->rq, i, tm_load32(state + 4 * i));
    }
}

/* The window of output pixel i (i = oy * out_w + ox) if it lies inside the input, else NULL. */
static inline const int8_t *window_at(const tm_window_t *g, const int8_t *in, int32_t i)
{
    const int32_t oy = i / g->out_w, iy0 = oy * g->stride_h - g->pad_h;
    const int32_t ix0 = (i - oy * g->out_w) * g->stride_w - g->pad_w;
    if (iy0 < 0 || ix0 < 0 || iy0 + (g->k_h - 1) * g->dil_h >= g->in_h || ix0 + g->k_w > g->in_w) {
        return NULL;
    }
    return in + (iy0 * g->in_w + ix0) * g->in_c;
}

void tm_nn_pconv_driver(const tm_window_t *g, const tm_pmm_t *mm, const int8_t *in, int8_t *out,
                        int8_t *scratch, const tm_nn_sink_t *sink)
{
    const int32_t kp = mm->kp, cout = mm->cout, cpairs = (cout + 1) >> 1, n = g->out_h * g->out_w;
    const tm_pack_fn edge = mm->edge;
    const int32_t direct = ((g->k_w * g->in_c) & 3) == 0 && g->dil_w == 1;
    int8_t *state = scratch, *chunk;
    int32_t *packed, *acc;
    int32_t i, p;
    const int32_t *w = mm->w;
    if (sink != NULL) {
        sink_init(sink, state);
        scratch += (sink->row_start != NULL ? 8 : 4) * sink->cout;
    }
    if (mm->unpack != NULL) { /* 4-bit weights: unpacked once per call, ahead of the rest */
        mm->unpack(mm, (int32_t *)(void *)scratch);
        w = (const int32_t *)(void *)scratch;
        scratch += (8 + 8 * kp) * cpairs;
    }
    /* The column is only used while packing, the accumulators only after, so they share bytes; the
     * chunk of requantised outputs is written after the product, into the packed activations
     * (after the accumulators if it does not fit there). */
    packed = (int32_t *)(void *)scratch;
    acc = packed + 3 * kp;
    chunk = 3 * cout <= 12 * kp ? (int8_t *)packed
                                : (int8_t *)acc + (24 * cpairs > 2 * kp ? 24 * cpairs : 2 * kp);
    for (i = 0; i < n; i += 3) {
        const int32_t m = n - i < 3 ? n - i : 3;
        const int8_t *src[3];
        /* Three windows inside the input with rows of whole words at once (edge NULL: every window
         * is); otherwise each by the layer's packer. Past the last pixel any readable window will
         * do: its outputs are dropped. */
        for (p = 0; p < 3; p++) {
            src[p] = direct ? window_at(g, in, i + (p < m ? p : 0)) : NULL;
        }
        if (src[0] != NULL && src[1] != NULL && src[2] != NULL) {
            tm_nn_pack3(src, g->k_h, g->k_w * g->in_c, g->dil_h * g->in_w * g->in_c, kp >> 1, packed);
        } else {
            for (p = 0; p < m; p++) {
                const int32_t oy = (i + p) / g->out_w, ox = i + p - oy * g->out_w;
                edge(g, in, oy * g->stride_h - g->pad_h, ox * g->stride_w - g->pad_w, kp >> 1, packed + p,
                     (int8_t *)acc);
            }
        }
        tm_nn_mm3x2(packed, w, kp, cpairs, acc);
        if (sink == NULL) {
            tm_nn_prequant3(mm, acc, m, out + i * cout, cout);
        } else {
            tm_nn_prequant3(mm, acc, m, chunk, cout);
            sink->accumulate(sink->mm, i * cout, m * cout, chunk, state);
        }
    }
    if (sink != NULL) {
        sink_finish(sink, state, out);
    }
}

/* Per-layer constants of receptive-field gathering, hoisted out of the pixel loop. */
typedef struct {
    const tm_window_t *g;
    const int8_t *in;
    int32_t run;                    /* bytes in a kernel row: k_w * in_c */
    int32_t row_step;               /* input bytes between kernel rows */
    int32_t y_lo, y_hi, x_lo, x_hi; /* outputs whose windows need no padding */
} fields_t;

/*
 * The receptive field of output pixel (oy, ox) as a contiguous [k_h][k_w][in_c]
 * column in col: interior windows without column dilation are copied row by
 * row, the others padded by tm_nn_gather_border. Always copied, even when the
 * window is contiguous in the input already (one kernel row), so that a pixel
 * pair's columns are k bytes apart as tm_nn_matmul.c's dot_2x2 wants.
 */
static void gather(const fields_t *f, int32_t oy, int32_t ox, int8_t *col)
{
    const tm_window_t *g = f->g;
    const int32_t iy0 = oy * g->stride_h - g->pad_h, ix0 = ox * g->stride_w - g->pad_w;
    const int32_t run = f->run, row_step = f->row_step;
    const int8_t *src;
    int32_t rows = g->k_h;
    if (oy < f->y_lo || oy >= f->y_hi || ox < f->x_lo || ox >= f->x_hi || g->dil_w != 1) {
        tm_nn_gather_border(g, f->in, iy0, ix0, col);
        return;
    }
    src = f->in + (iy0 * g->in_w + ix0) * g->in_c;
    if ((run & 3) == 0) {
        do {
            tm_copy_words(col, src, run);
            src += row_step;
            col += run;
        } while (--rows);
    } else {
        do {
            tm_copy_bytes(col, src, run);
            src += row_step;
            col += run;
        } while (--rows);
    }
}

void tm_nn_conv_driver(const tm_window_t *g, int32_t k, int32_t cout, const void *mm, tm_nn_cols_fn cols,
                       const int8_t *in, int8_t *out, int8_t *scratch, const tm_nn_sink_t *sink)
{
    const int32_t w = g->out_w, n = g->out_h * w;
    int8_t *state = scratch, *dst = out;
    fields_t f;
    int32_t i, oy = 0, ox = 0;
    f.g = g;
    f.in = in;
    f.run = g->k_w * g->in_c;
    f.row_step = g->dil_h * g->in_w * g->in_c;
    tm_interior(g->pad_h, g->stride_h, (g->k_h - 1) * g->dil_h + 1, g->in_h, g->out_h, &f.y_lo, &f.y_hi);
    tm_interior(g->pad_w, g->stride_w, (g->k_w - 1) * g->dil_w + 1, g->in_w, g->out_w, &f.x_lo, &f.x_hi);
    if (sink != NULL) {
        sink_init(sink, state);
        scratch += (sink->row_start != NULL ? 8 : 4) * sink->cout;
        dst = scratch + 2 * k;
    }
    /* Pixels go in pairs (across row ends too) to feed the 2x2 dot product. */
    for (i = 0; i < n; i += 2) {
        const int8_t *b = NULL;
        gather(&f, oy, ox, scratch);
        if (++ox == w) {
            ox = 0;
            oy++;
        }
        if (i + 1 < n) {
            gather(&f, oy, ox, scratch + k);
            b = scratch + k;
            if (++ox == w) {
                ox = 0;
                oy++;
            }
        }
        cols(mm, scratch, b, dst, b != NULL ? dst + cout : NULL);
        if (sink == NULL) {
            dst += 2 * cout;
        } else {
            sink->accumulate(sink->mm, i * cout, (b != NULL ? 2 : 1) * cout, dst, state);
        }
    }
    if (sink != NULL) {
        sink_finish(sink, state, out);
    }
}
