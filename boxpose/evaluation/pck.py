"""The quick training accuracy of SimpleBaseline/HRNet: PCK@0.5 between heatmap argmaxes.

This is the "Accuracy" those repositories print during training and validation
(``lib/core/evaluate.py::accuracy``) and the "PCK@0.5 (without head-size normalisation)" of the
paper's Fig. 5. It is not PCKh (see :mod:`boxpose.evaluation.mpii`): it compares integer argmaxes on
the heatmap grid, normalised by a tenth of the heatmap size, so it needs no image coordinates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["heatmap_accuracy"]


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; evaluation/ does not need to import torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _argmax_coords(heatmaps) -> np.ndarray:
    """(N, K, 2) integer (x, y) of each heatmap's maximum; (0, 0) where the maximum is <= 0 (HRNet's).

    A torch tensor is reduced on its own device, so only the (N, K) results are copied to the host.
    """
    n, k, _, w = heatmaps.shape
    if hasattr(heatmaps, "detach"):
        peak, idx = heatmaps.detach().reshape(n, k, -1).max(dim=2)
        idx, positive = idx.cpu().numpy(), (peak > 0).cpu().numpy()
    else:
        flat = np.asarray(heatmaps, dtype=np.float64).reshape(n, k, -1)
        idx = flat.argmax(axis=2)
        positive = np.take_along_axis(flat, idx[..., np.newaxis], axis=2)[..., 0] > 0
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return coords * positive[..., np.newaxis]


def heatmap_accuracy(
    pred_heatmaps,
    target_heatmaps,
    target_weight=None,
    threshold: float = 0.5,
) -> tuple[np.ndarray, float, int]:
    """PCK@``threshold`` between the argmaxes of predicted and target heatmaps (HRNet's ``accuracy``).

    For each joint whose target argmax (x, y) has x > 1 and y > 1 (HRNet's test for "has a target":
    an all-zero target has its argmax at (0, 0); note that it also skips targets in the first two
    rows or columns), the distance between the predicted and the target argmax is taken after
    dividing x by H/10 and y by W/10, and the joint is correct if that distance is < ``threshold``
    (strict). HRNet divides (x, y) by (H, W)/10 in this order; we keep it so the numbers match its
    logs (it matters only for non-square heatmaps). A predicted argmax whose peak is <= 0 is (0, 0).

    Args:
        pred_heatmaps: (N, K, H, W) numpy array or torch tensor.
        target_heatmaps: (N, K, H, W) training targets (Gaussians; all zero for a joint without target).
        target_weight: optional (N, K) or (N, K, 1); joints with weight 0 are skipped as well.
        threshold: the PCK threshold in units of a tenth of the heatmap size.

    Returns:
        ``(per_joint_acc, mean_acc, count)``: per_joint_acc is (K,) float64 in [0, 1], NaN for a joint
        with no target in the batch; mean_acc is the plain mean over joints with a target (0 if none);
        count is the number of such joints (HRNet logs ``mean_acc`` averaged with weight ``count``).
    """
    pred_shape, target_shape = tuple(pred_heatmaps.shape), tuple(target_heatmaps.shape)
    if len(pred_shape) != 4 or pred_shape != target_shape:
        raise ValueError(
            f"pred and target heatmaps must both have shape (N, K, H, W); got {pred_shape} and {target_shape}"
        )
    n, k, h, w = pred_shape
    pred_xy = _argmax_coords(pred_heatmaps)
    target_xy = _argmax_coords(target_heatmaps)
    valid = (target_xy[..., 0] > 1) & (target_xy[..., 1] > 1)  # (N, K)
    if target_weight is not None:
        weight = _to_numpy(target_weight)
        if weight.shape not in ((n, k), (n, k, 1)):
            raise ValueError(f"target_weight must have shape ({n}, {k}) or ({n}, {k}, 1), got {weight.shape}")
        valid &= weight.reshape(n, k) > 0
    norm = np.array([h, w], dtype=np.float64) / 10.0
    dist = np.linalg.norm(pred_xy / norm - target_xy / norm, axis=-1)  # (N, K)
    correct = (dist < threshold) & valid
    counted = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counted > 0, correct.sum(axis=0) / counted, np.nan)
    count = int((counted > 0).sum())
    mean_acc = float(np.nanmean(per_joint)) if count else 0.0
    return per_joint, mean_acc, count
