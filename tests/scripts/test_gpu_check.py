"""scripts/gpu_check.py: the CPU dry run of all seven steps, the report, budgets and the wheels install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from tests.scripts.helpers import load_script

gpu_check = load_script("gpu_check")


def test_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """The whole check with tiny sizes on the CPU: what `make test` runs so the script cannot rot."""
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [name for name, _ in gpu_check.STEPS]
    assert report["profile"] == "dry" and report["passed"]
    for step in report["steps"]:
        assert step["status"] == "pass", (step["name"], step["checks"], step["summary"])
        assert all(c["rc"] == 0 and not c["timed_out"] for c in step["commands"]), step["commands"]
        assert step["seconds"] <= step["budget_s"]
    assert steps["environment"]["figures"]["torch"] == torch.__version__
    assert steps["build"]["figures"]["cpu"] == "ok"

    op_tests = steps["op_tests"]["figures"]
    assert op_tests["pytest"]["tests"] > 0 and op_tests["pytest"]["skipped"] == op_tests["pytest"]["tests"]
    against = {c["name"].split(" vs ")[1].split("/")[0] for c in op_tests["cases"] if " vs " in c["name"]}
    assert against == {"reference", "dense"}
    assert {c["dtype"] for c in op_tests["cases"]} == {"fp32", "bf16", "fp16"}
    assert any("channels_last" in c["name"] and "split_q4" in c["name"] for c in op_tests["cases"])
    assert any(c["name"] == "opcheck" and c["ok"] for c in op_tests["cases"])
    assert all(d["box_grad_max_abs"] > 0 for d in op_tests["determinism"])  # real gradients compared

    assert steps["op_bench"]["figures"]["target"]["summary"][0]["device"] == "cpu"
    layouts = steps["op_bench"]["figures"]["layouts"]["versus_clone"]
    assert [r["layout"] for r in layouts] == ["nchw", "nhwc"] and all(
        r["box_over_clone"] > 0 for r in layouts
    )
    assert "nhwc" in steps["op_bench"]["summary"]
    bench = steps["model_bench"]["figures"]["eager"][0]
    assert (
        bench["model"] == "boxnet_tiny" and bench["images_per_s"] > 0 and bench["inference_images_per_s"] > 0
    )

    train = steps["train_eval"]["figures"]
    assert train["steps"] == gpu_check.DRY.epochs * gpu_check.DRY.steps_per_epoch
    assert len(train["epoch_losses"]) == gpu_check.DRY.epochs
    assert train["epoch_losses"][-1] < train["epoch_losses"][0]
    assert 0.0 <= train["pckh"] <= 100.0 and 0.0 <= train["pckh_untrained"] <= 100.0
    assert "pckh_above_chance" not in steps["train_eval"]["checks"]  # not enforced on a dozen CPU steps

    ddp = steps["ddp"]["figures"]
    assert (ddp["backend"], ddp["processes"], ddp["steps"]) == ("gloo", 2, gpu_check.DRY.ddp_steps)

    assert (tmp_path / "gpu_check.md").read_text() == gpu_check.render_markdown(report)
    assert (tmp_path / "work" / "eval" / "metrics.json").is_file()


def _report(steps: list[dict]) -> dict:
    return {
        "profile": "full",
        "date": "2026-12-01 05:00 UTC",
        "command": "python scripts/gpu_check.py",
        "seconds": 400.0,
        "passed": all(s["status"] != "fail" for s in steps),
        "steps": steps,
    }


def _step(name: str, status: str, checks: dict, figures=None, targets=(), summary="") -> dict:
    return {
        "name": name,
        "title": gpu_check.STEP_TITLES[name],
        "status": status,
        "seconds": 12.34,
        "budget_s": 60,
        "summary": summary,
        "checks": checks,
        "targets": list(targets),
        "figures": figures or {},
        "commands": [],
    }


def test_render_markdown_names_failures_and_targets():
    environment = {
        "torch": "2.11.0+cu130",
        "torch_cuda": "13.0",
        "driver": "580.159.03",
        "python": "3.12.3",
        "commit": "abc1234",
        "gpus": [{"name": "NVIDIA H200", "memory_gib": 139.8, "capability": "9.0"}],
    }
    targets = [
        {
            "name": "box fwd+bwd speed-up over dense depthwise (fp32)",
            "value": 31.5,
            "target": ">= 20x",
            "met": True,
        },
        {"name": "box fwd bandwidth / measured copy (fp32)", "value": 0.41, "target": ">= 0.6", "met": False},
        {"name": "BoxNet / R50 (compile)", "value": None, "target": ">= 1", "met": None},
    ]
    report = _report(
        [
            _step("environment", "pass", {"ran": True}, environment, summary="NVIDIA H200"),
            _step("op_tests", "fail", {"pytest_cuda": True, "oracle": False}, summary="a | b"),
            _step("op_bench", "pass", {"ran": True}, targets=targets),
            _step("ddp", "skipped", {}, summary="skipped: no GPU"),
        ]
    )
    text = gpu_check.render_markdown(report)
    assert "### full run: NVIDIA H200 x1, 2026-12-01 05:00 UTC" in text
    assert "torch 2.11.0+cu130 (CUDA 13.0), driver 580.159.03" in text and "**FAILED**" in text
    assert "| 3. op tests | fail (oracle) | 12.3 (60) | a \\| b |" in text
    assert "| 7. DDP | skipped | 12.3 (60) | skipped: no GPU |" in text
    assert "| box fwd+bwd speed-up over dense depthwise (fp32) | 31.5 | >= 20x | yes |" in text
    assert "| box fwd bandwidth / measured copy (fp32) | 0.41 | >= 0.6 | **no** |" in text
    assert "| BoxNet / R50 (compile) | None | >= 1 | not measured |" in text


def test_render_command_prints_the_table_of_a_saved_report(tmp_path, capsys):
    report = _report([_step("environment", "pass", {"ran": True}, summary="no GPU")])
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(report))
    assert gpu_check.main(["--render", str(path)]) == 0
    assert capsys.readouterr().out == gpu_check.render_markdown(report)


def test_model_bench_rows_take_each_models_best_training_and_prepared_inference():
    """bench_models.py's layout (setting -> results) read into one row per model, on hand numbers."""

    def row(model: str, fmt: str, variant: str, images_per_s: float, **extra: float) -> dict:
        return {
            "model": model,
            "memory_format": fmt,
            "variant": variant,
            "images_per_s": images_per_s,
            **extra,
        }

    report = {
        "cpu": {},
        "cuda": {
            "training": {"results": [row("boxnet", "channels_last", "train", 900.0, peak_memory_mb=2048.0)]},
            "inference": {
                "results": [
                    row("boxnet", "nchw", "prepared", 3000.0),
                    row("boxnet", "channels_last", "prepared", 4000.0),
                    row("boxnet", "channels_last", "eager", 5000.0),  # not the prepared model: not read
                ]
            },
        },
    }
    assert gpu_check.model_bench_rows(report, "cuda") == [
        {"model": "boxnet", "images_per_s": 900.0, "peak_memory_mb": 2048.0, "inference_images_per_s": 4000.0}
    ]
    assert gpu_check.model_bench_rows({"cuda": None}, "cuda") == []  # no GPU seen: no rows


