"""Inference and training time per image of BoxNet, its ablations and SimpleBaseline-R50; prints one JSON
object (with the ratios SimpleBaseline time / BoxNet time under ``"ratios"`` and ``"paired_ratios"``, and
the models' arithmetic rates relative to SimpleBaseline's under ``"rate_ratios"``).

All figures of one setting come from one process, interleaved: every round times each variant once,
starting one variant later each round (A B C, B C A, C A B, ...), and a time is the median over the
rounds, so that a change in the machine's load hits every variant alike. ``"ratios"`` divide the medians;
``"paired_ratios"`` divide the two times of each round (taken seconds apart, under the same load) and
give the median and quartiles of those ratios over the rounds: the spread says how far to trust the
figure on a shared machine. Settings:

- CPU inference: batch 4 at 256x256, fp32, eval mode, ``torch.no_grad``; NCHW and channels-last, the
  eager model and :func:`boxpose.models.prepare_for_inference` of it (BatchNorms folded).
- CPU training step: batch 8 at 128x128, fp32: forward, MSE loss against a target heatmap, backward,
  Adam step and the box projection the trainer applies (``project_boxes_``); NCHW and channels-last.
- The box op's forward at (8, 192, 64, 64), k = 25, fp32, NCHW and NHWC, against ``x.clone()`` of the
  same tensor (one read and one write: the memory-bandwidth limit); ``--op-rounds`` rounds (50: a call
  takes milliseconds, and single calls vary by tens of percent on a shared machine).
- CUDA (when a GPU is present): inference (batch 64, bf16 autocast) and the training step (batch 64,
  256x256, bf16 autocast, channels-last), timed with CUDA events; each row's peak memory: the most one
  call allocates above what is resident before it (every variant's weights and optimizer state stay
  resident together, so they are not counted), and the setting's overall peak.

Every row gives ms per batch, ms per image and images/s; CPU rows the minor page faults of one call
(``page_faults``), inference rows the arithmetic rate (``gmacs_per_s``, from the true MAC count). Each
setting also gives every model's true MACs per image (``exact_gmacs_per_image``: a transposed convolution
costed at its input resolution, not in the paper's HRNet convention, which charges SimpleBaseline's
deconvolutions 4 times) and ``sb_over_model_macs``, the time ratio that equal arithmetic rates would give.
Freed memory is kept in the process as the command-line tools keep it (boxpose/engine/memory.py);
``BOXPOSE_RETAIN_MEMORY=0`` measures the C library's default. ``--compile`` runs every model through
``torch.compile`` (the warm-up calls include the compilation); inference then times only the compiled
prepared model.

    python scripts/bench_models.py                                  # everything, 2 threads, 5 rounds
    python scripts/bench_models.py --skip-cuda --cpu-iters 5 --models boxnet boxnet_tiny
    python scripts/bench_models.py --only inference --formats channels_last --rounds 3
    python scripts/bench_models.py --only cuda --compile --models boxnet --formats channels_last
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from boxpose.engine.memory import retain_freed_memory
from boxpose.engine.timing import interleaved_times, medians, paired_ratio
from boxpose.models import build_model, list_models, prepare_for_inference
from boxpose.models.counting import count_macs
from boxpose.nn import project_boxes_
from boxpose.ops import box_conv2d

DEFAULT_MODELS = ["boxnet", "boxnet_3x3", "boxnet_dilated", "simple_baseline_r50"]
BASELINE = "simple_baseline_r50"
FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
SETTINGS = ("inference", "training", "op", "cuda")


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


def _inference_calls(
    models: list[str],
    formats: list[str],
    num_joints: int,
    batch: int,
    size: tuple[int, int],
    device: torch.device,
    amp: torch.dtype | None,
    compile: bool,
) -> dict[str, Callable[[], Any]]:
    calls: dict[str, Callable[[], Any]] = {}
    for name in models:
        model = build_model(name, num_joints=num_joints).to(device).eval()
        for fmt in formats:
            layout = FORMATS[fmt]
            width, height = size  # (W, H), as data.input_size
            x = torch.randn(batch, 3, height, width, device=device).contiguous(memory_format=layout)
            prepared = prepare_for_inference(model, fmt if fmt == "channels_last" else "contiguous")
            if compile:
                variants = {"prepared": torch.compile(prepared)}
            else:
                variants = {"eager": copy.deepcopy(model).to(memory_format=layout), "prepared": prepared}
            for kind, net in variants.items():

                def run(net: nn.Module = net, x: torch.Tensor = x) -> None:
                    with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                        net(x)

                calls[f"{name}|{fmt}|{kind}"] = run
    return calls


def _training_calls(
    models: list[str],
    formats: list[str],
    num_joints: int,
    batch: int,
    size: tuple[int, int],
    device: torch.device,
    amp: torch.dtype | None,
    compile: bool,
) -> dict[str, Callable[[], Any]]:
    calls: dict[str, Callable[[], Any]] = {}
    for name in models:
        for fmt in formats:
            layout = FORMATS[fmt]
            model = build_model(name, num_joints=num_joints).to(device).train().to(memory_format=layout)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            if compile:
                model = torch.compile(model)  # the optimizer and project_boxes_ see the same parameters
            width, height = size  # (W, H), as data.input_size
            x = torch.randn(batch, 3, height, width, device=device).contiguous(memory_format=layout)
            target = torch.rand(batch, num_joints, height // 4, width // 4, device=device)

            def step(model=model, optimizer=optimizer, x=x, target=target) -> None:
                _train_step(model, optimizer, x, target, amp)

            calls[f"{name}|{fmt}|train"] = step
    return calls


def peak_memory_mb(calls: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """CUDA: the most each call allocates above what is allocated before it (MiB), one untimed call each."""
    peaks = {}
    for key, fn in calls.items():
        torch.cuda.synchronize()
        resident = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peaks[key] = round((torch.cuda.max_memory_allocated() - resident) / 2**20, 1)
    return peaks


def page_faults_per_call(calls: dict[str, Callable[[], Any]]) -> dict[str, int]:
    """CPU: the minor page faults of one untimed call of each (memory the kernel had to map and zero-fill
    during the call; see boxpose/engine/memory.py)."""
    faults = {}
    for key, fn in calls.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        faults[key] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return faults


def exact_gmacs(models: list[str], num_joints: int, size: tuple[int, int]) -> dict[str, float]:
    """Each model's true multiply-accumulates per image, in 10^9 (``count_macs(convention="exact")``: a
    transposed convolution at its input resolution, unlike the paper's HRNet-convention counts)."""
    return {
        name: round(count_macs(build_model(name, num_joints=num_joints), size, convention="exact").giga, 3)
        for name in models
    }


