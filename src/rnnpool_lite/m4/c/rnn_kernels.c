/* Integer kernels of rnnpool_lite.m4 in C (see rnn_kernels.h). Each function names the Python
 * function it mirrors; the arithmetic is the same operation for operation. */
#include "rnn_kernels.h"

/* kernels.conv2d on a window: regular or depthwise, zero-point padding by bounds checks. */
void rnn_conv(const rnn_conv_params *p, const rnn_view *in, const rnn_region *out) {
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

/* kernels.conv2d with a 1x1 kernel, stride 1: one dot product per pixel and output channel.
 * The zero point is folded out of the loop: sum w (x - zp) = sum w x - zp sum w (exact in int32). */
void rnn_pointwise(const rnn_conv_params *p, const int8_t *in, int32_t in_c, int32_t pixels, int8_t *out) {
    const int32_t cout = p->out_c;
    for (int32_t i = 0; i < pixels; i++, in += in_c, out += cout) {
        for (int32_t o = 0; o < cout; o++) {
            const int8_t *w = p->w + o * in_c;
            int32_t acc = 0, wsum = 0;
#if defined(RNN_USE_SMLAD)
            int32_t c = 0;
            for (; c + 4 <= in_c; c += 4) {
                uint32_t xv, wv;
                __builtin_memcpy(&xv, in + c, 4);
                __builtin_memcpy(&wv, w + c, 4);
                uint32_t x_lo, x_hi, w_lo, w_hi;
                __asm__("sxtb16 %0, %1" : "=r"(x_lo) : "r"(xv));
                __asm__("sxtb16 %0, %1, ror #8" : "=r"(x_hi) : "r"(xv));
                __asm__("sxtb16 %0, %1" : "=r"(w_lo) : "r"(wv));
                __asm__("sxtb16 %0, %1, ror #8" : "=r"(w_hi) : "r"(wv));
                __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(x_lo), "r"(w_lo));
                __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(x_hi), "r"(w_hi));
                wsum += w[c] + w[c + 1] + w[c + 2] + w[c + 3];
            }
            for (; c < in_c; c++) { acc += w[c] * in[c]; wsum += w[c]; }
#else
            for (int32_t c = 0; c < in_c; c++) { acc += w[c] * in[c]; wsum += w[c]; }
#endif
            acc += p->bias[o] - p->in_zp * wsum;
            out[o] = rnn_requant(acc, p->mult[o], p->shift[o], p->out_zp, p->act_min, p->act_max);
        }
    }
}

/* ops.HeadOp: one 3x3 conv of a detection head, conf with max-out background (maxout > 1). */
void rnn_head_conv(const rnn_conv_params *p, int32_t maxout, const rnn_view *in, const rnn_region *out) {
    int8_t maps[32];
    const rnn_region one = {maps, 1, 1, p->out_c, 0, 0, out->map_h, out->map_w, out->zp};
    for (int32_t oy = 0; oy < out->h; oy++) {
        for (int32_t ox = 0; ox < out->w; ox++) {
            int8_t *dst = out->data + (oy * out->w + ox) * out->c;
            rnn_region at = one;
            at.row0 = out->row0 + oy;
            at.col0 = out->col0 + ox;
            rnn_conv(p, in, &at);
            int8_t background = maps[0];
            for (int32_t k = 1; k < maxout; k++) background = maps[k] > background ? maps[k] : background;
            dst[0] = background;
            for (int32_t k = maxout; k < p->out_c; k++) dst[k - maxout + 1] = maps[k];
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
    const int32_t kh = dw->kh, kw = dw->kw, mid = p->mid_c, out_c = p->project->out_c;
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
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int32_t ix0 = ox * dw->sw - dw->pad_left;
            for (int32_t ch = 0; ch < mid; ch++) {
                int32_t acc = dw->bias[ch];
                for (int32_t ky = 0; ky < kh; ky++) {
                    const int32_t iy = first + ky;
                    if (iy < 0 || iy >= p->in_h) continue;
                    const int8_t *row = p->expand != 0 ? ring + (iy % kh) * p->in_w * mid : x + iy * p->in_w * mid;
                    for (int32_t kx = 0; kx < kw; kx++) {
                        const int32_t ix = ix0 + kx;
                        if (ix < 0 || ix >= p->in_w) continue;
                        acc += dw->w[(ky * kw + kx) * mid + ch] * (row[ix * mid + ch] - dw->in_zp);
                    }
                }
                dw_row[ox * mid + ch] = rnn_requant(acc, dw->mult[ch], dw->shift[ch], dw->out_zp, dw->act_min,
                                                    dw->act_max);
            }
        }
        int8_t *dst = out + r * p->out_w * out_c;
        rnn_pointwise(p->project, dw_row, mid, p->out_w, dst);
        if (p->add != 0) {
            const int8_t *xr = x + r * p->in_w * p->in_c;
            if (p->add_x_first) rnn_add(xr, dst, dst, p->out_w * out_c, p->add);
            else rnn_add(dst, xr, dst, p->out_w * out_c, p->add);
        }
    }
}

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
            int32_t j = 0;
#if defined(RNN_USE_SMLAD)
            for (; j + 4 <= hid; j += 4) { /* two SMLADs: (u0 h0 + u2 h2) and (u1 h1 + u3 h3) */
                uint32_t uw, h01, h23, u02, u13, h02, h13;
                __builtin_memcpy(&uw, u + j, 4);
                __builtin_memcpy(&h01, h + j, 4);
                __builtin_memcpy(&h23, h + j + 2, 4);
                __asm__("sxtb16 %0, %1" : "=r"(u02) : "r"(uw));
                __asm__("sxtb16 %0, %1, ror #8" : "=r"(u13) : "r"(uw));
                __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(h02) : "r"(h01), "r"(h23));
                __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(h13) : "r"(h23), "r"(h01));
                __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(u02), "r"(h02));
                __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(u13), "r"(h13));
            }
#endif
            for (; j < hid; j++) acc += u[j] * h[j];
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

void rnn_rnnpool_patch(const rnn_rnnpool_params *p, const rnn_view *in, int32_t oy, int32_t ox, void *scratch,
                       int8_t *out) {
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
