// Shared math of the box-filter kernels: host/device functions used by the CUDA kernels, by the CPU
// emulation of the CUDA block algorithm (box_filter_emulation.cpp, tested on machines without a GPU) and
// by the vectorised CPU kernels.
//
// The operation (see boxpose/ops/reference.py for the full statement): for output channel j, with
// corner abscissae xs[j, 0..NX), ordinates ys[j, 0..NY) in kernel coordinates a in [0, k] and
// coefficients coef[j, a, b],
//
//     out[n, j, y, x] = sum_a sum_b coef[j, a, b] * F(y - r + ys[j, a], x - r + xs[j, b]),  r = (k-1)/2,
//
// where F is the bilinear interpolation of the summed-area table S (H+1 rows, W+1 columns,
// S[i][j] = sum of input[v][u] for v < i, u < j) with indices clamped into the table (zero padding).
//
// Sub-pixel convention: coordinate a, clamped into [0, k], -> cell t = min(floor(a), k-1), fraction
// f = a - t in [0, 1]; F interpolates SAT columns (x - r + t) and (x - r + t + 1). Derivatives use the same two columns,
// which gives the right derivative at integer a < k and the left one at a = k.

#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define BOXPOSE_HD __host__ __device__ __forceinline__
#else
#define BOXPOSE_HD inline
#endif

