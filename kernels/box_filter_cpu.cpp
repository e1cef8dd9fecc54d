// CPU kernels of the box filter.
//
// Operators (namespace boxpose_kernels; the public, autograd-aware op is boxpose::box_filter, defined in
// boxpose/ops/box_conv.py, which calls these):
//   box_filter_forward(input, xs, ys, coef, max_size, snapped) -> out
//   box_filter_backward(grad_output, input, xs, ys, coef, max_size, snapped, output_mask)
//       -> (grad_input, grad_xs, grad_ys, grad_coef); gradients not asked for are zeros
// (The CPU emulation of the CUDA kernels, for the tests, is a separate library: box_filter_emulation.cpp.)
//
// The forward and the input gradient (the mirrored filter applied to the output gradient) use the
// filter's separable form (below): running sums along x, taps along x fused with running sums along y,
// taps along y; every inner loop runs over contiguous memory and vectorises. The corner gradients
// are sums of the output gradient times the summed-area table at the corners' shifts (add_corner_dots_row).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <type_traits>
#include <vector>

#include "box_filter_common.h"
#include "box_filter_torch.h"

namespace boxpose {
namespace {

// ---------------------------------------------------------------------------------------------------
// Transposes (channels-last rows <-> per-channel rows; rows <-> columns for the running sums along x).

#if defined(__AVX2__)
// r[j] <- column j of the 8 x 8 block whose rows are r[0..8).
inline void transpose_8x8_registers(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
    t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
  }
  for (int i = 0; i < 8; ++i) r[i] = t[i];
}

// dst[j * ld_dst + i] = src[i * ld_src + j] for an 8 x 8 block of floats.
inline void transpose_8x8(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
  transpose_8x8_registers(r);
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * ld_dst, r[i]);
}
#endif

// dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols (8 x 8 register blocks for floats
// where AVX2 is available, element by element otherwise and at the edges).
template <typename src_t, typename dst_t>
void transpose(const src_t* src, int64_t ld_src, dst_t* dst, int64_t ld_dst, int64_t rows, int64_t cols) {
  int64_t i0 = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<src_t, float> && std::is_same_v<dst_t, float>) {
    for (; i0 + 8 <= rows; i0 += 8) {
      int64_t j0 = 0;
      for (; j0 + 8 <= cols; j0 += 8) transpose_8x8(src + i0 * ld_src + j0, ld_src, dst + j0 * ld_dst + i0, ld_dst);
      for (int64_t i = i0; i < i0 + 8; ++i)
        for (int64_t j = j0; j < cols; ++j) dst[j * ld_dst + i] = src[i * ld_src + j];
    }
  }
#endif
  for (int64_t i = i0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ld_dst + i] = static_cast<dst_t>(src[i * ld_src + j]);
}

