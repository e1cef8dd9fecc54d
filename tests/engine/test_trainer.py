"""Short CPU training runs: loss falls, exact resume, checkpoints, NaN and Ctrl-C handling, config errors."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from boxpose.builders import build_trainer
from boxpose.cli.train import train
from boxpose.config import compose_config
from boxpose.engine import trainer as trainer_module
from boxpose.engine.checkpoint import load_checkpoint
from boxpose.engine.evaluator import Evaluator
from boxpose.engine.trainer import NonFiniteLossError, ResumeConfigError, TrainingInterrupted
from tests.engine.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_falls_and_outputs_are_written(synthetic_root, tmp_path):
    overrides = [*tiny_overrides(synthetic_root, tmp_path / "run", epochs=6), "trainer.checkpoint_every=3"]
    summary = train(compose_config("train", overrides))
    run = tmp_path / "run"
    history = load_checkpoint(run / "last.pt")["history"]
    losses = [h["loss"] for h in history]
    assert all(b <= a for a, b in itertools.pairwise(losses)) and losses[-1] < 0.8 * losses[0], losses
    assert summary["epochs"] == 6 and summary["metric_name"] == "Mean"
    for name in ("last.pt", "best.pt", "config.yaml", "summary.json", "train.log"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run / "figures").glob("boxes_*.png"))
    metrics = json.loads((run / "eval" / "epoch_006" / "metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"Head", "Mean", "Mean@0.1"} and metrics["split"] == "val"
    assert (run / "eval" / "epoch_006" / "pred.mat").is_file()
    assert sorted(p.name for p in run.glob("epoch_*.pt")) == ["epoch_003.pt", "epoch_006.pt"]
    assert load_checkpoint(run / "epoch_003.pt")["epoch"] == 3
    last_weights = load_checkpoint(run / "last.pt")["model"]
    assert _states_equal(load_checkpoint(run / "epoch_006.pt")["model"], last_weights)


def test_checkpoint_is_plain_and_complete(synthetic_root, tmp_path):
    train(compose_config("train", tiny_overrides(synthetic_root, tmp_path, epochs=1)))
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)  # no pickled objects
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "step", "best_metric", "rng", "config"):
        assert key in checkpoint, key
    assert checkpoint["epoch"] == 1 and checkpoint["model_name"] == "boxnet_tiny"
    assert checkpoint["config"]["model"]["name"] == "boxnet_tiny"
    assert not any(k.startswith("module.") for k in checkpoint["model"])


def test_resume_is_exact(synthetic_root, tmp_path):
    """Stopped after epoch 3 and resumed, the weights at epoch 5 equal an uninterrupted run's."""
    straight = tmp_path / "straight"
    train(compose_config("train", tiny_overrides(synthetic_root, straight, epochs=5)))
    resumed = tmp_path / "resumed"
    train(compose_config("train", tiny_overrides(synthetic_root, resumed, epochs=3)))
    assert load_checkpoint(resumed / "last.pt")["epoch"] == 3
    train(
        compose_config("train", [*tiny_overrides(synthetic_root, resumed, epochs=5), "trainer.resume=auto"])
    )
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert a["epoch"] == b["epoch"] == 5 and a["step"] == b["step"]
    assert _states_equal(a["model"], b["model"])
    assert _states_equal(a["optimizer"]["state"][0], b["optimizer"]["state"][0])


def test_resume_inside_an_epoch_is_exact(synthetic_root, tmp_path):
    """A checkpoint taken in the middle of an epoch continues with the next batch."""
    straight = tmp_path / "straight"
    train(compose_config("train", tiny_overrides(synthetic_root, straight, epochs=2)))
    partial = tmp_path / "partial"
    trainer = build_trainer(compose_config("train", tiny_overrides(synthetic_root, partial, epochs=2)))
    trainer._interrupted = True  # Ctrl-C pressed: the loop stops after the first step of the first epoch
    with pytest.raises(TrainingInterrupted):
        trainer.train_one_epoch()
    trainer.save("last.pt")
    assert load_checkpoint(partial / "last.pt")["step_in_epoch"] == 1
    train(
        compose_config("train", [*tiny_overrides(synthetic_root, partial, epochs=2), "trainer.resume=auto"])
    )
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(partial / "last.pt")
    assert _states_equal(a["model"], b["model"])
    # The logged loss of the resumed epoch covers all its steps, not only those after the resume.
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert [h["images"] for h in a["history"]] == [h["images"] for h in b["history"]]


def test_refuses_to_overwrite_a_run_without_resume(synthetic_root, tmp_path):
    train(compose_config("train", tiny_overrides(synthetic_root, tmp_path, epochs=1)))
    with pytest.raises(FileExistsError, match=r"trainer\.resume=auto"):
        build_trainer(compose_config("train", tiny_overrides(synthetic_root, tmp_path, epochs=2)))


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    real_loss = trainer_module.joints_mse_loss
    calls = {"n": 0}

    def loss_that_turns_nan(*args):
        calls["n"] += 1
        loss = real_loss(*args)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(trainer_module, "joints_mse_loss", loss_that_turns_nan)
    cfg = compose_config("train", tiny_overrides(synthetic_root, tmp_path, epochs=3))
    with pytest.raises(
        NonFiniteLossError, match=r"the loss is nan at epoch 2, step 4 \(step 2 of the epoch\)"
    ):
        train(cfg)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())


