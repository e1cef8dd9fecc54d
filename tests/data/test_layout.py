"""boxpose.data.layout is the one home of the standard file names: the shipped data configs name the same
files under ``${data.root}``, so a dataset the synthetic generator writes is found by the real configs."""

from __future__ import annotations

from pathlib import Path

import yaml

from boxpose.data.layout import COCO_ANNOTATION_FILES, MPII_ANNOTATION_FILES, MPII_GT_MAT, MPII_IMAGE_FOLDER

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def test_mpii_config_names_the_layout_files() -> None:
    cfg = _config("mpii")
    for split, path in MPII_ANNOTATION_FILES.items():
        assert cfg[f"{split}_ann"] == "${data.root}/" + path
    assert cfg["gt_mat"] == "${data.root}/" + MPII_GT_MAT
    assert cfg["image_dir"] == "${data.root}/" + MPII_IMAGE_FOLDER


def test_coco_config_names_the_layout_files() -> None:
    cfg = _config("coco")
    for split, path in COCO_ANNOTATION_FILES.items():
        assert cfg[f"{split}_ann"] == "${data.root}/" + path
