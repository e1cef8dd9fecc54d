"""BoxNet: the paper's dense prediction network (Fig. 3) and its ablations, built from one stage table.

The network keeps a single resolution, a quarter of the input, after a stride-2 3x3 stem convolution
and one stride-2 unit. It is a chain of ShuffleNetV2-style units [Ma et al. 2018] of two kinds
(paper, Fig. 3, right):

- basic unit ("blue block", C -> C): split the channels in half; one half goes through a depthwise
  filter + BN and a 1x1 convolution + BN + ReLU, the other half is left untouched; concatenate, then
  shuffle the channels (groups = 2).
- changing unit ("orange block", C_in -> C_out, stride 1 or 2): two branches on the whole input,
  (depthwise + BN, 1x1 + BN + ReLU) and (1x1 + BN + ReLU, depthwise + BN, 1x1 + BN + ReLU), each giving
  C_out / 2 channels; concatenate, shuffle.

The depthwise filter is a 3x3 convolution in the "Block 3x3" units and a learnable box filter of maximum
size k (:class:`~boxpose.nn.BoxConv2d`, ``boxes_per_channel`` = m boxes per input channel) in the
"Block k = ..." units. The ablations of the paper's Table 1 replace every box filter by a 3x3 depthwise
convolution (``depthwise="conv3x3"``) or by a 4x4 depthwise convolution with dilation d, k = 3d + 1
(``depthwise="dilated"``), keeping m outputs per input channel. See ``docs/architecture.md`` for how the
unit table was reconstructed from the figure and checked against the published counts.

Shapes: ``(N, 3, H, W) -> (N, J, H / 4, W / 4)`` for H, W divisible by 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boxpose.models._registry import register_model
from boxpose.nn import BoxConv2d
from boxpose.ops import SPLITS

DepthwiseKind = Literal["box", "conv3x3", "dilated"]
DEPTHWISE_KINDS: tuple[str, ...] = ("box", "conv3x3", "dilated")


@dataclass(frozen=True)
class UnitSpec:
    """One row of a BoxNet stage table.

    Args:
        out_channels: channels after the unit; a unit whose input has as many channels (and stride 1)
            is a basic unit, any other a changing unit.
        window: 3 for a "Block 3x3" unit (3x3 depthwise convolution); an odd k > 3 for a "Block k = ..."
            unit (box filter of maximum size k, or its ablation replacement).
        stride: 1, or 2 for a changing "Block 3x3" unit.
    """

    out_channels: int
    window: int
    stride: int = 1


BASIC_UNIT_STYLES: tuple[str, ...] = ("shufflenetv2", "depthwise_first")


@dataclass(frozen=True)
class BoxNetSpec:
    """A BoxNet stage table: the stem's width, the units in order and the form of the basic unit.

    ``basic_unit`` is ``"shufflenetv2"`` (the published ShuffleNetV2 unit: 1x1 + BN + ReLU, depthwise +
    BN, 1x1 + BN + ReLU on half the channels) or ``"depthwise_first"`` (the earlier reading of the
    figure's legend: depthwise + BN, 1x1 + BN + ReLU).
    """

    stem_channels: int
    units: tuple[UnitSpec, ...]
    basic_unit: str = "shufflenetv2"


# The paper's network: Fig. 3 with all 13 "Block" labels, read down the figure's columns
# (docs/architecture.md, "Final layer table"). Unit 0 runs at 1/2 resolution, the rest at 1/4.
BOXNET_SPEC = BoxNetSpec(
    stem_channels=192,
    units=(
        UnitSpec(192, 3),  # "Block 3x3" after the stem, at 1/2 resolution
        UnitSpec(288, 3, stride=2),  # "Block C=288 3x3, stride 2": 1/2 -> 1/4 resolution
        UnitSpec(288, 3),
        UnitSpec(384, 13),
        UnitSpec(384, 3),
        UnitSpec(384, 13),  # printed "k=3" in the figure, read as k = 13
        UnitSpec(384, 3),
        UnitSpec(768, 3),
        UnitSpec(768, 3),
        UnitSpec(384, 31),
        UnitSpec(384, 25),
        UnitSpec(384, 25),
        UnitSpec(384, 13),
    ),
)

# The earlier reading (boxpose 0.1): 11 units (two of the figure's "Block 3x3" labels read as the
# legend's swatches), the depthwise-first basic unit and m = 2 boxes per channel. Kept so that
# checkpoints trained with it still load (model ``boxnet_11unit_m2``).
BOXNET_11UNIT_SPEC = BoxNetSpec(
    stem_channels=192,
    units=(
        UnitSpec(288, 3, stride=2),
        UnitSpec(384, 13),
        UnitSpec(384, 3),
        UnitSpec(384, 13),
        UnitSpec(384, 3),
        UnitSpec(768, 3),
        UnitSpec(768, 3),
        UnitSpec(384, 31),
        UnitSpec(384, 25),
        UnitSpec(384, 25),
        UnitSpec(384, 13),
    ),
    basic_unit="depthwise_first",
)


def scaled_spec(spec: BoxNetSpec, width: int) -> BoxNetSpec:
    """``spec`` with every width scaled so that its 384-channel stages get ``width`` channels (even widths,
    rounded to the nearest even number): the same design with fewer (or more) channels."""
    if width < 2 or width % 2:
        raise ValueError(f"width must be an even integer >= 2, got {width}")

    def scale(channels: int) -> int:
        return max(2, 2 * round(channels * width / 384 / 2))

    units = tuple(UnitSpec(scale(u.out_channels), u.window, u.stride) for u in spec.units)
    return BoxNetSpec(scale(spec.stem_channels), units, spec.basic_unit)


def dilation_for_window(window: int) -> int:
    """Dilation d of the 4x4 kernel spanning the same k x k window as a box filter: k = 3d + 1."""
    if window < 4 or (window - 1) % 3:
        raise ValueError(f"a 4x4 dilated kernel spans 3d + 1 pixels; no dilation d gives a {window} window")
    return (window - 1) // 3


class DilatedDepthwise4x4(nn.Module):
    """Depthwise 4x4 convolution with dilation d and "same" output size (the paper's dilated ablation).

    The kernel's taps span 3d + 1 pixels, so "same" output needs 3d pixels of padding per axis in total.
    A 4x4 kernel has no centre tap and 3d need not be even: we pad ``3d // 2`` before and the rest after
    (the convention of PyTorch's ``padding="same"``: the extra pixel goes right/bottom). For even d,
    which includes the paper's d = 4, 8, 10 (k = 13, 25, 31), the padding is symmetric and the taps sit at
    -3d/2, -d/2, +d/2, +3d/2 around the output pixel: the same k x k window as a box filter of max size k.

    Shapes: (N, C, H, W) -> (N, C * m, H, W), output channel j reading input channel j // m.
    """

    def __init__(self, channels: int, boxes_per_channel: int, dilation: int) -> None:
        super().__init__()
        total = 3 * dilation
        before, after = total // 2, total - total // 2
        symmetric = before == after
        self.padding = None if symmetric else (before, after, before, after)
        self.conv = nn.Conv2d(
            channels,
            channels * boxes_per_channel,
            kernel_size=4,
            dilation=dilation,
            padding=before if symmetric else 0,
            groups=channels,
            bias=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.padding is not None:
            x = F.pad(x, self.padding)
        return self.conv(x)


def make_depthwise(
    channels: int, window: int, kind: str, boxes_per_channel: int, split: str, stride: int = 1
) -> tuple[nn.Module, int]:
    """The depthwise filter of a unit and its number of output channels.

    "Block 3x3" units (``window == 3``) always get a 3x3 depthwise convolution with one output per
    channel. Box units get ``boxes_per_channel`` outputs per channel from a box filter of max size
    ``window`` (``kind="box"``), a 3x3 depthwise convolution (``"conv3x3"``) or a dilated 4x4 one
    (``"dilated"``).

    Shapes: (N, C, H, W) -> (N, C_out, H / stride, W / stride).
    """
    if window == 3:
        conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)
        return conv, channels
    if stride != 1:
        raise ValueError(f"box units have stride 1 (window={window}, stride={stride})")
    if window % 2 == 0 or window < 3:
        raise ValueError(f"a box unit's window must be an odd integer > 3, got {window}")
    out_channels = channels * boxes_per_channel
    if kind == "box":
        return BoxConv2d(channels, window, boxes_per_channel, split=split), out_channels
    if kind == "conv3x3":
        return nn.Conv2d(channels, out_channels, 3, padding=1, groups=channels, bias=False), out_channels
    if kind == "dilated":
        return DilatedDepthwise4x4(channels, boxes_per_channel, dilation_for_window(window)), out_channels
    raise ValueError(f"depthwise kind must be one of {DEPTHWISE_KINDS}, got {kind!r}")


def conv1x1_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def concat_shuffle(a: Tensor, b: Tensor) -> Tensor:
    """ShuffleNet's concatenation followed by a channel shuffle with 2 groups, in one pass over memory.

    Shapes: (N, C, H, W) twice -> (N, 2C, H, W), output channel 2i = a[:, i] and 2i + 1 = b[:, i] (the
    same as ``cat`` then ``view(N, 2, C, H, W).transpose(1, 2).reshape(N, 2C, H, W)``). The output keeps
    the inputs' memory format: ``a`` and ``b`` are interleaved along a new axis right after the channel
    axis of their storage order, so one write of the result suffices and the flatten is a view.
    """
    # Storage order from the strides, not is_contiguous(): a basic unit's identity half is a channel
    # slice of an NHWC tensor, which is not channels-last contiguous but is stored channels innermost.
    if a.stride(1) < a.stride(3):
        # NHWC storage: channels are innermost, interleave there.
        a_nhwc, b_nhwc = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)
        if _interleave_as_complex(a):
            # A complex number stores its real and imaginary parts next to each other: torch.complex
            # writes exactly the interleaved layout, with a vectorised kernel that runs at the speed of
            # a copy (stack, which interleaves element by element, takes twice as long on the CPU).
            nhwc = torch.view_as_real(torch.complex(a_nhwc, b_nhwc)).flatten(3)
        else:
            nhwc = torch.stack((a_nhwc, b_nhwc), dim=-1).flatten(3)
        return nhwc.permute(0, 3, 1, 2)
    return torch.stack((a, b), dim=2).flatten(1, 2)


def _interleave_as_complex(x: Tensor) -> bool:
    """Whether concat_shuffle may build its NHWC output as a complex tensor: eager CPU float32/float64
    (no complex bfloat16 exists, and ONNX and compiled graphs have no complex tensors)."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
        and not torch.jit.is_tracing()
    )


class BasicUnit(nn.Module):
    """Blue block: split the channels in half; one half goes through the branch, the other is left
    untouched; concat; shuffle.

    The branch is ShuffleNetV2's (``style="shufflenetv2"``): 1x1 + BN + ReLU -> depthwise + BN -> 1x1 +
    BN + ReLU; or, in the earlier reading of the figure's legend (``style="depthwise_first"``),
    depthwise + BN -> 1x1 + BN + ReLU.

    Shapes: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(
        self,
        channels: int,
        window: int,
        kind: str,
        boxes_per_channel: int,
        split: str,
        style: str = "shufflenetv2",
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"a basic unit needs an even number of channels, got {channels}")
        if style not in BASIC_UNIT_STYLES:
            raise ValueError(f"basic unit style must be one of {BASIC_UNIT_STYLES}, got {style!r}")
        half = channels // 2
        depthwise, dw_channels = make_depthwise(half, window, kind, boxes_per_channel, split)
        leading = conv1x1_bn_relu(half, half) if style == "shufflenetv2" else []
        self.branch = nn.Sequential(
            *leading, depthwise, nn.BatchNorm2d(dw_channels), *conv1x1_bn_relu(dw_channels, half)
        )

    def forward(self, x: Tensor) -> Tensor:
        identity, x = x.chunk(2, dim=1)
        return concat_shuffle(identity, self.branch(x))


class ChangingUnit(nn.Module):
    """Orange block: (depthwise + BN, 1x1 + BN + ReLU) and (1x1 + BN + ReLU, depthwise + BN, 1x1 + BN +
    ReLU) on the whole input, C_out / 2 channels each; concat; shuffle.

    Shapes: (N, C_in, H, W) -> (N, C_out, H / stride, W / stride).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        window: int,
        kind: str,
        boxes_per_channel: int,
        split: str,
        stride: int = 1,
    ) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"a changing unit needs an even number of output channels, got {out_channels}")
        half = out_channels // 2
        dw1, dw1_channels = make_depthwise(in_channels, window, kind, boxes_per_channel, split, stride)
        self.branch1 = nn.Sequential(dw1, nn.BatchNorm2d(dw1_channels), *conv1x1_bn_relu(dw1_channels, half))
        dw2, dw2_channels = make_depthwise(half, window, kind, boxes_per_channel, split, stride)
        self.branch2 = nn.Sequential(
            *conv1x1_bn_relu(in_channels, half),
            dw2,
            nn.BatchNorm2d(dw2_channels),
            *conv1x1_bn_relu(dw2_channels, half),
        )

    def forward(self, x: Tensor) -> Tensor:
        return concat_shuffle(self.branch1(x), self.branch2(x))


