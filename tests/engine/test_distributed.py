"""Two CPU processes with gloo (torchrun): both ranks end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from boxpose.cli.train import train
from boxpose.config import compose_config
from boxpose.engine.checkpoint import load_checkpoint
from tests.engine.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def test_two_process_gloo_training_keeps_ranks_identical(synthetic_root, tmp_path):
    train(
        compose_config("train", tiny_overrides(synthetic_root, tmp_path / "warmup", epochs=1))
    )  # data on disk
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(REPO / "tests/engine/ddp_worker.py"),
         str(synthetic_root), str(run)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(run / "rank0.pt", weights_only=True)
    rank1 = torch.load(run / "rank1.pt", weights_only=True)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["parameters"].keys() == rank1["parameters"].keys()
    for name, value in rank0["parameters"].items():
        assert torch.equal(value, rank1["parameters"][name]), name
    # Rank 0 wrote the checkpoint (without DDP's "module." prefix) and the evaluation gathered both shards.
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["epoch"] == 2 and not any(k.startswith("module.") for k in checkpoint["model"])
    assert rank0["summary"]["best_metric"] is not None  # rank 0 scored the gathered predictions
    assert (run / "eval" / "epoch_002" / "metrics.json").is_file()
