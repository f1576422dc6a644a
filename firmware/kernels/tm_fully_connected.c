/* FULLY_CONNECTED, dense (8- and 4-bit) and sparse weights. */
#include "tm_internal.h"

static inline void fc_driver(int32_t rows, int32_t k, int32_t cout, const void *mm, tm_nn_cols_fn cols,
                             const int8_t *in, int8_t *out)
{
    int32_t r;
    for (r = 0; r + 2 <= rows; r += 2) {
        cols(mm, in + r * k, in + (r + 1) * k, out + r * cout, out + (r + 1) * cout);
    }
    if (r < rows) {
        cols(mm, in + r * k, NULL, out + r * cout, NULL);
    }
}

void tm_fully_connected_s8(const tm_fc_t *p, const int8_t *in, int8_t *out)
{
    fc_driver(p->rows, p->mm.k, p->mm.cout, &p->mm, tm_nn_dense_cols, in, out);
}

void tm_fully_connected_sparse_s8(const tm_fc_sparse_t *p, const int8_t *in, int8_t *out)
{
    fc_driver(p->rows, p->mm.k, p->mm.cout, &p->mm, tm_nn_sparse_cols, in, out);
}

void tm_fully_connected_s4(const tm_fc_t *p, const int8_t *in, int8_t *out)
{
    fc_driver(p->rows, p->mm.k, p->mm.cout, &p->mm, tm_nn_dense_cols_w4, in, out);
}
