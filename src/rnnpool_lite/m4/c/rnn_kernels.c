/* Integer kernels of rnnpool_lite.m4 in C (see rnn_kernels.h).
 *
 * Two implementations of the conv, pointwise, depthwise and RNNPool kernels: the reference loops
 * (each names the Python function it mirrors; the arithmetic is the same operation for operation),
 * selected with -DRNN_KERNELS_REFERENCE, and by default the optimized kernels further down, which
 * compute the same integers with CMSIS-NN's techniques (SMLAD on the Cortex-M4). */
#include "rnn_kernels.h"

/* ===== reference kernels ========================================================================= */

/* kernels.conv2d on a window: regular or depthwise, zero-point padding by bounds checks. */
static void conv_reference(const rnn_conv_params *p, const rnn_view *in, const rnn_region *out) {
    const int32_t cin = in->c, cout = p->out_c, mult = p->depthwise ? cout / cin : 1;
    for (int32_t oy = 0; oy < out->h; oy++) {
        const int32_t y = out->row0 + oy;
        for (int32_t ox = 0; ox < out->w; ox++) {
            const int32_t x = out->col0 + ox;
            int8_t *dst = out->data + (oy * out->w + ox) * cout;
            if (y < 0 || y >= out->map_h || x < 0 || x >= out->map_w) {
                for (int32_t o = 0; o < cout; o++) dst[o] = (int8_t)out->zp;
                continue;
            }
            const int32_t iy0 = y * p->sh - p->pad_top, ix0 = x * p->sw - p->pad_left;
            const int32_t ky0 = iy0 < 0 ? -iy0 : 0, kx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t ky1 = iy0 + p->kh > in->map_h ? in->map_h - iy0 : p->kh;
            const int32_t kx1 = ix0 + p->kw > in->map_w ? in->map_w - ix0 : p->kw;
            const int8_t *origin = in->data + ((iy0 - in->row0) * in->w + (ix0 - in->col0)) * cin;
            for (int32_t o = 0; o < cout; o++) {
                int32_t acc = p->bias[o];
                if (p->depthwise) {
                    const int32_t ci = o / mult;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *row = origin + ky * in->w * cin;
                        const int8_t *w = p->w + ky * p->kw * cout + o;
                        for (int32_t kx = kx0; kx < kx1; kx++) acc += w[kx * cout] * (row[kx * cin + ci] - p->in_zp);
                    }
                } else {
                    /* the valid taps of one kernel row are contiguous in HWC input and [o][ky][kx][c] weights */
                    const int32_t n = (kx1 - kx0) * cin;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *row = origin + (ky * in->w + kx0) * cin;
                        const int8_t *w = p->w + ((o * p->kh + ky) * p->kw + kx0) * cin;
                        for (int32_t i = 0; i < n; i++) acc += w[i] * (row[i] - p->in_zp);
                    }
                }
                dst[o] = rnn_requant(acc, p->mult[o], p->shift[o], p->out_zp, p->act_min, p->act_max);
            }
        }
    }
}

#if defined(RNN_KERNELS_REFERENCE) /* the optimized build has its own (no fallback needed) */
/* kernels.conv2d with a 1x1 kernel, stride 1: one dot product per pixel and output channel.
 * The zero point is folded out of the loop: sum w (x - zp) = sum w x - zp sum w (exact in int32). */
static void pointwise_reference(const rnn_conv_params *p, const int8_t *in, int32_t in_c, int32_t pixels, int8_t *out) {
    const int32_t cout = p->out_c;
    for (int32_t i = 0; i < pixels; i++, in += in_c, out += cout) {
        for (int32_t o = 0; o < cout; o++) {
            const int8_t *w = p->w + o * in_c;
            int32_t acc = 0, wsum = 0;
            for (int32_t c = 0; c < in_c; c++) { acc += w[c] * in[c]; wsum += w[c]; }
            acc += p->bias[o] - p->in_zp * wsum;
            out[o] = rnn_requant(acc, p->mult[o], p->shift[o], p->out_zp, p->act_min, p->act_max);
        }
    }
}

/* schedule.run_mbconv_rows' depthwise step: one output row; rows[ky] is the full-width input row of
 * tap row ky, NULL outside the map. */
static void depthwise_row_reference(const rnn_conv_params *dw, const int8_t *const *rows, int32_t in_w, int32_t mid,
                                    int32_t out_w, int8_t *dw_row) {
    for (int32_t ox = 0; ox < out_w; ox++) {
        const int32_t ix0 = ox * dw->sw - dw->pad_left;
        for (int32_t ch = 0; ch < mid; ch++) {
            int32_t acc = dw->bias[ch];
            for (int32_t ky = 0; ky < dw->kh; ky++) {
                const int8_t *row = rows[ky];
                if (row == 0) continue;
                for (int32_t kx = 0; kx < dw->kw; kx++) {
                    const int32_t ix = ix0 + kx;
                    if (ix < 0 || ix >= in_w) continue;
                    acc += dw->w[(ky * dw->kw + kx) * mid + ch] * (row[ix * mid + ch] - dw->in_zp);
                }
            }
            dw_row[ox * mid + ch] = rnn_requant(acc, dw->mult[ch], dw->shift[ch], dw->out_zp, dw->act_min,
                                                dw->act_max);
        }
    }
}

#endif

/* --- RNNPool (rnnpool_int.IntRNNPool) ---------------------------------------------------- */

static inline int64_t rrs(int64_t x, int32_t shift) { return (x + ((int64_t)1 << (shift - 1))) >> shift; }

/* One FastGRNN step (IntFastGRNN.project + one iteration of IntFastGRNN.scan) on state h, in
 * place. Input: int8 pixel x8 (minus zp; NULL = a padding pixel, whose projection is 0) or
 * int16 summary x16. pre: int32 scratch of `hidden` values. */
static void fastgrnn_step(const rnn_fastgrnn *g, const int8_t *x8, const int16_t *x16, int32_t zp, int16_t *h,
                          int first, int32_t *pre) {
    const int32_t hid = g->hidden, in = g->input;
    for (int32_t i = 0; i < hid; i++) { /* U h with the old state, before any unit changes */
        int32_t acc = 0;
        if (!first) {
            const int8_t *u = g->u + i * hid;
            for (int32_t j = 0; j < hid; j++) acc += u[j] * h[j];
            acc = rnn_mbqm32(acc, g->u_mult[i], g->u_shift[i]);
        }
        pre[i] = acc;
    }
    for (int32_t i = 0; i < hid; i++) {
        int32_t acc = 0;
        const int8_t *w = g->w + i * in;
        if (x8 != 0) {
            for (int32_t j = 0; j < in; j++) acc += w[j] * (x8[j] - zp);
        } else if (x16 != 0) {
            for (int32_t j = 0; j < in; j++) acc += w[j] * x16[j];
        }
        const int64_t v = (int64_t)rnn_mbqm32(acc, g->w_mult[i], g->w_shift[i]) + pre[i];
        const int32_t z_pre = rnn_sat(v + g->bias_gate[i], -32768, 32767);
        const int32_t c = rnn_sat(v + g->bias_update[i], -32768, 32767); /* quantTanh */
        const int32_t z = (z_pre + 32768 + 1) >> 1;                  /* quantSigmoid, Q15 */
        const int64_t coef = rrs((int64_t)g->zeta * (32768 - z), 15) + g->nu;
        const int32_t zh = z * h[i]; /* |z h| < 2^30: int32 */
        const int64_t next = rrs(coef * c, 15 + g->state_bits) + ((zh + (1 << 14)) >> 15);
        h[i] = (int16_t)rnn_sat(next, -32768, 32767);
    }
}

int32_t rnn_rnnpool_scratch_bytes(const rnn_rnnpool_params *p) {
    const int32_t h1 = p->rnn1.hidden, h2 = p->rnn2.hidden, hmax = h1 > h2 ? h1 : h2;
    const int32_t shorts = (p->kh + p->kw) * h1 + 4 * h2;
    return ((2 * shorts + 3) & ~3) + 4 * hmax;
}

static void rnnpool_patch_reference(const rnn_rnnpool_params *p, const rnn_view *in, int32_t oy, int32_t ox,
                                    void *scratch, int8_t *out) {
    const int32_t h1 = p->rnn1.hidden, h2 = p->rnn2.hidden, kh = p->kh, kw = p->kw;
    int16_t *rows = (int16_t *)scratch, *cols = rows + kh * h1, *states = cols + kw * h1;
    int32_t *pre = (int32_t *)((char *)scratch + ((2 * ((kh + kw) * h1 + 4 * h2) + 3) & ~3));
    const int32_t y0 = oy * p->sh - p->pad_top, x0 = ox * p->sw - p->pad_left;
#define PIXEL(y, x) ((y) < 0 || (y) >= in->map_h || (x) < 0 || (x) >= in->map_w ? (const int8_t *)0 \
    : in->data + (((y) - in->row0) * in->w + ((x) - in->col0)) * in->c)
    for (int32_t r = 0; r < kh; r++) { /* RNN1 along each row */
        int16_t *h = rows + r * h1;
        for (int32_t i = 0; i < h1; i++) h[i] = 0;
        for (int32_t t = 0; t < kw; t++) fastgrnn_step(&p->rnn1, PIXEL(y0 + r, x0 + t), 0, p->in_zp, h, t == 0, pre);
    }
    for (int32_t c = 0; c < kw; c++) { /* RNN1 down each column */
        int16_t *h = cols + c * h1;
        for (int32_t i = 0; i < h1; i++) h[i] = 0;
        for (int32_t t = 0; t < kh; t++) fastgrnn_step(&p->rnn1, PIXEL(y0 + t, x0 + c), 0, p->in_zp, h, t == 0, pre);
    }
#undef PIXEL
    /* RNN2: rows forward, rows backward, columns forward, columns backward */
    for (int32_t s = 0; s < 4; s++) {
        const int16_t *seq = s < 2 ? rows : cols;
        const int32_t steps = s < 2 ? kh : kw;
        int16_t *h = states + s * h2;
        for (int32_t i = 0; i < h2; i++) h[i] = 0;
        for (int32_t t = 0; t < steps; t++) {
            const int32_t k = (s & 1) ? steps - 1 - t : t;
            fastgrnn_step(&p->rnn2, 0, seq + k * h1, 0, h, t == 0, pre);
        }
    }
    for (int32_t i = 0; i < 4 * h2; i++)
        out[i] = rnn_requant(states[i], p->out_mult, p->out_shift, p->out_zp, -128, 127);
}

