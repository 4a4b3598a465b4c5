// The drift field's elementwise work on the CPU: distances, energies and per-temperature force coefficients
// (raydrift/method/drift.py, steps 1-5), one group at a time so that a group's [Cg, N] block stays in cache.
//
// Plain C++17 with GCC/Clang vector extensions (16 floats: one AVX-512 register, two AVX2 ones) and OpenMP,
// no torch headers: raydrift/method/native/__init__.py builds it with the system compiler on first use and
// calls it through ctypes on float32 tensors' memory. Inductor's generated code for the same math loops over
// the whole [G, Cg, N] call once per reduction (about 17 passes on the per-location shape); here each group
// is finished while it is in L1/L2, and each temperature costs three exponentials per entry.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <omp.h>

namespace {

constexpr int W = 16;
typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

inline vf splat(float x) { return vf{} + x; }

// Lane mask: lane l is set where j + l < limit.
inline vi below(int64_t j, int64_t limit) {
  vi v;
  for (int l = 0; l < W; ++l) v[l] = l;
  return v < static_cast<int32_t>(std::clamp<int64_t>(limit - j, 0, W));
}

// The first min(n, W) floats at p, the other lanes set to pad.
inline vf load(const float* p, int64_t n, float pad) {
  vf v;
  if (n >= W) {
    std::memcpy(&v, p, sizeof v);
  } else {
    v = splat(pad);
    std::memcpy(&v, p, n * sizeof(float));
  }
  return v;
}

inline void store(float* p, vf v, int64_t n) {
  if (n >= W) {
    std::memcpy(p, &v, sizeof v);
  } else {
    std::memcpy(p, &v, n * sizeof(float));
  }
}

inline vf vmin(vf a, vf b) { return a < b ? a : b; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

typedef float vf8 __attribute__((vector_size(8 * sizeof(float))));
typedef float vf4 __attribute__((vector_size(4 * sizeof(float))));

inline float hsum(vf v) {  // a tree of halves: 16 -> 8 -> 4 lanes, then 4 adds
  vf8 a, b;
  std::memcpy(&a, &v, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
  a += b;
  vf4 c, d;
  std::memcpy(&c, &a, sizeof c);
  std::memcpy(&d, reinterpret_cast<const char*>(&a) + sizeof c, sizeof d);
  c += d;
  return (c[0] + c[1]) + (c[2] + c[3]);
}

inline float hmin(vf v) {
  float m = v[0];
  for (int l = 1; l < W; ++l) m = std::min(m, v[l]);
  return m;
}

// e^x: 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2 (Cody-Waite split of ln 2), e^r by its degree-7
// Taylor polynomial (truncation error below 2e-8 relative); 0 below -87 (where float32 turns subnormal).
inline vf exp_v(vf x) {
  const vf xc = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
  const vf round = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  const vf n = (xc * 1.44269504088896341f + round) - round;
  vf r = xc - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  vf p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  const vf res = p * reinterpret_cast<const vf&>(bits);
  return x < -87.0f ? splat(0.0f) : res;
}

// log x for x > 0 (normal): x = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(z), z = (m - 1) / (m + 1),
// |z| < 0.172, by its series to z^11 (truncation below 1e-9).
inline vf log_v(vf x) {
  const vi bits = reinterpret_cast<const vi&>(x);
  vi ex = ((bits >> 23) & 0xff) - 127;
  vi mbits = (bits & 0x007fffff) | 0x3f800000;  // m in [1, 2)
  vf m = reinterpret_cast<const vf&>(mbits);
  const vi big = m > 1.41421356237f;
  m = big ? m * 0.5f : m;
  ex = big ? ex + 1 : ex;
  const vf z = (m - 1.0f) / (m + 1.0f), z2 = z * z;
  vf p = splat(2.0f / 11.0f);
  p = p * z2 + 2.0f / 9.0f;
  p = p * z2 + 2.0f / 7.0f;
  p = p * z2 + 2.0f / 5.0f;
  p = p * z2 + 2.0f / 3.0f;
  p = p * z2 + 2.0f;
  return __builtin_convertvector(ex, vf) * 0.693147180559945309f + p * z;
}

inline float row_min(const float* e, int64_t n) {
  vf m = splat(INFINITY);
  for (int64_t j = 0; j < n; j += W) m = vmin(m, load(e + j, n - j, INFINITY));
  return hmin(m);
}

// sum_j exp(nt * (e_j - e_min)), nt = -1 / tau < 0: the softmax's sum shifted by its largest term.
inline float row_sum(const float* e, int64_t n, float nt, float e_min) {
  vf s = splat(0.0f);
  for (int64_t j = 0; j < n; j += W) s += exp_v(nt * (load(e + j, n - j, INFINITY) - e_min));
  return hsum(s);
}

enum Norm { XY = 0, Y = 1, NONE = 2 };

struct Call {
  const float* energy;  // [G, Cg, N]
  const float* w;       // [G, N] target weights or null
  float* out;           // [G, T, Cg, N]
  int64_t G, Cg, N, k, T;
  int norm;
  float floor;
  const float* taus;
};

// Per group: the smallest energy of each row (over all targets, or over negatives and positives apart: norm Y)
// and of each column, the same at every temperature; and at one temperature the softmaxes' log-normalisers
// subtracted from the logits: per row (half of it for XY) and per column (half, XY only).
struct Scratch {
  std::vector<float> min_neg, min_pos, min_col, shift_neg, shift_pos, half_col;
  Scratch(int64_t Cg, int64_t N) : min_neg(Cg), min_pos(Cg), min_col(N), shift_neg(Cg), shift_pos(Cg), half_col(N) {}
};

void row_minima(const Call& c, const float* e, int64_t r0, int64_t r1, Scratch& s) {
  for (int64_t i = r0; i < r1; ++i) {
    const float* row = e + i * c.N;
    if (c.norm == Y) {
      s.min_neg[i] = c.k ? row_min(row, c.k) : 0.0f;
      s.min_pos[i] = row_min(row + c.k, c.N - c.k);
    } else {
      s.min_neg[i] = s.min_pos[i] = row_min(row, c.N);
    }
  }
}

void column_minima(const Call& c, const float* e, int64_t c0, int64_t c1, Scratch& s) {
  for (int64_t j = c0; j < c1; j += W) {
    vf m = splat(INFINITY);
    for (int64_t i = 0; i < c.Cg; ++i) m = vmin(m, load(e + i * c.N + j, c1 - j, INFINITY));
    store(s.min_col.data() + j, m, c1 - j);
  }
}

// shift = factor * (nt * min + log(sum)) for rows [r0, r1), 16 logarithms at a time.
void log_normalisers(const float* sum, const float* min, float nt, float factor, int64_t r0, int64_t r1, float* out) {
  for (int64_t i = r0; i < r1; i += W) {
    const int64_t n = r1 - i;
    store(out + i, factor * (nt * load(min + i, n, 0.0f) + log_v(load(sum + i, n, 1.0f))), n);
  }
}

void row_shifts(const Call& c, const float* e, float nt, int64_t r0, int64_t r1, Scratch& s) {
  if (c.norm == NONE) return;
  for (int64_t i = r0; i < r1; ++i) {  // the sums first, in the shift arrays
    const float* row = e + i * c.N;
    if (c.norm == XY) {
      s.shift_neg[i] = row_sum(row, c.N, nt, s.min_neg[i]);
    } else {
      s.shift_neg[i] = c.k ? row_sum(row, c.k, nt, s.min_neg[i]) : 1.0f;
      s.shift_pos[i] = row_sum(row + c.k, c.N - c.k, nt, s.min_pos[i]);
    }
  }
  if (c.norm == XY) {
    log_normalisers(s.shift_neg.data(), s.min_neg.data(), nt, 0.5f, r0, r1, s.shift_neg.data());
    std::copy(s.shift_neg.begin() + r0, s.shift_neg.begin() + r1, s.shift_pos.begin() + r0);
  } else {
    log_normalisers(s.shift_neg.data(), s.min_neg.data(), nt, 1.0f, r0, r1, s.shift_neg.data());
    log_normalisers(s.shift_pos.data(), s.min_pos.data(), nt, 1.0f, r0, r1, s.shift_pos.data());
  }
}

// Half the column log-normalisers (the softmax over generated samples) of columns [c0, c1) of one group.
void column_shifts(const Call& c, const float* e, float nt, int64_t c0, int64_t c1, Scratch& s) {
  for (int64_t j = c0; j < c1; j += W) {
    const int64_t n = c1 - j;
    const vf m = load(s.min_col.data() + j, n, 0.0f);
    vf sum = splat(0.0f);
    for (int64_t i = 0; i < c.Cg; ++i) sum += exp_v(nt * (load(e + i * c.N + j, n, INFINITY) - m));
    store(s.half_col.data() + j, 0.5f * (nt * m + log_v(sum)), n);
  }
}

// Row i of one group at one temperature: affinities, floored and weighted, cross-weighted into coefficients.
template <int NORM, bool WEIGHTED>
void row_coefficients(const Call& c, const float* e, const float* w, const float* half_col, float nt,
                      float shift_neg, float shift_pos, float* out) {
  const int64_t N = c.N, k = c.k;
  vf sum_neg = splat(0.0f), sum_all = splat(0.0f);
  for (int64_t j = 0; j < N; j += W) {
    const int64_t n = N - j;
    const vi is_neg = below(j, k);
    vf logit = nt * load(e + j, n, INFINITY) - (is_neg ? splat(shift_neg) : splat(shift_pos));
    if (NORM == XY) logit -= load(half_col + j, n, 0.0f);
    vf a = vmax(exp_v(logit), splat(c.floor));
    if (WEIGHTED) a *= load(w + j, n, 0.0f);
    a = below(j, N) ? a : splat(0.0f);
    store(out + j, a, n);
    sum_all += a;
    sum_neg += is_neg ? a : splat(0.0f);
  }
  // Repulsion scaled by the total attraction and vice versa: each row sums to zero.
  const float neg = hsum(sum_neg), pos = hsum(sum_all) - neg;
  const vf neg_factor = splat(-pos), pos_factor = splat(neg);
  for (int64_t j = 0; j < N; j += W) {
    const int64_t n = N - j;
    store(out + j, load(out + j, n, 0.0f) * (below(j, k) ? neg_factor : pos_factor), n);
  }
}

float* coef_row(const Call& c, int64_t g, int64_t t, int64_t i) { return c.out + ((g * c.T + t) * c.Cg + i) * c.N; }

void rows_coefficients(const Call& c, int64_t g, int64_t t, float nt, int64_t r0, int64_t r1, const Scratch& s) {
  const float* e = c.energy + g * c.Cg * c.N;
  const float* w = c.w ? c.w + g * c.N : nullptr;
#define RD_ROWS(NORM, WEIGHTED)                                                                           \
  for (int64_t i = r0; i < r1; ++i)                                                                       \
    row_coefficients<NORM, WEIGHTED>(c, e + i * c.N, w, s.half_col.data(), nt, s.shift_neg[i], s.shift_pos[i], \
                                     coef_row(c, g, t, i))
  if (c.norm == XY) {
    if (w) RD_ROWS(XY, true); else RD_ROWS(XY, false);
  } else if (c.norm == Y) {
    if (w) RD_ROWS(Y, true); else RD_ROWS(Y, false);
  } else {
    if (w) RD_ROWS(NONE, true); else RD_ROWS(NONE, false);
  }
#undef RD_ROWS
}

// One group on one thread.
void group_serial(const Call& c, int64_t g, Scratch& s) {
  const float* e = c.energy + g * c.Cg * c.N;
  row_minima(c, e, 0, c.Cg, s);
  if (c.norm == XY) column_minima(c, e, 0, c.N, s);
  for (int64_t t = 0; t < c.T; ++t) {
    const float nt = -1.0f / c.taus[t];
    if (c.norm == XY) column_shifts(c, e, nt, 0, c.N, s);
    row_shifts(c, e, nt, 0, c.Cg, s);
    rows_coefficients(c, g, t, nt, 0, c.Cg, s);
  }
}

// Small matrix products, C = A @ B per group, without packing: R rows by 4 vectors (64 columns) of C held in
// registers while k runs over B's rows (16 of the 32 registers AVX-512 has; only used there). Each group's
// products are a few hundred thousand multiply-adds, where the BLAS's per-call work outweighs the product.
template <int R>
void gemm_rows(const float* A, int64_t K, const float* B, int64_t N, float* C, int64_t j) {
  const int64_t n = N - j;
  vf acc[R][4] = {};
  if (n >= 4 * W) {
    for (int64_t k = 0; k < K; ++k) {
      const float* b = B + k * N + j;
      const vf b0 = load(b, W, 0.0f), b1 = load(b + W, W, 0.0f), b2 = load(b + 2 * W, W, 0.0f),
               b3 = load(b + 3 * W, W, 0.0f);
      for (int r = 0; r < R; ++r) {
        const vf a = splat(A[r * K + k]);
        acc[r][0] += a * b0;
        acc[r][1] += a * b1;
        acc[r][2] += a * b2;
        acc[r][3] += a * b3;
      }
    }
  } else {
    for (int64_t k = 0; k < K; ++k) {
      const float* b = B + k * N + j;
      vf bv[4];
      for (int c = 0; c < 4; ++c) bv[c] = load(b + c * W, std::clamp<int64_t>(n - c * W, 0, W), 0.0f);
      for (int r = 0; r < R; ++r) {
        const vf a = splat(A[r * K + k]);
        for (int c = 0; c < 4; ++c) acc[r][c] += a * bv[c];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 4; ++c)
      if (n > c * W) store(C + r * N + j + c * W, acc[r][c], n - c * W);
}

void gemm_block(const float* A, int64_t rows, int64_t K, const float* B, int64_t N, float* C) {
  for (int64_t j = 0; j < N; j += 4 * W) {
    switch (rows) {
      case 1: gemm_rows<1>(A, K, B, N, C, j); break;
      case 2: gemm_rows<2>(A, K, B, N, C, j); break;
      case 3: gemm_rows<3>(A, K, B, N, C, j); break;
      default: gemm_rows<4>(A, K, B, N, C, j); break;
    }
  }
}

}  // namespace

extern "C" {

// a = alpha a + beta b (a, b: [G, n]); with out, also out[g] = the new a[g]'s sum of squares, summed as in
// rd_sum_squares (blocks of 1024 floats, each block's sum kept in double, added in block order).
void rd_axpby(float* a, float alpha, const float* b, float beta, int64_t G, int64_t n, double* out, int threads) {
  const int64_t block = 64 * W;
  const int64_t blocks = (n + block - 1) / block;
  std::vector<double> partial(out ? G * blocks : 0);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t gb = 0; gb < G * blocks; ++gb) {
    const int64_t g = gb / blocks, b0 = (gb % blocks) * block;
    float* ra = a + g * n;
    const float* rb = b + g * n;
    const int64_t end = std::min(n, b0 + block);
    vf acc = splat(0.0f);
    for (int64_t j = b0; j < end; j += W) {
      const vf v = alpha * load(ra + j, end - j, 0.0f) + beta * load(rb + j, end - j, 0.0f);
      store(ra + j, v, end - j);
      acc += v * v;
    }
    if (out) partial[gb] = hsum(acc);
  }
  if (out) {
    for (int64_t g = 0; g < G; ++g) {
      double total = 0.0;
      for (int64_t b = 0; b < blocks; ++b) total += partial[g * blocks + b];
      out[g] = total;
    }
  }
}

// out[g] = sum of squares of a[g, :n] for g < G (a: [G, n]): blocks of 1024 floats (16 lanes summed in float)
// shared among the threads whatever G is, each block's sum kept in double and added in block order, so the
// result does not depend on the thread count.
void rd_sum_squares(const float* a, int64_t G, int64_t n, double* out, int threads) {
  const int64_t block = 64 * W;
  const int64_t blocks = (n + block - 1) / block;
  std::vector<double> partial(G * blocks);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t gb = 0; gb < G * blocks; ++gb) {
    const int64_t g = gb / blocks, b = gb % blocks;
    const float* row = a + g * n;
    const int64_t end = std::min(n, (b + 1) * block);
    vf acc = splat(0.0f);
    for (int64_t j = b * block; j < end; j += W) {
      const vf v = load(row + j, end - j, 0.0f);
      acc += v * v;
    }
    partial[gb] = hsum(acc);
  }
  for (int64_t g = 0; g < G; ++g) {
    double total = 0.0;
    for (int64_t b = 0; b < blocks; ++b) total += partial[g * blocks + b];
    out[g] = total;
  }
}

// y [G, N, S]: the targets [x, neg, pos] of each group minus their mean (x [G, Cg, S], neg [G, Cn, S],
// pos [G, Cp, S]); y_sq [G, N]: each centred target's squared norm.
void rd_centre(const float* x, const float* neg, const float* pos, float* y, float* y_sq, int64_t G, int64_t Cg,
               int64_t Cn, int64_t Cp, int64_t S, int threads) {
  const int64_t N = Cg + Cn + Cp;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> mean(S);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < G; ++g) {
      const float* parts[3] = {x + g * Cg * S, neg + g * Cn * S, pos + g * Cp * S};
      const int64_t rows[3] = {Cg, Cn, Cp};
      std::fill(mean.begin(), mean.end(), 0.0f);
      for (int p = 0; p < 3; ++p)
        for (int64_t i = 0; i < rows[p]; ++i)
          for (int64_t d = 0; d < S; d += W) store(&mean[d], load(&mean[d], S - d, 0.0f) + load(parts[p] + i * S + d, S - d, 0.0f), S - d);
      for (int64_t d = 0; d < S; d += W) store(&mean[d], load(&mean[d], S - d, 0.0f) * (1.0f / N), S - d);
      float* out = y + g * N * S;
      float* sq = y_sq + g * N;
      for (int p = 0; p < 3; ++p)
        for (int64_t i = 0; i < rows[p]; ++i, out += S, ++sq) {
          vf acc = splat(0.0f);
          for (int64_t d = 0; d < S; d += W) {
            const vf v = load(parts[p] + i * S + d, S - d, 0.0f) - load(&mean[d], S - d, 0.0f);
            store(out + d, v, S - d);
            acc += v * v;
          }
          *sq = hsum(acc);
        }
    }
  }
}

// In place: products xy [G, Cg, N] of the centred samples and targets (x_i . y_j, samples first among the
// targets) -> distances sqrt(max(sq_i + sq_j - 2 xy_ij, floor)) with sq [G, N] the targets' squared norms;
// the self pair's (j = i) d2 counts as zero. Returns the sum of the distances weighted by the target
// weights w [G, N] (or null: all 1).
double rd_distances(float* xy, const float* sq, const float* w, int64_t G, int64_t Cg, int64_t N, float floor,
                    int threads) {
  std::vector<double> partial(threads, 0.0);  // per thread, added in thread order: the same sum every run
#pragma omp parallel num_threads(threads)
  {
    double total = 0.0;
#pragma omp for schedule(static)
    for (int64_t gi = 0; gi < G * Cg; ++gi) {
      float* row = xy + gi * N;
      const int64_t g = gi / Cg, i = gi % Cg;
      const float* sq_g = sq + g * N;
      const float sq_i = sq_g[i];
      for (int64_t j = 0; j < N; ++j)  // vectorised (no errno)
        row[j] = std::sqrt(std::max(sq_i + sq_g[j] - 2.0f * row[j], floor));
      if (i < N) row[i] = std::sqrt(floor);
      const float* wr = w ? w + g * N : nullptr;
      vf s = splat(0.0f);
      for (int64_t j = 0; j < N; j += W) s += load(row + j, N - j, 0.0f) * (wr ? load(wr + j, N - j, 0.0f) : splat(1.0f));
      total += hsum(s);
    }
    partial[omp_get_thread_num()] = total;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// In place: distances -> energies: d * inv_scale, plus self_mask on the self pair, then the kernel's exponent
// (kernel 0: laplace, e = d; 1: gaussian, e = d^2 / 2).
void rd_energy(float* d, int64_t G, int64_t Cg, int64_t N, float inv_scale, float self_mask, int kernel, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t gi = 0; gi < G * Cg; ++gi) {
    float* row = d + gi * N;
    const int64_t i = gi % Cg;
    for (int64_t j = 0; j < N; j += W) store(row + j, load(row + j, N - j, 0.0f) * inv_scale, N - j);
    if (i < N) row[i] += self_mask;
    if (kernel == 1) {
      for (int64_t j = 0; j < N; j += W) {
        const vf v = load(row + j, N - j, 0.0f);
        store(row + j, 0.5f * v * v, N - j);
      }
    }
  }
}

// Force coefficients out [G, T, Cg, N] from energies [G, Cg, N] at temperatures taus [T]: targets [:k] are
// negatives, [k:] positives; norm 0: xy, 1: y, 2: none; floor: the affinity's lower bound (0: none).
void rd_coefficients(const float* energy, const float* w, float* out, int64_t G, int64_t Cg, int64_t N, int64_t k,
                     const float* taus, int64_t T, int norm, float floor, int threads) {
  const Call c{energy, w, out, G, Cg, N, k, T, norm, floor, taus};
  if (G >= 4 * threads || threads == 1) {  // whole groups per thread
#pragma omp parallel num_threads(threads)
    {
      Scratch s(Cg, N);
#pragma omp for schedule(static)
      for (int64_t g = 0; g < G; ++g) group_serial(c, g, s);
    }
    return;
  }
  // Few groups: each group's rows and columns split among the threads, in blocks of 4 vectors.
  Scratch s(Cg, N);
  const int64_t block = 4 * W;
  const int64_t row_blocks = (Cg + block - 1) / block, col_blocks = (N + block - 1) / block;
#pragma omp parallel num_threads(threads)
  for (int64_t g = 0; g < G; ++g) {
    const float* e = energy + g * Cg * N;
#pragma omp for schedule(static) nowait
    for (int64_t b = 0; b < row_blocks; ++b) row_minima(c, e, b * block, std::min(Cg, (b + 1) * block), s);
    if (norm == XY) {
#pragma omp for schedule(static) nowait
      for (int64_t b = 0; b < col_blocks; ++b) column_minima(c, e, b * block, std::min(N, (b + 1) * block), s);
    }
#pragma omp barrier
    for (int64_t t = 0; t < T; ++t) {
      const float nt = -1.0f / taus[t];
      if (norm == XY) {
#pragma omp for schedule(static) nowait
        for (int64_t b = 0; b < col_blocks; ++b) column_shifts(c, e, nt, b * block, std::min(N, (b + 1) * block), s);
      }
#pragma omp for schedule(static)
      for (int64_t b = 0; b < row_blocks; ++b) row_shifts(c, e, nt, b * block, std::min(Cg, (b + 1) * block), s);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < row_blocks; ++b) rows_coefficients(c, g, t, nt, b * block, std::min(Cg, (b + 1) * block), s);
    }
  }
}

// C [G, M, N] = A @ B per group (A [G, M, K], B [G, K, N], C [G, M, N], contiguous). Blocks of 4 rows of one
// group shared among the threads.
void rd_bmm(const float* A, const float* B, float* C, int64_t G, int64_t M, int64_t K, int64_t N, int threads) {
  const int64_t blocks = (M + 3) / 4;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t gb = 0; gb < G * blocks; ++gb) {
    const int64_t g = gb / blocks, i = (gb % blocks) * 4;
    gemm_block(A + (g * M + i) * K, std::min<int64_t>(4, M - i), K, B + g * K * N, N, C + (g * M + i) * N);
  }
}

int rd_small_gemm() {  // whether rd_bmm is meant to be used here: compiled for AVX-512
#ifdef __AVX512F__
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"
