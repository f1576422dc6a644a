/*
 * Convolution, fully connected, pooling and add kernels. See tm_kernels.h for
 * the conventions; tm_softmax.c holds the softmax.
 */
#include "tm_kernels.h"

#include <string.h>

#include "tm_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define TM_DSP 1
static inline int32_t tm_sxtb16(uint32_t x) { return __sxtb16((int32_t)x); }
static inline int32_t tm_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
static inline int32_t tm_smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t tm_smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
/* ACLE has no rotate operand for SXTB16 and GCC does not fuse a separate ROR. */
static inline int32_t tm_sxtb16_ror8(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#elif defined(TM_EMULATE_DSP)
/* Host stand-ins for SXTB16/SMLAD so the SIMD path is testable off-target. */
#define TM_DSP 1
static inline int32_t tm_sxtb16(uint32_t x)
{
    const uint32_t lo = (uint32_t)(int32_t)(int8_t)(x & 0xffu) & 0xffffu;
    const uint32_t hi = (uint32_t)(int32_t)(int8_t)((x >> 16) & 0xffu) & 0xffffu;
    return (int32_t)(lo | (hi << 16));
}
static inline int32_t tm_smlad(int32_t a, int32_t b, int32_t acc)
{
    const int32_t lo = (int32_t)(int16_t)(a & 0xffff) * (int32_t)(int16_t)(b & 0xffff);
    const int32_t hi = (int32_t)(int16_t)((uint32_t)a >> 16) * (int32_t)(int16_t)((uint32_t)b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
static inline int32_t tm_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xffff) * (int16_t)(b & 0xffff)));
}
static inline int32_t tm_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return tm_smlabb((int32_t)((uint32_t)a >> 16), (int32_t)((uint32_t)b >> 16), acc);
}
static inline int32_t tm_sxtb16_ror8(uint32_t x) { return tm_sxtb16((x >> 8) | (x << 24)); }
#else
#define TM_DSP 0
#endif

#if TM_DSP
/* A compiler barrier: keeps GCC from hoisting the next load above it, which
 * would need one register more than the loop has and spill. */
#if defined(__GNUC__)
#define TM_NO_HOIST() __asm__ volatile("" ::: "memory")
#else
#define TM_NO_HOIST() ((void)0)
#endif

static inline uint32_t tm_read4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one (unaligned-capable) LDR on Cortex-M4 */
    return v;
}
#endif

int32_t tm_mul_by_quant_mult(int32_t x, int32_t mult, int32_t shift)
{
    return tm_mbqm(x, mult, shift);
}

#if defined(__GNUC__)
#define TM_NOINLINE __attribute__((noinline))
#else
#define TM_NOINLINE
#endif

/* Callers pass a local copy of the layer's tm_requant_t: the compiler must
 * assume any int8 store may alias the const struct and would reload it. */
static inline int8_t requant(const tm_requant_t *rq, int32_t c, int32_t acc)
{
    const int32_t v = tm_mbqm(acc, rq->mult[c], rq->shift[c]) + rq->out_zp;
    return (int8_t)tm_clamp(v, rq->act_min, rq->act_max);
}

/* The same, out of line: for cold paths, which need not carry their own copy. */
static TM_NOINLINE int8_t requant_cold(const tm_requant_t *rq, int32_t c, int32_t acc)
{
    return requant(rq, c, acc);
}

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
static void dot_2x1(const int8_t *w0, const int8_t *w1, const int8_t *a, int32_t k, int32_t acc[2])
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

static int32_t dot_1x1(const int8_t *w, const int8_t *a, int32_t k, int32_t acc)
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

/*
 * All output channels for one or two contiguous k-byte columns: a, and b ==
 * a + k (or b == out_b == NULL for one). One function per weight encoding;
 * the conv and FC drivers below are shared and take it as a parameter.
 */
typedef void (*cols_fn)(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a,
                        int8_t *out_b);

