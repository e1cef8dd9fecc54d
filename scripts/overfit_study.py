"""Fig. 5's overfitting analysis: BoxNet and SimpleBaseline trained on fractions of the training set.

Each run (model x fraction) trains on ``data.train_fraction`` of the training persons (a seeded random
subset; the subsets are nested: 0.1 is part of 0.25) with rotation and scale augmentation off and flip
on, as the paper does "to make overfitting happen more quickly". At each validation it measures the
same metric on both sides, so that the gap between them is overfitting:

- ``train_pck``: PCK@0.5 between heatmap argmaxes (:func:`boxpose.evaluation.pck.heatmap_accuracy`, the
  paper's "training accuracy"; no flip test) on the run's own training persons *without* augmentation
  (as many as the validation set has, evenly spread over the subset);
- ``val_pck``: the same on the validation set;
- ``val_pckh``: PCKh@0.5 with the flip test on the validation set (the trainer's validation; the
  metric of the paper's tables);
- ``train_running_pck``: the trainer's own training accuracy, on the (flipped) training batches of the
  last epoch while the weights change.

Training budget: with ``--steps N`` (the cpu preset's default) every run takes about N optimizer steps
whatever its fraction, so small subsets are seen many times and overfit, as in the paper, where every
run trains until it saturates: the run's ``schedule.epochs`` is N / (steps per epoch), the learning
rate drops x0.1 after 90/140 and 120/140 of them (the paper's MPII schedule) and it validates at
about 15 evenly spaced epochs. With ``--steps 0`` (the gpu preset's) every run takes the config's
epochs and validates every ``trainer.val_every`` (1) epochs.

The trainer (``boxpose.builders.build_trainer``, the same weights as one ``python -m boxpose.train`` run
with the printed overrides) is given an epoch-end callback that measures the accuracies after each
validation and appends them to ``<run>/curve.json``.
Finished runs are skipped and an interrupted one continues from its ``last.pt``; ``--fresh`` starts
over. ``--output`` receives ``results.json``, ``results.md``, ``curves.png`` (train and val PCK@0.5
against the epoch, one panel per fraction: the paper's Fig. 5, left) and ``final_val.png`` (the last
epoch's accuracies against the fraction, log x axis: Fig. 5, right). The numbers are those of the last
epoch, not of the best one. Each SimpleBaseline run keeps ``last.pt`` and ``best.pt`` (400 MB each).

Presets (``--mpii-root`` trains and validates on real MPII instead of the synthetic data):

- ``cpu`` (default; ``configs/experiment/overfit_synthetic.yaml``): a synthetic MPII set of its own
  (800 training images, 1215 persons; 100 validation images, 138 persons; generated into
  ``data/synthetic/mpii_overfit`` on first use, ~10 s), 64x64 crops, batch 16, 400 steps per run,
  fractions 0.1 0.25 0.5 1 (122 to 1215 persons; 57 to 5 epochs). BoxNet is ``boxnet_tiny`` (36k
  parameters). SimpleBaseline is the real ``simple_baseline_r50`` (34M parameters: the registry has no
  smaller SimpleBaseline) at the same 64x64 input, where its stride-32 backbone ends at 2x2 (8x8 at
  256x256), a harsher bottleneck than the paper's. The setting checks the whole pipeline and shows the
  start of overfitting on small subsets; it is far from the paper's saturated regime (after 400 steps
  the 10% runs reach 20-40% training PCK@0.5, the 100% runs are still underfitted), so it does not
  reproduce the paper's numbers or trend. Measured on 2 cores shared with another training job, with
  ``--threads 1``: boxnet_tiny 1-2.5 minutes per run, simple_baseline_r50 7.5-10.5 (ResNet-50 makes
  ~85% of the cost); fractions 0.1 and 1 of both models took 21.5 minutes, all four fractions are
  estimated at ~45 minutes there (less on 2 idle cores; not measured).
- ``gpu`` (``configs/experiment/overfit_mpii.yaml``): the paper's ``boxnet`` and ``simple_baseline_r50``
  at 256x256 (heatmaps 64x64), batch 32, bf16, 8 loader workers, on MPII (``--mpii-root``) or on the
  default synthetic set (``data/synthetic/mpii``, 6025 persons), fractions 0.05 0.1 0.25 0.5 1, the
  same epochs for every fraction: the paper's 140-epoch MPII schedule halved to 70 (lr x0.1 after 45
  and 60; ``-- schedule.epochs=140 "schedule.milestones=[90,120]"`` for the paper's), validation every
  epoch. Not timed (no GPU here): roughly 1-2 hours per model on MPII on one recent GPU.

    python scripts/overfit_study.py                                    # CPU: both models, 4 fractions
    python scripts/overfit_study.py --threads 1 --fractions 0.1 1      # on a machine busy with a job
    python scripts/overfit_study.py --preset gpu --mpii-root /data/mpii

On a CPU shared with another job, ``--threads 1`` is much faster than torch's default of one thread
per core (its threads wait for each other whenever one is descheduled: 10x slower steps were seen).
One process, one device (no torchrun).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from boxpose.builders import build_dataset, build_trainer
from boxpose.config import compose_config
from boxpose.data.loader import build_dataloader
from boxpose.engine.callbacks import Callback
from boxpose.engine.inference import autocast, final_heatmaps
from boxpose.engine.trainer import Trainer, TrainingInterrupted
from boxpose.evaluation.pck import heatmap_accuracy

MODELS = ("boxnet", "simple_baseline_r50")  # the paper's two networks
LABELS = {"boxnet": "BoxNet", "simple_baseline_r50": "SimpleBaseline-R50"}
COLORS = {"boxnet": "tab:blue", "simple_baseline_r50": "tab:orange"}
PRESET_MODELS = {
    "cpu": {"boxnet": "boxnet_tiny", "simple_baseline_r50": "simple_baseline_r50"},
    "gpu": {"boxnet": "boxnet", "simple_baseline_r50": "simple_baseline_r50"},
}
PRESET_FRACTIONS = {"cpu": [0.1, 0.25, 0.5, 1.0], "gpu": [0.05, 0.1, 0.25, 0.5, 1.0]}
PRESET_STEPS = {"cpu": 400, "gpu": 0}  # optimizer steps per run; 0 = the config's epochs for every fraction
CURVE_POINTS = 15  # with a step budget, validation at about this many evenly spaced epochs
PRESETS: dict[str, list[str]] = {
    "cpu": ["experiment=overfit_synthetic"],
    "gpu": [
        "experiment=overfit_mpii", "trainer.device=cuda", "trainer.amp=bf16", "trainer.channels_last=true",
        "schedule.epochs=70", "schedule.milestones=[45,60]", "evaluate.workers=8",
    ],
}  # fmt: skip


def run_overrides(
    preset: str, model: str, fraction: float, output_dir: Path, mpii_root: str | None, extra: list[str]
) -> list[str]:
    """The training overrides of one run (also what ``python -m boxpose.train`` would be given)."""
    if mpii_root is not None:
        data = ["data=mpii", f"data.root={mpii_root}", *(["~data.synthetic"] if preset == "cpu" else [])]
    else:
        data = ["data=synthetic_mpii"] if preset == "gpu" else []
    return [
        *PRESETS[preset], *data, f"model={PRESET_MODELS[preset][model]}", f"data.train_fraction={fraction}",
        f"run_name=overfit_{model}_frac{fraction:g}", f"output_dir={output_dir}", "trainer.progress=false",
        *extra,
    ]  # fmt: skip


def step_budget_overrides(steps: int, persons: int, batch_size: int) -> list[str]:
    """Schedule overrides that give a run of ``persons`` training persons about ``steps`` optimizer steps.

    epochs = steps / steps per epoch (rounded, at least 1; the trainer drops the last incomplete
    batch), the learning rate x0.1 after 90/140 and 120/140 of them (the paper's MPII schedule), and
    validation at about ``CURVE_POINTS`` evenly spaced epochs.
    """
    per_epoch = persons // batch_size
    if per_epoch < 1:
        raise ValueError(f"{persons} training persons do not fill one batch of {batch_size}")
    epochs = max(1, round(steps / per_epoch))
    milestones = sorted({round(epochs * 90 / 140), round(epochs * 120 / 140)})
    return [
        f"schedule.epochs={epochs}",
        f"schedule.milestones=[{','.join(map(str, milestones))}]",
        f"trainer.val_every={math.ceil(epochs / CURVE_POINTS)}",
    ]


@torch.no_grad()
def heatmap_pck(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> float:
    """PCK@0.5 between heatmap argmaxes, in percent, of ``model`` on the persons of ``loader``.

    The plain forward pass (no flip test) scored by :func:`boxpose.evaluation.pck.heatmap_accuracy`;
    the batches' accuracies are averaged weighted by their joint counts, as the trainer does for its
    training accuracy (and HRNet for its "Accuracy").
    """
    was_training = model.training
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    weighted_sum = joints = 0.0
    for batch in loader:
        images = batch["image"].to(device).contiguous(memory_format=memory_format)
        with autocast(device, amp):
            heatmaps = final_heatmaps(model(images)).float()
        _, accuracy, count = heatmap_accuracy(heatmaps, batch["target"], batch["target_weight"])
        weighted_sum += accuracy * count
        joints += count
    model.train(was_training)
    return 100.0 * weighted_sum / joints if joints else math.nan


def training_persons_loader(
    dataset: Dataset, max_persons: int, evaluate: dict[str, Any], device: torch.device
) -> DataLoader:
    """An evaluation loader (``evaluate``: the config's evaluation settings) over at most ``max_persons``
    of ``dataset``'s persons, evenly spread."""
    count = min(len(dataset), max_persons)
    indices = np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist()
    return build_dataloader(
        Subset(dataset, indices),
        batch_size=int(evaluate["batch_size"]),
        train=False,
        workers=int(evaluate["workers"]),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def epoch_record(trainer: Trainer, train_loader: DataLoader) -> dict[str, Any]:
    """The accuracies after the trainer's latest epoch (see the module docstring), in percent."""
    history = trainer.history[-1]
    settings = (trainer.device, trainer.amp, trainer.channels_last)
    return {
        "epoch": trainer.epoch,
        "train_pck": heatmap_pck(trainer.model, train_loader, *settings),
        "val_pck": heatmap_pck(trainer.model, trainer.evaluator.loader, *settings),
        "val_pckh": history.get("val", {}).get("Mean"),
        "train_running_pck": 100.0 * history["accuracy"],
        "loss": history["loss"],
        "lr": history["lr"],
    }


class CurveRecorder(Callback):
    """After every validated epoch: the accuracies of :func:`epoch_record`, appended to ``curve_file``
    (kept across an interrupted and resumed run) and printed.

    Args:
        train_persons: the run's training persons without augmentation.
        evaluate: the run's evaluation settings (loader batch size and workers).
        curve_file: ``<run>/curve.json``.
        tag: the run's name in the printed lines.
    """

    def __init__(self, train_persons: Dataset, evaluate: dict[str, Any], curve_file: Path, tag: str) -> None:
        self.train_persons = train_persons
        self.evaluate = evaluate
        self.curve_file = curve_file
        self.tag = tag
        self.curve: list[dict[str, Any]] = []
        self.train_loader: DataLoader | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        val_persons = len(trainer.evaluator.dataset)
        self.train_loader = training_persons_loader(
            self.train_persons, val_persons, self.evaluate, trainer.device
        )
        curve = json.loads(self.curve_file.read_text()) if self.curve_file.exists() else []
        self.curve = [e for e in curve if e["epoch"] <= trainer.epoch]
        if trainer.history and "val" in trainer.history[-1]:  # resumed after a validation not yet recorded
            self.measure(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any], result: Any) -> None:
        """Measure after a validated epoch (``result`` is its evaluation; None when not validated)."""
        if result is not None:
            self.measure(trainer)

    def measure(self, trainer: Trainer) -> None:
        """Append the accuracies after the trainer's latest epoch to the curve (once an epoch); print them."""
        if self.curve and self.curve[-1]["epoch"] >= trainer.epoch:
            return
        self.curve.append(epoch_record(trainer, self.train_loader))
        self.curve_file.write_text(json.dumps(self.curve, indent=2))
        e = self.curve[-1]
        pck = f"PCK@0.5 train {e['train_pck']:.1f} val {e['val_pck']:.1f}"
        print(
            f"{self.tag} epoch {e['epoch']}/{trainer.epochs}: {pck}, val PCKh@0.5 {e['val_pckh']:.1f}",
            flush=True,
        )


def run_one(
    preset: str,
    model: str,
    fraction: float,
    output_dir: Path,
    steps: int,
    mpii_root: str | None,
    extra: list[str],
) -> dict[str, Any]:
    """Train one run (unless finished), ``val_every`` epochs at a time, recording its accuracy curves."""
    tag = f"[{model} {fraction:g}]"
    result_file = output_dir / "overfit_result.json"
    if result_file.exists():
        print(f"{tag} done before: {result_file}", flush=True)
        return json.loads(result_file.read_text())
    overrides = run_overrides(preset, model, fraction, output_dir, mpii_root, extra)
    cfg = compose_config("train", overrides)
    train_persons = build_dataset(cfg["data"], "train", train=False)  # the subset, not augmented
    if steps:
        overrides += step_budget_overrides(steps, len(train_persons), int(cfg["trainer"]["batch_size"]))
        cfg = compose_config("train", overrides)
    print(f"{tag} python -m boxpose.train {' '.join(overrides)}", flush=True)
    if (output_dir / "last.pt").exists():
        cfg["trainer"]["resume"] = "auto"  # an interrupted run continues exactly
    recorder = CurveRecorder(train_persons, cfg["evaluate"], output_dir / "curve.json", tag)
    trainer = build_trainer(cfg, callbacks=[recorder])
    epochs, val_every = int(cfg["trainer"]["epochs"]), int(cfg["trainer"]["val_every"])
    start = time.time()
    trainer.fit()  # validates every val_every epochs and after the last; the recorder measures each time
    curve, train_loader, val_persons = recorder.curve, recorder.train_loader, len(trainer.evaluator.dataset)
    final = curve[-1]
    result = {
        "model": model,
        "model_name": cfg["model"]["name"],
        "fraction": fraction,
        "train_persons": len(train_persons),
        "train_eval_persons": len(train_loader.dataset),
        "val_persons": val_persons,
        "epochs": epochs,
        "steps": trainer.step,
        "val_every": val_every,
        "input_size": cfg["data"]["input_size"],
        "final": {
            "train_pck": final["train_pck"],
            "val_pck": final["val_pck"],
            "gap": final["train_pck"] - final["val_pck"],
            "val_pckh": final["val_pckh"],
        },
        "curve": curve,
        "minutes": round((time.time() - start) / 60, 2),  # of this invocation: training and evaluation
        "overrides": overrides,
    }
    result_file.write_text(json.dumps(result, indent=2))
    return result


def markdown(results: list[dict[str, Any]], command: str) -> str:
    """The final accuracies of every run as a table, and whether BoxNet generalises better."""
    lines = [
        "| model | fraction | training persons | epochs | train PCK@0.5 | val PCK@0.5 | gap | val PCKh@0.5 "
        "| minutes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: (MODELS.index(r["model"]), r["fraction"])):
        f = r["final"]
        cells = [
            f"{LABELS[r['model']]} ({r['model_name']})", f"{r['fraction']:g}", str(r["train_persons"]),
            str(r["epochs"]), *(f"{f[k]:.1f}" for k in ("train_pck", "val_pck", "gap", "val_pckh")),
            f"{r['minutes']:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    by_key = {(r["model"], r["fraction"]): r["final"]["val_pckh"] for r in results}
    shared = sorted({fr for _, fr in by_key if all((m, fr) in by_key for m in MODELS)})  # both models ran
    if shared:
        ahead = [fr for fr in shared if by_key[("boxnet", fr)] > by_key[("simple_baseline_r50", fr)]]
        lines += [
            "",
            f"BoxNet's final val PCKh@0.5 is above SimpleBaseline's at {len(ahead)} of {len(shared)} "
            "fractions (the paper: at every fraction).",
        ]
    lines += [
        "",
        "PCK@0.5: heatmap-argmax accuracy (the paper's training accuracy), the same on the training persons "
        "(no augmentation) and on the validation set; gap = train - val. PCKh@0.5: flip test. Last epoch. "
        "Minutes: training and evaluation, on this machine.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(lines) + "\n"


def percent(fraction: float) -> str:
    """0.1 -> "10%", 0.125 -> "12.5%"."""
    return f"{100 * fraction:g}%"


def plot_curves(results: list[dict[str, Any]], path: Path) -> Path:
    """Train (solid) and val (dashed) PCK@0.5 against the epoch: one panel per fraction, both models."""
    fractions = sorted({r["fraction"] for r in results})
    columns = min(len(fractions), 3)
    rows = math.ceil(len(fractions) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    by_model = sorted(results, key=lambda r: MODELS.index(r["model"]))
    for ax, fraction in zip(axes, fractions, strict=False):
        runs = [r for r in by_model if r["fraction"] == fraction]
        for r in runs:
            epochs = [e["epoch"] for e in r["curve"]]
            label, color = LABELS[r["model"]], COLORS[r["model"]]
            ax.plot(epochs, [e["train_pck"] for e in r["curve"]], color=color, label=f"{label} train")
            ax.plot(epochs, [e["val_pck"] for e in r["curve"]], "--", color=color, label=f"{label} val")
        persons = runs[0]["train_persons"]
        ax.set_title(f"{percent(fraction)} of the training set ({persons} persons)", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("PCK@0.5 (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    for ax in axes[len(fractions) :]:
        ax.set_visible(False)
    figure.suptitle("Training and validation accuracy (heatmap PCK@0.5; train: no augmentation)")
    figure.savefig(path, dpi=100)
    return path


def plot_final(results: list[dict[str, Any]], path: Path) -> Path:
    """Last-epoch accuracies against the fraction (log x): PCK@0.5 train and val, and val PCKh@0.5."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    pck_ax, pckh_ax = figure.subplots(1, 2)
    fractions = sorted({r["fraction"] for r in results})
    for model in MODELS:
        runs = sorted((r for r in results if r["model"] == model), key=lambda r: r["fraction"])
        if not runs:
            continue
        x = [r["fraction"] for r in runs]
        label, color = LABELS[model], COLORS[model]
        pck_ax.plot(x, [r["final"]["train_pck"] for r in runs], "o--", color=color, label=f"{label} train")
        pck_ax.plot(x, [r["final"]["val_pck"] for r in runs], "o-", color=color, label=f"{label} val")
        pckh_ax.plot(x, [r["final"]["val_pckh"] for r in runs], "o-", color=color, label=label)
    for ax, ylabel, title in (
        (pck_ax, "PCK@0.5 (%)", "Heatmap PCK@0.5 after the last epoch"),
        (pckh_ax, "val PCKh@0.5 (%)", "Validation PCKh@0.5 (flip test) after the last epoch"),
    ):
        ax.set_xscale("log")
        ax.set_xticks(fractions, labels=[percent(f) for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("fraction of the training set")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 100)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    figure.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (or continue) the study; returns the report that is also written to ``results.json``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--fractions", nargs="+", type=float, default=None, help="default: the preset's")
    parser.add_argument(
        "--steps", type=int, default=None,
        help="optimizer steps per run, whatever its fraction (sets its epochs, lr milestones and val_every); "
        "0 = the config's epochs for every fraction. Default: the preset's",
    )  # fmt: skip
    parser.add_argument("--mpii-root", default=None, help="real MPII (annot/, images/) instead of synthetic")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--output", default=None, help="default outputs/overfit_study[_gpu]")
    parser.add_argument("--fresh", action="store_true", help="delete earlier runs in --output first")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
    args = parser.parse_args(argv)
    fractions = args.fractions or PRESET_FRACTIONS[args.preset]
    steps = PRESET_STEPS[args.preset] if args.steps is None else args.steps
    if not all(0 < f <= 1 for f in fractions):
        parser.error(f"--fractions must be in (0, 1], got {fractions}")
    if args.threads:
        torch.set_num_threads(args.threads)
    output = Path(args.output or ("outputs/overfit_study" + ("_gpu" if args.preset == "gpu" else "")))
    if args.fresh and output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    results = [
        run_one(args.preset, model, fraction, output / f"{model}_frac{fraction:g}", steps, args.mpii_root,
                args.overrides)
        for fraction in fractions
        for model in args.models
    ]  # fmt: skip
    words = ["python scripts/overfit_study.py", f"--preset {args.preset}", "--models", *args.models]
    words += ["--fractions", *(f"{f:g}" for f in fractions), f"--steps {steps}"]
    words += [f"--mpii-root {args.mpii_root}"] if args.mpii_root else []
    words += [f"--threads {args.threads}"] if args.threads else []
    words += ["--", *args.overrides] if args.overrides else []
    command = " ".join(words)
    figures = {
        "curves": str(plot_curves(results, output / "curves.png")),
        "final_val": str(plot_final(results, output / "final_val.png")),
    }
    report = {"preset": args.preset, "command": command, "figures": figures, "runs": results}
    (output / "results.json").write_text(json.dumps(report, indent=2))
    (output / "results.md").write_text(markdown(results, command))
    print(markdown(results, command))
    return report


if __name__ == "__main__":
    try:
        main()
    except TrainingInterrupted:  # Ctrl-C: the run's last.pt was saved; rerunning continues it
        sys.exit(130)
