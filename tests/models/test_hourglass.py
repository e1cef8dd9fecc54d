"""Stacked hourglass: structure of Newell et al.'s network and its counts."""

from __future__ import annotations

import torch

from boxpose.models import build_model
from boxpose.models.counting import count_parameters
from boxpose.models.hourglass import Hourglass, Residual, StackedHourglass


def test_residual_and_hourglass_shapes() -> None:
    residual = Residual(8, 16)
    assert residual(torch.randn(2, 8, 6, 6)).shape == (2, 16, 6, 6)
    assert count_parameters(Residual(256, 256)) == 214_528  # 1x1 (128) + 3x3 (128) + 1x1 (256), biases, 3 BN
    hourglass = Hourglass(depth=3, channels=8)
    assert hourglass(torch.randn(1, 8, 16, 24)).shape == (1, 8, 16, 24)
    # depth d: 3 residuals per level + 1 at the bottom
    assert sum(isinstance(m, Residual) for m in hourglass.modules()) == 3 * 3 + 1


def test_hourglass8_configuration() -> None:
    with torch.device("meta"):
        model = build_model("hourglass8", num_joints=16)
        lean = build_model("hourglass8", num_joints=16, post_residual=False)
    assert isinstance(model, StackedHourglass) and len(model.stacks) == 8 and model.size_divisor == 64
    assert count_parameters(model) == 25_434_112
    assert count_parameters(model) - count_parameters(lean) == 8 * 214_528
