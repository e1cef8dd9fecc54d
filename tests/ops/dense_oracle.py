"""Independent oracle for the box filter: explicit dense k x k kernels and torch's depthwise conv2d.

Nothing here uses summed-area tables; the kernels follow the definition in the issue:
w[j, iy, ix] = ov_y(iy) * ov_x(ix), ov(i) = max(0, min(hi, i+1) - max(lo, i)), a = (p + 1) * k / 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def overlap(lo: Tensor, hi: Tensor, k: int) -> Tensor:
    """(C,) interval ends in kernel units -> (C, k) overlap of [lo, hi] with each cell [i, i+1)."""
    i = torch.arange(k, dtype=lo.dtype, device=lo.device)
    return (torch.minimum(hi[:, None], i + 1) - torch.maximum(lo[:, None], i)).clamp_min(0)


def kernel_coords(boxes: Tensor, k: int) -> Tensor:
    return (boxes.clamp(-1, 1) + 1) * (k / 2)


def dense_box_kernel(boxes: Tensor, k: int) -> Tensor:
    """(C_out, 4) boxes (x_lo, x_hi, y_lo, y_hi) in [-1, 1] -> (C_out, k, k) dense kernels."""
    a = kernel_coords(boxes, k)
    return overlap(a[:, 2], a[:, 3], k)[:, :, None] * overlap(a[:, 0], a[:, 1], k)[:, None, :]


def dense_split_kernel(boxes: Tensor, piece_weights: Tensor, k: int, split: str) -> Tensor:
    """Kernels of split boxes: each piece (between the corners and the midpoint) times its weight."""
    a = kernel_coords(boxes, k)
    x_lo, x_hi, y_lo, y_hi = a.unbind(1)
    x_mid, y_mid = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    x_pieces = [(x_lo, x_mid), (x_mid, x_hi)] if split in ("h2", "q4") else [(x_lo, x_hi)]
    y_pieces = [(y_lo, y_mid), (y_mid, y_hi)] if split in ("v2", "q4") else [(y_lo, y_hi)]
    kernel = torch.zeros(boxes.shape[0], k, k, dtype=boxes.dtype, device=boxes.device)
    index = 0
    for ylo, yhi in y_pieces:  # pieces in row-major order: top-left, top-right, bottom-left, bottom-right
        for xlo, xhi in x_pieces:
            w = piece_weights[:, index][:, None, None]
            kernel = kernel + w * overlap(ylo, yhi, k)[:, :, None] * overlap(xlo, xhi, k)[:, None, :]
            index += 1
    return kernel


def depthwise_conv(x: Tensor, kernels: Tensor) -> Tensor:
    """x (N, C, H, W), kernels (C_out, k, k), C_out = m * C -> (N, C_out, H, W), 'same' padding."""
    k = kernels.shape[-1]
    return F.conv2d(x, kernels.unsqueeze(1).to(x.dtype), padding=(k - 1) // 2, groups=x.shape[1])


def dense_box_conv(x: Tensor, boxes: Tensor, k: int) -> Tensor:
    return depthwise_conv(x, dense_box_kernel(boxes, k))


def dense_split_conv(x: Tensor, boxes: Tensor, piece_weights: Tensor, k: int, split: str) -> Tensor:
    return depthwise_conv(x, dense_split_kernel(boxes, piece_weights, k, split))


def random_boxes(c_out: int, k: int, dtype=torch.float64, margin: float = 0.05, generator=None) -> Tensor:
    """Ordered boxes in [-1, 1] whose kernel coordinates stay at least ``margin`` px from any integer."""
    a = torch.rand(c_out, 4, dtype=dtype, generator=generator) * k
    frac = a - a.floor()
    a = a.floor() + frac.clamp(margin, 1 - margin)
    a = a.clamp(margin, k - margin)
    lo = torch.minimum(a[:, 0::2], a[:, 1::2])
    hi = torch.maximum(a[:, 0::2], a[:, 1::2])
    boxes = torch.empty_like(a)
    boxes[:, 0::2] = lo
    boxes[:, 1::2] = hi
    return boxes * (2 / k) - 1
