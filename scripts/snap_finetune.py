"""Snap every learned box to integer corners, fine-tune the rest of the network, and measure the gain.

The paper's Conclusions: "once the learned boxes converge, we can round the sampling points (i.e., box
corners) to integers and only fine-tune the rest of the network. Sampling using integer coordinates
does not require interpolation, which would use many fewer multadds." This script does that to a
trained checkpoint and reports the accuracy before and after snapping and after fine-tuning, and the
measured speed-up of the snapped box op:

1. ``original.pt``: the checkpoint's weights and metadata (no optimizer state), evaluated as is.
2. ``snapped.pt``: every ``BoxConv2d`` snapped (:func:`boxpose.nn.snap_boxes_`: corners rounded to the
   kernel window's integer grid, boxes frozen, the layer's persistent ``snapped`` flag set), evaluated.
   ``recalibrated.pt``: the snapped model with its BatchNorm running statistics re-estimated on
   ``--bn-batches`` training batches (no weight changes), evaluated. Moving corners by up to half a
   pixel changes every box sum, and the BatchNorm layers after the box filters still normalise with the
   statistics of the unsnapped sums; this stage separates that mismatch from lost information.
3. Fine-tuning (``last.pt``, ``best.pt``, ``train.log``, ``tensorboard/`` in ``--output``): a trainer built
   from the checkpoint's stored config (``checkpoint["config"]``) with ``output_dir=--output``,
   ``trainer.epochs=schedule.epochs=--epochs``, ``optim.lr=--lr``, a constant learning rate
   (``schedule.milestones=[]``, no warm-up), ``trainer.resume=null``, then the extra overrides given on
   the command line (``key=value`` of the stored config, e.g. ``trainer.batch_size=32``; the model and
   the data cannot be switched). The checkpoint's weights are loaded into it, the boxes snapped and
   frozen, and the optimizer rebuilt over the trainable parameters only (so neither the steps nor
   weight decay can touch the boxes; the trainer's box projection skips snapped layers). The piece
   weights of split boxes stay trainable. After fitting, the boxes of the model and of the saved
   ``last.pt`` are checked to be exactly the snapped ones (an error otherwise); ``last.pt`` is evaluated.

All three evaluations use :func:`boxpose.cli.evaluate.evaluate` on the validation split with the flip
test and the checkpoint's data and evaluation settings (``--output/eval/{original,snapped,finetuned}``).
The source checkpoint's folder is never written to.

Timing: the box layers and the whole model, original vs snapped, forward in eval mode under no_grad,
at batch ``--timing-batch`` and the checkpoint's input size (each box layer at the shape it sees in the
model), on the CPU and on CUDA when available. The two variants are timed alternately,
``--timing-repeats`` rounds each (medians), with torch.utils.benchmark as in ``scripts/bench_op.py``.
The snapped op is cheaper because its corners need no interpolation: the ``snapped`` flag makes the
kernels round the corners, the CPU kernel then skips the taps whose bilinear weight is 0
(``kernels/box_filter_cpu.cpp``: 8 multiply-adds per output of a plain box, 4 along x and 4 along y, and
4 once snapped, plus the running sums, which are the same), and the CUDA kernel takes its integer-corner
path (one SAT read per corner, ``CornerTable::integer`` in ``kernels/box_filter_common.h``). The measured
ratio is reported as it is.
On a CPU shared with other busy processes, OpenMP threads wait for each other for whole scheduler
slices and the timings become meaningless; ``--timing-threads 1`` then gives steady numbers.

Writes ``snap_report.json`` to ``--output`` (default: ``<checkpoint folder>_snap``) and prints a table and
the JSON.

    python scripts/snap_finetune.py outputs/demo/best.pt                      # 3 epochs at lr 1e-4
    python scripts/snap_finetune.py outputs/mpii_boxnet/best.pt --epochs 10 --output outputs/mpii_snap \\
        trainer.batch_size=32 trainer.val_every=5
    python scripts/snap_finetune.py outputs/demo/best.pt --timing-only         # speed-up only
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
import torch.utils.benchmark as benchmark
from omegaconf import DictConfig, OmegaConf

from boxpose.builders import build_trainer
from boxpose.cli.evaluate import evaluate
from boxpose.config import compose_config
from boxpose.engine.checkpoint import (
    load_checkpoint,
    load_model,
    model_state_dict,
    save_checkpoint,
)
from boxpose.nn import box_conv_layers, snap_boxes_
from boxpose.ops import get_impl

TRAINING_STATE = ("format", "optimizer", "scheduler", "scaler", "rng")  # not copied to original/snapped.pt
STAGES = ("original", "snapped", "recalibrated", "finetuned")
INTEGER_TOLERANCE_PX = 1e-4  # snapped corners are stored normalised in float32: k * eps from integers


# --------------------------------------------------------------------------------------------------
# configuration


def finetune_config(
    stored: dict[str, Any], output_dir: Path, epochs: int, lr: float, device: str, extra: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The fine-tuning run's resolved config: the checkpoint's stored config with the overrides applied.

    Returns:
        (config dict for :func:`boxpose.builders.build_trainer`, the overrides applied, in order).
    Raises:
        ValueError: an override names a key the config does not have, or replaces a config group.
    """
    overrides = [
        f"output_dir={output_dir}",
        f"run_name={stored.get('run_name', 'run')}_snap",
        f"schedule.epochs={epochs}",
        f"trainer.epochs={epochs}",
        f"optim.lr={lr}",
        "schedule.milestones=[]",
        "schedule.warmup_iters=0",
        "trainer.resume=null",
        f"trainer.device={device}",
        *extra,
    ]
    config = OmegaConf.create(stored)
    OmegaConf.set_struct(config, True)  # a misspelt key is an error, as on the training command line
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep:
            raise ValueError(f"override {override!r} is not of the form key=value")
        if isinstance(OmegaConf.select(config, key), DictConfig):
            raise ValueError(
                f"override {override!r}: {key} is a config group; the model and data come from the "
                f"checkpoint and cannot be switched (override its keys, e.g. {key}.<name>=...)"
            )
        try:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist([override]))
        except Exception as exc:
            raise ValueError(f"override {override!r}: {exc}") from exc
    return OmegaConf.to_container(config, resolve=True), overrides


