"""Distributed helpers: process-group setup from torchrun's environment, rank queries, gathering.

``torchrun --nproc_per_node=G -m boxpose.train ...`` sets RANK, LOCAL_RANK and WORLD_SIZE; every
process then trains a replica under DistributedDataParallel (NCCL on GPUs, gloo on CPUs). Multi-node
runs use torchrun's rendezvous (``--nnodes``, ``--rdzv-backend=c10d --rdzv-endpoint=HOST:PORT``).
Without those variables everything runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def setup(device: str) -> torch.device:
    """Initialise the process group if launched by torchrun; returns this process's device.

    Args:
        device: "auto", "cpu" or "cuda". With "auto", CUDA if available.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device=cuda, but no CUDA device is available")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    # BOXPOSE_DIST_BACKEND=gloo lets several processes share a GPU (NCCL refuses two ranks on one
    # device): scripts/gpu_check.py's DDP check on a one-GPU machine. Rank r then uses GPU r mod count.
    backend = os.environ.get("BOXPOSE_DIST_BACKEND") or ("nccl" if use_cuda else "gloo")
    gpu = local_rank % torch.cuda.device_count() if use_cuda and backend == "gloo" else local_rank
    if env_world_size() > 1 and not is_distributed():
        if use_cuda:
            torch.cuda.set_device(gpu)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    if use_cuda:
        return torch.device("cuda", gpu if env_world_size() > 1 else torch.cuda.current_device())
    return torch.device("cpu")


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (a one-element list without distribution)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
