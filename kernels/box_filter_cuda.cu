// CUDA kernels of the box filter (namespace boxpose_kernels_cuda; same schemas as the CPU operators in
// box_filter_cpu.cpp).
//
// One thread block per (n, c) input plane, looping over planes with a grid stride (no limit on N * C).
// Forward: the block reads the plane once, builds its summed-area table in shared memory, and writes
// the m output planes that read it (2 SAT reads per corner pair and output, see filter_column). The
// input is read once and the output written once, as in a memory copy.
// Backward (one fused kernel): per plane, the SAT of the input (for the corner gradients) and, per
// output channel, the SAT of the output gradient (for grad_input, the mirrored filter) are built in
// shared memory; corner gradients are reduced in registers, then across the block, then added with
// one atomic per value and block. No per-pixel temporaries are written to global memory.
// Planes whose tables do not fit in shared memory use the same kernels with the tables in a global
// scratch buffer (one slice per block).
// A channels-last input has its own kernels (forward_kernel_nhwc, backward_kernel_nhwc): the same
// algorithm on a group of channels per block, with the threads of a warp over consecutive channels.
//
// The phase functions (box_filter_common.h) are shared with the CPU emulation in box_filter_emulation.cpp,
// which the test-suite checks against the reference on machines without a GPU.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>

#include "box_filter_common.h"
#include "box_filter_torch.h"

namespace boxpose {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename scalar_t, typename acc_t>
struct StoreGlobal {
  scalar_t* plane;
  int W;
  int x;
  __device__ void operator()(int y, acc_t v) { plane[y * W + x] = static_cast<scalar_t>(v); }
};

template <typename acc_t>
struct StoreShared {
  acc_t* plane;
  int W;
  int x;
  bool accumulate;
  __device__ void operator()(int y, acc_t v) {
    acc_t& dst = plane[y * W + x];
    dst = accumulate ? dst + v : v;
  }
};

template <typename scalar_t, typename acc_t>
struct LoadGlobal {
  const scalar_t* plane;
  int W;
  int x;
  __device__ acc_t operator()(int y) const { return static_cast<acc_t>(plane[y * W + x]); }
};

template <typename scalar_t, typename acc_t>
__device__ void build_sat_block(acc_t* sat, const scalar_t* plane, int H, int W) {
  sat_load_phase(sat, plane, H, W, threadIdx.x, blockDim.x);
  __syncthreads();
  sat_row_scan_phase(sat, H, W, threadIdx.x, blockDim.x);
  __syncthreads();
  sat_column_scan_phase(sat, H, W, threadIdx.x, blockDim.x);
  __syncthreads();
}

// Sums the kNumGradPartials values of every thread of the block and adds the totals to `dst`
// (dst[i] += total[i] for the entries selected by the corner counts). All threads must call it.
template <typename acc_t, typename coord_t>
__device__ void block_reduce_partials(acc_t* partials, acc_t* reduce_buffer, int nx, int ny, coord_t* grad_xs,
                                      coord_t* grad_ys, coord_t* grad_coef) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int i = 0; i < kNumGradPartials; ++i) {
    acc_t v = partials[i];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) reduce_buffer[warp * kNumGradPartials + i] = v;
  }
  __syncthreads();
  const int i = threadIdx.x;
  if (i < kNumGradPartials) {
    acc_t total = acc_t(0);
    for (int w = 0; w < kWarps; ++w) total += reduce_buffer[w * kNumGradPartials + i];
    if (i < kMaxCorners) {
      if (grad_xs != nullptr && i < nx) atomicAdd(grad_xs + i, static_cast<coord_t>(total));
    } else if (i < 2 * kMaxCorners) {
      const int a = i - kMaxCorners;
      if (grad_ys != nullptr && a < ny) atomicAdd(grad_ys + a, static_cast<coord_t>(total));
    } else {
      const int a = (i - 2 * kMaxCorners) / kMaxCorners, b = (i - 2 * kMaxCorners) % kMaxCorners;
      if (grad_coef != nullptr && a < ny && b < nx) atomicAdd(grad_coef + a * nx + b, static_cast<coord_t>(total));
    }
  }
  __syncthreads();
}

