"""Parameter and multiply-accumulate (MAC) counts in the convention of the paper's tables.

The paper's "FLOPs" are MACs as counted by HRNet's ``get_model_summary`` (``convention="hrnet"``):

- only convolutions, linear layers and the box filter count; BN, ReLU, additions, concatenation,
  pooling and upsampling do not (torch also counts the tiny per-layer product that turns a split box's
  piece weights into corner coefficients: a few MACs per box, not per pixel);
- a convolution costs (weight elements) x (output pixels) per image, *also a transposed one*: a stride-s
  deconvolution is charged s^2 times its true cost (its output has s^2 times more pixels than its input);
- a box filter costs the SAT samples it reads per output: 16 (4 bilinear samples per corner), 24 when split
  in two, 36 in four, 4 once snapped to integer corners (the FLOP formula registered with
  ``boxpose::box_filter``);
- giga = 2^30 (``get_model_summary`` divides by 1024^3).

This reproduces the published baselines: SimpleBaseline-R50 34.0M / 8.99 G at 256x192 (published 8.9)
and 11.99 G at 256x256 (12.0), and the hourglass's 19.1 / 14.3 G (docs/architecture.md). True MACs in
decimal giga, as mmpose's ``get_flops`` reports them, would be 5.43 G at 256x192: ``convention="exact"``
gives those (transposed convolutions at their input resolution, giga = 10^9) for comparison.

Counting runs PyTorch's :class:`~torch.utils.flop_counter.FlopCounterMode` on the meta device (no
memory, no arithmetic), with a custom formula for ``aten.convolution`` in the HRNet convention. Counts are
per image (batch 1). FLOPs reported by torch are 2 x MACs.

``input_size`` is (width, height) throughout, as ``data.input_size`` and checkpoints write it (HRNet's
``IMAGE_SIZE``, mmpose's ``input_size``): the paper's "256x192" COCO input is ``(192, 256)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

CONVENTIONS: tuple[str, ...] = ("hrnet", "exact")
GIGA: dict[str, int] = {"hrnet": 2**30, "exact": 10**9}


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (each shared tensor once), trainable or not; buffers excluded."""
    return sum(p.numel() for p in model.parameters())


def _hrnet_conv_flops(
    x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kwargs
) -> int:
    """FLOPs (2 x MACs) of a convolution as HRNet counts it: weight elements x output pixels x batch."""
    return 2 * x_shape[0] * math.prod(w_shape) * math.prod(out_shape[2:])


_CUSTOM_MAPPINGS = {
    "hrnet": {
        torch.ops.aten.convolution: _hrnet_conv_flops,
        torch.ops.aten._convolution: _hrnet_conv_flops,
    },
    "exact": {},
}


@dataclass(frozen=True)
class MacCount:
    """MACs of one forward pass of one image.

    ``by_module`` maps module paths (``""`` = the whole model, ``"units.3"``, ``"units.3.branch.0"``, ...)
    to the MACs spent inside them (a module called twice is charged twice); ``by_op`` maps operators
    (``"aten.convolution"``, ``"boxpose.box_filter"``, ``"aten.mm"``, ...) to their MACs in the whole model.
    """

    total: int
    by_module: dict[str, int]
    by_op: dict[str, int]
    convention: str
    input_size: tuple[int, int]  # (width, height)

    @property
    def giga(self) -> float:
        """GMACs: MACs / 2^30 in the HRNet convention, / 10^9 in the exact one."""
        return self.total / GIGA[self.convention]


def _meta_tensors(model: nn.Module) -> dict[str, Tensor]:
    """Meta copies of the parameters and buffers (for ``torch.func.functional_call``)."""
    named = chain(model.named_parameters(), model.named_buffers())
    return {name: torch.empty_like(t, device="meta") for name, t in named}


def _check_size(input_size: Sequence[int]) -> tuple[int, int]:
    """``input_size`` as (width, height) ints, or a ValueError."""
    if len(input_size) != 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size must be two positive integers (W, H), got {input_size!r}")
    return int(input_size[0]), int(input_size[1])


def count_macs(
    model: nn.Module, input_size: Sequence[int] = (256, 256), convention: str = "hrnet"
) -> MacCount:
    """MACs of ``model`` on one ``3 x H x W`` image of ``input_size`` = (W, H) (see the module docstring
    for the convention).

    The model is run in eval mode on meta copies of its tensors; it is not modified and its weights
    never move.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    width, height = _check_size(input_size)
    x = torch.empty(1, 3, height, width, device="meta")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False, depth=None, custom_mapping=_CUSTOM_MAPPINGS[convention])
        with torch.no_grad(), counter:
            torch.func.functional_call(model, _meta_tensors(model), (x,))
    finally:
        model.train(was_training)
    root = type(model).__name__
    by_module = {}
    for name, ops in counter.get_flop_counts().items():
        if name == "Global":
            continue
        path = "" if name == root else name.removeprefix(root + ".")
        by_module[path] = sum(ops.values()) // 2
    total = counter.get_total_flops() // 2
    by_module.setdefault("", total)
    by_op = {str(op): flops // 2 for op, flops in counter.get_flop_counts().get("Global", {}).items()}
    return MacCount(total, by_module, by_op, convention, (width, height))


def stage_names(model: nn.Module) -> list[str]:
    """The model's stages for per-stage tables: its direct children, with the containers it names in
    ``stage_containers`` (e.g. BoxNet's ``units``) expanded into their children."""
    containers = set(getattr(model, "stage_containers", ()))
    names = []
    for name, child in model.named_children():
        if name in containers:
            names.extend(f"{name}.{sub}" for sub, _ in child.named_children())
        else:
            names.append(name)
    return names


@dataclass(frozen=True)
class StageRow:
    """One stage of a model: parameters, MACs and output shape (per image, without the batch axis)."""

    name: str
    params: int
    macs: int
    output_shape: tuple[tuple[int, ...], ...]  # one shape per output tensor


@dataclass(frozen=True)
class ModelSummary:
    """Totals and per-stage rows of a model on one input size."""

    params: int
    macs: MacCount
    output_shape: tuple[int, ...]
    stages: list[StageRow] = field(default_factory=list)


def _shapes(output: object) -> tuple[tuple[int, ...], ...]:
    if isinstance(output, Tensor):
        return (tuple(output.shape[1:]),)
    if isinstance(output, (tuple, list)):
        return tuple(shape for item in output for shape in _shapes(item))
    return ()


def summarize(
    model: nn.Module, input_size: Sequence[int] = (256, 256), convention: str = "hrnet"
) -> ModelSummary:
    """Parameters, MACs and output shape of the whole model and of each stage (:func:`stage_names`), on
    one image of ``input_size`` = (W, H). Output shapes are (C, H, W) without the batch axis."""
    names = stage_names(model)
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def record(name: str):
        return lambda _module, _inputs, output: shapes.__setitem__(name, _shapes(output))

    hooks = [modules[name].register_forward_hook(record(name)) for name in ["", *names]]
    try:
        macs = count_macs(model, input_size, convention)  # its forward pass is what the hooks observe
    finally:
        for hook in hooks:
            hook.remove()
    rows = [
        StageRow(name, count_parameters(modules[name]), macs.by_module.get(name, 0), shapes.get(name, ()))
        for name in names
    ]
    return ModelSummary(count_parameters(model), macs, shapes[""][0], rows)
