"""COCO loader on the real coco-mini sample: filtering counts, boxes, detections, paths, train_fraction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from boxpose.builders import build_dataset
from boxpose.codec.affine import get_affine_transform, transform_points
from boxpose.data import AnnotationError, COCODataset
from boxpose.data.coco import coco_image_dir
from tests.pipelines import make_pipeline


@pytest.fixture(scope="module")
def coco_root(realdata: Path) -> Path:
    return realdata / "coco-mini"


def _ann_file(root: Path, split: str) -> Path:
    return root / "annotations" / f"person_keypoints_{split}2017.json"


def _config(root: Path, **overrides) -> dict:
    cfg = {
        "name": "coco", "spec": "coco", "root": str(root),
        "train_ann": str(_ann_file(root, "train")), "val_ann": str(_ann_file(root, "val")),
        "test_ann": str(root / "annotations" / "image_info_test-dev2017.json"),
        "image_dir": None, "det_file": None, "test_det_file": None, "det_score_thr": 0.0,
        "input_size": [192, 256], "heatmap_size": [48, 64], "sigma": 2.0, "color_rgb": True,
        "train_fraction": 1.0, "train_fraction_seed": 0, "max_failure_fraction": 0.01,
        "augment": {"half_body_prob": 0.3, "rotation_factor": 45, "scale_factor": 0.35},
    }  # fmt: skip
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize("split", ["train", "val"])
def test_sample_counts_after_filtering(coco_root, split):
    raw = json.loads(_ann_file(coco_root, split).read_text())
    expected = [a for a in raw["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    assert len(raw["annotations"]) == {"train": 172, "val": 118}[split]
    assert len(expected) == {"train": 86, "val": 68}[split]
    ds = COCODataset(_ann_file(coco_root, split), coco_root / f"{split}2017", make_pipeline("coco"))
    assert len(ds) == len(expected)
    assert sorted((r.image_id, tuple(np.round(r.joints[0], 3))) for r in ds.records) == sorted(
        (a["image_id"], tuple(np.round(np.array(a["keypoints"][:2]) * (a["keypoints"][2] > 0), 3)))
        for a in expected
    )
    # What the COCO evaluator needs.
    assert ds.ann_file == _ann_file(coco_root, split) and ds.image_ids == sorted(
        i["id"] for i in raw["images"]
    )


def test_boxes_visibility_and_crop(coco_root):
    raw = json.loads(_ann_file(coco_root, "val").read_text())
    ds = COCODataset(_ann_file(coco_root, "val"), coco_root / "val2017", make_pipeline("coco"))
    for r in ds.records:
        # Some annotation of the image has these joints, with visibility min(v, 1).
        candidates = [
            np.array(a["keypoints"], dtype=float).reshape(17, 3)
            for a in raw["annotations"]
            if a["image_id"] == r.image_id and not a["iscrowd"]
        ]
        assert any(
            np.array_equal(r.visible, np.minimum(kp[:, 2], 1))
            and np.allclose(r.joints[r.visible > 0], kp[kp[:, 2] > 0, :2])
            for kp in candidates
        )
        assert r.scale[0] / r.scale[1] == pytest.approx(192 / 256)  # aspect fixed to the input
    # Eval sample: the joints are the annotation pushed through the crop transform.
    s = ds[0]
    r = ds.records[0]
    m = get_affine_transform(r.center, r.scale, 0, (192, 256))
    vis = r.visible > 0
    np.testing.assert_allclose(s["joints"][vis, :2].numpy(), transform_points(r.joints[vis], m), atol=1e-3)
    np.testing.assert_array_equal(s["joints"][:, 2].numpy(), r.visible)


def test_box_cleaning_and_padding(tmp_path, coco_root):
    raw = json.loads(_ann_file(coco_root, "val").read_text())
    ann = next(a for a in raw["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0)
    img = next(i for i in raw["images"] if i["id"] == ann["image_id"])
    ann = dict(ann, bbox=[-10.0, 20.0, 100.0, 50.0])  # starts left of the image: shifted, not cut (HRNet)
    data = dict(raw, images=[img], annotations=[ann])
    path = tmp_path / "one.json"
    path.write_text(json.dumps(data))
    r = COCODataset(path, coco_root / "val2017", make_pipeline("coco")).records[0]
    # clean box [0, 20, 99, 49] -> centre (49.5, 44.5); widened to 3:4 -> (99, 132); x1.25.
    np.testing.assert_allclose(r.center, [49.5, 44.5])
    np.testing.assert_allclose(r.scale, [99 * 1.25, 132 * 1.25])


def _write_dets(path: Path, dets: list[dict]) -> Path:
    path.write_text(json.dumps(dets))
    return path


def test_detection_boxes(tmp_path, coco_root):
    ids = sorted(i["id"] for i in json.loads(_ann_file(coco_root, "val").read_text())["images"])
    dets = [
        {"image_id": ids[k % 5], "category_id": 1, "bbox": [10.0 + k, 20.0, 50.0, 120.0], "score": k / 10}
        for k in range(10)
    ]
    dets.append({"image_id": ids[0], "category_id": 2, "bbox": [1, 1, 5, 5], "score": 0.9})  # not a person
    det_file = _write_dets(tmp_path / "dets.json", dets)
    ds = COCODataset(
        _ann_file(coco_root, "val"),
        coco_root / "val2017",
        make_pipeline("coco"),
        det_file=det_file,
        det_score_thr=0.3,
    )
    assert len(ds) == 7  # scores 0.3 ... 0.9
    assert [r.score for r in ds.records] == pytest.approx([k / 10 for k in range(3, 10)])
    assert all(r.visible.sum() == 0 for r in ds.records)
    s = ds[0]
    assert s["meta"]["score"] == pytest.approx(0.3) and s["target_weight"].sum() == 0
    # Detections of images the annotation file does not know are dropped with a warning.
    dets.append({"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9})
    _write_dets(det_file, dets)
    with pytest.warns(RuntimeWarning, match="dropped 1 detections of images not in"):
        COCODataset(
            _ann_file(coco_root, "val"), coco_root / "val2017", make_pipeline("coco"), det_file=det_file
        )
    _write_dets(det_file, [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}])
    with pytest.raises(AnnotationError, match="do the detection and annotation files match"):
        COCODataset(
            _ann_file(coco_root, "val"), coco_root / "val2017", make_pipeline("coco"), det_file=det_file
        )
    _write_dets(det_file, [{"image_id": ids[0], "bbox": [1, 1, 5], "score": 0.9, "category_id": 1}])
    with pytest.raises(AnnotationError, match="entry 0: bbox must have 4 numbers"):
        COCODataset(
            _ann_file(coco_root, "val"), coco_root / "val2017", make_pipeline("coco"), det_file=det_file
        )


def test_test_dev_image_info_needs_detections(tmp_path, coco_root):
    raw = json.loads(_ann_file(coco_root, "val").read_text())
    info = tmp_path / "image_info_test-dev2017.json"
    info.write_text(json.dumps({"images": raw["images"], "categories": raw["categories"]}))
    with pytest.raises(AnnotationError, match=r"no annotations .* pass det_file"):
        COCODataset(info, coco_root / "val2017", make_pipeline("coco"))
    det = _write_dets(
        tmp_path / "d.json",
        [{"image_id": raw["images"][0]["id"], "category_id": 1, "bbox": [5, 5, 40, 80], "score": 0.8}],
    )
    assert len(COCODataset(info, coco_root / "val2017", make_pipeline("coco"), det_file=det)) == 1
    with pytest.raises(ValueError, match="test_det_file"):
        build_dataset(_config(coco_root, test_ann=str(info)), "test", train=False)


def test_bad_annotation_names_the_entry(tmp_path, coco_root):
    raw = json.loads(_ann_file(coco_root, "val").read_text())
    bad = next(a for a in raw["annotations"] if not a["iscrowd"])
    bad["keypoints"] = bad["keypoints"][:-3]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(
        AnnotationError, match=rf"annotation id {bad['id']} .*keypoints of 51 numbers, got 4 and 48"
    ):
        COCODataset(path, coco_root / "val2017", make_pipeline("coco"))
    bad["keypoints"] = [float("nan")] * 51
    path.write_text(json.dumps(raw))
    with pytest.raises(AnnotationError, match=rf"annotation id {bad['id']} .*keypoints has NaN"):
        COCODataset(path, coco_root / "val2017", make_pipeline("coco"))


def test_missing_paths(tmp_path, coco_root):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)COCO annotation file not found.*x\.json.*data/README\.md"
    ):
        COCODataset(tmp_path / "x.json", coco_root / "val2017", make_pipeline("coco"))
    with pytest.raises(FileNotFoundError, match=r"COCO image 0000\d+\.jpg .*is image_dir right"):
        COCODataset(
            _ann_file(coco_root, "val"), coco_root / "train2017", make_pipeline("coco")
        )  # wrong split's images
    with pytest.raises(FileNotFoundError, match="COCO dataset root not found"):
        build_dataset(_config(tmp_path / "nowhere"), "val", train=False)
    with pytest.raises(
        FileNotFoundError, match=r"COCO val images not found: neither .*val2017 nor .*images/val2017"
    ):
        coco_image_dir({"root": str(tmp_path)}, "val")
    with pytest.raises(FileNotFoundError, match="person detection file not found"):
        build_dataset(_config(coco_root, det_file=str(tmp_path / "dets.json")), "val", train=False)


def test_image_folder_layouts(tmp_path, coco_root):
    assert coco_image_dir({"root": str(coco_root)}, "val") == coco_root / "val2017"
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "val2017").symlink_to(coco_root / "val2017")
    assert coco_image_dir({"root": str(tmp_path)}, "val") == tmp_path / "images" / "val2017"
    assert (
        coco_image_dir({"root": "/elsewhere", "image_dir": str(tmp_path)}, "val")
        == tmp_path / "images" / "val2017"
    )
    shutil.copytree(coco_root / "annotations", tmp_path / "annotations")
    ds = build_dataset(
        _config(
            tmp_path, train_ann=str(_ann_file(tmp_path, "train")), val_ann=str(_ann_file(tmp_path, "val"))
        ),
        "val",
        train=False,
    )
    assert len(ds) == 68


def test_train_fraction_is_seeded_and_sized(coco_root):
    def indices(fraction, seed):
        ds = build_dataset(
            _config(coco_root, train_fraction=fraction, train_fraction_seed=seed), "train", True
        )
        return [r.index for r in ds.records]

    a, b = indices(0.25, 0), indices(0.25, 0)
    assert a == b and len(a) == round(0.25 * 86) == 22 and a == sorted(a)
    assert indices(0.25, 1) != a
    assert len(indices(1.0, 0)) == 86 and len(indices(0.001, 0)) == 1
    assert len(build_dataset(_config(coco_root, train_fraction=0.25), "val", False)) == 68  # train split only
    with pytest.raises(ValueError, match="train_fraction"):
        indices(0.0, 0)


def test_config_errors(coco_root):
    with pytest.raises(ValueError, match=r"data\.name"):
        build_dataset(_config(coco_root, name="lsp"), "val", False)
    with pytest.raises(ValueError, match="does not fit a coco dataset"):
        build_dataset(_config(coco_root, spec="mpii"), "val", False)
    with pytest.raises(ValueError, match="split"):
        build_dataset(_config(coco_root), "valid", False)
    with pytest.raises(ValueError, match=r"unknown data config keys \['train_fractoin'\]"):
        build_dataset(_config(coco_root, train_fractoin=0.5), "train", True)
    with pytest.raises(TypeError, match="rotation_factr"):
        build_dataset(_config(coco_root, augment={"rotation_factr": 10}), "train", True)


def test_training_samples_with_half_body(coco_root):
    import torch

    ds = build_dataset(_config(coco_root, augment={"half_body_prob": 1.0}), "train", True)
    torch.manual_seed(0)
    s = ds[0]
    assert s["image"].shape == (3, 256, 192) and s["target"].shape == (17, 64, 48)
    assert np.isfinite(s["image"].numpy()).all()
    assert s["meta"]["scale"][0] / s["meta"]["scale"][1] == pytest.approx(0.75, rel=1e-5)
