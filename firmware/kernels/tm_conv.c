/* CONV_2D, dense (packed) and sparse weights (tm_nn_conv.c has the drivers). */
#include "tm_internal.h"

void tm_conv2d_s8(const tm_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    tm_nn_pconv_driver(&p->win, &p->mm, in, out, scratch, NULL);
}

void tm_conv2d_sparse_s8(const tm_conv_sparse_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    tm_nn_conv_driver(&p->win, p->mm.k, p->mm.cout, &p->mm, tm_nn_sparse_cols, in, out, scratch, NULL);
}
