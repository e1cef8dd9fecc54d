"""Checkpoints of the two readings of Fig. 3: boxpose 0.1's 11-unit BoxNet and today's 13-unit one.

``fixtures/boxnet_tiny_0.1.pt`` was written by boxpose 0.1's own code (commit bc1b407: its
``boxnet_tiny(width=16)``, 4 joints, BN statistics moved, weights perturbed) together with an input and
the output 0.1 computed for it in eval mode: the independent oracle for "old checkpoints still load".
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from boxpose.engine import checkpoint as ckpt
from boxpose.models import build_model
from boxpose.models.boxnet import BoxNet, reading_of_state_dict

OLD = Path(__file__).parent / "fixtures" / "boxnet_tiny_0.1.pt"


def test_a_0_1_checkpoint_loads_as_the_earlier_reading_and_computes_what_0_1_computed(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="boxpose.engine.checkpoint"):
        model, checkpoint = ckpt.load_model(OLD)
    assert isinstance(model, BoxNet) and len(model.units) == 11
    assert model.reading == "11 units, depthwise_first basic unit"
    assert "boxnet_11unit_m2" in caplog.text and "0.1" in caplog.text
    with torch.no_grad():
        out = model(checkpoint["input"])
    expected = checkpoint["expected_output"]  # 0.1's reference op; today's default is the compiled kernel
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_a_new_checkpoint_records_and_keeps_its_reading(tmp_path: Path) -> None:
    model = build_model("boxnet_tiny", num_joints=4, width=16).eval()
    path = ckpt.save_checkpoint(
        tmp_path / "new.pt",
        {
            "model": model.state_dict(),
            "model_name": "boxnet_tiny",
            "model_reading": model.reading,
            "num_joints": 4,
            "config": {"model": {"name": "boxnet_tiny", "width": 16}},
        },
    )
    loaded, _ = ckpt.load_model(path)
    assert loaded.reading == "13 units, shufflenetv2 basic unit" and len(loaded.units) == 13
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_weights_of_one_reading_in_the_other_are_an_error_naming_both() -> None:
    old_weights = torch.load(OLD, weights_only=True)["model"]
    assert reading_of_state_dict(old_weights) == "11 units, depthwise_first basic unit"
    new_model = build_model("boxnet_tiny", num_joints=4, width=16)
    with pytest.raises(ValueError) as info:
        ckpt.load_model_state(new_model, old_weights)
    message = str(info.value)
    assert "11 units, depthwise_first" in message and "13 units, shufflenetv2" in message
    assert "boxnet_11unit_m2" in message
    old_model = build_model("boxnet_11unit_m2", num_joints=4, width=16)
    with pytest.raises(ValueError, match=r"13 units, shufflenetv2.*11 units, depthwise_first"):
        ckpt.load_model_state(old_model, new_model.state_dict())


def test_a_recorded_reading_is_not_second_guessed(tmp_path: Path) -> None:
    """A checkpoint that says it is boxpose 0.2's (model_reading present) but holds 11-unit weights."""
    payload = torch.load(OLD, weights_only=True)
    payload["model_reading"] = "13 units, shufflenetv2 basic unit"
    path = ckpt.save_checkpoint(tmp_path / "odd.pt", payload)
    with pytest.raises(ValueError, match=r"odd\.pt.*11 units, depthwise_first.*13 units, shufflenetv2"):
        ckpt.load_model(path)


def test_state_dicts_of_other_models_are_not_readings() -> None:
    assert reading_of_state_dict(build_model("simple_baseline_r50", num_joints=3).state_dict()) is None
    with pytest.raises(ValueError, match="do not fit the model SimpleBaseline"):
        ckpt.load_model_state(
            build_model("simple_baseline_r50", num_joints=3), {"head.weight": torch.ones(1)}
        )
