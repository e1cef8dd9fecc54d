"""Training loss: masked heatmap MSE with per-joint target weights (SimpleBaseline's JointsMSELoss)."""

from __future__ import annotations

import torch
from torch import Tensor


def joints_mse_loss(output: Tensor | list[Tensor], target: Tensor, target_weight: Tensor) -> Tensor:
    """0.5 x mean squared error between predicted and target heatmaps, joints weighted by ``target_weight``.

    Args:
        output: (N, K, h, w) heatmaps, or a list of them (intermediate supervision: the losses are summed).
        target: (N, K, h, w) Gaussian target heatmaps.
        target_weight: (N, K) per-joint weights (0 for joints without a target).

    Returns:
        scalar float32 loss: sum over stacks of 0.5 * mean over N, K, h, w of (w * (pred - target))^2,
        the reference repositories' normalisation (so loss values are comparable with their logs).
    """
    outputs = output if isinstance(output, list | tuple) else [output]
    weight = target_weight.float()[:, :, None, None]
    target = target.float()
    total = torch.zeros((), device=target.device)
    for out in outputs:
        if out.shape != target.shape:
            raise ValueError(f"heatmaps {tuple(out.shape)} and targets {tuple(target.shape)} differ in shape")
        diff = (out.float() - target) * weight
        total = total + 0.5 * diff.pow(2).mean()
    return total