template <typename scalar_t, typename coord_t>
__global__ void __launch_bounds__(kThreads) forward_kernel(const scalar_t* __restrict__ input,
                                                           const coord_t* __restrict__ xs,
                                                           const coord_t* __restrict__ ys,
                                                           const coord_t* __restrict__ coef,
                                                           scalar_t* __restrict__ out, int64_t num_planes, int C,
                                                           int m, int H, int W, int nx, int ny, int k, bool snapped,
                                                           acc_type<scalar_t>* global_tables) {
  using acc_t = acc_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int64_t sat_size = static_cast<int64_t>(H + 1) * sat_stride(W);
  acc_t* sat = global_tables != nullptr ? global_tables + blockIdx.x * sat_size : reinterpret_cast<acc_t*>(shared_raw);
  const int r = (k - 1) / 2;
  const ColumnChunks chunks = column_chunks(H, W, blockDim.x);
  const int64_t plane_size = static_cast<int64_t>(H) * W;
  for (int64_t plane = blockIdx.x; plane < num_planes; plane += gridDim.x) {
    const int64_t n = plane / C;
    const int c = static_cast<int>(plane - n * C);
    build_sat_block(sat, input + plane * plane_size, H, W);
    for (int jj = 0; jj < m; ++jj) {
      const int64_t j = static_cast<int64_t>(c) * m + jj;
      const CornerTable<acc_t> table =
          make_corner_table<acc_t>(xs + j * nx, ys + j * ny, coef + j * ny * nx, nx, ny, k, snapped, false);
      scalar_t* out_plane = out + (n * C * m + j) * plane_size;
      for (int item = threadIdx.x; item < W * chunks.chunks; item += blockDim.x) {
        const int x = item % W, chunk = item / W;
        const int y0 = chunk * chunks.rows, y1 = min(H, y0 + chunks.rows);
        StoreGlobal<scalar_t, acc_t> store{out_plane, W, x};
        filter_column(sat, sat_stride(W), 1, H, W, table, r, x, y0, y1, store);
      }
    }
    __syncthreads();  // the next plane overwrites the table
  }
}

