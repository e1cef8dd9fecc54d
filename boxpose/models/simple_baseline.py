"""SimpleBaseline [Xiao et al. 2018]: a ResNet backbone followed by three deconvolution layers.

ResNet-50 (torchvision, stride 32) -> 3 x (ConvTranspose2d 4x4 stride 2, 256 channels, + BN + ReLU)
-> 1x1 convolution to J heatmaps. Initialisation as in SimpleBaseline: deconvolutions and the head drawn
from N(0, 0.001^2) with zero head bias, BN weight 1 / bias 0; the backbone keeps torchvision's
initialisation unless ImageNet weights are loaded from a local file (``pretrained``; nothing is
downloaded).

Shapes: (N, 3, H, W) -> (N, J, H / 4, W / 4) for H, W divisible by 32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from boxpose.models._registry import register_model


def _deconv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """ConvTranspose2d(4x4, stride 2, padding 1) + BN + ReLU: (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, output_padding=0, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SimpleBaseline(nn.Module):
    """ResNet-50 + deconvolution head.

    Args:
        num_joints: J, heatmaps out.
        deconv_channels: widths of the deconvolution layers (SimpleBaseline: three of 256).
        pretrained: path of a torchvision ResNet-50 ``state_dict`` file (ImageNet weights) or None.

    Shapes: (N, 3, H, W) -> (N, J, H / 4, W / 4), H and W divisible by 32.
    """

    output_stride = 4
    size_divisor = 32
    stage_containers = ("deconv",)

    def __init__(
        self,
        num_joints: int,
        deconv_channels: tuple[int, ...] = (256, 256, 256),
        pretrained: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if len(deconv_channels) != 3:
            raise ValueError("three deconvolutions bring the stride-32 backbone to stride 4")
        backbone = torchvision.models.resnet50(weights=None)
        del backbone.avgpool, backbone.fc  # classification head unused
        self.backbone = backbone
        blocks, channels = [], 2048
        for width in deconv_channels:
            blocks.append(_deconv_block(channels, width))
            channels = width
        self.deconv = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, num_joints, 1)
        self._init_head()
        if pretrained is not None:
            load_resnet50_weights(self.backbone, pretrained)

    def _init_head(self) -> None:
        for module in self.deconv.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        r = self.backbone
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return self.head(self.deconv(x))


def load_resnet50_weights(backbone: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a torchvision ResNet-50 ``state_dict`` file (its ``fc.*`` entries are ignored) into ``backbone``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a torch-saved state dict, or not one of a torchvision ResNet-50
            (missing or unexpected keys, or tensors of the wrong shape).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained ResNet-50 weights not found: {path} (give the path of a local file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a torch-saved state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if wrong_shape:
            k = wrong_shape[0]
            problems.append(
                f"{len(wrong_shape)} tensors of the wrong shape (e.g. {k}: {tuple(state[k].shape)} "
                f"instead of {tuple(expected[k].shape)})"
            )
        raise ValueError(f"{path} is not a torchvision ResNet-50 state dict: " + "; ".join(problems))
    backbone.load_state_dict(state)


@register_model
def simple_baseline_r50(num_joints: int, pretrained: str | None = None) -> SimpleBaseline:
    """SimpleBaseline, ResNet-50. Paper (HRNet convention): 34.0M, 8.9 GMACs at 256x192, 12.0 at 256x256.

    ``pretrained``: path of a torchvision ResNet-50 ImageNet ``state_dict`` (e.g. ``resnet50-0676ba61.pth``).
    """
    return SimpleBaseline(num_joints, pretrained=pretrained)
