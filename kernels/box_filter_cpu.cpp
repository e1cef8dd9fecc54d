// CPU kernels of the box filter, and a CPU emulation of the CUDA block algorithm.
//
// Operators (namespace boxpose_kernels; the public, autograd-aware op is boxpose::box_filter, defined in
// boxpose/ops/box_conv.py, which calls these):
//   box_filter_forward(input, xs, ys, coef, max_size, snapped) -> out
//   box_filter_backward(grad_output, input, xs, ys, coef, max_size, snapped, output_mask)
//       -> (grad_input, grad_xs, grad_ys, grad_coef); gradients not asked for are zeros
//   box_filter_forward_emulated / box_filter_backward_emulated(..., threads_per_block): the same
//       results computed by running the CUDA kernels' phases (box_filter_common.h) thread by thread
//       on the CPU, so the GPU algorithm's indexing is tested on machines without a GPU.
//
// The fast CPU kernels work row by row so that the inner loops run over contiguous memory and
// vectorise: for output row y, V_b = sum over SAT rows of their weights (the y-interpolation and the
// coefficients folded together) is formed once per corner b, then each output pixel needs 2 * NX
// shifted reads of the V_b (12 multiply-adds per output for a plain box, 8 for a snapped one).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "box_filter_common.h"
#include "box_filter_torch.h"

