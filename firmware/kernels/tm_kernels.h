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
 * Dense convolutions take their weights packed ahead of time (tm_pmm_t, see
 * tm_nn_packed.c): sign-extended to int16 pairs, so the Cortex-M4 multiplies them
 * two at a time (SMLAD) without unpacking; their biases travel with them.
 *
 * One op per file; what several ops share is in the internal header
 * tm_internal.h and the tm_nn_*.c support files:
 *   tm_conv.c              tm_conv2d_s8, tm_conv2d_sparse_s8
 *   tm_depthwise_conv.c    tm_dwconv2d_s8, tm_dwconv3x3_s8, _s4
 *   tm_fully_connected.c   tm_fully_connected_s8, tm_fully_connected_sparse_s8, _s4
 *   tm_conv_fc.c           tm_conv2d_fc_s8_dd, _ds, _sd, _ss, _sc, _d4
 *   tm_pooling.c           tm_avg_pool_s8, tm_max_pool_s8
 *   tm_add.c               tm_add_s8
 *   tm_softmax.c           tm_softmax_s8
 *   tm_quantize.c          tm_requantize_s8
 *   tm_nn_requant.c        tm_mul_by_quant_mult
 *   tm_nn_packed.c         the packed matrix product (support)
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
 *   tm_conv2d_s8:   12 * kp + max(24 * ceil(cout / 2), 2 * kp) (packed activations
 *                   of three pixels, their accumulators or one padded receptive
 *                   field), after the unpacked weights with 4-bit weights:
 *                   (8 + 8 * kp) * ceil(cout / 2)
 *   tm_conv2d_fc_s8_dd, _ds: 4 * fc_cout (8 * fc_cout with sparse FC weights), then
 *                   as tm_conv2d_s8, then 3 * cout rounded up to 4 if above 12 * kp
 *   tm_conv2d_sparse_s8:
 *                   2 * k with k = k_h * k_w * in_c (two receptive-field columns;
 *                   windows that cross the border are padded there, not the input)
 *   tm_conv2d_fc_s8_sd, _ss: 4 * fc_cout (8 * fc_cout with sparse FC weights), then
 *                   2 * k, then 2 * cout (cout: conv output channels)
 *   tm_conv2d_fc_s8_sc: 4 * fc_cout, then k rounded up to 4
 *   tm_dwconv2d_s8: k_h * k_w * in_c
 *   tm_dwconv3x3_s8: (in_w + 2) * group
 *   tm_dwconv3x3_s4: as tm_dwconv3x3_s8, then 22 * in_c (the unpacked weights)
 *
 * In place: tm_conv2d_s8 of a 1x1, stride-1, unpadded convolution with
 * cout <= in_c, tm_dwconv3x3_s8, _s4 and tm_requantize_s8 may be given out == in.
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
 * encodings (e.g. sparse) get their own struct and kernel entry points.
 * The 4-bit entry points (_s4, _d4) take w as packed int4 (k a multiple of 8),
 * k / 2 bytes per row; in each group of 8 columns, a little-endian word whose
 * nibble i (bits 4i..4i+3) is column 8g + {0, 4, 1, 5, 2, 6, 3, 7}[i], so that the
 * word's low and high nibbles, masked, give under SXTB16 the pairs an activation
 * word gives. */
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

/*
 * Requantisation of packed products. With rnd, the fast form for accumulators
 * stored doubled and right shifts e >= 1 (shift holds e, minus TFLite's shift):
 * rnd[c] = 2^(e-1) + (out_zp << e), and out = clamp(ssat8((t + (t >> 31) + rnd) >> e))
 * with t = SMMULR(2 acc, mult), which is MultiplyByQuantizedMultiplier's double
 * rounding exactly. rnd NULL: tm_requant_t's arithmetic, shift as TFLite's.
 */
typedef struct {
    const int32_t *mult;
    const int32_t *rnd;
    const int8_t *shift; /* with rnd: the right shift e */
    int32_t out_zp;
    int32_t act_min, act_max;
} tm_prq_t;

