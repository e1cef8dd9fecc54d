"""The training loop.

One epoch: for each batch, forward (optionally under autocast), masked heatmap MSE, backward (with a
GradScaler for fp16), optional gradient clipping, optimizer step, then every ``BoxConv2d`` is projected
(clip to [-1, 1], keep lo <= hi) as the paper does. The quick training accuracy (PCK@0.5 on heatmaps)
is tracked every step; the real metric (PCKh or OKS AP) is computed every ``val_every`` epochs by the
evaluator, and the best checkpoint by that metric is kept.

Checkpoints (``last.pt`` after every epoch, ``best.pt``) hold everything needed to continue exactly:
model, optimizer, scaler, schedule, epoch, step, best metric, RNG states, the running loss sums of the
current epoch and the resolved config. With the epoch-seeded sampler and per-sample augmentation seeds
of :mod:`boxpose.data.loader`, a run stopped after epoch 3 and resumed produces the same weights at
epoch 5 as an uninterrupted run. ``last.pt`` is written as soon as an epoch's training ends, before its
validation (marked ``pending_validation``), so a validation that fails never loses the epoch: resuming
runs the pending validation first.

Resuming compares the checkpoint's config with the new one and refuses when a key that changes the
result differs (:data:`RESULT_KEYS`), unless the key is listed in ``allow_changes``
(``trainer.resume_allow_changes``).

Ctrl-C finishes the current step (or the running validation), saves ``last.pt`` (with the position
inside the epoch, so resuming continues from the next batch) and exits with status 130; a second Ctrl-C
aborts at once. A NaN or
infinite loss stops training with a message naming the step; the last good checkpoint is untouched.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from boxpose.engine import distributed
from boxpose.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    model_state_dict,
    restore_rng_state,
    save_checkpoint,
    unwrap_model,
)
from boxpose.engine.evaluator import EvaluationResult, Evaluator, summarize
from boxpose.engine.inference import autocast, final_heatmaps
from boxpose.engine.loss import joints_mse_loss
from boxpose.engine.optim import StepSchedule
from boxpose.evaluation.pck import heatmap_accuracy
from boxpose.nn import box_conv_layers, project_boxes_
from boxpose.viz import draw

log = logging.getLogger("boxpose")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training was stopped with Ctrl-C after saving a checkpoint."""


class ResumeConfigError(ValueError):
    """The configuration of a resumed run differs from the checkpoint's in a key that changes the result."""


# Config keys (and key prefixes) whose change changes what training computes; a resumed run must keep
# them unless they are named in ``allow_changes``. "world_size" is the number of processes.
RESULT_KEYS = (
    "seed", "data", "model", "optim", "schedule", "trainer.batch_size", "trainer.amp", "trainer.grad_clip",
    "trainer.max_steps_per_epoch", "trainer.sync_bn", "world_size",
)  # fmt: skip
# Exceptions inside RESULT_KEYS: schedule.epochs only sets trainer.epochs (extending a run is fine).
FREE_KEYS = ("schedule.epochs",)


def flatten_config(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1e-3}}`` -> ``{"optim.lr": 1e-3}`` (lists are values)."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every flattened key whose value differs: key -> (old value, new value); "<absent>" where missing."""
    a, b = flatten_config(old), flatten_config(new)
    return {
        key: (a.get(key, "<absent>"), b.get(key, "<absent>"))
        for key in sorted(a.keys() | b.keys())
        if a.get(key, "<absent>") != b.get(key, "<absent>")
    }


def _matches(key: str, names: tuple[str, ...] | list[str]) -> bool:
    return any(key == name or key.startswith(name + ".") for name in names)


def changes_that_matter(changes: dict[str, Any], allow_changes: list[str] | tuple[str, ...]) -> list[str]:
    """The changed keys that change the result of training and are not allowed explicitly."""
    return [
        key for key in changes
        if _matches(key, RESULT_KEYS) and not _matches(key, FREE_KEYS) and not _matches(key, allow_changes)
    ]  # fmt: skip


