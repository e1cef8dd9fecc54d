"""Training throughput and peak memory of the paper's models; prints one JSON object.

One training step = forward, MSE loss against a target heatmap, backward, Adam step and the box
projection the trainer applies (``project_boxes_``). Inference = the forward pass in eval mode without
gradients, same batch, precision and memory format. Two settings:

- CUDA (when a GPU is present): batch 64 at 256x256, bf16 autocast, channels-last, timed with CUDA
  events after warm-up; peak memory = ``torch.cuda.max_memory_allocated`` during the timed training
  steps.
- CPU (unless ``--skip-cpu``): batch 8 at 128x128, fp32, contiguous, a few steps timed with
  ``perf_counter``; peak memory = the process's maximum resident set size after the model's steps
  (monotone over the run).

``--compile`` runs the model through ``torch.compile`` (warm-up steps include the compilation).

    python scripts/bench_models.py                       # both settings where possible
    python scripts/bench_models.py --skip-cuda --cpu-iters 5 --models boxnet boxnet_tiny
    python scripts/bench_models.py --skip-cpu --compile --models boxnet simple_baseline_r50
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from functools import partial
from typing import Any

import torch
from torch import nn

from boxpose.models import build_model, list_models
from boxpose.nn import project_boxes_

DEFAULT_MODELS = ["boxnet", "boxnet_3x3", "boxnet_dilated", "simple_baseline_r50"]


def _loss(output: torch.Tensor | list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    outputs = output if isinstance(output, list) else [output]
    return sum(nn.functional.mse_loss(o.float(), target) for o in outputs)


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    amp: torch.dtype | None,
) -> None:
    with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
        output = model(x)
    loss = _loss(output, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    project_boxes_(model)


def _inference_step(model: nn.Module, x: torch.Tensor, amp: torch.dtype | None) -> None:
    with torch.no_grad(), torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
        model(x)


def _setup(
    name: str,
    num_joints: int,
    batch: int,
    size: tuple[int, int],
    device: torch.device,
    channels_last: bool,
    compile: bool,
) -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    """(model, optimizer, input, target); the model is torch.compile'd if ``compile`` (the optimizer and the
    box projection see the plain module's parameters, as in the trainer)."""
    model = build_model(name, num_joints=num_joints).to(device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if compile:
        model = torch.compile(model)
    width, height = size  # input_size order, as data.input_size
    x = torch.randn(batch, 3, height, width, device=device).contiguous(memory_format=memory_format)
    target = torch.rand(batch, num_joints, height // 4, width // 4, device=device)
    return model, optimizer, x, target


def _time_cuda(step, iters: int) -> float:
    """Milliseconds per call of ``step``, timed with CUDA events over ``iters`` calls."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        step()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def _median_ms_cpu(step, iters: int) -> float:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000.0 * sorted(times)[len(times) // 2]


def bench_cuda(name: str, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device("cuda")
    size = tuple(args.cuda_size)
    model, optimizer, x, target = _setup(
        name, args.num_joints, args.cuda_batch, size, device, True, args.compile
    )
    amp = torch.bfloat16
    for _ in range(args.cuda_warmup):
        _train_step(model, optimizer, x, target, amp)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = _time_cuda(partial(_train_step, model, optimizer, x, target, amp), args.cuda_iters)
    peak_mb = torch.cuda.max_memory_allocated() / 2**20
    model.eval()
    for _ in range(args.cuda_warmup):
        _inference_step(model, x, amp)
    torch.cuda.synchronize()
    inference_ms = _time_cuda(partial(_inference_step, model, x, amp), args.cuda_iters)
    result = {
        "model": name,
        "batch": args.cuda_batch,
        "input_size": list(size),
        "amp": "bf16",
        "channels_last": True,
        "compile": args.compile,
        "ms_per_step": round(ms, 2),
        "images_per_s": round(args.cuda_batch * 1000.0 / ms, 1),
        "peak_memory_mb": round(peak_mb, 1),
        "inference_ms_per_batch": round(inference_ms, 2),
        "inference_images_per_s": round(args.cuda_batch * 1000.0 / inference_ms, 1),
    }
    del model, optimizer, x, target
    torch.cuda.empty_cache()
    return result


def bench_cpu(name: str, args: argparse.Namespace) -> dict[str, Any]:
    size = tuple(args.cpu_size)
    model, optimizer, x, target = _setup(
        name, args.num_joints, args.cpu_batch, size, torch.device("cpu"), False, args.compile
    )
    for _ in range(args.cpu_warmup):
        _train_step(model, optimizer, x, target, None)
    ms = _median_ms_cpu(partial(_train_step, model, optimizer, x, target, None), args.cpu_iters)
    model.eval()
    for _ in range(args.cpu_warmup):
        _inference_step(model, x, None)
    inference_ms = _median_ms_cpu(partial(_inference_step, model, x, None), args.cpu_iters)
    return {
        "model": name,
        "batch": args.cpu_batch,
        "input_size": list(size),
        "amp": "none",
        "channels_last": False,
        "compile": args.compile,
        "ms_per_step": round(ms, 1),
        "images_per_s": round(args.cpu_batch * 1000.0 / ms, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "inference_ms_per_batch": round(inference_ms, 1),
        "inference_images_per_s": round(args.cpu_batch * 1000.0 / inference_ms, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list_models())
    parser.add_argument("--num-joints", type=int, default=17)
    parser.add_argument("--cuda-batch", type=int, default=64)
    parser.add_argument("--cuda-size", type=int, nargs=2, default=[256, 256], metavar=("W", "H"))
    parser.add_argument("--cuda-warmup", type=int, default=10)
    parser.add_argument("--cuda-iters", type=int, default=30)
    parser.add_argument("--skip-cuda", action="store_true", help="CPU setting only, even with a GPU")
    parser.add_argument("--skip-cpu", action="store_true", help="no CPU setting")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--cpu-batch", type=int, default=8)
    parser.add_argument("--cpu-size", type=int, nargs=2, default=[128, 128], metavar=("W", "H"))
    parser.add_argument("--cpu-warmup", type=int, default=1)
    parser.add_argument("--cpu-iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    report: dict[str, Any] = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda_device": None,
        "cuda": None,
        "cpu": [],
    }
    if torch.cuda.is_available() and not args.skip_cuda:
        torch.backends.cudnn.benchmark = True
        report["cuda_device"] = torch.cuda.get_device_name()
        report["cuda"] = [bench_cuda(name, args) for name in args.models]
    if not args.skip_cpu:
        report["cpu"] = [bench_cpu(name, args) for name in args.models]
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