def test_op_targets_follow_the_issue_thresholds():
    row = {
        "device": "cuda",
        "dtype": "bf16",
        "shape": [64, 384, 64, 64],
        "k": 31,
        "dense_over_box_fwd_bwd": 19.9,
        "box_over_dilated_fwd_bwd": 1.0,
        "box_fwd_fraction_of_copy_bandwidth": 0.6,
    }
    other_shape = {**row, "shape": [8, 192, 64, 64], "dense_over_box_fwd_bwd": 100.0}
    targets = gpu_check._op_targets({"summary": [row, other_shape]})
    assert [(t["value"], t["met"]) for t in targets] == [(19.9, False), (1.0, True), (0.6, True)]
    assert all("bf16, (64, 384, 64, 64), k = 31" in t["name"] for t in targets)


def _fake_steps(calls: list[str]):
    def raises(check):
        calls.append("environment")
        raise RuntimeError("nvidia-smi exploded")

    def fails(check):
        calls.append("build")
        return gpu_check.StepResult(checks={"cuda_kernels": False}, summary="nvcc failed")

    def skipped(check):
        calls.append("ddp")
        return gpu_check.StepResult(skipped="one process only", summary="skipped")

    def passes(check):
        calls.append("op_bench")
        return gpu_check.StepResult(checks={"ran": True}, summary="ok")

    return [("environment", raises), ("build", fails), ("ddp", skipped), ("op_bench", passes)]


