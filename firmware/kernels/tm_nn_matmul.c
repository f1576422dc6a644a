/*
 * Matrix products shared by the convolution and fully connected kernels: the
 * int8 dot products (SIMD on Cortex-M4) and, per weight encoding, all output
 * channels of one or two columns, requantised.
 */
#include "tm_internal.h"

/*
 * Dot products of weight rows w, w + k with columns a, a + k:
 * acc = {w0.a, w0.b, w1.a, w1.b}. Blocking 2x2 loads each operand once per two
 * MACs, the main lever on the Cortex-M4 where loads and sign extension cost as
 * much as the multiplies. SXTB16 pairs bytes (0,2) and, rotated, (1,3);
 * applying the same pairing to both operands keeps every product exact, only
 * the summation order differs. The second row and column being k bytes after
 * the first, one register offset reaches both and the loop needs no spills.
 * Operands are contiguous: a strided (per kernel row) walk was tried and its
 * register spills cost more than copying the receptive field once.
 */
static void dot_2x2(const int8_t *w, const int8_t *a, int32_t k, int32_t acc[4])
{
    int32_t a0 = acc[0], b0 = acc[1], a1 = acc[2], b1 = acc[3];
    const int8_t *end = a + (k & ~3);
#if TM_DSP
    for (; a != end; a += 4, w += 4) {
        const uint32_t va = tm_read4(a), vb = tm_read4(a + k);
        const int32_t a_ev = tm_sxtb16(va), a_od = tm_sxtb16_ror8(va);
        const int32_t b_ev = tm_sxtb16(vb), b_od = tm_sxtb16_ror8(vb);
        uint32_t vw = tm_read4(w);
        int32_t w_ev = tm_sxtb16(vw), w_od = tm_sxtb16_ror8(vw);
        a0 = tm_smlad(a_ev, w_ev, a0);
        a0 = tm_smlad(a_od, w_od, a0);
        b0 = tm_smlad(b_ev, w_ev, b0);
        b0 = tm_smlad(b_od, w_od, b0);
        TM_NO_HOIST();
        vw = tm_read4(w + k);
        w_ev = tm_sxtb16(vw);
        w_od = tm_sxtb16_ror8(vw);
        a1 = tm_smlad(a_ev, w_ev, a1);
        a1 = tm_smlad(a_od, w_od, a1);
        b1 = tm_smlad(b_ev, w_ev, b1);
        b1 = tm_smlad(b_od, w_od, b1);
    }
#endif
    for (end += k & 3; a != end; a++, w++) {
        const int32_t x0 = w[0], x1 = w[k];
        a0 += x0 * a[0];
        b0 += x0 * a[k];
        a1 += x1 * a[0];
        b1 += x1 * a[k];
    }
    acc[0] = a0;
    acc[1] = b0;
    acc[2] = a1;
    acc[3] = b1;
}

/* Two weight rows with one column: acc = {w0.a, w1.a}; shares a's sign extension. */
void tm_nn_dot_2x1(const int8_t *w0, const int8_t *w1, const int8_t *a, int32_t k, int32_t acc[2])
{
    int32_t a0 = acc[0], a1 = acc[1];
    int32_t i = 0;
#if TM_DSP
    for (; i + 4 <= k; i += 4) {
        const uint32_t va = tm_read4(a + i);
        const int32_t a_ev = tm_sxtb16(va), a_od = tm_sxtb16_ror8(va);
        const uint32_t v0 = tm_read4(w0 + i), v1 = tm_read4(w1 + i);
        a0 = tm_smlad(a_ev, tm_sxtb16(v0), a0);
        a0 = tm_smlad(a_od, tm_sxtb16_ror8(v0), a0);
        a1 = tm_smlad(a_ev, tm_sxtb16(v1), a1);
        a1 = tm_smlad(a_od, tm_sxtb16_ror8(v1), a1);
    }
#endif
    for (; i < k; i++) {
        a0 += (int32_t)w0[i] * a[i];
        a1 += (int32_t)w1[i] * a[i];
    }
    acc[0] = a0;
    acc[1] = a1;
}

