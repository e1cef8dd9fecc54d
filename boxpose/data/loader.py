"""Data loading: the epoch-seeded training sampler (exact resume, augmentation independent of the number
of workers and processes) and the DataLoader of a dataset. (Datasets are built from a config by
:func:`boxpose.builders.build_dataset`.)"""

from __future__ import annotations

import math
import random
import signal
from collections.abc import Iterator

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


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
