"""boxpose.builders: config -> objects. One codec per run, datasets and metrics found through their
registries (a new dataset is one registration), the metric's options taken from the evaluate config."""

from __future__ import annotations

from typing import Any

import pytest

from boxpose.builders import build_dataset, build_evaluator, build_trainer, dataset_spec
from boxpose.config import compose_config
from boxpose.data import DATASETS, MPIIDataset, TopDownPipeline, register_dataset
from boxpose.data.registry import get_dataset_entry
from boxpose.engine.callbacks import TrainingLogger
from boxpose.engine.metrics import METRICS, COCOKeypointMetric, PCKhMetric, build_metric
from tests.engine.helpers import tiny_overrides


def test_a_run_has_one_codec(synthetic_root, tmp_path):
    """The training set, the validation set, the evaluator and the training logger share one codec (input
    size, heatmap size, sigma and the evaluate config's decode mode)."""
    overrides = [*tiny_overrides(synthetic_root, tmp_path), "evaluate.decode=dark", "data.sigma=1.5"]
    trainer = build_trainer(compose_config("train", overrides))
    codec = trainer.evaluator.codec
    assert (codec.input_size, codec.heatmap_size, codec.sigma, codec.decode_mode) == (
        (64, 64),
        (16, 16),
        1.5,
        "dark",
    )
    assert trainer.train_loader.dataset.codec is codec and trainer.evaluator.dataset.codec is codec
    (logger,) = [c for c in trainer.callbacks if isinstance(c, TrainingLogger)]
    assert logger.codec is codec
    assert trainer.train_loader.dataset.train and not trainer.evaluator.dataset.train
    assert isinstance(trainer.evaluator.metric, PCKhMetric)


def test_a_new_dataset_is_one_registration(synthetic_root, tmp_path, monkeypatch):
    """A dataset registered under a new name (here MPII files read under the name "mpii_again") is built
    and scored through its registration alone; an unknown name lists the registered ones."""
    build_trainer(compose_config("train", tiny_overrides(synthetic_root, tmp_path)))  # generates the data
    monkeypatch.setattr("boxpose.data.registry.DATASETS", dict(DATASETS))
    seen: list[str] = []

    @register_dataset("mpii_again", spec="mpii", metric="pckh", root_layout="annot/ and images/")
    def mpii_again(cfg: dict[str, Any], split: str, pipeline: TopDownPipeline, **subset: Any) -> MPIIDataset:
        seen.append(split)
        return MPIIDataset(
            cfg[f"{split}_ann"], cfg["image_dir"], pipeline, gt_mat=cfg.get("gt_mat"), **subset
        )

    data_cfg = dict(
        compose_config("train", tiny_overrides(synthetic_root, tmp_path))["data"], name="mpii_again"
    )
    data_cfg.pop("synthetic")
    dataset = build_dataset(data_cfg, "val", train=False)
    evaluator = build_evaluator(dataset, data_cfg, {"batch_size": 4, "workers": 0, "flip_test": False,
                                                    "flip_shift": 1}, amp="none",
                                channels_last=False, progress=False)  # fmt: skip
    assert seen == ["val"] and dataset_spec(data_cfg).name == "mpii"
    assert isinstance(evaluator.metric, PCKhMetric) and evaluator.dataset_name == "mpii_again"
    with pytest.raises(
        ValueError, match=r"data\.name must be one of \[.*'mpii'.*'mpii_again'.*\], got 'lsp'"
    ):
        get_dataset_entry("lsp")
    with pytest.raises(ValueError, match="dataset 'mpii' is registered twice"):
        register_dataset("mpii", spec="mpii", metric="pckh", root_layout="")(mpii_again)


def test_metrics_take_their_options_from_the_evaluate_config():
    evaluate = {"nms": "none", "oks_thr": 0.5, "in_vis_thr": 0.3, "flip_test": True, "batch_size": 8}
    coco = build_metric("coco_keypoints", evaluate)
    assert isinstance(coco, COCOKeypointMetric) and (coco.nms, coco.oks_thr, coco.in_vis_thr) == (
        "none",
        0.5,
        0.3,
    )
    assert isinstance(build_metric("pckh", evaluate), PCKhMetric)  # takes none of them
    assert {"pckh", "coco_keypoints"} <= set(METRICS)
    assert (PCKhMetric.main_metric, COCOKeypointMetric.main_metric) == ("Mean", "AP")
    with pytest.raises(ValueError, match=r"unknown metric 'pck'; known: \[.*'pckh'"):
        build_metric("pck", evaluate)
