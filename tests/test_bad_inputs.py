"""The catalogue of bad inputs (issue 13): each case names the input, the expected exception or exit
status, and the words the message must contain. Cases that need a training run live beside the trainer's
tests (tests/engine/test_trainer.py: resume with a changed config, a failing validation, Ctrl-C during
validation, the epoch loss after a mid-epoch resume) and the evaluator's (tests/engine/test_evaluator.py:
unreadable validation images)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from boxpose.config import ConfigError, compose_config, validate_evaluate_config, validate_train_config
from boxpose.data.base import AnnotationError, ImageReadError
from boxpose.data.coco import COCODataset
from boxpose.data.mpii import MPIIDataset
from boxpose.engine.checkpoint import save_checkpoint
from boxpose.evaluation.coco import evaluate_keypoints
from tests.pipelines import make_pipeline

REPO = Path(__file__).resolve().parents[1]
TINY = ["data=synthetic_mpii", "model=boxnet_tiny", "run_name=catalogue", "data.root=/nonexistent"]


# ---------------------------------------------------------------------------------------------------
# case 5 and 8: every config value is checked before work starts


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("trainer.batch_size=abc", ["trainer.batch_size=abc", "integer >= 1"]),
        ("trainer.batch_size=8.5", ["trainer.batch_size=8.5", "integer >= 1"]),
        ("trainer.batch_size=0", ["trainer.batch_size=0", "integer >= 1"]),
        ("trainer.epochs=0", ["trainer.epochs=0", "integer >= 1"]),
        ("trainer.epochs=-3", ["trainer.epochs=-3", "integer >= 1"]),
        ("trainer.workers=-1", ["trainer.workers=-1", "integer >= 0"]),
        ("trainer.amp=fp32", ["trainer.amp=fp32", "none | bf16 | fp16"]),
        ("trainer.grad_clip=0", ["trainer.grad_clip=0", "> 0"]),
        ("trainer.val_every=0", ["trainer.val_every=0", "integer >= 1"]),
        ("trainer.channels_last=maybe", ["trainer.channels_last=maybe", "true, false or auto"]),
        ("optim.lr=0", ["optim.lr=0", "number > 0"]),
        ("optim.lr=fast", ["optim.lr=fast", "number > 0"]),
        ("optim.weight_decay=-1e-4", ["optim.weight_decay", "number >= 0"]),
        ("schedule.milestones=[120,90]", ["schedule.milestones=[120,90]", "increasing"]),
        ("schedule.gamma=0", ["schedule.gamma=0", "> 0"]),
        ("seed=-1", ["seed=-1", "integer >= 0"]),
        ("data.train_fraction=0", ["data.train_fraction=0", "(0, 1]"]),
        ("data.train_fraction=1.5", ["data.train_fraction=1.5", "(0, 1]"]),
        ("data.max_failure_fraction=2", ["data.max_failure_fraction=2", "[0, 1]"]),
        ("data.sigma=0", ["data.sigma=0", "> 0"]),
        ("data.augment.flip_prob=1.5", ["data.augment.flip_prob=1.5", "[0, 1]"]),
        ("data.input_size=[64]", ["data.input_size=[64]", "[width, height]"]),
        ("data.input_size=[66,66]", ["data.input_size=[66,66]", "divisible by 4"]),
        ("data.heatmap_size=[10,10]", ["data.heatmap_size=[10,10]", "data.input_size / 4", "[24,24]"]),
        ("evaluate.batch_size=0", ["evaluate.batch_size=0", "integer >= 1"]),
        ("evaluate.decode=fancy", ["evaluate.decode=fancy", "quarter | dark | argmax"]),
        ("model.width=0", ["model.width=0", "integer >= 1"]),
        ("+model.depth=3", ["model.depth", "boxnet_tiny", "no such argument"]),
    ],
)
def test_train_config_values_are_checked(override, words):
    cfg = compose_config("train", [*TINY, "data.input_size=[96,96]", "data.heatmap_size=[24,24]", override])
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_the_shipped_configs_pass_the_checks():
    """Every experiment of configs/experiment and the default configs pass (README/REPRODUCE commands)."""
    experiments = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))
    assert "demo" in experiments
    for name in experiments:
        validate_train_config(compose_config("train", [f"experiment={name}", "data.root=/d", "run_name=x"]))
    validate_evaluate_config(compose_config("evaluate", ["data=mpii", "data.root=/d", "checkpoint=x.pt"]))


def test_a_missing_mandatory_value_names_the_key():
    with pytest.raises(ConfigError, match=r"data\.root is not set: pass data\.root="):
        compose_config("train", ["run_name=x"])


def _cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("module", "args", "words"),
    [
        ("boxpose.train", [*TINY, "trainer.batch_size=abc"], ["trainer.batch_size=abc", "integer"]),
        ("boxpose.train", [*TINY, "trainer.epochs=0"], ["trainer.epochs=0", "integer >= 1"]),
        ("boxpose.train", [*TINY, "data.input_size=[100,100]"], ["data.heatmap_size=[64,64]", "[25,25]"]),
        ("boxpose.evaluate", ["checkpoint=x.pt", "evaluate.flip_shift=-1"], ["evaluate.flip_shift=-1"]),
        ("boxpose.cli.info", ["num_joints=0"], ["num_joints=0", "integer >= 1"]),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(module, args, words, tmp_path):
    if module == "boxpose.train":
        args = [*args, f"output_dir={tmp_path / 'run'}"]
    result = _cli(module, args, cwd=tmp_path)  # Hydra's job log of boxpose-eval lands in the cwd
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in line, result.stderr[-2000:]
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing was started (Hydra's .hydra/ aside)


# ---------------------------------------------------------------------------------------------------
# case 6: third-party parsers' errors carry the file path and the entry


def _write_image(path: Path, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size, 3), 128, np.uint8))


def _mpii_entry(image: str, visible: int = 1) -> dict:
    return {"image": image, "center": [32.0, 32.0], "scale": 0.2,
            "joints": [[20.0 + j, 30.0] for j in range(16)], "joints_vis": [visible] * 16}  # fmt: skip


def _mpii_dataset(tmp_path: Path, entries: list[dict], train: bool = False, **kwargs) -> MPIIDataset:
    ann = tmp_path / "annot" / "train.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(entries))
    pipeline = make_pipeline("mpii", train=train, input_size=(64, 64))
    return MPIIDataset(ann, tmp_path / "images", pipeline, **kwargs)


def test_coco_annotation_file_that_is_a_json_list(tmp_path):
    ann = tmp_path / "person_keypoints_val2017.json"
    ann.write_text(json.dumps([{"id": 1}]))
    (tmp_path / "val2017").mkdir()
    with pytest.raises(AnnotationError, match=r"expected a COCO annotation file.*got a JSON list") as info:
        COCODataset(ann, tmp_path / "val2017", make_pipeline("coco"))
    assert str(ann) in str(info.value)
    with pytest.raises(ValueError, match="not a COCO annotation file") as info:  # the evaluation's reader
        evaluate_keypoints(ann, [{"image_id": 1, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}])
    assert str(ann) in str(info.value)


def test_coco_keypoints_that_are_not_numbers_name_the_annotation(realdata, tmp_path):
    source = realdata / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(source.read_text())
    bad = next(a for a in data["annotations"] if not a["iscrowd"])
    bad["keypoints"][5] = "a"
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(data))
    bad_id = bad["id"]
    with pytest.raises(AnnotationError, match=rf"annotation id {bad_id} .*keypoints must be numbers") as info:
        COCODataset(
            ann,
            realdata / "coco-mini" / "val2017",
            make_pipeline("coco", input_size=(64, 64), heatmap_size=(16, 16)),
        )
    assert str(ann) in str(info.value)


def test_mpii_joint_given_as_strings_names_file_and_entry(tmp_path):
    _write_image(tmp_path / "images" / "a.jpg")
    entries = [_mpii_entry("a.jpg"), _mpii_entry("a.jpg")]
    entries[1]["joints"][4] = ["a", "b"]
    with pytest.raises(AnnotationError, match=r"train\.json entry 1 \(a\.jpg\) joints must be numbers"):
        _mpii_dataset(tmp_path, entries)


# ---------------------------------------------------------------------------------------------------
# case 8: image failures counted per image; a training set without any visible joint


def test_image_read_error_counts_images_not_persons(tmp_path):
    _write_image(tmp_path / "images" / "good.jpg")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    entries = [_mpii_entry("good.jpg"), _mpii_entry("broken.jpg"), _mpii_entry("broken.jpg"),
               _mpii_entry("good.jpg")]  # fmt: skip
    dataset = _mpii_dataset(tmp_path, entries, max_failure_fraction=0.25)
    with pytest.warns(RuntimeWarning, match="broken.jpg"), pytest.raises(ImageReadError) as info:
        dataset[1]
    assert "1 of 2 images" in str(info.value) and "data.max_failure_fraction=0.25" in str(info.value)
    assert dataset.failed_records() == [1, 2]  # both persons of the broken image


def test_a_tolerated_unreadable_image_is_replaced_in_training(tmp_path):
    _write_image(tmp_path / "images" / "good.jpg")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"")
    dataset = _mpii_dataset(tmp_path, [_mpii_entry("broken.jpg"), _mpii_entry("good.jpg")],
                            max_failure_fraction=0.5)  # fmt: skip
    with pytest.warns(RuntimeWarning, match=r"broken\.jpg.*1 of 2 images"):
        sample = dataset[0]
    assert sample["meta"]["index"] == 1 and dataset.num_failed_images == 1


def test_training_persons_without_any_visible_joint(tmp_path):
    _write_image(tmp_path / "images" / "a.jpg")
    with pytest.raises(AnnotationError, match="none of the 2 training persons has a visible joint"):
        _mpii_dataset(tmp_path, [_mpii_entry("a.jpg", visible=0)] * 2, train=True)
    _mpii_dataset(tmp_path, [_mpii_entry("a.jpg", visible=0)] * 2, train=False)  # fine for predictions


# ---------------------------------------------------------------------------------------------------
# case 8: the temporary file a kill during a checkpoint write leaves behind


def test_stale_checkpoint_temporaries_are_removed_by_the_next_save(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)  # fmt: skip
    dead_pid = int(finished.stdout)
    stale = tmp_path / f".last.pt.tmp-{dead_pid}"
    stale.write_bytes(b"half a checkpoint")
    alive = tmp_path / ".best.pt.tmp-1"  # pid 1 runs: another writer's file is left alone
    alive.write_bytes(b"being written")
    save_checkpoint(tmp_path / "last.pt", {"model": {}})
    assert not stale.exists() and alive.exists() and (tmp_path / "last.pt").is_file()