// Running sums along row y of channels [c0, c0 + channels) of one NHWC image with C channels, all
// channels at once: stage[x * channels + cl] = sum of image[y][u][c0 + cl] for u <= x, added in the
// order u = 0, 1, ... (the order of every running sum along x in this file). run: scratch of `channels`.
// (Float blocks in whole vectors of 8 channels take build_prefix_tile_nhwc's register path instead.)
template <typename scalar_t, typename acc_t>
void running_sums_nhwc(const scalar_t* image, int y, int W, int64_t C, int64_t c0, int64_t channels, acc_t* run,
                       acc_t* stage) {
  const scalar_t* in = image + static_cast<int64_t>(y) * W * C + c0;
  std::fill(run, run + channels, acc_t(0));
  for (int x = 0; x < W; ++x) {
    const scalar_t* __restrict__ pixel = in + static_cast<int64_t>(x) * C;
    // The block's channels are one or two cache lines every C elements, a stride the hardware
    // prefetcher follows too late: ask for the same pixel of the next row (a row of work ahead).
    // (Past the last row the address is outside the image; a prefetch never faults.)
    __builtin_prefetch(pixel + static_cast<int64_t>(W) * C);
    __builtin_prefetch(pixel + static_cast<int64_t>(W) * C + channels - 1);
    acc_t* __restrict__ sums = stage + static_cast<int64_t>(x) * channels;
#pragma omp simd
    for (int64_t cl = 0; cl < channels; ++cl) {
      run[cl] += static_cast<acc_t>(pixel[cl]);
      sums[cl] = run[cl];
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The filter in separable form (the forward, and the input gradient, which is the mirrored filter
// applied to the output gradient). The SAT is the input summed along x, then along y, and every
// sampling step is linear, so the order can change: for output channel j
//
//     out[y][x] = sum_a sum_p wy[a][p] * Q_a[y - r + ty[a] + p][x],       Q_a[i] = sum_{v < i} X_a[v],
//     X_a[v][x] = sum_b coef[a][b] sum_q wx[b][q] * P[v][x - r + tx[b] + q],   P[v][u] = sum_{s < u} input[v][s],
//
// with (wx[b][0], wx[b][1]) = (1 - fx[b], fx[b]), likewise wy, and indices clamped into [0, H] and
// [0, W] as for the SAT (S[i][u] = sum_{v < i} P[v][u]). A row a of coefficients that is
// a multiple of an earlier row shares that row's Q (group): a plain box, coefficients [[1, -1], [-1, 1]],
// has one group, so it costs 4 multiply-adds along x and 4 along y per output, all in loops over
// contiguous memory; the running sums are along x per input row (P, shared by the m outputs of an input
// channel) and along y per column (Q). Compared with sampling the 2-D table, the sums are smaller (a
// row's, then a column's, not a quadrant's) and round less.
//
// P and Q carry margins, so that no read needs a clamp: each row of P has zeros on its left and copies
// of P[v][W] on its right (PrefixLayout), and Q has zero rows above row 1 and copies of row H below
// (ColumnSumLayout). The margins that hold zeros are never written: a scratch starts zeroed.

constexpr int kMaxTaps = 2 * kMaxCorners;

struct PrefixLayout {
  int left;        // zeros before P[v][0] (itself zero): reads at u < 0
  int pitch;       // a row: left + W + 1 + copies of P[v][W] (reads at u > W)
  int64_t plane;   // H rows
};

inline PrefixLayout prefix_layout(int H, int W, int64_t k) {
  const int r = static_cast<int>((k - 1) / 2), reach = static_cast<int>(k) - r;  // offsets in [-r, reach]
  const int pitch = r + W + 1 + std::max(0, reach - 1);
  return {r, pitch, static_cast<int64_t>(H) * pitch};
}

struct ColumnSumLayout {
  int above;       // zero rows before Q[0] (itself zero): reads at i < 0
  int below;       // copies of Q[H] after it: reads at i > H
  int64_t plane;   // (above + H + 1 + below) rows of W
};

inline ColumnSumLayout column_sum_layout(int H, int W, int64_t k) {
  const int r = static_cast<int>((k - 1) / 2), reach = static_cast<int>(k) - r;
  const int below = std::max(0, reach - 1);
  return {r, below, static_cast<int64_t>(r + H + 1 + below) * W};
}

// One output channel in separable form: per group g, the taps along x (offsets relative to x, weights)
// that form X_g from P; then the taps along y (group, row offset relative to y, weight) read from the Q's.
template <typename acc_t>
struct SeparableFilter {
  int groups = 0;
  int x_taps[kMaxCorners] = {};
  int x_offset[kMaxCorners][kMaxTaps];
  acc_t x_weight[kMaxCorners][kMaxTaps];
  int y_taps = 0;
  int y_group[kMaxCorners * 2];
  int y_offset[kMaxCorners * 2];
  acc_t y_weight[kMaxCorners * 2];
};

template <typename acc_t>
SeparableFilter<acc_t> separable_filter(const CornerTable<acc_t>& t, int r) {
  SeparableFilter<acc_t> f;
  acc_t base[kMaxCorners][kMaxCorners];  // the coefficient row of each group
  for (int a = 0; a < t.ny; ++a) {
    int b0 = 0;
    while (b0 < t.nx && t.coef[a][b0] == acc_t(0)) ++b0;
    if (b0 == t.nx) continue;  // a row of zeros adds nothing
    // The group whose row this row is a multiple of (coef[a] == scale * base), or a new one.
    int g = 0;
    acc_t scale = acc_t(1);
    for (; g < f.groups; ++g) {
      if (base[g][b0] == acc_t(0)) continue;
      scale = t.coef[a][b0] / base[g][b0];
      bool multiple = true;
      for (int b = 0; b < t.nx; ++b) multiple = multiple && t.coef[a][b] == scale * base[g][b];
      if (multiple) break;
    }
    if (g == f.groups) {
      scale = acc_t(1);
      int n = 0;
      for (int b = 0; b < t.nx; ++b) {
        base[g][b] = t.coef[a][b];
        for (int q = 0; q < 2; ++q) {
          const acc_t w = t.coef[a][b] * (q ? t.fx[b] : acc_t(1) - t.fx[b]);
          if (w == acc_t(0)) continue;
          f.x_offset[g][n] = t.tx[b] - r + q;
          f.x_weight[g][n] = w;
          ++n;
        }
      }
      f.x_taps[g] = n;
      ++f.groups;
    }
    for (int p = 0; p < 2; ++p) {
      const acc_t w = scale * (p ? t.fy[a] : acc_t(1) - t.fy[a]);
      if (w == acc_t(0)) continue;
      f.y_group[f.y_taps] = g;
      f.y_offset[f.y_taps] = t.ty[a] - r + p;
      f.y_weight[f.y_taps] = w;
      ++f.y_taps;
    }
  }
  return f;
}

// P of one contiguous H x W plane (rows of `pitch`, see PrefixLayout), right margins included. With
// AVX2, 8 rows at a time: each 8 x 8 block is transposed in registers, so that one vector addition
// advances the running sums of 8 rows, and transposed back.
template <typename scalar_t, typename acc_t>
void build_prefix_plane(const scalar_t* plane, int H, int W, const PrefixLayout& pl, acc_t* P) {
  int y0 = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<scalar_t, float>) {
    for (; y0 + 8 <= H; y0 += 8) {
      // A band is read 8 rows at a time, a pattern the hardware prefetcher follows too late: each block
      // asks for its share (4 cache lines) of the band after next (past the plane's end, the start of the
      // next plane, which is usually the next one filtered).
      const char* ahead = reinterpret_cast<const char*>(plane + static_cast<int64_t>(y0 + 16) * W);
      __m256 run = _mm256_setzero_ps();
      int x0 = 0;
      for (; x0 + 8 <= W; x0 += 8) {
        for (int line = 0; line < 4; ++line) __builtin_prefetch(ahead + (x0 / 8 * 4 + line) * 64);
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(plane + static_cast<int64_t>(y0 + i) * W + x0);
        transpose_8x8_registers(r);
        for (int j = 0; j < 8; ++j) r[j] = run = _mm256_add_ps(run, r[j]);
        transpose_8x8_registers(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(P + (y0 + i) * pl.pitch + pl.left + x0 + 1, r[i]);
      }
      for (int i = 0; i < 8 && x0 < W; ++i) {  // columns past the last full block
        acc_t* row = P + (y0 + i) * pl.pitch + pl.left;
        const float* in = plane + static_cast<int64_t>(y0 + i) * W;
        for (int x = x0; x < W; ++x) row[x + 1] = row[x] + in[x];
      }
    }
  }
#endif
  for (int y = y0; y < H; ++y) {
    acc_t* row = P + y * pl.pitch + pl.left;
    const scalar_t* in = plane + static_cast<int64_t>(y) * W;
    for (int x = 0; x < W; ++x) row[x + 1] = row[x] + static_cast<acc_t>(in[x]);
  }
  for (int y = 0; y < H; ++y) {
    acc_t* row = P + y * pl.pitch;
    std::fill(row + pl.left + W + 1, row + pl.pitch, row[pl.left + W]);
  }
}

// P of channels [c0, c0 + channels) of one NHWC image with C channels: channel cl's plane at
// P + cl * pl.plane. run, stage: scratch of `channels` and W * channels. With AVX2 and whole vectors of
// channels, the running sums of 8 pixels stay in registers and are transposed there into the rows.
template <typename scalar_t, typename acc_t>
void build_prefix_tile_nhwc(const scalar_t* image, int H, int W, int64_t C, int64_t c0, int64_t channels,
                            const PrefixLayout& pl, acc_t* P, acc_t* run, acc_t* stage) {
  for (int y = 0; y < H; ++y) {
    acc_t* rows = P + y * pl.pitch + pl.left;
    bool done = false;
#if defined(__AVX2__)
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (channels % 8 == 0) {
        const float* in = image + static_cast<int64_t>(y) * W * C + c0;
        for (int64_t g = 0; g < channels; g += 8) {
          float* group = rows + g * pl.plane;
          __m256 sum = _mm256_setzero_ps();
          int x0 = 0;
          for (; x0 + 8 <= W; x0 += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; ++j) {
              const float* pixel = in + static_cast<int64_t>(x0 + j) * C + g;
              if (g == 0) {  // as in running_sums_nhwc: the next row's pixel
                __builtin_prefetch(pixel + static_cast<int64_t>(W) * C);
                __builtin_prefetch(pixel + static_cast<int64_t>(W) * C + channels - 1);
              }
              r[j] = sum = _mm256_add_ps(sum, _mm256_loadu_ps(pixel));
            }
            transpose_8x8_registers(r);
            for (int i = 0; i < 8; ++i) _mm256_storeu_ps(group + i * pl.plane + x0 + 1, r[i]);
          }
          for (int i = 0; i < 8; ++i)
            for (int x = x0; x < W; ++x)
              group[i * pl.plane + x + 1] = group[i * pl.plane + x] + in[static_cast<int64_t>(x) * C + g + i];
        }
        done = true;
      }
    }
#endif
    if (!done) {
      running_sums_nhwc(image, y, W, C, c0, channels, run, stage);
      transpose(stage, channels, rows + 1, pl.plane, W, channels);
    }
    for (int64_t cl = 0; cl < channels; ++cl) {
      acc_t* row = rows + cl * pl.plane;
      std::fill(row + W + 1, row + (pl.pitch - pl.left), row[W]);
    }
  }
}

// Q0[(y + 1) * W + x] = Q0[y * W + x] + sum_i w[i] * P[y][x + offset[i]] for y < H (Q0: row 0 of a
// ColumnSumLayout plane), then `below` copies of row H.
template <typename acc_t>
void column_sums(const acc_t* P, const PrefixLayout& pl, int H, int W, int n, const int* offset, const acc_t* w,
                 acc_t* Q0, int below) {
  for (int y = 0; y < H; ++y) {
    const acc_t* src[kMaxTaps];
    for (int i = 0; i < n; ++i) src[i] = P + y * pl.pitch + pl.left + offset[i];
    const acc_t* __restrict__ above = Q0 + static_cast<int64_t>(y) * W;
    acc_t* __restrict__ row = Q0 + static_cast<int64_t>(y + 1) * W;
#pragma omp simd
    for (int x = 0; x < W; ++x) {
      acc_t h = w[0] * src[0][x];
      for (int i = 1; i < n; ++i) h += w[i] * src[i][x];
      row[x] = above[x] + h;
    }
  }
  for (int j = 1; j <= below; ++j) std::copy(Q0 + H * W, Q0 + (H + 1) * W, Q0 + static_cast<int64_t>(H + j) * W);
}

// out[i] = sum_t w[t] * src[t][i] for i < count.
template <typename acc_t>
void weighted_sum(const acc_t* const* src, const acc_t* w, int n, acc_t* __restrict__ out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    acc_t v = w[0] * src[0][i];
    for (int t = 1; t < n; ++t) v += w[t] * src[t][i];
    out[i] = v;
  }
}

#if defined(__AVX2__)
// column_sums for floats, N taps: 16 columns at a time walk down all rows, the running sums in registers.
template <int N>
void column_sums_avx2(const float* P, const PrefixLayout& pl, int H, int W, const int* offset, const float* w,
                      float* Q0, int below) {
  __m256 wv[N];
  for (int i = 0; i < N; ++i) wv[i] = _mm256_set1_ps(w[i]);
  int x0 = 0;
  for (; x0 + 16 <= W; x0 += 16) {
    const float* src[N];
    for (int i = 0; i < N; ++i) src[i] = P + pl.left + x0 + offset[i];
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    float* q = Q0 + W + x0;
    for (int y = 0; y < H; ++y, q += W) {
      __m256 h0 = _mm256_mul_ps(wv[0], _mm256_loadu_ps(src[0]));
      __m256 h1 = _mm256_mul_ps(wv[0], _mm256_loadu_ps(src[0] + 8));
      for (int i = 1; i < N; ++i) {
        h0 = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(src[i]), h0);
        h1 = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(src[i] + 8), h1);
      }
      sum0 = _mm256_add_ps(sum0, h0);
      sum1 = _mm256_add_ps(sum1, h1);
      _mm256_storeu_ps(q, sum0);
      _mm256_storeu_ps(q + 8, sum1);
      for (int i = 0; i < N; ++i) src[i] += pl.pitch;
    }
    for (int j = 0; j < below; ++j, q += W) {
      _mm256_storeu_ps(q, sum0);
      _mm256_storeu_ps(q + 8, sum1);
    }
  }
  for (; x0 < W; ++x0) {  // the columns past the last block of 16, one at a time
    float sum = 0.f;
    float* q = Q0 + W + x0;
    for (int y = 0; y < H; ++y, q += W) {
      const float* p = P + y * pl.pitch + pl.left + x0;
      float h = w[0] * p[offset[0]];
      for (int i = 1; i < N; ++i) h = std::fma(w[i], p[offset[i]], h);
      *q = sum += h;
    }
    for (int j = 0; j < below; ++j, q += W) *q = sum;
  }
}

