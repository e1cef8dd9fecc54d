"""``boxpose-info``: a model's parameters, MACs per stage, output size and receptive fields.

    boxpose-info model=boxnet input_size=[192,256] num_joints=17     # [W, H], as data.input_size
    boxpose-info model=simple_baseline_r50 convention=exact

Prints a table, then as the last stdout line a JSON object with ``model``, ``kwargs``, ``input_size``,
``num_joints``, ``params``, ``macs``, ``gmacs``, ``convention``, ``output_size`` and, for BoxNet models,
``receptive_field`` (input pixels). ``input_size`` is [width, height], as ``data.input_size`` and
checkpoints write it. The model is built on the meta device: nothing is allocated and
nothing is written. MAC conventions: see :mod:`boxpose.models.counting`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from boxpose.config import ConfigError, to_plain, validate_info_config
from boxpose.models import build_model
from boxpose.models.boxnet import BoxNet
from boxpose.models.counting import GIGA, summarize


def model_info(
    name: str,
    num_joints: int,
    input_size: Sequence[int] = (256, 256),
    convention: str = "hrnet",
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Counts of the registered model ``name`` (built on the meta device) on one image of ``input_size`` =
    (W, H), as a JSON-ready dict.

    Keys: model, kwargs, input_size, num_joints, params, macs, gmacs, convention, output_size (J, h, w),
    receptive_field (BoxNet only, else None), stages (name, params, macs, gmacs, output, depthwise,
    receptive_field per stage).
    """
    with torch.device("meta"):
        model = build_model(name, num_joints=num_joints, **model_kwargs)
    summary = summarize(model, tuple(input_size), convention)
    giga = GIGA[convention]
    units = {unit.name: unit for unit in model.unit_table()} if isinstance(model, BoxNet) else {}
    stages = []
    for row in summary.stages:
        unit = units.get(row.name)
        stages.append(
            {
                "name": row.name,
                "params": row.params,
                "macs": row.macs,
                "gmacs": row.macs / giga,
                "output": [list(shape) for shape in row.output_shape],
                "depthwise": unit.depthwise if unit else None,
                "receptive_field": unit.receptive_field if unit else None,
            }
        )
    return {
        "model": name,
        "kwargs": model_kwargs,
        "input_size": [int(s) for s in input_size],
        "num_joints": num_joints,
        "params": summary.params,
        "macs": summary.macs.total,
        "gmacs": round(summary.macs.giga, 4),
        "convention": convention,
        "output_size": list(summary.output_shape),
        "receptive_field": model.receptive_field() if isinstance(model, BoxNet) else None,
        "stages": stages,
    }


def _shape_text(shapes: list[list[int]]) -> str:
    return ", ".join("x".join(str(s) for s in shape) for shape in shapes) or "-"


def format_info(info: dict[str, Any]) -> str:
    """The human-readable table of :func:`model_info`'s result."""
    width, height = info["input_size"]
    kwargs = ", ".join(f"{k}={v}" for k, v in info["kwargs"].items())
    unit = "2^30" if info["convention"] == "hrnet" else "10^9"
    lines = [
        f"{info['model']}({kwargs}) — {info['num_joints']} joints, input 3x{height}x{width}",
        f"MACs convention: {info['convention']} (GMACs = MACs / {unit})",
        "",
        f"{'stage':<10} {'params':>10} {'GMACs':>8} {'output (CxHxW)':>16}  {'depthwise':<30} {'RF':>5}",
    ]
    for stage in info["stages"]:
        rf = str(stage["receptive_field"]) if stage["receptive_field"] is not None else ""
        output = _shape_text(stage["output"])
        lines.append(
            f"{stage['name']:<10} {stage['params']:>10,} {stage['gmacs']:>8.3f} {output:>16}  "
            f"{stage['depthwise'] or '':<30} {rf:>5}"
        )
    lines.append(
        f"{'total':<10} {info['params']:>10,} {info['gmacs']:>8.3f} {_shape_text([info['output_size']]):>16}"
    )
    if info["receptive_field"] is not None:
        lines.append(
            f"theoretical receptive field of an output pixel: {info['receptive_field']} input pixels"
        )
    return "\n".join(lines)


@hydra.main(version_base=None, config_path="pkg://boxpose._configs", config_name="info")
def main(cfg: DictConfig) -> None:
    try:
        plain = to_plain(cfg)
        validate_info_config(plain)
    except ConfigError as exc:
        print(f"boxpose-info: error: {exc}", file=sys.stderr)
        sys.exit(2)
    model_cfg = dict(plain["model"])
    name = model_cfg.pop("name")
    info = model_info(
        name, int(plain["num_joints"]), list(plain["input_size"]), str(plain["convention"]), **model_cfg
    )
    print(format_info(info))
    print(json.dumps({k: v for k, v in info.items() if k != "stages"}))


if __name__ == "__main__":
    main()
