"""``boxpose-train`` (also ``python -m boxpose.train``): train a model from the command line.

    boxpose-train experiment=mpii_boxnet data.root=/data/mpii
    boxpose-train data=synthetic_mpii model=boxnet_tiny trainer.epochs=5 trainer.device=cpu
    torchrun --nproc_per_node=8 -m boxpose.train experiment=coco_boxnet data.root=/data/coco

Hydra assembles the configuration (``configs/train.yaml``); every value is checked first
(:func:`boxpose.cli.config.validate_train_config`: a bad one is a one-line error and exit status 2);
:func:`train` turns the resolved plain dict into the dataset, model, optimizer, evaluator and
:class:`~boxpose.engine.trainer.Trainer`.

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
import random
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from boxpose.cli.config import ConfigError, check_data_sizes, to_plain, validate_train_config
from boxpose.data.base import ImageReadError
from boxpose.data.loader import build_dataloader, build_dataset
from boxpose.engine import distributed
from boxpose.engine.evaluator import Evaluator
from boxpose.engine.optim import StepSchedule, build_optimizer
from boxpose.engine.trainer import NonFiniteLossError, Trainer, TrainingInterrupted
from boxpose.keypoints import get_spec
from boxpose.models import build_model

log = logging.getLogger("boxpose")


def configure_logging(output_dir: Path | None) -> None:
    """Messages to stderr (and ``<output_dir>/train.log``) on rank 0; warnings only on other ranks."""
    logger = logging.getLogger("boxpose")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO if distributed.is_main_process() else logging.WARNING)
    formatter = logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    logger.addHandler(stream)
    if output_dir is not None and distributed.is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(output_dir / "train.log")
        file.setFormatter(formatter)
        logger.addHandler(file)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds the global generator third-party code may use
    torch.manual_seed(seed)


def resolve_resume(resume: str | None, output_dir: Path) -> Path | None:
    """The checkpoint to continue from: None, ``<output_dir>/last.pt`` for "auto", or the given path.

    Without ``resume``, a run directory that already holds a checkpoint is an error rather than being
    overwritten.
    """
    last = output_dir / "last.pt"
    if resume in (None, "", "none", "null"):
        if last.exists():
            raise FileExistsError(
                f"{output_dir} already holds a checkpoint ({last}). Continue it with trainer.resume=auto, "
                f"or start a new run with another run_name=... / output_dir=..."
            )
        return None
    if resume == "auto":
        return last if last.exists() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"trainer.resume={resume}: no such checkpoint")
    return path


def build_evaluator(
    dataset, evaluate: dict[str, Any], amp: str, channels_last: bool, progress: bool
) -> Evaluator:
    return Evaluator(
        dataset,
        split=str(evaluate.get("split", "val")),
        batch_size=int(evaluate["batch_size"]),
        workers=int(evaluate["workers"]),
        flip_test=bool(evaluate["flip_test"]),
        flip_shift=int(evaluate["flip_shift"]),
        decode_mode=str(evaluate["decode"]),
        amp=amp,
        channels_last=channels_last,
        nms=str(evaluate["nms"]),
        oks_thr=float(evaluate["oks_thr"]),
        in_vis_thr=float(evaluate["in_vis_thr"]),
        oracle=bool(evaluate.get("oracle", False)),
        progress=progress,
    )


def build_trainer(cfg: dict[str, Any]) -> Trainer:
    """Everything a run needs, from a resolved configuration (the plain dict of ``configs/train.yaml``):
    process group, datasets, loaders, model, optimizer, schedule, evaluator, and the trainer (resumed if
    asked). Writes the resolved config to ``<output_dir>/config.yaml`` (``config.resumed-<n>.yaml`` when a
    resumed run's config differs). Raises :class:`~boxpose.cli.config.ConfigError` for a bad value."""
    validate_train_config(cfg)
    output_dir = Path(cfg["output_dir"])
    tcfg, data_cfg, model_cfg = cfg["trainer"], cfg["data"], dict(cfg["model"])
    device = distributed.setup(tcfg["device"])
    configure_logging(output_dir)
    resume_from = resolve_resume(tcfg.get("resume"), output_dir)
    seed_everything(int(cfg["seed"]))

    world = distributed.world_size()
    if tcfg["batch_size"] % world:
        raise ConfigError(
            f"trainer.batch_size={tcfg['batch_size']}: expected a multiple of the {world} processes"
        )
    spec = get_spec(data_cfg["spec"])
    train_set = build_dataset(data_cfg, "train", train=True)
    val_set = build_dataset(data_cfg, cfg["evaluate"].get("split", "val"), train=False)
    train_loader = build_dataloader(
        train_set,
        batch_size=tcfg["batch_size"] // world,
        train=True,
        workers=int(tcfg["workers"]),
        pin_memory=device.type == "cuda",
        persistent_workers=True,
        seed=int(cfg["seed"]),
        distributed=world > 1,
    )
    model_name = model_cfg.pop("name")
    model = build_model(model_name, num_joints=spec.num_joints, **model_cfg)
    check_data_sizes(data_cfg, size_divisor=int(getattr(model, "size_divisor", 4)))
    optim_cfg = dict(cfg["optim"])
    optimizer = build_optimizer(model, **optim_cfg)
    schedule_cfg = cfg["schedule"]
    schedule = StepSchedule(
        base_lr=float(optim_cfg["lr"]),
        milestones=list(schedule_cfg["milestones"]),
        gamma=float(schedule_cfg["gamma"]),
        warmup_iters=int(schedule_cfg.get("warmup_iters", 0)),
    )
    progress = bool(tcfg.get("progress", True))
    channels_last = tcfg["channels_last"]
    if channels_last == "auto":
        # Channels-last on CUDA (cuDNN's fast path); on the CPU BoxNet's training step is faster in NCHW
        # (scripts/bench_models.py, docs/BENCHMARKS.md), although its inference is not.
        channels_last = device.type == "cuda"
    if not isinstance(channels_last, bool):
        raise ValueError(f"trainer.channels_last must be true, false or auto, got {channels_last!r}")
    evaluator = build_evaluator(val_set, cfg["evaluate"], tcfg["amp"], channels_last, progress)
    trainer = Trainer(
        model,
        optimizer,
        schedule,
        train_loader,
        device=device,
        output_dir=output_dir,
        epochs=int(tcfg["epochs"]),
        evaluator=evaluator,
        val_every=int(tcfg["val_every"]),
        amp=str(tcfg["amp"]),
        channels_last=channels_last,
        compile=bool(tcfg["compile"]),
        grad_clip=tcfg.get("grad_clip"),
        sync_bn=bool(tcfg.get("sync_bn", False)),
        log_every=int(tcfg["log_every"]),
        image_every=int(tcfg["image_every"]),
        box_figure_every=int(tcfg["box_figure_every"]),
        max_steps_per_epoch=tcfg.get("max_steps_per_epoch"),
        checkpoint_every=int(tcfg.get("checkpoint_every", 0)),
        config=cfg,
        model_info={
            "model_name": model_name,
            "model_reading": getattr(model, "reading", model_name),  # which reading of Fig. 3, for BoxNets
            "num_joints": spec.num_joints,
            "input_size": list(data_cfg["input_size"]),
            "heatmap_size": list(data_cfg["heatmap_size"]),
            "data_spec": spec.name,
        },
        progress=progress,
    )
    changes = {}
    if resume_from is not None:
        changes = trainer.resume(resume_from, allow_changes=list(tcfg.get("resume_allow_changes") or []))
    if distributed.is_main_process():
        write_run_config(output_dir, cfg, resumed=resume_from is not None, changed=bool(changes))
        log.info("run %s: %d training / %d validation persons, %s on %s (%d process%s), output in %s",
                 cfg.get("run_name"), len(train_set), len(val_set), model_name, device, world,
                 "" if world == 1 else "es", output_dir)  # fmt: skip
    return trainer


def write_run_config(output_dir: Path, cfg: dict[str, Any], resumed: bool, changed: bool) -> Path | None:
    """Write the run's config: ``config.yaml`` for a new run (or a resumed one that has none); a resumed
    run with a changed config writes ``config.resumed-<n>.yaml`` (the first free n >= 1) and never
    overwrites ``config.yaml``. Returns the file written (None when nothing changed)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "config.yaml"
    if resumed and path.exists():
        if not changed:
            return None
        n = 1
        while (output_dir / f"config.resumed-{n}.yaml").exists():
            n += 1
        path = output_dir / f"config.resumed-{n}.yaml"
        log.info("the resumed run's config is written to %s (config.yaml keeps the original)", path)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return path


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
    _hydra_main()


if __name__ == "__main__":
    main()