/*
 * How a dense convolution packs the receptive fields it cannot pack straight from
 * its input (kq quads of k, into dst; col: 4 * kq bytes of scratch):
 *   tm_pack_border: windows that cross the border, padded with the input zero
 *     point row by row (rows of k_w * in_c bytes, a multiple of 4; no column dilation);
 *   tm_pack_gathered: any window, gathered into col with padding first (every
 *     window of a convolution whose rows are not whole words, or column-dilated).
 * The code generator names the one a layer needs (NULL: none), so only that one
 * is linked.
 */
typedef void (*tm_pack_fn)(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int32_t kq,
                           int32_t *dst, int8_t *col);
void tm_pack_border(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int32_t kq,
                    int32_t *dst, int8_t *col);
void tm_pack_gathered(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int32_t kq,
                      int32_t *dst, int8_t *col);

/*
 * Dense weights of a matrix product, packed (see tm_nn_packed.c for the layout).
 * 4-bit weights stay packed in flash (w4: TFLite's INT4 bytes, [cout][k] row-major,
 * two a byte, low nibble first; bias: the biases, doubled with dbl; w NULL): unpack
 * is tm_unpack_w4, which the kernel calls once per call to lay them out as w in its
 * scratch (NULL with 8-bit weights, so only models with 4-bit weights link it).
 */
typedef struct tm_pmm tm_pmm_t;
struct tm_pmm {
    const int32_t *w; /* per channel pair: 2 biases, then kp pairs of int16-pair words */
    int32_t k;        /* k_h * k_w * in_c, weights [cout][k_h][k_w][in_c] */
    int32_t kp;       /* k rounded up to a multiple of 8, halved */
    int32_t cout;
    int32_t dbl;     /* 1: weights and biases are stored doubled */
    tm_pack_fn edge; /* convolutions: the windows not packed straight from the input */
    const uint8_t *w4;
    const int32_t *bias;
    void (*unpack)(const tm_pmm_t *m, int32_t *stream);
    tm_prq_t rq;
};
void tm_unpack_w4(const tm_pmm_t *m, int32_t *stream);

