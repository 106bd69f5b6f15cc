// RNNPool with two FastGRNN cells, forward and backward, one patch at a time (rnnpool_lite.op.compiled).
//
// Why: the torch path (op/fused.py) is a sequence of whole-batch tensor ops; at the sizes of a CNN stem it is
// bound by moving activations through memory, not by arithmetic. Here 16 images of one patch position share the
// SIMD lanes and a patch's whole work (RNN1 along its rows and columns, then RNN2's four sweeps) stays in
// registers and L1. The backward recomputes each patch's forward instead of storing it.
//
// Conventions as FastGRNNCell.input_weights: w = [W; 2 W], b = [b_gate; 2 b_update], u = [U; 2 U]; one sigmoid
// gives z and (c + 1) / 2; h' = z (h - zeta c) + (zeta + nu) c. Input (H, W, C, N), cut and padded to the patch
// grid, N a multiple of 16; output and its gradient (ho, wo, 4 h2, N), sweeps in the order of op/fused.py
// (rows forward, rows reversed, columns forward, columns reversed). Parameter gradients: w, b, u, d zeta, d nu
// per cell, in double. Supported: C <= 64, (h1, h2) in the DISPATCH_H table, kh, kw <= 16; the functions
// return 1 (shape) or 2 (hidden sizes) otherwise.
#include <algorithm>
#include <memory>
#include <cstring>
#include <omp.h>
#include <vector>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
typedef float v16 __attribute__((vector_size(64)));
typedef int i16 __attribute__((vector_size(64)));
typedef double d16 __attribute__((vector_size(128)));
static inline d16 wide(v16 v) { return __builtin_convertvector(v, d16); }
static inline v16 ld(const float* p) { v16 v; std::memcpy(&v, p, 64); return v; }
static inline void st(float* p, v16 v) { std::memcpy(p, &v, 64); }
static inline v16 bc(float f) { return v16{} + f; }
static inline v16 vexp(v16 x) {  // Cephes expf: 2^n p(r), about 1 ulp
  x = x < bc(-87.3f) ? bc(-87.3f) : x;
  x = x > bc(88.3f) ? bc(88.3f) : x;
  v16 n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  v16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  v16 p = bc(1.9875691500E-4f);
  p = p * r + 1.3981999507E-3f; p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f; p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  i16 e = (__builtin_convertvector(n, i16) + 127) << 23;
  v16 s; std::memcpy(&s, &e, 64);
  return p * s;
}
static inline v16 rcp(v16 d) {
#ifdef __AVX512F__
  __m512 m; std::memcpy(&m, &d, 64); __m512 r0 = _mm512_rcp14_ps(m); v16 r; std::memcpy(&r, &r0, 64);
  return r * (2.f - d * r);
#else
  return 1.f / d;
#endif
}
enum { MAXC = 64, MAXK = 16 };
struct Cell { const float *w, *b, *u; float zeta, nu; int in; };
template <int H, int IN>
static inline void step(const Cell& c, const v16* x, v16* h, v16* hprev, v16* zc) {
  const int in = IN ? IN : c.in;
  if (hprev) for (int k = 0; k < H; k++) hprev[k] = h[k];
  v16 s[2 * H];
  for (int o = 0; o < 2 * H; o++) {
    v16 acc = bc(c.b[o]);
    const float* wo = c.w + (long)o * in;
    for (int k = 0; k < in; k++) acc += wo[k] * x[k];
    for (int k = 0; k < H; k++) acc += c.u[o * H + k] * h[k];
    s[o] = rcp(1.f + vexp(-acc));
  }
  const float a = c.zeta + c.nu;
  for (int k = 0; k < H; k++) {
    v16 z = s[k], cc = 2.f * s[H + k] - 1.f;
    if (zc) { zc[k] = z; zc[H + k] = cc; }
    h[k] = z * (h[k] - c.zeta * cc) + a * cc;
  }
}
// lane-wise parameter gradients of one cell: w (2H, in), b (2H), u (2H, H), d zeta, d nu
template <int H, class T>
struct Grad {  // lane-wise: float per patch, then double per thread (millions of terms)
  std::vector<T> w, b, u; T dz{}, dn{};
  explicit Grad(int in) : w(2 * H * in, T{}), b(2 * H, T{}), u(2 * H * H, T{}) {}
};
template <int H>
static void absorb(Grad<H, d16>& total, Grad<H, v16>& item) {
  for (size_t k = 0; k < item.w.size(); k++) { total.w[k] += wide(item.w[k]); item.w[k] = v16{}; }
  for (size_t k = 0; k < item.b.size(); k++) { total.b[k] += wide(item.b[k]); item.b[k] = v16{}; }
  for (size_t k = 0; k < item.u.size(); k++) { total.u[k] += wide(item.u[k]); item.u[k] = v16{}; }
  total.dz += wide(item.dz); total.dn += wide(item.dn); item.dz = item.dn = v16{};
}
template <int H>
struct Seq {  // one sequence's steps for the backward: previous states, [z; c], ds (inputs are reloaded)
  int n = 0; v16 hp[MAXK][H], zc[MAXK][2 * H], ds[MAXK][2 * H], dz, dn;
};
// backward of step t of s: dh in/out, dx out
template <int H, int IN>
static inline void step_back(const Cell& c, Seq<H>& s, int t, v16* dh, v16* dx) {
  const int in = IN ? IN : c.in;
  const float a = c.zeta + c.nu;
  v16* ds = s.ds[t];
  for (int k = 0; k < H; k++) {
    v16 z = s.zc[t][k], cc = s.zc[t][H + k], d = dh[k];
    v16 dc = d * cc;
    s.dn += dc; s.dz += dc - dc * z;
    ds[k] = d * (s.hp[t][k] - c.zeta * cc) * z * (1.f - z);
    ds[H + k] = d * (a - c.zeta * z) * (1.f - cc * cc) * 0.5f;
    dh[k] = d * z;
  }
  for (int k = 0; k < in; k++) { v16 acc = bc(0.f); for (int o = 0; o < 2 * H; o++) acc += c.w[(long)o * in + k] * ds[o]; dx[k] = acc; }
  for (int k = 0; k < H; k++) { v16 acc = dh[k]; for (int o = 0; o < 2 * H; o++) acc += c.u[o * H + k] * ds[o]; dh[k] = acc; }
}
template <int H, int IN>
static void fold(const Cell& c, Seq<H>& s, const v16 (*x)[MAXC], Grad<H, v16>& g) {
  const int in = IN ? IN : c.in;
  g.dz += s.dz; g.dn += s.dn; s.dz = v16{}; s.dn = v16{};
  for (int o = 0; o < 2 * H; o++) {
    v16 ab = bc(0.f), au[H];
    for (int k = 0; k < H; k++) au[k] = bc(0.f);
    for (int t = 0; t < s.n; t++) { v16 d = s.ds[t][o]; ab += d; for (int k = 0; k < H; k++) au[k] += d * s.hp[t][k]; }
    g.b[o] += ab;
    for (int k = 0; k < H; k++) g.u[o * H + k] += au[k];
    for (int k = 0; k < in; k++) {
      v16 aw = bc(0.f);
      for (int t = 0; t < s.n; t++) aw += s.ds[t][o] * x[t][k];
      g.w[(long)o * in + k] += aw;
    }
  }
}
struct Geo { long h, w, n; int c, kh, kw, sh, sw, ho, wo; };
template <int H1, int H2, int C>
struct Patch {
  const Geo& geo; const float* xt; Cell c1, c2;
  long pix(int y, int x, long g) const { return (((long)y * geo.w + x) * geo.c) * geo.n + g; }
  void load(int y, int x, long g, v16* dst) const { const float* p = xt + pix(y, x, g); for (int k = 0; k < (C ? C : geo.c); k++) dst[k] = ld(p + k * geo.n); }
  // RNN1 over one row (dir 0) or column (dir 1) of the patch at (i, j): summary into h; with a tape when s
  void rnn1(int i, int j, int dir, int idx, long g, v16* h, Seq<H1>* s) const {
    int len = dir == 0 ? geo.kw : geo.kh;
    v16 xbuf[MAXC];
    for (int k = 0; k < H1; k++) h[k] = bc(0.f);
    for (int t = 0; t < len; t++) {
      int y = i * geo.sh + (dir == 0 ? idx : t), x = j * geo.sw + (dir == 0 ? t : idx);
      load(y, x, g, xbuf);
      step<H1, C>(c1, xbuf, h, s ? s->hp[t] : nullptr, s ? s->zc[t] : nullptr);
    }
    if (s) s->n = len;
  }
  void forward(int i, int j, long g, float* out) const {
    v16 rows[MAXK][H1], cols[MAXK][H1];
    for (int r = 0; r < geo.kh; r++) rnn1(i, j, 0, r, g, rows[r], nullptr);
    for (int q = 0; q < geo.kw; q++) rnn1(i, j, 1, q, g, cols[q], nullptr);
    float* o = out + (((long)i * geo.wo + j) * 4 * H2) * geo.n + g;
    auto sweep = [&](v16 (*seq)[H1], int len, bool rev, int slot) {
      v16 h[H2]; for (int k = 0; k < H2; k++) h[k] = bc(0.f);
      for (int t = 0; t < len; t++) step<H2, H1>(c2, seq[rev ? len - 1 - t : t], h, nullptr, nullptr);
      for (int k = 0; k < H2; k++) st(o + (long)(slot * H2 + k) * geo.n, h[k]);
    };
    sweep(rows, geo.kh, false, 0); sweep(rows, geo.kh, true, 1); sweep(cols, geo.kw, false, 2); sweep(cols, geo.kw, true, 3);
  }
  void backward(int i, int j, long g, const float* gout, float* gxt, Grad<H1, v16>& g1, Grad<H2, v16>& g2, Seq<H1>* s1, Seq<H2>& s2) const {
    // s1: kh + kw tapes, rows first
    v16 rows[MAXK][H1], cols[MAXK][H1], drows[MAXK][H1], dcols[MAXK][H1];
    for (int r = 0; r < geo.kh; r++) rnn1(i, j, 0, r, g, rows[r], &s1[r]);
    for (int q = 0; q < geo.kw; q++) rnn1(i, j, 1, q, g, cols[q], &s1[geo.kh + q]);
    for (int r = 0; r < MAXK; r++) for (int k = 0; k < H1; k++) { drows[r][k] = bc(0.f); dcols[r][k] = bc(0.f); }
    const float* go = gout + (((long)i * geo.wo + j) * 4 * H2) * geo.n + g;
    v16 xs[MAXK][MAXC];
    auto sweep = [&](v16 (*seq)[H1], v16 (*dseq)[H1], int len, bool rev, int slot) {
      v16 h[H2]; for (int k = 0; k < H2; k++) h[k] = bc(0.f);
      for (int t = 0; t < len; t++) {
        int idx = rev ? len - 1 - t : t;
        for (int k = 0; k < H1; k++) xs[t][k] = seq[idx][k];
        step<H2, H1>(c2, xs[t], h, s2.hp[t], s2.zc[t]);
      }
      s2.n = len;
      v16 dh[H2], dx[H1];
      for (int k = 0; k < H2; k++) dh[k] = ld(go + (long)(slot * H2 + k) * geo.n);
      for (int t = len - 1; t >= 0; t--) {
        step_back<H2, H1>(c2, s2, t, dh, dx);
        int idx = rev ? len - 1 - t : t;
        for (int k = 0; k < H1; k++) dseq[idx][k] += dx[k];
      }
      fold<H2, H1>(c2, s2, xs, g2);
    };
    sweep(rows, drows, geo.kh, false, 0); sweep(rows, drows, geo.kh, true, 1);
    sweep(cols, dcols, geo.kw, false, 2); sweep(cols, dcols, geo.kw, true, 3);
    v16 dx[MAXC];
    for (int dir = 0; dir < 2; dir++) {
      int count = dir == 0 ? geo.kh : geo.kw;
      for (int idx = 0; idx < count; idx++) {
        Seq<H1>& s = s1[dir == 0 ? idx : geo.kh + idx];
        v16 dh[H1]; for (int k = 0; k < H1; k++) dh[k] = (dir == 0 ? drows : dcols)[idx][k];
        for (int t = s.n - 1; t >= 0; t--) {
          step_back<H1, C>(c1, s, t, dh, dx);
          int y = i * geo.sh + (dir == 0 ? idx : t), x = j * geo.sw + (dir == 0 ? t : idx);
          load(y, x, g, xs[t]);
          float* p = gxt + pix(y, x, g);
          for (int k = 0; k < (C ? C : geo.c); k++) st(p + k * geo.n, ld(p + k * geo.n) + dx[k]);
        }
        fold<H1, C>(c1, s, xs, g1);
      }
    }
  }
};
// On PyTorch's OpenMP pool (the loader gives this library the libgomp.so.1 torch already loaded): threads of our
// own would compete with its workers, which spin for a while after each torch op and starve them
template <class F>
static void parallel(long count, int threads, F f) {
  threads = (int)std::max(1L, std::min<long>(threads, count));
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), used = omp_get_num_threads();
    long per = (count + used - 1) / used, b = std::min(count, t * per), e = std::min(count, (t + 1) * per);
    if (b < e) f(t, b, e);
  }
}
template <int H>
static void reduce(const Grad<H, d16>& g, int in, double* out) {  // w, b, u, d zeta, d nu
  auto sum = [](d16 v) { double s = 0; for (int l = 0; l < 16; l++) s += v[l]; return s; };
  long n = 0;
  for (long k = 0; k < 2L * H * in; k++) out[n++] += sum(g.w[k]);
  for (int k = 0; k < 2 * H; k++) out[n++] += sum(g.b[k]);
  for (int k = 0; k < 2 * H * H; k++) out[n++] += sum(g.u[k]);
  out[n++] += sum(g.dz); out[n++] += sum(g.dn);
}
template <int H1, int H2, int C>
static void run_forward(const Geo& geo, const float* xt, Cell c1, Cell c2, float* out, int threads) {
  Patch<H1, H2, C> p{geo, xt, c1, c2};
  long groups = geo.n / 16, items = (long)geo.ho * geo.wo * groups;
  parallel(items, threads, [&](int, long b, long e) {
    for (long it = b; it < e; it++) { long pos = it / groups; p.forward((int)(pos / geo.wo), (int)(pos % geo.wo), (it % groups) * 16, out); }
  });
}
// threads split the lane groups where there are as many as threads (each writes only its own images' input
// gradients); else the (lane group, patch) items, each thread into its own input-gradient buffer (thread 0 into
// gxt), summed into gxt after in thread order: small batches and small maps keep every thread busy
template <int H1, int H2, int C>
static void run_backward(const Geo& geo, const float* xt, Cell c1, Cell c2, const float* gout, float* gxt,
                         double* g1, double* g2, int threads) {
  Patch<H1, H2, C> p{geo, xt, c1, c2};
  long groups = geo.n / 16, patches = (long)geo.ho * geo.wo;
  bool by_group = groups >= threads;
  long items = by_group ? groups : groups * patches;
  int used = (int)std::max(1L, std::min<long>(threads, items));
  long size = geo.h * geo.w * geo.c * geo.n;
  std::vector<float> own(by_group ? 0 : (used - 1) * size, 0.f);
  long n1 = 2L * H1 * geo.c + 2 * H1 + 2 * H1 * H1 + 2, n2 = 2L * H2 * H1 + 2 * H2 + 2 * H2 * H2 + 2;
  std::vector<double> part1(used * n1, 0.0), part2(used * n2, 0.0);
  parallel(items, used, [&](int tid, long b, long e) {
    float* gx = by_group || tid == 0 ? gxt : own.data() + (tid - 1) * size;
    Grad<H1, d16> a1(geo.c); Grad<H2, d16> a2(H1); Grad<H1, v16> i1(geo.c); Grad<H2, v16> i2(H1);
    std::vector<Seq<H1>> s1(2 * MAXK); auto s2 = std::make_unique<Seq<H2>>();
    for (auto& q : s1) q.dz = q.dn = v16{};
    s2->dz = s2->dn = v16{};
    auto one = [&](long g, long pos) {
      p.backward((int)(pos / geo.wo), (int)(pos % geo.wo), g * 16, gout, gx, i1, i2, s1.data(), *s2);
      absorb(a1, i1); absorb(a2, i2);
    };
    for (long it = b; it < e; it++) {
      if (by_group) for (long pos = 0; pos < patches; pos++) one(it, pos);
      else one(it / patches, it % patches);
    }
    reduce(a1, geo.c, part1.data() + tid * n1); reduce(a2, H1, part2.data() + tid * n2);
  });
  if (!by_group && used > 1)
    parallel(size, threads, [&](int, long b, long e) {
      for (int t = 0; t < used - 1; t++) { const float* o = own.data() + t * size; for (long k = b; k < e; k++) gxt[k] += o[k]; }
    });
  for (int t = 0; t < used; t++) { for (long k = 0; k < n1; k++) g1[k] += part1[t * n1 + k]; for (long k = 0; k < n2; k++) g2[k] += part2[t * n2 + k]; }
}
#define DISPATCH_H(FN, CC, ...)                                                            \
  switch (h1 * 100 + h2) {                                                                 \
    case 404: FN<4, 4, CC>(__VA_ARGS__); return 0;   case 408: FN<4, 8, CC>(__VA_ARGS__); return 0;   \
    case 416: FN<4, 16, CC>(__VA_ARGS__); return 0;  case 808: FN<8, 8, CC>(__VA_ARGS__); return 0;   \
    case 816: FN<8, 16, CC>(__VA_ARGS__); return 0;  case 1616: FN<16, 16, CC>(__VA_ARGS__); return 0; \
    case 1632: FN<16, 32, CC>(__VA_ARGS__); return 0; case 3232: FN<32, 32, CC>(__VA_ARGS__); return 0; \
  }                                                                                        \
  return 2;
