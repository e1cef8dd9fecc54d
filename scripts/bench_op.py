"""Benchmark box_conv2d against dense depthwise convolutions; prints one JSON object.

For each device, dtype, shape (N, C, H, W) and box size k it times the forward pass and forward+backward
(gradients for the input and the filter parameters, as in training) of:

- ``box``: box_conv2d with one box per channel (16 MACs per output, whatever k);
- ``dense``: a k x k depthwise conv2d (cuDNN / oneDNN), the cost a plain large kernel has;
- ``dilated4x4``: a 4x4 depthwise conv with the same receptive field (k = 3d + 1, so d = (k-1)/3),
  the paper's cost-matched baseline.

CPU timings use torch.utils.benchmark (median of blocked runs); CUDA timings use CUDA events after a
warm-up, with cudnn.benchmark on. For the CUDA forward it reports the effective bandwidth counting one
read of the input and one write of the output, next to a measured device-to-device copy.

    python scripts/bench_op.py                 # the issue's target shapes on the CPU (and CUDA if present)
    python scripts/bench_op.py --preset network --device cuda
    python scripts/bench_op.py --preset quick  # seconds; used by the tests
    python scripts/bench_op.py --versus-clone --device cpu --threads 2   # forward vs x.clone(), NCHW and NHWC

``--versus-clone`` times the box forward (fp32, no grad) of each shape of the preset in NCHW and in
channels-last (NHWC) against ``x.clone()`` of the same tensor, the memory-bandwidth limit of an op that
reads its input once and writes an output of the same size. The two are timed in alternation, and the
medians of ``--repeats`` runs are reported with their ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark

from boxpose.ops import box_conv2d, get_impl

# preset -> device -> list of (N, C, H, W, k)
PRESETS: dict[str, dict[str, list[tuple[int, int, int, int, int]]]] = {
    "target": {
        "cpu": [(8, 192, 64, 64, 25)],
        "cuda": [(64, 384, 64, 64, 31)],
    },
    "network": {
        "cpu": [(8, 192, 64, 64, k) for k in (13, 25, 31)],
        "cuda": [(n, c, 64, 64, k) for n, c in ((8, 192), (64, 384)) for k in (13, 25, 31)]
        + [(64, 384, 64, 48, 31)],
    },
    "quick": {
        "cpu": [(1, 8, 16, 16, 13)],
        "cuda": [(2, 16, 32, 32, 13)],
    },
}

# Nominal peak memory bandwidth (GB/s) by device name, for the fraction-of-peak figure.
NOMINAL_BANDWIDTH_GBPS = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H100 NVL": 3900.0, "H200": 4800.0}


def dilation_for(k: int) -> int:
    """The 4x4 kernel's dilation with the same receptive field: 3d + 1 = k (rounded up)."""
    return max(1, -(-(k - 1) // 3))


def make_case(op: str, shape, k: int, device: str, dtype: torch.dtype):
    """(inputs, fn) where fn(*inputs) runs the op; inputs that need gradients have requires_grad."""
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, device=device, dtype=dtype, requires_grad=True)
    param_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    if op == "box":
        boxes = torch.rand(c, 4, device=device, dtype=param_dtype) - 0.5
        boxes = torch.stack(
            [
                boxes[:, :2].min(1).values,
                boxes[:, :2].max(1).values,
                boxes[:, 2:].min(1).values,
                boxes[:, 2:].max(1).values,
            ],
            1,
        ).requires_grad_()
        return (x, boxes), lambda a, b: box_conv2d(a, b, k)
    if op == "dense":
        weight = torch.randn(c, 1, k, k, device=device, dtype=dtype, requires_grad=True)
        return (x, weight), lambda a, wt: F.conv2d(a, wt, padding=(k - 1) // 2, groups=c)
    if op == "dilated4x4":
        d = dilation_for(k)
        weight = torch.randn(c, 1, 4, 4, device=device, dtype=dtype, requires_grad=True)
        total = 3 * d  # padding of a 4-tap dilated kernel for 'same' output: split as evenly as possible
        pad = (total // 2, total - total // 2, total // 2, total - total // 2)
        return (x, weight), lambda a, wt: F.conv2d(F.pad(a, pad), wt, dilation=d, groups=c)
    raise ValueError(op)


def time_cpu(fn, inputs, backward: bool, min_run_time: float) -> list[float]:
    grad = None

    def step():
        out = fn(*inputs)
        if backward:
            torch.autograd.grad(out, inputs, grad)
        return out

    if backward:
        with torch.no_grad():
            grad = torch.randn_like(fn(*inputs))
    else:
        step = _no_grad(fn, inputs)
    step()  # warm-up (and kernel build)
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return [t * 1e3 for t in measurement.times]


def _no_grad(fn, inputs):
    def run():
        with torch.no_grad():
            return fn(*inputs)

    return run


def time_cuda(fn, inputs, backward: bool, repeats: int) -> list[float]:
    with torch.no_grad():
        grad = torch.randn_like(fn(*inputs)) if backward else None

    def step():
        if backward:
            torch.autograd.grad(fn(*inputs), inputs, grad)
        else:
            with torch.no_grad():
                fn(*inputs)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def copy_bandwidth_gbps(nbytes: int = 1 << 30) -> float:
    """Measured device-to-device copy bandwidth (bytes read + written per second)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    times = time_cuda(lambda a: dst.copy_(a), (src,), backward=False, repeats=20)
    return 2 * nbytes / (statistics.median(times) * 1e-3) / 1e9


def machine() -> dict:
    """Where the figures were measured: platform, processor, torch threads and version, box-op impl."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "box_impl": get_impl(),
    }


def versus_clone(args) -> dict:
    """Box forward against x.clone() of the same tensor, NCHW and NHWC (see the module docstring)."""
    device = "cuda" if args.device == "cuda" else "cpu"
    report: dict = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "versus_clone": [],
    }
    for n, c, h, w, k in PRESETS[args.preset][device]:
        (x, boxes), fn = make_case("box", (n, c, h, w), k, device, torch.float32)
        x, boxes = x.detach(), boxes.detach()
        for layout, memory_format in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
            tensor = x.contiguous(memory_format=memory_format)
            runs = {"box_fwd": functools.partial(fn, tensor, boxes), "clone": tensor.clone}
            times: dict[str, list[float]] = {name: [] for name in runs}
            with torch.no_grad():
                for call in runs.values():
                    call()  # warm-up (and kernel build)
                for _ in range(args.repeats):
                    for name, call in runs.items():
                        times[name].append(_time_once(call, device))
            box, clone = statistics.median(times["box_fwd"]), statistics.median(times["clone"])
            report["versus_clone"].append(
                {
                    "device": device,
                    "shape": [n, c, h, w],
                    "k": k,
                    "layout": layout,
                    "box_fwd_ms_median": round(box, 2),
                    "clone_ms_median": round(clone, 2),
                    "box_over_clone": round(box / clone, 2),
                    "runs": args.repeats,
                    "box_fwd_ms": [round(t, 2) for t in times["box_fwd"]],
                    "clone_ms": [round(t, 2) for t in times["clone"]],
                }
            )
    return report


def _time_once(call, device: str) -> float:
    """Milliseconds of one call (synchronised on CUDA)."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    call()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def run(args) -> dict:
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("--device cuda: no CUDA device available")
        devices.remove("cuda")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
    report: dict = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "results": [],
        "summary": [],
    }
    if "cuda" in devices:
        torch.backends.cudnn.benchmark = True
        report["machine"]["gpu"] = torch.cuda.get_device_name()
        report["machine"]["copy_bandwidth_GBps"] = round(copy_bandwidth_gbps(), 1)
    for device in devices:
        for dtype_name in args.dtypes:
            dtype = dtypes[dtype_name]
            for n, c, h, w, k in PRESETS[args.preset][device]:
                timings = {}
                for op in args.ops:
                    if op == "dense" and device == "cpu" and dtype != torch.float32 and not args.slow_dense:
                        continue  # oneDNN has no fast reduced-precision depthwise path; takes minutes
                    inputs, fn = make_case(op, (n, c, h, w), k, device, dtype)
                    for backward in (False, True):
                        if device == "cpu":
                            times = time_cpu(fn, inputs, backward, args.min_run_time)
                        else:
                            times = time_cuda(fn, inputs, backward, args.repeats)
                        median = statistics.median(times)
                        entry = {
                            "device": device,
                            "dtype": dtype_name,
                            "shape": [n, c, h, w],
                            "k": k,
                            "op": op,
                            "pass": "fwd+bwd" if backward else "fwd",
                            "ms_median": round(median, 4),
                            "ms_min": round(min(times), 4),
                            "runs": len(times),
                        }
                        if device == "cuda" and not backward:
                            nbytes = 2 * n * c * h * w * torch.finfo(dtype).bits // 8
                            entry["effective_GBps"] = round(nbytes / (median * 1e-3) / 1e9, 1)
                        report["results"].append(entry)
                        timings[(op, entry["pass"])] = median
                report["summary"].append(summarise(device, dtype_name, (n, c, h, w), k, timings, report))
    return report


def summarise(device, dtype_name, shape, k, timings, report) -> dict:
    s: dict = {"device": device, "dtype": dtype_name, "shape": list(shape), "k": k}
    box = timings.get(("box", "fwd+bwd"))
    if box is not None and ("dilated4x4", "fwd+bwd") in timings:
        s["box_over_dilated_fwd_bwd"] = round(box / timings[("dilated4x4", "fwd+bwd")], 3)
    if box is not None and ("dense", "fwd+bwd") in timings:
        s["dense_over_box_fwd_bwd"] = round(timings[("dense", "fwd+bwd")] / box, 2)
    if box is not None and ("dense", "fwd") in timings:
        s["dense_over_box_fwd"] = round(timings[("dense", "fwd")] / timings[("box", "fwd")], 2)
    if device == "cuda" and ("box", "fwd") in timings:
        n, c, h, w = shape
        bits = {"fp32": 32, "bf16": 16, "fp16": 16, "fp64": 64}[dtype_name]
        gbps = 2 * n * c * h * w * bits / 8 / (timings[("box", "fwd")] * 1e-3) / 1e9
        s["box_fwd_GBps"] = round(gbps, 1)
        copy = report["machine"].get("copy_bandwidth_GBps")
        if copy:
            s["box_fwd_fraction_of_copy_bandwidth"] = round(gbps / copy, 3)
        name = report["machine"].get("gpu", "")
        nominal = next((v for key, v in NOMINAL_BANDWIDTH_GBPS.items() if key in name), None)
        if nominal:
            s["box_fwd_fraction_of_nominal_bandwidth"] = round(gbps / nominal, 3)
    return s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="target")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument(
        "--dtypes", nargs="+", choices=["fp32", "bf16", "fp16", "fp64"], default=["fp32", "bf16"]
    )
    parser.add_argument(
        "--ops", nargs="+", choices=["box", "dense", "dilated4x4"], default=["box", "dense", "dilated4x4"]
    )
    parser.add_argument("--min-run-time", type=float, default=2.0, help="CPU: seconds of timed runs per case")
    parser.add_argument(
        "--repeats", type=int, default=50, help="CUDA: timed runs per case; --versus-clone: runs per figure"
    )
    parser.add_argument(
        "--slow-dense", action="store_true", help="CPU: also time the dense conv in bf16/fp16"
    )
    parser.add_argument(
        "--versus-clone",
        action="store_true",
        help="time the fp32 forward in NCHW and NHWC against x.clone() (medians of --repeats runs)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(json.dumps(versus_clone(args) if args.versus_clone else run(args), indent=1))


if __name__ == "__main__":
    main()
