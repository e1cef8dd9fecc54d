"""scripts/ablation_synthetic.py: a tiny end-to-end study (3 variants, 1 epoch, tiny synthetic data)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from tests.engine.helpers import tiny_overrides
from tests.scripts.helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ablation_synthetic.py"


def test_help() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--preset" in result.stdout and "--seeds" in result.stdout


def test_summary_orders_variants_and_measures_the_spread() -> None:
    module = load_script("ablation_synthetic")
    runs = [
        {"variant": "box", "seed": 0, "pckh": 80.0},
        {"variant": "box", "seed": 1, "pckh": 78.0},
        {"variant": "conv3x3", "seed": 0, "pckh": 70.0},
        {"variant": "conv3x3", "seed": 1, "pckh": 75.0},
        {"variant": "dilated", "seed": 0, "pckh": 79.5},
        {"variant": "dilated", "seed": 1, "pckh": 79.0},
    ]
    summary = module.summarize(runs)
    assert summary["ordering"] == ["dilated", "box", "conv3x3"]
    assert summary["variants"]["box"]["mean"] == pytest.approx(79.0)
    assert summary["variants"]["conv3x3"]["spread"] == pytest.approx(5.0)
    assert summary["variants"]["conv3x3"]["std"] == pytest.approx(math.sqrt(12.5))  # sample std of 70, 75
    # Welch's test by hand: box (mean 79, variance 2) vs 3x3 (72.5, 12.5), two runs each.
    se2 = 2.0 / 2 + 12.5 / 2
    t = 6.5 / math.sqrt(se2)
    df = se2**2 / ((2.0 / 2) ** 2 / 1 + (12.5 / 2) ** 2 / 1)
    welch = summary["tests"]["box_vs_conv3x3"]
    assert welch["difference"] == pytest.approx(6.5) and welch["t"] == pytest.approx(t)
    assert welch["p"] == pytest.approx(2 * stats.t.sf(t, df))
    table = module.markdown(summary, "cmd")
    assert "| conv3x3 | 70.00 | 75.00 | 72.50 | 3.54 |" in table and "dilated > box > conv3x3" in table
    assert f"| box vs conv3x3 | +6.50 | {t:.2f} | {welch['p']:.3g} |" in table


@pytest.mark.slow
def test_tiny_study_end_to_end_and_resume(synthetic_root: Path, tmp_path: Path) -> None:
    module = load_script("ablation_synthetic")
    # The tiny setting minus its output_dir: the script gives every run its own folder.
    tiny = tiny_overrides(synthetic_root, tmp_path, epochs=1)
    overrides = [o for o in tiny if not o.startswith("output_dir")]
    argv = ["--output", str(tmp_path / "study"), "--seeds", "0", "--", *overrides, "trainer.val_every=1"]
    report = module.main(argv)
    assert [r["variant"] for r in report["runs"]] == ["box", "dilated", "conv3x3"]
    depthwise = {r["variant"]: r["model"]["depthwise"] for r in report["runs"]}
    assert depthwise == {"box": "box", "dilated": "dilated", "conv3x3": "conv3x3"}
    for run in report["runs"]:
        assert 0.0 <= run["pckh"] <= 100.0 and run["epochs"] == 1
        run_dir = tmp_path / "study" / f"{run['variant']}_seed0"
        assert (run_dir / "eval" / "val_last_flip" / "metrics.json").exists()
    saved = json.loads((tmp_path / "study" / "results.json").read_text())
    assert set(saved["variants"]) == {"box", "dilated", "conv3x3"} and len(saved["ordering"]) == 3
    assert "| box |" in (tmp_path / "study" / "results.md").read_text()

    last = tmp_path / "study" / "box_seed0" / "last.pt"
    before = last.stat().st_mtime_ns
    again = module.main(argv)  # finished runs are read back, not retrained
    assert last.stat().st_mtime_ns == before
    assert [r["pckh"] for r in again["runs"]] == [r["pckh"] for r in report["runs"]]
