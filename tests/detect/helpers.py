"""What the detection and prediction tests share: a tiny COCO pose checkpoint, a fake detector, and the
real COCO sample images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from boxpose.engine.checkpoint import save_checkpoint
from boxpose.models import build_model

REPO = Path(__file__).resolve().parents[2]
INPUT_SIZE, HEATMAP_SIZE = [48, 64], [12, 16]  # (width, height), COCO's 3:4 aspect, stride 4


def tiny_coco_checkpoint(path: Path) -> Path:
    """An untrained boxnet_tiny checkpoint for the 17 COCO joints at a 48 x 64 input (keypoints are
    meaningless; the tests check the plumbing around them)."""
    model_cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "model" / "boxnet_tiny.yaml"))
    options = {k: v for k, v in model_cfg.items() if k != "name"}
    model = build_model(model_cfg["name"], num_joints=17, **options)
    payload = {
        "model": model.state_dict(),
        "model_name": model_cfg["name"],
        "num_joints": 17,
        "input_size": INPUT_SIZE,
        "heatmap_size": HEATMAP_SIZE,
        "data_spec": "coco",
        "config": {"model": model_cfg, "data": {"spec": "coco", "color_rgb": True}},
    }
    return save_checkpoint(path, payload)


class CentreBoxDetector:
    """A fake detector: per image, the centre half of the image (score 0.9) and one box of its left
    quarter (score 0.6), in the documented (box, score) pair form."""

    batch_size = 2

    def __init__(self) -> None:
        self.calls: list[int] = []  # images per call

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[tuple[list[float], float]]]:
        self.calls.append(len(images))
        results = []
        for image in images:
            height, width = image.shape[:2]
            results.append([
                ([width / 4, height / 4, width / 2, height / 2], 0.9),
                ([0.0, 0.0, width / 4, height], 0.6),
            ])  # fmt: skip
        return results


def make_centre_box_detector(weights: str, score_thr: float, device: str) -> CentreBoxDetector:
    """The ``detector.name=tests.detect.helpers:make_centre_box_detector`` factory."""
    return CentreBoxDetector()


def coco_mini_images(realdata: Path, count: int) -> list[Path]:
    """The first ``count`` coco-mini val2017 images that have annotated persons."""
    annotations = json.loads((realdata / "coco-mini/annotations/person_keypoints_val2017.json").read_text())
    with_people = sorted({a["image_id"] for a in annotations["annotations"] if a["num_keypoints"] > 0})
    return [realdata / "coco-mini" / "val2017" / f"{i:012d}.jpg" for i in with_people[:count]]
