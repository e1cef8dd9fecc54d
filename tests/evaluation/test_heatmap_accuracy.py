"""heatmap_accuracy (HRNet's training accuracy) on constructed heatmaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boxpose.evaluation.pck import heatmap_accuracy


def _peaks(shape: tuple[int, int, int, int], peaks: dict[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Heatmaps of ``shape`` that are zero except a 1 at (x, y) = peaks[(sample, joint)]."""
    heatmaps = np.zeros(shape, dtype=np.float32)
    for (n, k), (x, y) in peaks.items():
        heatmaps[n, k, y, x] = 1.0
    return heatmaps


def _batch() -> tuple[np.ndarray, np.ndarray]:
    # 64 x 64 heatmaps: normaliser 6.4 px, so threshold 0.5 means a distance below 3.2 px.
    target = _peaks(
        (2, 3, 64, 64),
        {(0, 0): (20, 30), (1, 0): (40, 40), (0, 2): (1, 10), (1, 2): (50, 12)},  # joint 1: no target
    )
    pred = _peaks(
        (2, 3, 64, 64),
        {
            (0, 0): (22, 32),  # distance sqrt(8) = 2.83 px: correct
            (1, 0): (43, 42),  # sqrt(13) = 3.61 px: wrong
            (0, 1): (5, 5),  # no target: not counted
            (1, 1): (6, 6),
            (0, 2): (30, 40),  # wrong, but target x = 1 <= 1: not counted (HRNet's test for "has a target")
            (1, 2): (50, 12),  # exact: correct
        },
    )
    return pred, target


def test_constructed_batch():
    pred, target = _batch()
    per_joint, mean_acc, count = heatmap_accuracy(pred, target)
    assert per_joint[0] == 0.5
    assert np.isnan(per_joint[1])
    assert per_joint[2] == 1.0
    assert mean_acc == 0.75  # plain mean over the two joints with a target
    assert count == 2


def test_torch_tensors_give_the_same_result():
    pred, target = _batch()
    per_joint, mean_acc, count = heatmap_accuracy(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_array_equal(per_joint, [0.5, np.nan, 1.0])
    assert (mean_acc, count) == (0.75, 2)


def test_target_weight_skips_joints():
    pred, target = _batch()
    weight = np.ones((2, 3, 1))
    weight[1, 0] = 0.0  # drop the wrong prediction of joint 0
    per_joint, mean_acc, _ = heatmap_accuracy(pred, target, target_weight=weight)
    assert per_joint[0] == 1.0
    assert mean_acc == 1.0


def test_prediction_without_positive_peak_is_at_origin_and_wrong():
    pred, target = _batch()
    pred[0, 0] = -1.0  # everywhere negative: HRNet zeroes the coordinates
    per_joint, _, _ = heatmap_accuracy(pred, target)
    assert per_joint[0] == 0.0


def test_threshold_is_strict_and_scales_with_heatmap_size():
    # 80 x 80 heatmaps: normaliser 8 px (exact in binary), so 4 px is exactly 0.5.
    target = _peaks((1, 1, 80, 80), {(0, 0): (30, 30)})
    pred = _peaks((1, 1, 80, 80), {(0, 0): (34, 30)})
    assert heatmap_accuracy(pred, target)[0][0] == 0.0  # 0.5 is not < 0.5
    assert heatmap_accuracy(pred, target, threshold=0.51)[0][0] == 1.0
    assert heatmap_accuracy(pred, target, threshold=0.49)[0][0] == 0.0


def test_non_square_heatmaps_divide_x_by_h_and_y_by_w_like_hrnet():
    # H = 64, W = 48: x is divided by 6.4 and y by 4.8 (HRNet's order), so 3 px is fine along x
    # (0.47) but not along y (0.625).
    target = _peaks((1, 2, 64, 48), {(0, 0): (20, 20), (0, 1): (20, 20)})
    pred = _peaks((1, 2, 64, 48), {(0, 0): (23, 20), (0, 1): (20, 23)})
    per_joint, _, _ = heatmap_accuracy(pred, target)
    np.testing.assert_array_equal(per_joint, [1.0, 0.0])


def test_no_target_at_all():
    pred, _ = _batch()
    per_joint, mean_acc, count = heatmap_accuracy(pred, np.zeros_like(pred))
    assert np.all(np.isnan(per_joint))
    assert (mean_acc, count) == (0.0, 0)


def test_errors():
    pred, target = _batch()
    with pytest.raises(ValueError, match=r"must both have shape \(N, K, H, W\)"):
        heatmap_accuracy(pred, target[:, :2])
    message = r"target_weight must have shape \(2, 3\) or \(2, 3, 1\), got \(2, 2\)"
    with pytest.raises(ValueError, match=message):
        heatmap_accuracy(pred, target, target_weight=np.ones((2, 2)))
