"""Table 1's ablation on the synthetic task: box vs dilated 4x4 vs 3x3 depthwise filters, same budget.

Trains each variant with each seed (``configs/experiment/ablation_synthetic.yaml`` plus the preset's
overrides), evaluates the *last* checkpoint of every run on the synthetic validation split with the flip
test (the best-on-val checkpoint would select on the numbers being reported), and writes
``results.json`` and ``results.md`` (per-seed PCKh@0.5, mean, standard deviation, and Welch's t-test of
box against dilated and against 3x3) to ``--output``. Finished runs
are skipped, so an interrupted study continues where it stopped; ``--fresh`` starts over.

Presets (the synthetic data and the optimiser are the same; only the scale differs):

- ``cpu`` (default): ``boxnet_tiny`` (36k parameters, ``model.depthwise`` = box / conv3x3 / dilated),
  128x128 crops, batch 16, 3 epochs of 280 steps (lr x0.1 after 2): 840 steps, sized so that the
  15 runs of 5 seeds fit in about an hour on 2 cores with ``--jobs 2`` (about 8 minutes per
  single-threaded run on an otherwise idle machine).
- ``gpu``: the paper's ``boxnet`` / ``boxnet_3x3`` / ``boxnet_dilated`` at 256x256, batch 32, 30 epochs,
  bf16, on one GPU.

    python scripts/ablation_synthetic.py --jobs 2                   # 3 variants x seeds 0-4, CPU
    python scripts/ablation_synthetic.py --preset gpu --seeds 0 1 2 3 4
    python scripts/ablation_synthetic.py --variants box conv3x3 -- schedule.epochs=2   # extra overrides

``--jobs N`` trains N runs at a time in separate processes, each with (cores / N) threads: on 2 cores two
single-threaded runs side by side use the machine better than one run with 2 threads.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from boxpose.cli.evaluate import evaluate
from boxpose.cli.train import train
from boxpose.config import compose_config

VARIANTS = ("box", "dilated", "conv3x3")  # the paper's order, best first
FULL_MODELS = {"box": "boxnet", "dilated": "boxnet_dilated", "conv3x3": "boxnet_3x3"}
PRESETS: dict[str, list[str]] = {
    "cpu": [],
    "gpu": [
        "data.input_size=[256,256]", "data.heatmap_size=[64,64]", "trainer.batch_size=32",
        "trainer.workers=8", "trainer.device=cuda", "trainer.amp=bf16", "trainer.channels_last=true",
        "schedule.epochs=30", "schedule.milestones=[20,26]", "trainer.val_every=10",
        "evaluate.workers=8",
    ],
}  # fmt: skip


def run_overrides(preset: str, variant: str, seed: int, output_dir: Path, extra: list[str]) -> list[str]:
    """The training overrides of one run (also what ``python -m boxpose.train`` would be given)."""
    model = [f"model={FULL_MODELS[variant]}"] if preset == "gpu" else [f"model.depthwise={variant}"]
    return [
        "experiment=ablation_synthetic", *model, f"seed={seed}", f"output_dir={output_dir}",
        "trainer.progress=false", *PRESETS[preset], *extra,
    ]  # fmt: skip


def run_one(preset: str, variant: str, seed: int, output_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Train one run (unless finished) and evaluate its last checkpoint with the flip test."""
    result_file = output_dir / "ablation_result.json"
    if result_file.exists():
        print(f"[{variant} seed {seed}] done before: {result_file}", flush=True)
        return json.loads(result_file.read_text())
    overrides = run_overrides(preset, variant, seed, output_dir, extra)
    print(f"[{variant} seed {seed}] python -m boxpose.train {' '.join(overrides)}", flush=True)
    cfg = compose_config("train", overrides)
    if (output_dir / "last.pt").exists() and not (output_dir / "summary.json").exists():
        cfg["trainer"]["resume"] = "auto"  # an interrupted run continues exactly
    start = time.time()
    summary = train(cfg) if not (output_dir / "summary.json").exists() else {}
    minutes = (time.time() - start) / 60
    device = "cuda" if preset == "gpu" else "cpu"
    evaluation = evaluate(
        compose_config("evaluate", [
            f"checkpoint={output_dir / 'last.pt'}", f"output_dir={output_dir / 'eval' / 'val_last_flip'}",
            f"device={device}", "evaluate.flip_test=true", f"evaluate.workers={cfg['evaluate']['workers']}",
        ])
    )  # fmt: skip
    result = {
        "variant": variant,
        "seed": seed,
        "model": cfg["model"],
        "epochs": cfg["trainer"]["epochs"],
        "input_size": cfg["data"]["input_size"],
        "pckh": evaluation["metrics"]["Mean"],
        "metrics": evaluation["metrics"],
        "train_minutes": round(minutes, 2) if summary else None,
        "overrides": overrides,
    }
    result_file.write_text(json.dumps(result, indent=2))
    return result


