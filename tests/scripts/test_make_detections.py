"""scripts/make_detections.py on the real COCO samples, and its file through boxpose-eval (issue 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from boxpose.cli.evaluate import evaluate
from boxpose.config import compose_config
from tests.detect.helpers import coco_mini_images, tiny_coco_checkpoint
from tests.scripts.helpers import load_script

make_detections = load_script("make_detections")
FAKE = "tests.detect.helpers:make_centre_box_detector"
DETECTION_KEYS = {"image_id", "category_id", "bbox", "score", "file_name"}


@pytest.fixture(scope="module")
def coco(realdata) -> Path:
    return realdata / "coco-mini"


def _ground_truth_detections(ann_file: Path) -> list[dict]:
    """Every non-crowd annotated person's box as a detection of score 1."""
    annotations = json.loads(ann_file.read_text())["annotations"]
    return [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0}
        for a in annotations
        if not a["iscrowd"]
    ]


def test_fake_detector_on_a_coco_split_with_person_ap(coco, tmp_path, capsys):
    ann = coco / "annotations" / "person_keypoints_val2017.json"
    out = tmp_path / "dets.json"
    args = ["--images", str(coco / "val2017"), "--ann", str(ann), "--out", str(out), "--detector", FAKE]
    summary = make_detections.main([*args, "--no-progress"])
    detections = json.loads(out.read_text())
    image_ids = {image["id"] for image in json.loads(ann.read_text())["images"]}
    assert summary["images"] == len(image_ids) == 79 and len(detections) == 2 * 79
    assert all(set(d) == DETECTION_KEYS and d["category_id"] == 1 for d in detections)
    assert {d["image_id"] for d in detections} == image_ids
    assert all(d["file_name"] == f"{d['image_id']:012d}.jpg" for d in detections)
    # centre-of-image boxes hit few annotated persons: a low but valid AP
    assert 0.0 <= summary["bbox"]["AP"] < 0.5
    assert f"person box AP {100 * summary['bbox']['AP']:.1f}" in capsys.readouterr().out


def test_person_ap_of_the_ground_truth_boxes_is_one(coco):
    ann = coco / "annotations" / "person_keypoints_val2017.json"
    stats = make_detections.person_box_ap(ann, _ground_truth_detections(ann))
    assert stats["AP"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)


def test_random_torchvision_detector_on_any_folder(realdata, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in coco_mini_images(realdata, 3):
        shutil.copy(image, folder / image.name)
    out = tmp_path / "dets.json"
    summary = make_detections.main([
        "--images", str(folder), "--out", str(out), "--detector", "ssdlite320_mobilenet_v3_large",
        "--weights", "random", "--score-thr", "0.0", "--device", "cpu", "--no-progress",
    ])  # fmt: skip
    detections = json.loads(out.read_text())
    assert summary["images"] == 3 and summary["detections"] == len(detections) and "bbox" not in summary
    names = {p.name: int(p.stem) for p in folder.iterdir()}
    assert all(set(d) == DETECTION_KEYS and names[d["file_name"]] == d["image_id"] for d in detections)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"--images": "/nonexistent/val2017"}, "image folder not found: /nonexistent/val2017"),
        ({"--ann": "/nonexistent/ann.json"}, "annotation file not found: /nonexistent/ann.json"),
        ({"--detector": "yolo"}, "unknown detector 'yolo'"),
        (
            {"--detector": "ssdlite320_mobilenet_v3_large", "--weights": "/nonexistent/w.pth"},
            "detector weights not found: /nonexistent/w.pth",
        ),
    ],
)
def test_errors_are_one_named_line(coco, tmp_path, capsys, changes, words):
    args = {
        "--images": str(coco / "val2017"),
        "--out": str(tmp_path / "d.json"),
        "--detector": FAKE,
        **changes,
    }
    with pytest.raises(SystemExit) as info:
        make_detections.main([v for pair in args.items() for v in pair])
    assert info.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "d.json").exists()


def test_annotation_images_missing_from_the_folder_are_an_error(coco, tmp_path, capsys):
    (tmp_path / "val2017").mkdir()
    ann = coco / "annotations" / "person_keypoints_val2017.json"
    with pytest.raises(SystemExit):
        make_detections.main(["--images", str(tmp_path / "val2017"), "--ann", str(ann), "--out",
                              str(tmp_path / "d.json"), "--detector", FAKE])  # fmt: skip
    assert "79 of the 79 images of" in capsys.readouterr().err


def _eval_overrides(coco: Path, det_file: Path, output_dir: Path) -> list[str]:
    return [
        "data=coco", f"data.root={coco}", f"data.det_file={det_file}", "evaluate.workers=0",
        "device=cpu", f"output_dir={output_dir}",
    ]  # fmt: skip


def test_ground_truth_boxes_as_a_detection_file_score_high_in_oracle_mode(coco, tmp_path):
    det_file = tmp_path / "gt_dets.json"
    det_file.write_text(
        json.dumps(_ground_truth_detections(coco / "annotations/person_keypoints_val2017.json"))
    )
    summary = evaluate(
        compose_config("evaluate", [*_eval_overrides(coco, det_file, tmp_path), "evaluate.oracle=true"])
    )
    assert summary["oracle"] and summary["metrics"]["AP"] >= 0.9
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["person_boxes"] == "detections gt_dets.json"


def test_a_made_detection_file_evaluates_a_checkpoint_end_to_end(coco, tmp_path):
    det_file = tmp_path / "dets.json"
    ann = coco / "annotations" / "person_keypoints_val2017.json"
    make_detections.main(["--images", str(coco / "val2017"), "--ann", str(ann), "--out", str(det_file),
                          "--detector", FAKE, "--no-progress"])  # fmt: skip
    checkpoint = tiny_coco_checkpoint(tmp_path / "tiny.pt")
    overrides = [*_eval_overrides(coco, det_file, tmp_path / "eval"), f"checkpoint={checkpoint}",
                 "data.input_size=[48,64]", "data.heatmap_size=[12,16]"]  # fmt: skip
    summary = evaluate(compose_config("evaluate", overrides))
    results = json.loads(Path(summary["files"]["predictions"]).read_text())
    assert set(summary["metrics"]) >= {"AP", "AR"} and 0.0 <= summary["metrics"]["AP"] <= 1.0
    assert len(results) > 0 and {r["image_id"] for r in results} <= {
        d["image_id"] for d in json.loads(det_file.read_text())
    }
