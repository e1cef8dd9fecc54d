"""SimpleBaseline-R50: head initialisation and ImageNet weights from a local file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from boxpose.models import build_model
from boxpose.models.simple_baseline import SimpleBaseline


def test_head_initialisation() -> None:
    model = build_model("simple_baseline_r50", num_joints=17)
    assert isinstance(model, SimpleBaseline)
    deconv = model.deconv[0][0]
    assert isinstance(deconv, torch.nn.ConvTranspose2d) and deconv.weight.shape == (2048, 256, 4, 4)
    assert deconv.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert model.head.weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert torch.count_nonzero(model.head.bias) == 0
    assert not hasattr(model.backbone, "fc")


def test_pretrained_weights_are_loaded(tmp_path: Path) -> None:
    resnet = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), path)  # a torchvision state dict, fc included
    model = build_model("simple_baseline_r50", num_joints=16, pretrained=str(path))
    assert torch.equal(model.backbone.layer4[2].conv3.weight, resnet.layer4[2].conv3.weight)
    assert torch.equal(model.backbone.bn1.running_var, resnet.bn1.running_var)


def test_pretrained_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found.*nowhere\.pth"):
        build_model("simple_baseline_r50", num_joints=16, pretrained=str(tmp_path / "nowhere.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a torch-saved state dict"):
        build_model("simple_baseline_r50", num_joints=16, pretrained=str(garbage))
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        build_model("simple_baseline_r50", num_joints=16, pretrained=str(not_a_dict))
    resnet18 = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet18)
    with pytest.raises(ValueError, match=r"not a torchvision ResNet-50 state dict: .*missing keys"):
        build_model("simple_baseline_r50", num_joints=16, pretrained=str(resnet18))
    wide = tmp_path / "wide_resnet50.pth"
    torch.save(torchvision.models.wide_resnet50_2(weights=None).state_dict(), wide)
    with pytest.raises(ValueError, match="wrong shape"):
        build_model("simple_baseline_r50", num_joints=16, pretrained=str(wide))
