"""``BoxConv2d``: a depthwise convolution with learnable box kernels of any size at constant cost.

Each of the ``channels * boxes_per_channel`` output channels sums its input channel (j // m) over a
learnable box inside a ``max_size`` x ``max_size`` kernel window centred on the output pixel (see
:func:`boxpose.ops.box_conv2d` for the exact definition). Four parameters per box, whatever its size;
16 multiply-accumulates per output (4 once snapped to integer corners).

Parameters are the box corners normalised to [-1, 1] relative to the kernel window, initialised
uniform in [-0.5, 0.5] and ordered (paper, Sec. 3.2). The trainer calls :meth:`BoxConv2d.project_`
after every optimizer step (projected gradient descent): corners are clipped to [-1, 1] and each
axis is re-ordered so that lo <= hi.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from boxpose.ops.box_conv import SPLITS, box_conv2d, box_conv2d_split, box_corners


class BoxConv2d(nn.Module):
    """Depthwise box convolution.

    Args:
        channels: input channels C.
        max_size: k, the kernel window's side in pixels (odd); boxes never exceed it.
        boxes_per_channel: m; the layer outputs C * m channels, output channel j reading input j // m.
        split: kernel splitting (paper, Fig. 2): "none", "h2" (left/right halves), "v2" (top/bottom
            halves) or "q4" (quarters); each piece has a learnable weight initialised to 1.
        normalize: divide each output by its box's area in pixels (Burkov & Lempitsky's variant; the
            area is floored at one pixel), for comparison.

    Shapes: (N, C, H, W) -> (N, C * m, H, W).
    """

    def __init__(
        self,
        channels: int,
        max_size: int,
        boxes_per_channel: int = 1,
        split: str = "none",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"BoxConv2d: channels must be >= 1, got {channels}")
        if max_size < 1 or max_size % 2 == 0:
            raise ValueError(f"BoxConv2d: max_size must be an odd integer >= 1, got {max_size}")
        if boxes_per_channel < 1:
            raise ValueError(f"BoxConv2d: boxes_per_channel must be >= 1, got {boxes_per_channel}")
        if split not in SPLITS:
            raise ValueError(f"BoxConv2d: split must be one of {sorted(SPLITS)}, got {split!r}")
        self.channels = channels
        self.max_size = max_size
        self.boxes_per_channel = boxes_per_channel
        self.split = split
        self.normalize = normalize
        out_channels = channels * boxes_per_channel
        self.boxes = nn.Parameter(torch.empty(out_channels, 4))
        if split == "none":
            self.register_parameter("piece_weights", None)
        else:
            pieces_y, pieces_x = SPLITS[split]
            self.piece_weights = nn.Parameter(torch.ones(out_channels, pieces_y * pieces_x))
        # Persistent flag so that checkpoints remember snapping; mirrored in a Python bool for forward().
        self.register_buffer("snapped", torch.zeros((), dtype=torch.bool))
        self._is_snapped = False
        self.register_load_state_dict_post_hook(_restore_snapped_state)
        self.reset_parameters()

    @property
    def out_channels(self) -> int:
        return self.channels * self.boxes_per_channel

    @property
    def is_snapped(self) -> bool:
        return self._is_snapped

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Corners uniform in [-0.5, 0.5], ordered; piece weights 1."""
        self.boxes.uniform_(-0.5, 0.5)
        self._order_()
        if self.piece_weights is not None:
            self.piece_weights.fill_(1.0)

    @torch.no_grad()
    def _order_(self) -> None:
        lo = torch.minimum(self.boxes[:, 0::2], self.boxes[:, 1::2])
        hi = torch.maximum(self.boxes[:, 0::2], self.boxes[:, 1::2])
        self.boxes[:, 0::2] = lo
        self.boxes[:, 1::2] = hi

    @torch.no_grad()
    def project_(self) -> None:
        """Clip the corners to [-1, 1] and restore x_lo <= x_hi, y_lo <= y_hi (after each optimizer step)."""
        if self._is_snapped:
            return
        self.boxes.clamp_(-1.0, 1.0)
        self._order_()

    @torch.no_grad()
    def snap_(self) -> None:
        """Round every corner to the integer grid of the kernel window and freeze the boxes.

        Afterwards the op reads one SAT value per corner (no interpolation): 4 reads per output for a
        plain box. A box narrower than a pixel whose ends round to the same integer keeps one pixel (the
        one holding its centre) instead of vanishing: the boxes are frozen afterwards, so an emptied box
        would silence its channel for good. On a split axis the box width is made even so that the
        midpoint is an integer too (the corner moved is the one that stays closest to its unrounded
        position). The piece weights of split boxes stay trainable.
        """
        k = self.max_size
        a = (self.boxes.clamp(-1.0, 1.0) + 1.0) * (k / 2.0)
        raw_lo, raw_hi = a[:, 0::2], a[:, 1::2]  # (C_out, 2) columns: x, y
        lo = raw_lo.round()
        hi = torch.maximum(raw_hi.round(), lo)
        collapsed = (hi == lo) & (raw_hi > raw_lo)
        centre_pixel = ((raw_lo + raw_hi) / 2).floor().clamp(0, k - 1)
        lo = torch.where(collapsed, centre_pixel, lo)
        hi = torch.where(collapsed, centre_pixel + 1, hi)
        pieces_y, pieces_x = SPLITS[self.split]
        for axis, pieces in ((0, pieces_x), (1, pieces_y)):
            if pieces == 2:
                lo[:, axis], hi[:, axis] = _even_width(
                    raw_lo[:, axis], raw_hi[:, axis], lo[:, axis], hi[:, axis], k
                )
        corners = torch.empty_like(self.boxes)
        corners[:, 0::2] = lo
        corners[:, 1::2] = hi
        self.boxes.copy_(corners * (2.0 / k) - 1.0)
        self.boxes.requires_grad_(False)
        self.snapped.fill_(True)
        self._is_snapped = True

    def boxes_in_pixels(self) -> Tensor:
        """(C_out, 4) box corners (x_lo, x_hi, y_lo, y_hi) in pixels of the kernel window, [0, max_size],
        clamped and ordered as the op uses them (for plotting; detached, float32, on the CPU)."""
        with torch.no_grad():
            xs, ys = box_corners(self.boxes.float(), self.max_size)
        return torch.stack([xs[:, 0], xs[:, -1], ys[:, 0], ys[:, -1]], 1).cpu()

    def forward(self, x: Tensor) -> Tensor:
        # Boxes stay float32 under AMP and after model.half(): bf16 would resolve corners only to ~0.1 px.
        box_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        boxes = self.boxes.to(box_dtype)
        if self.piece_weights is None:
            out = box_conv2d(x, boxes, self.max_size, snapped=self._is_snapped)
        else:
            out = box_conv2d_split(
                x,
                boxes,
                self.piece_weights.to(box_dtype),
                self.max_size,
                self.split,
                snapped=self._is_snapped,
            )
        if self.normalize:
            xs, ys = box_corners(boxes, self.max_size)
            area = ((xs[:, -1] - xs[:, 0]) * (ys[:, -1] - ys[:, 0])).clamp_min(1.0)
            out = out / area.to(out.dtype)[None, :, None, None]
        return out

    def extra_repr(self) -> str:
        text = (
            f"{self.channels}, max_size={self.max_size}, boxes_per_channel={self.boxes_per_channel}, "
            f"split={self.split}"
        )
        if self.normalize:
            text += ", normalize=True"
        if self._is_snapped:
            text += ", snapped=True"
        return text


