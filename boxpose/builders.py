"""Config -> objects: the one place that reads a composed configuration and builds what a run needs.

Every class of boxpose takes plain arguments and can be built in a test without Hydra; the functions
here only read the resolved config (the plain dicts of ``configs/train.yaml``, ``evaluate.yaml``, ...)
and call those classes, in the spirit of detectron2's ``build_*`` functions. The CLIs (:mod:`boxpose.cli`),
the demo and the scripts build through them, and never modify what they built.

    cfg = compose_config("train", ["experiment=demo"])     # boxpose.config
    trainer = build_trainer(cfg)                           # datasets, codec, model, optimizer, evaluator, ...
    trainer.fit()

One codec per run: :func:`build_codec` makes the :class:`~boxpose.codec.heatmap.HeatmapCodec` (input
size, heatmap size, sigma, decode mode) from ``data`` and ``evaluate``, and the same object goes to the
datasets' pipelines, the evaluator, the training logger and the predictor.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from boxpose.codec.heatmap import HeatmapCodec
from boxpose.config import ConfigError, check_data_sizes, validate_train_config
from boxpose.data.base import TopDownDataset, require_path
from boxpose.data.loader import build_dataloader
from boxpose.data.pipeline import AugmentConfig, TopDownPipeline
from boxpose.data.registry import get_dataset_entry
from boxpose.data.synthetic import ensure_synthetic
from boxpose.engine import distributed
from boxpose.engine.callbacks import Callback, TrainingLogger
from boxpose.engine.checkpoint import load_model
from boxpose.engine.evaluator import Evaluator
from boxpose.engine.metrics import build_metric
from boxpose.engine.optim import StepSchedule, build_optimizer
from boxpose.engine.predictor import Predictor
from boxpose.engine.trainer import Trainer
from boxpose.keypoints import KeypointSpec, get_spec
from boxpose.models import build_model

log = logging.getLogger("boxpose")

SPLITS = ("train", "val", "test")
# The keys of configs/data/*.yaml (a dataset's own keys included: gt_mat for MPII, det_file... for COCO).
DATA_CONFIG_KEYS = frozenset({
    "name", "spec", "root", "train_ann", "val_ann", "test_ann", "image_dir", "gt_mat", "det_file",
    "test_det_file", "det_score_thr", "input_size", "heatmap_size", "sigma", "color_rgb", "train_fraction",
    "train_fraction_seed", "max_failure_fraction", "augment", "synthetic",
})  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# the run


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
    """Seed Python's, NumPy's global and torch's generators."""
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


def resolve_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """``trainer.channels_last``: true, false, or "auto" = channels-last on CUDA (cuDNN's fast path) and NCHW
    on the CPU, where it depends on the model and size: the demo's boxnet_tiny at 96x96 trains faster in
    NCHW, the full BoxNet at 128x128 about as fast or faster in channels-last (scripts/bench_models.py,
    docs/BENCHMARKS.md)."""
    if channels_last == "auto":
        return device.type == "cuda"
    if not isinstance(channels_last, bool):
        raise ValueError(f"trainer.channels_last must be true, false or auto, got {channels_last!r}")
    return channels_last


# ----------------------------------------------------------------------------------------------------
# data


def dataset_spec(data_cfg: Mapping[str, Any]) -> KeypointSpec:
    """The keypoint layout of the dataset ``data.name`` (its registration's; ``data.spec``, where an
    older config gives it, must agree)."""
    entry = get_dataset_entry(data_cfg.get("name"))
    given = data_cfg.get("spec")
    if given not in (None, entry.spec):
        raise ValueError(
            f"data.spec={given!r} does not fit a {entry.name} dataset (its layout is {entry.spec!r})"
        )
    return get_spec(entry.spec)


def build_codec(data_cfg: Mapping[str, Any], evaluate_cfg: Mapping[str, Any] | None = None) -> HeatmapCodec:
    """The run's one codec: ``data.input_size``, ``data.heatmap_size`` ([W, H]), ``data.sigma`` and
    ``evaluate.decode`` (the paper's "quarter" offset when no evaluate config is given)."""
    decode = (evaluate_cfg or {}).get("decode", "quarter")
    return HeatmapCodec(
        tuple(data_cfg["input_size"]), tuple(data_cfg["heatmap_size"]), float(data_cfg.get("sigma", 2.0)),
        decode_mode=str(decode),
    )  # fmt: skip


