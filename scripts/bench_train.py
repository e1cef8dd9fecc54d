"""Images/s of a full training step of each model, with and without data loading; prints one JSON object.

A step is the trainer's own (:meth:`boxpose.engine.trainer.Trainer.train_step`): forward, masked heatmap
MSE, backward, optimizer step and box projection, with the configured AMP and memory format.

- ``with_data``: every batch comes from the real training DataLoader (JPEG decoding, augmentation,
  affine crops, Gaussian targets; ``--workers`` processes), on the synthetic MPII-format dataset.
- ``without_data``: one batch is loaded once and reused, which gives the model's time alone.

    python scripts/bench_train.py                                  # CPU: batch 8, 128x128, fp32
    python scripts/bench_train.py --device cuda                    # batch 64, 256x256, bf16, channels-last
    python scripts/bench_train.py --models boxnet_tiny boxnet --steps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from typing import Any

import torch

from boxpose.builders import build_trainer
from boxpose.config import compose_config

CPU_MODELS = ["boxnet_tiny", "boxnet", "boxnet_3x3", "boxnet_dilated", "simple_baseline_r50"]
CUDA_MODELS = [*CPU_MODELS, "hourglass8"]


def build(model: str, args: argparse.Namespace, output_dir: str):
    size = args.size
    overrides = [
        "data=synthetic_mpii", f"model={model}", f"data.root={args.data_root}",
        f"data.input_size=[{size},{size}]", f"data.heatmap_size=[{size // 4},{size // 4}]",
        f"trainer.batch_size={args.batch}", f"trainer.workers={args.workers}",
        f"trainer.device={args.device}",
        f"trainer.amp={args.amp}", f"trainer.channels_last={str(args.channels_last).lower()}",
        "trainer.progress=false", "evaluate.workers=0", "run_name=bench", f"output_dir={output_dir}",
    ]  # fmt: skip
    return build_trainer(compose_config("train", overrides))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build(model, args, output_dir)
        trainer.model.train()
        batches = iter(trainer.train_loader)
        for _ in range(args.warmup):
            trainer.train_step(next(batches))
        _sync(args.device)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(next(batches))
        _sync(args.device)
        with_data = time.perf_counter() - start
        batch = next(batches)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(batch)
        _sync(args.device)
        without_data = time.perf_counter() - start
        images = args.steps * args.batch
        result = {
            "model": model,
            "images_per_s_with_data": round(images / with_data, 2),
            "images_per_s_without_data": round(images / without_data, 2),
            "ms_per_step_with_data": round(1000 * with_data / args.steps, 1),
            "ms_per_step_without_data": round(1000 * without_data / args.steps, 1),
        }
        if args.device == "cuda":
            result["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
            torch.cuda.reset_peak_memory_stats()
        del trainer
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--models", nargs="+", default=None, help="default: CPU or CUDA list")
    parser.add_argument("--batch", type=int, default=None, help="default 8 (CPU) / 64 (CUDA)")
    parser.add_argument(
        "--size", type=int, default=None, help="square input size; default 128 (CPU) / 256 (CUDA)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers; default 0 (CPU) / 8 (CUDA)"
    )
    parser.add_argument(
        "--amp", choices=["none", "bf16", "fp16"], default=None, help="default none (CPU) / bf16"
    )
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--data-root", default="data/synthetic/mpii", help="synthetic MPII data (made if absent)"
    )
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    args.models = args.models or (CUDA_MODELS if cuda else CPU_MODELS)
    args.batch = args.batch or (64 if cuda else 8)
    args.size = args.size or (256 if cuda else 128)
    args.workers = args.workers if args.workers is not None else (8 if cuda else 0)
    args.amp = args.amp or ("bf16" if cuda else "none")
    args.channels_last = cuda if args.channels_last is None else args.channels_last
    machine = {
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if cuda else None,
    }
    setting_names = ("device", "batch", "size", "workers", "amp", "channels_last", "steps")
    report = {
        "machine": machine,
        "settings": {k: getattr(args, k) for k in setting_names},
        "results": [bench_model(model, args) for model in args.models],
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
