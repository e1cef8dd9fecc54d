"""A Trainer built from plain objects (no Hydra, no config): dataset, loader, model, optimizer, schedule and
a callback constructed by hand, one tiny epoch on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from boxpose.data import MPIIDataset, build_dataloader, ensure_synthetic
from boxpose.engine.callbacks import Callback, StepOutput
from boxpose.engine.checkpoint import load_checkpoint
from boxpose.engine.optim import StepSchedule, build_optimizer
from boxpose.engine.trainer import Trainer
from boxpose.models import build_model
from tests.pipelines import make_pipeline


class Recorder(Callback):
    """What the loop tells its callbacks, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_fit_start(self, trainer) -> None:
        self.events.append(("start", trainer.epoch, trainer.step))

    def on_step_end(self, trainer, step: StepOutput) -> None:
        self.events.append(("step", trainer.step, step.images, tuple(step.heatmaps.shape), step.loss))

    def on_epoch_end(self, trainer, record, result) -> None:
        checkpoint_written = (trainer.output_dir / "last.pt").exists()
        self.events.append(("epoch", trainer.epoch, record["images"], result, checkpoint_written))

    def on_fit_end(self, trainer) -> None:
        self.events.append(("end", trainer.epoch, trainer.step))


def test_one_epoch_from_plain_arguments(tmp_path):
    root = ensure_synthetic(
        "mpii", tmp_path / "mpii", {"num_train": 8, "num_val": 2, "image_size": [96, 96], "workers": 1},
        progress=False,
    )  # fmt: skip
    dataset = MPIIDataset(
        root / "annot" / "train.json",
        root / "images",
        make_pipeline("mpii", train=True, input_size=(48, 64), heatmap_size=(12, 16)),
    )
    batch_size = 4
    loader = build_dataloader(dataset, batch_size=batch_size, train=True, workers=0, pin_memory=False, seed=0)
    model = build_model("boxnet_tiny", num_joints=16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(model, "adam", lr=1e-3)
    recorder = Recorder()
    trainer = Trainer(
        model, optimizer, StepSchedule(base_lr=1e-3), loader,
        device=torch.device("cpu"), output_dir=tmp_path / "run", epochs=1, callbacks=[recorder],
        progress=False,
    )  # fmt: skip

    summary = trainer.fit()

    steps = len(dataset) // batch_size  # the last incomplete batch is dropped
    assert steps >= 2
    assert summary["epochs"] == 1 and summary["steps"] == steps and summary["best_metric"] is None
    (record,) = trainer.history
    assert record["images"] == steps * batch_size and math.isfinite(record["loss"]) and record["loss"] > 0
    assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())
    # The callback saw: the start, every step (batch of 4, heatmaps (4, 16, 16, 12), the logged loss), the
    # epoch before its checkpoint was written (no evaluator: no result), the end.
    assert recorder.events[0] == ("start", 0, 0) and recorder.events[-1] == ("end", 1, steps)
    step_events = recorder.events[1 : 1 + steps]
    assert [e[:4] for e in step_events] == [("step", i + 1, 4, (4, 16, 16, 12)) for i in range(steps)]
    assert sum(e[4] for e in step_events) / steps == pytest.approx(record["loss"])
    assert recorder.events[1 + steps] == ("epoch", 1, steps * batch_size, None, False)
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == steps
    for name, p in model.state_dict().items():
        torch.testing.assert_close(checkpoint["model"][name], p)
