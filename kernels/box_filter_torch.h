// Host-side helpers shared by the CPU and CUDA operator registrations: argument checks and shapes.
#pragma once

#include <ATen/ATen.h>

#include <array>

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

}  // namespace boxpose