static void dense_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a,
                       int8_t *out_b)
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
            out_a[c] = requant(&rq, c, acc[0]);
            out_b[c] = requant(&rq, c, acc[1]);
            out_a[c + 1] = requant(&rq, c + 1, acc[2]);
            out_b[c + 1] = requant(&rq, c + 1, acc[3]);
        } else {
            int32_t acc[2] = {bias[c], bias[c + 1]};
            dot_2x1(w, w + k, a, k, acc);
            out_a[c] = requant_cold(&rq, c, acc[0]);
            out_a[c + 1] = requant_cold(&rq, c + 1, acc[1]);
        }
    }
    if (c < cout) {
        out_a[c] = requant_cold(&rq, c, dot_1x1(w, a, k, bias[c]));
        if (b != NULL) {
            out_b[c] = requant_cold(&rq, c, dot_1x1(w, b, k, bias[c]));
        }
    }
}

/* Sparse weights: scalar multiply-accumulates over the nonzeros only. */
static void sparse_cols(const void *mm, const int8_t *a, const int8_t *b, int8_t *out_a,
                        int8_t *out_b)
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
            out_b[c] = requant(&rq, c, acc_b);
        } else {
            for (j = start[c]; j < end; j++) {
                acc_a += (int32_t)val[j] * a[idx[j]];
            }
        }
        out_a[c] = requant(&rq, c, acc_a);
    }
}

/* Receptive-field rows are a few bytes long: inline word moves beat a libc call. */
static inline void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        memcpy(dst, src, 4);
    }
    for (; n > 0; n--) {
        *dst++ = *src++;
    }
}

/* n > 0 and a multiple of 4. */
static inline void copy_words(int8_t *dst, const int8_t *src, int32_t n)
{
    const int8_t *end = src + n;
    do {
        memcpy(dst, src, 4);
        dst += 4;
        src += 4;
    } while (src != end);
}

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

/*
 * Output rows (or columns) [*lo, *hi) whose windows lie entirely inside the
 * input: o * stride >= pad and o * stride - pad + span <= size.
 */
static void interior(int32_t pad, int32_t stride, int32_t span, int32_t size, int32_t out,
                     int32_t *lo, int32_t *hi)
{
    const int32_t room = size + pad - span;
    int32_t l = (pad + stride - 1) / stride;
    int32_t h = room < 0 ? 0 : room / stride + 1;
    h = h < out ? h : out;
    *lo = l < h ? l : h;
    *hi = h;
}

/*
 * The [k_h][k_w][in_c] field of a window with top-left input pixel (iy0, ix0),
 * padded with the input zero point where it crosses the border: filled with
 * the zero point, then the rows and columns inside the input are copied in
 * (one run per row, or one per tap if dilated). No padded copy of the input is
 * made: convolutions send only border (and dilated) windows here, depthwise
 * ones only border windows.
 */
static void gather_border(const tm_window_t *g, const int8_t *in, int32_t iy0, int32_t ix0, int8_t *col)
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
    } else {  /* whole rows are copied: pad only the rows above and below */
        fill_bytes(col, zp, ky_lo * run);
        fill_bytes(col + ky_hi * run, zp, (g->k_h - ky_hi) * run);
    }
    if (rows == 0) {
        return;
    }
    src = in + ((iy0 + ky_lo * g->dil_h) * g->in_w + ix0 + kx_lo * g->dil_w) * c_n;
    dst = col + ky_lo * run + kx_lo * c_n;
    if (g->dil_w == 1) {  /* one run per row */
        const int32_t len = (kx_hi - kx_lo) * c_n;
        do {
            copy_bytes(dst, src, len);
            src += row_step;
            dst += run;
        } while (--rows);
        return;
    }
    do {  /* dilated columns: one run per tap */
        for (j = 0; j < kx_hi - kx_lo; j++) {
            copy_bytes(dst + j * c_n, src + j * tap_step, c_n);
        }
        src += row_step;
        dst += run;
    } while (--rows);
}

