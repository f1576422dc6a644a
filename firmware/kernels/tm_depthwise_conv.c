/* DEPTHWISE_CONV_2D. */
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