def evaluate_config(
    checkpoint: Path, output_dir: Path, device: str, stored: dict[str, Any]
) -> dict[str, Any]:
    """``configs/evaluate.yaml`` composed for ``checkpoint``: the val split with the flip test, the other
    evaluation settings (decode, batch size, workers, ...) as the checkpoint was trained with."""
    overrides = [f"checkpoint={checkpoint}", f"output_dir={output_dir}", f"device={device}"]
    cfg = compose_config("evaluate", overrides)
    cfg["evaluate"].update({k: v for k, v in (stored.get("evaluate") or {}).items() if k in cfg["evaluate"]})
    cfg["evaluate"].update({"split": "val", "flip_test": True, "oracle": False})
    return cfg


def evaluate_command(cfg: dict[str, Any]) -> str:
    """The ``boxpose-eval`` command line equivalent to ``cfg``."""
    settings = " ".join(
        f"evaluate.{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in cfg["evaluate"].items()
    )
    where = f"checkpoint={cfg['checkpoint']} output_dir={cfg['output_dir']} device={cfg['device']}"
    return f"boxpose-eval {where} {settings}"


# --------------------------------------------------------------------------------------------------
# boxes


def snapped_boxes(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Name -> (C_out, 4) copy of every box layer's ``boxes`` parameter (normalised corners), on the CPU."""
    return {name: layer.boxes.detach().cpu().clone() for name, layer in box_conv_layers(model)}


def freeze_boxes(model: torch.nn.Module) -> int:
    """Snap (idempotent) and freeze the corners of every box layer; returns the number of corner values."""
    snap_boxes_(model)
    count = 0
    for _, layer in box_conv_layers(model):
        layer.boxes.requires_grad_(False)
        count += layer.boxes.numel()
    return count


def check_boxes(model: torch.nn.Module, expected: dict[str, torch.Tensor], what: str) -> None:
    """Raise RuntimeError unless every box layer of ``model`` is snapped, its corners are integers (in
    pixels of the window) and its ``boxes`` equal ``expected`` exactly."""
    layers = dict(box_conv_layers(model))
    if layers.keys() != expected.keys():
        raise RuntimeError(f"{what}: box layers {sorted(layers)} differ from {sorted(expected)}")
    for name, layer in layers.items():
        pixels = layer.boxes_in_pixels()
        off_grid = float((pixels - pixels.round()).abs().max())
        if not layer.is_snapped or off_grid > INTEGER_TOLERANCE_PX:
            raise RuntimeError(f"{what}: {name} is not snapped (corners {off_grid:.2g} px from integers)")
        if not torch.equal(layer.boxes.detach().cpu(), expected[name]):
            moved = float((layer.boxes.detach().cpu() - expected[name]).abs().max())
            raise RuntimeError(f"{what}: the boxes of {name} moved during fine-tuning (by up to {moved:.3g})")


def empty_boxes(model: torch.nn.Module) -> int:
    """How many boxes of ``model`` have zero width or height (their output is 0). Snapping empties none:
    a box narrower than a pixel keeps one pixel (:meth:`boxpose.nn.BoxConv2d.snap_`)."""
    count = 0
    for _, layer in box_conv_layers(model):
        pixels = layer.boxes_in_pixels()
        count += int(((pixels[:, 1] - pixels[:, 0] < 1e-3) | (pixels[:, 3] - pixels[:, 2] < 1e-3)).sum())
    return count


def corner_shift_px(before: torch.nn.Module, after: torch.nn.Module) -> float:
    """The largest distance (pixels) a corner moved between two models with the same box layers."""
    shifts = [
        float((a.boxes_in_pixels() - b.boxes_in_pixels()).abs().max())
        for (_, a), (_, b) in zip(box_conv_layers(before), box_conv_layers(after))
    ]
    return max(shifts, default=0.0)


# --------------------------------------------------------------------------------------------------
# timing


def compare_ms(fn_a, fn_b, repeats: int, min_block_s: float = 0.01) -> tuple[float, float]:
    """Median milliseconds per call of ``fn_a`` and ``fn_b``, timed alternately for ``repeats`` rounds (so
    that a change of machine load affects both); each round times a block of calls lasting about
    ``min_block_s``. CUDA is synchronised by torch.utils.benchmark."""
    fn_a()  # warm-up (kernel build, allocator, cuDNN autotuning)
    fn_b()
    blocks = []
    for fn in (fn_a, fn_b):
        once = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).timeit(1).mean
        blocks.append(max(1, round(min_block_s / max(once, 1e-9))))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, number, out in zip((fn_a, fn_b), blocks, times):
            timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
            out.append(timer.timeit(number).mean * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def _no_grad_call(module: torch.nn.Module, x: torch.Tensor):
    def call():
        with torch.no_grad():
            return module(x)

    return call


def box_layer_inputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Size]:
    """Name -> (N, C, H, W) input shape of every box layer during ``model(x)``."""
    shapes: dict[str, torch.Size] = {}
    handles = [
        layer.register_forward_hook(
            lambda m, inputs, out, name=name: shapes.__setitem__(name, inputs[0].shape)
        )
        for name, layer in box_conv_layers(model)
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return shapes


def time_snapping(
    model: torch.nn.Module, input_size: list[int], batch: int, repeats: int, device: torch.device
) -> dict[str, Any]:
    """Forward times (ms) of the box layers and of the whole model, original vs snapped, on ``device``.

    Args:
        model: the unsnapped model (not modified). input_size: [width, height] of the input images.
        batch: images per forward. repeats: timing rounds per case.
    Returns:
        {"layers": [{name, shape (N, C, H, W), k, original_ms, snapped_ms, speedup}], "box_layers": totals
        over the box layers, "model": the whole model}; speed-up = original_ms / snapped_ms.
    """
    original = copy.deepcopy(model).to(device).eval()
    snapped = copy.deepcopy(model).to(device).eval()
    snap_boxes_(snapped)
    width, height = input_size
    images = torch.randn(batch, 3, height, width, device=device)
    shapes = box_layer_inputs(original, images)
    layers = []
    for (name, layer_a), (_, layer_b) in zip(box_conv_layers(original), box_conv_layers(snapped)):
        x = torch.randn(shapes[name], device=device)
        a, b = compare_ms(_no_grad_call(layer_a, x), _no_grad_call(layer_b, x), repeats)
        layers.append({"name": name, "shape": list(shapes[name]), "k": layer_a.max_size, **_pair(a, b)})
    total_a = sum(layer["original_ms"] for layer in layers)
    total_b = sum(layer["snapped_ms"] for layer in layers)
    model_a, model_b = compare_ms(_no_grad_call(original, images), _no_grad_call(snapped, images), repeats)
    return {"layers": layers, "box_layers": _pair(total_a, total_b), "model": _pair(model_a, model_b)}


def _pair(original_ms: float, snapped_ms: float) -> dict[str, float]:
    return {
        "original_ms": round(original_ms, 4),
        "snapped_ms": round(snapped_ms, 4),
        "speedup": round(original_ms / snapped_ms, 3),
    }


def run_timing(
    model: torch.nn.Module, input_size: list[int], batch: int, repeats: int, threads: int | None
) -> dict[str, Any]:
    """:func:`time_snapping` on the CPU (with ``threads`` threads, default torch's) and on CUDA when
    available; the settings and one entry per device ("cpu", "cuda")."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    timing: dict[str, Any] = {
        "batch": batch,
        "input_size": input_size,
        "repeats": repeats,
        "cpu_threads": torch.get_num_threads(),
        "pass": "forward, eval mode, no_grad, float32",
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        for device in devices:
            print(f"timing original vs snapped on {device} (batch {batch}, input {input_size})", flush=True)
            timing[device] = time_snapping(model, input_size, batch, repeats, torch.device(device))
    finally:
        torch.set_num_threads(previous)
    return timing


# --------------------------------------------------------------------------------------------------
# the procedure


@torch.no_grad()
def recalibrate_batchnorm(
    model: torch.nn.Module, loader: torch.utils.data.DataLoader, batches: int, device: torch.device
) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance as the plain average over
    ``batches`` training batches (train-mode forward passes without gradients; no weight changes).
    Returns the number of batches used."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.to(device).train()
    used = 0
    for batch in loader:
        if used == batches:
            break
        model(batch["image"].to(device))
        used += 1
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()
    return used


def _weights_only(checkpoint: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The checkpoint's metadata with ``model``'s weights, without the training state."""
    payload = {k: v for k, v in checkpoint.items() if k not in TRAINING_STATE}
    payload["model"] = model_state_dict(model)
    return payload


def _evaluate(checkpoint: Path, output_dir: Path, stage: str, device: str, stored: dict) -> dict[str, Any]:
    cfg = evaluate_config(checkpoint, output_dir / "eval" / stage, device, stored)
    print(f"\n== {stage}: {evaluate_command(cfg)}", flush=True)
    summary = evaluate(cfg)
    metrics_file = summary["files"].get("metrics")
    main_metric = json.loads(Path(metrics_file).read_text())["main_metric"] if metrics_file else None
    return {"metrics": summary["metrics"], "main_metric": main_metric, "command": evaluate_command(cfg)}


def snap_finetune(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the whole procedure (see the module docstring) with the parsed command line ``args``
    (``command``: the command line itself, for the report); returns the report (also written to
    ``<output>/snap_report.json``)."""
    source = Path(args.checkpoint)
    folder = source.resolve().parent
    output_dir = Path(args.output) if args.output else folder.with_name(f"{folder.name}_snap")
    checkpoint = load_checkpoint(source)
    stored = checkpoint.get("config")
    if not stored:
        raise ValueError(f"{source} stores no training config; it cannot be fine-tuned")
    if not args.timing_only and (output_dir / "last.pt").exists():
        raise FileExistsError(
            f"{output_dir} already holds a fine-tuning run (last.pt); pass another --output"
        )
    cfg, overrides = finetune_config(stored, output_dir, args.epochs, args.lr, args.device, args.overrides)
    model, _ = load_model(source, "cpu")
    if not box_conv_layers(model):
        raise ValueError(f"{source}: the model ({checkpoint.get('model_name')}) has no box layers to snap")
    report: dict[str, Any] = {
        "checkpoint": str(source),
        "output_dir": str(output_dir),
        "model_name": checkpoint.get("model_name"),
        "epochs": args.epochs,
        "lr": args.lr,
        "device": args.device,
        "machine": {
            "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "box_impl": get_impl(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "commands": {"snap_finetune": command},
    }

    input_size = list(checkpoint.get("input_size") or stored["data"]["input_size"])
    report["timing"] = run_timing(
        model, input_size, args.timing_batch, args.timing_repeats, args.timing_threads
    )
    if args.timing_only:
        return _finish(report, output_dir)

    # 1-2: the checkpoint as is, snapped, and snapped with recalibrated BatchNorm statistics.
    output_dir.mkdir(parents=True, exist_ok=True)
    finetune_model = copy.deepcopy(model)
    frozen = freeze_boxes(finetune_model)  # snapped and frozen: the optimizer takes the other parameters
    trainer = build_trainer(cfg, model=finetune_model)  # its training loader also serves the recalibration
    report["device"] = str(trainer.device)
    paths = {stage: output_dir / f"{stage}.pt" for stage in ("original", "snapped", "recalibrated")}
    save_checkpoint(paths["original"], _weights_only(checkpoint, model))
    snapped_model = copy.deepcopy(model)
    snap_boxes_(snapped_model)
    save_checkpoint(paths["snapped"], _weights_only(checkpoint, snapped_model))
    recalibrated_model = copy.deepcopy(snapped_model)
    loader = trainer.train_loader
    bn_batches = recalibrate_batchnorm(recalibrated_model, loader, args.bn_batches, trainer.device)
    save_checkpoint(paths["recalibrated"], _weights_only(checkpoint, recalibrated_model.cpu()))
    results = {stage: _evaluate(paths[stage], output_dir, stage, args.device, stored) for stage in paths}

    # 3: fine-tune the rest of the network with the boxes snapped and frozen.
    print(f"\n== fine-tuning: boxpose-train (stored config of {source}) {shlex.join(overrides)}", flush=True)
    expected = snapped_boxes(snapped_model)  # the boxes evaluated as snapped.pt
    check_boxes(trainer.plain_model, expected, "snapping the trainer's model")
    trainer.fit()
    check_boxes(trainer.plain_model, expected, "the fine-tuned model")
    paths["finetuned"] = output_dir / "last.pt"
    finetuned_model, _ = load_model(paths["finetuned"], "cpu")
    check_boxes(finetuned_model, expected, str(paths["finetuned"]))
    results["finetuned"] = _evaluate(paths["finetuned"], output_dir, "finetuned", args.device, stored)

    main_metric = results["original"]["main_metric"]
    report.update(
        {
            "main_metric": main_metric,
            "accuracy": {stage: results[stage]["metrics"].get(main_metric) for stage in STAGES},
            "metrics": {stage: results[stage]["metrics"] for stage in STAGES},
            "checkpoints": {stage: str(path) for stage, path in paths.items()},
            "bn_recalibration_batches": bn_batches,
            "boxes": {
                "layers": len(expected),
                "frozen_corner_values": frozen,
                "max_corner_shift_px_by_snapping": round(corner_shift_px(model, snapped_model), 4),
                "empty_boxes": {"original": empty_boxes(model), "snapped": empty_boxes(snapped_model)},
                "integer_and_unchanged_after_finetuning": True,  # check_boxes raised otherwise
            },
        }
    )
    report["commands"]["finetune_overrides"] = overrides
    report["commands"]["evaluate"] = {stage: results[stage]["command"] for stage in STAGES}
    return _finish(report, output_dir)


def _finish(report: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "snap_report.json"
    path.write_text(json.dumps(report, indent=2))
    print("\n" + summary_table(report))
    print(json.dumps(report))
    print(f"report: {path}")
    return report


def summary_table(report: dict[str, Any]) -> str:
    """The accuracies (when evaluated) and the measured speed-ups, as text."""
    lines = []
    if "accuracy" in report:
        metric = report["main_metric"]
        lines.append(f"{'':<12}{metric:>10}   (val split, flip test)")
        before = report["accuracy"]["original"]
        for stage in STAGES:
            value = report["accuracy"][stage]
            delta = "" if stage == "original" or None in (value, before) else f"   ({value - before:+.2f})"
            text = "n/a" if value is None else f"{value:.2f}"
            lines.append(f"{stage:<12}{text:>10}{delta}")
        lines.append(f"boxes integer and unchanged after {report['epochs']} fine-tuning epoch(s): yes")
    timing = report["timing"]
    for device in ("cpu", "cuda"):
        if device not in timing:
            continue
        parts = [
            f"{what} {t['speedup']:.2f}x ({t['original_ms']:.2f} -> {t['snapped_ms']:.2f} ms)"
            for what, t in (
                ("box layers", timing[device]["box_layers"]),
                ("whole model", timing[device]["model"]),
            )
        ]
        lines.append(
            f"speed-up of snapping on {device} (forward, batch {timing['batch']}, "
            f"input {timing['input_size']}): {', '.join(parts)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="a training checkpoint (last.pt / best.pt)")
    parser.add_argument(
        "overrides", nargs="*", help="extra key=value overrides of the stored training config"
    )
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (default 3)")
    parser.add_argument(
        "--lr", type=float, default=1e-4, help="constant fine-tuning learning rate (default 1e-4)"
    )
    parser.add_argument("--output", help="output folder (default: <checkpoint folder>_snap)")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="training/evaluation"
    )
    parser.add_argument("--timing-batch", type=int, default=8, help="images per timed forward (default 8)")
    parser.add_argument("--timing-repeats", type=int, default=20, help="timing rounds per case (default 20)")
    parser.add_argument("--timing-threads", type=int, help="CPU threads while timing (default: torch's)")
    parser.add_argument("--timing-only", action="store_true", help="measure the speed-up only")
    parser.add_argument(
        "--bn-batches", type=int, default=50, help="training batches for the BatchNorm recalibration (50)"
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_intermixed_args(argv)  # overrides may come after the options
    if args.epochs < 1 or args.lr <= 0 or args.timing_batch < 1 or args.timing_repeats < 1:
        parser.error("--epochs, --timing-batch and --timing-repeats must be >= 1 and --lr > 0")
    try:
        snap_finetune(args, shlex.join(["python", "scripts/snap_finetune.py", *argv]))
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
