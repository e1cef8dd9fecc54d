#!/usr/bin/env python
"""Training data pipeline throughput: images/s of build_dataset + build_dataloader, printed as JSON.

Reads ``configs/data/<data>.yaml`` (default the synthetic MPII data, generated on first use; the time
of that generation is reported when it happens) and times training batches (augmentation on) for each
number of workers, after a warm-up that also starts the workers.

Examples:
  python scripts/bench_data.py                                   # synthetic MPII, 256 x 256, 0 and 2 workers
  python scripts/bench_data.py --workers 0 2 4 --input-size 128 128 --heatmap-size 32 32
  python scripts/bench_data.py --data mpii --override data.root=/datasets/mpii
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from boxpose.builders import build_dataset
from boxpose.config import compose_config
from boxpose.data import build_dataloader
from boxpose.data.synthetic import MARKER_FILE


def load_data_config(name: str, overrides: list[str]) -> dict:
    """The ``data`` block of the training config with ``data=<name>`` and ``overrides``, as
    ``boxpose-train data=<name> <overrides>`` would read it. (``run_name`` is set because its default
    interpolates Hydra's runtime choices, which exist only under ``@hydra.main``.)"""
    return compose_config("train", [f"data={name}", "run_name=bench_data", *overrides])["data"]


def time_loader(dataset, batch_size: int, workers: int, batches: int, warmup: int) -> dict:
    loader = build_dataloader(dataset, batch_size=batch_size, train=True, workers=workers, pin_memory=False,
                              persistent_workers=False, seed=0)  # fmt: skip
    loader.sampler.set_epoch(0)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["image"].shape[0]
    seconds = time.perf_counter() - start
    return {
        "workers": workers,
        "images": n,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic_mpii", help="configs/data/<name>.yaml")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides, e.g. data.root=...")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    parser.add_argument("--input-size", type=int, nargs=2, help="override data.input_size (width height)")
    parser.add_argument("--heatmap-size", type=int, nargs=2, help="override data.heatmap_size")
    args = parser.parse_args(argv)

    overrides = list(args.override)
    if args.input_size:
        overrides.append(f"data.input_size=[{args.input_size[0]},{args.input_size[1]}]")
    if args.heatmap_size:
        overrides.append(f"data.heatmap_size=[{args.heatmap_size[0]},{args.heatmap_size[1]}]")
    cfg = load_data_config(args.data, overrides)
    fresh = bool(cfg.get("synthetic")) and not (Path(cfg["root"]) / MARKER_FILE).is_file()
    start = time.perf_counter()
    dataset = build_dataset(cfg, "train", train=True)
    setup_s = time.perf_counter() - start

    torch.set_num_threads(1)  # the main process only collates here
    report = {
        "data": args.data,
        "root": str(Path(cfg["root"]).absolute()),
        "samples": len(dataset),
        "input_size": list(dataset.input_size),
        "heatmap_size": list(dataset.heatmap_size),
        "batch_size": args.batch_size,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        ("generation_and_setup_s" if fresh else "setup_s"): round(setup_s, 2),
        "results": [
            time_loader(dataset, args.batch_size, w, args.batches, args.warmup) for w in args.workers
        ],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
