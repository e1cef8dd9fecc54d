"""Scoring a model on a dataset split: inference with flip test, then the dataset's real metric.

- MPII-style data (MPII, synthetic MPII): PCKh against the split's ``gt_valid.mat`` (Table 1 columns,
  Mean, Mean@0.1); the predictions are written as ``pred.mat`` (1-based, in the ground truth's order)
  so any tool can re-score them. On a split without ground truth (the MPII test set, whose labels are
  private) only ``pred.mat`` is written.
- COCO-style data (COCO, synthetic COCO): rescoring, OKS-NMS and ``COCOeval`` keypoint AP/AR on the
  annotation file; the results are written in the official format. For test-dev (an image-info file
  without annotations) the submission file is written instead of metrics.

Inference is sharded over processes when distributed; the predictions are gathered and scored on
rank 0, which returns the result (other ranks return ``None``).

Persons whose image cannot be read (tolerated up to ``data.max_failure_fraction``) are skipped: the
metric covers the readable persons only (MPII: those rows of the ground truth; COCO: the images that
could be read), a warning names every skipped file, and ``metrics.json`` records them under
``"skipped"``. In ``pred.mat`` their rows are NaN (the file keeps one row per ground-truth person).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from boxpose.codec.heatmap import HeatmapCodec
from boxpose.data.base import TopDownDataset
from boxpose.data.coco import COCODataset
from boxpose.data.loader import build_dataloader
from boxpose.data.mpii import MPIIDataset
from boxpose.engine import distributed
from boxpose.engine.inference import Predictions, run_inference
from boxpose.evaluation import coco as coco_eval
from boxpose.evaluation import mpii as mpii_eval

log = logging.getLogger("boxpose")

MPII_COLUMNS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1")
COCO_COLUMNS = ("AP", "AP50", "AP75", "APM", "APL", "AR")


@dataclass
class EvaluationResult:
    """What an evaluation produced.

    Attributes:
        metrics: metric name -> value (empty where the split has no ground truth).
        main_metric: the name of the model-selection metric ("Mean" = PCKh@0.5, or "AP").
        table: the paper-style table as text.
        files: output name -> path of what was written (predictions, submission).
        per_joint: joint name -> value (PCKh per joint) where available.
        predictions: the raw predictions.
        skipped_files: the image files whose persons were skipped (unreadable).
        skipped_persons: how many persons were skipped.
    """

    metrics: dict[str, float]
    main_metric: str
    table: str
    files: dict[str, str] = field(default_factory=dict)
    per_joint: dict[str, float] = field(default_factory=dict)
    predictions: Predictions | None = None
    skipped_files: list[str] = field(default_factory=list)
    skipped_persons: int = 0

    @property
    def score(self) -> float | None:
        return self.metrics.get(self.main_metric)


class Evaluator:
    """Evaluate models on one dataset split.

    Args:
        dataset: an MPIIDataset or COCODataset built with ``train=False``.
        split: the split's name ("val", "test"), recorded in metrics.json.
        batch_size, workers: evaluation loader settings (per process).
        flip_test, flip_shift: see :mod:`boxpose.engine.inference`.
        decode_mode: "quarter" (the paper's), "dark" or "argmax".
        amp, channels_last: inference precision and memory format.
        nms, oks_thr, in_vis_thr: COCO rescoring and OKS-NMS (HRNet's settings by default).
        oracle: decode the encoded ground truth instead of running the network.
        progress: show a progress bar.
    """

    def __init__(
        self,
        dataset: TopDownDataset,
        *,
        split: str = "val",
        batch_size: int = 64,
        workers: int = 4,
        flip_test: bool = True,
        flip_shift: int = 1,
        decode_mode: str = "quarter",
        amp: str = "none",
        channels_last: bool = False,
        nms: str = "oks",
        oks_thr: float = 0.9,
        in_vis_thr: float = 0.2,
        oracle: bool = False,
        progress: bool = True,
    ) -> None:
        if not isinstance(dataset, MPIIDataset | COCODataset):
            raise TypeError(f"Evaluator needs an MPIIDataset or COCODataset, got {type(dataset).__name__}")
        if dataset.train:
            raise ValueError("Evaluator needs a dataset built with train=False (no augmentation)")
        self.dataset = dataset
        self.split = split
        self.kind = "mpii" if isinstance(dataset, MPIIDataset) else "coco"
        self.codec = HeatmapCodec(dataset.input_size, dataset.heatmap_size, decode_mode=decode_mode)
        self.flip_test = flip_test
        self.flip_shift = flip_shift
        self.amp = amp
        self.channels_last = channels_last
        self.nms = nms
        self.oks_thr = oks_thr
        self.in_vis_thr = in_vis_thr
        self.oracle = oracle
        self.progress = progress
        self.loader = build_dataloader(
            dataset, batch_size, train=False, workers=workers, pin_memory=torch.cuda.is_available(),
            persistent_workers=False, distributed=distributed.is_distributed(),
        )  # fmt: skip

    @property
    def main_metric(self) -> str:
        return "Mean" if self.kind == "mpii" else "AP"

    def evaluate(self, model: nn.Module, device: torch.device, output_dir: str | Path | None = None):
        """Run inference and score it; returns an :class:`EvaluationResult` on rank 0, None elsewhere."""
        predictions = run_inference(
            model, self.loader, self.codec, self.dataset.spec.flip_pairs, device=device,
            flip_test=self.flip_test, flip_shift=self.flip_shift, amp=self.amp,
            channels_last=self.channels_last, oracle=self.oracle,
            progress=self.progress and distributed.is_main_process(), description="evaluate",
        )  # fmt: skip
        gathered = distributed.all_gather_objects(predictions)
        failed = distributed.all_gather_objects(self.dataset.failed_records())
        if not distributed.is_main_process():
            return None
        predictions = Predictions.concatenate(gathered)
        skipped = sorted({i for part in failed for i in part})
        skipped_files = sorted({self.dataset.records[i].image_file for i in skipped})
        expected = len(self.dataset) - len(skipped)
        if len(predictions) != expected:
            raise RuntimeError(
                f"evaluation covered {len(predictions)} of {len(self.dataset)} persons, "
                f"{len(skipped)} of them skipped (unreadable images)"
            )
        if skipped:
            log.warning(
                "evaluation skipped %d of %d persons because %d image(s) could not be read: %s; the metric "
                "covers the other %d persons", len(skipped), len(self.dataset), len(skipped_files),
                ", ".join(skipped_files), expected,
            )  # fmt: skip
        output_dir = Path(output_dir) if output_dir is not None else None
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "mpii":
            result = self._score_mpii(predictions, output_dir)
        else:
            skipped_ids = {int(self.dataset.records[i].image_id) for i in skipped}
            result = self._score_coco(predictions, output_dir, skipped_ids)
        result.predictions = predictions
        result.skipped_files, result.skipped_persons = skipped_files, len(skipped)
        if skipped:
            result.table += (
                f"\n(skipped {len(skipped)} persons of {len(skipped_files)} unreadable image(s); "
                "see metrics.json)"
            )
        if output_dir is not None:
            (output_dir / "metrics.json").write_text(
                json.dumps({"metrics": result.metrics, "per_joint": result.per_joint, "files": result.files,
                            "main_metric": result.main_metric, "split": self.split, "dataset": self.kind,
                            "num_persons": len(predictions), "person_boxes": self._person_boxes(),
                            "skipped": {"persons": len(skipped), "images": len(skipped_files),
                                        "files": skipped_files},
                            "flip_test": self.flip_test,
                            "flip_shift": self.flip_shift, "decode": self.codec.decode_mode,
                            "oracle": self.oracle}, indent=2)
            )  # fmt: skip
            result.files["metrics"] = str(output_dir / "metrics.json")
        return result

    def _person_boxes(self) -> str:
        """Where the evaluated persons' crops come from, for metrics.json: COCO numbers on ground-truth
        boxes are higher than on detections and not comparable with the papers'."""
        if self.kind == "mpii":
            return "annotated centre and scale"
        det_file = getattr(self.dataset, "det_file", None)
        return f"detections {Path(det_file).name}" if det_file else "ground truth"

    def _score_mpii(self, predictions: Predictions, output_dir: Path | None) -> EvaluationResult:
        # (N, 16, 2), 1-based, in ground-truth order; NaN rows for skipped persons.
        rows = predictions.index  # each prediction's ground-truth row
        preds = np.full((self.dataset.num_records_total, self.dataset.spec.num_joints, 2), np.nan)
        preds[rows] = mpii_eval.to_mpii_convention(predictions.keypoints)
        files = {}
        if output_dir is not None:
            mpii_eval.save_pred_mat(output_dir / "pred.mat", preds)
            files["predictions"] = str(output_dir / "pred.mat")
        gt_mat = getattr(self.dataset, "gt_mat", None)
        if gt_mat is None:
            note = "no ground truth for this split (MPII test labels are private): predictions written only"
            return EvaluationResult({}, self.main_metric, note, files)
        gt = mpii_eval.load_mpii_gt(gt_mat)
        if len(rows) != gt.num_people:  # skipped persons: score the readable ones
            gt = mpii_eval.MPIIGroundTruth(
                gt.joints[rows], gt.missing[rows], gt.headboxes[rows], gt.joint_names
            )
        result = mpii_eval.compute_pckh(preds[rows], gt, threshold=0.5)
        metrics = {name: float(result[name]) for name in MPII_COLUMNS}
        per_joint = dict(result["per_joint"])
        return EvaluationResult(
            metrics, self.main_metric, mpii_eval.format_pckh_table(result), files, per_joint
        )

    def _score_coco(
        self, predictions: Predictions, output_dir: Path | None, skipped_image_ids: set[int] = frozenset()
    ) -> EvaluationResult:
        areas = predictions.scales[:, 0] * predictions.scales[:, 1]
        results = coco_eval.build_keypoint_results(
            predictions.image_ids, predictions.keypoints, predictions.box_scores, areas,
            nms=self.nms, oks_thr=self.oks_thr, in_vis_thr=self.in_vis_thr,
        )  # fmt: skip
        files = {}
        has_annotations = "annotations" in self.dataset.coco.dataset
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
            return EvaluationResult({}, self.main_metric, note, files)
        image_ids = None
        if skipped_image_ids:  # score the images that could be read
            image_ids = sorted(set(self.dataset.coco.getImgIds()) - set(skipped_image_ids))
        stats = coco_eval.evaluate_keypoints(self.dataset.ann_file, results, image_ids=image_ids)
        metrics = {name: float(v) for name, v in stats.items()}
        return EvaluationResult(metrics, self.main_metric, coco_eval.format_coco_table(stats), files)


def summarize(result: EvaluationResult) -> str:
    """One line: the main metric and the other table columns."""
    if not result.metrics:
        return result.table
    cols = MPII_COLUMNS if result.main_metric == "Mean" else COCO_COLUMNS
    return "  ".join(f"{c} {result.metrics[c]:.4g}" for c in cols if c in result.metrics)
