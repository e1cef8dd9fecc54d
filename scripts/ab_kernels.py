"""Compare versions of the CPU box kernel (kernels/box_filter_cpu.cpp) in one process; prints JSON.

Each version is compiled as its own library, with its operators renamed from ``boxpose_kernels`` to
``ab_<name>``, and all versions are loaded at once. The forward (or the backward) at one shape is then
timed in interleaved rounds, every version and ``x.clone()`` of the input once per round
(:mod:`boxpose.engine.timing`), so that the machine's load hits every version alike: on a shared machine,
timing two builds in separate processes minutes apart mixes the load's changes into the difference.

A version is ``name=path`` (a source file) or ``name=git:REV`` (the kernel at a commit), compiled with
this checkout's headers (``kernels/*.h``), so a version from before a change of the headers may not
compile; the error names it. For each memory
layout the report gives every version's median time, its ratio to the first version and to the clone
(median and quartiles of the per-round ratios), and whether its outputs have the same bits as the first
version's (``max_abs_diff`` otherwise).

    python scripts/ab_kernels.py base=git:HEAD new=kernels/box_filter_cpu.cpp
    python scripts/ab_kernels.py base=git:HEAD~3 new=git:HEAD --backward --shape 4 192 64 64 --max-size 31
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from boxpose.engine.memory import retain_freed_memory
from boxpose.engine.timing import interleaved_times, medians, paired_ratio
from boxpose.ops import box_corners
from boxpose.ops.kernels import cache_dir, cpu_flags, source_dir

KERNEL = "kernels/box_filter_cpu.cpp"
REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def parse_version(spec: str) -> tuple[str, str]:
    """``name=path`` or ``name=git:REV`` -> (name, C++ source)."""
    name, sep, where = spec.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ValueError(f"a version is name=path or name=git:REV with name a C identifier, got {spec!r}")
    if where.startswith("git:"):
        revision = where.removeprefix("git:")
        shown = subprocess.run(
            ["git", "show", f"{revision}:{KERNEL}"], cwd=REPO, capture_output=True, text=True
        )
        if shown.returncode != 0:
            raise ValueError(f"{spec}: no {KERNEL} at {revision!r}: {shown.stderr.strip()}")
        return name, shown.stdout
    path = Path(where)
    if not path.is_file():
        raise ValueError(f"{spec}: no such file {where!r}")
    return name, path.read_text()


def renamed(source: str, name: str) -> str:
    """The kernel source with its operator library ``boxpose_kernels`` renamed to ``ab_<name>``."""
    if "TORCH_LIBRARY(boxpose_kernels," not in source:
        raise ValueError(f"version {name!r} defines no boxpose_kernels library (not the CPU kernel?)")
    return source.replace("boxpose_kernels", f"ab_{name}")


def load_version(name: str, source: str) -> Any:
    """Compile (cached by content) and load one version; returns its ``torch.ops`` namespace."""
    from torch.utils import cpp_extension

    build_dir = cache_dir() / "ab_kernels" / name
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"ab_{name}.cpp"
    text = renamed(source, name)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    try:
        cpp_extension.load(
            name=f"ab_{name}",
            sources=[str(path)],
            extra_include_paths=[str(source_dir())],  # the headers of this checkout
            extra_cflags=cpu_flags(),
            extra_ldflags=["-fopenmp"],
            build_directory=str(build_dir),
            is_python_module=False,
        )
    except Exception as exc:  # the compiler's output is in the message
        tail = "\n".join(str(exc).strip().splitlines()[-20:])
        raise RuntimeError(f"version {name!r} did not compile ({path}):\n{tail}") from exc
    return getattr(torch.ops, f"ab_{name}")


def plain_boxes(channels: int, generator: torch.Generator) -> torch.Tensor:
    """(channels, 4) random boxes (x_lo, x_hi, y_lo, y_hi) in [-1, 1], drawn as bench_models.py draws them."""
    corners = torch.rand(channels, 4, generator=generator) * 2 - 1
    x = corners[:, :2].sort(dim=1).values
    y = corners[:, 2:].sort(dim=1).values
    return torch.cat([x, y], dim=1)


def compare(
    versions: dict[str, Any], layout: torch.memory_format, args: argparse.Namespace
) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    n, c, h, w = args.shape
    x = torch.randn(n, c, h, w, generator=generator).contiguous(memory_format=layout)
    xs, ys = box_corners(plain_boxes(c, generator), args.max_size)
    coef = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).expand(c, 2, 2).contiguous()
    grad = torch.randn(x.shape, generator=generator).contiguous(memory_format=layout)
    mask = [True, True, True, True]

    def call(ops: Any) -> Callable[[], Any]:
        if args.backward:
            return lambda: ops.box_filter_backward(grad, x, xs, ys, coef, args.max_size, False, mask)
        return lambda: ops.box_filter_forward(x, xs, ys, coef, args.max_size, False)

    calls = {name: call(ops) for name, ops in versions.items()}
    calls["clone"] = x.clone
    outputs = {name: fn() for name, fn in calls.items() if name != "clone"}
    times = interleaved_times(calls, args.rounds, warmup=1, device=torch.device("cpu"))
    median = medians(times)
    first = next(iter(versions))
    reference = outputs[first] if isinstance(outputs[first], tuple) else (outputs[first],)
    result: dict[str, Any] = {"clone_ms": round(median["clone"], 3)}
    for name in versions:
        out = outputs[name] if isinstance(outputs[name], tuple) else (outputs[name],)
        same = all(torch.equal(a, b) for a, b in zip(out, reference, strict=True))
        row: dict[str, Any] = {
            "ms": round(median[name], 3),
            "over_first": paired_ratio(times[name], times[first]),
            "over_clone": paired_ratio(times[name], times["clone"]),
            "same_bits_as_first": same,
        }
        if not same:
            row["max_abs_diff"] = max(float((a - b).abs().max()) for a, b in zip(out, reference, strict=True))
        result[name] = row
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("versions", nargs="+", help="name=path or name=git:REV; the first is the reference")
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 192, 64, 64], metavar=("N", "C", "H", "W"))
    parser.add_argument("--max-size", type=int, default=25, help="k (odd)")
    parser.add_argument("--backward", action="store_true", help="time the backward (all four gradients)")
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        sources = dict(parse_version(spec) for spec in args.versions)
    except ValueError as exc:
        parser.error(str(exc))
    if len(sources) != len(args.versions):
        parser.error("two versions have the same name")
    if args.max_size < 1 or args.max_size % 2 == 0:
        parser.error(f"--max-size must be a positive odd integer, got {args.max_size}")
    if min(args.shape) < 1 or args.rounds < 1 or args.threads < 1:
        got = f"{args.shape}, {args.rounds}, {args.threads}"
        parser.error(f"--shape, --rounds and --threads must be positive, got {got}")
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    versions = {name: load_version(name, source) for name, source in sources.items()}
    report: dict[str, Any] = {
        "shape": args.shape,
        "max_size": args.max_size,
        "pass": "backward" if args.backward else "forward",
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
    }
    for layout in args.layouts:
        report[layout] = compare(versions, LAYOUTS[layout], args)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