def run_in_worker(threads: int, *args: Any) -> dict[str, Any]:
    """:func:`run_one` in a worker process of ``--jobs`` with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    return run_one(*args)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-variant mean, sample standard deviation, spread and per-seed PCKh@0.5; the variants ordered
    best first; and Welch's t-test (unequal variances, two-sided) of box against each other variant."""
    per_variant: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        scores = {r["seed"]: r["pckh"] for r in results if r["variant"] == variant}
        if scores:
            values = list(scores.values())
            per_variant[variant] = {
                "per_seed": scores,
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
                "spread": max(values) - min(values),
            }
    ordering = sorted(per_variant, key=lambda v: per_variant[v]["mean"], reverse=True)
    tests = {}
    for other in VARIANTS[1:]:
        if "box" in per_variant and other in per_variant:
            tests[f"box_vs_{other}"] = welch_test(
                list(per_variant["box"]["per_seed"].values()), list(per_variant[other]["per_seed"].values())
            )
    return {"variants": per_variant, "ordering": ordering, "paper_ordering": list(VARIANTS), "tests": tests}


def welch_test(a: list[float], b: list[float]) -> dict[str, float | None]:
    """Welch's two-sided t-test of mean(a) != mean(b): the difference, t and p (None with < 2 values each)."""
    difference = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return {"difference": difference, "t": None, "p": None}
    result = stats.ttest_ind(a, b, equal_var=False)
    return {"difference": difference, "t": float(result.statistic), "p": float(result.pvalue)}


def markdown(summary: dict[str, Any], command: str) -> str:
    seeds = sorted({s for v in summary["variants"].values() for s in v["per_seed"]})
    lines = [
        "| depthwise filter | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |",
        "|---|" + "---:|" * (len(seeds) + 2),
    ]
    for variant, row in summary["variants"].items():
        cells = [f"{row['per_seed'][s]:.2f}" if s in row["per_seed"] else "-" for s in seeds]
        std = "-" if row["std"] is None else f"{row['std']:.2f}"
        lines.append(f"| {variant} | {' | '.join(cells)} | {row['mean']:.2f} | {std} |")
    lines += ["", "| comparison | difference | Welch t | p (two-sided) |", "|---|---:|---:|---:|"]
    for name, test in summary["tests"].items():
        t = "-" if test["t"] is None else f"{test['t']:.2f}"
        p = "-" if test["p"] is None else f"{test['p']:.3g}"
        lines.append(f"| {name.replace('_', ' ')} | {test['difference']:+.2f} | {t} | {p} |")
    lines += [
        "",
        f"Ordering (PCKh@0.5, synthetic val, flip test): {' > '.join(summary['ordering'])}; "
        f"the paper's: {' > '.join(summary['paper_ordering'])}.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--output", default=None, help="default outputs/ablation_synthetic[_gpu]")
    parser.add_argument("--fresh", action="store_true", help="delete earlier runs in --output first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at a time, in separate processes")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    output = Path(args.output or ("outputs/ablation_synthetic" + ("_gpu" if args.preset == "gpu" else "")))
    if args.fresh and output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    runs = [
        (args.preset, variant, seed, output / f"{variant}_seed{seed}", args.overrides)
        for seed in args.seeds
        for variant in args.variants
    ]
    if args.jobs > 1:
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            results = list(pool.map(run_in_worker, [threads] * len(runs), *zip(*runs, strict=True)))
    else:
        results = [run_one(*run) for run in runs]
    summary = summarize(results)
    command = "python scripts/ablation_synthetic.py " + " ".join(
        [f"--preset {args.preset}", "--variants", *args.variants, "--seeds", *map(str, args.seeds)]
        + (["--", *args.overrides] if args.overrides else [])
    )
    report = {**summary, "runs": results, "command": command}
    (output / "results.json").write_text(json.dumps(report, indent=2))
    (output / "results.md").write_text(markdown(summary, command))
    print(markdown(summary, command))
    return report


if __name__ == "__main__":
    main()