constexpr int64_t kWriteAhead = 1024;  // floats (4 KB)

template <int N>
void weighted_sum_avx2(const float* const* src, const float* w, float* out, int64_t count) {
  __m256 wv[N];
  for (int t = 0; t < N; ++t) wv[t] = _mm256_set1_ps(w[t]);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    // `out` is usually a plane of the output tensor, not in the cache: fetch its lines for writing ahead
    // of the stores (which otherwise wait for each line to be read in), up to the next plane's start.
    if (i % 16 == 0) __builtin_prefetch(out + i + kWriteAhead, 1);
    __m256 v = _mm256_mul_ps(wv[0], _mm256_loadu_ps(src[0] + i));
    for (int t = 1; t < N; ++t) v = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(src[t] + i), v);
    _mm256_storeu_ps(out + i, v);
  }
  for (; i < count; ++i) {
    float v = w[0] * src[0][i];
    for (int t = 1; t < N; ++t) v = std::fma(w[t], src[t][i], v);
    out[i] = v;
  }
}
#endif

// One output channel: out (H x W, contiguous) from P (its input channel, PrefixLayout) and filter f.
// Q: scratch of kMaxCorners planes of ColumnSumLayout, zeroed before first use.
template <typename acc_t>
void filter_plane(const acc_t* P, const PrefixLayout& pl, const ColumnSumLayout& ql, int H, int W,
                  const SeparableFilter<acc_t>& f, acc_t* Q, acc_t* out) {
  const int64_t count = static_cast<int64_t>(H) * W;
  if (f.y_taps == 0) {  // every coefficient zero
    std::fill(out, out + count, acc_t(0));
    return;
  }
  for (int g = 0; g < f.groups; ++g) {
    acc_t* Q0 = Q + g * ql.plane + static_cast<int64_t>(ql.above) * W;
    const int n = f.x_taps[g];
#if defined(__AVX2__)
    if constexpr (std::is_same_v<acc_t, float>) {
      switch (n) {
        case 1: column_sums_avx2<1>(P, pl, H, W, f.x_offset[g], f.x_weight[g], Q0, ql.below); continue;
        case 2: column_sums_avx2<2>(P, pl, H, W, f.x_offset[g], f.x_weight[g], Q0, ql.below); continue;
        case 3: column_sums_avx2<3>(P, pl, H, W, f.x_offset[g], f.x_weight[g], Q0, ql.below); continue;
        case 4: column_sums_avx2<4>(P, pl, H, W, f.x_offset[g], f.x_weight[g], Q0, ql.below); continue;
        case 5: column_sums_avx2<5>(P, pl, H, W, f.x_offset[g], f.x_weight[g], Q0, ql.below); continue;
        case 6: column_sums_avx2<6>(P, pl, H, W, f.x_offset[g], f.x_weight[g], Q0, ql.below); continue;
      }
    }
#endif
    column_sums(P, pl, H, W, n, f.x_offset[g], f.x_weight[g], Q0, ql.below);
  }
  // The taps along y, read as whole planes: tap t of output row y is row y + y_offset[t] of its Q.
  const acc_t* src[kMaxCorners * 2];
  for (int t = 0; t < f.y_taps; ++t)
    src[t] = Q + f.y_group[t] * ql.plane + static_cast<int64_t>(ql.above + f.y_offset[t]) * W;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<acc_t, float>) {
    switch (f.y_taps) {
      case 1: return weighted_sum_avx2<1>(src, f.y_weight, out, count);
      case 2: return weighted_sum_avx2<2>(src, f.y_weight, out, count);
      case 3: return weighted_sum_avx2<3>(src, f.y_weight, out, count);
      case 4: return weighted_sum_avx2<4>(src, f.y_weight, out, count);
      case 5: return weighted_sum_avx2<5>(src, f.y_weight, out, count);
      case 6: return weighted_sum_avx2<6>(src, f.y_weight, out, count);
    }
  }
