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
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from boxpose.engine import distributed
from boxpose.engine.callbacks import Callback, StepOutput
from boxpose.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    model_state_dict,
    restore_rng_state,
    save_checkpoint,
    unwrap_model,
)
from boxpose.engine.evaluator import Evaluator
from boxpose.engine.inference import autocast, final_heatmaps
from boxpose.engine.loss import joints_mse_loss
from boxpose.engine.metrics import EvaluationResult
from boxpose.engine.optim import StepSchedule
from boxpose.evaluation.pck import heatmap_accuracy
from boxpose.nn import project_boxes_

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
# Exceptions inside RESULT_KEYS: schedule.epochs only sets trainer.epochs (extending a run is fine);
# data.spec was a copy of the keypoint layout in configs written before the dataset registry held it.
FREE_KEYS = ("schedule.epochs", "data.spec")


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
        max_steps_per_epoch: cut epochs short (quick experiments and tests).
        checkpoint_every: also keep ``epoch_<NNN>.pt`` every this many epochs (0 = only last/best),
            e.g. for the evolution of the learned boxes (scripts/plot_boxes.py, paper Fig. 4).
        config: the resolved configuration, stored in every checkpoint.
        model_info: model name, num_joints, input_size; stored in every checkpoint.
        callbacks: told of every step and epoch (:mod:`boxpose.engine.callbacks`; the
            :class:`~boxpose.engine.callbacks.TrainingLogger` writes TensorBoard, figures and log lines).
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
        max_steps_per_epoch: int | None = None,
        checkpoint_every: int = 0,
        config: dict[str, Any] | None = None,
        model_info: dict[str, Any] | None = None,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
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
        self.max_steps_per_epoch = max_steps_per_epoch
        self.checkpoint_every = checkpoint_every
        self.config = config or {}
        self.model_info = model_info or {}
        self.callbacks = list(callbacks)
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
        if distributed.is_main_process():
            self.output_dir.mkdir(parents=True, exist_ok=True)
        restore = self._install_interrupt_handler()
        last_result: EvaluationResult | None = None
        for callback in self.callbacks:
            callback.on_fit_start(self)
        try:
            if self.pending_validation is not None:  # resumed from a checkpoint whose validation failed
                last_result = self._finish_epoch(self.pending_validation, validate=self.evaluator is not None)
            while self.epoch < self.epochs:
                train_stats = self.train_one_epoch()
                validate = self.evaluator is not None and (
                    self.epoch % self.val_every == 0 or self.epoch == self.epochs
                )
                last_result = self._finish_epoch(train_stats, validate) or last_result
        except TrainingInterrupted:
            self._save_interrupted()
            raise
        finally:
            restore()
            for callback in self.callbacks:
                callback.on_fit_end(self)
        return {
            "epochs": self.epoch,
            "steps": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metric_name": self.metric_name,
            "last_metrics": last_result.metrics if last_result else {},
            "output_dir": str(self.output_dir),
        }

    def train_one_epoch(self) -> dict[str, float]:
        """Train the epoch ``self.epoch + 1`` (from its step ``step_in_epoch`` when resuming inside it);
        returns its statistics (loss, training accuracy, lr, images) and counts the epoch as done."""
        loader = self.train_loader
        self.model.train()
        start_batch = self._set_sampler_epoch()
        total = (
            len(loader) if self.max_steps_per_epoch is None else min(len(loader), self.max_steps_per_epoch)
        )
        bar = tqdm(
            total=total, initial=start_batch, desc=f"epoch {self.epoch + 1}/{self.epochs}", leave=False,
            disable=not (self.progress and distributed.is_main_process()), dynamic_ncols=True,
        )  # fmt: skip
        if start_batch == 0:
            self.epoch_sums = _empty_epoch_sums()
        sums = self.epoch_sums
        for batch in loader:
            if self.step_in_epoch >= total:
                break
            loss_value, output, target, target_weight, lr = self.train_step(batch)
            self.step_in_epoch += 1
            heatmaps = final_heatmaps(output).detach()
            _accumulate(sums, loss_value, heatmaps, target, target_weight)
            step = StepOutput(loss_value, lr, target.shape[0], batch, heatmaps)
            for callback in self.callbacks:
                callback.on_step_end(self, step)
            bar.set_postfix(loss=f"{loss_value:.2e}", lr=f"{lr:.1e}", refresh=False)
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
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_sums = _empty_epoch_sums()
        return stats

    def _set_sampler_epoch(self) -> int:
        """Tell the epoch-seeded sampler the epoch (and the batch to resume from); returns that batch."""
        sampler = getattr(self.train_loader, "batch_sampler", None)
        sampler = getattr(sampler, "sampler", None) or getattr(self.train_loader, "sampler", None)
        if not hasattr(sampler, "set_epoch"):
            return self.step_in_epoch
        try:
            sampler.set_epoch(self.epoch, start_batch=self.step_in_epoch)
        except TypeError:  # a sampler without mid-epoch support
            sampler.set_epoch(self.epoch)
            self.step_in_epoch = 0
        return self.step_in_epoch

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

    def _finish_epoch(self, train_stats: dict[str, float], validate: bool) -> EvaluationResult | None:
        """Validate the epoch just trained (if ``validate``), record it, tell the callbacks, and write its
        checkpoints. Before validating, ``last.pt`` is saved marked as awaiting validation, so a failing
        validation never loses the epoch. A Ctrl-C during validation stops training after this."""
        result = None
        if validate:
            self.pending_validation = dict(train_stats)
            self.save("last.pt")
            result = self.evaluator.evaluate(
                self.model, self.device, self.output_dir / "eval" / f"epoch_{self.epoch:03d}"
            )
            self.pending_validation = None
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step, **train_stats}
        improved = False
        if result is not None and result.score is not None:
            record["val"] = dict(result.metrics)
            if self.best_metric is None or result.score > self.best_metric:
                self.best_metric, self.best_epoch, improved = float(result.score), self.epoch, True
        self.history.append(record)
        for callback in self.callbacks:
            callback.on_epoch_end(self, record, result)
        names = ["last.pt"]
        if improved:
            names.append("best.pt")
        if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
            names.append(f"epoch_{self.epoch:03d}.pt")
        self.save(*names)
        if self._interrupt_requested():  # Ctrl-C during validation: the epoch is saved, stop now
            raise TrainingInterrupted()
        return result

    def _save_interrupted(self) -> None:
        """Save ``last.pt`` after Ctrl-C (with the position inside the epoch) and say how to continue."""
        self.save("last.pt")
        if distributed.is_main_process():
            where = (
                f"at epoch {self.epoch + 1}, step {self.step}" if self.step_in_epoch
                else f"after epoch {self.epoch} (step {self.step})"
            )  # fmt: skip
            log.warning(
                "interrupted %s: saved %s; continue with trainer.resume=auto",
                where,
                self.output_dir / "last.pt",
            )

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


def _accumulate(
    sums: dict[str, float],
    loss: float,
    heatmaps: torch.Tensor,
    target: torch.Tensor,
    target_weight: torch.Tensor,
) -> None:
    """Add a step to the epoch's running sums: the loss per image and the heatmap PCK@0.5 per joint."""
    n = target.shape[0]
    sums["images"] += n
    sums["loss"] += loss * n
    sums["visible_joints"] += float(target_weight.sum())
    _, batch_accuracy, count = heatmap_accuracy(heatmaps, target, target_weight)
    if count > 0:
        sums["accuracy"] += float(batch_accuracy) * count
        sums["accuracy_count"] += count


def _empty_epoch_sums() -> dict[str, float]:
    """Running sums over the steps of an epoch: images, loss x images, visible joints, accuracy."""
    return {"images": 0, "loss": 0.0, "visible_joints": 0.0, "accuracy": 0.0, "accuracy_count": 0.0}
