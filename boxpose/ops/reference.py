"""Pure-PyTorch reference implementation of the box filter.

It runs on any device, differentiates through plain PyTorch autograd, exports to ONNX and TorchScript,
and is the oracle the C++ and CUDA kernels are tested against (together with the dense-kernel form in
the tests).

The generic operation
---------------------
All box-filter variants (a single box, the split boxes of the paper's Fig. 2, snapped boxes) are one
operation on a *corner grid*. For output channel j (reading input channel j // m), with NY corner
ordinates ``ys[j]`` and NX corner abscissae ``xs[j]`` in kernel coordinates a in [0, k], and a
coefficient matrix ``coef[j]`` of shape (NY, NX)::

    out[n, j, y, x] = sum_a sum_b coef[j, a, b] * F(y - r + ys[j, a], x - r + xs[j, b]),   r = (k - 1) / 2

where F(Y, X) is the integral of the zero-extended, piecewise-constant input plane (pixel (v, u)
covers [v, v+1) x [u, u+1)) over [0, Y] x [0, X]. F is exactly the bilinear interpolation of the
summed-area table S[i, j] = sum_{v < i, u < j} input[v, u] (shape (H+1, W+1)), with coordinates
clamped to [0, H] x [0, W] (zero padding). A plain box [x_lo, x_hi] x [y_lo, y_hi] is
xs = (x_lo, x_hi), ys = (y_lo, y_hi), coef = [[1, -1], [-1, 1]].

Sub-pixel convention (shared by every implementation): a kernel coordinate a is split into the cell
t = min(floor(a), k - 1) and the fraction f = a - t in [0, 1]; F is interpolated between SAT columns
(or rows) x - r + t and x - r + t + 1 (clamped into the table). The derivative of F with respect to
the coordinate is the difference of those two columns, i.e. the integral of input column x - r + t.
Consequently, at an integer coordinate a < k the *right* derivative is returned (the side towards
larger a), and at a = k the *left* one (the side inside the kernel window).

Corners outside the kernel window are clamped into [0, k] (:func:`clamp_corners`): the value is the one
at the clamped corner, the gradient with respect to a clamped coordinate is zero beyond the window and
full on its edge. Every implementation clamps before converting a coordinate to an index (the compiled
kernels in ``split_coordinate``), so no coordinate, however large, reads outside the table. Non-finite
corners are rejected by the op (``ValueError``) before they reach an implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the summed-area table is held in: float64 for float64 input, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_memory_format(input: Tensor) -> torch.memory_format:
    """Channels-last output for a channels-last input, else contiguous (every implementation agrees)."""
    if not input.is_contiguous() and input.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def summed_area_table(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, H+1, W+1) with S[..., i, j] = sum over rows v < i and columns u < j."""
    s = x.cumsum(-1).cumsum(-2)
    return F.pad(s, (1, 0, 1, 0))


def clamp_corners(coords: Tensor, max_size: int) -> Tensor:
    """Clamp kernel coordinates (any shape) into the window [0, k]: gradient 1 inside and on the edges,
    0 beyond.

    NaN becomes 0 and +-inf the nearest edge, as in the compiled kernels (``clamp_corner``), so that the
    implementations agree even on inputs the op rejects.
    """
    inside = (coords >= 0) & (coords <= max_size)
    edge = torch.nan_to_num(coords.detach(), nan=0.0, posinf=float(max_size), neginf=0.0).clamp(0, max_size)
    return torch.where(inside, coords, edge)


def zero_beyond_window(grad: Tensor, coords: Tensor, max_size: int) -> Tensor:
    """The gradient with respect to ``coords``, zero at the clamped coordinates (those outside [0, k]).

    The compiled kernels and :func:`box_filter_backward_reference` return the derivative at the clamped
    corner; this turns it into the derivative of the clamp's composition, as autograd gives for
    :func:`box_filter_reference`.
    """
    inside = (coords >= 0) & (coords <= max_size)
    return torch.where(inside, grad, torch.zeros_like(grad))


def corner_cells(coords: Tensor, max_size: int, snapped: bool = False) -> tuple[Tensor, Tensor]:
    """Split kernel coordinates (any shape) into integer cells t (int64) and fractions f = coords - t.

    The gradient flows through f only (t is piecewise constant). With ``snapped`` the coordinates are
    rounded to the nearest integer first (no gradient), so f is 0 or 1.
    """
    if snapped:
        coords = torch.round(coords.detach())
    t = torch.clamp(torch.floor(coords.detach()), max=max_size - 1)
    return t.long(), coords - t