/* ===================================================================================================
 * Optimized kernels (the default; -DRNN_KERNELS_REFERENCE builds the reference loops above instead).
 * CMSIS-NN's techniques, bit-exact with the reference (int32 sums are the same sums in another order):
 * - q7 -> q15 widening with SXTB16: one 32-bit load of 4 int8 gives (x0, x2) and, rotated by 8,
 *   (x1, x3). Activations are widened once into a small q15 buffer in that "paired" order (each
 *   group of 4 stored as x0 x2 x1 x3), so a weight word widened the same way lines up lane for lane
 *   and one SMLAD does two multiply-accumulates.
 * - Register blocking: one output channel for four pixels (a widened weight word serves 8 SMLADs),
 *   or 2 x 2 (two channels x two pixels); FastGRNN's 16-wide products keep the state vector in
 *   registers for all rows of U.
 * - The input zero point is subtracted once per activation while widening (SSUB16), so padding is
 *   a q15 zero and no sum of weights is needed.
 * - Requantization once per output value, after the MAC loops, with one 32-bit SMMULR where the
 *   accumulator's range allows it (else the reference's 64-bit arithmetic).
 * The ACLE intrinsics (arm_acle.h) are used where the target has the DSP extension; elsewhere (the
 * host build) portable C computes the same lanes, so the host runs the same blocked code.
 * =================================================================================================== */
#if !defined(RNN_KERNELS_REFERENCE)

/* Two 16-bit lanes in a word (PKHBT on the Cortex-M4). */
static inline uint32_t rnn_pack16(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }
#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
static inline uint32_t rnn_sxtb16(uint32_t x) { return __sxtb16(x); }
/* SXTB16 of the word rotated right by 8 (GCC's arm_acle.h has no __ror to fold into it). */
static inline uint32_t rnn_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline int32_t rnn_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad(a, b, acc); }
static inline int32_t rnn_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
static inline int32_t rnn_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
static inline uint32_t rnn_ssub16(uint32_t a, uint32_t b) { return __ssub16(a, b); }
/* (a b + 2^31) >> 32 (SMMULR has no ACLE intrinsic) */
static inline int32_t rnn_smmulr(int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t rnn_ssat16(int32_t v) { return __ssat(v, 16); }
static inline int32_t rnn_usat16(int32_t v) { return (int32_t)__usat(v, 16); }
/* Hides a pointer's value from the optimizer: loads through it are not hoisted out of a loop (and spilled). */
#define RNN_OPAQUE(p) __asm__("" : "+r"(p))
static inline uint32_t rnn_sadd16(uint32_t a, uint32_t b) { return __sadd16(a, b); }
#else
static inline int32_t rnn_lo16(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t rnn_hi16(uint32_t x) { return (int16_t)(x >> 16); }
static inline uint32_t rnn_sxtb16(uint32_t x) { return rnn_pack16((int8_t)(x & 0xFFu), (int8_t)((x >> 16) & 0xFFu)); }
static inline uint32_t rnn_sxtb16_ror8(uint32_t x) { return rnn_sxtb16((x >> 8) | (x << 24)); }
static inline int32_t rnn_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(rnn_lo16(a) * rnn_lo16(b)) + (uint32_t)(rnn_hi16(a) * rnn_hi16(b)));
}
static inline int32_t rnn_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(rnn_lo16(a) * rnn_lo16(b)));
}
static inline int32_t rnn_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(rnn_hi16(a) * rnn_hi16(b)));
}
static inline uint32_t rnn_ssub16(uint32_t a, uint32_t b) {
    return rnn_pack16(rnn_lo16(a) - rnn_lo16(b), rnn_hi16(a) - rnn_hi16(b));
}
static inline int32_t rnn_smmulr(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32); }
static inline int32_t rnn_ssat16(int32_t v) { return v < -32768 ? -32768 : (v > 32767 ? 32767 : v); }
static inline int32_t rnn_usat16(int32_t v) { return v < 0 ? 0 : (v > 65535 ? 65535 : v); }
#define RNN_OPAQUE(p) ((void)(p))
static inline uint32_t rnn_sadd16(uint32_t a, uint32_t b) {
    return rnn_pack16(rnn_lo16(a) + rnn_lo16(b), rnn_hi16(a) + rnn_hi16(b));
}
#endif