int32_t tm_nn_dot_1x1(const int8_t *w, const int8_t *a, int32_t k, int32_t acc)
{
    int32_t i = 0;
#if TM_DSP
    for (; i + 4 <= k; i += 4) {
        const uint32_t va = tm_read4(a + i);
        const uint32_t vw = tm_read4(w + i);
        acc = tm_smlad(tm_sxtb16(va), tm_sxtb16(vw), acc);
        acc = tm_smlad(tm_sxtb16_ror8(va), tm_sxtb16_ror8(vw), acc);
    }
#endif
    for (; i < k; i++) {
        acc += (int32_t)w[i] * a[i];
    }
    return acc;
}

/* 4-bit weights (see tm_kernels.h): one product at a time. */
void tm_nn_dense_cols_w4(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b)
{
    const tm_matmul_t *m = (const tm_matmul_t *)mm;
    int32_t c, j;
    for (c = 0; c < m->cout; c++) {
        const int8_t *row = m->w + c * (m->k >> 1);
        int32_t acc_a = m->rq.bias[c], acc_b = m->rq.bias[c];
        for (j = 0; j < m->k; j++) {
            const int32_t v = tm_nibble_w4(row, j);
            acc_a += v * a[j];
            acc_b += b != NULL ? v * b[j] : 0;
        }
        out_a[c] = tm_nn_requant_cold(&m->rq, c, acc_a);
        if (b != NULL) {
            out_b[c] = tm_nn_requant_cold(&m->rq, c, acc_b);
        }
    }
}

void tm_nn_dense_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b)
{
    const tm_matmul_t *m = (const tm_matmul_t *)mm;
    const int8_t *w = m->w;
    const int32_t k = m->k, cout = m->cout;
    const tm_requant_t rq = m->rq;
    const int32_t *bias = rq.bias;
    int32_t c;
    for (c = 0; c + 2 <= cout; c += 2, w += 2 * k) {
        if (b != NULL) {
            int32_t acc[4] = {bias[c], bias[c], bias[c + 1], bias[c + 1]};
            dot_2x2(w, a, k, acc);
            out_a[c] = tm_requant(&rq, c, acc[0]);
            out_b[c] = tm_requant(&rq, c, acc[1]);
            out_a[c + 1] = tm_requant(&rq, c + 1, acc[2]);
            out_b[c + 1] = tm_requant(&rq, c + 1, acc[3]);
        } else {
            int32_t acc[2] = {bias[c], bias[c + 1]};
            tm_nn_dot_2x1(w, w + k, a, k, acc);
            out_a[c] = tm_nn_requant_cold(&rq, c, acc[0]);
            out_a[c + 1] = tm_nn_requant_cold(&rq, c + 1, acc[1]);
        }
    }
    if (c < cout) {
        out_a[c] = tm_nn_requant_cold(&rq, c, tm_nn_dot_1x1(w, a, k, bias[c]));
        if (b != NULL) {
            out_b[c] = tm_nn_requant_cold(&rq, c, tm_nn_dot_1x1(w, b, k, bias[c]));
        }
    }
}

/* Sparse weights: scalar multiply-accumulates over the nonzeros only. */
void tm_nn_sparse_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a, int8_t *out_b)
{
    const tm_sparse_matmul_t *m = (const tm_sparse_matmul_t *)mm;
    const tm_requant_t rq = m->rq;
    const int32_t *start = m->row_start;
    const uint16_t *idx = m->idx;
    const int8_t *val = m->val;
    const int32_t cout = m->cout;
    int32_t c, j;
    for (c = 0; c < cout; c++) {
        const int32_t end = start[c + 1];
        int32_t acc_a = rq.bias[c], acc_b = rq.bias[c];
        if (out_b != NULL) {
            for (j = start[c]; j < end; j++) {
                acc_a += (int32_t)val[j] * a[idx[j]];
                acc_b += (int32_t)val[j] * b[idx[j]];
            }
            out_b[c] = tm_requant(&rq, c, acc_b);
        } else {
            for (j = start[c]; j < end; j++) {
                acc_a += (int32_t)val[j] * a[idx[j]];
            }
        }
        out_a[c] = tm_requant(&rq, c, acc_a);
    }
}
