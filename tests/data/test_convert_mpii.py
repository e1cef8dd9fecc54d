"""scripts/convert_mpii.py on a small .mat written in the official RELEASE nested-struct layout."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from boxpose.data import MPIIDataset
from boxpose.evaluation.mpii import load_mpii_gt
from tests.pipelines import make_pipeline

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "convert_mpii.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_mpii", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _struct_array(records: list[dict], fields: list[str]) -> np.ndarray:
    """A 1 x N MATLAB struct array (what savemat writes for a structured object array)."""
    arr = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, r in enumerate(records):
        for f in fields:
            arr[0, i][f] = r.get(f, np.zeros((0, 0)))  # missing values are empty, as in the release
    return arr


def _person(seed: int, points: int = 16, head: bool = True, visible_as: str = "int") -> dict:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(50, 250, (16, 2)).round(1)
    ids = list(range(16))[:points]
    vis = {
        "int": lambda j: np.array([[j % 2]]),
        "str": lambda j: str(j % 2),
        "empty": lambda j: np.zeros((0, 0)),
    }
    point = _struct_array(
        [
            {
                "id": np.array([[j]]),
                "x": np.array([[xy[j, 0]]]),
                "y": np.array([[xy[j, 1]]]),
                "is_visible": vis[visible_as](j),
            }
            for j in ids
        ],
        ["id", "x", "y", "is_visible"],
    )
    rect = {
        "scale": np.array([[rng.uniform(1, 3)]]),
        "objpos": {"x": np.array([[rng.uniform(100, 200)]]), "y": np.array([[rng.uniform(100, 200)]])},
    }
    if points:
        rect["annopoints"] = {"point": point}
    if head:
        rect.update(
            {
                "x1": np.array([[10.0 + seed]]),
                "y1": np.array([[20.0]]),
                "x2": np.array([[40.0 + seed]]),
                "y2": np.array([[60.0]]),
            }
        )
    rect["_xy"] = xy[ids]
    return rect


RECT_FIELDS = ["x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"]


def _write_release(path: Path) -> dict:
    """Images: 1 train (2 people), 2 train (2 people; person 2 is a validation person), 3 train (1 person
    without points), 4 test (single-person 1 of 2), 5 train (1 person with 14 points, string is_visible)."""
    people = {
        1: [_person(1), _person(2, visible_as="empty")],
        2: [_person(3), _person(4)],
        3: [_person(5, points=0, head=False)],
        4: [_person(6, points=0, head=False), _person(7, points=0, head=False)],
        5: [_person(8, points=14, visible_as="str")],
    }
    annolist = _struct_array(
        [
            {
                "image": {"name": f"{i:09d}.jpg"},
                "annorect": _struct_array(
                    [{k: v for k, v in r.items() if not k.startswith("_")} for r in rects], RECT_FIELDS
                ),
                "frame_sec": np.array([[1]]),
                "vididx": np.array([[i]]),
            }
            for i, rects in people.items()
        ],
        ["image", "annorect", "frame_sec", "vididx"],
    )
    single = np.empty((5, 1), dtype=object)
    for i, v in enumerate(
        [np.array([[1], [2]]), np.array([[1]]), np.zeros((0, 0)), np.array([[1]]), np.array([[1]])]
    ):
        single[i, 0] = v
    release = {
        "annolist": annolist,
        "img_train": np.array([[1, 1, 1, 0, 1]]),
        "single_person": single,
        "version": "12",
    }
    scipy.io.savemat(path, {"RELEASE": release})
    return people


def test_convert_official_release(tmp_path):
    people = _write_release(tmp_path / "release.mat")
    # Tompson's split file: validation = image 2 person 2, then image 5 person 1 (in this order).
    scipy.io.savemat(
        tmp_path / "detections.mat",
        {"RELEASE_img_index": np.array([[2, 5]]), "RELEASE_person_index": np.array([[2, 1]])},
    )
    counts = _load_script().convert(tmp_path / "release.mat", tmp_path / "detections.mat", tmp_path / "annot")
    # Train: image 1's two people (image 2 holds a validation person, image 3's person has no points).
    assert counts == {"train": 2, "valid": 2, "test": 1}
    valid = json.loads((tmp_path / "annot" / "valid.json").read_text())
    train = json.loads((tmp_path / "annot" / "train.json").read_text())
    test = json.loads((tmp_path / "annot" / "test.json").read_text())
    assert [e["image"] for e in valid] == ["000000002.jpg", "000000005.jpg"]
    assert [e["image"] for e in train] == ["000000001.jpg", "000000001.jpg"]
    assert test == [
        {
            "image": "000000004.jpg",
            "center": [float(people[4][0]["objpos"]["x"][0, 0]), float(people[4][0]["objpos"]["y"][0, 0])],
            "scale": float(people[4][0]["scale"][0, 0]),
        }
    ]
    assert len(json.loads((tmp_path / "annot" / "trainval.json").read_text())) == 4
    # Coordinates are copied unchanged (1-based); unannotated joints are [-1, -1] with joints_vis 0.
    np.testing.assert_allclose(valid[0]["joints"], people[2][1]["_xy"])
    assert valid[1]["joints_vis"] == [1] * 14 + [0, 0] and valid[1]["joints"][15] == [-1, -1]
    assert valid[0]["center"] == [
        float(people[2][1]["objpos"]["x"][0, 0]),
        float(people[2][1]["objpos"]["y"][0, 0]),
    ]
    # gt_valid.mat: the same persons, in the same order, with head boxes.
    gt = load_mpii_gt(tmp_path / "annot" / "gt_valid.mat")
    np.testing.assert_allclose(gt.joints[0], people[2][1]["_xy"])  # 1-based, as in the official file
    np.testing.assert_array_equal(~gt.missing[1], [True] * 14 + [False] * 2)
    np.testing.assert_allclose(gt.headboxes[1], [[18, 20], [48, 60]])  # x1 = 10 + seed 8, 1-based
    # ... and the loader accepts the pair (it checks the .mat against the JSON).
    (tmp_path / "images").mkdir()
    for i in range(1, 6):
        cv2.imwrite(str(tmp_path / "images" / f"{i:09d}.jpg"), np.zeros((300, 300, 3), np.uint8))
    ds = MPIIDataset(
        tmp_path / "annot" / "valid.json",
        tmp_path / "images",
        make_pipeline("mpii"),
        gt_mat=tmp_path / "annot" / "gt_valid.mat",
    )
    assert len(ds) == 2
    # --test-all keeps every test person; a text split file works like Tompson's .mat.
    (tmp_path / "split.txt").write_text("# img person\n2 2\n5, 1\n")
    counts = _load_script().convert(
        tmp_path / "release.mat", tmp_path / "split.txt", tmp_path / "b", test_all=True
    )
    assert counts == {"train": 2, "valid": 2, "test": 2}
    assert (tmp_path / "b" / "valid.json").read_text() == (tmp_path / "annot" / "valid.json").read_text()


def test_split_errors(tmp_path):
    _write_release(tmp_path / "release.mat")
    (tmp_path / "split.txt").write_text("3 1\n")  # image 3's person has no annotated points
    with pytest.raises(ValueError, match=r"validation person \(3, 1\) .*not an annotated person"):
        _load_script().convert(tmp_path / "release.mat", tmp_path / "split.txt", tmp_path / "out")
    (tmp_path / "split.txt").write_text("3\n")
    with pytest.raises(ValueError, match="line 1: expected 'img_index person_index'"):
        _load_script().convert(tmp_path / "release.mat", tmp_path / "split.txt", tmp_path / "out")
    scipy.io.savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="no 'RELEASE' struct"):
        _load_script().convert(tmp_path / "other.mat", tmp_path / "split.txt", tmp_path / "out")


def test_cli_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "--mat" in out.stdout and "--split" in out.stdout and "Tompson" in out.stdout
