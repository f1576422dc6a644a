/*
 * tm_kernels: C99 int8 kernels with TensorFlow Lite (Micro) reference semantics.
 *
 * Every kernel reproduces TFLM's reference int8 kernel bit for bit: asymmetric
 * int8 activations, symmetric per-channel int8 weights, int32 bias and the
 * gemmlowp-style double-rounding MultiplyByQuantizedMultiplier.
 *
 * Layer parameters are plain const structs filled in ahead of time by
 * tinymighty/codegen/, so nothing is computed at prepare time on device.
 * Convolution biases arrive with the input zero point already folded in
 * (bias - in_zp * sum(w)); padding taps are therefore fed the input zero point
 * instead of being skipped, which is arithmetically identical.
 *
 * Compiled with __ARM_FEATURE_DSP (e.g. Cortex-M4) the dot products use the
 * SIMD instructions SXTB16/SMLAD (SMLABB/SMLATT for depthwise); define
 * TM_EMULATE_DSP on a host to run that same code path with portable stand-ins.
 *
 * One op per file; what several ops share is in the internal header
 * tm_internal.h and the tm_nn_*.c support files:
 *   tm_conv.c              tm_conv2d_s8, tm_conv2d_sparse_s8
 *   tm_depthwise_conv.c    tm_dwconv2d_s8
 *   tm_fully_connected.c   tm_fully_connected_s8, tm_fully_connected_sparse_s8
 *   tm_conv_fc.c           tm_conv2d_fc_s8_dd, _ds, _sd, _ss, _sc
 *   tm_pooling.c           tm_avg_pool_s8, tm_max_pool_s8
 *   tm_add.c               tm_add_s8
 *   tm_softmax.c           tm_softmax_s8
 *   tm_nn_requant.c        tm_mul_by_quant_mult
 */
#ifndef TM_KERNELS_H
#define TM_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TM_ALIGN(n) __attribute__((aligned(n)))
#else
#define TM_ALIGN(n)
#endif

/*
 * Scratch (arena bytes the caller provides, computed by tinymighty/codegen/):
 *   tm_conv2d_s8, tm_conv2d_sparse_s8:
 *                   2 * k with k = k_h * k_w * in_c (two receptive-field columns;
 *                   windows that cross the border are padded there, not the input)
 *   tm_conv2d_fc_s8_*: 4 * fc_cout (8 * fc_cout with sparse FC weights), then
 *                   2 * k, then 2 * cout (cout: conv output channels)
 *   tm_conv2d_fc_s8_sc: 4 * fc_cout, then k
 *   tm_dwconv2d_s8: k_h * k_w * in_c
 */

/* Requantisation of int32 accumulators to int8, one entry per output channel. */
typedef struct {
    const int32_t *bias; /* input zero point folded in */
    const int32_t *mult; /* Q31 significand from QuantizeMultiplier */
    const int8_t *shift; /* exponent: > 0 shifts left, < 0 rounds right */
    int32_t out_zp;
    int32_t act_min; /* fused activation clamp, already in the int8 domain */
    int32_t act_max;
} tm_requant_t;

/* Weights of a matrix product, dense row-major [cout][k]. Alternative weight
 * encodings (e.g. sparse) get their own struct and kernel entry points. */
typedef struct {
    const int8_t *w;
    int32_t k;
    int32_t cout;
    tm_requant_t rq;
} tm_matmul_t;

/* Sliding-window geometry shared by convolutions and pooling (NHWC, batch 1). */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w; /* top/left padding, as TFLite's ComputePadding */
    int32_t in_zp;        /* value fed to padding taps */
} tm_window_t;

/* Sparse weights: per output channel c, the nonzero weights val[j] at column
 * idx[j] for j in [row_start[c], row_start[c + 1]). Zero weights are skipped,
 * which leaves every nonzero product, and so the result, unchanged. */
typedef struct {
    const int32_t *row_start; /* cout + 1 entries */
    const uint16_t *idx;
    const int8_t *val;
    int32_t k;
    int32_t cout;
    tm_requant_t rq;
} tm_sparse_matmul_t;

typedef struct {
    tm_window_t win;
    tm_matmul_t mm; /* k = k_h * k_w * in_c, weights [cout][k_h][k_w][in_c] */
} tm_conv_t;

typedef struct {
    tm_window_t win;
    tm_sparse_matmul_t mm;
} tm_conv_sparse_t;