class Trainer:
    """Trains a pose model.

    Args:
        model: (N, 3, H, W) -> (N, K, h, w) heatmaps (or a list of them in training mode).
        optimizer: over the model's parameters. schedule: the learning-rate schedule.
        train_loader: yields the dataset's sample dicts; its sampler may provide
            ``set_epoch(epoch, start_batch)`` (the epoch-seeded sampler) for exact resume.
        device: where to train. output_dir: checkpoints, TensorBoard logs and figures go here.
        epochs: total epochs. evaluator: scores the model every ``val_every`` epochs (and after the last).
        amp: "none", "bf16" or "fp16" (with a GradScaler). channels_last, compile: speed options.
        grad_clip: max gradient norm, or None.
        sync_bn: convert BatchNorm to SyncBatchNorm when distributed on CUDA (ignored on the CPU, where
            PyTorch has no SyncBatchNorm).
        log_every: steps between TensorBoard scalar logs. image_every / box_figure_every: epochs
            between logged prediction images and learned-box figures (0 = never).
        max_steps_per_epoch: cut epochs short (quick experiments and tests).
        checkpoint_every: also keep ``epoch_<NNN>.pt`` every this many epochs (0 = only last/best),
            e.g. for the evolution of the learned boxes (scripts/plot_boxes.py, paper Fig. 4).
        config: the resolved configuration, stored in every checkpoint.
        model_info: model name, num_joints, input_size; stored in every checkpoint.
        progress: show tqdm progress bars.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: StepSchedule,
        train_loader: torch.utils.data.DataLoader,
        *,
        device: torch.device,
        output_dir: str | Path,
        epochs: int,
        evaluator: Evaluator | None = None,
        val_every: int = 1,
        amp: str = "none",
        channels_last: bool = False,
        compile: bool = False,
        grad_clip: float | None = None,
        sync_bn: bool = False,
        log_every: int = 20,
        image_every: int = 1,
        box_figure_every: int = 5,
        max_steps_per_epoch: int | None = None,
        checkpoint_every: int = 0,
        config: dict[str, Any] | None = None,
        model_info: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        self.device = device
        self.output_dir = Path(output_dir)
        self.epochs = epochs
        self.evaluator = evaluator
        self.val_every = max(1, val_every)
        self.amp = amp
        self.channels_last = channels_last
        self.grad_clip = grad_clip
        self.log_every = max(1, log_every)
        self.image_every = image_every
        self.box_figure_every = box_figure_every
        self.max_steps_per_epoch = max_steps_per_epoch
        self.checkpoint_every = checkpoint_every
        self.config = config or {}
        self.model_info = model_info or {}
        self.progress = progress
        self.optimizer = optimizer
        self.schedule = schedule
        self.train_loader = train_loader
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

        model = model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if distributed.is_distributed():
            # SyncBatchNorm runs on CUDA only; CPU processes (gloo) keep per-process statistics.
            if sync_bn and device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.model = torch.compile(model) if compile else model
        self.plain_model = unwrap_model(self.model)

        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.step_in_epoch = 0  # steps of the current epoch already taken (mid-epoch checkpoints)
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict[str, Any]] = []
        # Running sums of the current epoch (loss, accuracy), kept in mid-epoch checkpoints so that the
        # epoch's logged loss covers the whole epoch after a resume.
        self.epoch_sums = _empty_epoch_sums()
        # The training statistics of a finished epoch whose validation has not completed yet.
        self.pending_validation: dict[str, float] | None = None
        self._interrupted = False
        self._writer = None

    # ------------------------------------------------------------------------------------------------
    # checkpoints

    @property
    def metric_name(self) -> str:
        return self.evaluator.main_metric if self.evaluator is not None else ""

    def state(self) -> dict[str, Any]:
        return {
            "model": model_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metric_name": self.metric_name,
            "history": self.history,
            "epoch_sums": dict(self.epoch_sums),
            "pending_validation": self.pending_validation,
            "world_size": distributed.world_size(),
            "rng": capture_rng_state(),
            "config": self.config,
            **self.model_info,
        }

    def save(self, *names: str) -> None:
        """Write the current state to each of ``names`` in ``output_dir`` (the state is captured once)."""
        if not distributed.is_main_process():
            return
        state = self.state()
        for name in names:
            save_checkpoint(self.output_dir / name, state)

    def resume(
        self, path: str | Path, allow_changes: list[str] | tuple[str, ...] = ()
    ) -> dict[str, tuple[Any, Any]]:
        """Continue from a checkpoint written by :meth:`save`.

        The checkpoint's config (and number of processes) is compared with this trainer's: a difference in
        a key of :data:`RESULT_KEYS` raises :class:`ResumeConfigError` naming every such key, unless the key
        (or a prefix of it, e.g. ``data``) is in ``allow_changes``.

        Returns:
            every changed key -> (checkpoint's value, new value), allowed and free ones alike.
        """
        checkpoint = load_checkpoint(path, map_location=self.device)
        changes: dict[str, tuple[Any, Any]] = {}
        if checkpoint.get("config") and self.config:
            old, new = dict(checkpoint["config"]), dict(self.config)
            if "world_size" in checkpoint:  # (older checkpoints do not record it)
                old["world_size"], new["world_size"] = checkpoint["world_size"], distributed.world_size()
            changes = config_changes(old, new)
            refused = changes_that_matter(changes, allow_changes)
            if refused:
                listed = "; ".join(f"{key}: {changes[key][0]!r} -> {changes[key][1]!r}" for key in refused)
                raise ResumeConfigError(
                    f"cannot resume {path}: the config changed in keys that change the result ({listed}). "
                    f"Resume with the checkpoint's values, start a new run (another output_dir=...), or "
                    f"accept the changes with trainer.resume_allow_changes=[{','.join(refused)}]"
                )
        load_model_state(self.model, checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch = int(checkpoint["epoch"])
        self.step = int(checkpoint["step"])
        self.step_in_epoch = int(checkpoint.get("step_in_epoch", 0))
        self.best_metric = checkpoint.get("best_metric")
        self.best_epoch = checkpoint.get("best_epoch")
        self.history = list(checkpoint.get("history", []))
        self.epoch_sums = {**_empty_epoch_sums(), **checkpoint.get("epoch_sums", {})}
        self.pending_validation = checkpoint.get("pending_validation")
        restore_rng_state(checkpoint["rng"])
        log.info("resumed from %s: %d epochs and %d steps done", path, self.epoch, self.step)
        for key, (before, after) in changes.items():
            allowed = " (allowed by trainer.resume_allow_changes)" if _matches(key, allow_changes) else ""
            log.info("resumed with a changed config: %s %r -> %r%s", key, before, after, allowed)
        return changes

    # ------------------------------------------------------------------------------------------------
    # the loop

    def fit(self) -> dict[str, Any]:
        """Train until ``epochs``; returns a summary (best metric, last metrics, paths)."""
        main = distributed.is_main_process()
        if main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._writer = _summary_writer(self.output_dir / "tensorboard")
        restore = self._install_interrupt_handler()
        last_result: EvaluationResult | None = None
        try:
            if self.pending_validation is not None:  # resumed from a checkpoint whose validation failed
                if self.evaluator is not None:
                    last_result = self._validate_and_finish_epoch(self.pending_validation)
                else:
                    self._end_of_epoch(self.pending_validation, None)
                if self._interrupt_requested():
                    raise TrainingInterrupted()
            while self.epoch < self.epochs:
                train_stats = self._train_epoch()
                self.epoch += 1
                self.step_in_epoch = 0
                self.epoch_sums = _empty_epoch_sums()
                if self.evaluator is not None and (
                    self.epoch % self.val_every == 0 or self.epoch == self.epochs
                ):
                    last_result = self._validate_and_finish_epoch(train_stats) or last_result
                else:
                    self._end_of_epoch(train_stats, None)
                if self._interrupt_requested():  # Ctrl-C during validation: the epoch is saved, stop now
                    raise TrainingInterrupted()
        except TrainingInterrupted:
            self.save("last.pt")
            if main:
                where = (
                    f"at epoch {self.epoch + 1}, step {self.step}" if self.step_in_epoch
                    else f"after epoch {self.epoch} (step {self.step})"
                )  # fmt: skip
                log.warning(
                    "interrupted %s: saved %s; continue with trainer.resume=auto",
                    where, self.output_dir / "last.pt",
                )  # fmt: skip
            raise
        finally:
            restore()
            if self._writer is not None:
                self._writer.close()
        return {
            "epochs": self.epoch,
            "steps": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metric_name": self.metric_name,
            "last_metrics": last_result.metrics if last_result else {},
            "output_dir": str(self.output_dir),
        }

    def _train_epoch(self) -> dict[str, float]:
        loader = self.train_loader
        self.model.train()
        start_batch = self.step_in_epoch
        sampler = getattr(loader, "batch_sampler", None)
        sampler = getattr(sampler, "sampler", None) or getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            try:
                sampler.set_epoch(self.epoch, start_batch=start_batch)
            except TypeError:  # a sampler without mid-epoch support
                sampler.set_epoch(self.epoch)
                start_batch = 0
        total = (
            len(loader) if self.max_steps_per_epoch is None else min(len(loader), self.max_steps_per_epoch)
        )
        main = distributed.is_main_process()
        bar = tqdm(
            total=total, initial=start_batch, desc=f"epoch {self.epoch + 1}/{self.epochs}", leave=False,
            disable=not (self.progress and main), dynamic_ncols=True,
        )  # fmt: skip
        if start_batch == 0:
            self.epoch_sums = _empty_epoch_sums()
        sums = self.epoch_sums
        window_start, window_images = time.perf_counter(), 0
        batch = output = None
        step_in_epoch = start_batch
        for batch in loader:
            if step_in_epoch >= total:
                break
            loss_value, output, target, target_weight, lr = self.train_step(batch)
            step_in_epoch += 1
            self.step_in_epoch = step_in_epoch

            n = target.shape[0]
            window_images += n
            sums["images"] += n
            sums["loss"] += loss_value * n
            sums["visible_joints"] += float(target_weight.sum())
            _, batch_accuracy, count = heatmap_accuracy(
                final_heatmaps(output).detach(), target, target_weight
            )
            if count > 0:
                sums["accuracy"] += float(batch_accuracy) * count
                sums["accuracy_count"] += count
            if main and self.step % self.log_every == 0:
                elapsed = time.perf_counter() - window_start
                rate = window_images * distributed.world_size() / max(elapsed, 1e-9)
                self._scalar("train/loss", loss_value)
                self._scalar("train/lr", lr)
                self._scalar("train/images_per_s", rate)
                if self.device.type == "cuda":
                    self._scalar("train/gpu_memory_gb", torch.cuda.max_memory_allocated(self.device) / 1e9)
                window_start, window_images = time.perf_counter(), 0
                bar.set_postfix(loss=f"{loss_value:.2e}", lr=f"{lr:.1e}", img_s=f"{rate:.0f}")
            bar.update(1)
            if self._interrupted:
                raise TrainingInterrupted()
        bar.close()
        if sums["images"] and not sums["visible_joints"]:
            log.warning(
                "epoch %d: no visible joint in any of its %d training samples, so the loss is 0 and nothing "
                "is learned; check the annotations' visibility flags (joints_vis / keypoints v)",
                self.epoch + 1, int(sums["images"]),
            )  # fmt: skip
        stats = {
            "loss": sums["loss"] / max(sums["images"], 1),
            "accuracy": sums["accuracy"] / sums["accuracy_count"] if sums["accuracy_count"] else float("nan"),
            "lr": self.schedule.lr(self.epoch, self.step),
            "images": int(sums["images"]),
        }
        if main and self.image_every and (self.epoch + 1) % self.image_every == 0 and batch is not None:
            self._log_images(batch, final_heatmaps(output).detach())
        return stats

    def train_step(self, batch: dict) -> tuple[float, Any, torch.Tensor, torch.Tensor, float]:
        """One optimizer step on a batch of the training loader, then the box projection.

        Returns:
            (loss value, model output, target heatmaps, target weights, learning rate used).
        """
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        images = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
        target = batch["target"].to(self.device, non_blocking=True)
        target_weight = batch["target_weight"].to(self.device, non_blocking=True)
        lr = self.schedule.apply(self.optimizer, self.epoch, self.step)
        with autocast(self.device, self.amp):
            output = self.model(images)
            loss = joints_mse_loss(output, target, target_weight)
        loss_value = float(loss.detach())
        self._check_step(loss_value)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        project_boxes_(self.plain_model)
        self.step += 1
        return loss_value, output, target, target_weight, lr

    def _check_step(self, loss_value: float) -> None:
        """Stop on a non-finite loss (on every rank); take a pending Ctrl-C into account."""
        bad = not math.isfinite(loss_value)
        if distributed.is_distributed():
            flags = torch.tensor([float(bad), float(self._interrupted)], device=self.device)
            torch.distributed.all_reduce(flags)
            bad, self._interrupted = bool(flags[0] > 0), bool(flags[1] > 0)
        if bad:
            last = self.output_dir / "last.pt"
            raise NonFiniteLossError(
                f"the loss is {loss_value} at epoch {self.epoch + 1}, step {self.step + 1} "
                f"(step {self.step_in_epoch + 1} of the epoch); training stopped. The last good checkpoint "
                f"{'is ' + str(last) if last.exists() else 'does not exist yet'}. Try a lower learning rate, "
                f"trainer.grad_clip, or trainer.amp=none."
            )

    def _interrupt_requested(self) -> bool:
        """Whether Ctrl-C was pressed (on any rank, when distributed)."""
        if distributed.is_distributed():
            flag = torch.tensor([float(self._interrupted)], device=self.device)
            torch.distributed.all_reduce(flag)
            self._interrupted = bool(flag[0] > 0)
        return self._interrupted

    def _validate_and_finish_epoch(self, train_stats: dict[str, float]) -> EvaluationResult | None:
        """Save ``last.pt`` marked as awaiting validation (so a failing validation never loses the epoch),
        validate, then record the epoch and write its checkpoints."""
        self.pending_validation = dict(train_stats)
        self.save("last.pt")
        result = self.evaluator.evaluate(
            self.model, self.device, self.output_dir / "eval" / f"epoch_{self.epoch:03d}"
        )
        self.pending_validation = None
        self._end_of_epoch(train_stats, result)
        return result

    def _end_of_epoch(self, train_stats: dict[str, float], result: EvaluationResult | None) -> None:
        main = distributed.is_main_process()
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step, **train_stats}
        improved = False
        if result is not None and result.score is not None:
            record["val"] = dict(result.metrics)
            if self.best_metric is None or result.score > self.best_metric:
                self.best_metric, self.best_epoch, improved = float(result.score), self.epoch, True
        self.history.append(record)
        if main:
            self._scalar("train/epoch_loss", train_stats["loss"])
            self._scalar("train/accuracy", train_stats["accuracy"])
            if result is not None:
                for name, value in result.metrics.items():
                    self._scalar(f"val/{name}", value)
                for name, value in result.per_joint.items():
                    self._scalar(f"val_joint/{name}", value)
            if self.box_figure_every and self.epoch % self.box_figure_every == 0:
                self._log_box_figures()
            line = (
                f"epoch {self.epoch}/{self.epochs}  loss {train_stats['loss']:.3e}  "
                f"acc {train_stats['accuracy']:.3f}  lr {train_stats['lr']:.1e}"
            )
            if result is not None:
                line += f"  | val {summarize(result)}"
            log.info(line)
        names = ["last.pt"]
        if improved:
            names.append("best.pt")
        if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
            names.append(f"epoch_{self.epoch:03d}.pt")
        self.save(*names)

    # ------------------------------------------------------------------------------------------------
    # logging

    def _scalar(self, tag: str, value: float) -> None:
        if self._writer is not None and value is not None and math.isfinite(value):
            self._writer.add_scalar(tag, value, self.step)

    def _log_images(self, batch: dict, heatmaps: torch.Tensor, count: int = 8) -> None:
        """Input crops with predicted (left) and target (right) skeletons, and the predicted heatmaps."""
        if self._writer is None:
            return
        from boxpose.data.pipeline import denormalize_image

        dataset = self.train_loader.dataset
        spec, codec = dataset.spec, dataset.codec
        coords, maxvals = codec.decode(heatmaps[:count].float().cpu().numpy())
        stride = np.asarray(codec.input_size, dtype=np.float64) / np.asarray(codec.heatmap_size)
        tiles = []
        for i in range(min(count, heatmaps.shape[0])):
            image = denormalize_image(batch["image"][i], getattr(dataset.pipeline, "color_rgb", True))
            predicted = np.concatenate([coords[i] * stride, maxvals[i][:, None]], axis=1)
            target = batch["joints"][i].numpy()
            left = draw.draw_skeleton(image, predicted, spec, score_threshold=0.2)
            right = draw.draw_skeleton(image, target, spec, score_threshold=0.5)
            overlay = draw.heatmap_overlay(image, heatmaps[i].float().cpu().numpy())
            tiles.append(np.concatenate([left, right, overlay], axis=1))
        grid = draw.tile_images(tiles, columns=2)
        self._writer.add_image("train/predicted_target_heatmap", draw.bgr_to_chw_rgb(grid), self.step)

    def _log_box_figures(self) -> None:
        """The learned boxes of the first, middle and last box layers inside their windows (paper, Fig. 4)."""
        layers = box_conv_layers(self.plain_model)
        if not layers:
            return
        chosen = {layers[0][0]: layers[0][1], layers[len(layers) // 2][0]: layers[len(layers) // 2][1],
                  layers[-1][0]: layers[-1][1]}  # fmt: skip
        figure_dir = self.output_dir / "figures"
        figure_dir.mkdir(parents=True, exist_ok=True)
        for name, layer in chosen.items():
            boxes = layer.boxes_in_pixels()[:32].numpy()
            figure = draw.put_title(
                draw.draw_boxes_in_windows(boxes, layer.max_size),
                f"{name} (k={layer.max_size}) epoch {self.epoch}",
            )
            if self._writer is not None:
                self._writer.add_image(f"boxes/{name}", draw.bgr_to_chw_rgb(figure), self.step)
            cv2.imwrite(str(figure_dir / f"boxes_{name.replace('.', '_')}_epoch{self.epoch:03d}.png"), figure)

    # ------------------------------------------------------------------------------------------------
    # Ctrl-C

    def _install_interrupt_handler(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True
            print(
                "\nboxpose: interrupt received; finishing this step and saving a checkpoint "
                "(press Ctrl-C again to abort without saving)",
                file=sys.stderr,
                flush=True,
            )

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)


def _empty_epoch_sums() -> dict[str, float]:
    """Running sums over the steps of an epoch: images, loss x images, visible joints, accuracy."""
    return {"images": 0, "loss": 0.0, "visible_joints": 0.0, "accuracy": 0.0, "accuracy_count": 0.0}


def _summary_writer(log_dir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))