/* Per-layer constants of receptive-field gathering, hoisted out of the pixel loop. */
typedef struct {
    const tm_window_t *g;
    const int8_t *in;
    int32_t run;       /* bytes in a kernel row: k_w * in_c */
    int32_t row_step;  /* input bytes between kernel rows */
    int32_t y_lo, y_hi, x_lo, x_hi;  /* outputs whose windows need no padding */
} fields_t;

/*
 * The receptive field of output pixel (oy, ox) as a contiguous [k_h][k_w][in_c]
 * column in col: interior windows without column dilation are copied row by
 * row, the others padded by gather_border. Always copied, even when the window
 * is contiguous in the input already (one kernel row), so that a pixel pair's
 * columns are k bytes apart as dot_2x2 wants.
 */
static void gather(const fields_t *f, int32_t oy, int32_t ox, int8_t *col)
{
    const tm_window_t *g = f->g;
    const int32_t iy0 = oy * g->stride_h - g->pad_h, ix0 = ox * g->stride_w - g->pad_w;
    const int32_t run = f->run, row_step = f->row_step;
    const int8_t *src;
    int32_t rows = g->k_h;
    if (oy < f->y_lo || oy >= f->y_hi || ox < f->x_lo || ox >= f->x_hi || g->dil_w != 1) {
        gather_border(g, f->in, iy0, ix0, col);
        return;
    }
    src = f->in + (iy0 * g->in_w + ix0) * g->in_c;
    if ((run & 3) == 0) {
        do {
            copy_words(col, src, run);
            src += row_step;
            col += run;
        } while (--rows);
    } else {
        do {
            copy_bytes(col, src, run);
            src += row_step;
            col += run;
        } while (--rows);
    }
}

/*
 * Where a convolution's outputs go when it is fused with the FULLY_CONNECTED
 * layer it feeds: each pair of output pixels is computed into a small chunk and
 * at once multiplied into the FC's int32 accumulators, so the conv output
 * tensor never exists. The FC's input is the conv output in NHWC order, so
 * pixel i's channels are FC columns [i * cout, (i + 1) * cout); integer sums do
 * not depend on their order, so the FC gets exactly the sums it would get from
 * the whole tensor. Accumulators (and, for sparse weights, cursors) live in
 * scratch and are read and written with memcpy, the arena being an int8 array.
 */
typedef void (*accumulate_fn)(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state);

typedef struct {
    accumulate_fn accumulate;
    const void *mm;             /* the FC's weights: tm_matmul_t or tm_sparse_matmul_t */
    const tm_requant_t *rq;     /* the FC's requantisation (its input zero point folded in) */
    const int32_t *row_start;   /* sparse FC weights: where each row's cursor starts; else NULL */
    int32_t cout;               /* FC outputs */
} sink_t;

static int32_t load32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store32(int8_t *p, int32_t v) { memcpy(p, &v, sizeof v); }

/*
 * Unfused (sink == NULL): outputs go to out, scratch holds two k-byte columns.
 * Fused: out is the FC output; scratch holds the sink's state (4 * fc_cout
 * bytes, 8 * fc_cout with cursors), the two columns, then a 2 * cout chunk.
 */
