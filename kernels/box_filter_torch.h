// Host-side helpers shared by the CPU, CUDA and emulation libraries: argument checks, shapes, corner
// tables and the reduction of gradient partials.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <type_traits>
#include <vector>

#include "box_filter_common.h"

namespace boxpose {

struct FilterShape {
  int64_t N, C, H, W, C_out, m;
  int nx, ny;
};

inline FilterShape check_filter_args(const at::Tensor& input, const at::Tensor& xs, const at::Tensor& ys,
                                     const at::Tensor& coef, int64_t max_size) {
  TORCH_CHECK(input.dim() == 4, "box_filter: input must be (N, C, H, W), got ", input.sizes());
  TORCH_CHECK(xs.dim() == 2 && ys.dim() == 2 && coef.dim() == 3,
              "box_filter: xs (C_out, NX), ys (C_out, NY) and coef (C_out, NY, NX) expected, got ", xs.sizes(),
              ", ", ys.sizes(), ", ", coef.sizes());
  FilterShape s;
  s.N = input.size(0);
  s.C = input.size(1);
  s.H = input.size(2);
  s.W = input.size(3);
  s.C_out = xs.size(0);
  s.nx = static_cast<int>(xs.size(1));
  s.ny = static_cast<int>(ys.size(1));
  TORCH_CHECK(s.C > 0 && s.C_out % s.C == 0 && s.C_out > 0,
              "box_filter: the number of boxes C_out=", s.C_out, " must be a positive multiple of the input channels C=", s.C);
  s.m = s.C_out / s.C;
  TORCH_CHECK(ys.size(0) == s.C_out && coef.size(0) == s.C_out && coef.size(1) == s.ny && coef.size(2) == s.nx,
              "box_filter: inconsistent corner shapes xs ", xs.sizes(), ", ys ", ys.sizes(), ", coef ", coef.sizes());
  TORCH_CHECK(s.nx >= 1 && s.nx <= kMaxCorners && s.ny >= 1 && s.ny <= kMaxCorners,
              "box_filter: 1 to ", kMaxCorners, " corners per axis supported, got NX=", s.nx, ", NY=", s.ny);
  TORCH_CHECK(max_size >= 1 && max_size % 2 == 1, "box_filter: max_size must be an odd integer >= 1, got ", max_size);
  TORCH_CHECK(xs.scalar_type() == ys.scalar_type() && xs.scalar_type() == coef.scalar_type(),
              "box_filter: xs, ys and coef must share a dtype");
  const auto expected = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(xs.scalar_type() == expected, "box_filter: corner tensors must be ", expected, " for ",
              input.scalar_type(), " input, got ", xs.scalar_type());
  TORCH_CHECK(xs.device() == input.device() && ys.device() == input.device() && coef.device() == input.device(),
              "box_filter: input and corner tensors must be on the same device");
  // Indices inside one plane and its table are int32; the plane offsets are int64.
  TORCH_CHECK((s.H + 1) * (s.W + 2) < (int64_t(1) << 31), "box_filter: planes of ", s.H, "x", s.W,
              " are too large");
  return s;
}

// Accumulation type: float for float, half and bfloat16, double for double.
template <typename scalar_t>
using acc_type = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// Corner table of output channel j (mirrored: the adjoint filter, for grad_input).
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

// A channels-last tensor that is not also contiguous (the NHWC kernels take it; one that is both, as
// with C == 1 or H == W == 1, has the same memory in either layout and takes the NCHW kernels).
inline bool is_channels_last(const at::Tensor& t) {
  return !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace boxpose
