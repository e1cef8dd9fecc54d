"""``boxpose-train`` (also ``python -m boxpose.train``): train a model from the command line.

    boxpose-train experiment=mpii_boxnet data.root=/data/mpii
    boxpose-train data=synthetic_mpii model=boxnet_tiny trainer.epochs=5 trainer.device=cpu
    torchrun --nproc_per_node=8 -m boxpose.train experiment=coco_boxnet data.root=/data/coco

Hydra assembles the configuration (``configs/train.yaml``); :func:`train` hands the resolved plain dict
to :func:`boxpose.builders.build_trainer`, which checks every value first
(:func:`boxpose.config.validate_train_config`: a bad one is a one-line error and exit status 2) and
builds the datasets, model, optimizer, evaluator and :class:`~boxpose.engine.trainer.Trainer`.

The run directory keeps the config it was started with in ``config.yaml``; a resumed run whose config
differs (only in keys that do not change the result, or in keys accepted with
``trainer.resume_allow_changes=[...]``) writes its config to ``config.resumed-<n>.yaml`` (n = 1, 2, ...)
and logs each change in ``train.log``.

Exit status: 0 done, 1 training failed (NaN loss, unreadable data), 2 a user error (bad value, missing
file, refused resume), 130 interrupted with Ctrl-C (checkpoint saved).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from boxpose.builders import build_trainer
from boxpose.config import to_plain
from boxpose.data.base import ImageReadError
from boxpose.engine import distributed
from boxpose.engine.memory import retain_freed_memory
from boxpose.engine.trainer import NonFiniteLossError, TrainingInterrupted

log = logging.getLogger("boxpose")


def train(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train with a resolved configuration; returns the summary (also written to summary.json)."""
    trainer = build_trainer(cfg)
    output_dir = trainer.output_dir
    summary = trainer.fit()
    if distributed.is_main_process():
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if summary["best_metric"] is not None:
            log.info(
                "best %s %.4g at epoch %s; checkpoints in %s",
                summary["metric_name"], summary["best_metric"], summary["best_epoch"], output_dir,
            )  # fmt: skip
    return summary


@hydra.main(version_base=None, config_path="pkg://boxpose._configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        train(to_plain(cfg))
    except TrainingInterrupted:
        distributed.cleanup()
        sys.exit(130)
    except (NonFiniteLossError, ImageReadError) as exc:
        log.error("%s", exc)
        distributed.cleanup()
        sys.exit(1)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:  # user errors: bad value, file, resume
        print(f"boxpose-train: error: {exc}", file=sys.stderr)
        distributed.cleanup()
        sys.exit(2)
    distributed.cleanup()


def main() -> None:
    retain_freed_memory()
    _hydra_main()


if __name__ == "__main__":
    main()
