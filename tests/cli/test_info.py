"""boxpose-info: the plain functions, and the Hydra entry point run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from boxpose.cli.info import format_info, model_info


def test_model_info_and_table() -> None:
    info = model_info("boxnet", num_joints=16, input_size=(192, 256))  # (W, H)
    assert info["params"] == 1_855_600
    assert info["output_size"] == [16, 64, 48]
    assert info["receptive_field"] == 507
    assert abs(info["gmacs"] - 5.7703) < 1e-4
    assert [s["name"] for s in info["stages"]][:2] == ["stem", "units.0"]
    assert info["stages"][10]["depthwise"] == "box k=31 m=1" and info["stages"][10]["receptive_field"] == 267
    table = format_info(info)
    assert (
        "units.9" in table
        and "box k=31 m=1" in table
        and "1,855,600" in table
        and "507 input pixels" in table
    )
    baseline = model_info("simple_baseline_r50", num_joints=17, convention="exact", pretrained=None)
    assert baseline["receptive_field"] is None and abs(baseline["gmacs"] - 7.235) < 2e-3
    assert "deconv.2" in format_info(baseline)


def test_cli_last_line_is_json(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "boxpose.cli.info",
            "model=boxnet_tiny",
            "input_size=[48,64]",  # [W, H]
            "num_joints=16",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["model"] == "boxnet_tiny"
    assert summary["input_size"] == [48, 64] and summary["num_joints"] == 16
    assert summary["output_size"] == [16, 16, 12]
    assert summary["params"] == 35_656 and summary["convention"] == "hrnet"
    assert summary["kwargs"] == {"width": 48, "depthwise": "box", "boxes_per_channel": 1, "split": "none"}
    assert any(line.startswith("units.12") for line in lines)
    assert list(tmp_path.iterdir()) == []  # no outputs/, .hydra/ or log file left behind


def test_cli_overrides_model_kwargs(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "boxpose.cli.info",
            "model=hourglass8",
            "model.post_residual=false",
            "input_size=[192,256]",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["params"] == 23_721_736 and round(summary["gmacs"], 1) == 14.3
