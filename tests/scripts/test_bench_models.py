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


def test_paired_baseline_ratios_pair_each_model_at_its_fastest_format_with_the_baselines() -> None:
    def row(model: str, fmt: str, ms: float) -> dict:
        return {"model": model, "memory_format": fmt, "variant": "prepared", "ms_per_image": ms}

    sb = "simple_baseline_r50"
    rows = [row("boxnet", "nchw", 100.0), row("boxnet", "channels_last", 80.0), row(sb, "nchw", 120.0)]
    times = {
        "boxnet|nchw|prepared": [100.0, 100.0],
        "boxnet|channels_last|prepared": [80.0, 40.0],
        f"{sb}|nchw|prepared": [120.0, 80.0],
    }
    paired = bench.paired_baseline_ratios(rows, ("prepared",), times)
    assert paired == {"sb_over_boxnet": {"median": 1.75, "q25": 1.75, "q75": 1.75}}  # (1.5 + 2.0) / 2


def test_true_macs_give_the_ratio_equal_arithmetic_rates_would() -> None:
    """True MACs (a deconvolution at its input resolution), not the paper's convention: SimpleBaseline-R50
    does fewer multiply-adds than BoxNet at 256x256 (7.23 G against 8.26 G; 11.99 against 7.70 as the
    paper counts)."""
    gmacs = bench.exact_gmacs(["boxnet", "simple_baseline_r50"], 17, (256, 256))
    assert gmacs == {
        "boxnet": pytest.approx(8.263, abs=2e-3),
        "simple_baseline_r50": pytest.approx(7.235, abs=2e-3),
    }


def test_rate_ratios_divide_the_time_ratio_by_the_mac_ratio() -> None:
    """BoxNet at 0.57 of SimpleBaseline's speed with 0.876 of its MACs per SimpleBaseline MAC runs its
    multiply-adds at 0.65 of SimpleBaseline's rate; a model without a MAC ratio gets none."""
    time_ratios = {"sb_over_boxnet": 0.57, "sb_over_other": 0.5}
    assert bench.rate_ratios(time_ratios, {"sb_over_boxnet": 0.876}) == {"sb_over_boxnet": 0.651}


def test_tiny_run_reports_every_variant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOXPOSE_RETAIN_MEMORY", "0")  # leave the test process's malloc as it is
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
    assert all(r["page_faults"] >= 0 and r["gmacs_per_s"] > 0 for r in inference)
    assert report["cpu"]["inference"]["exact_gmacs_per_image"]["boxnet_tiny"] > 0
    assert report["retain_freed_memory"] is False
    assert len(report["cpu"]["training"]["results"]) == 2
    assert report["ratios"] == {} and report["paired_ratios"] == {}  # SimpleBaseline not measured
    assert report["rate_ratios"] == {}
    assert '"cpu_threads": 1' in capsys.readouterr().out


def test_op_setting_pairs_each_forward_with_a_clone_of_its_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOXPOSE_RETAIN_MEMORY", "0")
    report = bench.main(["--only", "op", "--op-rounds", "3", "--threads", "1"])
    op = report["op"]
    assert op["rounds"] == 3 and op["shape"] == [8, 192, 64, 64] and op["max_size"] == 25
    for fmt in ("nchw", "channels_last"):
        paired = op[fmt]["box_over_clone_paired"]
        assert set(paired) == {"median", "q25", "q75"}
        assert paired["q25"] <= paired["median"] <= paired["q75"] and paired["median"] > 0
