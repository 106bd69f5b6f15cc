/* Integer kernels of rnnpool_lite.m4, in C: the same operations as m4.fixed_point / m4.kernels /
 * m4.rnnpool_int, value for value (TFLite Micro reference-kernel style, one function per op).
 *
 * Layout: maps are HWC int8 (channels innermost). Conv weights are [out][kh][kw][in / groups]
 * (depthwise: [kh][kw][channels * multiplier]); every int32 bias, multiplier and shift is per
 * output channel. A map is read through an rnn_view: a buffer holding the rows [row0, row0 + h)
 * and columns [col0, col0 + w) of a map of map_h x map_w; positions outside the map read as the
 * zero point (the zero padding of TFLite, and the crop padding of the patch schedule).
 */
#ifndef RNN_KERNELS_H
#define RNN_KERNELS_H

#include <stdint.h>

typedef struct {
    const int8_t *data;
    int32_t h, w, c;          /* buffer extent (rows, columns, channels) */
    int32_t row0, col0;       /* map coordinates of the buffer's first row / column */
    int32_t map_h, map_w;     /* the map; positions outside read as zp */
    int32_t zp;
} rnn_view;

/* Output region of a windowed op: map rows [row0, row0 + h), columns [col0, col0 + w) of a
 * map_h x map_w output, written to a buffer of h x w x c; positions outside the map get zp. */
typedef struct {
    int8_t *data;
    int32_t h, w, c;
    int32_t row0, col0;
    int32_t map_h, map_w;
    int32_t zp;
} rnn_region;

typedef struct {
    const int8_t *w;          /* [out][kh][kw][cin/groups], depthwise [kh][kw][out] */
    const int32_t *bias, *mult, *shift;
    int32_t out_c, kh, kw, sh, sw, pad_top, pad_left;
    int32_t depthwise;        /* 1: one input channel per group (multiplier out_c / in_c) */
    int32_t in_zp, out_zp, act_min, act_max;
} rnn_conv_params;

/* --- fixed point (m4.fixed_point), inline: they run once per output value --- */
#define RNN_INT32_MAX 2147483647
#define RNN_INT32_MIN (-RNN_INT32_MAX - 1)

static inline int32_t rnn_sat(int64_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : (int32_t)v); }

/* fixed_point.saturating_rounding_doubling_high_mul (gemmlowp): (a b + nudge) / 2^31, truncated. */
static inline int32_t rnn_srdhm(int32_t a, int32_t b) {
    if (a == RNN_INT32_MIN && b == RNN_INT32_MIN) return RNN_INT32_MAX;
    int64_t ab = (int64_t)a * b;
    ab += ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)(ab >= 0 ? ab >> 31 : (ab + 0x7FFFFFFF) >> 31);
}

/* fixed_point.rounding_divide_by_pot: x / 2^exponent rounded half away from zero. */
static inline int32_t rnn_rounding_divide_by_pot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold);
}

/* fixed_point.multiply_by_quantized_multiplier: saturating left shift, high mul, rounding right shift. */
static inline int32_t rnn_mbqm(int64_t x, int32_t mult, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int32_t shifted = rnn_sat(x * ((int64_t)1 << left), RNN_INT32_MIN, RNN_INT32_MAX);
    return rnn_rounding_divide_by_pot(rnn_srdhm(shifted, mult), right);
}

/* rnn_mbqm for an int32 x (the accumulators): the same value, no 64-bit shift when shift <= 0. */
static inline int32_t rnn_mbqm32(int32_t x, int32_t mult, int32_t shift) {
    if (shift > 0) return rnn_mbqm(x, mult, shift);
    return rnn_rounding_divide_by_pot(rnn_srdhm(x, mult), -shift);
}

/* kernels.requantize_acc: clamp(mbqm(acc) + zp, lo, hi). */
static inline int8_t rnn_requant(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
    return (int8_t)rnn_sat((int64_t)rnn_mbqm32(acc, mult, shift) + zp, lo, hi);
}


/* --- kernels (m4.kernels) --- */
void rnn_conv(const rnn_conv_params *p, const rnn_view *in, const rnn_region *out);
void rnn_pointwise(const rnn_conv_params *p, const int8_t *in, int32_t in_c, int32_t pixels, int8_t *out);
void rnn_head_conv(const rnn_conv_params *p, int32_t maxout, const rnn_view *in, const rnn_region *out);
void rnn_copy_crop(const rnn_view *in, const rnn_region *out);
void rnn_add(const int8_t *a, const int8_t *b, int8_t *out, int32_t n, const int32_t *q);
void rnn_clamp(const int8_t *in, int8_t *out, int32_t n, int32_t lo, int32_t hi);
void rnn_avg_pool_global(const int8_t *in, int8_t *out, int32_t pixels, int32_t c, int32_t zp);
void rnn_linear(const int8_t *in, int32_t k, const int8_t *w, const int32_t *bias, const int32_t *mult,
                const int32_t *shift, int32_t out_c, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi,
                int8_t *out);
void rnn_requantize(int8_t *x, int32_t n, int32_t in_zp, int32_t mult, int32_t shift, int32_t out_zp);

/* --- one inverted residual block, one output row at a time (m4.schedule.run_mbconv_rows) --- */
typedef struct {
    const rnn_conv_params *expand;  /* NULL: the block has no 1x1 expansion */
    const rnn_conv_params *dw, *project;
    const int32_t *add;             /* NULL or the 11 add parameters (rnn_add) */
    int32_t add_x_first;            /* 1: the add's first input is the block input */
    int32_t in_h, in_w, in_c, mid_c, out_h, out_w;
} rnn_mbconv_params;
void rnn_mbconv_rows(const rnn_mbconv_params *p, const int8_t *x, int8_t *ring, int8_t *dw_row, int8_t *out);

/* --- RNNPool with FastGRNN cells in Q15 (m4.rnnpool_int) --- */
typedef struct {
    const int8_t *w, *u;            /* [hidden][input], [hidden][hidden] */
    const int32_t *w_mult, *w_shift, *u_mult, *u_shift, *bias_gate, *bias_update;
    int32_t hidden, input, zeta, nu, state_bits;
} rnn_fastgrnn;

typedef struct {
    rnn_fastgrnn rnn1, rnn2;
    int32_t kh, kw, sh, sw, pad_top, pad_left;
    int32_t in_zp, out_mult, out_shift, out_zp;
} rnn_rnnpool_params;

/* Scratch bytes of rnn_rnnpool_patch: row and column summaries, RNN2 states, one int32 vector. */
int32_t rnn_rnnpool_scratch_bytes(const rnn_rnnpool_params *p);
/* One patch (output position oy, ox): 4 * hidden2 int8 values written to out. reuse_left nonzero
 * promises that scratch still holds what the previous call left there, for patch (oy, ox - 1): the
 * optimized kernel then takes the column summaries the two patches share (RNN1 down the kw - sw
 * columns they overlap in) from it instead of recomputing them. */
void rnn_rnnpool_patch(const rnn_rnnpool_params *p, const rnn_view *in, int32_t oy, int32_t ox, int32_t reuse_left,
                       void *scratch, int8_t *out);

#endif
