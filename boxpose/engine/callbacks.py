"""What the training loop reports to, and the logger that turns it into TensorBoard, figures and log lines.

The :class:`~boxpose.engine.trainer.Trainer` calls every callback it was given, on every process:

- ``on_fit_start(trainer)`` once before training (also when resuming),
- ``on_step_end(trainer, step)`` after each optimizer step, with a :class:`StepOutput`,
- ``on_epoch_end(trainer, record, result)`` after each epoch's (optional) validation and before its
  checkpoints are written: ``record`` is the entry appended to ``trainer.history`` (epoch, step, loss,
  accuracy, lr, images, and ``"val"`` metrics when validated), ``result`` the
  :class:`~boxpose.engine.metrics.EvaluationResult` or None,
- ``on_fit_end(trainer)`` once when training stops (finished, interrupted or failed).

Studies hook in the same way (e.g. ``scripts/overfit_study.py`` measures its accuracy curves in
``on_epoch_end``) instead of re-entering :meth:`~boxpose.engine.trainer.Trainer.fit`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from boxpose.codec.heatmap import HeatmapCodec
from boxpose.data.pipeline import denormalize_image
from boxpose.engine import distributed
from boxpose.engine.metrics import EvaluationResult
from boxpose.keypoints import KeypointSpec
from boxpose.nn import box_conv_layers
from boxpose.viz import draw

if TYPE_CHECKING:
    from boxpose.engine.trainer import Trainer

log = logging.getLogger("boxpose")


@dataclass
class StepOutput:
    """One optimizer step, as the loop hands it to the callbacks.

    Attributes:
        loss: the step's loss. lr: the learning rate used. images: samples in this process's batch.
        batch: the loader's batch (``"image"`` (N, 3, H, W) normalised, ``"joints"`` (N, K, 3) crop pixels).
        heatmaps: (N, K, h, w) the final predicted heatmaps, detached.
    """

    loss: float
    lr: float
    images: int
    batch: dict
    heatmaps: torch.Tensor


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer, step: StepOutput) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any], result: EvaluationResult | None) -> None:
        pass

    def on_fit_end(self, trainer: Trainer) -> None:
        pass


class TrainingLogger(Callback):
    """TensorBoard scalars, prediction panels, learned-box figures and the per-epoch log line (rank 0).

    Writes to ``<trainer.output_dir>/tensorboard`` and ``<trainer.output_dir>/figures``.

    Args:
        spec: keypoint layout (skeleton and colours of the panels).
        codec: the run's codec (decodes the panels' heatmaps).
        color_rgb: the input colour order (to show the crops in their true colours).
        log_every: steps between scalar logs (loss, lr, images/s, GPU memory).
        image_every: epochs between panels of input crops with predicted and target skeletons and
            heatmaps (0 = never).
        box_figure_every: epochs between figures of the first, middle and last box layers' boxes in their
            windows (paper, Fig. 4; 0 = never).
    """

    def __init__(
        self,
        spec: KeypointSpec,
        codec: HeatmapCodec,
        color_rgb: bool = True,
        log_every: int = 20,
        image_every: int = 1,
        box_figure_every: int = 5,
    ) -> None:
        self.spec = spec
        self.codec = codec
        self.color_rgb = color_rgb
        self.log_every = max(1, log_every)
        self.image_every = image_every
        self.box_figure_every = box_figure_every
        self._writer = None
        self._last_step: StepOutput | None = None
        self._window_start, self._window_images = time.perf_counter(), 0

    def on_fit_start(self, trainer: Trainer) -> None:
        if distributed.is_main_process():
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(trainer.output_dir / "tensorboard"))
        self._window_start, self._window_images = time.perf_counter(), 0

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._last_step = None

    def on_step_end(self, trainer: Trainer, step: StepOutput) -> None:
        self._last_step = step
        self._window_images += step.images
        if self._writer is None or trainer.step % self.log_every:
            return
        elapsed = time.perf_counter() - self._window_start
        rate = self._window_images * distributed.world_size() / max(elapsed, 1e-9)
        self.scalar("train/loss", step.loss, trainer.step)
        self.scalar("train/lr", step.lr, trainer.step)
        self.scalar("train/images_per_s", rate, trainer.step)
        if trainer.device.type == "cuda":
            self.scalar(
                "train/gpu_memory_gb", torch.cuda.max_memory_allocated(trainer.device) / 1e9, trainer.step
            )
        self._window_start, self._window_images = time.perf_counter(), 0

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any], result: EvaluationResult | None) -> None:
        if not distributed.is_main_process():
            return
        epoch, step = trainer.epoch, trainer.step
        if self._last_step is not None and self.image_every and epoch % self.image_every == 0:
            self.log_images(self._last_step, step)
        self.scalar("train/epoch_loss", record["loss"], step)
        self.scalar("train/accuracy", record["accuracy"], step)
        if result is not None:
            for name, value in result.metrics.items():
                self.scalar(f"val/{name}", value, step)
            for name, value in result.per_joint.items():
                self.scalar(f"val_joint/{name}", value, step)
        if self.box_figure_every and epoch % self.box_figure_every == 0:
            self.log_box_figures(trainer.plain_model, trainer.output_dir / "figures", epoch, step)
        line = (
            f"epoch {epoch}/{trainer.epochs}  loss {record['loss']:.3e}  "
            f"acc {record['accuracy']:.3f}  lr {record['lr']:.1e}"
        )
        if result is not None:
            line += f"  | val {result.summary()}"
        log.info(line)

    def scalar(self, tag: str, value: float | None, step: int) -> None:
        if self._writer is not None and value is not None and math.isfinite(value):
            self._writer.add_scalar(tag, value, step)

    def log_images(self, last: StepOutput, step: int, count: int = 8) -> None:
        """Input crops with predicted (left) and target (right) skeletons, and the predicted heatmaps."""
        if self._writer is None:
            return
        heatmaps = last.heatmaps[:count].float().cpu().numpy()
        coords, maxvals = self.codec.decode(heatmaps)
        tiles = []
        for i in range(heatmaps.shape[0]):
            image = denormalize_image(last.batch["image"][i], self.color_rgb)
            predicted = np.concatenate([coords[i] * self.codec.stride, maxvals[i][:, None]], axis=1)
            target = last.batch["joints"][i].numpy()
            left = draw.draw_skeleton(image, predicted, self.spec, score_threshold=0.2)
            right = draw.draw_skeleton(image, target, self.spec, score_threshold=0.5)
            overlay = draw.heatmap_overlay(image, heatmaps[i])
            tiles.append(np.concatenate([left, right, overlay], axis=1))
        grid = draw.tile_images(tiles, columns=2)
        self._writer.add_image("train/predicted_target_heatmap", draw.bgr_to_chw_rgb(grid), step)

    def log_box_figures(self, model: torch.nn.Module, figure_dir: Path, epoch: int, step: int) -> None:
        """The learned boxes of the first, middle and last box layers inside their windows (paper, Fig. 4)."""
        layers = box_conv_layers(model)
        if not layers:
            return
        chosen = dict([layers[0], layers[len(layers) // 2], layers[-1]])
        figure_dir.mkdir(parents=True, exist_ok=True)
        for name, layer in chosen.items():
            boxes = layer.boxes_in_pixels()[:32].numpy()
            figure = draw.put_title(
                draw.draw_boxes_in_windows(boxes, layer.max_size),
                f"{name} (k={layer.max_size}) epoch {epoch}",
            )
            if self._writer is not None:
                self._writer.add_image(f"boxes/{name}", draw.bgr_to_chw_rgb(figure), step)
            cv2.imwrite(str(figure_dir / f"boxes_{name.replace('.', '_')}_epoch{epoch:03d}.png"), figure)
