"""boxpose.engine.timing: the order of interleaved rounds and the paired ratios, on hand numbers."""

from __future__ import annotations

import pytest
import torch

from boxpose.engine.timing import interleaved_times, medians, paired_ratio


def test_interleaved_times_run_every_call_once_per_round_starting_one_later_each_round() -> None:
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = interleaved_times(calls, rounds=4, warmup=1, device=torch.device("cpu"))
    assert order == [*"abc", *"abc", *"bca", *"cab", *"abc"]  # warm-up, then rotating rounds
    assert {key: len(values) for key, values in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(ms >= 0 for values in times.values() for ms in values)


def test_paired_ratio_divides_the_times_of_each_round() -> None:
    """Round 3's load spike slows both calls threefold and leaves its ratio (2.0) as it is; the quartiles
    come from statistics.quantiles' default (exclusive) method."""
    baseline = [100.0, 110.0, 300.0, 90.0, 105.0]
    model = [50.0, 55.0, 150.0, 60.0, 70.0]  # ratios 2.0, 2.0, 2.0, 1.5, 1.5
    assert paired_ratio(baseline, model) == {"median": 2.0, "q25": 1.5, "q75": 2.0}
    assert paired_ratio([3.0], [2.0]) == {"median": 1.5, "q25": 1.5, "q75": 1.5}  # one round
    with pytest.raises(ValueError, match=r"equally many rounds.*got 2 and 1"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_ratio([], [])


def test_medians_take_each_calls_middle_time() -> None:
    assert medians({"a": [3.0, 1.0, 2.0], "b": [4.0, 8.0]}) == {"a": 2.0, "b": 6.0}
