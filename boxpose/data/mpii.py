"""MPII Human Pose in the SimpleBaseline/HRNet layout, and its validation ground-truth ``.mat``.

Files (see data/README.md)::

    <root>/annot/train.json, valid.json, test.json   JSON list, one entry per person:
        image: "005808361.jpg"; center: [x, y]; scale: person height / 200 px;
        joints: 16 x [x, y] ([-1, -1] when not annotated); joints_vis: 16 x {0, 1} (1 = annotated).
        test.json has no joints / joints_vis. Coordinates are MATLAB 1-based.
    <root>/annot/gt_valid.mat   dataset_joints (1, 16) names, jnt_missing (16, N), pos_gt_src (16, 2, N),
                                headboxes_src (2, 2, N); 1-based; the same persons in the same order
                                as valid.json.
    <root>/images/*.jpg

Conversion on reading, applied alike to centre and joints (one convention, boxpose's 0-based pixel
centres; mmpose 1.x converts only the centre):

1. ``center_y += 15 * scale`` and ``scale *= 1.25`` (:data:`~boxpose.codec.affine.BOX_PADDING`; HRNet:
   "avoid cropping limbs"; skipped when ``center_x == -1``);
2. ``center -= 1``, ``joints -= 1`` (1-based -> 0-based);
3. scale in pixels: a square box of ``scale * 200`` pixels.

Joint order is MPII's native one (:data:`boxpose.keypoints.MPII`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from boxpose.codec.affine import BOX_PADDING
from boxpose.data.base import (
    README_HINT,
    AnnotationError,
    PersonRecord,
    TopDownDataset,
    as_numbers,
    check_finite,
    require_path,
)
from boxpose.data.pipeline import TopDownPipeline
from boxpose.data.registry import register_dataset
from boxpose.evaluation.mpii import load_mpii_gt
from boxpose.keypoints import MPII

PIXEL_STD = 200.0  # MPII's "scale" is the person height in units of 200 px
NUM_JOINTS = MPII.num_joints


def read_mpii_json(path: str | Path, require_joints: bool | None = None) -> list[dict]:
    """Read and validate an MPII annotation JSON (raw, 1-based values).

    Args:
        path: annot/{train,valid,test}.json.
        require_joints: entries must have joints and joints_vis (False for test.json); None: required
            if the first entry has them.

    Returns:
        list of dicts with keys image (str), center (2,) float64, scale (float), and, when present,
        joints (16, 2) float64 and joints_vis (16,) float64.

    Raises:
        AnnotationError naming the entry when a field is missing, has the wrong shape or is not finite.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of persons, got {type(data).__name__}")
    if require_joints is None:
        require_joints = bool(data) and isinstance(data[0], dict) and "joints" in data[0]
    entries = []
    for i, e in enumerate(data):
        where = f"{path} entry {i} ({e.get('image', '?') if isinstance(e, dict) else '?'})"
        if not isinstance(e, dict) or "image" not in e or "center" not in e or "scale" not in e:
            raise AnnotationError(f"{where}: expected a dict with image, center, scale")
        center = as_numbers(e["center"], f"{where} center")
        scale = as_numbers(e["scale"], f"{where} scale")
        if center.shape != (2,) or scale.size != 1:
            raise AnnotationError(
                f"{where}: center must have 2 numbers and scale 1, "
                f"got shapes {center.shape} and {scale.shape}"
            )
        check_finite(np.append(center, scale), f"{where} center/scale")
        if float(scale) <= 0:
            raise AnnotationError(f"{where}: scale must be positive, got {float(scale)}")
        entry = {"image": str(e["image"]), "center": center, "scale": float(scale)}
        has_joints = "joints" in e and "joints_vis" in e
        if require_joints and not has_joints:
            raise AnnotationError(f"{where}: missing joints / joints_vis")
        if has_joints:
            joints = as_numbers(e["joints"], f"{where} joints")
            vis = as_numbers(e["joints_vis"], f"{where} joints_vis")
            if joints.shape != (NUM_JOINTS, 2) or vis.shape != (NUM_JOINTS,):
                raise AnnotationError(
                    f"{where}: joints must be ({NUM_JOINTS}, 2) and joints_vis "
                    f"({NUM_JOINTS},), got {joints.shape} and {vis.shape}"
                )
            check_finite(joints, f"{where} joints")
            check_finite(vis, f"{where} joints_vis")
            entry["joints"], entry["joints_vis"] = joints, vis
        entries.append(entry)
    return entries


