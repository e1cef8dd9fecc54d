"""The synthetic pose data: deterministic, in the real formats, read by the real loaders, drawn where
annotated, with the left/right design holding, regenerated only when its parameters change."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from boxpose.builders import build_dataset
from boxpose.data import (
    COCODataset,
    MPIIDataset,
    SyntheticParams,
    ensure_synthetic,
)
from boxpose.data import synthetic as synth
from boxpose.data.synthetic import write as synth_write
from boxpose.evaluation.mpii import load_mpii_gt
from tests.pipelines import make_pipeline

SMALL = {"num_train": 6, "num_val": 4, "image_size": [128, 112], "workers": 1}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory) -> Path:
    return ensure_synthetic(
        "mpii", tmp_path_factory.mktemp("s") / "mpii", {**SMALL, "num_test": 2}, progress=False
    )


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    params = {**SMALL, "people_per_image": [2, 4], "truncation": 0.25, "num_test": 2, "noise": 0.0}
    return ensure_synthetic("coco", tmp_path_factory.mktemp("s") / "coco", params, progress=False)


def test_same_seed_gives_identical_files_whatever_the_workers(tmp_path, mpii_root, coco_root):
    again = ensure_synthetic("mpii", tmp_path / "a", {**SMALL, "num_test": 2, "workers": 2}, progress=False)
    assert _files(again) == _files(mpii_root)
    other_seed = ensure_synthetic("mpii", tmp_path / "b", {**SMALL, "num_test": 2, "seed": 1}, progress=False)
    assert _files(other_seed)["annot/train.json"] != _files(mpii_root)["annot/train.json"]
    params = {
        **SMALL,
        "people_per_image": [2, 4],
        "truncation": 0.25,
        "num_test": 2,
        "noise": 0.0,
        "workers": 2,
    }
    assert _files(ensure_synthetic("coco", tmp_path / "c", params, progress=False)) == _files(coco_root)


def test_mpii_files_are_read_by_the_mpii_loader(mpii_root):
    names = {p.name for p in (mpii_root / "annot").iterdir()}
    assert names == {"train.json", "valid.json", "test.json", "gt_valid.mat"}
    assert len(list((mpii_root / "images").glob("*.jpg"))) == 12
    train = MPIIDataset(
        mpii_root / "annot" / "train.json", mpii_root / "images", make_pipeline("mpii", train=True)
    )
    val = MPIIDataset(
        mpii_root / "annot" / "valid.json",
        mpii_root / "images",
        make_pipeline("mpii"),
        gt_mat=mpii_root / "annot" / "gt_valid.mat",
    )
    test = MPIIDataset(mpii_root / "annot" / "test.json", mpii_root / "images", make_pipeline("mpii"))
    assert len(train) >= 6 and len(val) == load_mpii_gt(mpii_root / "annot" / "gt_valid.mat").num_people >= 4
    assert len(test) >= 2 and not test.has_joints
    entries = json.loads((mpii_root / "annot" / "valid.json").read_text())
    for e in entries:  # missing joints are [-1, -1] with joints_vis 0, others inside the image (1-based)
        for (x, y), v in zip(e["joints"], e["joints_vis"]):
            assert (v == 0 and [x, y] == [-1, -1]) or (v == 1 and 1 <= x <= 128 and 1 <= y <= 112)
    assert val.gt.head_sizes().min() > 3
    sample = val[0]
    assert sample["image"].shape == (3, 256, 256) and sample["target_weight"].sum() > 0


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools + NumPy 2
def test_coco_files_are_read_by_pycocotools_and_the_coco_loader(coco_root):
    ann = coco_root / "annotations" / "person_keypoints_val2017.json"
    coco = COCO(str(ann))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) >= 8
    for a in coco.loadAnns(coco.getAnnIds()):
        kp = np.array(a["keypoints"]).reshape(17, 3)
        assert a["num_keypoints"] == (kp[:, 2] > 0).sum() and a["area"] > 0 and a["iscrowd"] == 0
        assert coco.annToMask(a).sum() > 0  # the segmentation decodes
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 112
    val = COCODataset(ann, coco_root / "val2017", make_pipeline("coco"))
    assert len(val) == sum(1 for a in coco.loadAnns(coco.getAnnIds()) if a["num_keypoints"] > 0)
    dets = coco_root / "person_detection_results" / "synthetic_val2017_detections.json"
    assert len(COCODataset(ann, coco_root / "val2017", make_pipeline("coco"), det_file=dets)) >= len(
        coco.getAnnIds()
    )
    test = COCODataset(
        coco_root / "annotations" / "image_info_test-dev2017.json",
        coco_root / "test2017",
        make_pipeline("coco"),
        det_file=coco_root / "person_detection_results" / "synthetic_test-dev2017_detections.json",
    )
    assert len(test) >= 2
    vis = np.concatenate(
        [np.array(a["keypoints"]).reshape(17, 3)[:, 2] for a in coco.loadAnns(coco.getAnnIds())]
    )
    assert set(np.unique(vis)) <= {0, 1, 2} and (vis == 2).sum() > 0


def test_visible_keypoints_are_drawn_on_the_figure(coco_root):
    """Re-render the val images: at every keypoint the files call visible (v = 2) the image differs from the
    background, i.e. a figure was drawn there; and the JPEG on disk is that rendering."""
    params = SyntheticParams.from_mapping(json.loads((coco_root / "synthetic.json").read_text())["params"])
    coco = json.loads((coco_root / "annotations" / "person_keypoints_val2017.json").read_text())
    drawn, total = 0, 0
    for i, image in enumerate(coco["images"]):
        scene = synth.render_scene(np.random.default_rng([params.seed, synth.SPLIT_CODES["val"], i]), params)
        jpeg = cv2.imread(str(coco_root / "val2017" / image["file_name"]))
        assert np.abs(jpeg.astype(int) - scene.image).mean() < 8  # JPEG loss; another image differs by ~60
        diff = np.abs(scene.image.astype(int) - scene.background).max(axis=2)
        for a in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            for x, y, v in np.array(a["keypoints"]).reshape(17, 3):
                if v == 2:
                    total += 1
                    drawn += diff[round(y), round(x)] > 25
    assert total > 100 and drawn / total >= 0.95  # ~99% here; annotations shifted by 6 px give 50-80%


def test_left_right_layout_follows_the_facing_direction():
    """The design: facing the camera, the person's left is on the image's right (relative to the body's
    up direction); facing away, on the left. Only the facing cues at the body's centre tell which."""
    params = SyntheticParams()
    fronts = 0
    for i in range(200):
        rng = np.random.default_rng(i)
        p = synth.make_person(rng, params, 200.0, 1)
        up = p.joints[synth.J["thorax"]] - p.joints[synth.J["pelvis"]]
        right = np.array([-up[1], up[0]])  # the image's right for an upright body (y points down)
        for a, b in (("l_shoulder", "r_shoulder"), ("l_hip", "r_hip")):
            side = np.dot(p.joints[synth.J[a]] - p.joints[synth.J[b]], right)
            assert (side > 0) == p.facing_front
        assert (p.axes["torso_fwd"][2] > 0) == p.facing_front  # the chest (emblem) faces the camera
        assert (p.axes["face_fwd"][2] > 0) == p.facing_front  # the face is visible
        fronts += p.facing_front
    assert 70 < fronts < 130  # 50/50


