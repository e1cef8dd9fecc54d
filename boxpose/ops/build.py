"""Compile (and load) the box-filter kernels ahead of first use.

    python -m boxpose.ops.build            # the CPU kernels
    python -m boxpose.ops.build --cuda     # also the CUDA kernels (needs nvcc, not a GPU)

Without a GPU, set TORCH_CUDA_ARCH_LIST (e.g. "9.0") to choose the architectures to compile for. Prints
one JSON line: {"cpu": "ok", "cuda": "ok", "seconds": ...}. Exit status 1 if a build fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from boxpose.ops import kernels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cuda", action="store_true", help="also build the CUDA kernels")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU kernels")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    start = time.time()
    status = 0
    for cuda in ([] if args.no_cpu else [False]) + ([True] if args.cuda else []):
        key = "cuda" if cuda else "cpu"
        try:
            kernels.load(cuda=cuda, verbose=args.verbose)
            report[key] = "ok"
        except kernels.KernelBuildError as exc:
            print(exc, file=sys.stderr)
            report[key] = "failed"
            status = 1
    report["cache"] = str(kernels.cache_dir())
    report["seconds"] = round(time.time() - start, 1)
    print(json.dumps(report))
    return status


if __name__ == "__main__":
    sys.exit(main())
