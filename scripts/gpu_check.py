"""The GPU path proven in one command: build, test, benchmark, train and DDP on a CUDA GPU; one JSON says
what holds.

    python scripts/gpu_check.py                    # on a CUDA machine: under 8 minutes on one H100/H200
    python scripts/gpu_check.py --quick            # about 3 minutes (fewer shapes and steps, no compile)
    python scripts/gpu_check.py --dry-run          # CPU only, tiny sizes, no CUDA (run by `make test`)
    python scripts/gpu_check.py --wheels .whl      # first install scripts/gpu_wheels.sh's wheels and boxpose
    python scripts/gpu_check.py --render outputs/gpu_check/gpu_check.json   # its Markdown table again
    make gpu-check [WHEELS=.whl] [GPU_CHECK_ARGS=--quick]

Seven steps run in order, each timed, its figures and checks recorded, and the next one run whatever
happened (every command is a subprocess with a time budget, so a crashed or hung CUDA context costs one
step, not the run):

1. environment: GPU name, memory, capability, driver, torch / CUDA / cuDNN versions, nvcc;
2. build: ``python -m boxpose.ops.build --cuda`` (for this GPU's architecture only, when
   TORCH_CUDA_ARCH_LIST is unset);
3. op tests: ``pytest -m cuda``; the op against the float64 reference and the dense-kernel oracle
   (forward, input and box gradients; fp32 / bf16 / fp16; NCHW and channels-last; plain, snapped and
   split; more planes than a grid dimension holds; a side stream; ``torch.library.opcheck``); and the
   run-to-run spread of the box gradients (the CUDA backward sums them with atomics);
4. op benchmark: ``scripts/bench_op.py`` (box vs cuDNN dense depthwise vs dilated 4x4, forward and
   forward+backward, fp32 and bf16, CUDA events, bandwidth against a measured copy);
5. model benchmark: ``scripts/bench_models.py`` (training and inference images/s, peak memory; batch 64,
   256x256, bf16, channels-last; eager, and torch.compile for BoxNet);
6. train and evaluate: ``boxpose-train`` BoxNet (paper width) on the synthetic MPII data at 256x256, bf16,
   torch.compile, loader workers, then ``boxpose-eval`` with flip test on the result and on the
   untrained network (the chance level); the loss must fall and PCKh must beat the untrained one;
7. DDP: ``torchrun --nproc_per_node=2`` training: NCCL with two GPUs, gloo over one GPU's two processes
   otherwise (``BOXPOSE_DIST_BACKEND=gloo``), gloo on the CPU in the dry run.

Writes ``<out>/gpu_check.json`` (every figure, every check, versions, commands and their times),
``<out>/gpu_check.md`` (the table of docs/BENCHMARKS.md) and ``<out>/logs/`` (each command's output).
Performance targets are reported (``met`` true/false), never failures. Exit status: 0 when every check
passed, 1 when one failed, 2 for a usage error (e.g. no CUDA device without ``--dry-run``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()

# The targets on an H100/H200 at (N, C, H, W) = (64, 384, 64, 64), k = 31.
TARGET_SHAPE = [64, 384, 64, 64]
TARGET_K = 31
TARGET_DENSE_OVER_BOX = 20.0  # box forward+backward at least 20x faster than cuDNN's dense depthwise conv
TARGET_BOX_OVER_DILATED = 1.0  # and at most the dilated 4x4 conv's time
TARGET_COPY_FRACTION = 0.6  # forward at >= 60% of the measured device-to-device copy bandwidth

# Relative error ||got - ref|| / ||ref|| allowed against the float64 reference (fp32 SAT accumulation).
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-3, "bf16": 1e-2}
# Run-to-run spread of the box gradients, relative to their largest magnitude: rounding differences of
# reordered atomic sums stay far below this; a race does not.
DETERMINISM_TOLERANCE = 1e-4
# PCKh@0.5 points the trained network must gain over the untrained one (the chance level).
PCKH_MARGIN = 5.0
# Seconds kept back for each later step when an earlier one runs long, so the last steps still run.
RESERVE_S = 30

STEP_TITLES = {
    "environment": "1. environment",
    "build": "2. build kernels",
    "op_tests": "3. op tests",
    "op_bench": "4. op benchmark",
    "model_bench": "5. model benchmark",
    "train_eval": "6. train + evaluate",
    "ddp": "7. DDP",
}


@dataclass(frozen=True)
class Profile:
    """Sizes and time budgets of one kind of run (full, quick, dry)."""

    name: str
    device: str  # cuda | cpu
    deadline_s: int  # the whole run; a step never runs past it
    budgets_s: dict[str, int]  # step -> seconds its commands may take together
    pytest_paths: tuple[str, ...]
    oracle_size: str  # full | tiny
    op_bench_args: str  # bench_op.py's arguments at the target shape
    op_bench_network_args: str  # at all the network's shapes ("": not run)
    op_bench_layout_args: str  # bench_op.py --versus-clone: NCHW and NHWC fwd vs x.clone() ("": not run)
    eval_batch: int
    bench_models: tuple[str, ...]
    bench_models_args: str  # bench_models.py's arguments besides --models
    compile_models: tuple[str, ...]  # bench_models --compile (empty: not run)
    train_model: str
    synthetic: dict[str, Any]  # data.synthetic overrides
    input_size: int
    batch: int
    workers: int
    epochs: int
    steps_per_epoch: int
    amp: str
    channels_last: bool
    compile: bool
    ddp_model: str
    ddp_steps: int
    pckh_margin: float | None  # PCKh@0.5 points to gain over the untrained network; None: not checked


# Budgets: the full run's expected times on one H200 (build about 90 s, the compiled BoxNet about 60 s
# once) fit its 470 s deadline; a step's budget caps it when something hangs.
FULL = Profile(
    name="full",
    device="cuda",
    deadline_s=470,
    budgets_s=dict(
        environment=30, build=150, op_tests=60, op_bench=90, model_bench=120, train_eval=180, ddp=60
    ),
    pytest_paths=("tests",),
    oracle_size="full",
    op_bench_args="--preset target --device cuda --dtypes fp32 bf16 --repeats 30",
    op_bench_network_args="--preset network --device cuda --dtypes fp32 bf16 --repeats 20",
    op_bench_layout_args="--versus-clone --preset target --device cuda --repeats 20",
    bench_models=("boxnet", "boxnet_3x3", "boxnet_dilated", "simple_baseline_r50"),
    bench_models_args="--only cuda --formats channels_last --num-joints 16 --cuda-warmup 5 --cuda-iters 20",
    compile_models=("boxnet",),
    train_model="boxnet",
    synthetic={"num_train": 1200, "num_val": 100},
    input_size=256,
    batch=64,
    eval_batch=256,
    workers=8,
    epochs=6,
    steps_per_epoch=25,
    amp="bf16",
    channels_last=True,
    compile=True,
    ddp_model="boxnet",
    ddp_steps=10,
    pckh_margin=PCKH_MARGIN,
)

QUICK = Profile(
    name="quick",
    device="cuda",
    deadline_s=270,
    budgets_s=dict(
        environment=20, build=150, op_tests=40, op_bench=30, model_bench=40, train_eval=75, ddp=40
    ),
    pytest_paths=("tests/ops",),
    oracle_size="tiny",
    op_bench_args="--preset target --device cuda --dtypes fp32 bf16 --repeats 20",
    op_bench_network_args="",
    op_bench_layout_args="--versus-clone --preset target --device cuda --repeats 10",
    bench_models=("boxnet", "simple_baseline_r50"),
    bench_models_args="--only cuda --formats channels_last --num-joints 16 --cuda-warmup 3 --cuda-iters 10",
    compile_models=(),
    train_model="boxnet",
    synthetic={"num_train": 600, "num_val": 100},
    input_size=256,
    batch=64,
    eval_batch=256,
    workers=8,
    epochs=4,
    steps_per_epoch=12,
    amp="bf16",
    channels_last=True,
    compile=False,
    ddp_model="boxnet",
    ddp_steps=5,
    pckh_margin=PCKH_MARGIN,
)

DRY = Profile(
    name="dry",
    device="cpu",
    deadline_s=1200,  # a loaded 2-core machine: about 110 CPU seconds, several times that in wall time
    budgets_s=dict(
        environment=90, build=300, op_tests=180, op_bench=90, model_bench=120, train_eval=300, ddp=240
    ),
    pytest_paths=("tests/ops/test_cuda_kernels.py",),
    oracle_size="tiny",
    op_bench_args="--preset quick --device cpu --dtypes fp32 --min-run-time 0.02",
    op_bench_network_args="",
    op_bench_layout_args="--versus-clone --preset quick --device cpu --repeats 1",
    bench_models=("boxnet_tiny",),
    bench_models_args=(
        "--only training inference --formats nchw --num-joints 16 --rounds 1 --warmup 0 --threads 1"
        " --cpu-batch 2 --cpu-size 64 64 --infer-batch 1 --infer-size 64 64"
    ),
    compile_models=(),
    train_model="boxnet_tiny",
    synthetic={"num_train": 24, "num_val": 8, "image_size": [96, 96], "workers": 1},
    input_size=64,
    batch=8,
    eval_batch=16,
    workers=0,
    epochs=2,
    steps_per_epoch=4,
    amp="none",
    channels_last=False,
    compile=False,
    ddp_model="boxnet_tiny",
    ddp_steps=2,
    pckh_margin=None,  # eight CPU steps do not learn poses; the figures are still computed
)


# ----------------------------------------------------------------------------------------------------
# running commands


@dataclass
class CommandResult:
    cmd: list[str]
    rc: int | None  # None when it timed out
    seconds: float
    cpu_seconds: float  # user + system time of the command and the children it waited for
    timed_out: bool
    stdout: str
    log: str  # the file holding the command line, stderr and stdout

    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def record(self) -> dict[str, Any]:
        return {
            "cmd": shlex.join(self.cmd),
            "rc": self.rc,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "timed_out": self.timed_out,
            "log": self.log,
        }


def run_command(
    cmd: list[str], timeout: float, log_path: Path, env: dict[str, str] | None = None
) -> CommandResult:
    """Run ``cmd`` in the repository root in its own process group; past ``timeout`` seconds the whole
    group (torchrun's ranks, loader workers, compile workers) is killed. stderr and then stdout go to
    ``log_path``; stdout is also returned."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, open(log_path, "w") as log:
        log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        if timeout <= 0:
            log.write("not started: no time left in the budget\n")
            return CommandResult(cmd, None, 0.0, 0.0, True, "", str(log_path))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=log, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended just now
                pass
            proc.wait()
        seconds = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out.seek(0)
        stdout = out.read()
        log.write(f"\n--- stdout ---\n{stdout}")
        if timed_out:
            log.write(f"\n--- killed after {timeout:.0f} s (the step's budget) ---\n")
    rc = None if timed_out else proc.returncode
    return CommandResult(cmd, rc, seconds, cpu_seconds, timed_out, stdout, str(log_path))


def last_json(stdout: str) -> Any:
    """The JSON document at the end of ``stdout``: its last line, else the whole output (indented JSON)."""
    text = stdout.strip()
    if not text:
        raise ValueError("no output")
    try:
        return json.loads(text.splitlines()[-1])
    except json.JSONDecodeError:
        start = text.find("{")
        return json.loads(text[start:])


# ----------------------------------------------------------------------------------------------------
# the steps


@dataclass
class StepResult:
    """What a step found. ``checks``: name -> passed (all must pass); ``targets``: performance goals,
    reported only; ``skipped``: why the step did not run (then it neither passes nor fails)."""

    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    skipped: str | None = None


class Check:
    """One run of the check: the profile, where things go, the clock, and the steps' results so far."""

    def __init__(self, profile: Profile, out_dir: Path, env: dict[str, str]) -> None:
        self.profile = profile
        self.out_dir = out_dir
        self.work_dir = out_dir / "work"
        self.logs_dir = out_dir / "logs"
        self.env = env
        self.python = sys.executable
        self.start = time.monotonic()
        self.step_deadline = 0.0
        self.commands: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}  # the environment step's findings, for the later steps
        self.kernels_failed = False  # the build step failed: the op's steps are skipped

    def seconds_left(self) -> float:
        return self.step_deadline - time.monotonic()

    def run(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> CommandResult:
        result = run_command(cmd, self.seconds_left(), self.logs_dir / f"{name}.log", env or self.env)
        self.commands.append({"name": name, **result.record()})
        return result

    def internal(self, name: str, mode: str, *extra: str) -> CommandResult:
        """This script's ``--internal MODE`` (work that needs torch, in its own process)."""
        cmd = [
            self.python,
            str(SCRIPT),
            "--internal",
            mode,
            "--device",
            self.profile.device,
            "--size",
            self.profile.oracle_size,
            *extra,
        ]
        return self.run(name, cmd)

    def run_step(self, name: str, fn: Callable[[Check], StepResult], later: list[str]) -> dict[str, Any]:
        """Run one step within its budget, leaving the ``later`` steps at least RESERVE_S seconds each
        before the run's deadline; a step that raises fails, and the run goes on."""
        budget = self.profile.budgets_s[name]
        now = time.monotonic()
        reserve = sum(min(RESERVE_S, self.profile.budgets_s[n]) for n in later)
        self.step_deadline = min(now + budget, self.start + self.profile.deadline_s - reserve)
        first_command = len(self.commands)
        print(f"gpu_check: {STEP_TITLES[name]} (budget {budget} s) ...", file=sys.stderr, flush=True)
        try:
            result = fn(self)
        except Exception:  # a bug or an unexpected output: this step fails, the others still run
            error = traceback.format_exc()
            (self.logs_dir / f"{name}.error.log").write_text(error)
            result = StepResult(checks={"completed": False}, summary=error.strip().splitlines()[-1])
        seconds = time.monotonic() - now
        if result.skipped:
            status = "skipped"
        else:
            status = "pass" if result.checks and all(result.checks.values()) else "fail"
        print(
            f"gpu_check: {STEP_TITLES[name]}: {status} in {seconds:.1f} s  {result.summary}",
            file=sys.stderr,
            flush=True,
        )
        return {
            "name": name,
            "title": STEP_TITLES[name],
            "status": status,
            "seconds": round(seconds, 1),
            "budget_s": budget,
            "summary": result.summary,
            "skipped": result.skipped,
            "checks": result.checks,
            "targets": result.targets,
            "figures": result.figures,
            "commands": self.commands[first_command:],
        }


def step_environment(check: Check) -> StepResult:
    result = check.internal("environment", "environment")
    if not result.ok():
        return StepResult(checks={"ran": False}, summary=f"failed (see {result.log})")
    info = last_json(result.stdout)
    check.info = info
    checks = {"ran": True}
    if check.profile.device == "cuda":
        checks["cuda_available"] = bool(info.get("cuda_available"))
    gpus = info.get("gpus") or []
    gpu = "no GPU"
    if gpus:
        first = gpus[0]
        gpu = f"{first['name']} x{len(gpus)}, {first['memory_gib']} GiB, capability {first['capability']}"
    summary = (
        f"{gpu}; driver {info.get('driver')}; torch {info['torch']} (CUDA {info.get('torch_cuda')}, "
        f"cuDNN {info.get('cudnn')}); nvcc {info.get('nvcc')}"
    )
    return StepResult(figures=info, checks=checks, summary=summary)


def step_build(check: Check) -> StepResult:
    cuda = check.profile.device == "cuda"
    env = dict(check.env)
    capability = ((check.info.get("gpus") or [{}])[0]).get("capability")
    if cuda and capability and not env.get("TORCH_CUDA_ARCH_LIST"):
        env["TORCH_CUDA_ARCH_LIST"] = capability  # this GPU only: one nvcc pass instead of several
    # On a GPU machine the CUDA library alone: nothing in the check runs the op on CPU tensors there.
    cmd = [check.python, "-m", "boxpose.ops.build", *(["--cuda", "--no-cpu"] if cuda else [])]
    result = check.run("build", cmd, env)
    if result.timed_out and check.info.get("kernel_cache"):
        # torch's build lock would make every later step wait for a build that is no longer running.
        for lock in Path(check.info["kernel_cache"]).glob("*/lock"):
            lock.unlink(missing_ok=True)
    report = last_json(result.stdout) if result.stdout.strip() else {}
    figures = {"seconds": round(result.seconds, 1), "arch_list": env.get("TORCH_CUDA_ARCH_LIST"), **report}
    checks = (
        {"cuda_kernels": report.get("cuda") == "ok"} if cuda else {"cpu_kernels": report.get("cpu") == "ok"}
    )
    what = "CUDA" if cuda else "CPU (dry run: no CUDA build)"
    state = "timed out" if result.timed_out else ("ok" if result.ok() else f"failed (see {result.log})")
    if not all(checks.values()):
        # Later steps would each try the build again inside their budgets: the op's own steps are skipped,
        # the others run on the pure-PyTorch reference path and say so.
        check.kernels_failed = True
        check.env["BOXPOSE_OP_IMPL"] = "reference"
        state += "; later steps use BOXPOSE_OP_IMPL=reference"
    return StepResult(
        figures=figures, checks=checks, summary=f"{what} kernels {state} in {result.seconds:.0f} s"
    )


def _junit_counts(path: Path) -> dict[str, int]:
    suite = ET.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def step_op_tests(check: Check) -> StepResult:
    if check.kernels_failed:
        return StepResult(skipped="the kernels did not build", summary="skipped: the kernels did not build")
    junit = check.logs_dir / "pytest_cuda.xml"
    # A test module that cannot be imported there must not hide the CUDA tests of the others.
    options = "-q -m cuda -p no:cacheprovider --continue-on-collection-errors".split()
    cmd = [check.python, "-m", "pytest", *options, f"--junitxml={junit}", *check.profile.pytest_paths]
    pytest_result = check.run("op_tests_pytest", cmd)
    counts = _junit_counts(junit) if junit.is_file() else {}
    figures: dict[str, Any] = {"pytest": counts}
    checks = {"pytest_cuda": pytest_result.ok()}
    if check.profile.device == "cuda":  # on a GPU nothing may be skipped; on the CPU all are
        checks["pytest_cuda"] = (
            checks["pytest_cuda"] and counts.get("passed", 0) > 0 and not counts.get("skipped")
        )
    oracle = check.internal("op_tests_oracle", "oracle")
    if oracle.ok() or oracle.stdout.strip():
        report = last_json(oracle.stdout)
        figures.update(report)
        failed = [c["name"] for c in report["cases"] if not c["ok"]]
        figures["failed_cases"] = failed
        checks["oracle"] = oracle.ok() and not failed
        checks["determinism"] = all(d["ok"] for d in report["determinism"])
        worst = {}
        for c in report["cases"]:
            worst[c["dtype"]] = max(worst.get(c["dtype"], 0.0), c["rel_err"])
        spread = max(d["box_grad_rel_spread"] for d in report["determinism"])
        failed_tests = counts.get("failures", 0) + counts.get("errors", 0)
        worst_text = ", ".join(f"{k} {v:.1e}" for k, v in sorted(worst.items()))
        summary = (
            f"pytest -m cuda: {counts.get('passed')} passed, {failed_tests} failed, {counts.get('skipped')} "
            f"skipped; oracle {len(report['cases']) - len(failed)}/{len(report['cases'])} cases pass (worst "
            f"relative error {worst_text}); box-gradient run-to-run spread {spread:.1e} (relative)"
        )
    else:
        checks["oracle"] = False
        summary = f"oracle failed (see {oracle.log})"
    return StepResult(figures=figures, checks=checks, summary=summary)


def _op_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    targets = []
    for row in report.get("summary", []):
        if row["device"] != "cuda" or row["shape"] != TARGET_SHAPE or row["k"] != TARGET_K:
            continue
        where = f"{row['dtype']}, {tuple(TARGET_SHAPE)}, k = {TARGET_K}"
        for key, name, goal, met in (
            (
                "dense_over_box_fwd_bwd",
                "box fwd+bwd speed-up over dense depthwise",
                f">= {TARGET_DENSE_OVER_BOX:g}x",
                lambda v: v >= TARGET_DENSE_OVER_BOX,
            ),
            (
                "box_over_dilated_fwd_bwd",
                "box fwd+bwd time / dilated 4x4",
                f"<= {TARGET_BOX_OVER_DILATED:g}x",
                lambda v: v <= TARGET_BOX_OVER_DILATED,
            ),
            (
                "box_fwd_fraction_of_copy_bandwidth",
                "box fwd bandwidth / measured copy",
                f">= {TARGET_COPY_FRACTION:g}",
                lambda v: v >= TARGET_COPY_FRACTION,
            ),
        ):
            value = row.get(key)
            targets.append(
                {
                    "name": f"{name} ({where})",
                    "value": value,
                    "target": goal,
                    "met": None if value is None else bool(met(value)),
                }
            )
    return targets


def step_op_bench(check: Check) -> StepResult:
    """bench_op.py at the target shape; then the forward in NCHW and channels-last against x.clone(); then,
    in the full run, at all the network's shapes with the step's remaining time (running out of it in the
    later runs costs their figures, not the step)."""
    if check.kernels_failed:
        return StepResult(skipped="the kernels did not build", summary="skipped: the kernels did not build")
    figures: dict[str, Any] = {}
    result = check.run(
        "op_bench", [check.python, "scripts/bench_op.py", *check.profile.op_bench_args.split()]
    )
    if not result.ok():
        state = "timed out" if result.timed_out else "failed"
        return StepResult(checks={"ran": False}, summary=f"{state} (see {result.log})")
    report = last_json(result.stdout)
    figures["target"] = report
    if check.profile.op_bench_layout_args:  # the NCHW and the channels-last (NHWC) kernels
        cmd = [check.python, "scripts/bench_op.py", *check.profile.op_bench_layout_args.split()]
        layouts = check.run("op_bench_layouts", cmd)
        figures["layouts"] = (
            last_json(layouts.stdout) if layouts.ok() else "timed out" if layouts.timed_out else "failed"
        )
    if check.profile.op_bench_network_args:
        cmd = [check.python, "scripts/bench_op.py", *check.profile.op_bench_network_args.split()]
        network = check.run("op_bench_network", cmd)
        figures["network"] = (
            last_json(network.stdout) if network.ok() else "timed out" if network.timed_out else "failed"
        )
    targets = _op_targets(report)
    rows = [r for r in report["summary"] if r["shape"] == TARGET_SHAPE and r["k"] == TARGET_K]
    parts = []
    for r in rows or report["summary"][:1]:  # the dry run has no target shape: its one case
        text = (
            f"{r['dtype']} {tuple(r['shape'])} k={r['k']}: dense/box {r.get('dense_over_box_fwd_bwd')}x, "
            f"box/dilated {r.get('box_over_dilated_fwd_bwd')}x"
        )
        if "box_fwd_fraction_of_copy_bandwidth" in r:
            text += f", fwd {r['box_fwd_GBps']} GB/s = {r['box_fwd_fraction_of_copy_bandwidth']:.0%} of copy"
        parts.append(text)
    copy = report["machine"].get("copy_bandwidth_GBps")
    summary = (f"copy {copy} GB/s; " if copy else "") + "; ".join(parts)
    if isinstance(figures.get("network"), str):
        summary += f"; network shapes {figures['network']}"
    if isinstance(figures.get("layouts"), dict):
        summary += "; fwd / x.clone(): " + ", ".join(
            f"{r['layout']} {r['box_over_clone']}x" for r in figures["layouts"]["versus_clone"]
        )
    elif "layouts" in figures:
        summary += f"; layouts {figures['layouts']}"
    return StepResult(figures=figures, checks={"ran": True}, targets=targets, summary=summary)


def model_bench_rows(report: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One row per model of a bench_models.py report: its best training and inference images/s over the
    memory formats (inference: the prepared model) and the training step's peak memory (CUDA only)."""
    settings = report[where] or {}
    by_model: dict[str, dict[str, Any]] = {}
    for kind, variant, key in (
        ("training", "train", "images_per_s"),
        ("inference", "prepared", "inference_images_per_s"),
    ):
        for r in settings.get(kind, {}).get("results", []):
            if r["variant"] != variant:
                continue
            row = by_model.setdefault(r["model"], {"model": r["model"]})
            if r["images_per_s"] > row.get(key, 0.0):
                row[key] = r["images_per_s"]
                if "peak_memory_mb" in r and kind == "training":
                    row["peak_memory_mb"] = r["peak_memory_mb"]
    return list(by_model.values())


def step_model_bench(check: Check) -> StepResult:
    """bench_models.py: eager (and, in the full run, torch.compile'd) training and inference images/s; the
    target: BoxNet trains at least as many images/s as SimpleBaseline-R50."""
    profile = check.profile
    where = "cuda" if profile.device == "cuda" else "cpu"
    figures: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    targets = []
    parts = []
    runs = [("eager", profile.bench_models, [])]
    if profile.compile_models:
        runs.append(("compile", profile.compile_models, ["--compile"]))
    for mode, models, extra in runs:
        cmd = [
            check.python,
            "scripts/bench_models.py",
            "--models",
            *models,
            *profile.bench_models_args.split(),
            *extra,
        ]
        result = check.run(f"model_bench_{mode}", cmd)
        rows = model_bench_rows(last_json(result.stdout), where) if result.ok() else []
        checks[mode] = bool(rows)  # a run without a figure (e.g. no CUDA seen) fails too
        figures[mode] = rows
        by_model = {r["model"]: r for r in rows}
        if "boxnet" in by_model and "simple_baseline_r50" in by_model:
            box, r50 = by_model["boxnet"]["images_per_s"], by_model["simple_baseline_r50"]["images_per_s"]
            targets.append(
                {
                    "name": f"BoxNet training images/s / SimpleBaseline-R50's (bf16, channels-last, {mode})",
                    "value": round(box / r50, 2),
                    "target": ">= 1",
                    "met": box >= r50,
                }
            )
        parts += [
            f"{r['model']}{' compiled' if mode == 'compile' else ''}: "
            f"train {r.get('images_per_s')} img/s, infer {r.get('inference_images_per_s')} img/s"
            + (f", {r['peak_memory_mb'] / 1024:.1f} GiB" if "peak_memory_mb" in r else "")
            for r in rows
        ]
    summary = "; ".join(parts)
    return StepResult(figures=figures, checks=checks, targets=targets, summary=summary or "no figures")


def train_overrides(
    profile: Profile, data_root: Path, output_dir: Path, *, model: str, epochs: int, steps: int, compile: bool
) -> list[str]:
    """boxpose-train's command-line overrides of the check's runs on the synthetic MPII data."""
    size = profile.input_size
    device = profile.device
    overrides = [
        "data=synthetic_mpii",
        f"model={model}",
        f"data.root={data_root}",
        f"data.input_size=[{size},{size}]",
        f"data.heatmap_size=[{size // 4},{size // 4}]",
    ]
    for key, value in profile.synthetic.items():
        overrides.append(f"data.synthetic.{key}={json.dumps(value).replace(' ', '')}")
    overrides += [
        f"trainer.batch_size={profile.batch}",
        f"trainer.workers={profile.workers}",
        f"trainer.device={device}",
        f"trainer.amp={profile.amp}",
        f"trainer.channels_last={str(profile.channels_last).lower()}",
        f"trainer.compile={str(compile).lower()}",
        f"trainer.epochs={epochs}",
        f"trainer.max_steps_per_epoch={steps}",
        f"trainer.val_every={epochs}",
        "trainer.log_every=5",
        "trainer.progress=false",
        "trainer.image_every=0",
        "trainer.box_figure_every=0",
        f"evaluate.workers={profile.workers}",
        f"evaluate.batch_size={profile.eval_batch}",
        "run_name=gpu_check",
        f"output_dir={output_dir}",
    ]
    return overrides


def step_train_eval(check: Check) -> StepResult:
    profile = check.profile
    data_root = check.work_dir / "synthetic_mpii"
    run_dir = check.work_dir / "train"

    def overrides(output_dir: Path) -> list[str]:
        return train_overrides(
            profile,
            data_root,
            output_dir,
            model=profile.train_model,
            epochs=profile.epochs,
            steps=profile.steps_per_epoch,
            compile=profile.compile,
        )

    figures: dict[str, Any] = {
        "model": profile.train_model,
        "input_size": profile.input_size,
        "batch": profile.batch,
        "amp": profile.amp,
        "channels_last": profile.channels_last,
        "compile": profile.compile,
        "workers": profile.workers,
        "epochs": profile.epochs,
        "steps_per_epoch": profile.steps_per_epoch,
    }
    checks: dict[str, bool] = {}
    # The chance level: the untrained network of the same run, scored by the same evaluator (flip test).
    # Generating the synthetic data happens here too.
    untrained = check.internal(
        "train_eval_untrained", "untrained", "--", *overrides(check.work_dir / "untrained")
    )
    checks["untrained_evaluation"] = untrained.ok()
    chance = last_json(untrained.stdout)["metrics"]["Mean"] if untrained.ok() else None
    figures["data_and_untrained_seconds"] = round(untrained.seconds, 1)

    train = check.run("train_eval_train", [check.python, "-m", "boxpose.train", *overrides(run_dir)])
    checks["train"] = train.ok()
    figures["train_seconds"] = round(train.seconds, 1)
    losses: list[float] = []
    if (run_dir / "last.pt").is_file():
        import torch

        # torch.load itself (read onto the CPU): boxpose may have been installed by --wheels after this
        # process started, so the driver does not import it.
        checkpoint = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
        history = checkpoint.get("history") or [{}]
        losses = [round(float(h["loss"]), 6) for h in history if "loss" in h]
        figures["steps"] = int(checkpoint.get("step", 0))
        figures["pckh_validation_in_training"] = (history[-1].get("val") or {}).get("Mean")
    figures["epoch_losses"] = losses
    checks["loss_falls"] = len(losses) >= 2 and losses[-1] < losses[0]

    cmd = [
        check.python,
        "-m",
        "boxpose.evaluate",
        f"checkpoint={run_dir / 'last.pt'}",
        f"output_dir={check.work_dir / 'eval'}",
        f"hydra.run.dir={check.work_dir / 'eval'}",  # evaluate.log there, not in the repository root
        f"device={profile.device}",
        f"amp={profile.amp}",
        f"channels_last={str(profile.channels_last).lower()}",
        "evaluate.flip_test=true",
        f"evaluate.workers={profile.workers}",
        f"evaluate.batch_size={profile.eval_batch}",
    ]
    evaluation = check.run("train_eval_eval", cmd)
    checks["eval"] = evaluation.ok()
    pckh = float(last_json(evaluation.stdout)["metrics"]["Mean"]) if evaluation.ok() else None
    figures.update({"pckh": pckh, "pckh_untrained": chance, "eval_seconds": round(evaluation.seconds, 1)})
    if profile.pckh_margin is not None:
        checks["pckh_above_chance"] = (
            pckh is not None and chance is not None and pckh >= chance + profile.pckh_margin
        )
    loss_text = " -> ".join(f"{v:.2e}" for v in losses) if losses else "none"
    summary = (
        f"{profile.train_model} {profile.input_size}x{profile.input_size}, {figures.get('steps', '?')} steps "
        f"of {profile.batch} ({profile.amp}, compile {profile.compile}) in {train.seconds:.0f} s; epoch loss "
        f"{loss_text}; PCKh@0.5 (flip) {pckh if pckh is None else round(pckh, 1)} vs untrained "
        f"{chance if chance is None else round(chance, 1)}"
        + ("" if profile.pckh_margin is not None else " (not checked: too few steps to learn)")
    )
    return StepResult(figures=figures, checks=checks, summary=summary)


def step_ddp(check: Check) -> StepResult:
    profile = check.profile
    env = dict(check.env)
    gpus = len(check.info.get("gpus") or [])
    if profile.device == "cpu":
        backend, device = "gloo", "cpu"
    elif gpus >= 2:
        backend, device = "nccl", "cuda"
    elif gpus == 1:
        backend, device = "gloo", "cuda"  # NCCL refuses two ranks on one GPU; gloo shares it
        env["BOXPOSE_DIST_BACKEND"] = "gloo"
    else:
        return StepResult(skipped="no GPU found by the environment step", summary="skipped: no GPU")
    run_dir = check.work_dir / "ddp"
    overrides = train_overrides(
        profile,
        check.work_dir / "synthetic_mpii",
        run_dir,
        model=profile.ddp_model,
        epochs=1,
        steps=profile.ddp_steps,
        compile=False,
    )
    sync_bn = device == "cuda"  # trainer.sync_bn is on by default; SyncBatchNorm refuses CPU modules
    overrides.append(f"trainer.sync_bn={str(sync_bn).lower()}")
    cmd = [
        check.python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "boxpose.train",
        *overrides,
    ]
    result = check.run("ddp", cmd, env)
    figures: dict[str, Any] = {
        "backend": backend,
        "device": device,
        "processes": 2,
        "gpus": gpus,
        "sync_bn": sync_bn,
        "seconds": round(result.seconds, 1),
    }
    checks = {"ran": result.ok()}
    log = run_dir / "train.log"
    checks["two_processes"] = log.is_file() and "(2 processes)" in log.read_text()
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        figures["steps"] = summary.get("steps")
        figures["pckh"] = summary.get("best_metric")
        checks["steps"] = summary.get("steps") == profile.ddp_steps
        checks["gathered_evaluation"] = summary.get("best_metric") is not None
    else:
        checks["steps"] = False
    state = "ok" if all(checks.values()) else f"failed (see {result.log})"
    summary = (
        f"torchrun, 2 processes, {backend} on {device} ({gpus} GPU): {figures.get('steps')} steps; {state}"
    )
    return StepResult(figures=figures, checks=checks, summary=summary)


STEPS: list[tuple[str, Callable[[Check], StepResult]]] = [
    ("environment", step_environment),
    ("build", step_build),
    ("op_tests", step_op_tests),
    ("op_bench", step_op_bench),
    ("model_bench", step_model_bench),
    ("train_eval", step_train_eval),
    ("ddp", step_ddp),
]


# ----------------------------------------------------------------------------------------------------
# the report


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown of docs/BENCHMARKS.md's GPU section from a gpu_check.json report."""
    env = next((s["figures"] for s in report["steps"] if s["name"] == "environment"), {})
    gpus = env.get("gpus") or []
    machine = f"{gpus[0]['name']} x{len(gpus)}" if gpus else "no GPU (CPU)"
    lines = [
        f"### {report['profile']} run: {machine}, {report['date']}",
        "",
        f"`{report['command']}`: torch {env.get('torch', '?')} (CUDA {env.get('torch_cuda')}), driver "
        f"{env.get('driver')}, Python {env.get('python', '?')}, boxpose {env.get('commit') or '?'}; "
        f"{report['seconds']:.0f} s in all; **{'all checks passed' if report['passed'] else 'FAILED'}**.",
        "",
        "| step | result | seconds (budget) | figures |",
        "|---|---|---:|---|",
    ]
    for step in report["steps"]:
        failed = [name for name, ok in step["checks"].items() if not ok]
        result = step["status"] + (f" ({', '.join(failed)})" if failed else "")
        summary = step["summary"].replace("|", "\\|")
        lines.append(
            f"| {step['title']} | {result} | {step['seconds']:.1f} ({step['budget_s']}) | {summary} |"
        )
    targets = [t for step in report["steps"] for t in step["targets"]]
    if targets:
        lines += ["", "| target | value | goal | met |", "|---|---:|---|---|"]
        for t in targets:
            met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['name']} | {t['value']} | {t['target']} | {met} |")
    return "\n".join(lines) + "\n"


def run_check(profile: Profile, out_dir: Path, command: str, env: dict[str, str]) -> dict[str, Any]:
    """Run the seven steps; write gpu_check.json and gpu_check.md in ``out_dir``; return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "work", ignore_errors=True)
    check = Check(profile, out_dir, env)
    check.work_dir.mkdir(parents=True)
    check.logs_dir.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in STEPS]
    steps = [check.run_step(name, fn, later=names[i + 1 :]) for i, (name, fn) in enumerate(STEPS)]
    report = {
        "format": "boxpose-gpu-check-v1",
        "profile": profile.name,
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.monotonic() - check.start, 1),
        "deadline_s": profile.deadline_s,
        "passed": all(s["status"] != "fail" for s in steps),
        "steps": steps,
    }
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out_dir / "gpu_check.md").write_text(render_markdown(report))
    return report


# ----------------------------------------------------------------------------------------------------
# work done in subprocesses (--internal): these import torch and boxpose


def internal_environment() -> dict[str, Any]:
    import platform
    from importlib import metadata

    import torch

    from boxpose.ops import kernels

    def version(distribution: str) -> str | None:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return None

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [],
        "kernel_cache": str(kernels.cache_dir()),
    }
    for distribution in (
        "torchvision",
        "numpy",
        "hydra-core",
        "omegaconf",
        "antlr4-python3-runtime",
        "pycocotools",
        "opencv-python-headless",
        "triton",
        "boxpose",
    ):
        info[distribution] = version(distribution)
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append(
                {
                    "name": p.name,
                    "memory_gib": round(p.total_memory / 2**30, 1),
                    "capability": f"{p.major}.{p.minor}",
                    "multiprocessors": p.multi_processor_count,
                }
            )
    info["driver"] = _first_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    cuda_home = kernels.cuda_home()
    nvcc = str(Path(cuda_home, "bin", "nvcc")) if cuda_home else shutil.which("nvcc")
    version = _first_line([nvcc, "--version"], last=True) if nvcc else None
    info["nvcc"] = (
        version.split("release")[-1].split(",")[0].strip() if version and "release" in version else version
    )
    info["commit"] = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return info


def _first_line(cmd: list[str], last: bool = False) -> str | None:
    """The first (or the last 'release' line's) output of a small command, or None if it cannot run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.splitlines()
    if not lines:
        return None
    if last:
        return next((line for line in lines if "release" in line), lines[-1])
    return lines[0].strip()


def internal_oracle(device: str, size: str) -> dict[str, Any]:
    """The op on ``device`` (the CUDA kernels, or the CPU kernels in the dry run) against the float64
    reference and the dense-kernel oracle of tests/ops, and the run-to-run spread of its box gradients."""
    import torch

    sys.path.insert(0, str(REPO))
    from boxpose.ops import box_conv2d, box_conv2d_split, box_corners, split_coefficients, use_impl
    from tests.ops.dense_oracle import dense_box_conv, dense_split_conv, random_boxes

    impl = "cuda" if device == "cuda" else "cpu"
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    # (N, C, H, W, k, m): odd sizes, k as the network's, m = 2 boxes per channel, images smaller than k.
    shapes = [(4, 32, 64, 48, 31, 1), (2, 8, 33, 70, 13, 2), (1, 4, 9, 11, 25, 1)]
    variants = ("plain", "snapped", "split_h2", "split_v2", "split_q4")
    if size == "tiny":
        shapes = [(2, 3, 17, 13, 7, 2)]
        variants = ("plain", "snapped", "split_q4")
    generator = torch.Generator().manual_seed(0)
    cases: list[dict[str, Any]] = []

    def proper_boxes(count: int, k: int) -> torch.Tensor:
        """random_boxes without zero-size boxes (both ends clamped to one value), whose box gradients are
        one-sided: the dense oracle and the reference may then take different sides."""
        boxes = random_boxes(count, k, dtype=torch.float32, generator=generator)
        while True:
            sides = (boxes[:, 1::2] - boxes[:, 0::2]) * (k / 2)  # widths and heights in kernel cells
            small = (sides < 0.1).any(1)
            if not small.any():
                return boxes
            boxes[small] = random_boxes(int(small.sum()), k, dtype=torch.float32, generator=generator)

    def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
        got, ref = got.double(), ref.double()
        if not torch.isfinite(got).all():
            return float("inf")
        return float((got - ref).norm() / ref.norm().clamp_min(1e-30))

    def record(
        name: str, dtype: str, got: list[torch.Tensor], ref: list[torch.Tensor], what: list[str]
    ) -> None:
        for g, r, w in zip(got, ref, what):
            err = relative_error(g, r)
            cases.append(
                {
                    "name": f"{name}/{w}",
                    "dtype": dtype,
                    "rel_err": err,
                    "tol": TOLERANCE[dtype],
                    "ok": err <= TOLERANCE[dtype],
                }
            )

    def run(fn, inputs: list[torch.Tensor], grad: torch.Tensor, op_impl: str) -> list[torch.Tensor]:
        inputs = [t.detach().requires_grad_() for t in inputs]
        with use_impl(op_impl):
            out = fn(*inputs)
            grads = torch.autograd.grad(out, inputs, grad.to(out.dtype), allow_unused=True)
        return [out.detach(), *grads]

    for n, c, h, w, k, m in shapes:
        for dtype_name, dtype in dtypes.items():
            for layout in ("nchw", "channels_last"):
                for variant in variants:
                    x = torch.randn(n, c, h, w, generator=generator).to(dtype)
                    boxes = proper_boxes(c * m, k)
                    if variant == "snapped":  # integer corners in kernel units
                        boxes = (((boxes + 1) * k / 2).round() * 2 / k - 1).clamp(-1, 1)
                    g = torch.randn(n, c * m, h, w, generator=generator)
                    x, boxes, g = x.to(device), boxes.to(device), g.to(device)
                    if layout == "channels_last":
                        x, g = (
                            x.contiguous(memory_format=torch.channels_last),
                            g.contiguous(memory_format=torch.channels_last),
                        )
                    name = f"{(n, c, h, w)} k={k} m={m} {dtype_name} {layout} {variant}".replace(" ", "")
                    if variant.startswith("split"):
                        split = variant.split("_")[1]
                        weights = torch.randn(c * m, 4 if split == "q4" else 2, generator=generator).to(
                            device
                        )

                        def fn(a, b, wt, k=k, split=split):
                            return box_conv2d_split(a, b, wt, k, split)

                        def dense(a, b, wt, k=k, split=split):
                            return dense_split_conv(a, b, wt, k, split)

                        inputs = [x, boxes, weights]
                        what = ["forward", "grad_input", "grad_boxes", "grad_weights"]
                    else:
                        snapped = variant == "snapped"

                        def fn(a, b, k=k, snapped=snapped):
                            return box_conv2d(a, b, k, snapped=snapped)

                        def dense(a, b, k=k):
                            return dense_box_conv(a, b, k)

                        inputs = [x, boxes]
                        # Snapped corners are integers: the boxes get no gradient.
                        what = (
                            ["forward", "grad_input"] if snapped else ["forward", "grad_input", "grad_boxes"]
                        )
                    got = run(fn, inputs, g, impl)
                    if layout == "channels_last" and not got[0].is_contiguous(
                        memory_format=torch.channels_last
                    ):
                        cases.append(
                            {
                                "name": f"{name}/layout",
                                "dtype": dtype_name,
                                "rel_err": float("inf"),
                                "tol": 0.0,
                                "ok": False,
                            }
                        )
                    wide = [t.double() for t in inputs]
                    record(
                        f"{name} vs reference", dtype_name, got, run(fn, wide, g.double(), "reference"), what
                    )
                    if variant != "snapped":  # the dense oracle's gradients assume non-integer corners
                        record(
                            f"{name} vs dense",
                            dtype_name,
                            got,
                            run(dense, wide, g.double(), "reference"),
                            what,
                        )

    # More planes (N * C) than a grid dimension can index on CUDA (65535); a few hundred on the CPU.
    planes = 70_000 if device == "cuda" else 300
    x = torch.randn(2, planes // 2, 3, 4, generator=generator).to(device)
    boxes = proper_boxes(planes // 2, 3).to(device)
    g = torch.randn(2, planes // 2, 3, 4, generator=generator).to(device)

    def plain(a, b):
        return box_conv2d(a, b, 3)

    record(
        f"{planes}_planes vs reference",
        "fp32",
        run(plain, [x, boxes], g, impl),
        run(plain, [x.double(), boxes.double()], g.double(), "reference"),
        ["forward", "grad_input", "grad_boxes"],
    )

    x = torch.randn(2, 6, 20, 20, generator=generator).to(device)
    boxes = proper_boxes(6, 13).to(device)
    if device == "cuda":  # the kernels must launch on the current stream, not the default one
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), use_impl(impl):
            on_stream = box_conv2d(x, boxes, 13) * 1.0
        torch.cuda.current_stream().wait_stream(stream)
        with use_impl("reference"):
            ref = box_conv2d(x.double(), boxes.double(), 13)
        err = relative_error(on_stream, ref)
        cases.append(
            {
                "name": "side_stream vs reference/forward",
                "dtype": "fp32",
                "rel_err": err,
                "tol": TOLERANCE["fp32"],
                "ok": err <= TOLERANCE["fp32"],
            }
        )
    xs, ys = box_corners(boxes, 13)
    coef = split_coefficients(torch.ones(6, 1, device=device), "none")
    try:
        with use_impl(impl):
            torch.library.opcheck(
                torch.ops.boxpose.box_filter.default, (x.requires_grad_(), xs, ys, coef, 13, False)
            )
        opcheck_ok, opcheck_error = True, None
    except Exception as exc:  # opcheck raises OpCheckError (or the op's own error) with the reason
        opcheck_ok, opcheck_error = False, f"{type(exc).__name__}: {str(exc)[:500]}"
    cases.append(
        {
            "name": "opcheck",
            "dtype": "fp32",
            "rel_err": 0.0 if opcheck_ok else float("inf"),
            "tol": 0.0,
            "ok": opcheck_ok,
            "error": opcheck_error,
        }
    )

    determinism = []
    n, c, h, w, k = (8, 192, 64, 64, 25) if size == "full" else (2, 8, 32, 32, 13)
    for dtype_name in ("fp32", "bf16"):
        x = torch.randn(n, c, h, w, generator=generator).to(dtypes[dtype_name]).to(device)
        boxes = proper_boxes(c, k).to(device)
        g = torch.randn(n, c, h, w, generator=generator).to(dtypes[dtype_name]).to(device)
        runs = [run(lambda a, b: box_conv2d(a, b, k), [x, boxes], g, impl) for _ in range(3)]
        box_grads = torch.stack([r[2].double() for r in runs])
        input_grads = torch.stack([r[1].double() for r in runs])
        spread = float((box_grads.max(0).values - box_grads.min(0).values).abs().max())
        scale = float(box_grads.abs().max())
        determinism.append(
            {
                "dtype": dtype_name,
                "shape": [n, c, h, w],
                "k": k,
                "runs": 3,
                "box_grad_max_abs_spread": spread,
                "box_grad_max_abs": scale,
                "box_grad_rel_spread": spread / max(scale, 1e-30),
                "input_grad_max_abs_spread": float(
                    (input_grads.max(0).values - input_grads.min(0).values).max()
                ),
                "ok": spread <= DETERMINISM_TOLERANCE * scale,
            }
        )
    return {"device": device, "impl": impl, "cases": cases, "determinism": determinism}


def internal_untrained(overrides: list[str]) -> dict[str, Any]:
    """Build the training run of ``overrides`` (which generates the synthetic data if needed) and score its
    untrained network with the run's evaluator (flip test as configured): the chance level."""
    from boxpose.builders import build_trainer
    from boxpose.config import compose_config

    trainer = build_trainer(compose_config("train", overrides))
    # The plain module: compiling it for one evaluation would cost more than the evaluation.
    result = trainer.evaluator.evaluate(
        trainer.plain_model, trainer.device, trainer.output_dir / "eval_untrained"
    )
    return {"metrics": result.metrics}


# ----------------------------------------------------------------------------------------------------
# wheels (a GPU machine without a package index)


def install_wheels(wheel_dir: Path, target: Path, project: Path | None) -> list[str]:
    """``pip install --no-index --no-deps --target`` the wheels of ``wheel_dir`` (from scripts/gpu_wheels.sh)
    and put ``target`` on PYTHONPATH for this process and its children; then, if ``project`` is given,
    ``pip install --no-deps --no-build-isolation -e project``. Returns the wheels' file names."""
    wheels = sorted(wheel_dir.glob("*.whl"))
    if not wheels:
        raise SystemExit(
            f"gpu_check: --wheels {wheel_dir}: no .whl files there; make them with "
            f"scripts/gpu_wheels.sh {wheel_dir}"
        )
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-index",
        "--no-deps",
        "--no-compile",
    ]
    subprocess.run([*pip, "--upgrade", "--target", str(target), *map(str, wheels)], check=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, str(target))
    if project is not None:
        subprocess.run([*pip, "--no-build-isolation", "-e", str(project)], check=True)
    return [w.name for w in wheels]


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="about 3 minutes: fewer shapes and steps, no compile"
    )
    mode.add_argument("--dry-run", action="store_true", help="CPU only, tiny sizes, no CUDA")
    mode.add_argument(
        "--render", metavar="JSON", help="print the Markdown table of a gpu_check.json and exit"
    )
    parser.add_argument(
        "--out", default="outputs/gpu_check", help="folder of gpu_check.json/.md, logs, work files"
    )
    parser.add_argument(
        "--wheels", metavar="DIR", help="install these wheels (scripts/gpu_wheels.sh) and boxpose first"
    )
    parser.add_argument("--internal", choices=["environment", "oracle", "untrained"], help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.internal == "environment":
        print(json.dumps(internal_environment()))
        return 0
    if args.internal == "oracle":
        report = internal_oracle(args.device, args.size)
        print(json.dumps(report))
        return 0 if all(c["ok"] for c in report["cases"]) else 1
    if args.internal == "untrained":
        print(json.dumps(internal_untrained(args.overrides)))
        return 0
    if args.overrides:
        parser.error(f"unexpected arguments {args.overrides}")
    if args.render:
        path = Path(args.render)
        if not path.is_file():
            print(
                f"gpu_check: --render {path}: no such file (a gpu_check.json written by this script)",
                file=sys.stderr,
            )
            return 2
        print(render_markdown(json.loads(path.read_text())), end="")
        return 0

    if args.wheels:
        wheel_dir = Path(args.wheels)
        if not wheel_dir.is_dir():
            print(
                f"gpu_check: --wheels {wheel_dir}: no such folder (make it with scripts/gpu_wheels.sh "
                f"{wheel_dir})",
                file=sys.stderr,
            )
            return 2
        names = install_wheels(wheel_dir, Path(tempfile.mkdtemp(prefix="boxpose-wheels-")), REPO)
        print(f"gpu_check: installed {len(names)} wheels and boxpose (editable)", file=sys.stderr)

    profile = DRY if args.dry_run else QUICK if args.quick else FULL
    problem = preflight(cuda=profile.device == "cuda")
    if problem:
        print(f"gpu_check: {problem}", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = shlex.join(["python", "scripts/gpu_check.py", *(argv if argv is not None else sys.argv[1:])])
    report = run_check(profile, Path(args.out).resolve(), command, env)
    print(render_markdown(report))
    print(f"gpu_check: wrote {Path(args.out) / 'gpu_check.json'}", file=sys.stderr)
    return 0 if report["passed"] else 1


def preflight(cuda: bool) -> str | None:
    """None if boxpose (with its kernels and configs), Hydra and pycocotools import in a fresh process outside
    the checkout and, if ``cuda``, a CUDA device is there; else what is missing. The driver process itself
    never initialises CUDA."""
    code = (
        "import boxpose._kernels, boxpose._configs, hydra, omegaconf, pycocotools, torch, sys; "
        "sys.exit(0 if torch.cuda.is_available() else 3)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tempfile.gettempdir(), capture_output=True, text=True
    )
    if result.returncode not in (0, 3):
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"boxpose or a dependency does not import ({last}); install the project with "
            "`pip install --no-deps --no-build-isolation -e .`, or pass --wheels DIR "
            "(from scripts/gpu_wheels.sh DIR) on a machine without a package index"
        )
    if cuda and result.returncode == 3:
        return "no CUDA device (torch.cuda.is_available() is False); use --dry-run to rehearse on the CPU"
    return None


if __name__ == "__main__":
    sys.exit(main())
