"""scripts/overfit_study.py (paper Fig. 5): a tiny study end to end, its files, resuming, helpers, --help."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from boxpose.cli.train import train
from boxpose.config import compose_config
from boxpose.engine.checkpoint import load_checkpoint
from tests.engine.helpers import tiny_overrides
from tests.scripts.helpers import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "overfit_study.py"
BOXNET_BLUE = (180, 119, 31)  # BGR of matplotlib's "tab:blue", BoxNet's colour in the figures


overfit_study = load_script("overfit_study")


def _argv(output: Path, data_root: Path) -> list[str]:
    """boxnet_tiny on two fractions of the tiny synthetic set (16 images), 3 epochs validated at 2 and 3."""
    keep = ("data.", "trainer.batch_size", "trainer.workers", "trainer.device", "evaluate.")
    data = [o for o in tiny_overrides(data_root, output / "unused") if o.startswith(keep)]
    return [
        "--output", str(output), "--models", "boxnet", "--fractions", "0.5", "1", "--steps", "0",
        "--", *data, "schedule.epochs=3", "trainer.val_every=2",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_root) -> tuple[Path, list[str], dict]:
    """One tiny study: its output folder, its arguments and the report main() returned."""
    output = tmp_path_factory.mktemp("overfit_study")
    argv = _argv(output, synthetic_root)
    return output, argv, overfit_study.main(argv)


def test_results_hold_curves_of_every_run(study):
    output, _, report = study
    assert json.loads((output / "results.json").read_text()) == report
    runs = {r["fraction"]: r for r in report["runs"]}
    assert sorted(runs) == [0.5, 1.0]
    for run in runs.values():
        assert (run["model"], run["model_name"]) == ("boxnet", "boxnet_tiny")
        assert (run["epochs"], run["val_every"]) == (3, 2)
        assert [e["epoch"] for e in run["curve"]] == [2, 3]  # validated every 2nd epoch and after the last
        for epoch in run["curve"]:
            for key in ("train_pck", "val_pck", "val_pckh", "train_running_pck"):
                assert 0.0 <= epoch[key] <= 100.0, (key, epoch)
        last = run["curve"][-1]
        assert run["final"]["train_pck"] == last["train_pck"] and run["final"]["val_pckh"] == last["val_pckh"]
        assert run["final"]["gap"] == pytest.approx(last["train_pck"] - last["val_pck"])
        assert run["train_eval_persons"] == min(run["train_persons"], run["val_persons"])
    assert runs[0.5]["train_persons"] == round(0.5 * runs[1.0]["train_persons"])
    markdown = (output / "results.md").read_text()
    assert "| BoxNet (boxnet_tiny) | 0.5 |" in markdown and "| BoxNet (boxnet_tiny) | 1 |" in markdown
    command = "python scripts/overfit_study.py --preset cpu --models boxnet --fractions 0.5 1 --steps 0 -- "
    assert report["command"].startswith(command) and f"Command: `{report['command']}`" in markdown


def test_runs_train_with_flip_only_on_their_fraction(study):
    output, _, _ = study
    config = yaml.safe_load((output / "boxnet_frac0.5" / "config.yaml").read_text())
    augment = config["data"]["augment"]
    assert (augment["scale_factor"], augment["rotation_factor"], augment["flip"]) == (0.0, 0.0, True)
    assert config["data"]["train_fraction"] == 0.5


def test_figures_are_drawn(study):
    output, _, report = study
    for name, (min_height, min_width) in {"curves": (300, 600), "final_val": (300, 800)}.items():
        assert report["figures"][name] == str(output / f"{name}.png")
        image = cv2.imread(str(output / f"{name}.png"))
        assert image is not None and image.shape[0] >= min_height and image.shape[1] >= min_width
        assert image.std() > 10  # not blank
        blue = np.all(np.abs(image.astype(int) - BOXNET_BLUE) < 30, axis=2)
        assert blue.sum() > 100, f"{name}: no BoxNet lines"


def test_training_in_chunks_gives_the_weights_of_one_plain_run(study, tmp_path):
    output, _, report = study
    run = next(r for r in report["runs"] if r["fraction"] == 0.5)
    train(compose_config("train", [*run["overrides"], f"output_dir={tmp_path}"]))
    chunked = load_checkpoint(output / "boxnet_frac0.5" / "last.pt")["model"]
    plain = load_checkpoint(tmp_path / "last.pt")["model"]
    assert chunked.keys() == plain.keys()
    assert all(torch.equal(chunked[name], plain[name]) for name in plain)


def test_finished_runs_are_skipped(study, capsys):
    output, argv, report = study
    checkpoints = {p: p.stat().st_mtime_ns for p in output.glob("*/last.pt")}
    assert len(checkpoints) == 2
    assert overfit_study.main(argv)["runs"] == report["runs"]
    assert capsys.readouterr().out.count("done before") == 2
    assert {p: p.stat().st_mtime_ns for p in output.glob("*/last.pt")} == checkpoints


def test_a_run_whose_curve_fell_behind_its_checkpoint_is_completed_without_training(study, tmp_path):
    output, argv, report = study
    copy = tmp_path / "study"
    shutil.copytree(output, copy)
    run = copy / "boxnet_frac1"
    (run / "overfit_result.json").unlink()  # as if stopped after the last checkpoint, before the curve
    curve = json.loads((run / "curve.json").read_text())
    (run / "curve.json").write_text(json.dumps(curve[:-1]))
    argv = [copy.as_posix() if a == str(output) else a for a in argv]
    redone = {r["fraction"]: r for r in overfit_study.main(argv)["runs"]}[1.0]
    before = {r["fraction"]: r for r in report["runs"]}[1.0]
    assert redone["steps"] == before["steps"]  # no further training
    assert [e["epoch"] for e in redone["curve"]] == [2, 3]
    assert redone["curve"][-1] == pytest.approx(before["curve"][-1])


def test_step_budget_gives_every_fraction_the_same_steps():
    # The cpu preset's numbers: 1215 training persons, batch 16, 400 steps.
    assert overfit_study.step_budget_overrides(400, 122, 16) == [
        "schedule.epochs=57", "schedule.milestones=[37,49]", "trainer.val_every=4",
    ]  # fmt: skip
    assert overfit_study.step_budget_overrides(400, 1215, 16) == [
        "schedule.epochs=5", "schedule.milestones=[3,4]", "trainer.val_every=1",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="one batch"):
        overfit_study.step_budget_overrides(400, 10, 16)


def test_heatmap_pck_scores_predictions_against_targets():
    target = torch.zeros(2, 3, 16, 16)
    target[:, :, 8, 6] = 1.0  # every joint at x = 6, y = 8
    weight = torch.ones(2, 3)
    identity = nn.Identity()  # the "image" is the predicted heatmaps
    exact = [{"image": target, "target": target, "target_weight": weight}]
    assert overfit_study.heatmap_pck(identity, exact, torch.device("cpu")) == 100.0
    shifted = target.roll(4, dims=3)  # 4 heatmap pixels off: beyond 0.5 x 16 / 10
    half = shifted.clone()
    half[:, 0] = target[:, 0]  # joint 0 right, joints 1 and 2 wrong
    wrong = [{"image": half, "target": target, "target_weight": weight}]
    assert overfit_study.heatmap_pck(identity, wrong, torch.device("cpu")) == pytest.approx(100 / 3)
    weight[:, 1:] = 0  # only joint 0 counts
    masked = [{"image": half, "target": target, "target_weight": weight}]
    assert overfit_study.heatmap_pck(identity, masked, torch.device("cpu")) == 100.0


def test_help_exits_zero():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--steps" in done.stdout and "--fractions" in done.stdout and "Fig. 5" in done.stdout
