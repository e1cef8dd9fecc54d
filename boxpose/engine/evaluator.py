"""Scoring a model on a dataset split: inference with flip test, then the dataset's metric.

The metric (:mod:`boxpose.engine.metrics`: MPII PCKh, COCO keypoint AP, ...) is passed in; the
evaluator runs inference, gathers the predictions of every process, accounts for unreadable images and
writes ``metrics.json``.

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
from pathlib import Path

import torch
from torch import nn

from boxpose.data.base import TopDownDataset
from boxpose.data.loader import build_dataloader
from boxpose.engine import distributed
from boxpose.engine.inference import Predictions, run_inference
from boxpose.engine.metrics import Metric

log = logging.getLogger("boxpose")


class Evaluator:
    """Evaluate models on one dataset split.

    Args:
        dataset: a top-down dataset without augmentation (its pipeline built for evaluation); its codec,
            the run's, also decodes the predictions (``decode_mode``: "quarter" as the paper, "dark",
            "argmax").
        metric: scores the dataset's predictions (:mod:`boxpose.engine.metrics`).
        split: the split's name ("val", "test"), recorded in metrics.json.
        dataset_name: the dataset's registered name (``data.name``), recorded in metrics.json.
        batch_size, workers: evaluation loader settings (per process).
        flip_test, flip_shift: see :mod:`boxpose.engine.inference`.
        amp, channels_last: inference precision and memory format.
        oracle: decode the encoded ground truth instead of running the network.
        progress: show a progress bar.
    """

    def __init__(
        self,
        dataset: TopDownDataset,
        metric: Metric,
        *,
        split: str = "val",
        dataset_name: str = "",
        batch_size: int = 64,
        workers: int = 4,
        flip_test: bool = True,
        flip_shift: int = 1,
        amp: str = "none",
        channels_last: bool = False,
        oracle: bool = False,
        progress: bool = True,
    ) -> None:
        if not isinstance(dataset, TopDownDataset):
            raise TypeError(f"Evaluator needs a TopDownDataset, got {type(dataset).__name__}")
        if dataset.train:
            raise ValueError("Evaluator needs a dataset built with train=False (no augmentation)")
        self.dataset = dataset
        self.split = split
        self.dataset_name = dataset_name
        self.metric = metric
        self.codec = dataset.codec  # the run's codec; its decode_mode decodes the predictions
        self.flip_test = flip_test
        self.flip_shift = flip_shift
        self.amp = amp
        self.channels_last = channels_last
        self.oracle = oracle
        self.progress = progress
        self.loader = build_dataloader(
            dataset, batch_size, train=False, workers=workers, pin_memory=torch.cuda.is_available(),
            persistent_workers=False, distributed=distributed.is_distributed(),
        )  # fmt: skip

    @property
    def main_metric(self) -> str:
        return self.metric.main_metric

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
        result = self.metric.score(predictions, self.dataset, output_dir, skipped)
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
                            "main_metric": result.main_metric, "split": self.split,
                            "dataset": self.dataset_name, "metric": self.metric.name,
                            "num_persons": len(predictions),
                            "person_boxes": self.metric.person_boxes(self.dataset),
                            "skipped": {"persons": len(skipped), "images": len(skipped_files),
                                        "files": skipped_files},
                            "flip_test": self.flip_test,
                            "flip_shift": self.flip_shift, "decode": self.codec.decode_mode,
                            "oracle": self.oracle}, indent=2)
            )  # fmt: skip
            result.files["metrics"] = str(output_dir / "metrics.json")
        return result
