"""scripts/snap_finetune.py on the tiny synthetic set: accuracies, frozen integer boxes, timing, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from boxpose.cli.train import train
from boxpose.config import compose_config
from boxpose.engine.checkpoint import load_checkpoint, load_model
from boxpose.models import build_model
from boxpose.nn import box_conv_layers, snap_boxes_
from tests.engine.helpers import tiny_overrides
from tests.scripts.helpers import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "snap_finetune.py"


snap_finetune = load_script("snap_finetune")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_root) -> Path:
    """last.pt of boxnet_tiny trained for one epoch on the tiny synthetic MPII set (64 x 64 crops)."""
    root = synthetic_root
    run = tmp_path_factory.mktemp("run")
    train(compose_config("train", tiny_overrides(root, run, epochs=1)))
    return run / "last.pt"


@pytest.fixture(scope="module")
def finetuned(trained, tmp_path_factory) -> tuple[Path, dict]:
    """snap_finetune run on ``trained`` for one epoch; (output folder, report)."""
    output = tmp_path_factory.mktemp("snap") / "out"
    before = sorted(p.name for p in trained.parent.rglob("*"))
    args = [str(trained), "--epochs", "1", "--output", str(output), "--device", "cpu"]
    args += ["--timing-batch", "1", "--timing-repeats", "2", "--bn-batches", "2", "optim.weight_decay=0.1"]
    assert snap_finetune.main(args) == 0
    assert sorted(p.name for p in trained.parent.rglob("*")) == before  # the source run is not written to
    return output, json.loads((output / "snap_report.json").read_text())


def _boxes(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: layer.boxes.detach().clone() for name, layer in box_conv_layers(model)}


def test_report_has_the_four_accuracies_and_timings(finetuned):
    output, report = finetuned
    assert report["main_metric"] == "Mean" and report["epochs"] == 1 and report["device"] == "cpu"
    assert set(report["accuracy"]) == {"original", "snapped", "recalibrated", "finetuned"}
    assert report["bn_recalibration_batches"] == 2
    for stage, value in report["accuracy"].items():
        assert isinstance(value, float) and 0.0 <= value <= 100.0, stage
        assert report["metrics"][stage]["Mean"] == value
        assert (output / "eval" / stage / "metrics.json").is_file()
    assert report["boxes"]["integer_and_unchanged_after_finetuning"] is True
    # Rounding moves a corner by at most 1/2 px; a sub-pixel box kept at one pixel moves a corner by < 1 px.
    assert 0 < report["boxes"]["max_corner_shift_px_by_snapping"] < 1.0
    empty = report["boxes"]["empty_boxes"]
    assert empty["snapped"] <= empty["original"]  # snapping empties no box
    assert all(0 <= count <= report["boxes"]["frozen_corner_values"] // 4 for count in empty.values())
    cpu = report["timing"]["cpu"]
    # Each box layer is timed at the shape it sees in the model: batch 1, 64 x 64 input -> 16 x 16 maps.
    assert len(cpu["layers"]) == 8 and all(layer["shape"][::2] == [1, 16] for layer in cpu["layers"])
    for entry in (*cpu["layers"], cpu["box_layers"], cpu["model"]):
        assert entry["original_ms"] > 0 and entry["snapped_ms"] > 0
        assert entry["speedup"] == pytest.approx(entry["original_ms"] / entry["snapped_ms"], rel=1e-2)
    assert "optim.weight_decay=0.1" in report["commands"]["finetune_overrides"]
    assert "flip_test=true" in report["commands"]["evaluate"]["finetuned"]


def test_finetuned_boxes_are_the_snapped_integers(finetuned, trained):
    output, _ = finetuned
    original, _ = load_model(trained)
    snapped, _ = load_model(output / "snapped.pt")
    tuned, checkpoint = load_model(output / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["config"]["optim"]["lr"] == pytest.approx(1e-4)
    assert checkpoint["config"]["optim"]["weight_decay"] == pytest.approx(0.1)
    reference = build_model("boxnet_tiny", num_joints=16)
    reference.load_state_dict(load_checkpoint(trained)["model"])
    snap_boxes_(reference)
    for (name, layer), (_, want) in zip(box_conv_layers(tuned), box_conv_layers(reference)):
        pixels = layer.boxes_in_pixels()
        assert layer.is_snapped and not layer.boxes.requires_grad, name
        assert torch.allclose(pixels, pixels.round(), atol=1e-4), name
        assert torch.equal(layer.boxes, want.boxes), name
    assert all(torch.equal(a, b) for a, b in zip(_boxes(tuned).values(), _boxes(snapped).values()))
    assert not all(torch.equal(a, b) for a, b in zip(_boxes(tuned).values(), _boxes(original).values()))


def test_recalibration_changes_only_the_batchnorm_statistics(finetuned):
    output, _ = finetuned
    snapped = load_checkpoint(output / "snapped.pt")["model"]
    recalibrated = load_checkpoint(output / "recalibrated.pt")["model"]
    assert snapped.keys() == recalibrated.keys()
    statistics = [k for k in snapped if k.endswith(("running_mean", "running_var"))]
    assert statistics and all(not torch.equal(snapped[k], recalibrated[k]) for k in statistics)
    assert all(torch.equal(snapped[k], recalibrated[k]) for k in snapped if k.endswith((".weight", ".boxes")))


def test_the_rest_of_the_network_was_fine_tuned(finetuned, trained):
    output, _ = finetuned
    before = load_checkpoint(trained)["model"]
    after = load_checkpoint(output / "last.pt")["model"]
    weights = [k for k in before if k.endswith(".weight") and not k.endswith(".boxes")]
    changed = [k for k in weights if not torch.equal(before[k], after[k])]
    assert len(weights) > 50 and len(changed) > 0.9 * len(weights), (len(changed), len(weights))


def test_an_existing_run_is_not_overwritten(finetuned, trained, capsys):
    output, _ = finetuned
    with pytest.raises(SystemExit) as exc:
        snap_finetune.main([str(trained), "--output", str(output)])
    assert exc.value.code == 2 and "already holds a fine-tuning run" in capsys.readouterr().err


def test_timing_only(trained, tmp_path):
    args = [str(trained), "--timing-only", "--output", str(tmp_path), "--timing-batch", "1"]
    assert snap_finetune.main([*args, "--timing-repeats", "1", "--timing-threads", "1"]) == 0
    report = json.loads((tmp_path / "snap_report.json").read_text())
    assert "accuracy" not in report and report["timing"]["cpu_threads"] == 1
    assert report["timing"]["cpu"]["model"]["speedup"] > 0
    assert not (tmp_path / "last.pt").exists()


def test_finetune_config_overrides(tmp_path):
    stored = compose_config("train", tiny_overrides(tmp_path / "data", tmp_path / "run", epochs=7))
    cfg, overrides = snap_finetune.finetune_config(
        stored, tmp_path / "snap", 2, 5e-5, "cpu", ["trainer.batch_size=4", "schedule.milestones=[1]"]
    )
    assert cfg["output_dir"] == str(tmp_path / "snap") and cfg["trainer"]["resume"] is None
    assert cfg["trainer"]["epochs"] == cfg["schedule"]["epochs"] == 2 and cfg["optim"]["lr"] == 5e-5
    assert cfg["trainer"]["batch_size"] == 4 and cfg["schedule"]["milestones"] == [1]  # user's last
    assert cfg["model"] == stored["model"] and overrides[-1] == "schedule.milestones=[1]"
    with pytest.raises(ValueError, match="config group"):
        snap_finetune.finetune_config(stored, tmp_path, 1, 1e-4, "cpu", ["model=boxnet"])
    with pytest.raises(ValueError, match=r"optim\.lrr"):
        snap_finetune.finetune_config(stored, tmp_path, 1, 1e-4, "cpu", ["optim.lrr=1"])


def test_check_boxes_catches_moved_or_unsnapped_boxes():
    model = build_model("boxnet_tiny", num_joints=16)
    with pytest.raises(RuntimeError, match="not snapped"):
        snap_finetune.check_boxes(model, _boxes(model), "unsnapped")
    snap_finetune.freeze_boxes(model)
    expected = _boxes(model)
    snap_finetune.check_boxes(model, expected, "snapped")
    name, layer = box_conv_layers(model)[-1]
    with torch.no_grad():
        layer.boxes[0, 0] -= 2.0 / layer.max_size  # one pixel: still an integer, but moved
    with pytest.raises(RuntimeError, match=re.escape(f"boxes of {name} moved")):
        snap_finetune.check_boxes(model, expected, "moved")


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        snap_finetune.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--epochs" in out and "--timing-repeats" in out and "snapped" in out
