"""Timing several calls against each other on a shared machine: interleaved rounds and paired ratios.

The benchmarks (``scripts/bench_models.py``, ``scripts/ab_kernels.py``) compare calls that run in one
process. A machine shared with other work changes speed over minutes, so each comparison is built from
rounds: every round runs every call once, and a ratio of two calls is taken within each round, when both
saw the same load, then summarised over the rounds (median and quartiles: the spread says how far the
figure can be trusted).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def call_timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    """A function timing one call in milliseconds (CUDA events on a GPU, perf_counter on the CPU)."""
    if device.type == "cuda":

        def time_cuda(fn: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)

        return time_cuda

    def time_cpu(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return 1000.0 * (time.perf_counter() - start)

    return time_cpu


def interleaved_times(
    calls: dict[str, Callable[[], Any]], rounds: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Each call's time (ms) in each of ``rounds`` rounds, after ``warmup`` untimed calls of each. Every
    round runs every call once; round r starts at the r-th call (A B C, B C A, C A B, ...), so that no
    call always follows the same one."""
    timer = call_timer(device)
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    keys = list(calls)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        start = r % len(keys)
        for key in keys[start:] + keys[:start]:
            times[key].append(timer(calls[key]))
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """The median of each call's times."""
    return {key: statistics.median(values) for key, values in times.items()}


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """The ratio of two calls' times within each round, summarised over the rounds: ``median``, ``q25``
    and ``q75`` (``statistics.quantiles``' default method; all three the median for fewer than 4 rounds).
    Raises ValueError if the two lists do not pair up."""
    if len(numerator) != len(denominator) or not numerator:
        counts = f"{len(numerator)} and {len(denominator)}"
        raise ValueError(f"paired_ratio needs equally many rounds (at least one), got {counts}")
    ratios = sorted(n / d for n, d in zip(numerator, denominator, strict=True))
    median = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 4 else [median] * 3
    return {"median": round(median, 3), "q25": round(quartiles[0], 3), "q75": round(quartiles[2], 3)}
