"""COCO person keypoints (2017) for top-down training and evaluation, as SimpleBaseline/HRNet.

Ground-truth persons (training, and evaluation with ground-truth boxes):

- ``getAnnIds(iscrowd=False)``: crowd annotations are dropped;
- HRNet's box cleaning: ``x1 = max(0, x)``, ``y1 = max(0, y)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``,
  ``y2 = min(H - 1, y1 + max(0, h - 1))`` (``x2`` from the *clipped* ``x1``, so a box starting left of
  the image is shifted, not cut); kept if ``area > 0`` and ``x2 >= x1`` and ``y2 >= y1``;
- non-person categories and persons whose keypoints are all zero are dropped;
- visibility ``v`` in {0, 1, 2} -> ``min(v, 1)`` (labelled occluded joints are trained on);
- box -> crop with :func:`boxpose.codec.affine.box_to_center_scale` (aspect ratio fixed to the input
  size's, 1.25 padding).

Detected persons (evaluation): a results file in the ``COCO_val2017_detections_AP_H_56_person.json``
format, a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``; persons
(category 1) with ``score >= det_score_thr`` are kept, in file order, no box cleaning, the score
carried as ``meta["score"]``. Where the annotation file has annotations, each detection carries the joints
of the annotated person it overlaps most (box IoU >= 0.5; none otherwise): the network never sees them,
but ``evaluate.oracle=true`` decodes them, which gives the codec's upper bound on these boxes.
Test-dev: an image-info file (``image_info_test-dev2017.json``, images only) with a detection file.

COCO keypoint coordinates are used as they are (0-based, pixel centres on integers), as HRNet does.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from boxpose.codec.affine import BOX_PADDING, box_to_center_scale
from boxpose.data.base import (
    README_HINT,
    AnnotationError,
    PersonRecord,
    TopDownDataset,
    as_numbers,
    check_finite,
    require_path,
)
from boxpose.data.layout import COCO_IMAGE_FOLDERS
from boxpose.data.pipeline import TopDownPipeline
from boxpose.data.registry import register_dataset
from boxpose.keypoints import COCO as COCO_SPEC

NUM_JOINTS = COCO_SPEC.num_joints
PERSON_CATEGORY = 1


def load_coco(ann_file: str | Path) -> COCO:
    """A pycocotools COCO object for ``ann_file``, without its progress prints. A file that is not a
    COCO annotation file (not JSON, not a JSON object, an entry of the wrong type) is an
    :class:`AnnotationError` naming the file and, where known, the entry."""
    try:
        data = json.loads(Path(ann_file).read_text())
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{ann_file} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise AnnotationError(
            f"{ann_file}: expected a COCO annotation file (a JSON object with images, annotations, "
            f"categories), got a JSON {type(data).__name__}"
        )
    for field in ("images", "annotations", "categories"):
        entries = data.get(field, [])
        if not isinstance(entries, list):
            raise AnnotationError(f"{ann_file}: '{field}' must be a list, got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry:
                raise AnnotationError(
                    f"{ann_file}: {field}[{i}] must be an object with an 'id', got {entry!r:.80}"
                )
            if field == "annotations" and "image_id" not in entry:
                raise AnnotationError(f"{ann_file}: annotations[{i}] (id {entry['id']}) has no 'image_id'")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco.createIndex()
        except (KeyError, TypeError, ValueError) as e:
            raise AnnotationError(
                f"{ann_file}: not a valid COCO annotation file ({type(e).__name__}: {e})"
            ) from None
    return coco


def clean_bbox(bbox: list[float], width: int, height: int) -> list[float] | None:
    """HRNet's box cleaning (see the module docstring); None if the box is degenerate."""
    x, y, w, h = bbox
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 >= x1 and y2 >= y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _best_overlap(
    box: np.ndarray, persons: list[tuple[np.ndarray, np.ndarray, np.ndarray]], min_iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Joints (K, 2) and visibility (K,) of the annotated person overlapping ``box`` most (IoU >= min_iou),
    or zeros (no visible joint)."""
    best, best_iou = None, min_iou
    for person in persons:
        iou = _box_iou(box, person[0])
        if iou >= best_iou:
            best, best_iou = person, iou
    if best is None:
        return np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS, np.float32)
    return best[1].copy(), best[2].copy()


def _image_file(image_dir: Path, info: dict) -> str:
    return str(image_dir / info.get("file_name", f"{info['id']:012d}.jpg"))


class COCODataset(TopDownDataset):
    """COCO persons, from ground-truth boxes or from a person-detection results file.

    Args:
        ann_file: ``person_keypoints_{train,val}2017.json``, or for test-dev the image-info file
            (``image_info_test-dev2017.json``, which requires ``det_file``).
        image_dir: folder of this split's images (e.g. ``<root>/val2017``).
        pipeline: the top-down pipeline (codec, augmentation, colour order) for the COCO layout; a
            detection's crop takes the aspect ratio of the codec's input size.
        det_file: person detections for evaluation; None = ground-truth boxes.
        det_score_thr: keep detections with ``score >= det_score_thr`` (HRNet's ``TEST.IMAGE_THRE``).
        fraction, fraction_seed, max_failure_fraction: see :class:`~boxpose.data.base.TopDownDataset`.

    Attributes (for the COCO evaluator):
        ann_file: the annotation file (the ground truth for ``COCOeval``).
        image_ids: sorted ids of all images of the annotation file.
        coco: the pycocotools ``COCO`` object.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        pipeline: TopDownPipeline,
        *,
        det_file: str | Path | None = None,
        det_score_thr: float = 0.0,
        fraction: float = 1.0,
        fraction_seed: int = 0,
        max_failure_fraction: float = 0.01,
    ) -> None:
        self.ann_file = require_path(
            ann_file,
            "COCO annotation file",
            "person_keypoints_<split>2017.json (or image_info_test-dev2017.json)",
        )
        self.image_dir = require_path(
            image_dir, "COCO image folder", "the split's JPEG images, e.g. val2017/", is_dir=True
        )
        self.coco = load_coco(self.ann_file)
        self.image_ids = sorted(self.coco.getImgIds())
        self.aspect_ratio = pipeline.aspect_ratio
        self.det_file = None
        if det_file is not None:
            self.det_file = require_path(
                det_file,
                "COCO person detection file",
                "a JSON list of {image_id, category_id, bbox, score}, e.g. "
                "COCO_val2017_detections_AP_H_56_person.json",
            )
            records = self._detection_records(det_score_thr)
        else:
            if "annotations" not in self.coco.dataset:
                raise AnnotationError(
                    f"{self.ann_file} has no annotations (an image-info file such as "
                    "test-dev's?); pass det_file with person detections for it"
                )
            records = self._ground_truth_records()
        if not records:
            raise AnnotationError(
                f"no persons left in {self.ann_file}"
                + (f" with detections {self.det_file}" if self.det_file else "")
            )
        first = Path(records[0].image_file)
        if not first.is_file():
            raise FileNotFoundError(
                f"COCO image {first.name} (image {records[0].image_id}) not found in "
                f"{self.image_dir}; is image_dir right? {README_HINT}"
            )
        super().__init__(
            records,
            COCO_SPEC,
            pipeline,
            fraction=fraction,
            fraction_seed=fraction_seed,
            max_failure_fraction=max_failure_fraction,
        )

    def _ground_truth_records(self) -> list[PersonRecord]:
        records: list[PersonRecord] = []
        for image_id in self.image_ids:
            info = self.coco.imgs[image_id]
            for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, iscrowd=False)):
                where = f"{self.ann_file} annotation id {ann.get('id', '?')} (image {image_id})"
                bbox = as_numbers(ann.get("bbox", []), f"{where} bbox")
                kpts = as_numbers(ann.get("keypoints", []), f"{where} keypoints")
                if bbox.shape != (4,) or kpts.shape != (3 * NUM_JOINTS,):
                    raise AnnotationError(
                        f"{where}: expected bbox of 4 and keypoints of {3 * NUM_JOINTS} "
                        f"numbers, got {bbox.size} and {kpts.size}"
                    )
                check_finite(bbox, f"{where} bbox")
                check_finite(kpts, f"{where} keypoints")
                box = clean_bbox(bbox.tolist(), info["width"], info["height"])
                if box is None or ann.get("area", 0) <= 0:
                    continue
                if ann.get("category_id") != PERSON_CATEGORY or kpts.max() == 0:
                    continue
                kpts = kpts.reshape(NUM_JOINTS, 3)
                visible = np.minimum(kpts[:, 2], 1).astype(np.float32)
                joints = np.where(visible[:, None] > 0, kpts[:, :2], 0.0)
                center, scale = box_to_center_scale(box, self.aspect_ratio, BOX_PADDING)
                records.append(
                    PersonRecord(
                        image_file=_image_file(self.image_dir, info),
                        image_id=int(image_id),
                        center=center,
                        scale=scale,
                        joints=joints,
                        visible=visible,
                        score=1.0,
                        index=len(records),
                    )
                )
        return records

    def _annotated_persons(self) -> dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """image id -> (box (4,), joints (K, 2), visible (K,)) of its non-crowd persons with keypoints."""
        persons: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for ann in self.coco.loadAnns(self.coco.getAnnIds(iscrowd=False)):
            kpts = np.asarray(ann.get("keypoints", []), dtype=np.float64)
            if (
                ann.get("category_id") != PERSON_CATEGORY
                or kpts.shape != (3 * NUM_JOINTS,)
                or kpts.max() == 0
            ):
                continue
            kpts = kpts.reshape(NUM_JOINTS, 3)
            visible = np.minimum(kpts[:, 2], 1).astype(np.float32)
            joints = np.where(visible[:, None] > 0, kpts[:, :2], 0.0)
            box = np.asarray(ann["bbox"], dtype=np.float64)
            persons.setdefault(ann["image_id"], []).append((box, joints, visible))
        return persons

    def _detection_records(self, score_thr: float) -> list[PersonRecord]:
        try:
            dets = json.loads(self.det_file.read_text())
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{self.det_file} is not valid JSON: {e}") from None
        if not isinstance(dets, list):
            raise AnnotationError(f"{self.det_file}: expected a JSON list of detections")
        records: list[PersonRecord] = []
        unknown = degenerate = 0
        annotated = self._annotated_persons() if "annotations" in self.coco.dataset else {}
        for i, det in enumerate(dets):
            where = f"{self.det_file} entry {i}"
            if not isinstance(det, dict) or not {"image_id", "category_id", "bbox", "score"} <= det.keys():
                raise AnnotationError(f"{where}: expected a dict with image_id, category_id, bbox, score")
            box = as_numbers(det["bbox"], f"{where} bbox")
            as_numbers(det["score"], f"{where} score")
            if box.shape != (4,):
                raise AnnotationError(f"{where}: bbox must have 4 numbers, got {box.size}")
            check_finite(np.append(box, det["score"]), f"{where} bbox/score")
            if det["category_id"] != PERSON_CATEGORY or det["score"] < score_thr:
                continue
            info = self.coco.imgs.get(det["image_id"])
            if info is None:
                unknown += 1
                continue
            if box[2] <= 0 or box[3] <= 0:
                degenerate += 1
                continue
            center, scale = box_to_center_scale(box, self.aspect_ratio, BOX_PADDING)
            joints, visible = _best_overlap(box, annotated.get(det["image_id"], []))
            records.append(
                PersonRecord(
                    image_file=_image_file(self.image_dir, info),
                    image_id=int(det["image_id"]),
                    center=center,
                    scale=scale,
                    joints=joints,
                    visible=visible,
                    score=float(det["score"]),
                    index=len(records),
                )
            )
        if unknown and not records:
            raise AnnotationError(
                f"none of the detections in {self.det_file} belongs to an image of "
                f"{self.ann_file}; do the detection and annotation files match?"
            )
        if unknown or degenerate:
            warnings.warn(
                f"{self.det_file}: dropped {unknown} detections of images not in {self.ann_file.name} "
                f"and {degenerate} with empty boxes",
                RuntimeWarning,
                stacklevel=3,
            )
        return records