static inline uint32_t rnn_read32(const void *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
static inline void rnn_write32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

/* Position of element i of an n-vector in the paired layout (x0 x2 x1 x3 per full group of 4). */
static inline int32_t rnn_paired(int32_t i, int32_t n) {
    return i < (n & ~3) ? (i & ~3) | ((i & 1) << 1) | ((i >> 1) & 1) : i;
}

/* rnn_mbqm32 for |x| < 2^29 and -28 <= shift <= 0. srdhm(x, m) = (x m + 2^30) >> 31 (gemmlowp's
 * nudge and truncation toward zero come to this floor), which is SMMULR(2 x, m); rounding v half
 * away from zero by 2^r equals rounding 2 v by 2^(r + 1): (2 v + 2^r - (v < 0)) >> (r + 1). */
static inline int32_t rnn_mbqm_small(int32_t x, int32_t mult, int32_t shift) {
    const int32_t v = rnn_smmulr(x * 2, mult);
    return (v * 2 + (1 << -shift) + (v >> 31)) >> (1 - shift);
}

/* rnn_mbqm32, exactly: the small path where it applies, the reference's arithmetic elsewhere. */
static inline int32_t rnn_mbqm_fast(int32_t x, int32_t mult, int32_t shift) {
    if ((uint32_t)(shift + 28) <= 28u && (uint32_t)(x + (1 << 29)) < (1u << 30)) return rnn_mbqm_small(x, mult, shift);
    return rnn_mbqm32(x, mult, shift);
}

/* One output channel's requantization (kernels.requantize_acc), held in registers for its pixels. */
static inline int8_t rnn_rq(int32_t acc, int32_t mult, int32_t shift, int32_t zp, int32_t lo, int32_t hi) {
    const int32_t v = rnn_mbqm_fast(acc, mult, shift) + zp;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* n int8 values minus zp (NULL: n zeros, the padding) as q15 in the paired layout. */
static void rnn_widen(const int8_t *x, int32_t n, int32_t zp, int16_t *dst) {
    const int32_t n4 = n & ~3;
    int32_t i = 0;
    if (x == 0) {
        for (; i < n; i++) dst[i] = 0;
        return;
    }
    const uint32_t zp2 = ((uint32_t)zp & 0xFFFFu) * 0x10001u;
    for (; i < n4; i += 4) {
        const uint32_t v = rnn_read32(x + i);
        rnn_write32(dst + i, rnn_ssub16(rnn_sxtb16(v), zp2));
        rnn_write32(dst + i + 2, rnn_ssub16(rnn_sxtb16_ror8(v), zp2));
    }
    for (; i < n; i++) dst[i] = (int16_t)(x[i] - zp);
}

/* 2 x (n int8 weights) as q15 in the paired layout: products with them come out doubled, which is
 * the input SMMULR wants for a Q31 multiplier (rnn_mbqm_small's x * 2), one shift fewer per value. */
static void rnn_widen_doubled(const int8_t *w, int32_t n, int16_t *dst) {
    const int32_t n4 = n & ~3;
    int32_t i = 0;
    for (; i < n4; i += 4) {
        const uint32_t v = rnn_read32(w + i), e = rnn_sxtb16(v), o = rnn_sxtb16_ror8(v);
        rnn_write32(dst + i, rnn_sadd16(e, e));
        rnn_write32(dst + i + 2, rnn_sadd16(o, o));
    }
    for (; i < n; i++) dst[i] = (int16_t)(2 * w[i]);
}

/* Dot products of int8 rows, n wide, with one or two q15 vectors in the paired layout (the second
 * at x + n): acc[v rows + i] = init_i + sum_j m[i][j] x[v n + j], init = bias[i] (0 when NULL).
 * Two rows times two vectors per pass (2 x 2 blocking): per 4 columns, 2 weight loads widened by
 * 4 SXTB16 and 4 activation loads feed 8 SMLADs (16 multiply-accumulates). */
static void rnn_matvec_q15(const int8_t *m, int32_t rows, int32_t n, const int32_t *bias, const int16_t *x,
                           int32_t nvec, int32_t *acc) {
    int32_t i = 0;
    if (nvec == 2 && (n & 3) == 0 && n > 0) {
        const int32_t odd = n & 4; /* one group of 4 before the pairs of groups */
        const int8_t *m0 = m;
        int32_t *out_a = acc, *out_b = acc + rows;
        for (; i + 2 <= rows; i += 2, m0 += n, out_a += 2, out_b += 2) { /* m0 ends a row on */
            const int8_t *end = m0 + n;
            const int16_t *pa = x, *pb = x + n;
            int32_t a0 = bias ? bias[i] : 0, a1 = bias ? bias[i + 1] : 0, b0 = a0, b1 = a1;
#define RNN_GROUP(o)                                                                                     \
    do {                                                                                                  \
        const uint32_t xa_e = rnn_read32(pa + (o)), xa_o = rnn_read32(pa + (o) + 2);                      \
        const uint32_t xb_e = rnn_read32(pb + (o)), xb_o = rnn_read32(pb + (o) + 2);                      \
        uint32_t w = rnn_read32(m0 + (o)), w_e = rnn_sxtb16(w), w_o = rnn_sxtb16_ror8(w);                 \
        a0 = rnn_smlad(w_e, xa_e, a0);                                                                    \
        a0 = rnn_smlad(w_o, xa_o, a0);                                                                    \
        b0 = rnn_smlad(w_e, xb_e, b0);                                                                    \
        b0 = rnn_smlad(w_o, xb_o, b0);                                                                    \
        w = rnn_read32(m0 + n + (o));                                                                     \
        w_e = rnn_sxtb16(w);                                                                              \
        w_o = rnn_sxtb16_ror8(w);                                                                         \
        a1 = rnn_smlad(w_e, xa_e, a1);                                                                    \
        a1 = rnn_smlad(w_o, xa_o, a1);                                                                    \
        b1 = rnn_smlad(w_e, xb_e, b1);                                                                    \
        b1 = rnn_smlad(w_o, xb_o, b1);                                                                    \
    } while (0)
            if (odd) {
                RNN_GROUP(0);
                m0 += 4;
                pa += 4;
                pb += 4;
            }
            while (m0 != end) {
                RNN_GROUP(0);
                RNN_GROUP(4);
                m0 += 8;
                pa += 8;
                pb += 8;
            }
#undef RNN_GROUP
            out_a[0] = a0;
            out_a[1] = a1;
            out_b[0] = b0;
            out_b[1] = b1;
        }
    }
    const int32_t n4 = n & ~3;
    for (; i < rows; i++) { /* the general case: one row at a time, a scalar tail */
        const int8_t *m0 = m + i * n;
        for (int32_t v = 0; v < nvec; v++) {
            const int16_t *xv = x + v * n;
            int32_t a0 = bias ? bias[i] : 0;
            int32_t j = 0;
            for (; j < n4; j += 4) {
                const uint32_t w = rnn_read32(m0 + j);
                a0 = rnn_smlad(rnn_sxtb16(w), rnn_read32(xv + j), a0);
                a0 = rnn_smlad(rnn_sxtb16_ror8(w), rnn_read32(xv + j + 2), a0);
            }
            for (; j < n; j++) a0 += m0[j] * xv[j];
            acc[v * rows + i] = a0;
        }
    }
}

/* The same product with q15 weights (rows widened once into the paired layout, n apart): two rows
 * times two vectors per pass, one SMLAD per weight word and vector word (no widening in the loop). */
static void rnn_matvec_q15q15(const int16_t *wq, int32_t rows, int32_t n, const int16_t *x, int32_t nvec, int32_t *acc) {
    const int32_t words = n >> 1;
    if (n == 16) { /* FastGRNN's common width: the vector's 8 words stay in registers, 8 SMLADs a row */
        for (int32_t v = 0; v < nvec; v++, x += 16, acc += rows) {
            const uint32_t x0 = rnn_read32(x), x1 = rnn_read32(x + 2), x2 = rnn_read32(x + 4), x3 = rnn_read32(x + 6);
            const uint32_t x4 = rnn_read32(x + 8), x5 = rnn_read32(x + 10), x6 = rnn_read32(x + 12);
            const uint32_t x7 = rnn_read32(x + 14);
            const int16_t *w = wq;
            for (int32_t i = 0; i < rows; i++, w += 16) {
                int32_t a = rnn_smlad(rnn_read32(w), x0, 0);
                a = rnn_smlad(rnn_read32(w + 2), x1, a);
                a = rnn_smlad(rnn_read32(w + 4), x2, a);
                a = rnn_smlad(rnn_read32(w + 6), x3, a);
                a = rnn_smlad(rnn_read32(w + 8), x4, a);
                a = rnn_smlad(rnn_read32(w + 10), x5, a);
                a = rnn_smlad(rnn_read32(w + 12), x6, a);
                acc[i] = rnn_smlad(rnn_read32(w + 14), x7, a);
            }
        }
        return;
    }
    if (n == 4 && nvec == 2) { /* a 4-channel input (RNN1 on a small stem): both vectors in registers */
        const uint32_t a0 = rnn_read32(x), a1 = rnn_read32(x + 2), b0 = rnn_read32(x + 4), b1 = rnn_read32(x + 6);
        for (int32_t i = 0; i < rows; i++, wq += 4) {
            const uint32_t w0 = rnn_read32(wq), w1 = rnn_read32(wq + 2);
            acc[i] = rnn_smlad(w1, a1, rnn_smlad(w0, a0, 0));
            acc[rows + i] = rnn_smlad(w1, b1, rnn_smlad(w0, b0, 0));
        }
        return;
    }
    const int16_t *xb = x + n;
    int32_t i = 0;
    if (nvec == 2) {
        for (; i + 2 <= rows; i += 2) {
            const int16_t *w0 = wq + i * n, *w1 = w0 + n;
            int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
for (int32_t j = 0; j < words; j++) {
                const uint32_t u0 = rnn_read32(w0 + 2 * j), u1 = rnn_read32(w1 + 2 * j);
                const uint32_t xa = rnn_read32(x + 2 * j), xv = rnn_read32(xb + 2 * j);
                a0 = rnn_smlad(u0, xa, a0);
                b0 = rnn_smlad(u0, xv, b0);
                a1 = rnn_smlad(u1, xa, a1);
                b1 = rnn_smlad(u1, xv, b1);
            }
            if (n & 1) {
                a0 += w0[n - 1] * x[n - 1];
                b0 += w0[n - 1] * xb[n - 1];
                a1 += w1[n - 1] * x[n - 1];
                b1 += w1[n - 1] * xb[n - 1];
            }
            acc[i] = a0;
            acc[i + 1] = a1;
            acc[rows + i] = b0;
            acc[rows + i + 1] = b1;
        }
    }
    for (; i < rows; i++) {
        const int16_t *w0 = wq + i * n;
        for (int32_t v = 0; v < nvec; v++) {
            const int16_t *xv = x + v * n;
            int32_t a0 = 0;
            for (int32_t j = 0; j < words; j++) a0 = rnn_smlad(rnn_read32(w0 + 2 * j), rnn_read32(xv + 2 * j), a0);
            if (n & 1) a0 += w0[n - 1] * xv[n - 1];
            acc[v * rows + i] = a0;
        }
    }
}

/* Requantize the accumulators acc[v cout + o] of `count` (1 or 2) pixels into HWC int8 dst[v cout + o]. */
static void rnn_store_pixels(const rnn_conv_params *p, int32_t cout, const int32_t *acc, int32_t count, int8_t *dst) {
    const int32_t *mult = p->mult, *shift = p->shift;
    const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max;
    if (count == 2) {
        for (int32_t o = 0; o < cout; o++) {
            const int32_t m = mult[o], s = shift[o];
            dst[o] = rnn_rq(acc[o], m, s, zp, lo, hi);
            dst[cout + o] = rnn_rq(acc[cout + o], m, s, zp, lo, hi);
        }
    } else {
        for (int32_t o = 0; o < cout; o++) dst[o] = rnn_rq(acc[o], mult[o], shift[o], zp, lo, hi);
    }
}

/* im2col of one output position (y, x) of a regular conv: the kh x kw x cin window minus the zero
 * point, then zeros up to n (>= kh kw cin). With cin a multiple of 4, in the paired layout (each
 * tap's groups of 4); otherwise in natural order, for weights copied in paired order (see
 * conv_weights_paired). */
static void rnn_im2col(const rnn_conv_params *p, const rnn_view *in, int32_t y, int32_t x, int32_t n, int16_t *col) {
    const int32_t cin = in->c, iy0 = y * p->sh - p->pad_top, ix0 = x * p->sw - p->pad_left, zp = p->in_zp;
    const int32_t kh = p->kh, kw = p->kw;
    if ((cin & 3) == 0) { /* whole groups of 4 per tap: each tap widened in its own paired layout */
        for (int32_t ky = 0; ky < kh; ky++) {
            const int32_t iy = iy0 + ky;
            for (int32_t kx = 0; kx < kw; kx++, col += cin) {
                const int32_t ix = ix0 + kx;
                rnn_widen(iy < 0 || iy >= in->map_h || ix < 0 || ix >= in->map_w ? (const int8_t *)0
                          : in->data + ((iy - in->row0) * in->w + (ix - in->col0)) * cin, cin, zp, col);
            }
        }
        return;
    }
    /* a few channels (a first layer): natural order, matched by weights copied in paired order */
    const int16_t *end = col + n;
    const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + kw > in->map_w ? in->map_w - ix0 : kw;
    const int32_t skip_left = (kx0 < kw ? kx0 : kw) * cin, skip_right = (kw - (kx1 > kx0 ? kx1 : kx0)) * cin;
    for (int32_t ky = 0; ky < kh; ky++) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= in->map_h || kx1 <= kx0) {
            for (int32_t j = 0; j < kw * cin; j++) *col++ = 0;
            continue;
        }
        const int8_t *px = in->data + ((iy - in->row0) * in->w + (ix0 + kx0 - in->col0)) * cin;
        const int8_t *stop = px + (kx1 - kx0) * cin;
        for (int32_t j = 0; j < skip_left; j++) *col++ = 0;
        while (px < stop) *col++ = (int16_t)(*px++ - zp);
        for (int32_t j = 0; j < skip_right; j++) *col++ = 0;
    }
    while (col < end) *col++ = 0;
}

/* Largest im2col column (int16 values) kept on the stack; wider windows run the reference loop. */
#define RNN_IM2COL_MAX 1152
/* Largest conv weight tensor whose rows are copied, padded to a multiple of 4, onto the stack. */
#define RNN_PADDED_WEIGHTS_MAX 1024

/* Four pixels of in_c channels (a multiple of 4) minus zp, widened and interleaved: for each group of
 * 4 channels, 8 words (x0, x2), (x1, x3) of pixel 0, then of pixels 1, 2, 3. */
static void rnn_widen4(const int8_t *in, int32_t in_c, int32_t zp, uint32_t *col) {
    const uint32_t zp2 = ((uint32_t)zp & 0xFFFFu) * 0x10001u;
    for (int32_t v = 0; v < 4; v++, in += in_c) {
        uint32_t *d = col + 2 * v;
        for (int32_t g = 0; g < in_c; g += 4, d += 8) {
            const uint32_t x = rnn_read32(in + g);
            d[0] = rnn_ssub16(rnn_sxtb16(x), zp2);
            d[1] = rnn_ssub16(rnn_sxtb16_ror8(x), zp2);
        }
    }
}

/* Four pixels of a conv from their interleaved columns (k values each, k a multiple of 4; weights w,
 * rows k apart): one output channel at a time, each weight word widened once (2 SXTB16) and used
 * by 8 SMLADs, 4 pixels x 4 values. */
static void rnn_dot_4px(const rnn_conv_params *p, const int8_t *w, int32_t k, const uint32_t *col, int8_t *out) {
    const int32_t cout = p->out_c, zp = p->out_zp, lo = p->act_min, hi = p->act_max;
    const int32_t *bias = p->bias, *mult = p->mult, *shift = p->shift;
    for (int32_t o = 0; o < cout; o++, w += k) {
        int32_t a0 = bias[o], a1 = a0, a2 = a0, a3 = a0;
        const uint32_t *c = col;
        const int8_t *wp = w, *end = w + k;
        do {
            const uint32_t wv = rnn_read32(wp), w_e = rnn_sxtb16(wv), w_o = rnn_sxtb16_ror8(wv);
            a0 = rnn_smlad(w_e, c[0], a0);
            a0 = rnn_smlad(w_o, c[1], a0);
            a1 = rnn_smlad(w_e, c[2], a1);
            a1 = rnn_smlad(w_o, c[3], a1);
            a2 = rnn_smlad(w_e, c[4], a2);
            a2 = rnn_smlad(w_o, c[5], a2);
            a3 = rnn_smlad(w_e, c[6], a3);
            a3 = rnn_smlad(w_o, c[7], a3);
            wp += 4;
            c += 8;
        } while (wp != end);
        const int32_t m = mult[o], s = shift[o];
        out[o] = rnn_rq(a0, m, s, zp, lo, hi);
        out[cout + o] = rnn_rq(a1, m, s, zp, lo, hi);
        out[2 * cout + o] = rnn_rq(a2, m, s, zp, lo, hi);
        out[3 * cout + o] = rnn_rq(a3, m, s, zp, lo, hi);
    }
}