static void conv_driver(const tm_window_t *g, int32_t k, int32_t cout, const void *mm, cols_fn cols,
                        const int8_t *in, int8_t *out, int8_t *scratch, const sink_t *sink)
{
    const int32_t w = g->out_w, n = g->out_h * w;
    int8_t *state = scratch, *dst = out;
    fields_t f;
    int32_t i, oy = 0, ox = 0;
    f.g = g;
    f.in = in;
    f.run = g->k_w * g->in_c;
    f.row_step = g->dil_h * g->in_w * g->in_c;
    interior(g->pad_h, g->stride_h, (g->k_h - 1) * g->dil_h + 1, g->in_h, g->out_h, &f.y_lo, &f.y_hi);
    interior(g->pad_w, g->stride_w, (g->k_w - 1) * g->dil_w + 1, g->in_w, g->out_w, &f.x_lo, &f.x_hi);
    if (sink != NULL) {
        for (i = 0; i < sink->cout; i++) {
            store32(state + 4 * i, sink->rq->bias[i]);
            if (sink->row_start != NULL) {
                store32(state + 4 * (sink->cout + i), sink->row_start[i]);
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
        out[i] = requant_cold(sink->rq, i, load32(state + 4 * i));
    }
}

void tm_conv2d_s8(const tm_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    conv_driver(&p->win, p->mm.k, p->mm.cout, &p->mm, dense_cols, in, out, scratch, NULL);
}

void tm_conv2d_sparse_s8(const tm_conv_sparse_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    conv_driver(&p->win, p->mm.k, p->mm.cout, &p->mm, sparse_cols, in, out, scratch, NULL);
}

static void fc_driver(int32_t rows, int32_t k, int32_t cout, const void *mm, cols_fn cols,
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
    fc_driver(p->rows, p->mm.k, p->mm.cout, &p->mm, dense_cols, in, out);
}

void tm_fully_connected_sparse_s8(const tm_fc_sparse_t *p, const int8_t *in, int8_t *out)
{
    fc_driver(p->rows, p->mm.k, p->mm.cout, &p->mm, sparse_cols, in, out);
}

/* Dense FC weights: state is cout int32 accumulators; x holds columns [base, base + n). */
static void dense_accumulate(const void *mm, int32_t base, int32_t n, const int8_t *x, int8_t *state)
{
    const tm_matmul_t *m = (const tm_matmul_t *)mm;
    const int32_t k = m->k, cout = m->cout;
    const int8_t *w = m->w + base;
    int32_t o;
    for (o = 0; o + 2 <= cout; o += 2, w += 2 * k, state += 8) {
        int32_t acc[2];
        acc[0] = load32(state);
        acc[1] = load32(state + 4);
        dot_2x1(w, w + k, x, n, acc);
        store32(state, acc[0]);
        store32(state + 4, acc[1]);
    }
    if (o < cout) {
        store32(state, dot_1x1(w, x, n, load32(state)));
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
        int32_t acc = load32(state + 4 * o), j = load32(state + 4 * (cout + o));
        for (; j < end && idx[j] < limit; j++) {
            acc += (int32_t)val[j] * x[idx[j] - base];
        }
        store32(state + 4 * o, acc);
        store32(state + 4 * (cout + o), j);
    }
}

void tm_conv2d_fc_s8_dd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_matmul_t *c = (const tm_matmul_t *)p->conv, *f = (const tm_matmul_t *)p->fc;
    const sink_t sink = {dense_accumulate, f, &f->rq, NULL, f->cout};
    conv_driver(&p->win, c->k, c->cout, c, dense_cols, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_ds(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_matmul_t *c = (const tm_matmul_t *)p->conv;
    const tm_sparse_matmul_t *f = (const tm_sparse_matmul_t *)p->fc;
    const sink_t sink = {sparse_accumulate, f, &f->rq, f->row_start, f->cout};
    conv_driver(&p->win, c->k, c->cout, c, dense_cols, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_sd(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_sparse_matmul_t *c = (const tm_sparse_matmul_t *)p->conv;
    const tm_matmul_t *f = (const tm_matmul_t *)p->fc;
    const sink_t sink = {dense_accumulate, f, &f->rq, NULL, f->cout};
    conv_driver(&p->win, c->k, c->cout, c, sparse_cols, in, out, scratch, &sink);
}

void tm_conv2d_fc_s8_ss(const tm_conv_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const tm_sparse_matmul_t *c = (const tm_sparse_matmul_t *)p->conv, *f = (const tm_sparse_matmul_t *)p->fc;
    const sink_t sink = {sparse_accumulate, f, &f->rq, f->row_start, f->cout};
    conv_driver(&p->win, c->k, c->cout, c, sparse_cols, in, out, scratch, &sink);
}

/* One output channel from its n nonzero taps: src[off[j]] is tap j's input byte. */
static inline int32_t taps_dot(const int8_t *val, const int32_t *off, int32_t n, const int8_t *src, int32_t acc)
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
    interior(g.pad_h, g.stride_h, (g.k_h - 1) * g.dil_h + 1, g.in_h, g.out_h, &y_lo, &y_hi);
    interior(g.pad_w, g.stride_w, (g.k_w - 1) * g.dil_w + 1, g.in_w, g.out_w, &x_lo, &x_hi);
    for (i = 0; i < fc_cout; i++) {
        store32(scratch + 4 * i, fc->rq.bias[i]);
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
                gather_border(&g, in, iy0, ix0, col);
                src = col;
                off = col_off;
            }
        }
        acc = taps_dot(cval + start[c], off + start[c], start[c + 1] - start[c], src, rq.bias[c]);
        x = requant(&rq, c, acc);
        for (m = *cnt++; m > 0; m--) {
            int8_t *a = scratch + 4 * *rows++;
            store32(a, load32(a) + (int32_t)*fval++ * x);
        }
    }
    for (i = 0; i < fc_cout; i++) {
        out[i] = requant_cold(&fc->rq, i, load32(scratch + 4 * i));
    }
}

/*
 * Four adjacent channels (depth multiplier 1) over all taps of one window:
 * channels are contiguous in NHWC and in the [tap][channel] weights, so one
 * word load serves four lanes. SXTB16 splits lanes (0,2) and (1,3) and
 * SMLABB/SMLATT multiply-accumulate each lane separately.
 */
static void dw_taps4(const int8_t *win, int32_t row_step, int32_t col_step, const int8_t *w,
                     int32_t w_step, int32_t k_h, int32_t k_w, int32_t acc[4])
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
                gather_border(&p->win, in, iy0, ix0, scratch);
                win = scratch;
                row_step = g.k_w * cin;
                col_step = cin;
            }
            for (c = 0; c < quads; c += 4) {
                int32_t acc[4] = {rq.bias[c], rq.bias[c + 1], rq.bias[c + 2], rq.bias[c + 3]};
                dw_taps4(win + c, row_step, col_step, p->w + c, cout, g.k_h, g.k_w, acc);
                out[c] = requant(&rq, c, acc[0]);
                out[c + 1] = requant(&rq, c + 1, acc[1]);
                out[c + 2] = requant(&rq, c + 2, acc[2]);
                out[c + 3] = requant(&rq, c + 3, acc[3]);
            }
            for (; c < cout; c++) {  /* output channel c reads input channel c / mult */
                out[c] = requant(&rq, c, dw_taps1(win + c / mult, row_step, col_step, p->w + c, cout,
                                                  g.k_h, g.k_w, rq.bias[c]));
            }
        }
    }
}

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

void tm_add_s8(const tm_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        const int32_t x1 = tm_shl(p->in1_offset + in1[i], p->left_shift);
        const int32_t x2 = tm_shl(p->in2_offset + in2[i], p->left_shift);
        /* Both scalings are MultiplyByQuantizedMultiplierSmallerThanOneExp,
         * which is tm_mbqm with a non-positive shift. */
        const int32_t sum = tm_mbqm(x1, p->in1_mult, p->in1_shift) +
                            tm_mbqm(x2, p->in2_mult, p->in2_shift);
        const int32_t v = tm_mbqm(sum, p->out_mult, p->out_shift) + p->out_zp;
        out[i] = (int8_t)tm_clamp(v, p->act_min, p->act_max);
    }
}
