/*
 * The convolution driver shared by tm_conv.c (plain convolutions) and
 * tm_conv_fc.c (convolutions fused with the fully connected layer they feed):
 * receptive fields gathered two output pixels at a time into contiguous
 * columns, multiplied by a weight encoding's tm_nn_cols_fn (tm_nn_matmul.c).
 */
#include "tm_internal.h"

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
        for (i = 0; i < sink->cout; i++) {
            tm_store32(state + 4 * i, sink->rq->bias[i]);
            if (sink->row_start != NULL) {
                tm_store32(state + 4 * (sink->cout + i), sink->row_start[i]);
            }
        }
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
    for (i = 0; sink != NULL && i < sink->cout; i++) {
        out[i] = tm_nn_requant_cold(sink->rq, i, tm_load32(state + 4 * i));
    }
}