namespace boxpose {
namespace {

template <typename scalar_t>
using acc_type = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

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

template <typename scalar_t, typename coord_t>
CornerTable<acc_type<scalar_t>> table_for(const at::Tensor& xs, const at::Tensor& ys, const at::Tensor& coef,
                                           int64_t j, const FilterShape& s, int64_t k, bool snapped,
                                           bool mirrored) {
  return make_corner_table<acc_type<scalar_t>>(xs.data_ptr<coord_t>() + j * s.nx, ys.data_ptr<coord_t>() + j * s.ny,
                                               coef.data_ptr<coord_t>() + j * s.ny * s.nx, s.nx, s.ny,
                                               static_cast<int>(k), snapped, mirrored);
}

// Sums the gradient partials (parts x C_out x kNumGradPartials) into the gradient tensors.
template <typename coord_t>
void write_corner_grads(const std::vector<double>& partials, int nparts, const FilterShape& s,
                        const std::array<bool, 4>& mask, at::Tensor& grad_xs, at::Tensor& grad_ys,
                        at::Tensor& grad_coef) {
  coord_t* gx = grad_xs.data_ptr<coord_t>();
  coord_t* gy = grad_ys.data_ptr<coord_t>();
  coord_t* gc = grad_coef.data_ptr<coord_t>();
  for (int64_t j = 0; j < s.C_out; ++j) {
    double total[kNumGradPartials] = {};
    for (int part = 0; part < nparts; ++part) {
      const double* p = partials.data() + (static_cast<int64_t>(part) * s.C_out + j) * kNumGradPartials;
      for (int i = 0; i < kNumGradPartials; ++i) total[i] += p[i];
    }
    if (mask[1])
      for (int b = 0; b < s.nx; ++b) gx[j * s.nx + b] = static_cast<coord_t>(total[b]);
    if (mask[2])
      for (int a = 0; a < s.ny; ++a) gy[j * s.ny + a] = static_cast<coord_t>(total[kMaxCorners + a]);
    if (mask[3])
      for (int a = 0; a < s.ny; ++a)
        for (int b = 0; b < s.nx; ++b)
          gc[(j * s.ny + a) * s.nx + b] = static_cast<coord_t>(total[2 * kMaxCorners + a * kMaxCorners + b]);
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

// Tables of channels [c0, c0 + channels) of one NHWC image with C channels (see above). run: scratch of
// `channels` running sums.
template <typename scalar_t, typename acc_t>
void build_sat_tile_nhwc(const scalar_t* image, int H, int W, int64_t C, int64_t c0, int64_t channels, acc_t* tile,
                         acc_t* run) {
  const int stride = sat_stride(W);
  const int64_t pitch = channels * stride;
  std::fill(tile, tile + pitch, acc_t(0));
  for (int y = 0; y < H; ++y) {
    acc_t* row = tile + (y + 1) * pitch;
    const acc_t* prev = row - pitch;
    std::fill(run, run + channels, acc_t(0));
    for (int64_t cl = 0; cl < channels; ++cl) row[cl * stride] = acc_t(0);
    const scalar_t* in = image + static_cast<int64_t>(y) * W * C + c0;
    for (int x = 0; x < W; ++x) {
      const scalar_t* __restrict__ pixel = in + static_cast<int64_t>(x) * C;
#pragma omp simd
      for (int64_t cl = 0; cl < channels; ++cl) run[cl] += static_cast<acc_t>(pixel[cl]);
      for (int64_t cl = 0; cl < channels; ++cl) row[cl * stride + x + 1] = run[cl];
    }
    for (int64_t cl = 0; cl < channels; ++cl) {
      acc_t* __restrict__ dst = row + cl * stride;
      const acc_t* __restrict__ above = prev + cl * stride;
#pragma omp simd
      for (int x = 1; x <= W; ++x) dst[x] += above[x];
    }
  }
}

// dst[x * C + q] = rows[q * W + x] for x < W, q < channels: one output row of a channel block, written
// pixel by pixel (each pixel's channels are contiguous in an NHWC tensor).
template <typename scalar_t, typename acc_t>
void store_rows_nhwc(const acc_t* rows, int W, int64_t channels, int64_t C, scalar_t* dst) {
  for (int x = 0; x < W; ++x) {
    scalar_t* __restrict__ pixel = dst + static_cast<int64_t>(x) * C;
    for (int64_t q = 0; q < channels; ++q) pixel[q] = static_cast<scalar_t>(rows[q * W + x]);
  }
}

// rows[q * W + x] = src[x * C + q]: the inverse of store_rows_nhwc.
template <typename scalar_t, typename acc_t>
void load_rows_nhwc(const scalar_t* src, int W, int64_t channels, int64_t C, acc_t* rows) {
  for (int x = 0; x < W; ++x) {
    const scalar_t* __restrict__ pixel = src + static_cast<int64_t>(x) * C;
    for (int64_t q = 0; q < channels; ++q) rows[q * W + x] = static_cast<acc_t>(pixel[q]);
  }
}

bool is_channels_last(const at::Tensor& t) {
  return !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
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
      std::vector<acc_t> tile(static_cast<size_t>(H + 1) * block * sat_stride(W)), run(block);
      std::vector<acc_t> V(static_cast<size_t>(kMaxCorners) * (W + 1));
      std::vector<acc_t> rows(static_cast<size_t>(block) * s.m * W);
      std::vector<CornerTable<acc_t>> tables(block * s.m);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / blocks_per_image, c0 = (task % blocks_per_image) * block;
        const int64_t channels = std::min(block, s.C - c0), outputs = channels * s.m;
        build_sat_tile_nhwc(in + n * H * W * s.C, H, W, s.C, c0, channels, tile.data(), run.data());
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
      std::vector<acc_t> tile_grad(want_input ? tile_rows * block * s.m : 0), run(block * s.m);
      std::vector<acc_t> V(static_cast<size_t>(kMaxCorners) * (W + 1)), row(W);
      std::vector<acc_t> grad_rows(static_cast<size_t>(block) * s.m * W), input_rows(static_cast<size_t>(block) * W);
      std::vector<CornerTable<acc_t>> tables(block * s.m), mirrored(block * s.m);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / blocks_per_image, c0 = (task % blocks_per_image) * block;
        const int64_t channels = std::min(block, s.C - c0), outputs = channels * s.m;
        if (want_corners) build_sat_tile_nhwc(in + n * H * W * s.C, H, W, s.C, c0, channels, tile_input.data(), run.data());
        if (want_input)
          build_sat_tile_nhwc(go + n * H * W * s.C_out, H, W, s.C_out, c0 * s.m, outputs, tile_grad.data(), run.data());
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

// ---------------------------------------------------------------------------------------------------
// Emulation of the CUDA kernels (box_filter_cuda.cu): one "block" per (n, c) plane, the phases of
// box_filter_common.h run for every thread id in turn, in the order the CUDA kernel runs them between
// its barriers. Slow; for tests only.

template <typename scalar_t>
struct StorePlane {
  scalar_t* plane;
  int W;
  int x;
  bool accumulate;
  void operator()(int y, acc_type<scalar_t> v) {
    scalar_t& dst = plane[y * W + x];
    dst = accumulate ? static_cast<scalar_t>(static_cast<acc_type<scalar_t>>(dst) + v) : static_cast<scalar_t>(v);
  }
};

template <typename acc_t>
struct StoreAcc {
  acc_t* plane;
  int W;
  int x;
  bool accumulate;
  void operator()(int y, acc_t v) {
    acc_t& dst = plane[y * W + x];
    dst = accumulate ? dst + v : v;
  }
};

template <typename scalar_t>
struct LoadGrad {
  const scalar_t* plane;
  int W;
  int x;
  acc_type<scalar_t> operator()(int y) const { return static_cast<acc_type<scalar_t>>(plane[y * W + x]); }
};

template <typename scalar_t, typename acc_t>
void emulate_sat(acc_t* smem, const scalar_t* plane, int H, int W, int nthreads) {
  for (int tid = 0; tid < nthreads; ++tid) sat_load_phase(smem, plane, H, W, tid, nthreads);
  for (int tid = 0; tid < nthreads; ++tid) sat_row_scan_phase(smem, H, W, tid, nthreads);
  for (int tid = 0; tid < nthreads; ++tid) sat_column_scan_phase(smem, H, W, tid, nthreads);
}

at::Tensor forward_emulated(const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
                            const at::Tensor& coef_, int64_t k, bool snapped, int64_t threads_per_block) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  TORCH_CHECK(threads_per_block >= 1, "threads_per_block must be positive");
  const at::Tensor input = input_.contiguous();
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  at::Tensor out = at::empty({s.N, s.C_out, s.H, s.W}, input.options());
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  const int nthreads = static_cast<int>(threads_per_block);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_forward_emulated", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    std::vector<acc_t> smem(static_cast<size_t>(H + 1) * sat_stride(W));
    const ColumnChunks chunks = column_chunks(H, W, nthreads);
    for (int64_t plane = 0; plane < s.N * s.C; ++plane) {
      const int64_t n = plane / s.C, c = plane % s.C;
      emulate_sat(smem.data(), input.data_ptr<scalar_t>() + plane * H * W, H, W, nthreads);
      for (int64_t jj = 0; jj < s.m; ++jj) {
        const int64_t j = c * s.m + jj;
        const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
        scalar_t* out_plane = out.data_ptr<scalar_t>() + (n * s.C_out + j) * H * W;
        for (int tid = 0; tid < nthreads; ++tid) {
          for (int item = tid; item < W * chunks.chunks; item += nthreads) {
            const int x = item % W, chunk = item / W;
            const int y0 = chunk * chunks.rows, y1 = std::min(H, y0 + chunks.rows);
            StorePlane<scalar_t> store{out_plane, W, x, false};
            filter_column(smem.data(), H, W, table, r, x, y0, y1, store);
          }
        }
      }
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_emulated(
    const at::Tensor& grad_output_, const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
    const at::Tensor& coef_, int64_t k, bool snapped, std::array<bool, 4> mask, int64_t threads_per_block) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  TORCH_CHECK(threads_per_block >= 1, "threads_per_block must be positive");
  const at::Tensor input = input_.contiguous();
  const at::Tensor grad_output = grad_output_.to(input.scalar_type()).contiguous();
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  const int nthreads = static_cast<int>(threads_per_block);
  // Per-thread partials, summed per block as the CUDA block reduction does.
  std::vector<double> partials(static_cast<size_t>(s.C_out) * kNumGradPartials, 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_backward_emulated", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const size_t sat_size = static_cast<size_t>(H + 1) * sat_stride(W);
    std::vector<acc_t> sat_input(sat_size), sat_grad(sat_size), acc_plane(static_cast<size_t>(H) * W);
    std::vector<acc_t> thread_partials(static_cast<size_t>(nthreads) * kNumGradPartials);
    const ColumnChunks chunks = column_chunks(H, W, nthreads);
    for (int64_t plane = 0; plane < s.N * s.C; ++plane) {
      const int64_t n = plane / s.C, c = plane % s.C;
      if (want_corners) emulate_sat(sat_input.data(), input.data_ptr<scalar_t>() + plane * H * W, H, W, nthreads);
      for (int64_t jj = 0; jj < s.m; ++jj) {
        const int64_t j = c * s.m + jj;
        const scalar_t* g_plane = grad_output.data_ptr<scalar_t>() + (n * s.C_out + j) * H * W;
        if (want_input) {
          emulate_sat(sat_grad.data(), g_plane, H, W, nthreads);
          const auto mirrored = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, true);
          for (int tid = 0; tid < nthreads; ++tid) {
            for (int item = tid; item < W * chunks.chunks; item += nthreads) {
              const int x = item % W, chunk = item / W;
              const int y0 = chunk * chunks.rows, y1 = std::min(H, y0 + chunks.rows);
              StoreAcc<acc_t> store{acc_plane.data(), W, x, jj > 0};
              filter_column(sat_grad.data(), H, W, mirrored, r, x, y0, y1, store);
            }
          }
        }
        if (want_corners) {
          const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
          std::fill(thread_partials.begin(), thread_partials.end(), acc_t(0));
          for (int tid = 0; tid < nthreads; ++tid) {
            for (int item = tid; item < W * chunks.chunks; item += nthreads) {
              const int x = item % W, chunk = item / W;
              const int y0 = chunk * chunks.rows, y1 = std::min(H, y0 + chunks.rows);
              LoadGrad<scalar_t> grad{g_plane, W, x};
              corner_grads_column(sat_input.data(), H, W, table, r, x, y0, y1, grad,
                                  thread_partials.data() + tid * kNumGradPartials);
            }
          }
          for (int tid = 0; tid < nthreads; ++tid)
            for (int i = 0; i < kNumGradPartials; ++i)
              partials[j * kNumGradPartials + i] += thread_partials[tid * kNumGradPartials + i];
        }
      }
      if (want_input) {
        scalar_t* dst = grad_input.data_ptr<scalar_t>() + plane * H * W;
        for (int64_t i = 0; i < static_cast<int64_t>(H) * W; ++i) dst[i] = static_cast<scalar_t>(acc_plane[i]);
      }
    }
    if (want_corners) write_corner_grads<coord_t>(partials, 1, s, mask, grad_xs, grad_ys, grad_coef);
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
  m.def(
      "box_filter_forward_emulated(Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, bool snapped, "
      "int threads_per_block) -> Tensor");
  m.def(
      "box_filter_backward_emulated(Tensor grad_output, Tensor input, Tensor xs, Tensor ys, Tensor coef, "
      "int max_size, bool snapped, bool[4] output_mask, int threads_per_block) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(boxpose_kernels, CPU, m) {
  m.impl("box_filter_forward", &boxpose::forward_cpu);
  m.impl("box_filter_backward", &boxpose::backward_cpu);
  m.impl("box_filter_forward_emulated", &boxpose::forward_emulated);
  m.impl("box_filter_backward_emulated", &boxpose::backward_emulated);
}