/* Conv weights [out][k] copied with rows padded to k4 (a multiple of 4) and each group of 4 stored
 * as w0 w2 w1 w3: SXTB16 then gives (w0, w1) and, rotated, (w2, w3), the natural order of the
 * im2col column of a layer with few channels. */
static void conv_weights_paired(const int8_t *w, int32_t cout, int32_t k, int32_t k4, int8_t *dst) {
    for (int32_t o = 0; o < cout; o++)
        for (int32_t j = 0; j < k4; j++) {
            const int32_t src = (j & ~3) + ((0x3120 >> 4 * (j & 3)) & 3); /* the order is its own inverse */
            dst[o * k4 + j] = (int8_t)(src < k ? w[o * k + src] : 0);
        }
}

/* A regular conv on the output positions (y, x0 .. x0 + n - 1), all inside the output map, with the
 * weights w (rows kk apart, kk a multiple of 4 or the reference layout's k): four im2col columns at a
 * time, interleaved for rnn_dot_4px, then the rest two at a time with 2 x 2 blocked dot products. */
static inline __attribute__((always_inline)) void conv_fast_span(const rnn_conv_params *p, const rnn_view *in,
                                                                  int32_t y, int32_t x0, int32_t n, int8_t *dst,
                                                                  const int8_t *w, int32_t kk) {
    const int32_t cout = p->out_c;
    int16_t col[2 * kk];
    int32_t i = 0;
    if ((kk & 3) == 0 && n >= 4) {
        uint32_t col4[2 * kk];
        for (; i + 4 <= n; i += 4) {
            for (int32_t v = 0; v < 4; v++) {
                rnn_im2col(p, in, y, x0 + i + v, kk, col);
                for (int32_t g = 0; g < kk; g += 4) {
                    col4[2 * g + 2 * v] = rnn_read32(col + g);
                    col4[2 * g + 2 * v + 1] = rnn_read32(col + g + 2);
                }
            }
            rnn_dot_4px(p, w, kk, col4, dst + i * cout);
        }
    }
    int32_t acc[2 * cout];
    for (; i < n; i += 2) {
        const int32_t count = n - i < 2 ? 1 : 2;
        rnn_im2col(p, in, y, x0 + i, kk, col);
        if (count == 2) rnn_im2col(p, in, y, x0 + i + 1, kk, col + kk);
        rnn_matvec_q15(w, cout, kk, p->bias, col, count, acc);
        rnn_store_pixels(p, cout, acc, count, dst + i * cout);
    }
}

/* Per channel, the sum of a depthwise conv's weights over all its taps (for the zero point). */
static void depthwise_weight_sums(const rnn_conv_params *p, int32_t c, int32_t *wsum) {
    for (int32_t ch = 0; ch < c; ch++) wsum[ch] = 0;
    for (int32_t t = 0; t < p->kh * p->kw; t++)
        for (int32_t ch = 0; ch < c; ch++) wsum[ch] += p->w[t * c + ch];
}

/* One output pixel of a depthwise conv with channel multiplier 1, the channel loop innermost and 4
 * channels per step: rows[ky] is the input row holding tap row ky (NULL: outside the map), its
 * pixel 0 at map column col0; taps kx0 <= kx < kx1 of the input columns ix0 + kx are inside.
 * Where every tap is inside, the zero point is folded into the bias (bias - zp sum w, wsum);
 * at the borders it is subtracted from each input lane (SSUB16). */
static void depthwise_pixel_fast(const rnn_conv_params *p, const int8_t *const *rows, int32_t col0, int32_t ix0,
                                 int32_t kx0, int32_t kx1, int32_t c, const int32_t *wsum, int8_t *dst) {
    const int32_t c4 = c & ~3, kw = p->kw, kh = p->kh;
    const int32_t *bias = p->bias, *mult = p->mult, *shift = p->shift;
    const int32_t zp = p->out_zp, lo = p->act_min, hi = p->act_max, in_zp = p->in_zp;
    const int8_t *weights = p->w;
    int interior = kx0 == 0 && kx1 == kw;
    for (int32_t ky = 0; ky < kh; ky++) interior = interior && rows[ky] != 0;
    const uint32_t zp2 = interior ? 0u : ((uint32_t)in_zp & 0xFFFFu) * 0x10001u;
    int32_t ch = 0;
    for (; ch < c4; ch += 4) {
        int32_t a0 = bias[ch], a1 = bias[ch + 1], a2 = bias[ch + 2], a3 = bias[ch + 3];
        if (interior) {
            a0 -= in_zp * wsum[ch];
            a1 -= in_zp * wsum[ch + 1];
            a2 -= in_zp * wsum[ch + 2];
            a3 -= in_zp * wsum[ch + 3];
            for (int32_t ky = 0; ky < kh; ky++) {
                const int8_t *xp = rows[ky] + (ix0 - col0) * c + ch, *wp = weights + ky * kw * c + ch;
                for (int32_t kx = 0; kx < kw; kx++, xp += c, wp += c) {
                    const uint32_t xv = rnn_read32(xp), wv = rnn_read32(wp);
                    const uint32_t x_e = rnn_sxtb16(xv), w_e = rnn_sxtb16(wv);
                    const uint32_t x_o = rnn_sxtb16_ror8(xv), w_o = rnn_sxtb16_ror8(wv);
                    a0 = rnn_smlabb(x_e, w_e, a0);
                    a2 = rnn_smlatt(x_e, w_e, a2);
                    a1 = rnn_smlabb(x_o, w_o, a1);
                    a3 = rnn_smlatt(x_o, w_o, a3);
                }
            }
        } else {
            for (int32_t ky = 0; ky < kh; ky++) {
                if (rows[ky] == 0) continue;
                const int8_t *xp = rows[ky] + (ix0 + kx0 - col0) * c + ch;
                const int8_t *wp = weights + (ky * kw + kx0) * c + ch;
                for (int32_t kx = kx0; kx < kx1; kx++, xp += c, wp += c) {
                    const uint32_t xv = rnn_read32(xp), wv = rnn_read32(wp);
                    const uint32_t x_e = rnn_ssub16(rnn_sxtb16(xv), zp2), x_o = rnn_ssub16(rnn_sxtb16_ror8(xv), zp2);
                    const uint32_t w_e = rnn_sxtb16(wv), w_o = rnn_sxtb16_ror8(wv);
                    a0 = rnn_smlabb(x_e, w_e, a0);
                    a2 = rnn_smlatt(x_e, w_e, a2);
                    a1 = rnn_smlabb(x_o, w_o, a1);
                    a3 = rnn_smlatt(x_o, w_o, a3);
                }
            }
        }
        dst[ch] = rnn_rq(a0, mult[ch], shift[ch], zp, lo, hi);
        dst[ch + 1] = rnn_rq(a1, mult[ch + 1], shift[ch + 1], zp, lo, hi);
        dst[ch + 2] = rnn_rq(a2, mult[ch + 2], shift[ch + 2], zp, lo, hi);
        dst[ch + 3] = rnn_rq(a3, mult[ch + 3], shift[ch + 3], zp, lo, hi);
    }
    for (; ch < c; ch++) {
        int32_t acc = bias[ch];
        for (int32_t ky = 0; ky < kh; ky++) {
            if (rows[ky] == 0) continue;
            for (int32_t kx = kx0; kx < kx1; kx++)
                acc += weights[(ky * kw + kx) * c + ch] * (rows[ky][(ix0 + kx - col0) * c + ch] - in_zp);
        }
        dst[ch] = rnn_rq(acc, mult[ch], shift[ch], zp, lo, hi);
    }
}

/* Output positions (y, x0 .. x0 + n - 1), inside the output map, of a depthwise conv (multiplier 1). */
static void depthwise_fast_span(const rnn_conv_params *p, const rnn_view *in, int32_t y, int32_t x0, int32_t n,
                                int8_t *dst) {
    const int32_t c = in->c, iy0 = y * p->sh - p->pad_top;
    const int8_t *rows[p->kh];
    for (int32_t ky = 0; ky < p->kh; ky++) {
        const int32_t iy = iy0 + ky;
        rows[ky] = iy < 0 || iy >= in->map_h ? (const int8_t *)0 : in->data + (iy - in->row0) * in->w * c;
    }
    int32_t wsum[c];
    depthwise_weight_sums(p, c, wsum);
    for (int32_t i = 0; i < n; i++) {
        const int32_t ix0 = (x0 + i) * p->sw - p->pad_left;
        const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + p->kw > in->map_w ? in->map_w - ix0 : p->kw;
        depthwise_pixel_fast(p, rows, in->col0, ix0, kx0, kx1, c, wsum, dst + i * c);
    }
}

/* A 3x3 conv of a one-channel input (a grayscale stem) on the output positions (y, x0 .. x0 + n - 1),
 * inside the output map. Pixels whose 9 taps are all inside the input: the taps sign-extended by the
 * loads and packed two per word (PKHBT, no im2col buffer), the zero point folded into the bias
 * (bias - zp sum w, exact in int32), 5 SMLADs per output channel against the weights widened once
 * (w0 w1, w2 w3, w4 w5, w6 w7, w8 0; wq: 5 words per channel). small: every channel's sums and shift
 * are in rnn_mbqm_small's range (checked once per call). Other pixels: conv_fast_span. */
