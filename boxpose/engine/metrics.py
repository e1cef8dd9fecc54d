"""The metric registry: how a dataset's predictions are scored, written and tabulated.

A metric turns the predictions of one split (:class:`~boxpose.engine.inference.Predictions`, in image
pixels) into an :class:`EvaluationResult`: its numbers, its table, and the files it writes. A dataset's
registration names its metric (:func:`boxpose.data.registry.register_dataset`); the
:class:`~boxpose.engine.evaluator.Evaluator` calls it without knowing which one it is.

- ``pckh`` (:class:`PCKhMetric`): MPII PCKh against the dataset's ``gt_valid.mat`` (Table 1's columns,
  Mean, Mean@0.1); the predictions are written as ``pred.mat`` (1-based, in the ground truth's order)
  so any tool can re-score them. On a split without ground truth (the MPII test set, whose labels are
  private) only ``pred.mat`` is written.
- ``coco_keypoints`` (:class:`COCOKeypointMetric`): rescoring, OKS-NMS and ``COCOeval`` keypoint AP/AR
  on the annotation file; the results are written in the official format. For test-dev (an image-info
  file without annotations) the submission file is written instead of metrics.

Adding a metric: a class with ``name``, ``main_metric``, ``columns``, ``options`` (the ``evaluate.*``
config keys its constructor takes), ``person_boxes(dataset)`` and ``score(...)``, and one
:func:`register_metric`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from boxpose.data.base import TopDownDataset
from boxpose.engine.inference import Predictions
from boxpose.evaluation import coco as coco_eval
from boxpose.evaluation import mpii as mpii_eval


@dataclass
class EvaluationResult:
    """What an evaluation produced.

    Attributes:
        metrics: metric name -> value (empty where the split has no ground truth).
        main_metric: the name of the model-selection metric ("Mean" = PCKh@0.5, or "AP").
        columns: the names of ``metrics`` a one-line summary shows, in table order.
        table: the paper-style table as text.
        files: output name -> path of what was written (predictions, submission).
        per_joint: joint name -> value (PCKh per joint) where available.
        predictions: the raw predictions.
        skipped_files: the image files whose persons were skipped (unreadable).
        skipped_persons: how many persons were skipped.
    """

    metrics: dict[str, float]
    main_metric: str
    columns: tuple[str, ...]
    table: str
    files: dict[str, str] = field(default_factory=dict)
    per_joint: dict[str, float] = field(default_factory=dict)
    predictions: Predictions | None = None
    skipped_files: list[str] = field(default_factory=list)
    skipped_persons: int = 0

    @property
    def score(self) -> float | None:
        return self.metrics.get(self.main_metric)

    def summary(self) -> str:
        """One line: the main metric and the other table columns (the table's note when there are none)."""
        if not self.metrics:
            return self.table
        return "  ".join(f"{c} {self.metrics[c]:.4g}" for c in self.columns if c in self.metrics)


class Metric(Protocol):
    """What the evaluator needs of a metric."""

    name: ClassVar[str]
    main_metric: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    options: ClassVar[tuple[str, ...]]

    def person_boxes(self, dataset: TopDownDataset) -> str: ...

    def score(
        self, predictions: Predictions, dataset: TopDownDataset, output_dir: Path | None, skipped: list[int]
    ) -> EvaluationResult: ...


METRICS: dict[str, type] = {}


def register_metric(cls: type) -> type:
    """Class decorator: register a metric under its ``name``."""
    if cls.name in METRICS:
        raise ValueError(f"metric {cls.name!r} is registered twice")
    METRICS[cls.name] = cls
    return cls


def build_metric(name: str, options: dict[str, Any]) -> Metric:
    """The metric ``name`` constructed with the entries of ``options`` (e.g. the ``evaluate`` config) that
    it declares in its ``options``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    cls = METRICS[name]
    return cls(**{key: options[key] for key in cls.options if key in options})


@register_metric
class PCKhMetric:
    """MPII PCKh@0.5 against the dataset's ground truth (``dataset.gt``, read once by the dataset)."""

    name = "pckh"
    main_metric = "Mean"
    columns = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1")
    options: tuple[str, ...] = ()

    def person_boxes(self, dataset: TopDownDataset) -> str:
        return "annotated centre and scale"

    def score(
        self, predictions: Predictions, dataset: TopDownDataset, output_dir: Path | None, skipped: list[int]
    ) -> EvaluationResult:
        # (N, K, 2), 1-based, in ground-truth order; NaN rows for skipped persons.
        rows = predictions.index  # each prediction's ground-truth row
        preds = np.full((dataset.num_records_total, dataset.spec.num_joints, 2), np.nan)
        preds[rows] = mpii_eval.to_mpii_convention(predictions.keypoints)
        files = {}
        if output_dir is not None:
            mpii_eval.save_pred_mat(output_dir / "pred.mat", preds)
            files["predictions"] = str(output_dir / "pred.mat")
        gt = getattr(dataset, "gt", None)
        if gt is None:
            note = "no ground truth for this split (MPII test labels are private): predictions written only"
            return EvaluationResult({}, self.main_metric, self.columns, note, files)
        if len(rows) != gt.num_people:  # skipped persons: score the readable ones
            gt = mpii_eval.MPIIGroundTruth(
                gt.joints[rows], gt.missing[rows], gt.headboxes[rows], gt.joint_names
            )
        result = mpii_eval.compute_pckh(preds[rows], gt, threshold=0.5)
        metrics = {name: float(result[name]) for name in self.columns}
        return EvaluationResult(
            metrics, self.main_metric, self.columns, mpii_eval.format_pckh_table(result), files,
            dict(result["per_joint"]),
        )  # fmt: skip


@register_metric
class COCOKeypointMetric:
    """COCO keypoint AP/AR (``COCOeval`` on the dataset's annotation file) after rescoring and OKS-NMS.

    Args:
        nms: "oks" (HRNet's) or "none". oks_thr: OKS-NMS threshold. in_vis_thr: joints above this
            confidence count in the rescoring (HRNet's settings by default).
    """

    name = "coco_keypoints"
    main_metric = "AP"
    columns = ("AP", "AP50", "AP75", "APM", "APL", "AR")
    options = ("nms", "oks_thr", "in_vis_thr")

    def __init__(self, nms: str = "oks", oks_thr: float = 0.9, in_vis_thr: float = 0.2) -> None:
        self.nms = str(nms)
        self.oks_thr = float(oks_thr)
        self.in_vis_thr = float(in_vis_thr)

    def person_boxes(self, dataset: TopDownDataset) -> str:
        """Where the persons' crops come from: COCO numbers on ground-truth boxes are higher than on
        detections and not comparable with the papers'."""
        det_file = getattr(dataset, "det_file", None)
        return f"detections {Path(det_file).name}" if det_file else "ground truth"

    def score(
        self, predictions: Predictions, dataset: TopDownDataset, output_dir: Path | None, skipped: list[int]
    ) -> EvaluationResult:
        areas = predictions.scales[:, 0] * predictions.scales[:, 1]
        results = coco_eval.build_keypoint_results(
            predictions.image_ids, predictions.keypoints, predictions.box_scores, areas,
            nms=self.nms, oks_thr=self.oks_thr, in_vis_thr=self.in_vis_thr,
        )  # fmt: skip
        files = {}
        has_annotations = "annotations" in dataset.coco.dataset
        if output_dir is not None:
            if has_annotations:
                path = output_dir / "keypoints_results.json"
                coco_eval.write_results(path, results)
                files["predictions"] = str(path)
            else:
                written = coco_eval.write_test_dev_submission(output_dir, results)
                files["submission"] = str(written)
        if not has_annotations:
            note = "test-dev: no annotations; submission written (see data/README.md for where to upload it)"
            return EvaluationResult({}, self.main_metric, self.columns, note, files)
        image_ids = None
        if skipped:  # score the images that could be read
            skipped_ids = {int(dataset.records[i].image_id) for i in skipped}
            image_ids = sorted(set(dataset.coco.getImgIds()) - skipped_ids)
        stats = coco_eval.evaluate_keypoints(dataset.ann_file, results, image_ids=image_ids)
        metrics = {name: float(v) for name, v in stats.items()}
        return EvaluationResult(
            metrics, self.main_metric, self.columns, coco_eval.format_coco_table(stats), files
        )
