"""``boxpose-eval`` (also ``python -m boxpose.evaluate``): score a checkpoint on a dataset split.

Prints the paper-style table (MPII PCKh or COCO AP), writes ``metrics.json`` and the predictions file
(``pred.mat`` for MPII, the official keypoint results JSON for COCO; the submission file on a test
split), and logs the metrics to the run's TensorBoard. See ``configs/evaluate.yaml`` for the options.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from boxpose.builders import build_codec, build_dataset, build_evaluator, configure_logging, dataset_spec
from boxpose.config import to_plain, validate_evaluate_config
from boxpose.data.base import ImageReadError
from boxpose.engine import distributed
from boxpose.engine.checkpoint import load_checkpoint, load_model
from boxpose.engine.memory import retain_freed_memory
from boxpose.ops import set_impl

log = logging.getLogger("boxpose")


def _check_compatible(checkpoint: dict[str, Any], data_cfg: dict[str, Any], path: str) -> None:
    spec = dataset_spec(data_cfg)
    if int(checkpoint["num_joints"]) != spec.num_joints:
        raise ValueError(
            f"{path} was trained for {checkpoint['num_joints']} joints "
            f"({checkpoint.get('data_spec', '?')} layout) but data={data_cfg.get('name')} has "
            f"{spec.num_joints} ({spec.name}); evaluate it on a dataset with its joint layout"
        )
    trained = checkpoint.get("input_size")
    if trained is not None and list(trained) != list(data_cfg["input_size"]):
        raise ValueError(
            f"{path} was trained at input size {list(trained)} (width, height) but data.input_size is "
            f"{list(data_cfg['input_size'])}; set data.input_size={list(trained)} "
            f"data.heatmap_size={checkpoint.get('heatmap_size')}"
        )


def evaluate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Evaluate with a resolved configuration (the plain dict of ``configs/evaluate.yaml``); every value
    is checked first (:func:`~boxpose.config.validate_evaluate_config`)."""
    validate_evaluate_config(cfg)
    if cfg.get("op_impl"):
        set_impl(cfg["op_impl"])
    evaluate_cfg = cfg["evaluate"]
    oracle = bool(evaluate_cfg.get("oracle"))
    checkpoint_path = cfg.get("checkpoint")
    if checkpoint_path is None and not oracle:
        raise ValueError(
            "checkpoint=... is required (or evaluate.oracle=true to score the encoded ground truth)"
        )
    device = distributed.setup(cfg["device"])
    checkpoint: dict[str, Any] = {}
    model = None
    if checkpoint_path is not None:
        checkpoint = load_checkpoint(checkpoint_path)
    data_cfg = cfg.get("data") or (checkpoint.get("config") or {}).get("data")
    if data_cfg is None:
        raise ValueError("no dataset: pass data=<name> (the checkpoint stores no data configuration)")
    if checkpoint:
        _check_compatible(checkpoint, data_cfg, checkpoint_path)
        model, _ = load_model(checkpoint_path, device, prepare=bool(cfg.get("prepare", True)))
    split = evaluate_cfg.get("split", "val")
    if cfg.get("output_dir"):
        output_dir = Path(cfg["output_dir"])
    elif checkpoint_path is not None:
        output_dir = Path(checkpoint_path).parent / "eval" / f"{split}_{data_cfg.get('name')}"
    else:
        output_dir = Path("outputs") / "oracle" / f"{split}_{data_cfg.get('name')}"
    configure_logging(None)
    codec = build_codec(data_cfg, evaluate_cfg)
    dataset = build_dataset(data_cfg, split, train=False, codec=codec)
    evaluator = build_evaluator(
        dataset, data_cfg, evaluate_cfg, amp=cfg.get("amp", "none"),
        channels_last=bool(cfg.get("channels_last")), progress=True,
    )  # fmt: skip
    if model is None:  # oracle: the network is not run
        model = torch.nn.Identity()
    result = evaluator.evaluate(model, device, output_dir)
    if not distributed.is_main_process():
        return {}
    print(result.table)
    if checkpoint_path is not None and result.metrics:
        _log_to_tensorboard(Path(checkpoint_path).parent / "tensorboard", split, result.metrics, checkpoint)
    summary = {
        "checkpoint": checkpoint_path,
        "split": split,
        "dataset": data_cfg.get("name"),
        "oracle": oracle,
        "metrics": result.metrics,
        "files": result.files,
        "output_dir": str(output_dir),
    }
    for name, path in result.files.items():
        print(f"{name}: {path}")
    print(json.dumps(summary))
    return summary


def _log_to_tensorboard(log_dir: Path, split: str, metrics: dict[str, float], checkpoint: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for name, value in metrics.items():
            writer.add_scalar(f"eval_{split}/{name}", value, int(checkpoint.get("step", 0)))


@hydra.main(version_base=None, config_path="pkg://boxpose._configs", config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(to_plain(cfg))
    except (ValueError, FileNotFoundError) as exc:
        print(f"boxpose-eval: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ImageReadError as exc:
        print(f"boxpose-eval: error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        distributed.cleanup()


def main() -> None:
    retain_freed_memory()
    _hydra_main()


if __name__ == "__main__":
    main()