#endif
  weighted_sum(src, f.y_weight, f.y_taps, out, count);
}

// Scratch of one thread for filter_plane.
template <typename acc_t>
struct PlaneScratch {
  PrefixLayout pl;
  ColumnSumLayout ql;
  std::vector<acc_t> prefix;  // `planes` planes of P
  std::vector<acc_t> sums;    // kMaxCorners planes of Q
  PlaneScratch(int H, int W, int64_t k, int64_t planes)
      : pl(prefix_layout(H, W, k)),
        ql(column_sum_layout(H, W, k)),
        prefix(static_cast<size_t>(planes * pl.plane), acc_t(0)),
        sums(static_cast<size_t>(kMaxCorners * ql.plane), acc_t(0)) {}
};

// ---------------------------------------------------------------------------------------------------
// The box gradients. Every gradient of output channel j's corners and coefficients is a combination,
// with that channel's constant weights, of the sums
//
//     dots[a][p][b][q] = sum_y sum_x g[y][x] * S[y - r + ty[a] + p][x - r + tx[b] + q]
//
// (g the output gradient, S the input's summed-area table, indices clamped): the derivative of a
// bilinear sample is a difference of the two table values it interpolates. The sums are taken row by
// row (each row's in acc_t, added up in double) and combined once per channel (add_corner_grads).