@register_dataset(
    "coco", spec="coco", metric="coco_keypoints",
    root_layout="annotations/ and train2017/, val2017/, test2017/ (or images/<split>2017/)",
)  # fmt: skip
def coco_from_config(
    cfg: Mapping[str, Any], split: str, pipeline: TopDownPipeline, **subset: Any
) -> COCODataset:
    """The COCO dataset of ``split`` from the keys of ``configs/data/coco.yaml``: ``<split>_ann``, the
    images under ``image_dir`` (or ``root``), person boxes from ``det_file`` ("val"; None = ground truth)
    or ``test_det_file`` ("test", required), ``det_score_thr``."""
    det_file = {"train": None, "val": cfg.get("det_file"), "test": cfg.get("test_det_file")}[split]
    if split == "test" and det_file is None:
        raise ValueError(
            "COCO test-dev has no annotations: set data.test_det_file to a person detection file"
        )
    return COCODataset(
        cfg[f"{split}_ann"], coco_image_dir(cfg, split), pipeline, det_file=det_file,
        det_score_thr=float(cfg.get("det_score_thr", 0.0)), **subset,
    )  # fmt: skip


def coco_image_dir(cfg: Mapping[str, Any], split: str) -> Path:
    """The image folder of a COCO split: ``<image_dir>/<split>2017`` or ``<image_dir>/images/<split>2017``,
    where ``image_dir`` defaults to ``root``."""
    base = cfg.get("image_dir") or cfg.get("root")
    if base in (None, ""):
        raise FileNotFoundError(f"COCO images: set data.root or data.image_dir; {README_HINT}")
    folder = COCO_IMAGE_FOLDERS[split]
    candidates = [Path(base) / folder, Path(base) / "images" / folder]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"COCO {split} images not found: neither {candidates[0]} nor {candidates[1]} "
        f"is a folder. Expected the {folder} JPEGs there; {README_HINT}"
    )
