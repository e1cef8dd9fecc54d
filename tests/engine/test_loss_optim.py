"""The masked heatmap loss, the optimizer's weight-decay groups and the step schedule."""

from __future__ import annotations

import pytest
import torch

from boxpose.engine.loss import joints_mse_loss
from boxpose.engine.optim import StepSchedule, build_optimizer
from boxpose.nn import BoxConv2d


def _reference_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> float:
    """SimpleBaseline's JointsMSELoss written joint by joint: 0.5 x the mean over joints of the per-joint
    MSE (over N, h, w) of the weighted heatmaps, i.e. 0.5 x the sum of squared weighted errors / (N K h w)."""
    n, k, h, w = pred.shape
    per_joint = []
    for j in range(k):
        squared = 0.0
        for i in range(n):
            difference = weight[i, j].item() * (pred[i, j] - target[i, j])
            squared += float((difference**2).sum())
        per_joint.append(0.5 * squared / (n * h * w))
    return sum(per_joint) / k


def test_loss_is_half_the_masked_mean_squared_error():
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    weight = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])
    expected = _reference_loss(pred, target, weight)
    assert joints_mse_loss(pred, target, weight).item() == pytest.approx(expected, rel=1e-6)
    # Joints with weight 0 do not matter.
    changed = pred.clone()
    changed[0, 1] += 100
    assert joints_mse_loss(changed, target, weight).item() == pytest.approx(expected, rel=1e-6)


def test_loss_by_hand():
    # One image, two joints of 2 x 2: joint 0 is off by 1 everywhere (weight 1), joint 1 by 3 (weight 0).
    target = torch.zeros(1, 2, 2, 2)
    pred = torch.stack([torch.ones(2, 2), torch.full((2, 2), 3.0)])[None]
    weight = torch.tensor([[1.0, 0.0]])
    # 0.5 x (4 x 1^2 + 4 x 0^2) / 8 = 0.25
    assert joints_mse_loss(pred, target, weight).item() == 0.25
    # Weight 2 on joint 0 quadruples its squared error: 0.5 x 16 / 8 = 1.
    assert joints_mse_loss(pred, target, torch.tensor([[2.0, 0.0]])).item() == 1.0


def test_loss_sums_over_stacks():
    target, weight = torch.zeros(1, 2, 2, 2), torch.ones(1, 2)
    a, b = torch.ones(1, 2, 2, 2), torch.full((1, 2, 2, 2), 2.0)
    # 0.5 x mean(1) + 0.5 x mean(4) = 0.5 + 2.0
    assert joints_mse_loss([a, b], target, weight).item() == 2.5
    message = r"heatmaps \(1, 2, 4, 4\) and targets \(1, 2, 2, 2\) differ in shape"
    with pytest.raises(ValueError, match=message):
        joints_mse_loss(torch.rand(1, 2, 4, 4), target, weight)


def test_adam_has_no_weight_decay_by_default_and_boxes_never_decay():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.BatchNorm2d(4), BoxConv2d(4, 5))
    default = build_optimizer(model)
    assert isinstance(default, torch.optim.Adam) and all(g["weight_decay"] == 0 for g in default.param_groups)
    decayed = build_optimizer(model, "adamw", weight_decay=0.01)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in decayed.param_groups}
    assert by_decay[0.01] == {id(model[0].weight)}
    assert id(model[2].boxes) in by_decay[0.0] and id(model[1].weight) in by_decay[0.0]
    with pytest.raises(ValueError, match=r"optim\.name must be one of"):
        build_optimizer(model, "lamb")


def test_step_schedule_and_warmup():
    schedule = StepSchedule(1e-3, milestones=[90, 120], gamma=0.1)
    assert schedule.lr(0, 0) == pytest.approx(1e-3)
    assert schedule.lr(89, 10_000) == pytest.approx(1e-3)
    assert schedule.lr(90, 0) == pytest.approx(1e-4)
    assert schedule.lr(139, 0) == pytest.approx(1e-5)
    warm = StepSchedule(1e-3, warmup_iters=100, warmup_factor=0.001)
    assert warm.lr(0, 0) == pytest.approx(1e-6) and warm.lr(0, 50) == pytest.approx(1e-3 * 0.5005)
    assert warm.lr(0, 100) == pytest.approx(1e-3)