namespace boxpose {

// A box has 2 corners per axis; a box split in two along an axis has 3 (the midpoint is shared).
constexpr int kMaxCorners = 3;
// Per-thread gradient partials: d/dxs (3), d/dys (3), d/dcoef (3x3).
constexpr int kNumGradPartials = 2 * kMaxCorners + kMaxCorners * kMaxCorners;

BOXPOSE_HD int clamp_index(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

BOXPOSE_HD float floor_value(float v) { return floorf(v); }
BOXPOSE_HD double floor_value(double v) { return floor(v); }
// Round half to even, like torch.round.
BOXPOSE_HD float round_value(float v) { return rintf(v); }
BOXPOSE_HD double round_value(double v) { return rint(v); }

// Row stride of a SAT in memory: W + 1 made odd, so that threads walking different rows of a
// shared-memory table hit different banks.
BOXPOSE_HD int sat_stride(int W) { return (W + 1) | 1; }

// Per-channel sampling table: cells and fractions of every corner, and the coefficients.
template <typename acc_t>
struct CornerTable {
  int nx;
  int ny;
  int tx[kMaxCorners];
  int ty[kMaxCorners];
  acc_t fx[kMaxCorners];
  acc_t fy[kMaxCorners];
  acc_t coef[kMaxCorners][kMaxCorners];
  bool integer;  // every fraction is 0 or 1: each corner is a single SAT read
};

// Corner coordinates are clamped into the kernel window [0, k] (NaN to 0) before anything is cast to
// int: a coordinate far outside the window (1e10, inf) or NaN would otherwise give an undefined cast and
// indices outside the table. (The public functions reject non-finite corners; this keeps the kernels
// memory-safe whatever they are given.)
template <typename acc_t>
BOXPOSE_HD acc_t clamp_corner(acc_t a, int k) {
  if (!(a >= acc_t(0))) return acc_t(0);  // also NaN
  return a > acc_t(k) ? acc_t(k) : a;
}

template <typename acc_t>
BOXPOSE_HD void split_coordinate(acc_t a, int k, bool snapped, int* cell, acc_t* frac) {
  a = clamp_corner(a, k);
  if (snapped) a = round_value(a);
  acc_t t = floor_value(a);
  if (t > acc_t(k - 1)) t = acc_t(k - 1);
  *cell = static_cast<int>(t);
  *frac = a - t;
}

// Corner a of the adjoint filter: k - a, where a is clamped and, for snapped corners, rounded first
// (rounding k - a instead would move a corner at a half-integer, such as the centre of the window, to
// the other side, and the result would no longer be the adjoint).
template <typename acc_t>
BOXPOSE_HD acc_t mirror_corner(acc_t a, int k, bool snapped) {
  a = clamp_corner(a, k);
  return acc_t(k) - (snapped ? round_value(a) : a);
}

// Table of channel j. xs: (NX,), ys: (NY,), coef: (NY, NX) row-major, all for this channel.
// mirrored: the adjoint filter used for grad_input (a -> k - a, corner order and coefficients reversed).
template <typename acc_t, typename coord_t>
BOXPOSE_HD CornerTable<acc_t> make_corner_table(const coord_t* xs, const coord_t* ys, const coord_t* coef,
                                                int nx, int ny, int k, bool snapped, bool mirrored) {
  CornerTable<acc_t> t;
  t.nx = nx;
  t.ny = ny;
  t.integer = true;
  for (int b = 0; b < nx; ++b) {
    acc_t a = mirrored ? mirror_corner(acc_t(xs[nx - 1 - b]), k, snapped) : acc_t(xs[b]);
    split_coordinate(a, k, snapped, &t.tx[b], &t.fx[b]);
    if (t.fx[b] != acc_t(0) && t.fx[b] != acc_t(1)) t.integer = false;
  }
  for (int a = 0; a < ny; ++a) {
    acc_t c = mirrored ? mirror_corner(acc_t(ys[ny - 1 - a]), k, snapped) : acc_t(ys[a]);
    split_coordinate(c, k, snapped, &t.ty[a], &t.fy[a]);
    if (t.fy[a] != acc_t(0) && t.fy[a] != acc_t(1)) t.integer = false;
  }
  for (int a = 0; a < ny; ++a) {
    for (int b = 0; b < nx; ++b) {
      t.coef[a][b] = mirrored ? acc_t(coef[(ny - 1 - a) * nx + (nx - 1 - b)]) : acc_t(coef[a * nx + b]);
    }
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Block-cooperative SAT construction. Each function is one phase of a thread block (thread `tid` of
// `nthreads`); phases are separated by a barrier (__syncthreads on the GPU; the CPU emulation runs
// one phase for every tid before starting the next).

// Phase 1: copy the plane (H x W, row-major) into the table, with a zero first row and column.
template <typename scalar_t, typename acc_t>
BOXPOSE_HD void sat_load_phase(acc_t* sat, const scalar_t* plane, int H, int W, int tid, int nthreads) {
  const int stride = sat_stride(W);
  for (int i = tid; i <= W; i += nthreads) sat[i] = acc_t(0);
  for (int i = tid; i < H; i += nthreads) sat[(i + 1) * stride] = acc_t(0);
  for (int i = tid; i < H * W; i += nthreads) {
    const int y = i / W;
    const int x = i - y * W;
    sat[(y + 1) * stride + x + 1] = static_cast<acc_t>(plane[i]);
  }
}

// Phase 2: prefix sums along each row (one thread per row).
template <typename acc_t>
BOXPOSE_HD void sat_row_scan_phase(acc_t* sat, int H, int W, int tid, int nthreads) {
  const int stride = sat_stride(W);
  for (int y = 1 + tid; y <= H; y += nthreads) {
    acc_t* row = sat + y * stride;
    acc_t run = acc_t(0);
    for (int x = 1; x <= W; ++x) {
      run += row[x];
      row[x] = run;
    }
  }
}

// Phase 3: prefix sums down each column (one thread per column).
template <typename acc_t>
BOXPOSE_HD void sat_column_scan_phase(acc_t* sat, int H, int W, int tid, int nthreads) {
  const int stride = sat_stride(W);
  for (int x = 1 + tid; x <= W; x += nthreads) {
    acc_t run = acc_t(0);
    for (int y = 1; y <= H; ++y) {
      run += sat[y * stride + x];
      sat[y * stride + x] = run;
    }
  }
}

// Work split of the filtering phases: a work item is one column x and a run of rows [y0, y1).
// Threads of a warp take consecutive columns (coalesced stores); each walks its rows downwards,
// reusing the SAT rows it already read (see filter_column).
struct ColumnChunks {
  int rows;    // rows per item
  int chunks;  // items per column
};

BOXPOSE_HD ColumnChunks column_chunks(int H, int W, int nthreads) {
  ColumnChunks c;
  int chunks = W > 0 ? nthreads / W : 1;
  if (chunks < 1) chunks = 1;
  if (chunks > H) chunks = H > 0 ? H : 1;
  c.rows = H > 0 ? (H + chunks - 1) / chunks : 0;
  c.chunks = c.rows > 0 ? (H + c.rows - 1) / c.rows : 0;
  return c;
}

// Output of one column x for rows [y0, y1): calls store(y, value) for each row. Entry (i, j) of the
// SAT is sat[i * pitch + j * step]: pitch = sat_stride(W) and step = 1 for a plane's own table (see
// the channels-last tiles below for the other case).
//
// Interpolated corners: h[a][p][b] is the x-interpolated SAT value at row (y - r + ty[a] + p) for
// corner b. Moving from y to y + 1, row p = 1 becomes row p = 0, so each step reads only the NY new
// rows: 2 * NY * NX SAT reads per output (8 for a plain box) instead of 4 * NY * NX.
template <typename acc_t, typename Store>
BOXPOSE_HD void filter_column(const acc_t* sat, int pitch, int step, int H, int W, const CornerTable<acc_t>& t,
                              int r, int x, int y0, int y1, Store& store) {
  if (t.integer) {
    int col[kMaxCorners];
#pragma unroll
    for (int b = 0; b < kMaxCorners; ++b) {
      if (b < t.nx) col[b] = clamp_index(x - r + t.tx[b] + static_cast<int>(t.fx[b]), 0, W) * step;
    }
    for (int y = y0; y < y1; ++y) {
      acc_t v = acc_t(0);
#pragma unroll
      for (int a = 0; a < kMaxCorners; ++a) {
        if (a >= t.ny) break;
        const acc_t* s = sat + clamp_index(y - r + t.ty[a] + static_cast<int>(t.fy[a]), 0, H) * pitch;
#pragma unroll
        for (int b = 0; b < kMaxCorners; ++b) {
          if (b < t.nx) v += t.coef[a][b] * s[col[b]];
        }
      }
      store(y, v);
    }
    return;
  }
  int c0[kMaxCorners], c1[kMaxCorners];
#pragma unroll
  for (int b = 0; b < kMaxCorners; ++b) {
    if (b < t.nx) {
      c0[b] = clamp_index(x - r + t.tx[b], 0, W) * step;
      c1[b] = clamp_index(x - r + t.tx[b] + 1, 0, W) * step;
    }
  }
  acc_t h[kMaxCorners][2][kMaxCorners];
#pragma unroll
  for (int a = 0; a < kMaxCorners; ++a) {
    if (a >= t.ny) break;
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const acc_t* s = sat + clamp_index(y0 - r + t.ty[a] + p, 0, H) * pitch;
#pragma unroll
      for (int b = 0; b < kMaxCorners; ++b) {
        if (b < t.nx) h[a][p][b] = s[c0[b]] + t.fx[b] * (s[c1[b]] - s[c0[b]]);
      }
    }
  }
  for (int y = y0; y < y1; ++y) {
    if (y > y0) {
#pragma unroll
      for (int a = 0; a < kMaxCorners; ++a) {
        if (a >= t.ny) break;
        const acc_t* s = sat + clamp_index(y - r + t.ty[a] + 1, 0, H) * pitch;
#pragma unroll
        for (int b = 0; b < kMaxCorners; ++b) {
          if (b < t.nx) {
            h[a][0][b] = h[a][1][b];
            h[a][1][b] = s[c0[b]] + t.fx[b] * (s[c1[b]] - s[c0[b]]);
          }
        }
      }
    }
    acc_t v = acc_t(0);
#pragma unroll
    for (int a = 0; a < kMaxCorners; ++a) {
      if (a >= t.ny) break;
#pragma unroll
      for (int b = 0; b < kMaxCorners; ++b) {
        if (b < t.nx) v += t.coef[a][b] * (h[a][0][b] + t.fy[a] * (h[a][1][b] - h[a][0][b]));
      }
    }
    store(y, v);
  }
}

// Gradient partials of one column x, rows [y0, y1), with respect to the corner coordinates and the
// coefficients: partials[b] += sum_y g(y) * dOut/dxs[b], partials[kMaxCorners + a] += ... dOut/dys[a],
// partials[2 * kMaxCorners + a * kMaxCorners + b] += ... dOut/dcoef[a][b]. g(y) = grad(y) is the
// output gradient at (y, x). Uses the same rolling SAT reads as filter_column, plus the column
// differences that give dF/dX.
template <typename acc_t, typename GradLoad>
BOXPOSE_HD void corner_grads_column(const acc_t* sat, int pitch, int step, int H, int W, const CornerTable<acc_t>& t,
                                    int r, int x, int y0, int y1, GradLoad& grad, acc_t* partials) {
  int c0[kMaxCorners], c1[kMaxCorners];
#pragma unroll
  for (int b = 0; b < kMaxCorners; ++b) {
    if (b < t.nx) {
      c0[b] = clamp_index(x - r + t.tx[b], 0, W) * step;
      c1[b] = clamp_index(x - r + t.tx[b] + 1, 0, W) * step;
    }
  }
  // h: x-interpolated SAT values; d: x-differences (dF/dX along that row), per (a, p, b).
  acc_t h[kMaxCorners][2][kMaxCorners];
  acc_t d[kMaxCorners][2][kMaxCorners];
#pragma unroll
  for (int a = 0; a < kMaxCorners; ++a) {
    if (a >= t.ny) break;
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const acc_t* s = sat + clamp_index(y0 - r + t.ty[a] + p, 0, H) * pitch;
#pragma unroll
      for (int b = 0; b < kMaxCorners; ++b) {
        if (b < t.nx) {
          d[a][p][b] = s[c1[b]] - s[c0[b]];
          h[a][p][b] = s[c0[b]] + t.fx[b] * d[a][p][b];
        }
      }
    }
  }
  for (int y = y0; y < y1; ++y) {
    if (y > y0) {
#pragma unroll
      for (int a = 0; a < kMaxCorners; ++a) {
        if (a >= t.ny) break;
        const acc_t* s = sat + clamp_index(y - r + t.ty[a] + 1, 0, H) * pitch;
#pragma unroll
        for (int b = 0; b < kMaxCorners; ++b) {
          if (b < t.nx) {
            h[a][0][b] = h[a][1][b];
            d[a][0][b] = d[a][1][b];
            d[a][1][b] = s[c1[b]] - s[c0[b]];
            h[a][1][b] = s[c0[b]] + t.fx[b] * d[a][1][b];
          }
        }
      }
    }
    const acc_t g = grad(y);
#pragma unroll
    for (int a = 0; a < kMaxCorners; ++a) {
      if (a >= t.ny) break;
      const acc_t fy = t.fy[a];
#pragma unroll
      for (int b = 0; b < kMaxCorners; ++b) {
        if (b < t.nx) {
          const acc_t gc = g * t.coef[a][b];
          partials[b] += gc * (d[a][0][b] + fy * (d[a][1][b] - d[a][0][b]));
          partials[kMaxCorners + a] += gc * (h[a][1][b] - h[a][0][b]);
          partials[2 * kMaxCorners + a * kMaxCorners + b] += g * (h[a][0][b] + fy * (h[a][1][b] - h[a][0][b]));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Channels-last (NHWC) blocks. A block takes a group of G consecutive channels of one image and holds
// their summed-area tables interleaved, channel innermost (a tile): entry (i, j) of channel cl at
// tile[(i * sat_stride(W) + j) * G + cl], so pitch = sat_stride(W) * G and step = G for filter_column.
// Thread tid works on channel cl = tid % G as worker tid / G of the nthreads / G threads of that
// channel: the threads of a warp cover consecutive channels of a pixel (coalesced global loads and
// stores, since an NHWC pixel's channels are contiguous) and consecutive tile entries (no shared-memory
// bank conflicts; the odd sat_stride keeps the rows of different workers on different banks).
// Threads beyond the last whole group (tid >= workers * G) only join the barriers. A channel past the
// image's last one (the last group of an image may be partial) is not `valid`: its table is zeros and
// it writes nothing.

struct GroupThread {
  int cl;       // channel within the group
  int worker;   // index among the threads of that channel
  int workers;  // threads per channel
  bool active;  // worker < workers
};

// Requires 1 <= G <= nthreads.
BOXPOSE_HD GroupThread group_thread(int tid, int nthreads, int G) {
  GroupThread t;
  t.workers = nthreads / G;
  t.cl = tid % G;
  t.worker = tid / G;
  t.active = t.worker < t.workers;
  return t;
}

// Phase 1: channel cl's table gets a zero first row and column and, at (y + 1, x + 1), the value of
// pixel (y, x): src[(y * W + x) * pixel_stride], src pointing at the channel's element of pixel (0, 0).
template <typename scalar_t, typename acc_t>
BOXPOSE_HD void tile_load_phase(acc_t* tile, const scalar_t* src, int64_t pixel_stride, int H, int W, int G,
                                const GroupThread& t, bool valid) {
  if (!t.active) return;
  const int stride = sat_stride(W);
  for (int item = t.worker; item < (H + 1) * (W + 1); item += t.workers) {
    const int i = item / (W + 1);
    const int j = item - i * (W + 1);
    acc_t v = acc_t(0);
    if (valid && i > 0 && j > 0)
      v = static_cast<acc_t>(src[(static_cast<int64_t>(i - 1) * W + (j - 1)) * pixel_stride]);
    tile[(static_cast<int64_t>(i) * stride + j) * G + t.cl] = v;
  }
}

// Phase 2: prefix sums along each row of channel cl's table (one worker per row).
template <typename acc_t>
BOXPOSE_HD void tile_row_scan_phase(acc_t* tile, int H, int W, int G, const GroupThread& t) {
  if (!t.active) return;
  const int64_t pitch = static_cast<int64_t>(sat_stride(W)) * G;
  for (int y = 1 + t.worker; y <= H; y += t.workers) {
    acc_t* row = tile + y * pitch + t.cl;
    acc_t run = acc_t(0);
    for (int x = 1; x <= W; ++x) {
      run += row[x * G];
      row[x * G] = run;
    }
  }
}

// Phase 3: prefix sums down each column of channel cl's table (one worker per column).
template <typename acc_t>
BOXPOSE_HD void tile_column_scan_phase(acc_t* tile, int H, int W, int G, const GroupThread& t) {
  if (!t.active) return;
  const int64_t pitch = static_cast<int64_t>(sat_stride(W)) * G;
  for (int x = 1 + t.worker; x <= W; x += t.workers) {
    acc_t* column = tile + x * G + t.cl;
    acc_t run = acc_t(0);
    for (int y = 1; y <= H; ++y) {
      run += column[y * pitch];
      column[y * pitch] = run;
    }
  }
}

// Accessors of one column x of an NHWC image for filter_column / corner_grads_column: pixel (y, x) of
// the channel at base[(y * W + x) * pixel_stride].
template <typename scalar_t, typename acc_t>
struct PixelStore {
  scalar_t* base;
  int64_t pixel_stride;
  int W;
  int x;
  BOXPOSE_HD void operator()(int y, acc_t v) {
    base[(static_cast<int64_t>(y) * W + x) * pixel_stride] = static_cast<scalar_t>(v);
  }
};

template <typename scalar_t, typename acc_t>
struct PixelLoad {
  const scalar_t* base;
  int64_t pixel_stride;
  int W;
  int x;
  BOXPOSE_HD acc_t operator()(int y) const {
    return static_cast<acc_t>(base[(static_cast<int64_t>(y) * W + x) * pixel_stride]);
  }
};

// Accumulator of grad_input when m > 1 (H * W entries per channel, channel innermost: pixel (y, x) of
// channel cl at acc[(y * W + x) * G + cl]); the first of the m output channels sets, the others add.
template <typename acc_t>
struct PixelAccumulate {
  acc_t* base;  // acc + cl
  int G;
  int W;
  int x;
  bool accumulate;
  BOXPOSE_HD void operator()(int y, acc_t v) {
    acc_t& dst = base[(static_cast<int64_t>(y) * W + x) * G];
    dst = accumulate ? dst + v : v;
  }
};

// Where gradient partial i (see kNumGradPartials) goes: 0 = grad_xs[offset], 1 = grad_ys[offset],
// 2 = grad_coef[offset] (row-major NY x NX), -1 = nowhere (a corner slot beyond NX or NY).
BOXPOSE_HD int partial_destination(int i, int nx, int ny, int* offset) {
  if (i < kMaxCorners) {
    *offset = i;
    return i < nx ? 0 : -1;
  }
  if (i < 2 * kMaxCorners) {
    *offset = i - kMaxCorners;
    return *offset < ny ? 1 : -1;
  }
  const int a = (i - 2 * kMaxCorners) / kMaxCorners, b = (i - 2 * kMaxCorners) % kMaxCorners;
  *offset = a * nx + b;
  return a < ny && b < nx ? 2 : -1;
}

// Block reduction of the corner-gradient partials of a group, in two phases. Phase A: every thread
// (active or not: an inactive one stores zeros) stores its partials at buffer[tid * kNumGradPartials].
template <typename acc_t>
BOXPOSE_HD void group_partials_store_phase(acc_t* buffer, const acc_t* partials, int tid) {
  for (int i = 0; i < kNumGradPartials; ++i) buffer[tid * kNumGradPartials + i] = partials[i];
}

// Phase B: entry i of channel cl is summed over the channel's workers (in worker order) and handed to
// add(cl, i, total).
template <typename acc_t, typename Add>
BOXPOSE_HD void group_partials_sum_phase(const acc_t* buffer, int G, int tid, int nthreads, Add& add) {
  const int workers = nthreads / G;
  for (int e = tid; e < G * kNumGradPartials; e += nthreads) {
    const int cl = e / kNumGradPartials, i = e - cl * kNumGradPartials;
    acc_t total = acc_t(0);
    for (int w = 0; w < workers; ++w) total += buffer[(w * G + cl) * kNumGradPartials + i];
    add(cl, i, total);
  }
}

}  // namespace boxpose
