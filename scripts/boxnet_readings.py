"""Count the candidate readings of the paper's Fig. 3 against its seven printed numbers.

The figure's text (``../shared/paper``, docs/architecture.md "Reconstructing Figure 3") leaves open which
basic unit the blue blocks are, how many boxes each channel gets (m), where the figure's first "Block
3x3" sits and how to read "k=3". This script builds each candidate with :class:`BoxNet`, counts it with
the project's counter (HRNet convention, GMACs = MACs / 2^30) and prints a Markdown table: parameters
(COCO head, 17 joints) and GMACs at 256x256 for the box network and its 3x3 and dilated ablations, the
box network's GMACs at 256x192, and whether every number equals the printed one (params within 0.01M,
GMACs at one decimal).

    python scripts/boxnet_readings.py            # the table of docs/architecture.md
    python scripts/boxnet_readings.py --json     # the same as JSON
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace

import torch

from boxpose.models import count_macs, count_parameters
from boxpose.models.boxnet import BOXNET_11UNIT_SPEC, BOXNET_SPEC, BoxNet, BoxNetSpec, UnitSpec
from boxpose.paper import PAPER

JOINTS = 17  # the paper's COCO counts; MPII's 16-joint head has 385 parameters fewer


@dataclass(frozen=True)
class Candidate:
    """One reading of the figure: a stage table (with its basic unit) and m boxes per channel."""

    name: str
    spec: BoxNetSpec
    boxes_per_channel: int


def _units(spec: BoxNetSpec, units: list[UnitSpec], basic_unit: str | None = None) -> BoxNetSpec:
    return replace(spec, units=tuple(units), basic_unit=basic_unit or spec.basic_unit)


def candidates() -> list[Candidate]:
    """The readings counted in docs/architecture.md, the chosen one first."""
    chosen = list(BOXNET_SPEC.units)
    at_quarter = [chosen[1], UnitSpec(288, 3), *chosen[2:]]  # first "Block 3x3" after the stride-2 unit
    k3_as_3x3 = [*chosen[:5], UnitSpec(384, 3), *chosen[6:]]  # "k=3" read as a 3x3 block
    k31_at_768 = [*chosen[:9], UnitSpec(768, 31), UnitSpec(384, 25), *chosen[11:]]  # k=31 before 768 -> 384
    one_768 = [*chosen[:7], UnitSpec(768, 3), UnitSpec(384, 31), *chosen[10:]]  # one unit at 768
    earlier = list(BOXNET_11UNIT_SPEC.units)
    depthwise_first = _units(BOXNET_SPEC, chosen, "depthwise_first")
    earlier_shufflenet = _units(BOXNET_11UNIT_SPEC, earlier, "shufflenetv2")
    return [
        Candidate("13 units, ShuffleNetV2 basic unit, m = 1 (chosen: `boxnet`)", BOXNET_SPEC, 1),
        Candidate("13 units, ShuffleNetV2 basic unit, m = 2", BOXNET_SPEC, 2),
        Candidate("13 units, depthwise-first basic unit, m = 1", depthwise_first, 1),
        Candidate("13 units, depthwise-first basic unit, m = 2", depthwise_first, 2),
        Candidate("13 units, first Block 3x3 at 1/4 resolution", _units(BOXNET_SPEC, at_quarter), 1),
        Candidate('13 units, "k=3" read as a 3x3 block', _units(BOXNET_SPEC, k3_as_3x3), 1),
        Candidate("13 units, k=31 block at 768 channels", _units(BOXNET_SPEC, k31_at_768), 1),
        Candidate("12 units, one unit at 768 channels", _units(BOXNET_SPEC, one_768), 1),
        Candidate("11 units, ShuffleNetV2 basic unit, m = 1", earlier_shufflenet, 1),
        Candidate("11 units, depthwise-first, m = 2 (earlier: `boxnet_11unit_m2`)", BOXNET_11UNIT_SPEC, 2),
    ]  # fmt: skip


def count(candidate: Candidate) -> dict[str, float]:
    """Parameters (millions) and GMACs of the candidate's box network and ablations."""
    row: dict[str, float] = {}
    for kind, label in (("box", "box"), ("conv3x3", "3x3"), ("dilated", "dilated")):
        with torch.device("meta"):
            model = BoxNet(JOINTS, candidate.spec, kind, candidate.boxes_per_channel)
        row[f"{label}_params_m"] = count_parameters(model) / 1e6
        row[f"{label}_gmacs_256x256"] = count_macs(model, (256, 256)).giga
        if kind == "box":
            row["box_gmacs_256x192"] = count_macs(model, (192, 256)).giga  # (W, H)
    return row


def printed_numbers() -> dict[str, float]:
    """The seven numbers of the paper's Tables 1 and 2 that a reading must reproduce."""
    table1, table2 = PAPER[1], PAPER[2]
    return {
        "box_params_m": table1[("boxnet", False)].params_m,
        "3x3_params_m": table1[("boxnet_3x3", False)].params_m,
        "dilated_params_m": table1[("boxnet_dilated", False)].params_m,
        "box_gmacs_256x256": table1[("boxnet", False)].gflops,
        "3x3_gmacs_256x256": table1[("boxnet_3x3", False)].gflops,
        "dilated_gmacs_256x256": table1[("boxnet_dilated", False)].gflops,
        "box_gmacs_256x192": table2[("boxnet", False)].gflops,
    }


def matches(row: dict[str, float], printed: dict[str, float]) -> dict[str, bool]:
    """Per number: params within 0.01M of the printed value, GMACs equal at the printed decimal."""
    return {
        key: abs(row[key] - value) <= 0.01 if key.endswith("params_m") else round(row[key], 1) == value
        for key, value in printed.items()
    }


def markdown(rows: list[dict]) -> str:
    printed = printed_numbers()
    keys = list(printed)
    header = (
        "| reading | params box / 3x3 / dilated (M) | GMACs box / 3x3 / dilated | box 256x192 | matches |"
    )
    lines = [header, "|---|---|---|---:|---:|"]
    paper = "| paper (Tables 1, 2) | {:.2f} / {:.2f} / {:.2f} | {:.1f} / {:.1f} / {:.1f} | {:.1f} | 7 of 7 |"
    lines.append(paper.format(*(printed[k] for k in keys)))
    for row in rows:
        good = sum(row["matches"].values())
        lines.append(
            f"| {row['name']} | {row['box_params_m']:.3f} / {row['3x3_params_m']:.3f} / "
            f"{row['dilated_params_m']:.3f} | {row['box_gmacs_256x256']:.2f} / "
            f"{row['3x3_gmacs_256x256']:.2f} / {row['dilated_gmacs_256x256']:.2f} | "
            f"{row['box_gmacs_256x192']:.2f} | {good} of 7 |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    printed = printed_numbers()
    rows = []
    for candidate in candidates():
        row = {"name": candidate.name, **count(candidate)}
        row["matches"] = matches(row, printed)
        rows.append(row)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows))
    return rows


if __name__ == "__main__":
    main()
