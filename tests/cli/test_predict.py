"""boxpose-predict with person detectors, boxes files, globs and videos (issues 16 and 13 case 4), on real
COCO images with a tiny untrained COCO pose checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from boxpose.cli.predict import predict
from boxpose.config import compose_config
from boxpose.data.coco import load_coco
from tests.detect.helpers import CentreBoxDetector, coco_mini_images, tiny_coco_checkpoint

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.detect.helpers:make_centre_box_detector"


def _strict_json(path: Path):
    def reject(constant):
        raise AssertionError(f"{path} holds {constant}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_coco_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_coco.pt")


@pytest.fixture
def folder(realdata, tmp_path) -> Path:
    """Three real COCO val2017 images with people."""
    folder = tmp_path / "in"
    folder.mkdir()
    for image in coco_mini_images(realdata, 3):
        shutil.copy(image, folder / image.name)
    return folder


def _config(checkpoint, source, output_dir, *overrides):
    base = [f"checkpoint={checkpoint}", f"input={source}", f"output_dir={output_dir}", "device=cpu"]
    return compose_config("predict", [*base, *overrides])


def test_detector_boxes_are_posed_drawn_and_written_as_coco_results(checkpoint, folder, realdata, tmp_path):
    detector = CentreBoxDetector()
    out = tmp_path / "out"
    summary = predict(_config(checkpoint, folder, out), detector=detector)
    names = sorted(p.name for p in folder.iterdir())
    assert detector.calls == [2, 1]  # batched over images (its batch_size is 2)
    assert summary["images"] == 3 and summary["persons"] == 6
    results = _strict_json(Path(summary["predictions"]))
    assert [r["image_id"] for r in results] == [int(Path(n).stem) for n in names for _ in range(2)]
    for r in results:
        assert r["category_id"] == 1 and len(r["keypoints"]) == 17 * 3
        confidences = np.asarray(r["keypoints"][2::3])
        above = confidences[confidences > 0.2]
        expected_score = r["box_score"] * (above.mean() if len(above) else 0.0)  # COCO evaluation's rescoring
        assert r["score"] == pytest.approx(expected_score, rel=1e-3)
        image = cv2.imread(str(folder / r["image_file"]))
        height, width = image.shape[:2]
        expected = (
            [width / 4, height / 4, width / 2, height / 2]
            if r["box_score"] == 0.9
            else [0, 0, width / 4, height]
        )
        np.testing.assert_allclose(r["bbox"], expected, atol=0.01)
    for name in names:
        drawn = cv2.imread(str(out / name))
        original = cv2.imread(str(folder / name))
        assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).sum() > 0
    coco = load_coco(realdata / "coco-mini/annotations/person_keypoints_val2017.json")
    loaded = coco.loadRes(str(summary["predictions"]))  # pycocotools reads it as keypoint results
    assert len(loaded.getAnnIds()) == 6


def test_a_torchvision_detector_with_random_weights_runs_end_to_end(checkpoint, folder, tmp_path):
    overrides = [
        "detector=ssdlite320_mobilenet_v3_large",
        "detector.weights=random",
        "detector.score_thr=0.0",
    ]
    summary = predict(_config(checkpoint, folder, tmp_path / "out", *overrides))
    assert summary["images"] == 3
    results = _strict_json(Path(summary["predictions"]))
    assert isinstance(results, list) and len(results) == summary["persons"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == sorted(
        p.name for p in folder.iterdir()
    )


def test_a_detector_factory_by_name_and_the_boxes_file_overriding_it(checkpoint, folder, tmp_path):
    summary = predict(_config(checkpoint, folder, tmp_path / "a", f"detector.name={FAKE}"))
    assert summary["persons"] == 6
    first = sorted(folder.iterdir())[0].name
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({first: [[10, 20, 100, 200, 0.7]]}))
    summary = predict(_config(checkpoint, folder, tmp_path / "b", f"detector.name={FAKE}", f"boxes={boxes}"))
    results = _strict_json(Path(summary["predictions"]))
    # the file's box for the first image; the others are not in the file: one person filling the image
    assert [r["bbox"] for r in results if r["image_file"] == first] == [[10, 20, 100, 200]]
    assert summary["persons"] == 3


BAD_BOXES = [
    ([float("nan"), 10, 50, 80], "not finite"),
    ([10, 10, 0, 80], "zero or negative"),
    ([10, 10, float("inf"), 80], "not finite"),
    ([10, 10, -50, 80], "zero or negative"),
    ([5000, 5000, 50, 80], "entirely outside"),
]


def test_bad_boxes_are_skipped_with_warnings_and_huge_ones_clipped(checkpoint, folder, tmp_path):
    first = sorted(folder.iterdir())[0]
    height, width = cv2.imread(str(first)).shape[:2]
    boxes = tmp_path / "boxes.json"
    # json.dumps writes NaN/Infinity, which Python's json reads back: the file a careless tool writes
    boxes.write_text(
        json.dumps({first.name: [b for b, _ in BAD_BOXES] + [[0, 0, 1e12, 1e12], [20, 30, 60, 90]]})
    )
    with pytest.warns(RuntimeWarning) as caught:
        summary = predict(_config(checkpoint, folder, tmp_path / "out", f"boxes={boxes}"))
    messages = [str(w.message) for w in caught if "person box" in str(w.message)]
    assert len(messages) == len(BAD_BOXES)
    for message, (_, words) in zip(messages, BAD_BOXES):
        assert message.startswith(f"{first.name}: person box [") and words in message
    results = _strict_json(Path(summary["predictions"]))
    bboxes = [r["bbox"] for r in results if r["image_file"] == first.name]
    assert bboxes == [[0, 0, width, height], [20, 30, 60, 90]]  # the huge box clipped to the image
    assert cv2.imread(str(tmp_path / "out" / first.name)).shape == (height, width, 3)


def test_same_name_different_suffix_and_globs_do_not_collide(checkpoint, realdata, tmp_path):
    source = coco_mini_images(realdata, 1)[0]
    image = cv2.imread(str(source))
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "b").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a" / "x.jpg"), image)
    cv2.imwrite(str(tmp_path / "in" / "a" / "x.png"), image[:, ::-1])
    cv2.imwrite(str(tmp_path / "in" / "b" / "x.jpg"), image[::-1])
    summary = predict(_config(checkpoint, tmp_path / "in" / "a", tmp_path / "out1"))
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["predictions.json", "x.jpg", "x.png"]
    results = _strict_json(Path(summary["predictions"]))
    assert sorted((r["image_file"], r["image_id"]) for r in results) == [("x.jpg", 0), ("x.png", 1)]

    summary = predict(_config(checkpoint, f"'{tmp_path}/in/**/x.*'", tmp_path / "out2"))
    written = sorted(p.relative_to(tmp_path / "out2").as_posix() for p in (tmp_path / "out2").rglob("x.*"))
    assert written == ["a/x.jpg", "a/x.png", "b/x.jpg"] and summary["images"] == 3


@pytest.mark.parametrize(
    ("source", "words"),
    [("missing.jpg", "input not found"), ("missing_dir/*.jpg", "no images"), ("empty", "no images")],
)
def test_a_missing_input_is_named_and_creates_no_output_folder(checkpoint, tmp_path, source, words):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match=words):
        predict(_config(checkpoint, f"'{tmp_path / source}'", out))
    assert not out.exists()


def test_writing_over_the_input_images_is_refused(checkpoint, folder):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match=f"output_dir={folder} would overwrite the input image"):
        predict(_config(checkpoint, folder, folder))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_cli_exit_status_for_a_missing_input(checkpoint, tmp_path):
    out = tmp_path / "out"
    args = [f"checkpoint={checkpoint}", f"input={tmp_path / 'missing.jpg'}", f"output_dir={out}"]
    command = [sys.executable, "-m", "boxpose.cli.predict", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 2 and f"input not found: {tmp_path / 'missing.jpg'}" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_video_round_trip_keeps_frame_count_and_rate(checkpoint, realdata, tmp_path):
    image = cv2.resize(cv2.imread(str(coco_mini_images(realdata, 1)[0])), (160, 120))
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 7, (160, 120))
    for shift in range(5):
        writer.write(np.roll(image, 8 * shift, axis=1))
    writer.release()
    summary = predict(_config(checkpoint, clip, tmp_path / "out", f"detector.name={FAKE}"))
    assert summary["images"] == 5 and summary["fps"] == 7 and summary["codec"] in ("H.264", "MJPG")
    assert Path(summary["video"]).name == (
        "clip_pose.mp4" if summary["codec"] == "H.264" else "clip_pose.avi"
    )
    capture = cv2.VideoCapture(summary["video"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and capture.get(cv2.CAP_PROP_FPS) == 7
    ok, frame = capture.read()
    assert ok and frame.shape == (120, 160, 3)
    results = _strict_json(Path(summary["predictions"]))
    assert [r["frame"] for r in results] == [f for f in range(5) for _ in range(2)]
    assert all(r["image_file"] == str(r["frame"]) for r in results)


def test_detector_config_group():
    cfg = compose_config("predict", ["checkpoint=c.pt", "input=x.jpg", "detector=fasterrcnn_resnet50_fpn_v2",
                                     "detector.score_thr=0.7"])  # fmt: skip
    assert cfg["detector"]["name"] == "fasterrcnn_resnet50_fpn_v2" and cfg["detector"]["score_thr"] == 0.7
    assert cfg["detector"]["weights"] == "default"
    assert compose_config("predict", ["checkpoint=c.pt", "input=x.jpg"])["detector"]["name"] is None


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ([float("nan"), 0, 10, 10], "is not finite or has a zero or negative size"),
        ([0, 0, -1, 10], "zero or negative"),
    ],
)
def test_predictor_api_rejects_a_bad_box_by_name(checkpoint, box, words):
    from boxpose.builders import build_predictor

    predictor = build_predictor(checkpoint)
    with pytest.raises(ValueError, match=words) as info:
        predictor.predict(np.zeros((64, 48, 3), np.uint8), np.array([box]))
    assert "person box [" in str(info.value)
