"""Inference preparation: BatchNorm folded into the convolutions next to it, one memory format throughout.

:func:`prepare_for_inference` returns a copy of a model in eval mode that computes the same function
(within float rounding) with fewer passes over memory:

- a BatchNorm right after a convolution (``Conv2d``, ``ConvTranspose2d``, the dilated ablation's
  depthwise convolution) is folded into that convolution's weight and bias;
- a BatchNorm whose input is not a convolution but whose output feeds a 1x1 convolution without padding
  (BoxNet's box filter -> BN -> 1x1: a box filter has no weight to absorb it) is folded into the 1x1
  convolution: ``W (s * x + t) + b = (W s) x + (W t + b)``, exact because a 1x1 kernel without padding
  sees the BN's shift at every output pixel;
- BatchNorms that neither rule reaches stay (the stacked hourglass's pre-activation BNs, which follow a
  residual sum and precede a ReLU);
- the parameters move to the memory format that is fastest for the model and device (see
  :func:`preferred_memory_format`). Convolutions propagate a channels-last weight to their output, so an
  NCHW input is converted once, by the first layer.

The folds are found structurally: consecutive children of every ``nn.Sequential`` (all of BoxNet, the
deconvolution head of SimpleBaseline, the hourglass's residual modules) and the ``convN`` / ``bnN``
pairs of torchvision's ResNet and its blocks, whose ``forward`` applies ``bnN`` right after ``convN``.
"""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from boxpose.models.boxnet import DilatedDepthwise4x4

MEMORY_FORMATS: tuple[str, ...] = ("auto", "channels_last", "contiguous")

# torchvision modules whose forward applies bnN directly to convN's output.
_CONV_BN_ATTRIBUTES: tuple[tuple[type[nn.Module], tuple[tuple[str, str], ...]], ...] = (
    (torchvision.models.resnet.ResNet, (("conv1", "bn1"),)),
    (torchvision.models.resnet.BasicBlock, (("conv1", "bn1"), ("conv2", "bn2"))),
    (torchvision.models.resnet.Bottleneck, (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))),
)


def prepare_for_inference(model: nn.Module, memory_format: str = "auto") -> nn.Module:
    """A copy of ``model`` in eval mode with its BatchNorms folded and its parameters in the fastest layout.

    Args:
        model: any registered pose model (left untouched: the result is a deep copy).
        memory_format: "auto" (:func:`preferred_memory_format` of the model on its device),
            "channels_last" or "contiguous".
    Returns:
        The prepared module, same class as ``model``, in eval mode. Its output equals ``model.eval()``'s
        within float rounding (1e-4 relative); for ``nn.Module.train()`` it is not meant: the folded
        BatchNorms are gone.
    """
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, got {memory_format!r}")
    prepared = copy.deepcopy(model).eval()
    fold_batchnorms_(prepared)
    if memory_format == "auto":
        parameter = next(prepared.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        memory_format = preferred_memory_format(device, prepared)
    layout = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    return prepared.to(memory_format=layout)


def preferred_memory_format(device: torch.device | str, model: nn.Module | None = None) -> str:
    """The faster memory format of a pose model on ``device``: "channels_last" (cuDNN's and oneDNN's
    channels-last convolutions, the box op's NHWC kernels), except on the CPU for a model with dilated
    depthwise convolutions (``boxnet_dilated``), which oneDNN runs faster in NCHW ("contiguous").

    Chosen from ``scripts/bench_models.py`` (docs/BENCHMARKS.md, 2 CPU cores): prepared BoxNet,
    boxnet_3x3 and SimpleBaseline are fastest in channels-last, boxnet_dilated in NCHW.
    """
    if torch.device(device).type == "cpu" and model is not None:
        if any(isinstance(m, DilatedDepthwise4x4) for m in model.modules()):
            return "contiguous"
    return "channels_last"


@torch.no_grad()
def fold_batchnorms_(model: nn.Module) -> int:
    """Fold, in place, every BatchNorm of an eval-mode ``model`` that a convolution can absorb (see the
    module docstring); the folded ones become ``nn.Identity``. Returns how many were folded."""
    folded = 0
    for module in list(model.modules()):
        for kind, pairs in _CONV_BN_ATTRIBUTES:
            if isinstance(module, kind):
                for conv_name, bn_name in pairs:
                    bn = getattr(module, bn_name)
                    if _foldable(bn):
                        _fold_into_preceding(getattr(module, conv_name), bn)
                        setattr(module, bn_name, nn.Identity())
                        folded += 1
        if isinstance(module, nn.Sequential):
            folded += _fold_sequential(module)
    return folded


def _fold_sequential(sequence: nn.Sequential) -> int:
    folded = 0
    children = list(sequence)
    # First into the preceding convolution: exact for any kernel size, padding and stride.
    for index in range(1, len(children)):
        conv = _convolution_of(children[index - 1])
        if conv is not None and _foldable(children[index]):
            _fold_into_preceding(conv, children[index])
            sequence[index] = children[index] = nn.Identity()
            folded += 1
    # Then the rest into a following 1x1 convolution without padding.
    for index in range(len(children) - 1):
        following = children[index + 1]
        if _foldable(children[index]) and _is_pointwise(following):
            _fold_into_following(children[index], following)
            sequence[index] = children[index] = nn.Identity()
            folded += 1
    return folded


def _convolution_of(module: nn.Module) -> nn.Conv2d | nn.ConvTranspose2d | None:
    """The convolution whose output is ``module``'s output, if ``module`` ends in one."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return module
    if isinstance(module, DilatedDepthwise4x4):
        return module.conv
    return None


def _foldable(module: nn.Module) -> bool:
    """A BatchNorm that applies a fixed per-channel affine map in eval mode."""
    return isinstance(module, nn.BatchNorm2d) and module.running_mean is not None


def _is_pointwise(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (1, 1)
        and module.padding == (0, 0)
        and module.groups == 1
    )


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(C,) scale s and shift t with bn(x) = s * x + t in eval mode."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _fold_into_preceding(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    weight, bias = fuse_conv_bn_weights(
        conv.weight,
        conv.bias,
        bn.running_mean,
        bn.running_var,
        bn.eps,
        bn.weight,
        bn.bias,
        transpose=isinstance(conv, nn.ConvTranspose2d),
    )
    conv.weight, conv.bias = weight, bias


def _fold_into_following(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> None:
    scale, shift = _bn_scale_shift(bn)
    weight = conv.weight  # (C_out, C_in, 1, 1)
    bias = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])
    new_bias = bias + weight[:, :, 0, 0] @ shift.to(weight.dtype)
    conv.weight = nn.Parameter(weight * scale.to(weight.dtype)[None, :, None, None], weight.requires_grad)
    conv.bias = nn.Parameter(new_bias, weight.requires_grad)
