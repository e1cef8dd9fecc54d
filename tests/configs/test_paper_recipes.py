"""The experiment configs of the paper's rows follow its text (Sec. 4.1-4.2); other recipes are named."""

from __future__ import annotations

import pytest

from boxpose.config import compose_config

# The paper, Sec. 4.1: "random rotation (+-30), scaling (1.0 +- 0.25) and flipping", Adam lr 1e-3,
# batch 64, 140 epochs (x0.1 at 90, 120); Sec. 4.2 (COCO): "similar ... as above", 210 epochs (170, 200).
PAPER_AUGMENT = {"rotation_factor": 30, "scale_factor": 0.25, "flip": True, "half_body_prob": 0.0}


def compose(*overrides: str) -> dict:
    return compose_config("train", [*overrides, "data.root=/data", "run_name=test"])


@pytest.mark.parametrize("experiment", ["coco_boxnet", "coco_simple_baseline_r50", "mpii_boxnet"])
def test_rows_trained_by_the_paper_use_its_recipe(experiment: str) -> None:
    cfg = compose(f"experiment={experiment}")
    augment = cfg["data"]["augment"]
    assert {key: augment[key] for key in PAPER_AUGMENT} == PAPER_AUGMENT
    assert cfg["optim"]["lr"] == 1e-3 and cfg["trainer"]["batch_size"] == 64
    coco = experiment.startswith("coco")
    assert cfg["schedule"]["epochs"] == (210 if coco else 140)
    assert cfg["schedule"]["milestones"] == ([170, 200] if coco else [90, 120])
    assert cfg["data"]["input_size"] == ([192, 256] if coco else [256, 256])  # (W, H)


def test_hrnet_coco_augmentation_is_a_named_option() -> None:
    augment = compose("experiment=coco_boxnet", "augment=hrnet_coco")["data"]["augment"]
    assert (augment["rotation_factor"], augment["scale_factor"], augment["half_body_prob"]) == (45, 0.35, 0.3)
    assert compose("data=coco")["data"]["augment"] == augment  # data=coco alone keeps HRNet's


def test_quoted_simple_baseline_rows_use_simple_baselines_augmentation() -> None:
    augment = compose("experiment=coco_simple_baseline_r50_imagenet")["data"]["augment"]
    assert (augment["rotation_factor"], augment["scale_factor"], augment["half_body_prob"]) == (40, 0.3, 0.0)


def test_an_unknown_augmentation_names_the_choices() -> None:
    with pytest.raises(Exception, match="hrnet_coco"):
        compose("augment=hrnet")