template <typename scalar_t, typename coord_t>
__global__ void __launch_bounds__(kThreads) backward_kernel(
    const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ input, const coord_t* __restrict__ xs,
    const coord_t* __restrict__ ys, const coord_t* __restrict__ coef, scalar_t* __restrict__ grad_input,
    coord_t* grad_xs, coord_t* grad_ys, coord_t* grad_coef, int64_t num_planes, int C, int m, int H, int W, int nx,
    int ny, int k, bool snapped, bool want_input, bool want_corners, acc_type<scalar_t>* global_tables) {
  using acc_t = acc_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int64_t sat_size = static_cast<int64_t>(H + 1) * sat_stride(W);
  const int64_t plane_size = static_cast<int64_t>(H) * W;
  // Layout: [reduce buffer | SAT of the input | SAT of the gradient | accumulator plane (m > 1)].
  acc_t* reduce_buffer = reinterpret_cast<acc_t*>(shared_raw);
  acc_t* tables = global_tables != nullptr
                      ? global_tables + blockIdx.x * (2 * sat_size + (m > 1 ? plane_size : 0))
                      : reduce_buffer + kWarps * kNumGradPartials;
  acc_t* sat_input = tables;
  acc_t* sat_grad = tables + sat_size;
  acc_t* acc_plane = tables + 2 * sat_size;
  const int r = (k - 1) / 2;
  const ColumnChunks chunks = column_chunks(H, W, blockDim.x);
  for (int64_t plane = blockIdx.x; plane < num_planes; plane += gridDim.x) {
    const int64_t n = plane / C;
    const int c = static_cast<int>(plane - n * C);
    if (want_corners) build_sat_block(sat_input, input + plane * plane_size, H, W);
    for (int jj = 0; jj < m; ++jj) {
      const int64_t j = static_cast<int64_t>(c) * m + jj;
      const scalar_t* g_plane = grad_output + (n * C * m + j) * plane_size;
      if (want_input) {
        build_sat_block(sat_grad, g_plane, H, W);
        const CornerTable<acc_t> mirrored =
            make_corner_table<acc_t>(xs + j * nx, ys + j * ny, coef + j * ny * nx, nx, ny, k, snapped, true);
        for (int item = threadIdx.x; item < W * chunks.chunks; item += blockDim.x) {
          const int x = item % W, chunk = item / W;
          const int y0 = chunk * chunks.rows, y1 = min(H, y0 + chunks.rows);
          if (m == 1) {
            StoreGlobal<scalar_t, acc_t> store{grad_input + plane * plane_size, W, x};
            filter_column(sat_grad, sat_stride(W), 1, H, W, mirrored, r, x, y0, y1, store);
          } else {
            StoreShared<acc_t> store{acc_plane, W, x, jj > 0};
            filter_column(sat_grad, sat_stride(W), 1, H, W, mirrored, r, x, y0, y1, store);
          }
        }
      }
      if (want_corners) {
        const CornerTable<acc_t> table =
            make_corner_table<acc_t>(xs + j * nx, ys + j * ny, coef + j * ny * nx, nx, ny, k, snapped, false);
        acc_t partials[kNumGradPartials];
#pragma unroll
        for (int i = 0; i < kNumGradPartials; ++i) partials[i] = acc_t(0);
        for (int item = threadIdx.x; item < W * chunks.chunks; item += blockDim.x) {
          const int x = item % W, chunk = item / W;
          const int y0 = chunk * chunks.rows, y1 = min(H, y0 + chunks.rows);
          LoadGlobal<scalar_t, acc_t> grad{g_plane, W, x};
          corner_grads_column(sat_input, sat_stride(W), 1, H, W, table, r, x, y0, y1, grad, partials);
        }
        block_reduce_partials(partials, reduce_buffer, nx, ny, grad_xs ? grad_xs + j * nx : nullptr,
                              grad_ys ? grad_ys + j * ny : nullptr, grad_coef ? grad_coef + j * ny * nx : nullptr);
      }
      __syncthreads();  // sat_grad is rebuilt for the next output channel
    }
    if (want_input && m > 1) {
      scalar_t* dst = grad_input + plane * plane_size;
      for (int64_t i = threadIdx.x; i < plane_size; i += blockDim.x) dst[i] = static_cast<scalar_t>(acc_plane[i]);
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------------------
// Channels-last (NHWC) kernels: a channels-last input is filtered in place, without a conversion to
// NCHW and back. One thread block per (n, group of G consecutive channels), looping with a grid
// stride; the group's tables are one interleaved tile, channel innermost (see "Channels-last (NHWC)
// blocks" in box_filter_common.h), and the threads of a warp work on consecutive channels of a pixel,
// so global loads and stores are coalesced across channels. Output channel j = c * m + jj of input
// channel c is computed by the thread of channel c.

template <typename scalar_t, typename acc_t>
__device__ void build_tile_block(acc_t* tile, const scalar_t* src, int64_t pixel_stride, int H, int W, int G,
                                 const GroupThread& t, bool valid) {
  tile_load_phase(tile, src, pixel_stride, H, W, G, t, valid);
  __syncthreads();
  tile_row_scan_phase(tile, H, W, G, t);
  __syncthreads();
  tile_column_scan_phase(tile, H, W, G, t);
  __syncthreads();
}

template <typename scalar_t, typename coord_t>
__global__ void __launch_bounds__(kThreads) forward_kernel_nhwc(
    const scalar_t* __restrict__ input, const coord_t* __restrict__ xs, const coord_t* __restrict__ ys,
    const coord_t* __restrict__ coef, scalar_t* __restrict__ out, int64_t num_tasks, int C, int m, int H, int W,
    int nx, int ny, int k, bool snapped, int G, acc_type<scalar_t>* global_tables) {
  using acc_t = acc_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int64_t tile_size = static_cast<int64_t>(H + 1) * sat_stride(W) * G;
  acc_t* tile =
      global_tables != nullptr ? global_tables + blockIdx.x * tile_size : reinterpret_cast<acc_t*>(shared_raw);
  const int r = (k - 1) / 2;
  const GroupThread t = group_thread(threadIdx.x, blockDim.x, G);
  const ColumnChunks chunks = column_chunks(H, W, t.workers);
  const int groups = (C + G - 1) / G;
  const int C_out = C * m;
  const int64_t image_size = static_cast<int64_t>(H) * W;
  const int pitch = sat_stride(W) * G;
  for (int64_t task = blockIdx.x; task < num_tasks; task += gridDim.x) {
    const int64_t n = task / groups;
    const int c = static_cast<int>(task - n * groups) * G + t.cl;
    const bool valid = t.active && c < C;
    build_tile_block(tile, input + n * image_size * C + (valid ? c : 0), C, H, W, G, t, valid);
    if (valid) {
      for (int jj = 0; jj < m; ++jj) {
        const int64_t j = static_cast<int64_t>(c) * m + jj;
        const CornerTable<acc_t> table =
            make_corner_table<acc_t>(xs + j * nx, ys + j * ny, coef + j * ny * nx, nx, ny, k, snapped, false);
        for (int item = t.worker; item < W * chunks.chunks; item += t.workers) {
          const int x = item % W, chunk = item / W;
          const int y0 = chunk * chunks.rows, y1 = min(H, y0 + chunks.rows);
          PixelStore<scalar_t, acc_t> store{out + n * image_size * C_out + j, C_out, W, x};
          filter_column(tile + t.cl, pitch, G, H, W, table, r, x, y0, y1, store);
        }
      }
    }
    __syncthreads();  // the next task overwrites the tile
  }
}

template <typename scalar_t, typename coord_t>
__global__ void __launch_bounds__(kThreads) backward_kernel_nhwc(
    const scalar_t* __restrict__ grad_output, const scalar_t* __restrict__ input, const coord_t* __restrict__ xs,
    const coord_t* __restrict__ ys, const coord_t* __restrict__ coef, scalar_t* __restrict__ grad_input,
    coord_t* grad_xs, coord_t* grad_ys, coord_t* grad_coef, int64_t num_tasks, int C, int m, int H, int W, int nx,
    int ny, int k, bool snapped, bool want_input, bool want_corners, int G, acc_type<scalar_t>* global_tables) {
  using acc_t = acc_type<scalar_t>;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int64_t tile_size = static_cast<int64_t>(H + 1) * sat_stride(W) * G;
  const int64_t image_size = static_cast<int64_t>(H) * W;
  // Layout: [reduce buffer | tile of the input | tile of the gradient | accumulator (m > 1)].
  acc_t* reduce_buffer = reinterpret_cast<acc_t*>(shared_raw);
  acc_t* tables = global_tables != nullptr
                      ? global_tables + blockIdx.x * (2 * tile_size + (m > 1 ? image_size * G : 0))
                      : reduce_buffer + kThreads * kNumGradPartials;
  acc_t* tile_input = tables;
  acc_t* tile_grad = tables + tile_size;
  acc_t* acc_tile = tables + 2 * tile_size;
  const int r = (k - 1) / 2;
  const GroupThread t = group_thread(threadIdx.x, blockDim.x, G);
  const ColumnChunks chunks = column_chunks(H, W, t.workers);
  const int groups = (C + G - 1) / G;
  const int C_out = C * m;
  const int pitch = sat_stride(W) * G;
  for (int64_t task = blockIdx.x; task < num_tasks; task += gridDim.x) {
    const int64_t n = task / groups;
    const int c0 = static_cast<int>(task - n * groups) * G;
    const int c = c0 + t.cl;
    const bool valid = t.active && c < C;
    const int channel = valid ? c : 0;  // pointers stay inside the tensors for the invalid threads
    if (want_corners) build_tile_block(tile_input, input + n * image_size * C + channel, C, H, W, G, t, valid);
    for (int jj = 0; jj < m; ++jj) {
      const int64_t j = static_cast<int64_t>(channel) * m + jj;
      const scalar_t* g_image = grad_output + n * image_size * C_out + j;
      if (want_input) {
        build_tile_block(tile_grad, g_image, C_out, H, W, G, t, valid);
        if (valid) {
          const CornerTable<acc_t> mirrored =
              make_corner_table<acc_t>(xs + j * nx, ys + j * ny, coef + j * ny * nx, nx, ny, k, snapped, true);
          for (int item = t.worker; item < W * chunks.chunks; item += t.workers) {
            const int x = item % W, chunk = item / W;
            const int y0 = chunk * chunks.rows, y1 = min(H, y0 + chunks.rows);
            if (m == 1) {
              PixelStore<scalar_t, acc_t> store{grad_input + n * image_size * C + c, C, W, x};
              filter_column(tile_grad + t.cl, pitch, G, H, W, mirrored, r, x, y0, y1, store);
            } else {
              PixelAccumulate<acc_t> store{acc_tile + t.cl, G, W, x, jj > 0};
              filter_column(tile_grad + t.cl, pitch, G, H, W, mirrored, r, x, y0, y1, store);
            }
          }
        }
      }
      if (want_corners) {
        acc_t partials[kNumGradPartials];
#pragma unroll
        for (int i = 0; i < kNumGradPartials; ++i) partials[i] = acc_t(0);
        if (valid) {
          const CornerTable<acc_t> table =
              make_corner_table<acc_t>(xs + j * nx, ys + j * ny, coef + j * ny * nx, nx, ny, k, snapped, false);
          for (int item = t.worker; item < W * chunks.chunks; item += t.workers) {
            const int x = item % W, chunk = item / W;
            const int y0 = chunk * chunks.rows, y1 = min(H, y0 + chunks.rows);
            PixelLoad<scalar_t, acc_t> grad{g_image, C_out, W, x};
            corner_grads_column(tile_input + t.cl, pitch, G, H, W, table, r, x, y0, y1, grad, partials);
          }
        }
        group_partials_store_phase(reduce_buffer, partials, threadIdx.x);
        __syncthreads();
        auto add = [&](int cl, int i, acc_t total) {
          if (c0 + cl >= C) return;
          const int64_t jt = static_cast<int64_t>(c0 + cl) * m + jj;
          int offset = 0;
          const int where = partial_destination(i, nx, ny, &offset);
          coord_t* dst = where == 0   ? (grad_xs ? grad_xs + jt * nx : nullptr)
                         : where == 1 ? (grad_ys ? grad_ys + jt * ny : nullptr)
                         : where == 2 ? (grad_coef ? grad_coef + jt * ny * nx : nullptr)
                                      : nullptr;
          if (dst != nullptr) atomicAdd(dst + offset, static_cast<coord_t>(total));
        };
        group_partials_sum_phase(reduce_buffer, G, threadIdx.x, blockDim.x, add);
      }
      __syncthreads();  // the gradient tile is rebuilt and the reduce buffer reused for the next output channel
    }
    if (want_input && m > 1 && valid) {
      scalar_t* dst = grad_input + n * image_size * C + c;
      for (int64_t p = t.worker; p < image_size; p += t.workers)
        dst[p * C] = static_cast<scalar_t>(acc_tile[p * G + t.cl]);
    }
    __syncthreads();
  }
}

struct LaunchPlan {
  int blocks;
  size_t shared_bytes;
  bool global_tables;
  int64_t global_elements_per_block;
};

// Shared memory if the tables fit (opting in to the device's maximum), else a global scratch slice
// per block with at most `kMaxScratchBytes` in all.
LaunchPlan plan_launch(int64_t num_planes, size_t shared_needed, size_t shared_fixed, int64_t global_per_block,
                       size_t element_size, const void* kernel) {
  constexpr int64_t kMaxScratchBytes = int64_t(256) << 20;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  int max_optin = 0, num_sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  LaunchPlan plan{};
  if (shared_needed <= static_cast<size_t>(max_optin)) {
    plan.shared_bytes = shared_needed;
    plan.global_tables = false;
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(shared_needed)));
    int per_sm = 0;
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, shared_needed));
    const int64_t resident = static_cast<int64_t>(std::max(per_sm, 1)) * num_sms;
    plan.blocks = static_cast<int>(std::min<int64_t>(num_planes, resident * 4));
  } else {
    plan.shared_bytes = shared_fixed;
    plan.global_tables = true;
    plan.global_elements_per_block = global_per_block;
    const int64_t by_memory = std::max<int64_t>(1, kMaxScratchBytes / (global_per_block * int64_t(element_size)));
    plan.blocks = static_cast<int>(std::min<int64_t>({num_planes, by_memory, int64_t(num_sms) * 4}));
  }
  plan.blocks = std::max(plan.blocks, 1);
  return plan;
}