#define DISPATCH(FN, ...) \
  if (c == 8) { DISPATCH_H(FN, 8, __VA_ARGS__) } \
  if (c == 4) { DISPATCH_H(FN, 4, __VA_ARGS__) } \
  DISPATCH_H(FN, 0, __VA_ARGS__)
static bool bad(const Geo& g) { return g.n % 16 || g.c > MAXC || g.kh > MAXK || g.kw > MAXK || g.c < 1; }
extern "C" int rnnpool_forward(const float* xt, long h, long w, long n, int c, int h1, int h2, int kh, int kw, int sh,
                               int sw, int ho, int wo, const float* w1, const float* b1, const float* u1, float z1, float n1,
                               const float* w2, const float* b2, const float* u2, float z2, float n2, float* out, int threads) {
  Geo geo{h, w, n, c, kh, kw, sh, sw, ho, wo};
  if (bad(geo)) return 1;
  Cell c1{w1, b1, u1, z1, n1, c}, c2{w2, b2, u2, z2, n2, h1};
  DISPATCH(run_forward, geo, xt, c1, c2, out, threads)
}
extern "C" int rnnpool_backward(const float* xt, long h, long w, long n, int c, int h1, int h2, int kh, int kw, int sh,
                                int sw, int ho, int wo, const float* w1, const float* b1, const float* u1, float z1, float n1,
                                const float* w2, const float* b2, const float* u2, float z2, float n2,
                                const float* gout, float* gxt, double* g1, double* g2, int threads) {
  Geo geo{h, w, n, c, kh, kw, sh, sw, ho, wo};
  if (bad(geo)) return 1;
  Cell c1{w1, b1, u1, z1, n1, c}, c2{w2, b2, u2, z2, n2, h1};
  DISPATCH(run_backward, geo, xt, c1, c2, gout, gxt, g1, g2, threads)
}
// (N, C, H, W) with any strides (NCHW or channels_last) to the kernel's (H, W, C, np), images n..np zero, and back:
// a strided transpose PyTorch's copy_ does several times slower, and the kernel would pay it on every call
extern "C" void rnnpool_pack(const float* x, long n, int c, long h, long w, long sn, long sc, long sh, long sw, long np,
                             float* t, int threads) {
  parallel(h, threads, [&](int, long b, long e) {
    for (long y = b; y < e; y++)
      for (long q = 0; q < w; q++)
        for (int k = 0; k < c; k++) {
          float* o = t + ((y * w + q) * c + k) * np;
          const float* in = x + y * sh + q * sw + k * sc;
          for (long i = 0; i < n; i++) o[i] = in[i * sn];
          for (long i = n; i < np; i++) o[i] = 0.f;
        }
  });
}
extern "C" void rnnpool_unpack(const float* t, long n, int c, long h, long w, long np, float* x, long sn, long sc, long sh,
                               long sw, int threads) {
  parallel(h, threads, [&](int, long b, long e) {
    for (long y = b; y < e; y++)
      for (long q = 0; q < w; q++)
        for (int k = 0; k < c; k++) {
          const float* in = t + ((y * w + q) * c + k) * np;
          float* o = x + y * sh + q * sw + k * sc;
          for (long i = 0; i < n; i++) o[i * sn] = in[i];
        }
  });
}