def _run_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "boxpose.train", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600, **kwargs)  # fmt: skip


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.epochz=3", "epochz"),
        ("data.augment.rotatoin_factor=10", "rotatoin_factor"),
        ("model=boxnet_huge", "boxnet_huge"),
    ],
)
def test_config_typos_are_errors(override, expected):
    result = _run_cli([override, "data.root=/nonexistent"])
    assert result.returncode != 0
    assert expected in result.stderr


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(synthetic_root, tmp_path):
    # Generate the data first (a fresh process would spend its first seconds on it).
    train(compose_config("train", tiny_overrides(synthetic_root, tmp_path / "warmup", epochs=1)))
    run = tmp_path / "run"
    args = [*tiny_overrides(synthetic_root, run, epochs=1000), "trainer.val_every=1000"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "boxpose.train", *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 300
    while not (run / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)  # wait until an epoch has finished
    assert process.poll() is None, process.communicate()[1][-3000:]
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupt received" in stderr and "trainer.resume=auto" in stderr
    assert "Traceback" not in stderr
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    assert checkpoint["step"] >= 2


def test_resume_refuses_a_changed_config_unless_allowed(synthetic_root, tmp_path):
    train(compose_config("train", tiny_overrides(synthetic_root, tmp_path, epochs=1)))
    original = (tmp_path / "config.yaml").read_text()
    resume = [*tiny_overrides(synthetic_root, tmp_path, epochs=2), "trainer.resume=auto"]
    with pytest.raises(ResumeConfigError) as info:
        build_trainer(compose_config("train", [*resume, "trainer.batch_size=4", "seed=1", "optim.lr=5e-4"]))
    message = str(info.value)
    for words in ("trainer.batch_size: 8 -> 4", "seed: 0 -> 1", "optim.lr: 0.001 -> 0.0005",
                  "trainer.resume_allow_changes=[optim.lr,seed,trainer.batch_size]"):  # fmt: skip
        assert words in message, message
    assert "trainer.epochs" not in message  # extending a run is not a change of its result
    assert (tmp_path / "config.yaml").read_text() == original

    trainer = build_trainer(
        compose_config("train", [*resume, "optim.lr=5e-4", "trainer.resume_allow_changes=[optim.lr]"])
    )
    assert trainer.epoch == 1 and trainer.config["optim"]["lr"] == 5e-4
    assert (tmp_path / "config.yaml").read_text() == original  # never overwritten
    resumed = (tmp_path / "config.resumed-1.yaml").read_text()
    assert "lr: 0.0005" in resumed and "epochs: 2" in resumed
    logged = (tmp_path / "train.log").read_text()
    assert "optim.lr 0.001 -> 0.0005 (allowed by trainer.resume_allow_changes)" in logged
    assert "trainer.epochs 1 -> 2" in logged


def test_a_failing_validation_keeps_the_epoch_and_resumes_to_the_same_result(
    synthetic_root, tmp_path, monkeypatch
):
    """last.pt is written before validation: a crash in epoch 2's validation leaves epoch 2's training, and
    resuming (which runs the pending validation) ends as an uninterrupted run: weights, history, best.pt."""
    straight = tmp_path / "straight"
    train(compose_config("train", tiny_overrides(synthetic_root, straight, epochs=2)))

    crashed = tmp_path / "crashed"
    original_evaluate = Evaluator.evaluate
    calls = []

    def failing_evaluate(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full while writing pred.mat")
        return original_evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "evaluate", failing_evaluate)
    with pytest.raises(OSError, match="disk full"):
        train(compose_config("train", tiny_overrides(synthetic_root, crashed, epochs=2)))
    saved = load_checkpoint(crashed / "last.pt")
    assert saved["epoch"] == 2 and saved["pending_validation"]["images"] > 0
    monkeypatch.setattr(Evaluator, "evaluate", original_evaluate)

    train(
        compose_config("train", [*tiny_overrides(synthetic_root, crashed, epochs=2), "trainer.resume=auto"])
    )
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(crashed / "last.pt")
    assert _states_equal(a["model"], b["model"]) and b["pending_validation"] is None
    assert a["history"] == b["history"] and a["best_epoch"] == b["best_epoch"]
    assert load_checkpoint(crashed / "best.pt")["epoch"] == load_checkpoint(straight / "best.pt")["epoch"]


def test_ctrl_c_during_the_final_validation_stops_with_a_checkpoint(synthetic_root, tmp_path, monkeypatch):
    """SIGINT arriving while the last epoch is validated: the validation finishes, the epoch is saved and
    training ends with TrainingInterrupted (exit status 130 on the command line), not as a success."""
    original_evaluate = Evaluator.evaluate

    def interrupted_evaluate(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # handled by the trainer's handler: a flag, no exception
        return original_evaluate(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "evaluate", interrupted_evaluate)
    with pytest.raises(TrainingInterrupted):
        train(compose_config("train", tiny_overrides(synthetic_root, tmp_path, epochs=1)))
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["epoch"] == 1 and checkpoint["pending_validation"] is None
    assert "val" in checkpoint["history"][-1]
    assert not (tmp_path / "summary.json").exists()


def test_resume_accepts_only_free_and_allowed_changes():
    """A config written before the dataset registry has data.spec (now gone): resuming it is fine, as is
    extending schedule.epochs; a changed learning rate is refused unless allowed."""
    old = {"data": {"name": "mpii", "spec": "mpii"}, "optim": {"lr": 1e-3}, "schedule": {"epochs": 10}}
    new = {"data": {"name": "mpii"}, "optim": {"lr": 2e-3}, "schedule": {"epochs": 20}}
    changes = trainer_module.config_changes(old, new)
    assert changes == {
        "data.spec": ("mpii", "<absent>"), "optim.lr": (1e-3, 2e-3), "schedule.epochs": (10, 20),
    }  # fmt: skip
    assert trainer_module.changes_that_matter(changes, []) == ["optim.lr"]
    assert trainer_module.changes_that_matter(changes, ["optim"]) == []