static void conv_1ch_3x3_span(const rnn_conv_params *p, const rnn_view *in, int32_t y, int32_t x0, int32_t n,
                              int8_t *dst, const uint32_t *wq, const int32_t *bias_zp, int small, const int8_t *padded) {
    const int32_t cout = p->out_c, iy0 = y * p->sh - p->pad_top, zp = p->out_zp, lo = p->act_min, hi = p->act_max;
    const int32_t *mult = p->mult, *shift = p->shift;
    const int rows_in = iy0 >= 0 && iy0 + 3 <= in->map_h;
    const int8_t *r0 = in->data + (iy0 - in->row0) * in->w - in->col0, *r1 = r0 + in->w, *r2 = r1 + in->w;
    for (int32_t i = 0; i < n; i++, dst += cout) {
        const int32_t ix0 = (x0 + i) * p->sw - p->pad_left;
        if (!rows_in || ix0 < 0 || ix0 + 3 > in->map_w) {
            conv_fast_span(p, in, y, x0 + i, 1, dst, padded, 12);
            continue;
        }
        const uint32_t t0 = rnn_pack16(r0[ix0], r0[ix0 + 1]), t1 = rnn_pack16(r0[ix0 + 2], r1[ix0]);
        const uint32_t t2 = rnn_pack16(r1[ix0 + 1], r1[ix0 + 2]), t3 = rnn_pack16(r2[ix0], r2[ix0 + 1]);
        const uint32_t t4 = rnn_pack16(r2[ix0 + 2], 0);
        const uint32_t *w = wq;
        for (int32_t o = 0; o < cout; o++, w += 5) {
            int32_t acc = rnn_smlad(w[0], t0, bias_zp[o]);
            acc = rnn_smlad(w[1], t1, acc);
            acc = rnn_smlad(w[2], t2, acc);
            acc = rnn_smlad(w[3], t3, acc);
            acc = rnn_smlad(w[4], t4, acc);
            int32_t v;
            if (small) { /* rnn_mbqm_small, its range checked once for the layer */
                const int32_t u = rnn_smmulr(acc * 2, mult[o]), right = -shift[o];
                v = ((u * 2 + (1 << right) + (u >> 31)) >> (1 + right)) + zp;
            } else {
                v = rnn_mbqm_fast(acc, mult[o], shift[o]) + zp;
            }
            dst[o] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
        }
    }
}

/* The columns [*lo, *hi) of output row oy of a region that are inside the output map (one run);
 * the others of dst (that row) set to the zero point. */
static void rnn_row_inside(const rnn_region *out, int32_t oy, int32_t cout, int8_t *dst, int32_t *lo, int32_t *hi) {
    const int32_t y = out->row0 + oy;
    int32_t a = -out->col0, b = out->map_w - out->col0;
    if (y < 0 || y >= out->map_h) a = b = 0;
    a = a < 0 ? 0 : (a > out->w ? out->w : a);
    b = b < a ? a : (b > out->w ? out->w : b);
    for (int32_t i = 0; i < a * cout; i++) dst[i] = (int8_t)out->zp;
    for (int32_t i = b * cout; i < out->w * cout; i++) dst[i] = (int8_t)out->zp;
    *lo = a;
    *hi = b;
}

/* rnn_conv of a 3x3 conv on one input channel: its weights widened and its biases folded once per
 * call for conv_1ch_3x3_span (apart, so that its buffers are not on the other convs' stack). */
static __attribute__((noinline)) void conv_1ch_3x3(const rnn_conv_params *p, const rnn_view *in,
                                                   const rnn_region *out, const int8_t *padded) {
    const int32_t cout = p->out_c;
    uint32_t wq[5 * cout];
    int32_t bias_zp[cout];
    int small = 1; /* |sum| < 2^29 for every input (int8 taps) and -28 <= shift <= 0: rnn_mbqm_small applies */
    for (int32_t o = 0; o < cout; o++) {
        const int8_t *w = p->w + 9 * o;
        int32_t wsum = 0, wabs = 0;
        for (int32_t j = 0; j < 9; j++) {
            wsum += w[j];
            wabs += w[j] < 0 ? -w[j] : w[j];
        }
        for (int32_t j = 0; j < 4; j++) wq[5 * o + j] = rnn_pack16(w[2 * j], w[2 * j + 1]);
        wq[5 * o + 4] = rnn_pack16(w[8], 0);
        bias_zp[o] = p->bias[o] - p->in_zp * wsum;
        const int64_t bound = (int64_t)(bias_zp[o] < 0 ? -(int64_t)bias_zp[o] : bias_zp[o]) + 128 * (int64_t)wabs;
        small = small && bound < (1 << 29) && p->shift[o] <= 0 && p->shift[o] >= -28;
    }
    for (int32_t oy = 0; oy < out->h; oy++) {
        int8_t *dst = out->data + oy * out->w * cout;
        int32_t lo, hi;
        rnn_row_inside(out, oy, cout, dst, &lo, &hi);
        if (hi > lo)
            conv_1ch_3x3_span(p, in, out->row0 + oy, out->col0 + lo, hi - lo, dst + lo * cout, wq, bias_zp, small,
                              padded);
    }
}

void rnn_conv(const rnn_conv_params *p, const rnn_view *in, const rnn_region *out) {
    const int32_t cout = p->out_c, k = p->kh * p->kw * in->c, few = (in->c & 3) != 0, kk = few ? (k + 3) & ~3 : k;
    if (p->depthwise ? cout != in->c : kk > RNN_IM2COL_MAX || (few && cout * kk > RNN_PADDED_WEIGHTS_MAX)) {
        conv_reference(p, in, out); /* channel multiplier > 1, or a window too wide for the stack */
        return;
    }
    int8_t padded[!p->depthwise && few ? cout * kk : 1];
    if (!p->depthwise && few) conv_weights_paired(p->w, cout, k, kk, padded);
    if (!p->depthwise && in->c == 1 && p->kh == 3 && p->kw == 3) {
        conv_1ch_3x3(p, in, out, padded);
        return;
    }
    for (int32_t oy = 0; oy < out->h; oy++) {
        int8_t *dst = out->data + oy * out->w * cout;
        int32_t lo, hi;
        rnn_row_inside(out, oy, cout, dst, &lo, &hi);
        if (hi == lo) continue;
        if (p->depthwise) depthwise_fast_span(p, in, out->row0 + oy, out->col0 + lo, hi - lo, dst + lo * cout);
        else conv_fast_span(p, in, out->row0 + oy, out->col0 + lo, hi - lo, dst + lo * cout, few ? padded : p->w, kk);
    }
}

/* 1x1 conv. With in_c a multiple of 4: four pixels at a time (rnn_dot_4px); the rest (and other
 * in_c) two pixels at a time through a 2-column q15 buffer and 2 x 2 blocked dot products. */
void rnn_pointwise(const rnn_conv_params *p, const int8_t *in, int32_t in_c, int32_t pixels, int8_t *out) {
    const int32_t cout = p->out_c;
    int32_t i = 0;
    if ((in_c & 3) == 0 && in_c > 0 && pixels >= 4) {
        uint32_t col4[2 * in_c];
        for (; i + 4 <= pixels; i += 4) {
            rnn_widen4(in + i * in_c, in_c, p->in_zp, col4);
            rnn_dot_4px(p, p->w, in_c, col4, out + i * cout);
        }
    }
    int16_t col[2 * in_c];
    int32_t acc[2 * cout];
    for (; i < pixels; i += 2) {
        const int32_t count = pixels - i < 2 ? 1 : 2;
        for (int32_t v = 0; v < count; v++) rnn_widen(in + (i + v) * in_c, in_c, p->in_zp, col + v * in_c);
        rnn_matvec_q15(p->w, cout, in_c, p->bias, col, count, acc);
        rnn_store_pixels(p, cout, acc, count, out + i * cout);
    }
}

/* One depthwise output row of an inverted residual block (rows[ky]: input rows, NULL outside). */
static void depthwise_row(const rnn_conv_params *dw, const int8_t *const *rows, int32_t in_w, int32_t mid,
                          int32_t out_w, int8_t *dw_row) {
    int32_t wsum[mid];
    depthwise_weight_sums(dw, mid, wsum);
    for (int32_t ox = 0; ox < out_w; ox++) {
        const int32_t ix0 = ox * dw->sw - dw->pad_left;
        const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + dw->kw > in_w ? in_w - ix0 : dw->kw;
        depthwise_pixel_fast(dw, rows, 0, ix0, kx0, kx1, mid, wsum, dw_row + ox * mid);
    }
}

/* --- RNNPool, fast path ------------------------------------------------------------------------
 * Per patch: the RNN1 input projections W x of the patch's pixels once (the row and the column
 * sweeps share them), RNN2's projections of the kh + kw summaries once (its forward and backward
 * sweeps share them); sequences run two at a time so U h is a 2 x 2 blocked SMLAD product; states
 * stay in the paired layout, which is also the layout RNN2's W reads RNN1's summaries in. */

/* The integer ranges under which the fast path's 32-bit arithmetic is exact. */
static int fastgrnn_fast_ok(const rnn_fastgrnn *g) {
    if (g->hidden > 127 || g->input > 127 || g->state_bits < 0 || g->state_bits > 15) return 0;
    if (g->zeta < 0 || g->zeta > 32768 || g->nu < -32768 || g->nu > 32768) return 0;
    const int64_t nu = g->nu < 0 ? -(int64_t)g->nu : g->nu;
    if (((int64_t)g->zeta + nu + 1) * 32768 + ((int64_t)1 << (14 + g->state_bits)) >= ((int64_t)1 << 31)) return 0;
    for (int32_t i = 0; i < g->hidden; i++) {
        if (g->u_shift[i] > 0 || g->u_shift[i] < -28 || g->w_shift[i] > 0 || g->w_shift[i] < -28) return 0;
        if (g->bias_gate[i] < -(1 << 29) || g->bias_gate[i] > (1 << 29)) return 0;
        if (g->bias_update[i] < -(1 << 29) || g->bias_update[i] > (1 << 29)) return 0;
    }
    return 1;
}

/* A cell's per-unit constants, gathered once per patch so the step loop reads one table. */
typedef struct {
    int32_t u_mult, u_round, u_right, gate_offset, bias_update, w_mult, w_round, w_right;
} rnn_unit;

static void fastgrnn_units_table(const rnn_fastgrnn *g, rnn_unit *t) {
    for (int32_t i = 0; i < g->hidden; i++) {
        t[i].u_mult = g->u_mult[i];
        t[i].u_round = 1 << -g->u_shift[i]; /* rnn_mbqm_small's rounding, unrolled */
        t[i].u_right = 1 - g->u_shift[i];
        t[i].gate_offset = g->bias_gate[i] + 32768; /* ssat16(x) + 32768 = usat16(x + 32768) */
        t[i].bias_update = g->bias_update[i];
        t[i].w_mult = g->w_mult[i];
        t[i].w_round = 1 << -g->w_shift[i];
        t[i].w_right = 1 - g->w_shift[i];
    }
}

