// CPU kernels of the box filter.
//
// Operators (namespace boxpose_kernels; the public, autograd-aware op is boxpose::box_filter, defined in
// boxpose/ops/box_conv.py, which calls these):
//   box_filter_forward(input, xs, ys, coef, max_size, snapped) -> out
//   box_filter_backward(grad_output, input, xs, ys, coef, max_size, snapped, output_mask)
//       -> (grad_input, grad_xs, grad_ys, grad_coef); gradients not asked for are zeros
// (The CPU emulation of the CUDA kernels, for the tests, is a separate library: box_filter_emulation.cpp.)
//
// The fast CPU kernels work row by row so that the inner loops run over contiguous memory and
// vectorise: for output row y, V_b = sum over SAT rows of their weights (the y-interpolation and the
// coefficients folded together) is formed once per corner b, then each output pixel needs 2 * NX
// shifted reads of the V_b (12 multiply-adds per output for a plain box, 8 for a snapped one).

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

// SAT of one H x W plane into `sat` ((H + 1) rows of sat_stride(W)).
template <typename scalar_t, typename acc_t>
void build_sat(const scalar_t* plane, int H, int W, acc_t* sat) {
  const int stride = sat_stride(W);
  std::fill(sat, sat + stride, acc_t(0));
  for (int y = 0; y < H; ++y) {
    const acc_t* prev = sat + y * stride;
    acc_t* row = sat + (y + 1) * stride;
    const scalar_t* in = plane + static_cast<int64_t>(y) * W;
    row[0] = acc_t(0);
    acc_t run = acc_t(0);
    for (int x = 0; x < W; ++x) {
      run += static_cast<acc_t>(in[x]);
      row[x + 1] = prev[x + 1] + run;
    }
  }
}

// The x range [lo, hi) where src[x + off] is read directly; left of it x + off < 0 (src[0] = 0 for a SAT
// row, so it contributes nothing), right of it x + off > W (src[W]).
inline void interior_range(int W, int off, int* lo, int* hi) {
  *lo = std::min(W, std::max(0, -off));
  *hi = std::max(*lo, std::min(W, W - off + 1));
}

// out[x] += w * src[clamp(x + off, 0, W)] for x in [0, W); src has W + 1 entries and src[0] == 0.
template <typename acc_t>
inline void shifted_axpy(acc_t* __restrict__ out, acc_t w, const acc_t* __restrict__ src, int W, int off) {
  int lo, hi;
  interior_range(W, off, &lo, &hi);
  const acc_t* s = src + off;
#pragma omp simd
  for (int x = lo; x < hi; ++x) out[x] += w * s[x];
  const acc_t tail = w * src[W];
  for (int x = hi; x < W; ++x) out[x] += tail;
}

// sum_x g[x] * src[clamp(x + off, 0, W)] for x in [0, W); src[0] == 0.
template <typename acc_t>
inline double shifted_dot(const acc_t* __restrict__ g, const acc_t* __restrict__ src, int W, int off) {
  int lo, hi;
  interior_range(W, off, &lo, &hi);
  const acc_t* s = src + off;
  acc_t sum = acc_t(0);
#pragma omp simd reduction(+ : sum)
  for (int x = lo; x < hi; ++x) sum += g[x] * s[x];
  acc_t tail = acc_t(0);
  for (int x = hi; x < W; ++x) tail += g[x];
  return static_cast<double>(sum) + static_cast<double>(tail) * static_cast<double>(src[W]);
}

// The (up to 2 * NY) SAT rows read for output row y, with their interpolation weights.
template <typename acc_t>
struct RowSamples {
  int count = 0;
  const acc_t* row[2 * kMaxCorners];
  acc_t weight[2 * kMaxCorners];
  int corner[2 * kMaxCorners];
};

// `pitch`: distance between consecutive rows of the table (sat_stride(W) for a plane's own table; more
// in the channels-last tiles, where the rows of several channels are interleaved).
template <typename acc_t>
RowSamples<acc_t> row_samples(const acc_t* sat, int64_t pitch, int H, const CornerTable<acc_t>& t, int r, int y,
                              bool keep_zero_weights) {
  RowSamples<acc_t> rs;
  for (int a = 0; a < t.ny; ++a) {
    for (int p = 0; p < 2; ++p) {
      const acc_t w = p ? t.fy[a] : acc_t(1) - t.fy[a];
      if (w == acc_t(0) && !keep_zero_weights) continue;
      rs.row[rs.count] = sat + clamp_index(y - r + t.ty[a] + p, 0, H) * pitch;
      rs.weight[rs.count] = w;
      rs.corner[rs.count] = a;
      ++rs.count;
    }
  }
  return rs;
}

