"""Checkpoints: atomic writes, weights_only loading, wrapper prefixes, RNG round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from boxpose.engine import checkpoint as ckpt


def test_atomic_write_keeps_the_old_file_when_saving_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, {"model": {"w": torch.ones(2)}, "epoch": 1})

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "epoch": 2})
    monkeypatch.undo()
    loaded = ckpt.load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_load_errors_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a boxpose checkpoint"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "broken.pt").write_bytes(b"\x00\x01")
    with pytest.raises(RuntimeError, match="could not read checkpoint"):
        ckpt.load_checkpoint(tmp_path / "broken.pt")


class Thing:
    """An arbitrary object: torch.load(weights_only=True) must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"model": {}, "thing": Thing()}, tmp_path / "evil.pt")
    with pytest.raises(RuntimeError, match="could not read checkpoint"):
        ckpt.load_checkpoint(tmp_path / "evil.pt")


def test_module_and_compile_prefixes_are_accepted():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    wrapped = {f"module._orig_mod.{k}": v + 1 for k, v in model.state_dict().items()}
    ckpt.load_model_state(model, wrapped)
    assert torch.equal(model[0].bias, wrapped["module._orig_mod.0.bias"])
    compiled = torch.nn.Module()
    compiled._orig_mod = model
    assert ckpt.unwrap_model(compiled) is model
    assert set(ckpt.model_state_dict(compiled)) == {"0.weight", "0.bias"}


def test_rng_state_round_trip():
    state = ckpt.capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    ckpt.restore_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]
