"""boxpose-eval, boxpose-predict and boxpose-export on a checkpoint of a short training run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from boxpose.cli.evaluate import evaluate
from boxpose.cli.export import export
from boxpose.cli.predict import predict
from boxpose.cli.train import train
from boxpose.config import compose_config
from tests.engine.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, synthetic data root) of a one-epoch boxnet_tiny run on synthetic MPII."""
    base = tmp_path_factory.mktemp("cli")
    data_root, run = base / "synthetic" / "mpii", base / "run"
    train(compose_config("train", tiny_overrides(data_root, run, epochs=1)))
    return run / "best.pt", data_root


def _cli(module: str, args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)  # fmt: skip


def test_eval_cli_scores_a_checkpoint_with_its_stored_dataset(trained, tmp_path):
    checkpoint, _ = trained
    result = _cli("boxpose.evaluate", [f"checkpoint={checkpoint}", "evaluate.workers=0"], cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []  # Hydra writes no evaluate.log where the user runs the CLI
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["split"] == "val" and set(summary["metrics"]) >= {"Head", "Mean", "Mean@0.1"}
    assert "Shoulder" in result.stdout  # the PCKh table
    out = checkpoint.parent / "eval" / "val_mpii"
    assert (out / "metrics.json").is_file() and (out / "pred.mat").is_file()


def test_eval_without_flip_test_differs(trained, tmp_path):
    checkpoint, _ = trained
    base = [f"checkpoint={checkpoint}", "evaluate.workers=0"]
    with_flip = evaluate(compose_config("evaluate", [*base, f"output_dir={tmp_path / 'a'}"]))
    without = evaluate(
        compose_config("evaluate", [*base, "evaluate.flip_test=false", f"output_dir={tmp_path / 'b'}"])
    )
    assert with_flip["metrics"] != without["metrics"]


def test_eval_rejects_a_checkpoint_of_another_joint_layout(trained, realdata):
    checkpoint, _ = trained
    coco = [f"data.root={realdata / 'coco-mini'}", "data.det_file=null"]
    result = _cli("boxpose.evaluate", [f"checkpoint={checkpoint}", "data=coco", *coco])
    assert result.returncode == 2
    assert "trained for 16 joints" in result.stderr and "coco" in result.stderr


def test_eval_rejects_a_wrong_input_size(trained):
    checkpoint, data_root = trained
    overrides = [
        f"checkpoint={checkpoint}", "data=synthetic_mpii", f"data.root={data_root}",
        "data.synthetic.num_train=16", "data.synthetic.num_val=6", "data.synthetic.image_size=[128,128]",
        "data.input_size=[128,128]", "data.heatmap_size=[32,32]",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"trained at input size \[64, 64\]"):
        evaluate(compose_config("evaluate", overrides))


def test_eval_missing_checkpoint_is_named():
    result = _cli("boxpose.evaluate", ["checkpoint=/nonexistent/best.pt"])
    assert result.returncode == 2 and "checkpoint not found: /nonexistent/best.pt" in result.stderr


def test_eval_oracle_on_real_coco_without_a_checkpoint(realdata, tmp_path):
    summary = evaluate(compose_config("evaluate", [
        "data=coco", f"data.root={realdata / 'coco-mini'}", "data.det_file=null", "evaluate.oracle=true",
        "evaluate.workers=0", f"output_dir={tmp_path}",
    ]))  # fmt: skip
    assert summary["metrics"]["AP"] > 0.9 and summary["oracle"]


def test_predict_on_a_folder_with_a_boxes_file(trained, tmp_path):
    checkpoint, data_root = trained
    images = sorted((data_root / "images").glob("*.jpg"))[:3]
    folder = tmp_path / "in"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({images[0].name: [[10, 10, 60, 100], [50, 5, 60, 110, 0.8]]}))
    overrides = [
        f"checkpoint={checkpoint}",
        f"input={folder}",
        f"boxes={boxes}",
        f"output_dir={tmp_path / 'out'}",
    ]
    summary = predict(compose_config("predict", overrides))
    results = json.loads(Path(summary["predictions"]).read_text())
    people = {p.name: [r for r in results if r["image_file"] == p.name] for p in images}
    assert len(people[images[0].name]) == 2 and len(people[images[1].name]) == 1  # no boxes: the whole image
    assert people[images[0].name][1]["box_score"] == 0.8 and people[images[0].name][1]["bbox"] == [
        50,
        5,
        60,
        110,
    ]
    assert len(people[images[0].name][0]["keypoints"]) == 16 * 3
    drawn = cv2.imread(str(tmp_path / "out" / images[0].name))
    assert drawn is not None and drawn.shape == cv2.imread(str(images[0])).shape


def test_predict_on_a_video(trained, tmp_path):
    checkpoint, data_root = trained
    frames = [cv2.imread(str(p)) for p in sorted((data_root / "images").glob("*.jpg"))[:4]]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(cv2.resize(frame, frames[0].shape[1::-1]))
    writer.release()
    summary = predict(compose_config("predict", [f"checkpoint={checkpoint}", f"input={video}", "max_frames=3",
                                                  f"output_dir={tmp_path / 'out'}"]))  # fmt: skip
    assert summary["images"] == 3
    capture = cv2.VideoCapture(summary["video"])
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_predict_errors_are_named(trained, tmp_path):
    checkpoint, _ = trained
    result = _cli("boxpose.cli.predict", [f"checkpoint={checkpoint}", f"input={tmp_path / 'missing.jpg'}"])
    assert result.returncode == 2 and "input not found" in result.stderr


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch(trained, tmp_path, fmt):
    checkpoint, _ = trained
    output = tmp_path / f"model.{fmt}"
    summary = export(
        compose_config("export", [f"checkpoint={checkpoint}", f"format={fmt}", f"output={output}"])
    )
    assert output.is_file() and summary["verified"] is True and summary["max_abs_diff"] < 1e-4
    assert summary["output_shape"] == [2, 16, 16, 16]


def test_prepared_model_gives_the_same_heatmaps_and_scores(trained, tmp_path):
    """load_model(prepare=True) (the CLIs' default) folds the BatchNorms: same heatmaps, same PCKh."""
    import torch

    from boxpose.engine.checkpoint import load_model

    checkpoint, _ = trained
    plain, _ = load_model(checkpoint)
    prepared, _ = load_model(checkpoint, prepare=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = plain(x)
        torch.testing.assert_close(prepared(x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    base = [f"checkpoint={checkpoint}", "evaluate.workers=0"]
    folded = evaluate(compose_config("evaluate", [*base, f"output_dir={tmp_path / 'a'}"]))
    unfolded = evaluate(compose_config("evaluate", [*base, "prepare=false", f"output_dir={tmp_path / 'b'}"]))
    assert folded["metrics"] == pytest.approx(unfolded["metrics"], abs=0.5)