/* One unit's step (IntFastGRNN.scan): the new state from v = W x (Q15) + requantized U h and the old one. */
static inline int16_t fastgrnn_next(const rnn_unit *t, int32_t v, int32_t zeta, int32_t zeta_one, int32_t nu,
                                    int32_t state_shift, int32_t state_round, int32_t h) {
    const int32_t z = (rnn_usat16(v + t->gate_offset) + 1) >> 1; /* quantSigmoid, Q15 */
    const int32_t c = rnn_ssat16(v + t->bias_update);              /* quantTanh */
    const int32_t coef = ((zeta_one - zeta * z) >> 15) + nu;
    const int32_t next = ((coef * c + state_round) >> state_shift) + ((z * h + (1 << 14)) >> 15);
    return (int16_t)rnn_ssat16(next);
}

/* fastgrnn_next on the state *h, in place. */
static inline void fastgrnn_unit(const rnn_unit *t, int32_t v, int32_t zeta, int32_t zeta_one, int32_t nu,
                                 int32_t state_shift, int32_t state_round, int16_t *h) {
    *h = fastgrnn_next(t, v, zeta, zeta_one, nu, state_shift, state_round, *h);
}

/* U h requantized (rnn_mbqm_small with the unit's constants). */
static inline int32_t fastgrnn_uh(const rnn_unit *t, int32_t acc2) {
    const int32_t u = rnn_smmulr(acc2, t->u_mult);
    return (u * 2 + t->u_round + (u >> 31)) >> t->u_right;
}

/* One step of all units: proj = W x in Q15, acc = raw U h (NULL at the first step, where h = 0),
 * h the state in the paired layout (unit i of a group of 4 at position 0 2 1 3), in place. */
static void fastgrnn_units(const rnn_fastgrnn *g, const rnn_unit *t, const int32_t *proj, const int32_t *acc,
                           int16_t *h) {
    const int32_t hid = g->hidden, h4 = hid & ~3, zeta = g->zeta, nu = g->nu;
    const int32_t zeta_one = zeta * 32768 + (1 << 14); /* rrs(zeta (1 - z), 15) = (zeta_one - zeta z) >> 15 */
    const int32_t state_shift = 15 + g->state_bits, state_round = 1 << (14 + g->state_bits);
#define RNN_UNIT(i, at) fastgrnn_unit(t + (i), proj[i] + (acc ? fastgrnn_uh(t + (i), acc[i]) : 0), zeta, zeta_one, nu, \
                                      state_shift, state_round, h + (at))
    int32_t i = 0;
    for (; i < h4; i += 4) {
        RNN_UNIT(i, i);
        RNN_UNIT(i + 1, i + 2);
        RNN_UNIT(i + 2, i + 1);
        RNN_UNIT(i + 3, i + 3);
    }
    for (; i < hid; i++) RNN_UNIT(i, i);
#undef RNN_UNIT
}

/* One step of one sequence for hidden == 16, fused: the old state's 8 words stay in registers while
 * each unit's U h (8 SMLADs), requantization and update run in turn; updates go to memory and the
 * products read the registers, so every product sees the old state, as in fastgrnn_units. */
static void fastgrnn_step16(const rnn_fastgrnn *g, const rnn_unit *t, const int16_t *uq, const int32_t *proj,
                            int16_t *h) {
    const int32_t zeta = g->zeta, nu = g->nu, zeta_one = zeta * 32768 + (1 << 14);
    const int32_t state_shift = 15 + g->state_bits, state_round = 1 << (14 + g->state_bits);
    const uint32_t x0 = rnn_read32(h), x1 = rnn_read32(h + 2), x2 = rnn_read32(h + 4), x3 = rnn_read32(h + 6);
    const uint32_t x4 = rnn_read32(h + 8), x5 = rnn_read32(h + 10), x6 = rnn_read32(h + 12), x7 = rnn_read32(h + 14);
#define RNN_UNIT16(i, at)                                                                                      \
    do {                                                                                                        \
        const int16_t *w = uq + 16 * (i);                                                                       \
        int32_t a = rnn_smlad(rnn_read32(w), x0, 0);                                                            \
        a = rnn_smlad(rnn_read32(w + 2), x1, a);                                                                \
        a = rnn_smlad(rnn_read32(w + 4), x2, a);                                                                \
        a = rnn_smlad(rnn_read32(w + 6), x3, a);                                                                \
        a = rnn_smlad(rnn_read32(w + 8), x4, a);                                                                \
        a = rnn_smlad(rnn_read32(w + 10), x5, a);                                                               \
        a = rnn_smlad(rnn_read32(w + 12), x6, a);                                                               \
        a = rnn_smlad(rnn_read32(w + 14), x7, a);                                                               \
        fastgrnn_unit(t + (i), proj[i] + fastgrnn_uh(t + (i), a), zeta, zeta_one, nu, state_shift, state_round, \
                      h + (at));                                                                                \
    } while (0)
    for (int32_t i = 0; i < 16; i += 4) {
        RNN_UNIT16(i, i);
        RNN_UNIT16(i + 1, i + 2);
        RNN_UNIT16(i + 2, i + 1);
        RNN_UNIT16(i + 3, i + 3);
    }
#undef RNN_UNIT16
}

#if defined(__ARM_FEATURE_DSP)
/* Rows uw[0..7] and uw[8..15] (q15 pairs) times the states h[0..7] (a) and h[8..15] (b), added to
 * *a0, *a1 (a) and *b0, *b1 (b). In assembly so that each LDRD brings two words and nothing spills:
 * per 2 state words, 3 LDRDs and 8 SMLADs (16 multiply-accumulates). */
#define RNN_DOT_WORDS(o, p)                                                                              \
    "ldrd %[w0], %[w1], [%[u], #" #o "]\n\t"                                                             \
    "ldrd %[w2], %[w3], [%[u], #" #p "]\n\t"                                                             \
    "ldrd %[x0], %[x1], [%[h], #" #o "]\n\t"                                                             \
    "smlad %[a0], %[w0], %[x0], %[a0]\n\t"                                                               \
    "smlad %[a0], %[w1], %[x1], %[a0]\n\t"                                                               \
    "smlad %[a1], %[w2], %[x0], %[a1]\n\t"                                                               \
    "smlad %[a1], %[w3], %[x1], %[a1]\n\t"                                                               \
    "ldrd %[x0], %[x1], [%[h], #" #p "]\n\t"                                                             \
    "smlad %[b0], %[w0], %[x0], %[b0]\n\t"                                                               \
    "smlad %[b0], %[w1], %[x1], %[b0]\n\t"                                                               \
    "smlad %[b1], %[w2], %[x0], %[b1]\n\t"                                                               \
    "smlad %[b1], %[w3], %[x1], %[b1]\n\t"
static inline void fastgrnn_dot16x2(const uint32_t *uw, const uint32_t *h, int32_t *a0, int32_t *a1, int32_t *b0,
                                    int32_t *b1) {
    uint32_t w0, w1, w2, w3, x0, x1;
    __asm__(RNN_DOT_WORDS(0, 32) RNN_DOT_WORDS(8, 40) RNN_DOT_WORDS(16, 48) RNN_DOT_WORDS(24, 56)
            : [a0] "+r"(*a0), [a1] "+r"(*a1), [b0] "+r"(*b0), [b1] "+r"(*b1), [w0] "=&r"(w0), [w1] "=&r"(w1),
              [w2] "=&r"(w2), [w3] "=&r"(w3), [x0] "=&r"(x0), [x1] "=&r"(x1)
            : [u] "r"(uw), [h] "r"(h)
            : "memory");
}
#undef RNN_DOT_WORDS
#else
static inline void fastgrnn_dot16x2(const uint32_t *uw, const uint32_t *h, int32_t *a0, int32_t *a1, int32_t *b0,
                                    int32_t *b1) {
    for (int32_t j = 0; j < 8; j++) {
        *a0 = rnn_smlad(uw[j], h[j], *a0);
        *a1 = rnn_smlad(uw[8 + j], h[j], *a1);
        *b0 = rnn_smlad(uw[j], h[8 + j], *b0);
        *b1 = rnn_smlad(uw[8 + j], h[8 + j], *b1);
    }
}
#endif

/* A step after the first of two sequences of a hidden-16 cell together (RNN1's rows r and r + 1, RNN2's
 * forward and backward sweeps): old states h (sequence a in words 0-7, b in words 8-15, paired layout)
 * to new states n, proj a and b: their W x. Two units at a time: per two state words, two LDRDs of U
 * (doubled q15, rows 8 words apart) and two of the states feed 8 SMLADs; each unit's constants
 * serve both sequences. h, n and uw word-aligned (LDRD). */
static inline __attribute__((always_inline)) void fastgrnn_step16x2_bits(
    const rnn_fastgrnn *g, const rnn_unit *t, const uint32_t *uw, const int32_t *pa, const int32_t *pb,
    const uint32_t *h, uint32_t *n, int32_t state_bits) {
    const int32_t zeta = g->zeta, nu = g->nu, zeta_one = zeta * 32768 + (1 << 14);
    const int32_t state_shift = 15 + state_bits, state_round = 1 << (14 + state_bits);
    const int16_t *old = (const int16_t *)h;
    int16_t *next = (int16_t *)n;
    for (int32_t i = 0; i < 16; i += 2, uw += 16, t += 2) {
        int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
        fastgrnn_dot16x2(uw, h, &a0, &a1, &b0, &b1);
        const int32_t at0 = (i & ~3) | ((i >> 1) & 1), at1 = at0 + 2; /* units i, i + 1 in the paired layout */
        next[at0] = fastgrnn_next(t, pa[i] + fastgrnn_uh(t, a0), zeta, zeta_one, nu, state_shift, state_round,
                                  old[at0]);
        next[16 + at0] = fastgrnn_next(t, pb[i] + fastgrnn_uh(t, b0), zeta, zeta_one, nu, state_shift, state_round,
                                       old[16 + at0]);
        next[at1] = fastgrnn_next(t + 1, pa[i + 1] + fastgrnn_uh(t + 1, a1), zeta, zeta_one, nu, state_shift,
                                  state_round, old[at1]);
        next[16 + at1] = fastgrnn_next(t + 1, pb[i + 1] + fastgrnn_uh(t + 1, b1), zeta, zeta_one, nu, state_shift,
                                       state_round, old[16 + at1]);
    }
}

/* fastgrnn_step16x2_bits, with the common state_bits = 0 (shifts by constants) compiled apart; not inlined
 * into the scan, whose other paths would share (and grow) its stack frame. */
