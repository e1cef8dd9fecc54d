"""The masked heatmap loss, the optimizer's weight-decay groups and the step schedule."""

from __future__ import annotations

import pytest
import torch

from boxpose.engine.loss import joints_mse_loss
from boxpose.engine.optim import StepSchedule, build_optimizer
from boxpose.nn import BoxConv2d


def test_loss_is_half_the_masked_mean_squared_error():
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    weight = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    expected = 0.5 * ((pred - target) * weight[:, :, None, None]).pow(2).mean()
    torch.testing.assert_close(joints_mse_loss(pred, target, weight), expected)
    # Joints with weight 0 do not matter.
    changed = pred.clone()
    changed[0, 1] += 100
    torch.testing.assert_close(joints_mse_loss(changed, target, weight), expected)


def test_loss_sums_over_stacks():
    target, weight = torch.rand(1, 2, 3, 3), torch.ones(1, 2)
    a, b = torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3)
    expected = joints_mse_loss(a, target, weight) + joints_mse_loss(b, target, weight)
    torch.testing.assert_close(joints_mse_loss([a, b], target, weight), expected)
    with pytest.raises(ValueError, match="differ in shape"):
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
