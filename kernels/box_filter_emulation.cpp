// CPU emulation of the CUDA kernels (box_filter_cuda.cu), for the tests only: a separate library
// (namespace boxpose_kernels_emulation, loaded by boxpose.ops.kernels.load_emulation()), not part of the
// production CPU library.
//
// Each CUDA thread block is run on the CPU by calling the block's phase functions (box_filter_common.h,
// the same code the CUDA kernels run) for every thread id in turn, in the order the CUDA kernel runs
// them between its barriers. So the GPU algorithm's indexing, work split, rolling SAT reads and block
// reductions are checked against the reference on machines without a GPU. Slow.
//
// Operators (same arguments and results as box_filter_forward / box_filter_backward, plus the block shape):
//   box_filter_forward_emulated(input, xs, ys, coef, max_size, snapped, threads_per_block) -> out
//   box_filter_backward_emulated(grad_output, input, xs, ys, coef, max_size, snapped, output_mask,
//       threads_per_block) -> (grad_input, grad_xs, grad_ys, grad_coef)
//   box_filter_forward_nhwc_emulated / box_filter_backward_nhwc_emulated(..., threads_per_block,
//       channels_per_block): the channels-last kernels, G = channels_per_block channels per block
//       (1 <= G <= threads_per_block); the results are channels-last.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "box_filter_common.h"
#include "box_filter_torch.h"