static __attribute__((noinline)) void fastgrnn_step16x2(const rnn_fastgrnn *g, const rnn_unit *t, const uint32_t *uw, const int32_t *pa,
                              const int32_t *pb, const uint32_t *h, uint32_t *n) {
    if (g->state_bits == 0) fastgrnn_step16x2_bits(g, t, uw, pa, pb, h, n, 0);
    else fastgrnn_step16x2_bits(g, t, uw, pa, pb, h, n, g->state_bits);
}

/* Sequences a and b (hb NULL: a only) of `steps` steps from zero states; the projection of
 * sequence s at step t is proj + (start_s + t delta_s) hidden. hb, when given, is ha + hidden. */
static void fastgrnn_scan2(const rnn_fastgrnn *g, const rnn_unit *units, const int16_t *uq, const int32_t *proj,
                           int32_t steps,
                           int32_t start_a, int32_t delta_a, int16_t *ha, int32_t start_b, int32_t delta_b, int16_t *hb,
                           int32_t *acc) {
    const int32_t hid = g->hidden, nvec = hb != 0 ? 2 : 1;
    for (int32_t i = 0; i < nvec * hid; i++) ha[i] = 0;
    if (hid == 16 && hb != 0 && (((uintptr_t)ha | (uintptr_t)uq) & 3) == 0) { /* ping-pong: ha and acc */
        uint32_t *cur = (uint32_t *)ha, *nxt = (uint32_t *)acc; /* acc: 2 hidden int32, room for both states */
        fastgrnn_units(g, units, proj + start_a * hid, 0, ha);
        fastgrnn_units(g, units, proj + start_b * hid, 0, hb);
        for (int32_t t = 1; t < steps; t++) {
            fastgrnn_step16x2(g, units, (const uint32_t *)uq, proj + (start_a + t * delta_a) * hid,
                              proj + (start_b + t * delta_b) * hid, cur, nxt);
            uint32_t *done = nxt;
            nxt = cur;
            cur = done;
        }
        if (cur != (uint32_t *)ha)
            for (int32_t i = 0; i < 16; i++) ((uint32_t *)ha)[i] = cur[i];
        return;
    }
    if (hid == 16) {
        for (int32_t t = 0; t < steps; t++) {
            const int32_t *pa = proj + (start_a + t * delta_a) * hid, *pb = proj + (start_b + t * delta_b) * hid;
            if (t == 0) {
                fastgrnn_units(g, units, pa, 0, ha);
                if (hb != 0) fastgrnn_units(g, units, pb, 0, hb);
            } else {
                fastgrnn_step16(g, units, uq, pa, ha);
                if (hb != 0) fastgrnn_step16(g, units, uq, pb, hb);
            }
        }
        return;
    }
    for (int32_t t = 0; t < steps; t++) {
        if (t > 0) rnn_matvec_q15q15(uq, hid, hid, ha, nvec, acc);
        fastgrnn_units(g, units, proj + (start_a + t * delta_a) * hid, t > 0 ? acc : 0, ha);
        if (hb != 0) fastgrnn_units(g, units, proj + (start_b + t * delta_b) * hid, t > 0 ? acc + hid : 0, hb);
    }
}

/* Projections W x of `count` q15 vectors (paired layout, `input` apart) to Q15, per unit; wq: W in q15. */
static void fastgrnn_project(const rnn_fastgrnn *g, const rnn_unit *t, const int16_t *wq, const int16_t *xs,
                             int32_t count, int32_t *proj) {
    const int32_t hid = g->hidden, in = g->input;
    if (in == 4 && count == 2) { /* RNN1 on 4 channels: both pixels in registers, requantized in the same pass */
        const uint32_t a0 = rnn_read32(xs), a1 = rnn_read32(xs + 2), b0 = rnn_read32(xs + 4), b1 = rnn_read32(xs + 6);
        for (int32_t i = 0; i < hid; i++, wq += 4, t++) {
            const uint32_t w0 = rnn_read32(wq), w1 = rnn_read32(wq + 2);
            const int32_t ua = rnn_smmulr(rnn_smlad(w1, a1, rnn_smlad(w0, a0, 0)), t->w_mult);
            const int32_t ub = rnn_smmulr(rnn_smlad(w1, b1, rnn_smlad(w0, b0, 0)), t->w_mult);
            proj[i] = (ua * 2 + t->w_round + (ua >> 31)) >> t->w_right; /* rnn_mbqm_small, unrolled */
            proj[hid + i] = (ub * 2 + t->w_round + (ub >> 31)) >> t->w_right;
        }
        return;
    }
    if (in == 16 && (hid & 1) == 0 && (count & 1) == 0 && (((uintptr_t)wq | (uintptr_t)xs) & 3) == 0) {
        for (int32_t s = 0; s < count; s += 2, xs += 32, proj += 2 * hid) { /* 2 units x 2 vectors per pass */
            for (int32_t i = 0; i < hid; i += 2) {
                int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
                fastgrnn_dot16x2((const uint32_t *)(wq + 16 * i), (const uint32_t *)xs, &a0, &a1, &b0, &b1);
                const rnn_unit *u0 = t + i, *u1 = u0 + 1;
                const int32_t ua0 = rnn_smmulr(a0, u0->w_mult), ub0 = rnn_smmulr(b0, u0->w_mult);
                const int32_t ua1 = rnn_smmulr(a1, u1->w_mult), ub1 = rnn_smmulr(b1, u1->w_mult);
                proj[i] = (ua0 * 2 + u0->w_round + (ua0 >> 31)) >> u0->w_right; /* rnn_mbqm_small, unrolled */
                proj[hid + i] = (ub0 * 2 + u0->w_round + (ub0 >> 31)) >> u0->w_right;
                proj[i + 1] = (ua1 * 2 + u1->w_round + (ua1 >> 31)) >> u1->w_right;
                proj[hid + i + 1] = (ub1 * 2 + u1->w_round + (ub1 >> 31)) >> u1->w_right;
            }
        }
        return;
    }
    for (int32_t s = 0; s < count; s += 2) {
        const int32_t nvec = count - s < 2 ? 1 : 2;
        int32_t *pa = proj + s * hid;
        rnn_matvec_q15q15(wq, hid, in, xs + s * in, nvec, pa);
        for (int32_t v = 0; v < nvec; v++, pa += hid)
            for (int32_t i = 0; i < hid; i++) {
                const int32_t u = rnn_smmulr(pa[i], t[i].w_mult); /* rnn_mbqm_small, unrolled */
                pa[i] = (u * 2 + t[i].w_round + (u >> 31)) >> t[i].w_right;
            }
    }
}

/* RNN1 projections to Q15 of 4 pixels of 4 channels (xs: pixel v in words 2 v, 2 v + 1, paired q15)
 * for all `hid` units (ww: 2 words of doubled q15 weights per unit), pixel v's at proj + v hid: each
 * unit's weights and constants stay in registers for the 4 pixels. */
static void fastgrnn_project4x4(const rnn_unit *t, int32_t hid, const uint32_t *ww, const uint32_t *xs, int32_t *proj) {
    for (int32_t i = 0; i < hid; i++, ww += 2, t++) {
        const uint32_t w0 = ww[0], w1 = ww[1];
        const int32_t mult = t->w_mult, round = t->w_round, right = t->w_right;
#pragma GCC unroll 4
        for (int32_t v = 0; v < 4; v++) {
            const int32_t u = rnn_smmulr(rnn_smlad(w1, xs[2 * v + 1], rnn_smlad(w0, xs[2 * v], 0)), mult);
            proj[v * hid + i] = (u * 2 + round + (u >> 31)) >> right; /* rnn_mbqm_small, unrolled */
        }
    }
}

/* reuse: the scratch holds patch (oy, ox - 1)'s column summaries; its columns sw .. kw - 1 are this
 * patch's columns 0 .. kw - sw - 1 (the same pixels, the same zero start state: the same integers). */
static void rnnpool_patch_fast(const rnn_rnnpool_params *p, const rnn_view *in, int32_t oy, int32_t ox, int reuse,
                               void *scratch, int8_t *out) {
    const rnn_fastgrnn *g1 = &p->rnn1, *g2 = &p->rnn2;
    const int32_t h1 = g1->hidden, h2 = g2->hidden, kh = p->kh, kw = p->kw, c = g1->input;
    const int32_t hmax = h1 > h2 ? h1 : h2;
    int16_t *rows = (int16_t *)scratch, *cols = rows + kh * h1, *states = cols + kw * h1;
    uint32_t xw[2 * c];              /* four pixels minus the zero point, q15 (two in the general path) */
    int16_t *xs = (int16_t *)xw;
    int32_t proj1[kh * kw * h1];     /* RNN1 projections of the patch's pixels */
    int32_t proj2[(kh + kw) * h2];   /* RNN2 projections of the row and column summaries */
    int32_t acc[2 * hmax];
    rnn_unit units1[h1], units2[h2];
    fastgrnn_units_table(g1, units1);
    fastgrnn_units_table(g2, units2);
    /* the weights doubled in q15, paired rows, word-aligned (fastgrnn_step16x2 reads them in pairs of words) */
    uint32_t w1w[(h1 * c + 1) / 2], u1w[(h1 * h1 + 1) / 2], w2w[(h2 * h1 + 1) / 2], u2w[(h2 * h2 + 1) / 2];
    int16_t *w1q = (int16_t *)w1w, *u1q = (int16_t *)u1w, *w2q = (int16_t *)w2w, *u2q = (int16_t *)u2w;
    for (int32_t i = 0; i < h1; i++) {
        rnn_widen_doubled(g1->w + i * c, c, w1q + i * c);
        rnn_widen_doubled(g1->u + i * h1, h1, u1q + i * h1);
    }
    for (int32_t i = 0; i < h2; i++) {
        rnn_widen_doubled(g2->w + i * h1, h1, w2q + i * h1);
        rnn_widen_doubled(g2->u + i * h2, h2, u2q + i * h2);
    }
    const int32_t y0 = oy * p->sh - p->pad_top, x0 = ox * p->sw - p->pad_left;
    int32_t k = 0;
    if (c == 4 && (kw & 3) == 0) { /* 4 pixels of a patch row at a time */
        for (; k < kh * kw; k += 4) {
            const int32_t y = y0 + k / kw, x = x0 + k % kw;
            const int8_t *row = in->data + ((y - in->row0) * in->w + (x - in->col0)) * 4;
            const int row_in = y >= 0 && y < in->map_h;
            for (int32_t e = 0; e < 4; e++)
                rnn_widen(row_in && x + e >= 0 && x + e < in->map_w ? row + 4 * e : (const int8_t *)0, 4, p->in_zp,
                          (int16_t *)(xw + 2 * e));
            fastgrnn_project4x4(units1, h1, w1w, xw, proj1 + k * h1);
        }
    }
    for (; k < kh * kw; k += 2) { /* pixels k, k + 1 of the patch, row by row */
        const int32_t count = kh * kw - k < 2 ? 1 : 2;
        for (int32_t e = 0; e < count; e++) {
            const int32_t y = y0 + (k + e) / kw, x = x0 + (k + e) % kw;
            const int8_t *px = y < 0 || y >= in->map_h || x < 0 || x >= in->map_w ? (const int8_t *)0
                : in->data + ((y - in->row0) * in->w + (x - in->col0)) * in->c;
            rnn_widen(px, c, p->in_zp, xs + e * c);
        }
        fastgrnn_project(g1, units1, w1q, xs, count, proj1 + k * h1);
    }
    for (int32_t r = 0; r < kh; r += 2) /* RNN1 along rows r, r + 1: pixel (r, t) */
        fastgrnn_scan2(g1, units1, u1q, proj1, kw, r * kw, 1, rows + r * h1, (r + 1) * kw, 1,
                       r + 1 < kh ? rows + (r + 1) * h1 : 0, acc);
    int32_t k0 = 0; /* the first column to compute */
    if (reuse) {
        k0 = kw - p->sw;
        for (int32_t i = 0; i < k0 * h1; i++) cols[i] = cols[p->sw * h1 + i]; /* forward: dst before src */
    }
    for (int32_t k = k0; k < kw; k += 2) /* RNN1 down columns k, k + 1: pixel (t, k) */
        fastgrnn_scan2(g1, units1, u1q, proj1, kh, k, kw, cols + k * h1, k + 1, kw, k + 1 < kw ? cols + (k + 1) * h1 : 0,
                       acc);
    fastgrnn_project(g2, units2, w2q, rows, kh + kw, proj2); /* rows then cols: contiguous in the scratch */
    /* RNN2: rows forward with rows backward, columns forward with columns backward */
    fastgrnn_scan2(g2, units2, u2q, proj2, kh, 0, 1, states, kh - 1, -1, states + h2, acc);
    fastgrnn_scan2(g2, units2, u2q, proj2, kw, kh, 1, states + 2 * h2, kh + kw - 1, -1, states + 3 * h2, acc);
    for (int32_t s = 0; s < 4; s++)
        for (int32_t i = 0; i < h2; i++)
            out[s * h2 + i] = rnn_rq(states[s * h2 + rnn_paired(i, h2)], p->out_mult, p->out_shift, p->out_zp, -128,
                                     127);
}