def _rows(
    medians: dict[str, float],
    batch: int,
    peaks: dict[str, float],
    faults: dict[str, int],
    gmacs: dict[str, float],
) -> list[dict[str, Any]]:
    rows = []
    for key, ms in medians.items():
        name, fmt, kind = key.split("|")
        row = {
            "model": name,
            "memory_format": fmt,
            "variant": kind,
            "ms_per_batch": round(ms, 2),
            "ms_per_image": round(ms / batch, 2),
            "images_per_s": round(1000.0 * batch / ms, 1),
        }
        if key in peaks:
            row["peak_memory_mb"] = peaks[key]
        if key in faults:
            row["page_faults"] = faults[key]
        if kind != "train":  # forward only: the arithmetic rate
            row["gmacs_per_s"] = round(gmacs[name] * batch / ms * 1000.0, 1)
        rows.append(row)
    return rows


def best_times(rows: list[dict[str, Any]], variants: tuple[str, ...]) -> dict[str, float]:
    """Each model's fastest ms per image over the memory formats, among ``variants``."""
    return {model: row["ms_per_image"] for model, row in best_rows(rows, variants).items()}


def best_rows(rows: list[dict[str, Any]], variants: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Each model's fastest row (by ms per image) over the memory formats, among ``variants``."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["variant"] in variants:
            if row["model"] not in best or row["ms_per_image"] < best[row["model"]]["ms_per_image"]:
                best[row["model"]] = row
    return best


def paired_baseline_ratios(
    rows: list[dict[str, Any]], variants: tuple[str, ...], times: dict[str, list[float]]
) -> dict[str, dict[str, float]]:
    """SimpleBaseline's time / each other model's, per round (each model at its fastest memory format, as
    in :func:`best_times`), summarised by :func:`paired_ratio`."""
    best = best_rows(rows, variants)
    if BASELINE not in best:
        return {}

    def key(row: dict[str, Any]) -> str:
        return f"{row['model']}|{row['memory_format']}|{row['variant']}"

    baseline = times[key(best[BASELINE])]
    return {
        f"sb_over_{name}": paired_ratio(baseline, times[key(row)])
        for name, row in best.items()
        if name != BASELINE
    }


def rate_ratios(time_ratios: dict[str, float], mac_ratios: dict[str, float]) -> dict[str, float]:
    """Each model's arithmetic rate (true MACs per second) / SimpleBaseline's: its time ratio divided by
    the time ratio equal rates would give (``sb_over_model_macs``). 1 means the model runs its
    multiply-adds as fast as SimpleBaseline runs its own."""
    return {key: round(ratio / mac_ratios[key], 3) for key, ratio in time_ratios.items() if key in mac_ratios}


def baseline_ratios(best: dict[str, float]) -> dict[str, float]:
    """SimpleBaseline's time / each other model's time (> 1: the model is faster than SimpleBaseline)."""
    if BASELINE not in best:
        return {}
    return {f"sb_over_{name}": round(best[BASELINE] / ms, 3) for name, ms in best.items() if name != BASELINE}


def bench_setting(
    kind: str,
    args: argparse.Namespace,
    device: torch.device,
    batch: int,
    size: tuple[int, int],
    amp: torch.dtype | None,
    formats: list[str],
) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    build = _inference_calls if kind == "inference" else _training_calls
    calls = build(args.models, formats, args.num_joints, batch, size, device, amp, args.compile)
    times = interleaved_times(calls, args.rounds, args.warmup, device)
    overall_peak_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None
    peaks = peak_memory_mb(calls) if device.type == "cuda" else {}
    faults = page_faults_per_call(calls) if device.type == "cpu" else {}
    gmacs = exact_gmacs(args.models, args.num_joints, size)
    rows = _rows(medians(times), batch, peaks, faults, gmacs)
    result: dict[str, Any] = {
        "batch": batch,
        "input_size": list(size),
        "amp": "bf16" if amp is not None else "none",
        "compile": args.compile,
        "rounds": args.rounds,
        "exact_gmacs_per_image": gmacs,
        "results": rows,
    }
    if BASELINE in gmacs:
        # The time ratio that equal arithmetic rates would give: SimpleBaseline's MACs / the model's.
        result["sb_over_model_macs"] = {
            f"sb_over_{name}": round(gmacs[BASELINE] / g, 3) for name, g in gmacs.items() if name != BASELINE
        }
    classes = {"_prepared": ("prepared",), "_eager": ("eager",)} if kind == "inference" else {"": ("train",)}
    for suffix, variants in classes.items():
        result[f"sb_over_model{suffix}"] = baseline_ratios(best_times(rows, variants))
        result[f"paired_sb_over_model{suffix}"] = paired_baseline_ratios(rows, variants, times)
    if overall_peak_mb is not None:
        result["peak_memory_mb"] = overall_peak_mb  # every variant resident at once
    return result


def bench_op(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The box op's forward at (8, 192, 64, 64), k = 25, fp32, NCHW and NHWC, against x.clone()."""
    shape, k = (8, 192, 64, 64), 25
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(shape[1], 4, generator=generator) * 2 - 1
    boxes = torch.stack(
        [
            torch.minimum(corners[:, 0], corners[:, 1]),
            torch.maximum(corners[:, 0], corners[:, 1]),
            torch.minimum(corners[:, 2], corners[:, 3]),
            torch.maximum(corners[:, 2], corners[:, 3]),
        ],
        1,
    ).to(device)
    calls: dict[str, Callable[[], Any]] = {}
    for fmt, layout in FORMATS.items():
        x = torch.randn(shape, device=device).contiguous(memory_format=layout)
        calls[f"box|{fmt}"] = lambda x=x: box_conv2d(x, boxes, k)
        calls[f"clone|{fmt}"] = lambda x=x: x.clone()
    times = interleaved_times(calls, args.op_rounds, args.warmup, device)
    median = medians(times)
    result: dict[str, Any] = {"shape": list(shape), "max_size": k, "dtype": "float32"}
    result["rounds"] = args.op_rounds
    for fmt in FORMATS:
        box, clone = median[f"box|{fmt}"], median[f"clone|{fmt}"]
        result[fmt] = {
            "box_ms": round(box, 3),
            "clone_ms": round(clone, 3),
            "box_over_clone": round(box / clone, 2),
            "box_over_clone_paired": paired_ratio(times[f"box|{fmt}"], times[f"clone|{fmt}"]),
        }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list_models())
    parser.add_argument("--num-joints", type=int, default=17)
    parser.add_argument("--only", nargs="+", choices=SETTINGS, default=list(SETTINGS), help="settings to run")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; figures are medians")
    parser.add_argument("--cpu-iters", type=int, default=None, help="same as --rounds (older name)")
    parser.add_argument("--op-rounds", type=int, default=50, help="interleaved rounds of the op setting")
    parser.add_argument("--warmup", "--cpu-warmup", type=int, default=1, help="untimed calls per variant")
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--infer-size", type=int, nargs=2, default=[256, 256], metavar=("W", "H"))
    parser.add_argument("--cpu-batch", type=int, default=8, help="training batch on the CPU")
    parser.add_argument("--cpu-size", type=int, nargs=2, default=[128, 128], metavar=("W", "H"))
    parser.add_argument("--cuda-batch", type=int, default=64)
    parser.add_argument("--cuda-size", type=int, nargs=2, default=[256, 256], metavar=("W", "H"))
    parser.add_argument("--cuda-warmup", type=int, default=10)
    parser.add_argument("--cuda-iters", type=int, default=20, help="interleaved rounds on the GPU")
    parser.add_argument("--skip-cuda", action="store_true", help="CPU settings only, even with a GPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.cpu_iters is not None:
        args.rounds = args.cpu_iters
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    retained = retain_freed_memory()  # as the command-line tools do; BOXPOSE_RETAIN_MEMORY=0 to compare

    report: dict[str, Any] = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "retain_freed_memory": retained,
        "cuda_device": None,
        "cpu": {},
        "op": None,
        "cuda": None,
        "ratios": {},
        "paired_ratios": {},
        "rate_ratios": {},
    }
    if "inference" in args.only:
        batch, size = args.infer_batch, tuple(args.infer_size)
        report["cpu"]["inference"] = bench_setting("inference", args, cpu, batch, size, None, args.formats)
    if "training" in args.only:
        batch, size = args.cpu_batch, tuple(args.cpu_size)
        report["cpu"]["training"] = bench_setting("training", args, cpu, batch, size, None, args.formats)
    if "op" in args.only:
        report["op"] = bench_op(args, cpu)
    if "cuda" in args.only and torch.cuda.is_available() and not args.skip_cuda:
        torch.backends.cudnn.benchmark = True
        cuda = torch.device("cuda")
        report["cuda_device"] = torch.cuda.get_device_name()
        gpu_args = argparse.Namespace(**{**vars(args), "rounds": args.cuda_iters, "warmup": args.cuda_warmup})
        batch, size = args.cuda_batch, tuple(args.cuda_size)
        report["cuda"] = {
            "inference": bench_setting(
                "inference", gpu_args, cuda, batch, size, torch.bfloat16, args.formats
            ),
            "training": bench_setting(
                "training", gpu_args, cuda, batch, size, torch.bfloat16, ["channels_last"]
            ),
            "op": bench_op(gpu_args, cuda),
        }
    for where, settings in (("cpu", report["cpu"]), ("cuda", report["cuda"] or {})):
        for kind, result in settings.items():
            for key, ratios in result.items():
                if key.startswith("sb_over_model") and key != "sb_over_model_macs" and ratios:
                    name = f"{where}_{kind}{key.removeprefix('sb_over_model')}"
                    report["ratios"][name] = ratios
                    report["paired_ratios"][name] = result[f"paired_{key}"]
                    report["rate_ratios"][name] = rate_ratios(ratios, result.get("sb_over_model_macs", {}))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