namespace boxpose {
namespace {

// ---------------------------------------------------------------------------------------------------
// NCHW: one "block" per (n, c) plane (forward_kernel and backward_kernel of box_filter_cuda.cu).

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
            filter_column(smem.data(), sat_stride(W), 1, H, W, table, r, x, y0, y1, store);
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
              filter_column(sat_grad.data(), sat_stride(W), 1, H, W, mirrored, r, x, y0, y1, store);
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
              corner_grads_column(sat_input.data(), sat_stride(W), 1, H, W, table, r, x, y0, y1, grad,
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


// ---------------------------------------------------------------------------------------------------
// NHWC: one "block" per (n, group of G channels) (forward_kernel_nhwc and backward_kernel_nhwc of
// box_filter_cuda.cu). The input is taken channels-last (converted if it is not), the result is
// channels-last.

// The tile of channels c0 + cl (cl < G, those < C valid) of one image: channel c of pixel (y, x) at
// image[(y * W + x) * pixel_stride + c * channel_step].
template <typename scalar_t, typename acc_t>
void emulate_tile(acc_t* tile, const scalar_t* image, int64_t pixel_stride, int64_t channel_step, int64_t C,
                  int64_t c0, int H, int W, int G, int nthreads) {
  for (int tid = 0; tid < nthreads; ++tid) {
    const GroupThread t = group_thread(tid, nthreads, G);
    const bool valid = t.active && c0 + t.cl < C;
    tile_load_phase(tile, image + (valid ? (c0 + t.cl) * channel_step : 0), pixel_stride, H, W, G, t, valid);
  }
  for (int tid = 0; tid < nthreads; ++tid) tile_row_scan_phase(tile, H, W, G, group_thread(tid, nthreads, G));
  for (int tid = 0; tid < nthreads; ++tid) tile_column_scan_phase(tile, H, W, G, group_thread(tid, nthreads, G));
}

void check_block_shape(int64_t threads_per_block, int64_t channels_per_block) {
  TORCH_CHECK(channels_per_block >= 1 && channels_per_block <= threads_per_block,
              "channels_per_block must be in [1, threads_per_block], got ", channels_per_block, " for ",
              threads_per_block, " threads");
}

at::Tensor forward_nhwc_emulated(const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
                                 const at::Tensor& coef_, int64_t k, bool snapped, int64_t threads_per_block,
                                 int64_t channels_per_block) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  check_block_shape(threads_per_block, channels_per_block);
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor input = input_.contiguous(channels_last);
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  at::Tensor out = at::empty({s.N, s.C_out, s.H, s.W}, input.options().memory_format(channels_last));
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  const int nthreads = static_cast<int>(threads_per_block), G = static_cast<int>(channels_per_block);
  const int64_t groups = (s.C + G - 1) / G, image_size = s.H * s.W;
  const int pitch = sat_stride(W) * G;
  const auto dtype = input.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "box_filter_forward_nhwc_emulated", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    std::vector<acc_t> tile(static_cast<size_t>(H + 1) * pitch);
    for (int64_t task = 0; task < s.N * groups; ++task) {
      const int64_t n = task / groups, c0 = (task % groups) * G;
      emulate_tile(tile.data(), input.data_ptr<scalar_t>() + n * image_size * s.C, s.C, 1, s.C, c0, H, W, G, nthreads);
      for (int tid = 0; tid < nthreads; ++tid) {
        const GroupThread t = group_thread(tid, nthreads, G);
        const int64_t c = c0 + t.cl;
        if (!t.active || c >= s.C) continue;
        const ColumnChunks chunks = column_chunks(H, W, t.workers);
        for (int64_t jj = 0; jj < s.m; ++jj) {
          const int64_t j = c * s.m + jj;
          const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, j, s, k, snapped, false);
          for (int item = t.worker; item < W * chunks.chunks; item += t.workers) {
            const int x = item % W, chunk = item / W;
            const int y0 = chunk * chunks.rows, y1 = std::min(H, y0 + chunks.rows);
            PixelStore<scalar_t, acc_t> store{out.data_ptr<scalar_t>() + n * image_size * s.C_out + j, s.C_out, W, x};
            filter_column(tile.data() + t.cl, pitch, G, H, W, table, r, x, y0, y1, store);
          }
        }
      }
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_nhwc_emulated(
    const at::Tensor& grad_output_, const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
    const at::Tensor& coef_, int64_t k, bool snapped, std::array<bool, 4> mask, int64_t threads_per_block,
    int64_t channels_per_block) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  check_block_shape(threads_per_block, channels_per_block);
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor input = input_.contiguous(channels_last);
  const at::Tensor grad_output = grad_output_.to(input.scalar_type()).contiguous(channels_last);
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  at::Tensor grad_input = at::zeros_like(input, channels_last);
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W), r = static_cast<int>((k - 1) / 2);
  const int nthreads = static_cast<int>(threads_per_block), G = static_cast<int>(channels_per_block);
  const int64_t groups = (s.C + G - 1) / G, image_size = s.H * s.W;
  const int pitch = sat_stride(W) * G;
  const auto dtype = input.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "box_filter_backward_nhwc_emulated", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const size_t tile_size = static_cast<size_t>(H + 1) * pitch;
    std::vector<acc_t> tile_input(tile_size), tile_grad(tile_size), acc_tile(static_cast<size_t>(image_size) * G);
    std::vector<acc_t> thread_partials(static_cast<size_t>(nthreads) * kNumGradPartials);
    std::vector<acc_t> reduce_buffer(static_cast<size_t>(nthreads) * kNumGradPartials);
    coord_t* grads[3] = {grad_xs.data_ptr<coord_t>(), grad_ys.data_ptr<coord_t>(), grad_coef.data_ptr<coord_t>()};
    const int64_t grad_sizes[3] = {s.nx, s.ny, s.ny * s.nx};
    for (int64_t task = 0; task < s.N * groups; ++task) {
      const int64_t n = task / groups, c0 = (task % groups) * G;
      if (want_corners)
        emulate_tile(tile_input.data(), input.data_ptr<scalar_t>() + n * image_size * s.C, s.C, 1, s.C, c0, H, W, G,
                     nthreads);
      for (int64_t jj = 0; jj < s.m; ++jj) {
        // The gradient's channels (c0 + cl) * m + jj, cl < G: a group of C channels with step m.
        const scalar_t* g_image = grad_output.data_ptr<scalar_t>() + n * image_size * s.C_out + jj;
        if (want_input) {
          emulate_tile(tile_grad.data(), g_image, s.C_out, s.m, s.C, c0, H, W, G, nthreads);
          for (int tid = 0; tid < nthreads; ++tid) {
            const GroupThread t = group_thread(tid, nthreads, G);
            const int64_t c = c0 + t.cl;
            if (!t.active || c >= s.C) continue;
            const auto mirrored = table_for<scalar_t, coord_t>(xs, ys, coef, c * s.m + jj, s, k, snapped, true);
            const ColumnChunks chunks = column_chunks(H, W, t.workers);
            for (int item = t.worker; item < W * chunks.chunks; item += t.workers) {
              const int x = item % W, chunk = item / W;
              const int y0 = chunk * chunks.rows, y1 = std::min(H, y0 + chunks.rows);
              if (s.m == 1) {
                scalar_t* image = grad_input.data_ptr<scalar_t>() + n * image_size * s.C;
                PixelStore<scalar_t, acc_t> store{image + c, s.C, W, x};
                filter_column(tile_grad.data() + t.cl, pitch, G, H, W, mirrored, r, x, y0, y1, store);
              } else {
                PixelAccumulate<acc_t> store{acc_tile.data() + t.cl, G, W, x, jj > 0};
                filter_column(tile_grad.data() + t.cl, pitch, G, H, W, mirrored, r, x, y0, y1, store);
              }
            }
          }
        }
        if (want_corners) {
          std::fill(thread_partials.begin(), thread_partials.end(), acc_t(0));
          for (int tid = 0; tid < nthreads; ++tid) {
            const GroupThread t = group_thread(tid, nthreads, G);
            const int64_t c = c0 + t.cl;
            if (!t.active || c >= s.C) continue;
            const auto table = table_for<scalar_t, coord_t>(xs, ys, coef, c * s.m + jj, s, k, snapped, false);
            const ColumnChunks chunks = column_chunks(H, W, t.workers);
            for (int item = t.worker; item < W * chunks.chunks; item += t.workers) {
              const int x = item % W, chunk = item / W;
              const int y0 = chunk * chunks.rows, y1 = std::min(H, y0 + chunks.rows);
              PixelLoad<scalar_t, acc_t> grad{g_image + c * s.m, s.C_out, W, x};
              corner_grads_column(tile_input.data() + t.cl, pitch, G, H, W, table, r, x, y0, y1, grad,
                                  thread_partials.data() + tid * kNumGradPartials);
            }
          }
          for (int tid = 0; tid < nthreads; ++tid)
            group_partials_store_phase(reduce_buffer.data(), thread_partials.data() + tid * kNumGradPartials, tid);
          // The CUDA kernel's atomicAdd: one addition per (channel, entry) and block, in coord_t.
          const auto add = [&](int cl, int i, acc_t total) {
            if (c0 + cl >= s.C) return;
            const int64_t j = (c0 + cl) * s.m + jj;
            int offset = 0;
            const int where = partial_destination(i, s.nx, s.ny, &offset);
            if (where >= 0 && mask[1 + where])
              grads[where][j * grad_sizes[where] + offset] += static_cast<coord_t>(total);
          };
          for (int tid = 0; tid < nthreads; ++tid)
            group_partials_sum_phase(reduce_buffer.data(), G, tid, nthreads, add);
        }
      }
      if (want_input && s.m > 1) {
        for (int tid = 0; tid < nthreads; ++tid) {
          const GroupThread t = group_thread(tid, nthreads, G);
          const int64_t c = c0 + t.cl;
          if (!t.active || c >= s.C) continue;
          scalar_t* dst = grad_input.data_ptr<scalar_t>() + n * image_size * s.C + c;
          for (int64_t p = t.worker; p < image_size; p += t.workers)
            dst[p * s.C] = static_cast<scalar_t>(acc_tile[p * G + t.cl]);
        }
      }
    }
  });
  return {grad_input, grad_xs, grad_ys, grad_coef};
}

}  // namespace
}  // namespace boxpose

TORCH_LIBRARY(boxpose_kernels_emulation, m) {
  m.def(
      "box_filter_forward_emulated(Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, bool snapped, "
      "int threads_per_block) -> Tensor");
  m.def(
      "box_filter_backward_emulated(Tensor grad_output, Tensor input, Tensor xs, Tensor ys, Tensor coef, "
      "int max_size, bool snapped, bool[4] output_mask, int threads_per_block) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "box_filter_forward_nhwc_emulated(Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, "
      "bool snapped, int threads_per_block, int channels_per_block) -> Tensor");
  m.def(
      "box_filter_backward_nhwc_emulated(Tensor grad_output, Tensor input, Tensor xs, Tensor ys, Tensor coef, "
      "int max_size, bool snapped, bool[4] output_mask, int threads_per_block, int channels_per_block) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(boxpose_kernels_emulation, CPU, m) {
  m.impl("box_filter_forward_emulated", &boxpose::forward_emulated);
  m.impl("box_filter_backward_emulated", &boxpose::backward_emulated);
  m.impl("box_filter_forward_nhwc_emulated", &boxpose::forward_nhwc_emulated);
  m.impl("box_filter_backward_nhwc_emulated", &boxpose::backward_nhwc_emulated);
}