def mpii_center_scale(center: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MPII (1-based centre, scale in 200 px) -> boxpose (0-based centre (2,), scale (2,) in pixels)."""
    c = np.array(center, dtype=np.float64)
    s = float(scale)
    if c[0] != -1:
        c[1] += 15 * s
        s *= BOX_PADDING
    return c - 1.0, np.array([s, s]) * PIXEL_STD


def image_id_from_name(name: str, fallback: int) -> int:
    """MPII image ids are the numeric file names ("005808361.jpg" -> 5808361)."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else fallback


class MPIIDataset(TopDownDataset):
    """MPII persons from an HRNet-layout JSON file.

    Args:
        ann_file: annot/train.json, valid.json or test.json.
        image_dir: folder of the MPII images.
        pipeline: the top-down pipeline (codec, augmentation, colour order) for the MPII layout.
        gt_mat: optional annot/gt_valid.mat for the validation split; it is checked against the JSON
            (same persons, same order) and exposed as ``self.gt`` for the PCKh metric.
        fraction, fraction_seed, max_failure_fraction: see :class:`~boxpose.data.base.TopDownDataset`.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        pipeline: TopDownPipeline,
        *,
        gt_mat: str | Path | None = None,
        fraction: float = 1.0,
        fraction_seed: int = 0,
        max_failure_fraction: float = 0.01,
    ) -> None:
        self.ann_file = require_path(
            ann_file,
            "MPII annotation file",
            "an HRNet-style JSON list of persons (annot/train.json, valid.json, test.json)",
        )
        self.image_dir = require_path(
            image_dir, "MPII image folder", "the MPII JPEG images (images/*.jpg)", is_dir=True
        )
        # test.json has no joints; any file whose first entry has none is read like it.
        entries = read_mpii_json(self.ann_file)
        has_joints = bool(entries) and "joints" in entries[0]
        self.has_joints = has_joints
        records = []
        for i, e in enumerate(entries):
            center, scale = mpii_center_scale(e["center"], e["scale"])
            if has_joints:
                visible = (e["joints_vis"] > 0).astype(np.float32)
                joints = np.where(visible[:, None] > 0, e["joints"] - 1.0, 0.0)
            else:
                visible = np.zeros(NUM_JOINTS, dtype=np.float32)
                joints = np.zeros((NUM_JOINTS, 2))
            records.append(
                PersonRecord(
                    image_file=str(self.image_dir / e["image"]),
                    image_id=image_id_from_name(e["image"], i),
                    center=center,
                    scale=scale,
                    joints=joints,
                    visible=visible,
                    index=i,
                )
            )
        if not records:
            raise AnnotationError(f"{self.ann_file} contains no persons")
        first = Path(records[0].image_file)
        if not first.is_file():
            raise FileNotFoundError(
                f"MPII image {first.name} (first entry of {self.ann_file.name}) not found in "
                f"{self.image_dir}; is image_dir right? {README_HINT}"
            )

        self.gt_mat = None
        self.gt = None
        if gt_mat is not None:
            self.gt_mat = require_path(
                gt_mat,
                "MPII validation ground truth",
                "annot/gt_valid.mat with dataset_joints, jnt_missing, pos_gt_src, headboxes_src",
            )
            try:
                self.gt = load_mpii_gt(self.gt_mat)
            except ValueError as e:
                raise AnnotationError(str(e)) from None
            self._check_gt_matches(records)
        super().__init__(
            records,
            MPII,
            pipeline,
            fraction=fraction,
            fraction_seed=fraction_seed,
            max_failure_fraction=max_failure_fraction,
        )

    def _check_gt_matches(self, records: list[PersonRecord]) -> None:
        """The .mat and the JSON must list the same persons in the same order (PCKh pairs them by index)."""
        gt = self.gt
        if gt.num_people != len(records):
            raise AnnotationError(
                f"{self.gt_mat} has {gt.num_people} persons but {self.ann_file} has {len(records)}; "
                "the ground truth must list the persons of the annotation file, in order"
            )
        if not self.has_joints:
            return
        for r in records:
            vis = (r.visible > 0) & ~gt.missing[r.index]
            err = np.abs(r.joints[vis] - gt.joints_zero_based()[r.index][vis])
            if err.size and err.max() > 1.0:
                raise AnnotationError(
                    f"{self.gt_mat} person {r.index} does not match entry {r.index} of "
                    f"{self.ann_file} (joints differ by up to {err.max():.1f} px); "
                    "the two files must list the same persons in the same order"
                )


@register_dataset(
    "mpii", spec="mpii", metric="pckh",
    root_layout="annot/ (train.json, valid.json, test.json, gt_valid.mat) and images/",
)  # fmt: skip
def mpii_from_config(
    cfg: Mapping[str, Any], split: str, pipeline: TopDownPipeline, **subset: Any
) -> MPIIDataset:
    """The MPII dataset of ``split`` from the keys of ``configs/data/mpii.yaml``: ``<split>_ann``,
    ``image_dir``, and ``gt_mat`` for "val" (the PCKh ground truth)."""
    gt_mat = cfg.get("gt_mat") if split == "val" else None
    return MPIIDataset(cfg[f"{split}_ann"], cfg["image_dir"], pipeline, gt_mat=gt_mat, **subset)
