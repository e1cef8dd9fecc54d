"""Which stacked-hourglass variant has the counts printed for the "8-stage hourglass" baseline?

    python scripts/hourglass_variants.py                 # components, candidate rows, the search
    python scripts/hourglass_variants.py --near 10       # also the 10 closest variants

The paper (Tables 1-2, quoting SimpleBaseline's Table 3 / HRNet's table) prints 25.1M parameters,
14.3 GMACs at 256x192 (COCO) and 19.1 at 256x256 (MPII). This script counts the parts of the hourglass
networks that real implementations build, with the project's counter (boxpose.models.counting: HRNet's
convention, conv weight elements x output pixels, giga = 2^30), and searches every combination of the
variants below for one that matches all three numbers.

What is counted, and how. Two-stack networks are built on the meta device (``StackedHourglass``; stack 0
carries the feature and heatmap remaps, stack 1 is a last stack without them), once as in ``hg.lua``
and once with a 1x1 convolution on every residual's skip; the pytorch-pose stem is built and counted on
its own. Each part (stem, hourglass, its bottom residual, post-hourglass residual, lin, score, remaps) is
read from ``count_parameters`` of the submodule and ``count_macs(...).by_module``. Counts are sums over
modules, so an S-stack network of any combination below is exactly stem + (S - 1) x (a stack with
remaps) + (a last stack): the script checks this against a full ``hourglass8`` (both sizes) before
searching. ``hg-stacked.lua`` (Newell's two-stack prototype, 512-channel hourglass outputs) is built and
counted whole.

Variants searched (what real code does; see docs/architecture.md, "Stacked hourglass"):

- stem: ``hg.lua`` (7x7/2 64, residual 64->128, pool, 128->128, 128->256), pytorch-pose (residual
  64->128, pool, 128->256, 256->256), or not counted;
- residual modules per hourglass position: 1 or 2 (``hg.lua``'s nModules, pytorch-pose's num_blocks);
- residuals at the lowest resolution: that number, +1 or +2;
- residuals after the hourglass: 0 (``hg-generic.lua``), 1 or 2;
- 1x1 "lin" layers (conv + BN + ReLU) before the heatmap conv: 0, 1 or 2 (``hg-stacked.lua`` has two);
- re-injection: 1x1 remaps of features and heatmaps (``hg.lua``, pytorch-pose) or none (``hg-generic.lua``
  adds the hourglass output);
- intermediate heatmap heads counted or not (the first S - 1 score convolutions and heatmap remaps);
- the residual's skip: identity when widths match, a 1x1 convolution on every residual (params and
  MACs), or a 1x1 convolution built but never called (params only, as a model that always creates it);
- conv biases counted or not; BatchNorm affine parameters counted or not;
- J = 16 or 17 heatmaps; S = 4 or 8 stacks.

A width change scales every part alike, so it cannot move the MACs-per-parameter ratio that rules most
variants out; the script reports that ratio.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, replace

import torch
from torch import nn

from boxpose.models import build_model
from boxpose.models.counting import GIGA, count_macs, count_parameters
from boxpose.models.hourglass import Residual, StackedHourglass

SIZES = ((256, 256), (192, 256))  # (W, H): MPII 256x256, COCO 256x192
TARGET_PARAMS_M = 25.1
TARGET_GMACS = (19.1, 14.3)  # 256x256, 256x192
PARAMS_TOLERANCE_M = 0.05


@dataclass(frozen=True)
class Part:
    """Counts of one part of the network: parameters (of which BN affine and conv biases) and MACs at
    each of ``SIZES``."""

    params: int
    bn_params: int
    bias_params: int
    macs: tuple[int, int]

    def __add__(self, other: Part) -> Part:
        return Part(
            self.params + other.params,
            self.bn_params + other.bn_params,
            self.bias_params + other.bias_params,
            (self.macs[0] + other.macs[0], self.macs[1] + other.macs[1]),
        )

    def __mul__(self, k: int) -> Part:
        return Part(
            self.params * k, self.bn_params * k, self.bias_params * k, (self.macs[0] * k, self.macs[1] * k)
        )

    __rmul__ = __mul__


ZERO = Part(0, 0, 0, (0, 0))


def _param_split(module: nn.Module) -> tuple[int, int, int]:
    """(all parameters, BatchNorm affine parameters, conv biases) of ``module``."""
    bn = sum(count_parameters(m) for m in module.modules() if isinstance(m, nn.BatchNorm2d))
    bias = sum(m.bias.numel() for m in module.modules() if isinstance(m, nn.Conv2d) and m.bias is not None)
    return count_parameters(module), bn, bias


def count_parts(model: nn.Module, paths: list[str]) -> dict[str, Part]:
    """Counts of the submodules at ``paths`` (``""`` = the model), with MACs at each of ``SIZES``."""
    macs = [count_macs(model, size).by_module for size in SIZES]
    modules = dict(model.named_modules())
    return {
        path: Part(*_param_split(modules[path]), (macs[0].get(path, 0), macs[1].get(path, 0)))
        for path in paths
    }


BOTTOM = "hourglass.low2.low2.low2.low2"  # the residual at the lowest resolution of a depth-4 hourglass
STACK_PARTS = ("hourglass", BOTTOM, "residual", "lin", "score", "merge_features", "merge_heatmaps")


def _with_skip_convs(model: nn.Module) -> nn.Module:
    """Give every residual whose skip is the identity a 1x1 convolution instead (with bias)."""
    for module in model.modules():
        if isinstance(module, Residual) and isinstance(module.skip, nn.Identity):
            channels = module.body[0].num_features
            module.skip = nn.Conv2d(channels, channels, 1)
    return model


def measure_components(num_joints: int) -> dict[str, Part]:
    """Every part, counted on two-stack networks (stack 0 with remaps, stack 1 without)."""
    with torch.device("meta"):
        plain = StackedHourglass(num_joints, num_stacks=2)
        skipped = _with_skip_convs(StackedHourglass(num_joints, num_stacks=2))
        pytorch_pose_stem = nn.Sequential(  # bearpaw/pytorch-pose: layer1, maxpool, layer2, layer3
            nn.Conv2d(3, 64, 7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            Residual(64, 128),
            nn.MaxPool2d(2),
            Residual(128, 256),
            Residual(256, 256),
        )
    paths = [
        "stem",
        *(f"stacks.{i}.{p}" for i in (0, 1) for p in STACK_PARTS if not (i and p.startswith("merge"))),
    ]
    parts = count_parts(plain, paths)
    skip_parts = count_parts(skipped, ["stacks.1.hourglass", f"stacks.1.{BOTTOM}", "stacks.1.residual"])
    pp_stem = count_parts(pytorch_pose_stem, [""])[""]
    return {
        "stem hg.lua": parts["stem"],
        "stem pytorch-pose": pp_stem,
        "hourglass": parts["stacks.1.hourglass"],
        "bottom residual": parts[f"stacks.1.{BOTTOM}"],
        "post residual": parts["stacks.1.residual"],
        "lin": parts["stacks.1.lin"],
        "score": parts["stacks.1.score"],
        "remap features": parts["stacks.0.merge_features"],
        "remap heatmaps": parts["stacks.0.merge_heatmaps"],
        "skip convs of hourglass": _minus(skip_parts["stacks.1.hourglass"], parts["stacks.1.hourglass"]),
        "skip conv of bottom residual": _minus(skip_parts[f"stacks.1.{BOTTOM}"], parts[f"stacks.1.{BOTTOM}"]),
        "skip conv of post residual": _minus(skip_parts["stacks.1.residual"], parts["stacks.1.residual"]),
    }


class HgStackedHourglass(nn.Module):
    """The hourglass of ``hg-stacked.lua`` (Newell's two-stack prototype): three residuals on the skip
    branch and three after the pooling, widths in -> 256 -> out, a residual out -> out after the inner
    hourglass. Shapes: (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, depth: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Sequential(Residual(in_channels, 256), Residual(256, 256), Residual(256, out_channels))
        self.low = nn.Sequential(Residual(in_channels, 256), Residual(256, 256), Residual(256, 256))
        inner = HgStackedHourglass(depth - 1, 256, out_channels) if depth > 1 else Residual(256, out_channels)
        self.inner = inner
        self.low_out = Residual(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low_out(self.inner(self.low(nn.functional.max_pool2d(x, 2))))
        return self.up(x) + nn.functional.interpolate(low, scale_factor=2.0, mode="nearest")


def _lin(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU())


class HgStacked(nn.Module):
    """``hg-stacked.lua``: stem (7x7/2 64, residual 64->128, pool, 128->128, 128->128, 128->256), hourglass
    256 -> 512, lin 512, lin 256, heatmaps; heatmap remap (J -> 384) added to a 1x1 conv of [lin features,
    pooled stem features] (384); hourglass 384 -> 512, lin 512, lin 512, heatmaps.
    Shapes: (N, 3, H, W) -> (N, J, H / 4, W / 4) (eval: the second stack's heatmaps)."""

    def __init__(self, num_joints: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(), Residual(64, 128)
        )
        self.pooled = nn.Sequential(Residual(128, 128), Residual(128, 128), Residual(128, 256))
        self.hourglass1 = HgStackedHourglass(4, 256, 512)
        self.lin1 = nn.Sequential(_lin(512, 512), _lin(512, 256))
        self.score1 = nn.Conv2d(256, num_joints, 1)
        self.remap_heatmaps = nn.Conv2d(num_joints, 384, 1)
        self.remap_features = nn.Conv2d(384, 384, 1)
        self.hourglass2 = HgStackedHourglass(4, 384, 512)
        self.lin2 = nn.Sequential(_lin(512, 512), _lin(512, 512))
        self.score2 = nn.Conv2d(512, num_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.max_pool2d(self.stem(x), 2)
        features = self.lin1(self.hourglass1(self.pooled(pool)))
        heatmaps = self.score1(features)
        merged = self.remap_features(torch.cat([features, pool], 1)) + self.remap_heatmaps(heatmaps)
        return self.score2(self.lin2(self.hourglass2(merged)))


def _minus(a: Part, b: Part) -> Part:
    return a + b * -1


@dataclass(frozen=True)
class Variant:
    stem: str  # "hg.lua", "pytorch-pose", "none"
    modules: int  # residuals per hourglass position
    extra_bottom: int  # residuals added at the lowest resolution
    post: int  # residuals after the hourglass
    lins: int  # 1x1 conv + BN + ReLU layers before the heatmap conv
    remaps: bool  # 1x1 remaps of features and heatmaps into the next stack
    intermediate_heads: bool  # the first S - 1 heatmap convs (and heatmap remaps) counted
    skip: str  # "identity", "conv" (called), "unused" (built, never called)
    bias: bool
    bn: bool
    stacks: int
    joints: int

    def label(self) -> str:
        parts = [f"S={self.stacks}", f"J={self.joints}", f"stem {self.stem}", f"nModules {self.modules}"]
        parts += [f"bottom +{self.extra_bottom}"] if self.extra_bottom else []
        parts += [f"post {self.post}", f"lin {self.lins}", "remaps" if self.remaps else "no remaps"]
        parts += [] if self.intermediate_heads else ["last head only"]
        parts += [] if self.skip == "identity" else [f"skip conv {self.skip}"]
        parts += [] if self.bias else ["no bias"]
        parts += [] if self.bn else ["BN not counted"]
        return ", ".join(parts)


def total(variant: Variant, parts: dict[str, Part]) -> Part:
    """Exact counts of ``variant`` as a sum of counted parts."""
    stem = ZERO if variant.stem == "none" else parts[f"stem {variant.stem}"]
    residual_positions = (
        variant.modules * parts["hourglass"] + variant.extra_bottom * parts["bottom residual"]
    )
    post = variant.post * parts["post residual"]
    if variant.skip != "identity":
        skips = (
            variant.modules * parts["skip convs of hourglass"]
            + variant.extra_bottom * parts["skip conv of bottom residual"]
            + variant.post * parts["skip conv of post residual"]
        )
        # (The stems' identity skips, 16,512 parameters in hg.lua's, 65,792 in pytorch-pose's, are left
        # out: far below the millions this option adds.)
        if variant.skip == "unused":
            skips = Part(skips.params, 0, skips.bias_params, (0, 0))
        residual_positions += skips
    stack = residual_positions + post + variant.lins * parts["lin"]
    head = parts["score"]
    remaps = parts["remap features"] + (parts["remap heatmaps"] if variant.intermediate_heads else ZERO)
    inner = stack + (head if variant.intermediate_heads else ZERO) + (remaps if variant.remaps else ZERO)
    counts = stem + (variant.stacks - 1) * inner + stack + head
    params = (
        counts.params - (0 if variant.bias else counts.bias_params) - (0 if variant.bn else counts.bn_params)
    )
    return Part(params, counts.bn_params, counts.bias_params, counts.macs)


def gmacs(part: Part) -> tuple[float, float]:
    return part.macs[0] / GIGA["hrnet"], part.macs[1] / GIGA["hrnet"]


READINGS = ("rounded", "truncated")


def matches(part: Part, reading: str = "rounded") -> bool:
    """Whether ``part`` prints as 25.1M, 19.1 G (256x256) and 14.3 G (256x192).

    ``"rounded"``: params within ``PARAMS_TOLERANCE_M`` of 25.1M, both GMACs rounding to the printed digit.
    ``"truncated"``: SimpleBaseline's table prints ResNet-50's 8.99 G as 8.9, so its 25.1M and 14.3 G may
    be truncated: params in [25.1, 25.2)M, 256x192 in [14.3, 14.4) G; the paper's own 19.1 (256x256; it
    prints SimpleBaseline's 11.99 as 12.0) rounded or truncated: [19.05, 19.2).
    """
    g256, g192 = gmacs(part)
    if reading == "rounded":
        return (
            abs(part.params / 1e6 - TARGET_PARAMS_M) <= PARAMS_TOLERANCE_M
            and round(g256, 1) == TARGET_GMACS[0]
            and round(g192, 1) == TARGET_GMACS[1]
        )
    if reading == "truncated":
        return (
            TARGET_PARAMS_M <= part.params / 1e6 < TARGET_PARAMS_M + 0.1
            and TARGET_GMACS[0] - 0.05 <= g256 < TARGET_GMACS[0] + 0.1
            and TARGET_GMACS[1] <= g192 < TARGET_GMACS[1] + 0.1
        )
    raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")


def distance(part: Part) -> float:
    """Relative distance to the printed numbers (sum of |relative errors| of params and both GMACs)."""
    g256, g192 = gmacs(part)
    return (
        abs(part.params / 1e6 / TARGET_PARAMS_M - 1)
        + abs(g256 / TARGET_GMACS[0] - 1)
        + abs(g192 / TARGET_GMACS[1] - 1)
    )


def all_variants() -> list[Variant]:
    grid = itertools.product(
        ("hg.lua", "pytorch-pose", "none"),
        (1, 2),
        (0, 1, 2),
        (0, 1, 2),
        (0, 1, 2),
        (True, False),
        (True, False),
        ("identity", "conv", "unused"),
        (True, False),
        (True, False),
        (4, 8),
        (16, 17),
    )
    return [Variant(*values) for values in grid]


NAMED = {
    "hg.lua (default hourglass8)": Variant("hg.lua", 1, 0, 1, 1, True, True, "identity", True, True, 8, 17),
    "hg.lua without post residual (post_residual=False)": Variant(
        "hg.lua", 1, 0, 0, 1, True, True, "identity", True, True, 8, 17
    ),
    "pytorch-pose hg8 (num_blocks=1)": Variant(
        "pytorch-pose", 1, 0, 1, 1, True, True, "identity", True, True, 8, 17
    ),
    "pytorch-pose hg4 (num_blocks=2)": Variant(
        "pytorch-pose", 2, 0, 2, 1, True, True, "identity", True, True, 4, 17
    ),
    "hg-generic.lua (no post residual, no remaps)": Variant(
        "hg.lua", 1, 0, 0, 1, False, True, "identity", True, True, 8, 17
    ),
    "hg.lua, no biases, BN not counted": Variant(
        "hg.lua", 1, 0, 1, 1, True, True, "identity", False, False, 8, 17
    ),
    "hg.lua, stem not counted": Variant("none", 1, 0, 1, 1, True, True, "identity", True, True, 8, 17),
    "hg.lua, last head only": Variant("hg.lua", 1, 0, 1, 1, True, False, "identity", True, True, 8, 17),
    "hg.lua, 2 lin layers (hg-stacked.lua's head)": Variant(
        "hg.lua", 1, 0, 1, 2, True, True, "identity", True, True, 8, 17
    ),
    "hg.lua, 3 bottom residuals": Variant("hg.lua", 1, 2, 1, 1, True, True, "identity", True, True, 8, 17),
    "hg.lua, no post residual, 3 bottom residuals": Variant(
        "hg.lua", 1, 2, 0, 1, True, True, "identity", True, True, 8, 17
    ),
    "hg.lua, skip conv built on every residual, unused": Variant(
        "hg.lua", 1, 0, 1, 1, True, True, "unused", True, True, 8, 17
    ),
    "hg.lua, skip conv on every residual": Variant(
        "hg.lua", 1, 0, 1, 1, True, True, "conv", True, True, 8, 17
    ),
}


def check_against_full_model(parts: dict[str, Part], num_joints: int) -> None:
    """The sum of parts must equal the counts of a full ``hourglass8`` (both sizes) and of pytorch-pose's
    layer list, or the search would be of a fiction."""
    with torch.device("meta"):
        model = build_model("hourglass8", num_joints=num_joints)
    full = count_parts(model, [""])[""]
    summed = total(replace(NAMED["hg.lua (default hourglass8)"], joints=num_joints), parts)
    if (summed.params, summed.macs) != (full.params, full.macs):
        raise RuntimeError(f"sum of parts {summed} != full hourglass8 {full}")


def search(parts: dict[int, dict[str, Part]]) -> list[tuple[Variant, Part]]:
    """Every variant of :func:`all_variants` whose J is in ``parts`` (J -> counted parts), with its
    exact counts."""
    return [(v, total(v, parts[v.joints])) for v in all_variants() if v.joints in parts]


def _row(label: str, counts: Part) -> str:
    g256, g192 = gmacs(counts)
    return f"  {label}: {counts.params:,d} | {g256:.2f} | {g192:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--near", type=int, default=0, help="also print the N variants closest to the target")
    args = parser.parse_args()
    parts = {joints: measure_components(joints) for joints in (16, 17)}
    check_against_full_model(parts[17], 17)
    print("Parts (J = 17), counted: params | GMACs 256x256 | GMACs 256x192")
    for name, part in parts[17].items():
        print(_row(f"{name:28s}", part))
    print("\nCandidates: variant: params | GMACs 256x256 | 256x192  [MACs per parameter at 256x192]")
    for name, variant in NAMED.items():
        counts = total(variant, parts[variant.joints])
        print(_row(f"{name:52s}", counts) + f"  [{gmacs(counts)[1] * 1e3 / (counts.params / 1e6):.0f}]")
    with torch.device("meta"):
        hg_stacked = count_parts(HgStacked(17), [""])[""]
    print(_row(f"{'hg-stacked.lua (2 stacks, built whole)':52s}", hg_stacked))
    results = search(parts)
    target = f"{TARGET_PARAMS_M}M (+-{PARAMS_TOLERANCE_M}M), {TARGET_GMACS[0]} G, {TARGET_GMACS[1]} G"
    print(f"\nSearched {len(results)} variants for {target}")
    for reading in READINGS:
        found = [(v, c) for v, c in results if matches(c, reading)]
        for v, c in found:
            print(_row(f"MATCH ({reading}) " + v.label(), c))
        if not found:
            print(f"  no variant matches all three numbers ({reading} reading)")
    right_macs = [(v, c) for v, c in results if tuple(round(g, 1) for g in gmacs(c)) == TARGET_GMACS]
    right_params = [(v, c) for v, c in results if abs(c.params / 1e6 - TARGET_PARAMS_M) <= PARAMS_TOLERANCE_M]
    print(f"{len(right_macs)} variants print {TARGET_GMACS[0]} / {TARGET_GMACS[1]} G; closest in parameters:")
    for v, c in sorted(right_macs, key=lambda vc: abs(vc[1].params / 1e6 - TARGET_PARAMS_M))[:4]:
        print(_row(v.label(), c))
    g192 = sorted(gmacs(c)[1] for _, c in right_params)
    print(
        f"{len(right_params)} variants have {TARGET_PARAMS_M}M +- {PARAMS_TOLERANCE_M}M; GMACs 256x192 from "
        f"{g192[0]:.2f} to {g192[-1]:.2f}; closest to {TARGET_GMACS[1]}:"
    )
    for v, c in sorted(right_params, key=lambda vc: abs(gmacs(vc[1])[1] - TARGET_GMACS[1]))[:4]:
        print(_row(v.label(), c))
    for v, c in sorted(results, key=lambda vc: distance(vc[1]))[: args.near]:
        print(_row("near: " + v.label(), c))


if __name__ == "__main__":
    main()