def test_failed_steps_do_not_stop_the_run_and_the_exit_status_says_so(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(gpu_check, "STEPS", _fake_steps(calls))
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 1
    assert calls == ["environment", "build", "ddp", "op_bench"]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["fail", "fail", "skipped", "pass"]
    assert report["steps"][0]["summary"] == "RuntimeError: nvidia-smi exploded"
    assert "nvidia-smi exploded" in (tmp_path / "logs" / "environment.error.log").read_text()
    assert not report["passed"]


def test_a_skipped_step_alone_does_not_fail_the_run(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(gpu_check, "STEPS", _fake_steps(calls)[2:])
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_past_its_budget_is_killed_with_its_children(tmp_path):
    child = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    start = time.monotonic()
    result = gpu_check.run_command([sys.executable, "-c", child], 3.0, tmp_path / "slow.log")
    assert result.timed_out and result.rc is None and not result.ok()
    assert time.monotonic() - start < 20
    grandchild = int(result.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)
    assert "killed after 3 s" in (tmp_path / "slow.log").read_text()


def test_a_command_with_no_time_left_is_not_started(tmp_path):
    result = gpu_check.run_command([sys.executable, "-c", "print(1)"], 0.0, tmp_path / "late.log")
    assert result.timed_out and result.stdout == ""
    assert "no time left" in (tmp_path / "late.log").read_text()


def test_last_json_reads_a_last_line_or_an_indented_document():
    assert gpu_check.last_json('progress...\n{"a": 1}\n') == {"a": 1}
    assert gpu_check.last_json('{\n "a": [\n  1\n ]\n}\n') == {"a": [1]}
    with pytest.raises(ValueError, match="no output"):
        gpu_check.last_json("  \n")


def _write_wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel of a module ``gpu_check_probe`` holding VALUE = 42."""
    path = directory / "gpu_check_probe-1.0-py3-none-any.whl"
    info = "gpu_check_probe-1.0.dist-info"
    files = {
        "gpu_check_probe.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: gpu-check-probe\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def test_install_wheels_puts_them_on_the_path_of_the_children(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _write_wheel(wheels)
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setattr(sys, "path", list(sys.path))
    names = gpu_check.install_wheels(wheels, tmp_path / "site", project=None)
    assert names == ["gpu_check_probe-1.0-py3-none-any.whl"]
    assert (tmp_path / "site" / "gpu_check_probe.py").is_file()
    out = subprocess.run(
        [sys.executable, "-c", "import gpu_check_probe; print(gpu_check_probe.VALUE)"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "42"


def test_install_wheels_from_an_empty_folder_says_how_to_make_them(tmp_path):
    with pytest.raises(SystemExit, match=r"no \.whl files there; make them with scripts/gpu_wheels.sh"):
        gpu_check.install_wheels(tmp_path, tmp_path / "site", project=None)


def test_bad_arguments_are_named(tmp_path, capsys):
    assert gpu_check.main(["--wheels", str(tmp_path / "missing"), "--dry-run"]) == 2
    assert f"--wheels {tmp_path / 'missing'}: no such folder" in capsys.readouterr().err
    assert gpu_check.main(["--render", str(tmp_path / "none.json")]) == 2
    assert f"--render {tmp_path / 'none.json'}: no such file" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_the_gpu_run_without_a_gpu_says_to_use_the_dry_run(tmp_path, capsys):
    assert gpu_check.main(["--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "use --dry-run to rehearse on the CPU" in err
    assert not (tmp_path / "gpu_check.json").exists()


def test_a_step_leaves_time_for_the_later_ones(tmp_path):
    seen = {}

    def step(check):
        seen["left"] = check.seconds_left()
        return gpu_check.StepResult(checks={"ran": True})

    check = gpu_check.Check(gpu_check.FULL, tmp_path, dict(os.environ))
    check.run_step("train_eval", step, later=["ddp"])  # budget 180 s, well inside the 470 s deadline
    assert 175 < seen["left"] <= 180
    check.start -= gpu_check.FULL.deadline_s - 100  # 100 s before the deadline: 30 s stay for ddp
    check.run_step("train_eval", step, later=["ddp"])
    assert 65 < seen["left"] <= 70


def test_after_a_failed_build_the_op_steps_are_skipped_and_the_rest_use_the_reference_path(tmp_path):
    fake_python = tmp_path / "python"  # stands in for `python -m boxpose.ops.build` that fails
    fake_python.write_text('#!/bin/sh\necho \'{"cpu": "failed"}\'\nexit 1\n')
    fake_python.chmod(0o755)
    check = gpu_check.Check(gpu_check.DRY, tmp_path, {"PATH": os.environ["PATH"]})
    check.python = str(fake_python)
    check.step_deadline = time.monotonic() + 60
    build = gpu_check.step_build(check)
    assert build.checks == {"cpu_kernels": False}
    assert "later steps use BOXPOSE_OP_IMPL=reference" in build.summary
    assert check.env["BOXPOSE_OP_IMPL"] == "reference"
    for step in (gpu_check.step_op_tests, gpu_check.step_op_bench):
        assert step(check).skipped == "the kernels did not build"