def corner_grid(
    sat: Tensor,
    xs: Tensor,
    ys: Tensor,
    max_size: int,
    multiplier: int,
    snapped: bool = False,
    derivative: str | None = None,
) -> Tensor:
    """Sample F (or a derivative of it) at every output pixel and every corner.

    Args:
        sat: (N, C, H+1, W+1) summed-area table.
        xs: (C_out, NX) corner abscissae in kernel coordinates; ys: (C_out, NY) ordinates.
        max_size: k. multiplier: m = C_out // C.
        derivative: None for F, "x" for dF/dX, "y" for dF/dY (the documented one-sided derivatives).

    Returns:
        (N, C_out, H, NY, W, NX) with [n, j, y, a, x, b] = F(y - r + ys[j, a], x - r + xs[j, b]).
    """
    n, _, h1, w1 = sat.shape
    h, w = h1 - 1, w1 - 1
    c_out, nx = xs.shape
    ny = ys.shape[1]
    r = (max_size - 1) // 2
    device = sat.device
    tx, fx = corner_cells(xs, max_size, snapped)
    ty, fy = corner_cells(ys, max_size, snapped)
    fx = fx.to(sat.dtype)
    fy = fy.to(sat.dtype)
    if multiplier > 1:
        sat = sat.repeat_interleave(multiplier, dim=1)

    # Along x: gather SAT columns (x - r + t, x - r + t + 1) for every SAT row.
    col = torch.arange(w, device=device)[None, :, None] - r + tx[:, None, :]  # (C_out, W, NX)
    cols = torch.stack([col.clamp(0, w), (col + 1).clamp(0, w)], dim=-1)  # (C_out, W, NX, 2)
    index = cols.reshape(1, c_out, 1, w * nx * 2).expand(n, c_out, h1, w * nx * 2)
    g = sat.gather(3, index).reshape(n, c_out, h1, w, nx, 2)
    if derivative == "x":
        gx = g[..., 1] - g[..., 0]
    else:
        fxb = fx[None, :, None, None, :]
        gx = g[..., 0] * (1 - fxb) + g[..., 1] * fxb  # (N, C_out, H+1, W, NX)

    # Along y: gather rows (y - r + t, y - r + t + 1) of the x-interpolated table.
    row = torch.arange(h, device=device)[None, :, None] - r + ty[:, None, :]  # (C_out, H, NY)
    rows = torch.stack([row.clamp(0, h), (row + 1).clamp(0, h)], dim=-1)  # (C_out, H, NY, 2)
    index = rows.reshape(1, c_out, h * ny * 2, 1, 1).expand(n, c_out, h * ny * 2, w, nx)
    g = gx.gather(2, index).reshape(n, c_out, h, ny, 2, w, nx)
    if derivative == "y":
        return g[:, :, :, :, 1] - g[:, :, :, :, 0]
    fyb = fy[None, :, None, :, None, None]
    return g[:, :, :, :, 0] * (1 - fyb) + g[:, :, :, :, 1] * fyb


def box_filter_reference(
    input: Tensor, xs: Tensor, ys: Tensor, coef: Tensor, max_size: int, snapped: bool = False
) -> Tensor:
    """The generic corner-grid box filter (see the module docstring), differentiable by autograd.

    Args:
        input: (N, C, H, W), any floating dtype. xs: (C_out, NX), ys: (C_out, NY), coef: (C_out, NY, NX).
    Returns:
        (N, C_out, H, W) in the input's dtype; accumulation in float32 (float64 for float64 input).
    """
    acc = accumulation_dtype(input.dtype)
    multiplier = xs.shape[0] // input.shape[1]
    xs, ys = clamp_corners(xs, max_size), clamp_corners(ys, max_size)
    sat = summed_area_table(input.to(acc))
    grid = corner_grid(sat, xs, ys, max_size, multiplier, snapped)
    out = torch.einsum("ncyaxb,cab->ncyx", grid, coef.to(acc))
    return out.to(input.dtype).contiguous(memory_format=output_memory_format(input))


def box_filter_backward_reference(
    grad_output: Tensor,
    input: Tensor,
    xs: Tensor,
    ys: Tensor,
    coef: Tensor,
    max_size: int,
    snapped: bool,
    output_mask: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Explicit gradients of :func:`box_filter_reference` with respect to (input, xs, ys, coef).

    Used as the backward kernel where no compiled kernel exists. Gradients not asked for in
    ``output_mask`` are returned as zeros. Like the compiled kernels, the corner gradients are the
    derivatives at the clamped corners (see :func:`zero_beyond_window`).

    grad_input is the adjoint of the filter: the same filter applied to grad_output with the box
    mirrored inside the kernel window (a -> k - a, corner order and coefficients reversed), summed over
    the m output channels that read each input channel.
    """
    n, c, h, w = input.shape
    c_out = xs.shape[0]
    m = c_out // c
    acc = accumulation_dtype(input.dtype)
    xs, ys = clamp_corners(xs, max_size), clamp_corners(ys, max_size)
    g = grad_output.to(acc)
    grad_input = grad_xs = grad_ys = grad_coef = None
    if output_mask[0]:
        # Snapped corners are rounded before mirroring: round(k - a) != k - round(a) at half-integers.
        xs_m, ys_m = (torch.round(xs), torch.round(ys)) if snapped else (xs, ys)
        mirrored = box_filter_reference(
            g, max_size - xs_m.flip(1), max_size - ys_m.flip(1), coef.flip(1, 2), max_size, snapped
        )
        grad_input = mirrored.view(n, c, m, h, w).sum(2).to(input.dtype)
    if any(output_mask[1:]):
        sat = summed_area_table(input.to(acc))
        coef_acc = coef.to(acc)
        if output_mask[1]:
            d = corner_grid(sat, xs, ys, max_size, m, snapped, derivative="x")
            grad_xs = torch.einsum("ncyx,ncyaxb,cab->cb", g, d, coef_acc).to(xs.dtype)
        if output_mask[2]:
            d = corner_grid(sat, xs, ys, max_size, m, snapped, derivative="y")
            grad_ys = torch.einsum("ncyx,ncyaxb,cab->ca", g, d, coef_acc).to(ys.dtype)
        if output_mask[3]:
            v = corner_grid(sat, xs, ys, max_size, m, snapped)
            grad_coef = torch.einsum("ncyx,ncyaxb->cab", g, v).to(coef.dtype)
    return (
        grad_input if grad_input is not None else torch.zeros_like(input),
        grad_xs if grad_xs is not None else torch.zeros_like(xs),
        grad_ys if grad_ys is not None else torch.zeros_like(ys),
        grad_coef if grad_coef is not None else torch.zeros_like(coef),
    )
