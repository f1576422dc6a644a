/* AVERAGE_POOL_2D and MAX_POOL_2D. */
#include "tm_internal.h"

/* Clips a pooling window to the image, as the reference kernels do. */
static void pool_bounds(const tm_window_t *g, int32_t oy, int32_t ox, int32_t b[4])
{
    const int32_t iy0 = oy * g->stride_h - g->pad_h;
    const int32_t ix0 = ox * g->stride_w - g->pad_w;
    b[0] = iy0 > 0 ? iy0 : 0;
    b[1] = iy0 + g->k_h < g->in_h ? iy0 + g->k_h : g->in_h;
    b[2] = ix0 > 0 ? ix0 : 0;
    b[3] = ix0 + g->k_w < g->in_w ? ix0 + g->k_w : g->in_w;
}

void tm_avg_pool_s8(const tm_pool_t *p, const int8_t *in, int8_t *out)
{
    const tm_window_t *g = &p->win;
    const int32_t c_n = g->in_c;
    int32_t oy, ox, c, y, x, b[4];
    for (oy = 0; oy < g->out_h; oy++) {
        for (ox = 0; ox < g->out_w; ox++, out += c_n) {
            int32_t count;
            pool_bounds(g, oy, ox, b);
            count = (b[1] - b[0]) * (b[3] - b[2]);
            for (c = 0; c < c_n; c++) {
                int32_t acc = 0;
                for (y = b[0]; y < b[1]; y++) {
                    for (x = b[2]; x < b[3]; x++) {
                        acc += in[(y * g->in_w + x) * c_n + c];
                    }
                }
                /* Round half away from zero; C99 division truncates like C++. */
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[c] = (int8_t)tm_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}

void tm_max_pool_s8(const tm_pool_t *p, const int8_t *in, int8_t *out)
{
    const tm_window_t *g = &p->win;
    const int32_t c_n = g->in_c;
    int32_t oy, ox, c, y, x, b[4];
    for (oy = 0; oy < g->out_h; oy++) {
        for (ox = 0; ox < g->out_w; ox++, out += c_n) {
            pool_bounds(g, oy, ox, b);
            for (c = 0; c < c_n; c++) {
                int32_t best = INT8_MIN;
                for (y = b[0]; y < b[1]; y++) {
                    for (x = b[2]; x < b[3]; x++) {
                        const int32_t v = in[(y * g->in_w + x) * c_n + c];
                        best = v > best ? v : best;
                    }
                }
                out[c] = (int8_t)tm_clamp(best, p->act_min, p->act_max);
            }
        }
    }
}