def build_pipeline(data_cfg: Mapping[str, Any], codec: HeatmapCodec, train: bool) -> TopDownPipeline:
    """The top-down pipeline of the dataset ``data.name`` with the run's codec: ``data.augment`` when
    ``train`` (training augmentation), none otherwise; ``data.color_rgb``."""
    augment = AugmentConfig(**data_cfg.get("augment", {})) if train else None
    return TopDownPipeline(dataset_spec(data_cfg), codec, augment, bool(data_cfg.get("color_rgb", True)))


def build_dataset(
    data_cfg: Mapping[str, Any], split: str, train: bool, codec: HeatmapCodec | None = None
) -> TopDownDataset:
    """The dataset of ``split`` described by a data config (``configs/data/*.yaml``), through its
    registration (:mod:`boxpose.data.registry`).

    Args:
        data_cfg: a plain mapping with the keys of ``configs/data/*.yaml`` (:data:`DATA_CONFIG_KEYS`);
            with a ``synthetic:`` block the synthetic data is generated under ``root`` first (once).
        split: "train", "val" or "test".
        train: apply training augmentation (False for evaluation, also of the training split).
        codec: the run's codec (default: :func:`build_codec` of ``data_cfg``, for a dataset on its own).

    ``train_fraction`` applies to the "train" split only.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    unknown = sorted(set(data_cfg) - DATA_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown data config keys {unknown}; known: {sorted(DATA_CONFIG_KEYS)}")
    entry = get_dataset_entry(data_cfg.get("name"))
    pipeline = build_pipeline(data_cfg, codec or build_codec(data_cfg), train)
    if data_cfg.get("synthetic"):
        ensure_synthetic(entry.name, data_cfg["root"], data_cfg["synthetic"])
    elif data_cfg.get("root") not in (None, ""):
        require_path(data_cfg["root"], f"{entry.name.upper()} dataset root", entry.root_layout, is_dir=True)
    subset: dict[str, Any] = {"max_failure_fraction": float(data_cfg.get("max_failure_fraction", 0.01))}
    if split == "train":
        subset["fraction"] = float(data_cfg.get("train_fraction", 1.0))
        subset["fraction_seed"] = int(data_cfg.get("train_fraction_seed", 0))
    return entry.from_config(data_cfg, split, pipeline, **subset)


# ----------------------------------------------------------------------------------------------------
# model, optimisation, evaluation, prediction


def build_model_from_config(model_cfg: Mapping[str, Any], num_joints: int) -> nn.Module:
    """The registered model ``model.name`` with the other ``model.*`` keys as its arguments."""
    kwargs = dict(model_cfg)
    return build_model(kwargs.pop("name"), num_joints=num_joints, **kwargs)


def build_schedule(schedule_cfg: Mapping[str, Any], base_lr: float) -> StepSchedule:
    """``schedule.milestones`` (epochs), ``schedule.gamma``, ``schedule.warmup_iters`` from ``optim.lr``."""
    return StepSchedule(
        base_lr=float(base_lr),
        milestones=list(schedule_cfg["milestones"]),
        gamma=float(schedule_cfg["gamma"]),
        warmup_iters=int(schedule_cfg.get("warmup_iters", 0)),
    )


def build_evaluator(
    dataset: TopDownDataset,
    data_cfg: Mapping[str, Any],
    evaluate_cfg: Mapping[str, Any],
    *,
    amp: str,
    channels_last: bool,
    progress: bool,
) -> Evaluator:
    """The evaluator of ``dataset`` with the metric its registration names and the ``evaluate.*`` settings
    (flip test, batch size, workers, the metric's options such as COCO's ``nms``, ``oks_thr``)."""
    entry = get_dataset_entry(data_cfg.get("name"))
    return Evaluator(
        dataset,
        build_metric(entry.metric, dict(evaluate_cfg)),
        split=str(evaluate_cfg.get("split", "val")),
        dataset_name=entry.name,
        batch_size=int(evaluate_cfg["batch_size"]),
        workers=int(evaluate_cfg["workers"]),
        flip_test=bool(evaluate_cfg["flip_test"]),
        flip_shift=int(evaluate_cfg["flip_shift"]),
        amp=amp,
        channels_last=channels_last,
        oracle=bool(evaluate_cfg.get("oracle", False)),
        progress=progress,
    )


def build_predictor(
    checkpoint_path: str | Path,
    device: str | torch.device = "cpu",
    *,
    prepare: bool = True,
    flip_test: bool = True,
    flip_shift: int = 1,
    decode: str = "quarter",
    amp: str = "none",
    batch_size: int = 32,
) -> Predictor:
    """A predictor for a training checkpoint: the model (prepared for inference unless ``prepare`` is
    False), its joint layout, and the codec and colour order of the run that trained it."""
    model, checkpoint = load_model(checkpoint_path, device, prepare=prepare)
    data_cfg = dict((checkpoint.get("config") or {}).get("data") or {})
    data_cfg.update(input_size=checkpoint["input_size"], heatmap_size=checkpoint["heatmap_size"])
    spec = get_spec(checkpoint.get("data_spec") or data_cfg.get("spec"))
    codec = build_codec(data_cfg, {"decode": decode})
    return Predictor(
        model, spec, codec, device, flip_test=flip_test, flip_shift=flip_shift,
        color_rgb=bool(data_cfg.get("color_rgb", True)), amp=amp, batch_size=batch_size,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# training


def build_trainer(
    cfg: dict[str, Any], *, model: nn.Module | None = None, callbacks: Sequence[Callback] = ()
) -> Trainer:
    """Everything a run needs, from a resolved configuration (the plain dict of ``configs/train.yaml``):
    process group, logging, seeds, codec, datasets, loader, model, optimizer, schedule, evaluator, the
    training logger, and the trainer (resumed if ``trainer.resume`` says so). Writes the resolved config
    to ``<output_dir>/config.yaml`` (``config.resumed-<n>.yaml`` when a resumed run's config differs).

    Args:
        cfg: the resolved training config; checked first (:func:`boxpose.config.validate_train_config`,
            a bad value raises :class:`~boxpose.config.ConfigError`).
        model: train this model instead of building ``model.*`` (e.g. one with frozen parameters; the
            optimizer takes its trainable parameters).
        callbacks: more callbacks after the :class:`~boxpose.engine.callbacks.TrainingLogger`, e.g. a
            study's measurements at the end of each epoch.
    """
    validate_train_config(cfg)
    output_dir = Path(cfg["output_dir"])
    tcfg, data_cfg, evaluate_cfg = cfg["trainer"], cfg["data"], cfg["evaluate"]
    device = distributed.setup(tcfg["device"])
    configure_logging(output_dir)
    resume_from = resolve_resume(tcfg.get("resume"), output_dir)
    seed_everything(int(cfg["seed"]))

    world = distributed.world_size()
    if tcfg["batch_size"] % world:
        raise ConfigError(
            f"trainer.batch_size={tcfg['batch_size']}: expected a multiple of the {world} processes"
        )
    spec = dataset_spec(data_cfg)
    codec = build_codec(data_cfg, evaluate_cfg)
    train_set = build_dataset(data_cfg, "train", train=True, codec=codec)
    val_set = build_dataset(data_cfg, evaluate_cfg.get("split", "val"), train=False, codec=codec)
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
    if model is None:
        model = build_model_from_config(cfg["model"], spec.num_joints)
    check_data_sizes(data_cfg, size_divisor=int(getattr(model, "size_divisor", 4)))
    optimizer = build_optimizer(model, **cfg["optim"])
    schedule = build_schedule(cfg["schedule"], cfg["optim"]["lr"])
    progress = bool(tcfg.get("progress", True))
    channels_last = resolve_channels_last(tcfg["channels_last"], device)
    evaluator = build_evaluator(
        val_set,
        data_cfg,
        evaluate_cfg,
        amp=tcfg["amp"],
        channels_last=channels_last,
        progress=progress,
    )
    logger = TrainingLogger(
        spec, codec, color_rgb=bool(data_cfg.get("color_rgb", True)), log_every=int(tcfg["log_every"]),
        image_every=int(tcfg["image_every"]), box_figure_every=int(tcfg["box_figure_every"]),
    )  # fmt: skip
    model_name = cfg["model"]["name"]
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
        callbacks=[logger, *callbacks],
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