// The summed-area table of a plane with the margins of PrefixLayout, so that reads at columns u < 0
// give 0 and at u > W give S[i][W] without a clamp: (H + 1) rows of pl.pitch, row 0 zero. On entry,
// rows 1..H hold P (the plane's build_prefix_plane or build_prefix_tile_nhwc rows); the running sums
// down the columns turn them into the table in place.
template <typename acc_t>
void sat_from_prefix(acc_t* sat, const PrefixLayout& pl, int H) {
  for (int i = 1; i <= H; ++i) {
    const acc_t* __restrict__ above = sat + (i - 1) * pl.pitch;
    acc_t* __restrict__ row = sat + i * pl.pitch;
#pragma omp simd
    for (int u = 0; u < pl.pitch; ++u) row[u] = above[u] + row[u];
  }
}

// out[j] += sum_x g[x] * s[x + offset[j]] for j < n, x < W.
template <typename acc_t>
void row_dots(const acc_t* g, const acc_t* s, const int* offset, int n, int W, double* out) {
  for (int j = 0; j < n; ++j) {
    const acc_t* sj = s + offset[j];
    acc_t sum = acc_t(0);
#pragma omp simd reduction(+ : sum)
    for (int x = 0; x < W; ++x) sum += g[x] * sj[x];
    out[j] += static_cast<double>(sum);
  }
}

#if defined(__AVX2__)
// row_dots for floats, N offsets: g is read once per 8 columns for all of them.
template <int N>
void row_dots_avx2(const float* g, const float* s, const int* offset, int W, double* out) {
  __m256 acc[N];
  for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_ps();
  int x = 0;
  for (; x + 8 <= W; x += 8) {
    const __m256 gv = _mm256_loadu_ps(g + x);
    for (int j = 0; j < N; ++j) acc[j] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(s + offset[j] + x), acc[j]);
  }
  for (int j = 0; j < N; ++j) {
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
    const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    float sum = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
    for (int u = x; u < W; ++u) sum += g[u] * s[offset[j] + u];
    out[j] += static_cast<double>(sum);
  }
}
#endif

struct CornerDots {
  double v[kMaxCorners][2][kMaxCorners][2] = {};  // [a][p][b][q], see above
};

// Adds output row y's terms to `dots`. sat: the input channel's table (sat_from_prefix layout); g: the
// output gradient's row y.
template <typename acc_t>
void add_corner_dots_row(const acc_t* sat, const PrefixLayout& pl, int H, int W, const CornerTable<acc_t>& t, int r,
                         int y, const acc_t* g, CornerDots& dots) {
  int offset[kMaxTaps];
  const int n = 2 * t.nx;
  for (int b = 0; b < t.nx; ++b)
    for (int q = 0; q < 2; ++q) offset[2 * b + q] = t.tx[b] - r + q;
  for (int a = 0; a < t.ny; ++a) {
    for (int p = 0; p < 2; ++p) {
      const acc_t* row = sat + clamp_index(y - r + t.ty[a] + p, 0, H) * pl.pitch + pl.left;
      double* out = &dots.v[a][p][0][0];  // [b][q] at 2 * b + q
#if defined(__AVX2__)
      if constexpr (std::is_same_v<acc_t, float>) {
        switch (n) {
          case 2: row_dots_avx2<2>(g, row, offset, W, out); continue;
          case 4: row_dots_avx2<4>(g, row, offset, W, out); continue;
          case 6: row_dots_avx2<6>(g, row, offset, W, out); continue;
        }
      }
#endif
      row_dots(g, row, offset, n, W, out);
    }
  }
}

