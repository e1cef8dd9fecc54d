"""scripts/bench_models.py: the ratio arithmetic on hand numbers, and a tiny interleaved run end to end."""

from __future__ import annotations

import pytest

from tests.scripts.helpers import load_script

bench = load_script("bench_models")


def test_ratios_take_each_models_fastest_memory_format() -> None:
    def row(model: str, fmt: str, variant: str, ms: float) -> dict:
        return {"model": model, "memory_format": fmt, "variant": variant, "ms_per_image": ms}

    sb = "simple_baseline_r50"
    rows = [
        row("boxnet", "nchw", "prepared", 100.0),
        row("boxnet", "channels_last", "prepared", 80.0),
        row("boxnet", "nchw", "eager", 50.0),  # another variant: not compared
        row(sb, "nchw", "prepared", 120.0),
        row(sb, "channels_last", "prepared", 140.0),
    ]
    best = bench.best_times(rows, ("prepared",))
    assert best == {"boxnet": 80.0, "simple_baseline_r50": 120.0}
    assert bench.baseline_ratios(best) == {"sb_over_boxnet": 1.5}
    assert bench.baseline_ratios({"boxnet": 80.0}) == {}  # no baseline measured, no ratio


def test_interleaved_medians_runs_every_call_once_per_round() -> None:
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "ab"}
    medians = bench.interleaved_medians(calls, rounds=3, warmup=1, device=bench.torch.device("cpu"))
    assert order == ["a", "b"] + ["a", "b"] * 3  # warm-up, then A B A B A B
    assert set(medians) == {"a", "b"} and all(ms >= 0 for ms in medians.values())


def test_tiny_run_reports_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--models", "boxnet_tiny", "--only", "inference", "training", "--infer-size", "32", "32"]
    argv += [
        "--cpu-size",
        "32",
        "32",
        "--cpu-batch",
        "2",
        "--infer-batch",
        "2",
        "--rounds",
        "1",
        "--threads",
        "1",
    ]
    report = bench.main(argv)
    inference = report["cpu"]["inference"]["results"]
    assert {(r["memory_format"], r["variant"]) for r in inference} == {
        (fmt, kind) for fmt in ("nchw", "channels_last") for kind in ("eager", "prepared")
    }
    assert len(report["cpu"]["training"]["results"]) == 2
    assert report["ratios"] == {}  # SimpleBaseline not measured
    assert '"cpu_threads": 1' in capsys.readouterr().out