def _even_width(raw_lo: Tensor, raw_hi: Tensor, lo: Tensor, hi: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Adjust integer corners (lo, hi) in [0, k] so that hi - lo is even, moving one corner by 1."""
    odd = (hi - lo) % 2 == 1
    inf = torch.full_like(lo, float("inf"))
    # Candidate moves: hi + 1, lo - 1, hi - 1 (always valid when the width is odd, hence >= 1). Shrinking
    # a one-pixel box would empty it, so it is the last resort there (only when k = 1).
    cost_up = torch.where(hi + 1 <= k, (hi + 1 - raw_hi).abs(), inf)
    cost_down = torch.where(lo - 1 >= 0, (lo - 1 - raw_lo).abs(), inf)
    cost_shrink = (hi - 1 - raw_hi).abs() + torch.where(hi - lo > 1, 0.0, 1e6)
    best = torch.stack([cost_up, cost_down, cost_shrink], 1).argmin(1)
    new_hi = torch.where(odd & (best == 0), hi + 1, torch.where(odd & (best == 2), hi - 1, hi))
    new_lo = torch.where(odd & (best == 1), lo - 1, lo)
    return new_lo, new_hi


def _restore_snapped_state(module: nn.Module, incompatible_keys) -> None:
    if isinstance(module, BoxConv2d):
        module._is_snapped = bool(module.snapped)
        if module._is_snapped:
            module.boxes.requires_grad_(False)


def box_conv_layers(model: nn.Module) -> list[tuple[str, BoxConv2d]]:
    """All ``BoxConv2d`` layers of ``model`` with their qualified names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BoxConv2d)]


@torch.no_grad()
def project_boxes_(model: nn.Module) -> None:
    """Project every ``BoxConv2d`` of ``model`` (call after each optimizer step)."""
    for _, layer in box_conv_layers(model):
        layer.project_()


@torch.no_grad()
def snap_boxes_(model: nn.Module) -> int:
    """Snap and freeze every ``BoxConv2d`` of ``model``; returns how many layers were snapped."""
    layers = box_conv_layers(model)
    for _, layer in layers:
        layer.snap_()
    return len(layers)