def test_regenerated_only_when_parameters_change(tmp_path, monkeypatch):
    calls = []
    real = synth_write.generate_synthetic

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_write, "generate_synthetic", counting)
    root = tmp_path / "mpii"
    ensure_synthetic("mpii", root, SMALL, progress=False)
    ensure_synthetic("mpii", root, {**SMALL, "workers": 2}, progress=False)  # workers: same data
    assert len(calls) == 1
    marker = json.loads((root / "synthetic.json").read_text())
    assert marker["params"]["num_train"] == 6 and marker["generator_version"] == synth.GENERATOR_VERSION
    ensure_synthetic("mpii", root, {**SMALL, "num_train": 3}, progress=False)
    assert len(calls) == 2
    assert len({e["image"] for e in json.loads((root / "annot" / "train.json").read_text())}) == 3
    assert len(list((root / "images").glob("*.jpg"))) == 7  # old images are gone
    # A folder that is not ours is never overwritten.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="refusing"):
        ensure_synthetic("mpii", tmp_path / "mine", SMALL, progress=False)
    with pytest.raises(ValueError, match=r"unknown synthetic data parameters \['colour'\]"):
        ensure_synthetic("mpii", root, {"colour": 1}, progress=False)


def test_build_dataset_generates_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = "data/synthetic/mpii"
    cfg = {
        "name": "mpii", "spec": "mpii", "root": root, "train_ann": f"{root}/annot/train.json",
        "val_ann": f"{root}/annot/valid.json", "test_ann": f"{root}/annot/test.json",
        "image_dir": f"{root}/images", "gt_mat": f"{root}/annot/gt_valid.mat",
        "input_size": [128, 128], "heatmap_size": [32, 32], "sigma": 2.0, "augment": {},
        "synthetic": {**SMALL},
    }  # fmt: skip
    val = build_dataset(cfg, "val", train=False)
    assert (tmp_path / root / "synthetic.json").is_file() and val.gt is not None
    assert Path(val[0]["meta"]["image_file"]).is_absolute()
    train = build_dataset(cfg, "train", train=True)
    assert train[0]["target"].shape == (16, 32, 32)
