"""A Trainer built from plain objects (no Hydra, no config): dataset, loader, model, optimizer and schedule
constructed by hand, one tiny epoch on the CPU."""

from __future__ import annotations

import math

import torch

from boxpose.data import MPIIDataset, build_dataloader, ensure_synthetic
from boxpose.engine.checkpoint import load_checkpoint
from boxpose.engine.optim import StepSchedule, build_optimizer
from boxpose.engine.trainer import Trainer
from boxpose.models import build_model


def test_one_epoch_from_plain_arguments(tmp_path):
    root = ensure_synthetic(
        "mpii", tmp_path / "mpii", {"num_train": 8, "num_val": 2, "image_size": [96, 96], "workers": 1},
        progress=False,
    )  # fmt: skip
    dataset = MPIIDataset(
        root / "annot" / "train.json", root / "images", train=True, input_size=(48, 64), heatmap_size=(12, 16)
    )
    batch_size = 4
    loader = build_dataloader(dataset, batch_size=batch_size, train=True, workers=0, pin_memory=False, seed=0)
    model = build_model("boxnet_tiny", num_joints=16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = build_optimizer(model, "adam", lr=1e-3)
    trainer = Trainer(
        model, optimizer, StepSchedule(base_lr=1e-3), loader,
        device=torch.device("cpu"), output_dir=tmp_path / "run", epochs=1,
        image_every=0, box_figure_every=0, progress=False,
    )  # fmt: skip

    summary = trainer.fit()

    steps = len(dataset) // batch_size  # the last incomplete batch is dropped
    assert steps >= 2
    assert summary["epochs"] == 1 and summary["steps"] == steps and summary["best_metric"] is None
    (record,) = trainer.history
    assert record["images"] == steps * batch_size and math.isfinite(record["loss"]) and record["loss"] > 0
    assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == steps
    for name, p in model.state_dict().items():
        torch.testing.assert_close(checkpoint["model"][name], p)