// The global scratch the plan asks for when the tables do not fit in shared memory (held by `scratch`
// until the kernel is enqueued), or nullptr when they do.
template <typename acc_t>
acc_t* scratch_tables(const LaunchPlan& plan, const at::Tensor& like, at::Tensor& scratch) {
  if (!plan.global_tables) return nullptr;
  scratch = at::empty({plan.blocks * plan.global_elements_per_block},
                      like.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  return scratch.data_ptr<acc_t>();
}

// Channels per block of the channels-last kernels: 32 (a warp over 32 consecutive channels), or C if
// fewer, halved (not below 8: 32 bytes of float per pixel, one memory sector) until the block's tables
// fit in shared memory; if they never do, the first choice with the tables in global memory. Also
// small enough for 32-bit indices inside a tile.
int channel_group(int64_t C, int64_t H, int64_t W, int64_t elements_per_channel, size_t fixed_bytes,
                  size_t element_size) {
  int device = 0, max_optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const auto fits = [&](int64_t g) {
    return fixed_bytes + g * elements_per_channel * element_size <= static_cast<size_t>(max_optin);
  };
  const int64_t first = std::min<int64_t>(C, 32);
  int64_t group = first;
  while (!fits(group) && group / 2 >= 8) group /= 2;
  if (!fits(group)) group = first;
  while (group > 1 && (H + 1) * sat_stride(static_cast<int>(W)) * group >= (int64_t(1) << 31)) group /= 2;
  return static_cast<int>(group);
}

at::Tensor forward_cuda_nhwc(const at::Tensor& input, const at::Tensor& xs, const at::Tensor& ys,
                             const at::Tensor& coef, const FilterShape& s, int64_t k, bool snapped) {
  at::Tensor out = at::empty({s.N, s.C_out, s.H, s.W}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_forward_cuda_nhwc", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const int64_t per_channel = static_cast<int64_t>(H + 1) * sat_stride(W);
    const int G = channel_group(s.C, s.H, s.W, per_channel, 0, sizeof(acc_t));
    const int64_t num_tasks = s.N * ((s.C + G - 1) / G);
    const auto kernel = forward_kernel_nhwc<scalar_t, coord_t>;
    const LaunchPlan plan = plan_launch(num_tasks, G * per_channel * sizeof(acc_t), 0, G * per_channel, sizeof(acc_t),
                                        reinterpret_cast<const void*>(kernel));
    at::Tensor scratch;
    acc_t* tables = scratch_tables<acc_t>(plan, input, scratch);
    kernel<<<plan.blocks, kThreads, plan.shared_bytes, stream>>>(
        input.data_ptr<scalar_t>(), xs.data_ptr<coord_t>(), ys.data_ptr<coord_t>(), coef.data_ptr<coord_t>(),
        out.data_ptr<scalar_t>(), num_tasks, static_cast<int>(s.C), static_cast<int>(s.m), H, W, s.nx, s.ny,
        static_cast<int>(k), snapped, G, tables);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_cuda_nhwc(
    const at::Tensor& grad_output_, const at::Tensor& input, const at::Tensor& xs, const at::Tensor& ys,
    const at::Tensor& coef, const FilterShape& s, int64_t k, bool snapped, std::array<bool, 4> mask) {
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor grad_output = grad_output_.to(input.scalar_type()).contiguous(channels_last);
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
  at::Tensor grad_input =
      want_input && s.m == 1 ? at::empty_like(input, channels_last) : at::zeros_like(input, channels_last);
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  if (input.numel() == 0 || (!want_input && !want_corners)) return {grad_input, grad_xs, grad_ys, grad_coef};
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_backward_cuda_nhwc", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const int64_t per_channel =
        2 * static_cast<int64_t>(H + 1) * sat_stride(W) + (s.m > 1 ? static_cast<int64_t>(H) * W : 0);
    const size_t fixed = kThreads * kNumGradPartials * sizeof(acc_t);
    const int G = channel_group(s.C, s.H, s.W, per_channel, fixed, sizeof(acc_t));
    const int64_t num_tasks = s.N * ((s.C + G - 1) / G);
    const auto kernel = backward_kernel_nhwc<scalar_t, coord_t>;
    const LaunchPlan plan = plan_launch(num_tasks, fixed + G * per_channel * sizeof(acc_t), fixed, G * per_channel,
                                        sizeof(acc_t), reinterpret_cast<const void*>(kernel));
    at::Tensor scratch;
    acc_t* tables = scratch_tables<acc_t>(plan, input, scratch);
    kernel<<<plan.blocks, kThreads, plan.shared_bytes, stream>>>(
        grad_output.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), xs.data_ptr<coord_t>(), ys.data_ptr<coord_t>(),
        coef.data_ptr<coord_t>(), grad_input.data_ptr<scalar_t>(), mask[1] ? grad_xs.data_ptr<coord_t>() : nullptr,
        mask[2] ? grad_ys.data_ptr<coord_t>() : nullptr, mask[3] ? grad_coef.data_ptr<coord_t>() : nullptr, num_tasks,
        static_cast<int>(s.C), static_cast<int>(s.m), H, W, s.nx, s.ny, static_cast<int>(k), snapped, want_input,
        want_corners, G, tables);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_input, grad_xs, grad_ys, grad_coef};
}

at::Tensor forward_cuda(const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
                        const at::Tensor& coef_, int64_t k, bool snapped) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  TORCH_CHECK(input_.is_cuda(), "box_filter_forward (CUDA kernel): input must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(input_.device());
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  if (is_channels_last(input_)) return forward_cuda_nhwc(input_, xs, ys, coef, s, k, snapped);
  const at::Tensor input = input_.contiguous();
  at::Tensor out = at::empty({s.N, s.C_out, s.H, s.W}, input.options());
  if (out.numel() == 0) return out;
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W);
  const int64_t num_planes = s.N * s.C;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_forward_cuda", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const int64_t sat_size = static_cast<int64_t>(H + 1) * sat_stride(W);
    const auto kernel = forward_kernel<scalar_t, coord_t>;
    const LaunchPlan plan = plan_launch(num_planes, sat_size * sizeof(acc_t), 0, sat_size, sizeof(acc_t),
                                        reinterpret_cast<const void*>(kernel));
    at::Tensor scratch;
    acc_t* tables = scratch_tables<acc_t>(plan, input, scratch);
    kernel<<<plan.blocks, kThreads, plan.shared_bytes, stream>>>(
        input.data_ptr<scalar_t>(), xs.data_ptr<coord_t>(), ys.data_ptr<coord_t>(), coef.data_ptr<coord_t>(),
        out.data_ptr<scalar_t>(), num_planes, static_cast<int>(s.C), static_cast<int>(s.m), H, W, s.nx, s.ny,
        static_cast<int>(k), snapped, tables);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_cuda(
    const at::Tensor& grad_output_, const at::Tensor& input_, const at::Tensor& xs_, const at::Tensor& ys_,
    const at::Tensor& coef_, int64_t k, bool snapped, std::array<bool, 4> mask) {
  const FilterShape s = check_filter_args(input_, xs_, ys_, coef_, k);
  TORCH_CHECK(input_.is_cuda() && grad_output_.is_cuda(), "box_filter_backward (CUDA kernel): CUDA tensors expected");
  TORCH_CHECK(grad_output_.sizes() == at::IntArrayRef({s.N, s.C_out, s.H, s.W}),
              "box_filter_backward: grad_output must be ", at::IntArrayRef({s.N, s.C_out, s.H, s.W}), ", got ",
              grad_output_.sizes());
  const c10::cuda::CUDAGuard guard(input_.device());
  const at::Tensor xs = xs_.contiguous(), ys = ys_.contiguous(), coef = coef_.contiguous();
  if (is_channels_last(input_)) return backward_cuda_nhwc(grad_output_, input_, xs, ys, coef, s, k, snapped, mask);
  const at::Tensor input = input_.contiguous();
  const at::Tensor grad_output = grad_output_.to(input.scalar_type()).contiguous();
  const bool want_input = mask[0];
  const bool want_corners = mask[1] || mask[2] || mask[3];
  at::Tensor grad_input = want_input && s.m == 1 ? at::empty_like(input) : at::zeros_like(input);
  at::Tensor grad_xs = at::zeros_like(xs), grad_ys = at::zeros_like(ys), grad_coef = at::zeros_like(coef);
  if (input.numel() == 0 || (!want_input && !want_corners)) return {grad_input, grad_xs, grad_ys, grad_coef};
  const int H = static_cast<int>(s.H), W = static_cast<int>(s.W);
  const int64_t num_planes = s.N * s.C;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "box_filter_backward_cuda", [&] {
    using acc_t = acc_type<scalar_t>;
    using coord_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const int64_t sat_size = static_cast<int64_t>(H + 1) * sat_stride(W);
    const int64_t plane_size = static_cast<int64_t>(H) * W;
    const int64_t table_elements = 2 * sat_size + (s.m > 1 ? plane_size : 0);
    const size_t fixed = kWarps * kNumGradPartials * sizeof(acc_t);
    const auto kernel = backward_kernel<scalar_t, coord_t>;
    const LaunchPlan plan = plan_launch(num_planes, fixed + table_elements * sizeof(acc_t), fixed, table_elements,
                                        sizeof(acc_t), reinterpret_cast<const void*>(kernel));
    at::Tensor scratch;
    acc_t* tables = scratch_tables<acc_t>(plan, input, scratch);
    kernel<<<plan.blocks, kThreads, plan.shared_bytes, stream>>>(
        grad_output.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), xs.data_ptr<coord_t>(), ys.data_ptr<coord_t>(),
        coef.data_ptr<coord_t>(), grad_input.data_ptr<scalar_t>(), mask[1] ? grad_xs.data_ptr<coord_t>() : nullptr,
        mask[2] ? grad_ys.data_ptr<coord_t>() : nullptr, mask[3] ? grad_coef.data_ptr<coord_t>() : nullptr, num_planes,
        static_cast<int>(s.C), static_cast<int>(s.m), H, W, s.nx, s.ny, static_cast<int>(k), snapped, want_input,
        want_corners, tables);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_input, grad_xs, grad_ys, grad_coef};
}

}  // namespace
}  // namespace boxpose

TORCH_LIBRARY(boxpose_kernels_cuda, m) {
  m.def("box_filter_forward(Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, bool snapped) -> Tensor");
  m.def(
      "box_filter_backward(Tensor grad_output, Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, "
      "bool snapped, bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(boxpose_kernels_cuda, CUDA, m) {
  m.impl("box_filter_forward", &boxpose::forward_cuda);
  m.impl("box_filter_backward", &boxpose::backward_cuda);
}