// Gradient partials of one output channel (see kNumGradPartials for the layout) from its summed dots.
template <typename acc_t>
void add_corner_grads(const CornerTable<acc_t>& t, const CornerDots& dots, double* partials) {
  for (int a = 0; a < t.ny; ++a) {
    const double fy = t.fy[a];
    for (int b = 0; b < t.nx; ++b) {
      const double fx = t.fx[b];
      const double c = t.coef[a][b];
      double row_value[2], row_slope[2];
      for (int p = 0; p < 2; ++p) {
        const double* d = dots.v[a][p][b];
        row_value[p] = d[0] + fx * (d[1] - d[0]);
        row_slope[p] = d[1] - d[0];
      }
      partials[b] += c * (row_slope[0] + fy * (row_slope[1] - row_slope[0]));
      partials[kMaxCorners + a] += c * (row_value[1] - row_value[0]);
      partials[2 * kMaxCorners + a * kMaxCorners + b] += row_value[0] + fy * (row_value[1] - row_value[0]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Channels-last (NHWC) kernels. A channels-last input is filtered in place, with no conversion of the
// tensor to NCHW and back: each task takes one image n and a block of channels, forms the running sums
// along x of those channels together (they are contiguous in the input), transposes them into
// per-channel rows, filters each output channel as a plane like the NCHW kernels (same functions, same
// order of operations, so the two layouts give the same bits), and writes each output pixel's block of
// channels contiguously. The box gradients use the block's summed-area tables, one plane per channel
// (sat_from_prefix layout), and the output gradient's rows transposed per channel.

// Channels per task: 16 outputs, no more than C. For m = 1 each pixel's block is one whole cache line
// of floats, so every line of the input is read by one task (a block of 8 would read each line twice).
inline int64_t channel_block(int64_t C, int64_t m) {
  return std::max<int64_t>(1, std::min<int64_t>(C, 16 / std::max<int64_t>(1, m)));
}

// dst[(y * W + x) * C + q] = planes[q * H * W + y * W + x] for q < channels: per-channel planes written
// into a channel block of an NHWC image.
template <typename scalar_t, typename acc_t>
void store_planes_nhwc(const acc_t* planes, int H, int W, int64_t channels, int64_t C, scalar_t* dst) {
  for (int y = 0; y < H; ++y) {
    // Each pixel's block is one or two cache lines every C elements: fetch the next row's for writing.
    scalar_t* next = dst + static_cast<int64_t>(y + 1) * W * C;
    for (int x = 0; x < W; ++x) {
      __builtin_prefetch(next + static_cast<int64_t>(x) * C, 1);
      __builtin_prefetch(next + static_cast<int64_t>(x) * C + channels - 1, 1);
    }
    transpose(planes + static_cast<int64_t>(y) * W, static_cast<int64_t>(H) * W, dst + static_cast<int64_t>(y) * W * C,
              C, channels, W);
  }
}

// rows[q * W + x] = src[x * C + q]: one row of a channel block, per channel.
template <typename scalar_t, typename acc_t>
void load_rows_nhwc(const scalar_t* src, int W, int64_t channels, int64_t C, acc_t* rows) {
  for (int x = 0; x < W; ++x) __builtin_prefetch(src + (static_cast<int64_t>(W) + x) * C);  // the next row
  transpose(src, C, rows, W, W, channels);
}

at::Tensor forward_cpu_nhwc(const at::Tensor& input, const at::Tensor& xs, const at::Tensor& ys,
                            const at::Tensor& coef, const FilterShape& s, int64_t k, bool snapped) {
  at::Tensor out = at::empty({s.N, s.C_out, s.H, s.W}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  const int64_t block = channel_block(s.C, s.m);
  const int64_t blocks_per_image = (s.C + block - 1) / block;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_forward_cpu_nhwc", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.N * blocks_per_image, 1, [&](int64_t begin, int64_t end) {
      PlaneScratch<acc_t> scratch(H, W, k, block);
      std::vector<acc_t> run(block), stage(block * W), planes(static_cast<size_t>(block * s.m) * H * W);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / blocks_per_image, c0 = (task % blocks_per_image) * block;
        const int64_t channels = std::min(block, s.C - c0), outputs = channels * s.m;
        build_prefix_tile_nhwc(in + n * H * W * s.C, H, W, s.C, c0, channels, scratch.pl, scratch.prefix.data(),
                               run.data(), stage.data());
        for (int64_t q = 0; q < outputs; ++q) {
          const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, c0 * s.m + q, s, k, snapped, false);
          filter_plane(scratch.prefix.data() + (q / s.m) * scratch.pl.plane, scratch.pl, scratch.ql, H, W,
                       separable_filter(table, r), scratch.sums.data(), planes.data() + q * H * W);
        }
        store_planes_nhwc(planes.data(), H, W, outputs, s.C_out, o + n * H * W * s.C_out + c0 * s.m);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_cpu_nhwc(
    const at::Tensor& grad_output_, const at::Tensor& input, const at::Tensor& xs, const at::Tensor& ys,
    const at::Tensor& coef, const FilterShape& s, int64_t k, bool snapped, std::array<bool, 4> mask) {
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor grad_output = grad_output_.to(input.scalar_type()).contiguous(channels_last);
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
  at::Tensor grad_input = want_input ? at::empty_like(input, channels_last) : at::zeros_like(input, channels_last);
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  if (input.numel() == 0 || (!want_input && !want_corners)) return {grad_input, grad_xs, grad_ys, grad_coef};
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  const int64_t block = channel_block(s.C, s.m);
  const int64_t blocks_per_image = (s.C + block - 1) / block;
  // Partials per (image, output channel): each task writes its own, so the sum needs no locks and is
  // the same whatever the thread count.
  std::vector<double> partials(want_corners ? static_cast<size_t>(s.N) * s.C_out * kNumGradPartials : 0, 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_backward_cpu_nhwc", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* go = grad_output.data_ptr<scalar_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, s.N * blocks_per_image, 1, [&](int64_t begin, int64_t end) {
      PlaneScratch<acc_t> scratch(H, W, k, want_input ? block * s.m : 0);
      // The block's input tables, one (H + 1)-row plane per channel (sat_from_prefix layout).
      PrefixLayout table_layout = scratch.pl;
      table_layout.plane = static_cast<int64_t>(H + 1) * scratch.pl.pitch;
      std::vector<acc_t> tables_input(want_corners ? static_cast<size_t>(block * table_layout.plane) : 0, acc_t(0));
      std::vector<CornerTable<acc_t>> tables(block * s.m);
      std::vector<CornerDots> dots(block * s.m);
      std::vector<acc_t> run(block * s.m), stage(block * s.m * W);
      std::vector<acc_t> planes(want_input ? static_cast<size_t>(block) * H * W : 0);
      std::vector<acc_t> term(want_input && s.m > 1 ? static_cast<size_t>(H) * W : 0);
      std::vector<acc_t> grad_rows(static_cast<size_t>(block) * s.m * W);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / blocks_per_image, c0 = (task % blocks_per_image) * block;
        const int64_t channels = std::min(block, s.C - c0), outputs = channels * s.m;
        if (want_input) {
          // grad_input of channel c sums the mirrored filters of its m output channels, in order.
          build_prefix_tile_nhwc(go + n * H * W * s.C_out, H, W, s.C_out, c0 * s.m, outputs, scratch.pl,
                                 scratch.prefix.data(), run.data(), stage.data());
          for (int64_t cl = 0; cl < channels; ++cl) {
            acc_t* dst = planes.data() + cl * H * W;
            for (int64_t jj = 0; jj < s.m; ++jj) {
              const int64_t q = cl * s.m + jj;
              const auto mirrored = table_for<scalar_t, coord_t>(xs, ys, coef, c0 * s.m + q, s, k, snapped, true);
              filter_plane(scratch.prefix.data() + q * scratch.pl.plane, scratch.pl, scratch.ql, H, W,
                           separable_filter(mirrored, r), scratch.sums.data(), jj == 0 ? dst : term.data());
              if (jj > 0)
                for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i) dst[i] += term[i];
            }
          }
          store_planes_nhwc(planes.data(), H, W, channels, s.C, gi + n * H * W * s.C + c0);
        }
        if (want_corners) {
          build_prefix_tile_nhwc(in + n * H * W * s.C, H, W, s.C, c0, channels, table_layout,
                                 tables_input.data() + table_layout.pitch, run.data(), stage.data());
          for (int64_t cl = 0; cl < channels; ++cl)
            sat_from_prefix(tables_input.data() + cl * table_layout.plane, table_layout, H);
          for (int64_t q = 0; q < outputs; ++q) {
            tables[q] = table_for<scalar_t, coord_t>(xs, ys, coef, c0 * s.m + q, s, k, snapped, false);
            dots[q] = CornerDots();
          }
          for (int y = 0; y < H; ++y) {
            const int64_t pixel_row = (n * H + y) * W;
            load_rows_nhwc(go + pixel_row * s.C_out + c0 * s.m, W, outputs, s.C_out, grad_rows.data());
            for (int64_t q = 0; q < outputs; ++q)
              add_corner_dots_row(tables_input.data() + (q / s.m) * table_layout.plane, table_layout, H, W, tables[q],
                                  r, y, grad_rows.data() + q * W, dots[q]);
          }
          for (int64_t q = 0; q < outputs; ++q)
            add_corner_grads(tables[q], dots[q], partials.data() + (n * s.C_out + c0 * s.m + q) * kNumGradPartials);
        }
      }
    });
    if (want_corners) write_corner_grads<coord_t>(partials, static_cast<int>(s.N), s, mask, grad_xs, grad_ys, grad_coef);
  });
  return {grad_input, grad_xs, grad_ys, grad_coef};
}

