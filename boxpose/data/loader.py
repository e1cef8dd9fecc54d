"""Factories: a dataset from a data config mapping, and its DataLoader.

``build_dataset`` reads the plain keys of ``configs/data/<name>.yaml`` (the trainer passes
``OmegaConf.to_container(cfg.data, resolve=True)``); the dataset classes themselves never see a config
object. A config with a ``synthetic:`` block first makes sure the synthetic data exists under ``root``
(generating it on first use) and is then read by the ordinary MPII / COCO loader.
"""

from __future__ import annotations

import math
import random
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from boxpose.data.base import README_HINT, TopDownDataset, require_path
from boxpose.data.coco import COCODataset
from boxpose.data.layout import COCO_IMAGE_FOLDERS
from boxpose.data.mpii import MPIIDataset
from boxpose.data.pipeline import AugmentConfig
from boxpose.data.synthetic import ensure_synthetic
from boxpose.keypoints import get_spec

SPLITS = ("train", "val", "test")
DATASET_KINDS = ("mpii", "coco")
# The keys of configs/data/*.yaml.
CONFIG_KEYS = frozenset({
    "name", "spec", "root", "train_ann", "val_ann", "test_ann", "image_dir", "gt_mat", "det_file",
    "test_det_file", "det_score_thr", "input_size", "heatmap_size", "sigma", "color_rgb", "train_fraction",
    "train_fraction_seed", "max_failure_fraction", "augment", "synthetic",
})  # fmt: skip
# What a dataset root holds (for error messages).
_ROOT_LAYOUT = {
    "mpii": "annot/ (train.json, valid.json, test.json, gt_valid.mat) and images/",
    "coco": "annotations/ and train2017/, val2017/, test2017/ (or images/<split>2017/)",
}