@dataclass(frozen=True)
class UnitInfo:
    """One unit of a built BoxNet, for tables: its depthwise filter and receptive field."""

    name: str  # module path, e.g. "units.3"
    kind: str  # "basic" or "changing"
    in_channels: int
    out_channels: int
    stride: int
    depthwise: str  # e.g. "box k=13 m=2", "conv3x3", "dilated 4x4 d=4 m=2"
    window: int  # extent of the depthwise kernel in feature-map pixels
    receptive_field: int  # theoretical receptive field after the unit, in input pixels


class BoxNet(nn.Module):
    """The paper's network (Fig. 3) for a stage table and a depthwise kind.

    Args:
        num_joints: J, heatmaps out.
        spec: stem width and units (:data:`BOXNET_SPEC`, :func:`scaled_spec` of it, or your own).
        depthwise: filter of the box units: "box", "conv3x3" or "dilated" (the paper's ablations).
        boxes_per_channel: m, depthwise outputs per input channel in the box units.
        split: BoxConv2d kernel splitting for ``depthwise="box"``: "none", "h2", "v2" or "q4".

    Shapes: (N, 3, H, W) -> (N, J, H / 4, W / 4), H and W divisible by 4.
    """

    output_stride = 4
    size_divisor = 4
    stage_containers = ("units",)  # expanded unit by unit in per-stage tables

    def __init__(
        self,
        num_joints: int,
        spec: BoxNetSpec = BOXNET_SPEC,
        depthwise: DepthwiseKind = "box",
        boxes_per_channel: int = 1,
        split: str = "none",
    ) -> None:
        super().__init__()
        if depthwise not in DEPTHWISE_KINDS:
            raise ValueError(f"depthwise must be one of {DEPTHWISE_KINDS}, got {depthwise!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if split != "none" and depthwise != "box":
            raise ValueError(f"split={split!r} applies to box filters only, not depthwise={depthwise!r}")
        if (
            isinstance(boxes_per_channel, bool)
            or not isinstance(boxes_per_channel, int)
            or boxes_per_channel < 1
        ):
            raise ValueError(f"boxes_per_channel must be a positive integer, got {boxes_per_channel!r}")
        stride = 2 * math.prod(unit.stride for unit in spec.units)
        if stride != self.output_stride:
            raise ValueError(f"the stem and units must reduce the resolution 4 times in total, not {stride}")
        self.spec = spec
        self.depthwise = depthwise
        self.boxes_per_channel = boxes_per_channel
        self.split = split

        self.stem = nn.Sequential(
            nn.Conv2d(3, spec.stem_channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(spec.stem_channels),
            nn.ReLU(inplace=True),
        )
        units: list[nn.Module] = []
        channels = spec.stem_channels
        for unit in spec.units:
            if unit.out_channels == channels and unit.stride == 1:
                units.append(
                    BasicUnit(channels, unit.window, depthwise, boxes_per_channel, split, spec.basic_unit)
                )
            else:
                units.append(
                    ChangingUnit(
                        channels,
                        unit.out_channels,
                        unit.window,
                        depthwise,
                        boxes_per_channel,
                        split,
                        unit.stride,
                    )
                )
            channels = unit.out_channels
        self.units = nn.Sequential(*units)
        self.head = nn.Conv2d(channels, num_joints, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Heatmap head as in SimpleBaseline: small weights, zero bias.
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.units(self.stem(x)))

    @property
    def reading(self) -> str:
        """Which reading of Fig. 3 this network is, in the words of :func:`reading_of_state_dict`."""
        return describe_reading(len(self.spec.units), self.spec.basic_unit)

    def unit_table(self) -> list[UnitInfo]:
        """The units with their depthwise filter and the theoretical receptive field after each.

        The receptive field grows by (window - 1) x (input pixels per feature pixel) per unit: every
        path through a unit holds one depthwise filter. A box of max size k and a 4x4 kernel with
        dilation (k - 1) / 3 both span k pixels; the 3x3 ablation spans 3.
        """
        rf, jump = 3, 2  # after the 3x3 stride-2 stem
        rows = []
        channels = self.spec.stem_channels
        for index, unit in enumerate(self.spec.units):
            window = 3 if self.depthwise == "conv3x3" else unit.window  # dilated: 3d + 1 = k
            rf += (window - 1) * jump
            jump *= unit.stride
            basic = unit.out_channels == channels and unit.stride == 1
            rows.append(
                UnitInfo(
                    name=f"units.{index}",
                    kind="basic" if basic else "changing",
                    in_channels=channels,
                    out_channels=unit.out_channels,
                    stride=unit.stride,
                    depthwise=self._describe_depthwise(unit.window),
                    window=window,
                    receptive_field=rf,
                )
            )
            channels = unit.out_channels
        return rows

    def receptive_field(self) -> int:
        """Theoretical receptive field of one output pixel, in input pixels (the 1x1 head adds nothing)."""
        return self.unit_table()[-1].receptive_field

    def _describe_depthwise(self, window: int) -> str:
        m = self.boxes_per_channel
        if window == 3:
            return "conv3x3"
        if self.depthwise == "box":
            return f"box k={window} m={m}" + (f" split={self.split}" if self.split != "none" else "")
        if self.depthwise == "conv3x3":
            return f"conv3x3 m={m} (for k={window})"
        return f"dilated 4x4 d={dilation_for_window(window)} m={m} (k={window})"


def describe_reading(num_units: int, basic_unit: str) -> str:
    """A BoxNet layout in words, e.g. "13 units, shufflenetv2 basic unit" (the paper's network)."""
    return f"{num_units} units, {basic_unit} basic unit"


def reading_of_state_dict(state_dict: dict[str, Tensor]) -> str | None:
    """The BoxNet layout a state dict holds (:func:`describe_reading`), or None if it is no BoxNet's.

    Read from the keys alone: the number of ``units.<i>`` and, in the first basic unit (a ``branch``
    rather than ``branch1``/``branch2``), whether the branch starts with a 1x1 convolution (ShuffleNetV2)
    or with the depthwise filter (the earlier reading).
    """
    units: set[int] = set()
    for key in state_dict:
        parts = key.split(".")
        if len(parts) > 2 and parts[0] == "units" and parts[1].isdigit():
            units.add(int(parts[1]))
    if not units or "stem.0.weight" not in state_dict:
        return None
    for index in sorted(units):
        first = state_dict.get(f"units.{index}.branch.0.weight")
        if f"units.{index}.branch.0.boxes" in state_dict:
            return describe_reading(len(units), "depthwise_first")
        if first is not None:
            pointwise = first.shape[-2:] == (1, 1) and first.shape[1] > 1
            return describe_reading(len(units), "shufflenetv2" if pointwise else "depthwise_first")
    return describe_reading(len(units), "unknown")


# boxpose 0.1's BoxNet factories, as calls of boxnet_11unit_m2 (which builds the same networks), so that
# checkpoints trained before the 13-unit reading still load: name -> boxnet_11unit_m2 keyword arguments.
EARLIER_READING = "boxnet_11unit_m2"
_EARLIER_FACTORIES: dict[str, dict[str, object]] = {
    "boxnet": {},
    "boxnet_3x3": {"depthwise": "conv3x3"},
    "boxnet_dilated": {"depthwise": "dilated"},
    "boxnet_split_h2": {"split": "h2"},
    "boxnet_split_v2": {"split": "v2"},
    "boxnet_split_q4": {"split": "q4"},
    "boxnet_tiny": {"width": 48},
}


def earlier_reading_call(name: str, kwargs: dict[str, object]) -> dict[str, object] | None:
    """The ``boxnet_11unit_m2`` keyword arguments that build what boxpose 0.1's ``name(**kwargs)`` built,
    or None if ``name`` was not a BoxNet factory then."""
    if name not in _EARLIER_FACTORIES:
        return None
    return {"boxes_per_channel": 2, **_EARLIER_FACTORIES[name], **kwargs}


@register_model
def boxnet(num_joints: int, boxes_per_channel: int = 1, split: str = "none") -> BoxNet:
    """The paper's network (Fig. 3). Paper: 1.85M parameters, 7.7 GMACs at 256x256, 5.8 at 256x192."""
    return BoxNet(num_joints, BOXNET_SPEC, "box", boxes_per_channel, split)


@register_model
def boxnet_3x3(num_joints: int, boxes_per_channel: int = 1) -> BoxNet:
    """Ablation: every box filter replaced by a 3x3 depthwise convolution. Paper: 1.87M, 7.6 GMACs."""
    return BoxNet(num_joints, BOXNET_SPEC, "conv3x3", boxes_per_channel)


@register_model
def boxnet_dilated(num_joints: int, boxes_per_channel: int = 1) -> BoxNet:
    """Ablation: every box filter of max size k replaced by a 4x4 depthwise convolution with dilation
    (k - 1) / 3 (13 -> 4, 25 -> 8, 31 -> 10). Paper: 1.88M, 7.7 GMACs."""
    return BoxNet(num_joints, BOXNET_SPEC, "dilated", boxes_per_channel)


@register_model
def boxnet_split_h2(num_joints: int, boxes_per_channel: int = 1) -> BoxNet:
    """BoxNet with every box split into a left and a right half (paper, Fig. 2; 24 MACs per output)."""
    return BoxNet(num_joints, BOXNET_SPEC, "box", boxes_per_channel, "h2")


@register_model
def boxnet_split_v2(num_joints: int, boxes_per_channel: int = 1) -> BoxNet:
    """BoxNet with every box split into a top and a bottom half (paper, Fig. 2; 24 MACs per output)."""
    return BoxNet(num_joints, BOXNET_SPEC, "box", boxes_per_channel, "v2")


@register_model
def boxnet_split_q4(num_joints: int, boxes_per_channel: int = 1) -> BoxNet:
    """BoxNet with every box split into quarters (paper, Fig. 2; 36 MACs per output)."""
    return BoxNet(num_joints, BOXNET_SPEC, "box", boxes_per_channel, "q4")


@register_model
def boxnet_tiny(
    num_joints: int,
    width: int = 48,
    depthwise: DepthwiseKind = "box",
    boxes_per_channel: int = 1,
    split: str = "none",
) -> BoxNet:
    """BoxNet with 1/8 of the channels (``width=48``: stem 24; units 24 / 36 / 48 / 96): CPU demos, tests.

    ``width`` sets the channels of the 384-channel stages of the full network (the others scale along).
    """
    return BoxNet(num_joints, scaled_spec(BOXNET_SPEC, width), depthwise, boxes_per_channel, split)


@register_model
def boxnet_11unit_m2(
    num_joints: int,
    width: int | None = None,
    depthwise: DepthwiseKind = "box",
    boxes_per_channel: int = 2,
    split: str = "none",
) -> BoxNet:
    """The earlier reading of Fig. 3 (boxpose 0.1's ``boxnet``): 11 units, depthwise-first basic unit,
    m = 2 boxes per channel; 1.858M parameters, 7.58 GMACs. ``width`` scales it as ``boxnet_tiny`` does
    (0.1's ``boxnet_tiny`` is ``width=48``); ``depthwise`` gives its ablations. For old checkpoints."""
    spec = BOXNET_11UNIT_SPEC if width is None else scaled_spec(BOXNET_11UNIT_SPEC, width)
    return BoxNet(num_joints, spec, depthwise, boxes_per_channel, split)