at::Tensor forward_cpu(const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
                       const at::Tensor& coef_, int64_t k, bool snapped) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  TORCH_CHECK(input_.device().is_cpu(), "box_filter_forward (CPU kernel): input must be on the CPU");
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  if (is_channels_last(input_)) return forward_cpu_nhwc(input_, xs, ys, coef, s, k, snapped);
  const at::Tensor input = input_.contiguous();
  at::Tensor out = at::empty({s.N, s.C_out, s.H, s.W}, input.options());
  if (out.numel() == 0) return out;
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_forward_cpu", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.N * s.C, 1, [&](int64_t begin, int64_t end) {
      PlaneScratch<acc_t> scratch(H, W, k, 1);
      std::vector<acc_t> result(std::is_same_v<scalar_t, acc_t> ? 0 : static_cast<size_t>(H) * W);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / s.C, c = plane % s.C;
        build_prefix_plane(in + plane * H * W, H, W, scratch.pl, scratch.prefix.data());
        for (int64_t jj = 0; jj < s.m; ++jj) {
          const int64_t j = c * s.m + jj;
          const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
          scalar_t* out_plane = o + (n * s.C_out + j) * H * W;
          constexpr bool in_place = std::is_same_v<scalar_t, acc_t>;  // else converted from `result`
          acc_t* dst = in_place ? reinterpret_cast<acc_t*>(out_plane) : result.data();
          filter_plane(scratch.prefix.data(), scratch.pl, scratch.ql, H, W, separable_filter(table, r),
                       scratch.sums.data(), dst);
          if (!in_place)
            for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i) out_plane[i] = static_cast<scalar_t>(result[i]);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_cpu(
    const at::Tensor& grad_output_, const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
    const at::Tensor& coef_, int64_t k, bool snapped, std::array<bool, 4> mask) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  TORCH_CHECK(input_.device().is_cpu() && grad_output_.device().is_cpu(), "box_filter_backward (CPU kernel): CPU tensors expected");
  TORCH_CHECK(grad_output_.sizes() == at::IntArrayRef({s.N, s.C_out, s.H, s.W}),
              "box_filter_backward: grad_output must be ", at::IntArrayRef({s.N, s.C_out, s.H, s.W}), ", got ",
              grad_output_.sizes());
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  if (is_channels_last(input_)) return backward_cpu_nhwc(grad_output_, input_, xs, ys, coef, s, k, snapped, mask);
  const at::Tensor input = input_.contiguous();
  const at::Tensor grad_output = grad_output_.to(input.scalar_type()).contiguous();
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
  at::Tensor grad_input = want_input ? at::empty_like(input) : at::zeros_like(input);  // every plane written
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  if (input.numel() == 0 || (!want_input && !want_corners)) return {grad_input, grad_xs, grad_ys, grad_coef};
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  // Planes are split into a fixed number of tasks, each with its own gradient partials, so that the
  // reduction needs no knowledge of which thread ran which task.
  const int64_t num_planes = s.N * s.C;
  const int64_t num_tasks = std::min<int64_t>(num_planes, std::max(1, at::get_num_threads()) * 4);
  std::vector<double> partials(want_corners ? static_cast<size_t>(num_tasks) * s.C_out * kNumGradPartials : 0, 0.0);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_backward_cpu", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* go = grad_output.data_ptr<scalar_t>();
    scalar_t* gi = grad_input.data_ptr<scalar_t>();
    at::parallel_for(0, num_tasks, 1, [&](int64_t task_begin, int64_t task_end) {
      PlaneScratch<acc_t> scratch(H, W, k, want_input ? 1 : 0);
      // The input plane's table (sat_from_prefix layout) and a row of the output gradient in acc_t.
      std::vector<acc_t> table_input(want_corners ? static_cast<size_t>(H + 1) * scratch.pl.pitch : 0, acc_t(0));
      std::vector<acc_t> grow(W);
      // grad_input's plane is summed in place where scalar_t is acc_t, else in gi_plane and converted.
      constexpr bool in_place = std::is_same_v<scalar_t, acc_t>;
      std::vector<acc_t> gi_plane(want_input && !in_place ? static_cast<size_t>(H) * W : 0);
      std::vector<acc_t> term(want_input && s.m > 1 ? static_cast<size_t>(H) * W : 0);
      for (int64_t task = task_begin; task < task_end; ++task) {
        double* task_partials = want_corners ? partials.data() + task * s.C_out * kNumGradPartials : nullptr;
        for (int64_t plane = task * num_planes / num_tasks; plane < (task + 1) * num_planes / num_tasks; ++plane) {
          const int64_t n = plane / s.C, c = plane % s.C;
          if (want_corners) {
            build_prefix_plane(in + plane * H * W, H, W, scratch.pl, table_input.data() + scratch.pl.pitch);
            sat_from_prefix(table_input.data(), scratch.pl, H);
          }
          scalar_t* dst = gi + plane * H * W;
          acc_t* sum = in_place ? reinterpret_cast<acc_t*>(dst) : gi_plane.data();
          for (int64_t jj = 0; jj < s.m; ++jj) {
            const int64_t j = c * s.m + jj;
            const scalar_t* g_plane = go + (n * s.C_out + j) * H * W;
            if (want_input) {
              // grad_input of channel c sums the mirrored filters of its m output channels, in order.
              build_prefix_plane(g_plane, H, W, scratch.pl, scratch.prefix.data());
              const auto mirrored = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, true);
              filter_plane(scratch.prefix.data(), scratch.pl, scratch.ql, H, W, separable_filter(mirrored, r),
                           scratch.sums.data(), jj == 0 ? sum : term.data());
              if (jj > 0)
                for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i) sum[i] += term[i];
            }
            if (want_corners) {
              const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
              CornerDots dots;
              for (int y = 0; y < H; ++y) {
                const acc_t* g_row = grow.data();
                if (std::is_same_v<scalar_t, acc_t>)  // read in place
                  g_row = reinterpret_cast<const acc_t*>(g_plane + y * W);
                else
                  for (int x = 0; x < W; ++x) grow[x] = static_cast<acc_t>(g_plane[y * W + x]);
                add_corner_dots_row(table_input.data(), scratch.pl, H, W, table, r, y, g_row, dots);
              }
              add_corner_grads(table, dots, task_partials + j * kNumGradPartials);
            }
          }
          if (want_input && !in_place)
            for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i) dst[i] = static_cast<scalar_t>(gi_plane[i]);
        }
      }
    });
    if (want_corners) write_corner_grads<coord_t>(partials, static_cast<int>(num_tasks), s, mask, grad_xs, grad_ys, grad_coef);
  });
  return {grad_input, grad_xs, grad_ys, grad_coef};
}

}  // namespace
}  // namespace boxpose

TORCH_LIBRARY(boxpose_kernels, m) {
  m.def("box_filter_forward(Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, bool snapped) -> Tensor");
  m.def(
      "box_filter_backward(Tensor grad_output, Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, "
      "bool snapped, bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(boxpose_kernels, CPU, m) {
  m.impl("box_filter_forward", &boxpose::forward_cpu);
  m.impl("box_filter_backward", &boxpose::backward_cpu);
}