// One output row y of the filter (see the file comment). V: scratch of kMaxCorners * (W + 1).
template <typename acc_t>
void filter_row(const acc_t* sat, int64_t pitch, int H, int W, const CornerTable<acc_t>& t, int r, int y, acc_t* V,
                acc_t* out_row) {
  const int W1 = W + 1;
  const RowSamples<acc_t> rs = row_samples(sat, pitch, H, t, r, y, /*keep_zero_weights=*/false);
  std::fill(out_row, out_row + W, acc_t(0));
  for (int b = 0; b < t.nx; ++b) {
    acc_t* __restrict__ vb = V + b * W1;
    bool any = false;
    for (int i = 0; i < rs.count; ++i) {
      const acc_t w = t.coef[rs.corner[i]][b] * rs.weight[i];
      if (w == acc_t(0)) continue;
      const acc_t* __restrict__ src = rs.row[i];
      if (!any) {
#pragma omp simd
        for (int c = 0; c < W1; ++c) vb[c] = w * src[c];
        any = true;
      } else {
#pragma omp simd
        for (int c = 0; c < W1; ++c) vb[c] += w * src[c];
      }
    }
    if (!any) continue;
    for (int q = 0; q < 2; ++q) {
      const acc_t w = q ? t.fx[b] : acc_t(1) - t.fx[b];
      if (w != acc_t(0)) shifted_axpy(out_row, w, vb, W, t.tx[b] - r + q);
    }
  }
}

