"""Stacked hourglass network [Newell, Yang and Deng 2016], as in the authors' Torch code (``hg.lua``).

Stem: 7x7 stride-2 convolution (64) + BN + ReLU, residual 64 -> 128, 2x2 max-pool, residuals 128 -> 128
-> 256: quarter resolution. Then S stacks, each: an hourglass of depth 4 (residual on the skip branch;
max-pool, residual, inner hourglass or a residual at the bottom, residual, nearest upsampling x2, add),
one residual, a 1x1 convolution + BN + ReLU ("lin"), a 1x1 convolution to J heatmaps, and (all but the
last stack) 1x1 convolutions mapping the features and the heatmaps back to 256 channels, added to the
stack's input. Residual module: pre-activation bottleneck BN-ReLU-1x1 (C/2)-BN-ReLU-3x3 (C/2)-BN-ReLU-
1x1 (C), plus the input (1x1-projected when the widths differ). Convolutions have biases, as in Torch.

Intermediate supervision: in training mode the network returns the list of the S stacks' heatmaps (the
last is the final prediction); in eval mode only the last stack's heatmaps.

Shapes: (N, 3, H, W) -> (N, J, H / 4, W / 4) for H, W divisible by 64.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from boxpose.models._registry import register_model


class Residual(nn.Module):
    """Newell's residual module. Shapes: (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # The skip branch reads x before the in-place ReLU of the body can touch it: BN comes first.
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """One hourglass of the given depth (number of 2x poolings). Shapes: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.up = Residual(channels, channels)
        self.low1 = Residual(channels, channels)
        self.low2 = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.low3 = Residual(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return self.up(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")


class HourglassStack(nn.Module):
    """Hourglass + residual + lin + heatmap head (+ re-injection into the next stack's input).

    Shapes: (N, C, H, W) -> ((N, C, H, W) input of the next stack, (N, J, H, W) heatmaps).
    """

    def __init__(self, channels: int, num_joints: int, depth: int, post_residual: bool, merge: bool) -> None:
        super().__init__()
        self.hourglass = Hourglass(depth, channels)
        self.residual = Residual(channels, channels) if post_residual else nn.Identity()
        self.lin = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.score = nn.Conv2d(channels, num_joints, 1)
        self.merge_features = nn.Conv2d(channels, channels, 1) if merge else None
        self.merge_heatmaps = nn.Conv2d(num_joints, channels, 1) if merge else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.lin(self.residual(self.hourglass(x)))
        heatmaps = self.score(features)
        if self.merge_features is None or self.merge_heatmaps is None:
            return features, heatmaps
        return x + self.merge_features(features) + self.merge_heatmaps(heatmaps), heatmaps


class StackedHourglass(nn.Module):
    """Newell et al.'s stacked hourglass network.

    Args:
        num_joints: J, heatmaps out (per stack).
        num_stacks: S.
        channels: features inside the stacks (256).
        depth: poolings per hourglass (4).
        post_residual: the residual module after each hourglass (``hg.lua``: yes). Without it the
            network has the MAC count published for "8-stage hourglass" by SimpleBaseline (19.1 G at
            256x256), though 23.7M instead of 25.1M parameters; see docs/architecture.md.

    Shapes: (N, 3, H, W) -> eval: (N, J, H / 4, W / 4); training: a list of S such tensors.
    """

    output_stride = 4
    stage_containers = ("stacks",)

    def __init__(
        self,
        num_joints: int,
        num_stacks: int = 8,
        channels: int = 256,
        depth: int = 4,
        post_residual: bool = True,
    ) -> None:
        super().__init__()
        self.size_divisor = self.output_stride * 2**depth
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            Residual(64, 128),
            nn.MaxPool2d(2),
            Residual(128, 128),
            Residual(128, channels),
        )
        self.stacks = nn.ModuleList(
            HourglassStack(channels, num_joints, depth, post_residual, merge=i < num_stacks - 1)
            for i in range(num_stacks)
        )

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        x = self.stem(x)
        outputs = []
        for stack in self.stacks:
            x, heatmaps = stack(x)
            outputs.append(heatmaps)
        return outputs if self.training else outputs[-1]


@register_model
def hourglass8(num_joints: int, post_residual: bool = True) -> StackedHourglass:
    """8-stack hourglass, 256 features, intermediate supervision. Paper: 25.1M, 19.1 GMACs at 256x256.

    This implementation (Newell et al.'s): 25.44M parameters (J = 17), 25.6 GMACs at 256x256 in the
    HRNet convention; ``post_residual=False`` gives the published 19.1 / 14.3 GMACs (23.72M parameters).
    """
    return StackedHourglass(num_joints, num_stacks=8, channels=256, depth=4, post_residual=post_residual)