void rnn_rnnpool_patch(const rnn_rnnpool_params *p, const rnn_view *in, int32_t oy, int32_t ox, int32_t reuse_left,
                       void *scratch, int8_t *out) {
    if (fastgrnn_fast_ok(&p->rnn1) && fastgrnn_fast_ok(&p->rnn2) && p->rnn2.input == p->rnn1.hidden)
        rnnpool_patch_fast(p, in, oy, ox, reuse_left && ox > 0 && p->sw < p->kw, scratch, out);
    else
        rnnpool_patch_reference(p, in, oy, ox, scratch, out);
}

#else /* RNN_KERNELS_REFERENCE: the plain loops */

void rnn_conv(const rnn_conv_params *p, const rnn_view *in, const rnn_region *out) { conv_reference(p, in, out); }

void rnn_pointwise(const rnn_conv_params *p, const int8_t *in, int32_t in_c, int32_t pixels, int8_t *out) {
    pointwise_reference(p, in, in_c, pixels, out);
}

static void depthwise_row(const rnn_conv_params *dw, const int8_t *const *rows, int32_t in_w, int32_t mid,
                          int32_t out_w, int8_t *dw_row) {
    depthwise_row_reference(dw, rows, in_w, mid, out_w, dw_row);
}

void rnn_rnnpool_patch(const rnn_rnnpool_params *p, const rnn_view *in, int32_t oy, int32_t ox, int32_t reuse_left,
                       void *scratch, int8_t *out) {
    (void)reuse_left; /* the plain loops recompute every summary */
    rnnpool_patch_reference(p, in, oy, ox, scratch, out);
}

#endif

/* ===== kernels with one implementation ========================================================== */

/* ops.HeadOp: one 3x3 conv of a detection head, conf with max-out background (maxout > 1); up to
 * 64 bytes of outputs (several pixels) per rnn_conv call. */
void rnn_head_conv(const rnn_conv_params *p, int32_t maxout, const rnn_view *in, const rnn_region *out) {
    int8_t maps[64];
    const int32_t chunk = 64 / p->out_c;
    for (int32_t oy = 0; oy < out->h; oy++) {
        for (int32_t ox = 0; ox < out->w; ox += chunk) {
            const int32_t n = out->w - ox < chunk ? out->w - ox : chunk;
            const rnn_region at = {maps, 1, n, p->out_c, out->row0 + oy, out->col0 + ox, out->map_h, out->map_w, out->zp};
            rnn_conv(p, in, &at);
            for (int32_t i = 0; i < n; i++) {
                const int8_t *m = maps + i * p->out_c;
                int8_t *dst = out->data + (oy * out->w + ox + i) * out->c;
                int8_t background = m[0];
                for (int32_t k = 1; k < maxout; k++) background = m[k] > background ? m[k] : background;
                dst[0] = background;
                for (int32_t k = maxout; k < p->out_c; k++) dst[k - maxout + 1] = m[k];
            }
        }
    }
}

/* schedule._crops: a crop of a map, positions outside the map set to its zero point. */
void rnn_copy_crop(const rnn_view *in, const rnn_region *out) {
    for (int32_t oy = 0; oy < out->h; oy++) {
        const int32_t y = out->row0 + oy;
        for (int32_t ox = 0; ox < out->w; ox++) {
            const int32_t x = out->col0 + ox;
            int8_t *dst = out->data + (oy * out->w + ox) * out->c;
            const int inside = y >= 0 && y < in->map_h && x >= 0 && x < in->map_w;
            const int8_t *src = in->data + ((y - in->row0) * in->w + (x - in->col0)) * in->c;
            for (int32_t c = 0; c < out->c; c++) dst[c] = inside ? src[c] : (int8_t)in->zp;
        }
    }
}

/* kernels.add: q = {a_zp, b_zp, a_mult, a_shift, b_mult, b_shift, out_mult, out_shift, out_zp, lo, hi}. */
void rnn_add(const int8_t *a, const int8_t *b, int8_t *out, int32_t n, const int32_t *q) {
    for (int32_t i = 0; i < n; i++) {
        const int32_t sa = rnn_mbqm((int64_t)(a[i] - q[0]) << 20, q[2], q[3]);
        const int32_t sb = rnn_mbqm((int64_t)(b[i] - q[1]) << 20, q[4], q[5]);
        out[i] = (int8_t)rnn_sat((int64_t)rnn_mbqm((int64_t)sa + sb, q[6], q[7]) + q[8], q[9], q[10]);
    }
}

/* kernels.clamp */
void rnn_clamp(const int8_t *in, int8_t *out, int32_t n, int32_t lo, int32_t hi) {
    for (int32_t i = 0; i < n; i++) out[i] = (int8_t)rnn_sat(in[i], lo, hi);
}

/* kernels.avg_pool_global: sum(x - zp) / count rounded half away from zero, plus zp. */
void rnn_avg_pool_global(const int8_t *in, int8_t *out, int32_t pixels, int32_t c, int32_t zp) {
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        for (int32_t i = 0; i < pixels; i++) acc += in[i * c + ch] - zp;
        const int32_t q = acc >= 0 ? (acc + pixels / 2) / pixels : -((-acc + pixels / 2) / pixels);
        out[ch] = (int8_t)rnn_sat((int64_t)q + zp, -128, 127);
    }
}

/* kernels.linear */
void rnn_linear(const int8_t *in, int32_t k, const int8_t *w, const int32_t *bias, const int32_t *mult,
                const int32_t *shift, int32_t out_c, int32_t in_zp, int32_t out_zp, int32_t lo, int32_t hi,
                int8_t *out) {
    for (int32_t o = 0; o < out_c; o++) {
        int32_t acc = bias[o];
        for (int32_t i = 0; i < k; i++) acc += w[o * k + i] * (in[i] - in_zp);
        out[o] = rnn_requant(acc, mult[o], shift[o], out_zp, lo, hi);
    }
}

/* kernels.requantize, in place (a concatenation's inputs on their way out). */
void rnn_requantize(int8_t *x, int32_t n, int32_t in_zp, int32_t mult, int32_t shift, int32_t out_zp) {
    for (int32_t i = 0; i < n; i++) x[i] = rnn_requant(x[i] - in_zp, mult, shift, out_zp, -128, 127);
}

/* schedule.run_mbconv_rows: expansion rows into a ring of kh rows, one depthwise row, projection. */
void rnn_mbconv_rows(const rnn_mbconv_params *p, const int8_t *x, int8_t *ring, int8_t *dw_row, int8_t *out) {
    const rnn_conv_params *dw = p->dw;
    const int32_t kh = dw->kh, mid = p->mid_c, out_c = p->project->out_c;
    const int8_t *rows[kh];
    int32_t next = 0; /* next input row to expand */
    for (int32_t r = 0; r < p->out_h; r++) {
        const int32_t first = r * dw->sh - dw->pad_top;
        if (p->expand != 0) {
            for (; next < first + kh && next < p->in_h; next++) {
                if (next >= first)
                    rnn_pointwise(p->expand, x + next * p->in_w * p->in_c, p->in_c, p->in_w,
                                  ring + (next % kh) * p->in_w * mid);
            }
        }
        for (int32_t ky = 0; ky < kh; ky++) {
            const int32_t iy = first + ky;
            rows[ky] = iy < 0 || iy >= p->in_h ? (const int8_t *)0
                : p->expand != 0 ? ring + (iy % kh) * p->in_w * mid : x + iy * p->in_w * mid;
        }
        depthwise_row(dw, rows, p->in_w, mid, p->out_w, dw_row);
        int8_t *dst = out + r * p->out_w * out_c;
        rnn_pointwise(p->project, dw_row, mid, p->out_w, dst);
        if (p->add != 0) {
            const int8_t *xr = x + r * p->in_w * p->in_c;
            if (p->add_x_first) rnn_add(xr, dst, dst, p->out_w * out_c, p->add);
            else rnn_add(dst, xr, dst, p->out_w * out_c, p->add);
        }
    }
}
