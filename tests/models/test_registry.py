"""The model registry and every registered model's output contract (shapes, training-mode output)."""

from __future__ import annotations

import pytest
import torch

from boxpose.models import build_model, is_model, list_models, register_model
from boxpose.models.hourglass import StackedHourglass

ALL_MODELS = [
    "boxnet",
    "boxnet_11unit_m2",
    "boxnet_3x3",
    "boxnet_dilated",
    "boxnet_split_h2",
    "boxnet_split_q4",
    "boxnet_split_v2",
    "boxnet_tiny",
    "hourglass8",
    "simple_baseline_r50",
]

# Two small input sizes per model, (H, W) divisible by the model's size_divisor.
SIZES = {
    "boxnet_tiny": [(32, 32), (40, 24)],
    "simple_baseline_r50": [(64, 64), (96, 64)],
    "hourglass8": [(64, 64), (128, 64)],
}


def test_list_models() -> None:
    assert list_models() == ALL_MODELS
    assert list_models("boxnet_split*") == ["boxnet_split_h2", "boxnet_split_q4", "boxnet_split_v2"]
    assert is_model("boxnet") and not is_model("boxnet_huge")


def test_unknown_model_and_bad_arguments() -> None:
    with pytest.raises(KeyError, match=r"unknown model .resnet.*boxnet"):
        build_model("resnet", num_joints=17)
    with pytest.raises(TypeError, match="pretrained"):
        build_model("boxnet", num_joints=17, pretrained="x.pth")
    with pytest.raises(ValueError, match="num_joints"):
        build_model("boxnet", num_joints=0)

    def boxnet(num_joints: int) -> torch.nn.Module:
        raise AssertionError

    with pytest.raises(ValueError, match="already registered"):
        register_model(boxnet)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_eval_output_shape(name: str) -> None:
    model = build_model(name, num_joints=5).eval()
    assert model.output_stride == 4
    for height, width in SIZES.get(name, [(32, 32), (48, 24)]):
        assert height % model.size_divisor == 0 and width % model.size_divisor == 0
        with torch.no_grad():
            out = model(torch.randn(2, 3, height, width))
        assert out.shape == (2, 5, height // 4, width // 4), name


def test_hourglass_training_returns_every_stack() -> None:
    model = StackedHourglass(num_joints=3, num_stacks=3, channels=32, depth=2).train()
    x = torch.randn(2, 3, 32, 48)
    outputs = model(x)
    assert isinstance(outputs, list) and len(outputs) == 3
    assert all(o.shape == (2, 3, 8, 12) for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    assert (
        model.stacks[0].merge_heatmaps is not None and model.stacks[0].merge_heatmaps.weight.grad is not None
    )
    model.eval()
    with torch.no_grad():
        final = model(x)
    assert isinstance(final, torch.Tensor) and final.shape == (2, 3, 8, 12)
    assert model.stacks[-1].merge_features is None  # the last stack feeds nothing


def test_hourglass8_training_output_is_a_list_of_eight() -> None:
    model = build_model("hourglass8", num_joints=2).train()
    outputs = model(torch.randn(2, 3, 64, 64))
    assert len(outputs) == 8 and all(o.shape == (2, 2, 16, 16) for o in outputs)