typedef struct {
    tm_window_t win;
    int32_t depth_mult;
    const int8_t *w; /* [k_h][k_w][in_c * depth_mult] */
    tm_requant_t rq;
} tm_dwconv_t;

typedef struct {
    int32_t rows; /* batch rows sharing the weights */
    tm_matmul_t mm;
} tm_fc_t;

typedef struct {
    int32_t rows;
    tm_sparse_matmul_t mm;
} tm_fc_sparse_t;

/*
 * A CONV_2D whose output feeds only a FULLY_CONNECTED layer (through reshapes),
 * fused: each conv output is computed exactly as the conv alone would compute
 * it (requantised and clamped to int8) and is multiplied straight into the FC's
 * int32 accumulators, so the conv output tensor is never stored. conv and fc
 * point at a tm_matmul_t (dense) or tm_sparse_matmul_t (sparse) as the entry
 * point's suffix says: conv encoding first, then FC (d dense, s sparse). The
 * FC's k is the conv output size, its rq bias has its own input zero point
 * folded in, and it produces one row.
 */
typedef struct {
    tm_window_t win;
    const void *conv;
    const void *fc;
} tm_conv_fc_t;

/*
 * Sparse convolution taps for tm_conv2d_fc_s8_sc: per output channel c, the
 * nonzero weights val[j] for j in [row_start[c], row_start[c + 1]), each with
 * two precomputed byte offsets of its input: in_off[j] from the window's
 * top-left input pixel in the input tensor itself (interior windows are read in
 * place, nothing copied), col_off[j] in a gathered [k_h][k_w][in_c] column
 * (border windows, padded with the input zero point).
 */
typedef struct {
    const int32_t *row_start; /* cout + 1 entries */
    const int32_t *in_off;
    const int32_t *col_off;
    const int8_t *val;
    int32_t k;
    int32_t cout;
    tm_requant_t rq;
} tm_sparse_taps_t;

/*
 * Sparse FULLY_CONNECTED weights by input column, for the fused kernel: only
 * the n_cols columns with a nonzero weight ("live" columns, ascending), each
 * with cnt[i] nonzeros: output row row[j] and weight val[j]. A conv output
 * whose FC column is all zero contributes nothing to any FC sum, so the fused
 * kernel does not compute it at all.
 */
typedef struct {
    const uint16_t *col;
    const uint8_t *cnt;
    const uint8_t *row;
    const int8_t *val;
    int32_t n_cols;
    int32_t k;
    int32_t cout; /* <= 256 */
    tm_requant_t rq;
} tm_sparse_cols_t;

typedef struct {
    tm_window_t win; /* k_h/k_w are the pool size; in_zp unused */
    int32_t act_min, act_max;
} tm_pool_t;

typedef struct {
    int32_t size;
    int32_t in1_offset, in2_offset; /* negated input zero points */
    int32_t left_shift;
    int32_t in1_mult, in1_shift;
    int32_t in2_mult, in2_shift;
    int32_t out_mult, out_shift;
    int32_t out_zp, act_min, act_max;
} tm_add_t;

typedef struct {
    int32_t rows, depth;
    int32_t input_mult; /* PreprocessSoftmaxScaling */
    int32_t input_left_shift;
    int32_t diff_min; /* -CalculateInputRadius */
} tm_softmax_t;

void tm_conv2d_s8(const tm_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_dwconv2d_s8(const tm_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_fully_connected_s8(const tm_fc_t *p, const int8_t *in, int8_t *out);
void tm_conv2d_sparse_s8(const tm_conv_sparse_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_fully_connected_sparse_s8(const tm_fc_sparse_t *p, const int8_t *in, int8_t *out);
void tm_conv2d_fc_s8_dd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_ds(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_sd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_ss(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
/* Fused, conv weights tm_sparse_taps_t and FC weights tm_sparse_cols_t: only the
 * conv outputs a nonzero FC weight reads are computed, each from its nonzero taps. */
void tm_conv2d_fc_s8_sc(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_avg_pool_s8(const tm_pool_t *p, const int8_t *in, int8_t *out);
void tm_max_pool_s8(const tm_pool_t *p, const int8_t *in, int8_t *out);
void tm_add_s8(const tm_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tm_softmax_s8(const tm_softmax_t *p, const int8_t *in, int8_t *out);

/* TFLite's MultiplyByQuantizedMultiplier (double rounding), exposed for tests. */
int32_t tm_mul_by_quant_mult(int32_t x, int32_t mult, int32_t shift);

#ifdef __cplusplus
}
#endif

#endif /* TM_KERNELS_H */