typedef struct {
    tm_window_t win;
    tm_pmm_t mm;
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

/*
 * A 3x3 depthwise convolution, stride 1, SAME padding, depth multiplier 1, in_c a
 * multiple of 4 (in == out allowed). w holds, per four channels c..c+3, their four
 * int32 biases, then per tap (row-major) the int16 pairs (c, c+2) and (c+1, c+3) of
 * its weights; dbl as in tm_pmm_t. win gives the shape (k 3x3, pad 1) and in_zp.
 */
typedef struct {
    tm_window_t win;
    const int32_t *w;
    int32_t dbl;
    int32_t group; /* channels per pass over the image: a multiple of 4 dividing in_c */
    tm_prq_t rq;
} tm_dw3x3_t;

/*
 * tm_dw3x3_t with 4-bit weights kept packed in flash: w4 holds TFLite's INT4 bytes
 * ([tap][channel], two a byte, low nibble first), bias the biases (doubled with
 * dw.dbl), dw.w is NULL. tm_dwconv3x3_s4 lays them out as dw.w in its scratch, after
 * the ring, once per call: a separate struct so the 8-bit layers' structs keep their size.
 */
typedef struct {
    tm_dw3x3_t dw;
    const uint8_t *w4;
    const int32_t *bias;
} tm_dw3x3_w4_t;

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
 * int32 accumulators, so the conv output tensor is never stored. conv points at
 * a tm_pmm_t (dense) or tm_sparse_matmul_t (sparse), fc at a tm_matmul_t (dense)
 * or tm_sparse_matmul_t (sparse), as the entry
 * point's suffix says: conv encoding first, then FC (d dense, s sparse). The
 * FC's k is the conv output size, its rq bias has its own input zero point
 * folded in, and it produces one row.
 */
typedef struct {
    tm_window_t win;
    const void *conv;
    const void *fc;
} tm_conv_fc_t;

/* One output channel of tm_sparse_taps_t in the fast form: its folded bias, its taps' weights
 * [val, val_end) and input offsets (from off), multiplier, rounding constant and right shift. */
typedef struct {
    int32_t bias;
    const int8_t *val;
    const int32_t *off;
    const int8_t *val_end;
    int32_t mult, rnd, shift;
} tm_sc_chan_t;

/*
 * Sparse convolution taps for tm_conv2d_fc_s8_sc: per output channel c, the
 * nonzero weights val[j] for j in [row_start[c], row_start[c + 1]) (an even
 * number, at least 2: zero weights pad them), each with two precomputed byte offsets of
 * its input: in_off[j] from the window's top-left input pixel in the input tensor
 * itself (interior windows are read in place, nothing copied), col_off[j] in a
 * gathered [k_h][k_w][in_c] column (border windows, padded with the input zero
 * point). chan: where the fast requantisation (see tm_prq_t) is exact, per channel
 * its record with in_off offsets, then per channel its record with col_off
 * offsets; else NULL.
 */
typedef struct {
    const int32_t *row_start; /* cout + 1 entries */
    const int32_t *in_off;
    const int32_t *col_off;
    const int8_t *val;
    int32_t k;
    int32_t cout;
    tm_requant_t rq;
    const tm_sc_chan_t *chan;
} tm_sparse_taps_t;

/*
 * Sparse FULLY_CONNECTED weights by input column, for the fused kernel: only
 * the n_cols columns with a nonzero weight ("live" columns, ascending), as one
 * stream: per column its index, its number of nonzeros m, then m entries output
 * row | weight << 8 (the weight an int8); 0xffff ends it. A conv output whose FC
 * column is all zero contributes nothing to any FC sum, so the fused kernel does
 * not compute it.
 */
typedef struct {
    const uint16_t *prog;
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
    int32_t size;
    int32_t in_zp, out_zp;
    int32_t mult, shift; /* QuantizeMultiplier(input scale / output scale) */
} tm_requantize_t;

typedef struct {
    int32_t rows, depth;
    int32_t input_mult; /* PreprocessSoftmaxScaling */
    int32_t input_left_shift;
    int32_t diff_min; /* -CalculateInputRadius */
} tm_softmax_t;

void tm_conv2d_s8(const tm_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_dwconv2d_s8(const tm_dwconv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_dwconv3x3_s8(const tm_dw3x3_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_fully_connected_s8(const tm_fc_t *p, const int8_t *in, int8_t *out);
void tm_conv2d_sparse_s8(const tm_conv_sparse_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_fully_connected_sparse_s8(const tm_fc_sparse_t *p, const int8_t *in, int8_t *out);
/* 4-bit weights (see tm_matmul_t, tm_dw3x3_w4_t). */
void tm_fully_connected_s4(const tm_fc_t *p, const int8_t *in, int8_t *out);
void tm_dwconv3x3_s4(const tm_dw3x3_w4_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_dd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_ds(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_sd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_conv2d_fc_s8_ss(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
/* Fused, the FC's weights 4-bit (see tm_matmul_t). */
void tm_conv2d_fc_s8_d4(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
/* Fused, conv weights tm_sparse_taps_t and FC weights tm_sparse_cols_t: only the
 * conv outputs a nonzero FC weight reads are computed, each from its nonzero taps. */
void tm_conv2d_fc_s8_sc(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tm_avg_pool_s8(const tm_pool_t *p, const int8_t *in, int8_t *out);
void tm_max_pool_s8(const tm_pool_t *p, const int8_t *in, int8_t *out);
void tm_add_s8(const tm_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tm_softmax_s8(const tm_softmax_t *p, const int8_t *in, int8_t *out);
/* QUANTIZE int8 -> int8 (a rescale; in == out allowed). */
void tm_requantize_s8(const tm_requantize_t *p, const int8_t *in, int8_t *out);

/* TFLite's MultiplyByQuantizedMultiplier (double rounding), exposed for tests. */
int32_t tm_mul_by_quant_mult(int32_t x, int32_t mult, int32_t shift);

#ifdef __cplusplus
}
#endif

#endif /* TM_KERNELS_H */