def build_dataset(cfg: Mapping[str, Any], split: str, train: bool) -> TopDownDataset:
    """The dataset of ``split`` described by a data config.

    Args:
        cfg: a plain mapping with the keys of ``configs/data/*.yaml``: name ("mpii" | "coco"), spec,
            root, train_ann, val_ann, test_ann, image_dir, gt_mat (MPII), det_file, test_det_file,
            det_score_thr (COCO), input_size, heatmap_size, sigma, color_rgb, train_fraction,
            train_fraction_seed, max_failure_fraction, augment (a mapping of
            :class:`~boxpose.data.pipeline.AugmentConfig` fields), optionally synthetic (a mapping of
            :class:`~boxpose.data.synthetic.SyntheticParams` fields).
        split: "train", "val" or "test".
        train: apply training augmentation (False for evaluation, also of the training split).

    ``train_fraction`` applies to the "train" split only. MPII "val" reads ``gt_mat``; COCO "val" uses
    ``det_file`` (None = ground-truth boxes) and "test" uses ``test_ann`` with ``test_det_file``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown data config keys {unknown}; known: {sorted(CONFIG_KEYS)}")
    kind = cfg.get("name")
    if kind not in DATASET_KINDS:
        raise ValueError(f"data.name must be one of {DATASET_KINDS}, got {kind!r}")
    spec = get_spec(cfg.get("spec", kind))
    if spec.name != kind:
        raise ValueError(f"data.spec={spec.name!r} does not fit a {kind} dataset (its layout is {kind!r})")

    if cfg.get("synthetic"):
        ensure_synthetic(kind, cfg["root"], cfg["synthetic"])
    elif cfg.get("root") not in (None, ""):
        require_path(cfg["root"], f"{kind.upper()} dataset root", _ROOT_LAYOUT[kind], is_dir=True)

    common: dict[str, Any] = {
        "train": train,
        "input_size": tuple(cfg["input_size"]),
        "heatmap_size": tuple(cfg["heatmap_size"]),
        "sigma": float(cfg.get("sigma", 2.0)),
        "augment": AugmentConfig(**cfg.get("augment", {})) if train else None,
        "color_rgb": bool(cfg.get("color_rgb", True)),
        "max_failure_fraction": float(cfg.get("max_failure_fraction", 0.01)),
    }
    if split == "train":
        common["fraction"] = float(cfg.get("train_fraction", 1.0))
        common["fraction_seed"] = int(cfg.get("train_fraction_seed", 0))
    ann_file = cfg[f"{split}_ann"]

    if kind == "mpii":
        return MPIIDataset(
            ann_file, cfg["image_dir"], gt_mat=cfg.get("gt_mat") if split == "val" else None, **common
        )
    det_file = {"train": None, "val": cfg.get("det_file"), "test": cfg.get("test_det_file")}[split]
    if split == "test" and det_file is None:
        raise ValueError(
            "COCO test-dev has no annotations: set data.test_det_file to a person detection file"
        )
    return COCODataset(
        ann_file,
        coco_image_dir(cfg, split),
        det_file=det_file,
        det_score_thr=float(cfg.get("det_score_thr", 0.0)),
        **common,
    )


def coco_image_dir(cfg: Mapping[str, Any], split: str) -> Path:
    """The image folder of a COCO split: ``<image_dir>/<split>2017`` or ``<image_dir>/images/<split>2017``,
    where ``image_dir`` defaults to ``root``."""
    base = cfg.get("image_dir") or cfg.get("root")
    if base in (None, ""):
        raise FileNotFoundError(f"COCO images: set data.root or data.image_dir; {README_HINT}")
    folder = COCO_IMAGE_FOLDERS[split]
    candidates = [Path(base) / folder, Path(base) / "images" / folder]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"COCO {split} images not found: neither {candidates[0]} nor {candidates[1]} "
        f"is a folder. Expected the {folder} JPEGs there; {README_HINT}"
    )


class EpochSampler(Sampler):
    """Training sampler whose order and augmentations are a function of (seed, epoch) only.

    Each epoch it shuffles ``range(num_samples)`` with ``numpy.random.default_rng([seed, epoch])``, takes
    this process's share (as DistributedSampler: padded by repeating the first indices so every process
    gets ``ceil(num_samples / num_replicas)``, then every ``num_replicas``-th from ``rank``) and yields
    keys ``(index, seed, epoch)``; :class:`~boxpose.data.base.TopDownDataset` seeds the sample's
    augmentation from the key. So a sample's crop does not depend on the number of workers, and a run
    resumed with ``set_epoch(epoch, start_batch)`` continues with exactly the batches an uninterrupted
    run would have seen.

    Args:
        num_samples: dataset length.
        seed: base seed.
        batch_size: batch size per process (to skip ``start_batch`` batches).
        shuffle: shuffle each epoch (else in order).
        num_replicas, rank: the process group's size and this process's rank.
    """

    def __init__(
        self, num_samples: int, seed: int = 0, batch_size: int = 1, shuffle: bool = True,
        num_replicas: int = 1, rank: int = 0,
    ) -> None:  # fmt: skip
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.num_samples = num_samples
        self.seed = seed
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch, and skip its first ``start_batch`` batches (to resume inside an epoch)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        """Samples per process in a whole epoch (also when resuming inside one)."""
        return math.ceil(self.num_samples / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = len(self) * self.num_replicas
        order = np.resize(order, total)  # pads by repeating from the start
        mine = order[self.rank :: self.num_replicas][self.start_batch * self.batch_size :]
        return iter([(int(i), self.seed, self.epoch) for i in mine])


def worker_init_fn(worker_id: int) -> None:
    """Seed NumPy's and Python's global generators from torch's per-worker seed; keep OpenCV single-threaded
    inside workers (its own thread pool would oversubscribe the cores the workers already use); ignore
    Ctrl-C in workers (a terminal sends it to the whole process group), so that the trainer can finish its
    step and save a checkpoint before the workers are shut down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - the legacy global state, for third-party code that uses it
    random.seed(seed)
    cv2.setNumThreads(0)


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    workers: int = 4,
    pin_memory: bool = True,
    persistent_workers: bool = True,
    seed: int = 0,
    distributed: bool = False,
) -> DataLoader:
    """A DataLoader for training (shuffled, last incomplete batch dropped) or evaluation (in order).

    Training uses an :class:`EpochSampler`: call ``loader.sampler.set_epoch(epoch)`` every epoch
    (``set_epoch(epoch, start_batch)`` to resume inside one); the shuffling and every sample's
    augmentation are then determined by ``seed``, the epoch and the index, whatever the number of workers
    or processes.

    Args:
        dataset: a top-down dataset (or any dataset of default-collatable samples; for training its
            ``__getitem__`` receives the sampler's ``(index, seed, epoch)`` keys).
        batch_size: samples per batch (per process when distributed).
        train: shuffle, seed augmentations per epoch and drop the last incomplete batch.
        workers: worker processes (0 = load in the main process).
        pin_memory: page-locked batches for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (ignored with 0 workers).
        seed: seeds the order, the augmentations and the workers' torch seeds.
        distributed: split the data between the processes of the default process group.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    replicas, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
    sampler: Sampler | None = None
    if train:
        sampler = EpochSampler(
            len(dataset), seed=seed, batch_size=batch_size, num_replicas=replicas, rank=rank
        )
        if len(sampler) < batch_size:
            raise ValueError(
                f"training needs at least one full batch: {len(sampler)} samples per process < "
                f"batch_size {batch_size}"
            )
    elif distributed:
        sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=train,
        persistent_workers=persistent_workers and workers > 0,
        worker_init_fn=worker_init_fn if workers > 0 else None,
        generator=generator,
    )