// Gradient partials of output row y (see kNumGradPartials for the layout), from the SAT of the input
// and the output-gradient row g: every partial is a combination of the dot products of g with the
// SAT rows read at the shifted columns of each corner.
template <typename acc_t>
void corner_grads_row(const acc_t* sat, int64_t pitch, int H, int W, const CornerTable<acc_t>& t, int r, int y,
                      const acc_t* g, double* partials) {
  const RowSamples<acc_t> rs = row_samples(sat, pitch, H, t, r, y, /*keep_zero_weights=*/true);
  // dots[a][p][b][q] = sum_x g[x] * S[row(a, p)][x - r + tx[b] + q]
  double dots[kMaxCorners][2][kMaxCorners][2];
  for (int i = 0; i < rs.count; ++i) {
    const int a = rs.corner[i];
    const int p = i % 2;  // rows come in (p = 0, p = 1) pairs per corner when zero weights are kept
    for (int b = 0; b < t.nx; ++b) {
      for (int q = 0; q < 2; ++q) dots[a][p][b][q] = shifted_dot(g, rs.row[i], W, t.tx[b] - r + q);
    }
  }
  for (int a = 0; a < t.ny; ++a) {
    const double fy = t.fy[a];
    for (int b = 0; b < t.nx; ++b) {
      const double fx = t.fx[b];
      const double c = t.coef[a][b];
      double row_value[2], row_slope[2];
      for (int p = 0; p < 2; ++p) {
        row_value[p] = dots[a][p][b][0] + fx * (dots[a][p][b][1] - dots[a][p][b][0]);
        row_slope[p] = dots[a][p][b][1] - dots[a][p][b][0];
      }
      partials[b] += c * (row_slope[0] + fy * (row_slope[1] - row_slope[0]));
      partials[kMaxCorners + a] += c * (row_value[1] - row_value[0]);
      partials[2 * kMaxCorners + a * kMaxCorners + b] += row_value[0] + fy * (row_value[1] - row_value[0]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Channels-last (NHWC) kernels. A channels-last input is filtered in place, with no conversion of the
// tensor to NCHW and back: each task takes one image n and a block of channels, builds the summed-area
// tables of those channels together (the running sums along x and the additions of the previous row
// run across the block's channels, which are contiguous in the input), filters them row by row with
// the same row functions as the NCHW kernels, and writes each output pixel's block of channels
// contiguously. The tables of a block (tile) hold, for SAT row i, the rows of channel cl at
// tile + (i * channels + cl) * sat_stride(W): every channel's row stays contiguous for filter_row.

// Channels per task: a block small enough that its tables stay in the L2 cache at the network's
// sizes (16 channels of a 64 x 64 image: 270 KB), and no more than C.
inline int64_t channel_block(int64_t C, int64_t m) {
  return std::max<int64_t>(1, std::min<int64_t>(C, 16 / std::max<int64_t>(1, m)));
}

#if defined(__AVX2__)
// dst[j * ld_dst + i] = src[i * ld_src + j] for an 8 x 8 block of floats, in registers.
inline void transpose_8x8(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
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
    _mm256_storeu_ps(dst + i * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
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

// Tables of channels [c0, c0 + channels) of one NHWC image with C channels (see above). run: scratch of
// `channels` running sums; stage: of W * channels.
template <typename scalar_t, typename acc_t>
void build_sat_tile_nhwc(const scalar_t* image, int H, int W, int64_t C, int64_t c0, int64_t channels, acc_t* tile,
                         acc_t* run, acc_t* stage) {
  const int stride = sat_stride(W);
  const int64_t pitch = channels * stride;
  std::fill(tile, tile + pitch, acc_t(0));
  for (int y = 0; y < H; ++y) {
    acc_t* row = tile + (y + 1) * pitch;
    const acc_t* prev = row - pitch;
    // Running sums along x, all channels at once (stage[x * channels + cl]), then transposed into the
    // channels' rows and added to the rows above.
    std::fill(run, run + channels, acc_t(0));
    const scalar_t* in = image + static_cast<int64_t>(y) * W * C + c0;
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
    transpose(stage, channels, row + 1, stride, W, channels);
    for (int64_t cl = 0; cl < channels; ++cl) {
      acc_t* __restrict__ dst = row + cl * stride;
      const acc_t* __restrict__ above = prev + cl * stride;
      dst[0] = acc_t(0);
#pragma omp simd
      for (int x = 1; x <= W; ++x) dst[x] += above[x];
    }
  }
}

// dst[x * C + q] = rows[q * W + x] for x < W, q < channels: one output row of a channel block, written
// pixel by pixel (each pixel's channels are contiguous in an NHWC tensor).
template <typename scalar_t, typename acc_t>
void store_rows_nhwc(const acc_t* rows, int W, int64_t channels, int64_t C, scalar_t* dst) {
  transpose(rows, W, dst, C, channels, W);
}

// rows[q * W + x] = src[x * C + q]: the inverse of store_rows_nhwc.
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
      std::vector<acc_t> tile(static_cast<size_t>(H + 1) * block * sat_stride(W)), run(block), stage(block * W);
      std::vector<acc_t> V(static_cast<size_t>(kMaxCorners) * (W + 1));
      std::vector<acc_t> rows(static_cast<size_t>(block) * s.m * W);
      std::vector<CornerTable<acc_t>> tables(block * s.m);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / blocks_per_image, c0 = (task % blocks_per_image) * block;
        const int64_t channels = std::min(block, s.C - c0), outputs = channels * s.m;
        build_sat_tile_nhwc(in + n * H * W * s.C, H, W, s.C, c0, channels, tile.data(), run.data(), stage.data());
        for (int64_t q = 0; q < outputs; ++q)
          tables[q] = table_for<scalar_t, coord_t>(xs, ys, coef, c0 * s.m + q, s, k, snapped, false);
        const int64_t pitch = channels * sat_stride(W);
        for (int y = 0; y < H; ++y) {
          for (int64_t q = 0; q < outputs; ++q) {
            const acc_t* channel_tile = tile.data() + (q / s.m) * sat_stride(W);
            filter_row(channel_tile, pitch, H, W, tables[q], r, y, V.data(), rows.data() + q * W);
          }
          store_rows_nhwc(rows.data(), W, outputs, s.C_out, o + ((n * H + y) * W) * s.C_out + c0 * s.m);
        }
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
      const size_t tile_rows = static_cast<size_t>(H + 1) * sat_stride(W);
      std::vector<acc_t> tile_input(want_corners ? tile_rows * block : 0);
      std::vector<acc_t> tile_grad(want_input ? tile_rows * block * s.m : 0), run(block * s.m), stage(block * s.m * W);
      std::vector<acc_t> V(static_cast<size_t>(kMaxCorners) * (W + 1)), row(W);
      std::vector<acc_t> grad_rows(static_cast<size_t>(block) * s.m * W), input_rows(static_cast<size_t>(block) * W);
      std::vector<CornerTable<acc_t>> tables(block * s.m), mirrored(block * s.m);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / blocks_per_image, c0 = (task % blocks_per_image) * block;
        const int64_t channels = std::min(block, s.C - c0), outputs = channels * s.m;
        if (want_corners)
          build_sat_tile_nhwc(in + n * H * W * s.C, H, W, s.C, c0, channels, tile_input.data(), run.data(), stage.data());
        if (want_input)
          build_sat_tile_nhwc(go + n * H * W * s.C_out, H, W, s.C_out, c0 * s.m, outputs, tile_grad.data(), run.data(),
                              stage.data());
        for (int64_t q = 0; q < outputs; ++q) {
          tables[q] = table_for<scalar_t, coord_t>(xs, ys, coef, c0 * s.m + q, s, k, snapped, false);
          mirrored[q] = table_for<scalar_t, coord_t>(xs, ys, coef, c0 * s.m + q, s, k, snapped, true);
        }
        for (int y = 0; y < H; ++y) {
          const int64_t pixel_row = (n * H + y) * W;
          if (want_input) {
            // grad_input of channel c sums the mirrored filters of its m output channels.
            const int64_t pitch = outputs * sat_stride(W);
            for (int64_t cl = 0; cl < channels; ++cl) {
              acc_t* dst = input_rows.data() + cl * W;
              for (int64_t jj = 0; jj < s.m; ++jj) {
                const int64_t q = cl * s.m + jj;
                filter_row(tile_grad.data() + q * sat_stride(W), pitch, H, W, mirrored[q], r, y, V.data(),
                           jj == 0 ? dst : row.data());
                if (jj > 0)
                  for (int x = 0; x < W; ++x) dst[x] += row[x];
              }
            }
            store_rows_nhwc(input_rows.data(), W, channels, s.C, gi + pixel_row * s.C + c0);
          }
          if (want_corners) {
            load_rows_nhwc(go + pixel_row * s.C_out + c0 * s.m, W, outputs, s.C_out, grad_rows.data());
            const int64_t pitch = channels * sat_stride(W);
            for (int64_t q = 0; q < outputs; ++q) {
              const acc_t* channel_tile = tile_input.data() + (q / s.m) * sat_stride(W);
              double* p = partials.data() + (n * s.C_out + c0 * s.m + q) * kNumGradPartials;
              corner_grads_row(channel_tile, pitch, H, W, tables[q], r, y, grad_rows.data() + q * W, p);
            }
          }
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
      std::vector<acc_t> sat(static_cast<size_t>(H + 1) * sat_stride(W));
      std::vector<acc_t> V(static_cast<size_t>(kMaxCorners) * (W + 1));
      std::vector<acc_t> row(W);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / s.C, c = plane % s.C;
        build_sat(in + plane * H * W, H, W, sat.data());
        for (int64_t jj = 0; jj < s.m; ++jj) {
          const int64_t j = c * s.m + jj;
          const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
          scalar_t* out_plane = o + (n * s.C_out + j) * H * W;
          for (int y = 0; y < H; ++y) {
            filter_row(sat.data(), sat_stride(W), H, W, table, r, y, V.data(), row.data());
            for (int x = 0; x < W; ++x) out_plane[y * W + x] = static_cast<scalar_t>(row[x]);
          }
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
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
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
      const size_t sat_size = static_cast<size_t>(H + 1) * sat_stride(W);
      std::vector<acc_t> sat_input(want_corners ? sat_size : 0), sat_grad(want_input ? sat_size : 0);
      std::vector<acc_t> V(static_cast<size_t>(kMaxCorners) * (W + 1)), row(W), grow(W);
      std::vector<acc_t> gi_plane(want_input ? static_cast<size_t>(H) * W : 0);
      for (int64_t task = task_begin; task < task_end; ++task) {
        double* task_partials = want_corners ? partials.data() + task * s.C_out * kNumGradPartials : nullptr;
        for (int64_t plane = task * num_planes / num_tasks; plane < (task + 1) * num_planes / num_tasks; ++plane) {
          const int64_t n = plane / s.C, c = plane % s.C;
          if (want_corners) build_sat(in + plane * H * W, H, W, sat_input.data());
          if (want_input) std::fill(gi_plane.begin(), gi_plane.end(), acc_t(0));
          for (int64_t jj = 0; jj < s.m; ++jj) {
            const int64_t j = c * s.m + jj;
            const scalar_t* g_plane = go + (n * s.C_out + j) * H * W;
            if (want_input) {
              build_sat(g_plane, H, W, sat_grad.data());
              const auto mirrored = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, true);
              for (int y = 0; y < H; ++y) {
                filter_row(sat_grad.data(), sat_stride(W), H, W, mirrored, r, y, V.data(), row.data());
                acc_t* dst = gi_plane.data() + static_cast<int64_t>(y) * W;
                for (int x = 0; x < W; ++x) dst[x] += row[x];
              }
            }
            if (want_corners) {
              const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
              double* p = task_partials + j * kNumGradPartials;
              for (int y = 0; y < H; ++y) {
                for (int x = 0; x < W; ++x) grow[x] = static_cast<acc_t>(g_plane[y * W + x]);
                corner_grads_row(sat_input.data(), sat_stride(W), H, W, table, r, y, grow.data(), p);
              }
            }
          }
          if (want_input) {
            scalar_t* dst = gi + plane * H * W;
            for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i) dst[i] = static_cast<scalar_t>(gi_plane[i]);
          }
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
