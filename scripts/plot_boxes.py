"""Draw the learned boxes of a checkpoint's box layers inside their k x k kernel windows (paper, Fig. 4).

    python scripts/plot_boxes.py outputs/demo/best.pt                          # last box layer, 32 boxes
    python scripts/plot_boxes.py outputs/demo/best.pt --list                   # the box layers, with stats
    python scripts/plot_boxes.py outputs/demo/best.pt --layer units.12.branch.3 --select widest
    python scripts/plot_boxes.py outputs/demo/best.pt --layer all --n 16       # one panel per box layer
    python scripts/plot_boxes.py run_e10/last.pt run_e50/last.pt run_e140/last.pt   # evolution
    python scripts/plot_boxes.py outputs/demo                                  # a run dir: its *.pt files

One checkpoint gives one panel per layer: the chosen boxes in a grid (``--columns`` windows per row),
each window captioned with its output channel j (it filters input channel j // m). Each window is the
k x k kernel window (grey, grid lines every pixel when they are visible), its centre marked with a
cross, and the box drawn in red (filled when it is smaller than 2 x 2 figure pixels).

Several checkpoints give the evolution of the boxes: one row per checkpoint, captioned with its file
and epoch, showing the same box indices in every row (chosen on the last checkpoint). Checkpoints are
drawn in the order given; a directory stands for the ``*.pt`` files directly inside it, sorted by
(epoch, step, name), of which those with the same epoch, step and boxes (``best.pt`` saved at the same
epoch as ``last.pt``) are drawn once; checkpoints named explicitly are always drawn.

Which files to pass for an evolution: train with ``trainer.checkpoint_every=N``, which keeps
``epoch_<NNN>.pt`` every N epochs beside ``last.pt`` and ``best.pt``, and pass those (or the run
directory). During training the trainer also writes ``figures/boxes_<layer>_epoch<NNN>.png`` every
``trainer.box_figure_every`` epochs for the first, middle and last box layers. Runs trained without
epoch checkpoints can still give a few stages: ``best.pt`` and ``last.pt``, the ``last.pt`` of runs of
the same configuration trained for different numbers of epochs, or the original / snapped / fine-tuned
checkpoints of ``scripts/snap_finetune.py``.

The checkpoints must share the architecture (the same box layers with the same sizes).

The PNG goes to ``--output``, by default ``<folder of the first checkpoint>/figures/boxes_<layer>.png``
(``boxes_all.png`` with ``--layer all``; ``..._evolution.png`` for several checkpoints). ``--list``
prints, per checkpoint and box layer: k, the number of boxes, the mean box width x height in pixels,
and the share of boxes that reach the window's edge (a corner at 0 or k); it draws nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from boxpose.engine.checkpoint import load_model
from boxpose.nn import box_conv_layers
from boxpose.viz import draw

SELECTIONS = ("first", "widest", "random")
EDGE_TOLERANCE_PX = 1e-3  # a corner this close to 0 or k counts as being on the window's edge


@dataclass
class LayerBoxes:
    """The boxes of one box layer: ``boxes`` (C_out, 4) corners (x_lo, x_hi, y_lo, y_hi) in pixels of the
    k x k window, [0, k] (``BoxConv2d.boxes_in_pixels()``); ``max_size`` k."""

    max_size: int
    boxes: np.ndarray


@dataclass
class Snapshot:
    """The box layers of one checkpoint, in the model's order."""

    path: Path
    model_name: str
    epoch: int
    step: int
    layers: dict[str, LayerBoxes]

    @property
    def caption(self) -> str:
        return f"{self.path.parent.name}/{self.path.name} epoch {self.epoch}"

    def signature(self) -> list[tuple[str, int, int]]:
        """(layer name, k, number of boxes) of every box layer: equal for checkpoints of one architecture."""
        return [(name, layer.max_size, len(layer.boxes)) for name, layer in self.layers.items()]


def load_snapshots(paths: list[str]) -> list[Snapshot]:
    """The checkpoints named on the command line, in that order; a directory stands for the ``*.pt`` files
    directly inside it, sorted by (epoch, step, file name), duplicates dropped."""
    snapshots: list[Snapshot] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(path.glob("*.pt"))
            if not found:
                raise FileNotFoundError(f"{path} holds no checkpoints (*.pt)")
            in_dir = [load_snapshot(file) for file in found]
            snapshots.extend(drop_duplicates(sorted(in_dir, key=lambda s: (s.epoch, s.step, s.path.name))))
        elif path.is_file():
            snapshots.append(load_snapshot(path))
        else:
            raise FileNotFoundError(f"checkpoint not found: {path}")
    return snapshots


def load_snapshot(path: Path) -> Snapshot:
    """Rebuild the checkpoint's model and read the boxes of its box layers (in pixels)."""
    model, checkpoint = load_model(path, "cpu")
    layers = {
        name: LayerBoxes(layer.max_size, layer.boxes_in_pixels().numpy())
        for name, layer in box_conv_layers(model)
    }
    if not layers:
        raise ValueError(f"{path}: the model ({checkpoint.get('model_name')}) has no box layers")
    return Snapshot(
        path=path,
        model_name=str(checkpoint.get("model_name", "?")),
        epoch=int(checkpoint.get("epoch", 0)),
        step=int(checkpoint.get("step", 0)),
        layers=layers,
    )


def drop_duplicates(snapshots: list[Snapshot]) -> list[Snapshot]:
    """Keep the first of checkpoints with the same epoch, step and boxes (``best.pt`` == ``last.pt``)."""
    kept: list[Snapshot] = []
    for snapshot in snapshots:
        twin = next((s for s in kept if _same_boxes(s, snapshot)), None)
        if twin is None:
            kept.append(snapshot)
        else:
            print(f"skipping {snapshot.path}: the same boxes as {twin.path} (epoch {twin.epoch})")
    return kept


def _same_boxes(a: Snapshot, b: Snapshot) -> bool:
    return (
        a.epoch == b.epoch
        and a.step == b.step
        and a.signature() == b.signature()
        and all(np.array_equal(a.layers[name].boxes, b.layers[name].boxes) for name in a.layers)
    )


def check_same_architecture(snapshots: list[Snapshot]) -> None:
    """Raise ValueError unless every checkpoint has the first one's box layers (names, k, box counts)."""
    first = snapshots[0]
    for other in snapshots[1:]:
        if other.signature() != first.signature():
            raise ValueError(
                f"the checkpoints have different architectures: {first.path} ({first.model_name}, "
                f"{len(first.layers)} box layers) and {other.path} ({other.model_name}, "
                f"{len(other.layers)} box layers) differ in their box layers (names, k or number of boxes); "
                f"pass checkpoints of one architecture"
            )


def resolve_layers(snapshot: Snapshot, layer: str | None) -> list[str]:
    """The layer names to draw: the last box layer (None; the paper's Fig. 4 shows the last layer that uses
    box filters), every one ("all"), or the one named."""
    names = list(snapshot.layers)
    if layer is None:
        return names[-1:]
    if layer == "all":
        return names
    if layer not in snapshot.layers:
        raise ValueError(
            f"no box layer named {layer!r} in {snapshot.path} ({snapshot.model_name}); "
            f"the box layers are: {', '.join(names)} (or 'all')"
        )
    return [layer]


def select_indices(boxes: np.ndarray, n: int, select: str, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` boxes of ``boxes`` (C_out, 4): the first n, the n widest (largest area in pixels,
    widest first) or n at random (sorted); all of them when there are fewer than n."""
    count = len(boxes)
    n = min(n, count)
    if select == "first":
        return np.arange(n)
    if select == "widest":
        areas = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
        return np.argsort(-areas, kind="stable")[:n]
    if select == "random":
        return np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
    raise ValueError(f"--select must be one of {SELECTIONS}, got {select!r}")


def layer_stats(layer: LayerBoxes) -> dict[str, float]:
    """Number of boxes, mean width and height (pixels), and the share of boxes with a corner on the
    window's edge (0 or k)."""
    boxes, k = layer.boxes, layer.max_size
    on_edge = (boxes <= EDGE_TOLERANCE_PX) | (boxes >= k - EDGE_TOLERANCE_PX)
    return {
        "boxes": len(boxes),
        "mean_width": float((boxes[:, 1] - boxes[:, 0]).mean()),
        "mean_height": float((boxes[:, 3] - boxes[:, 2]).mean()),
        "at_edge": float(on_edge.any(axis=1).mean()),
    }


def list_layers(snapshots: list[Snapshot]) -> str:
    """The ``--list`` table of every checkpoint."""
    lines = []
    for snapshot in snapshots:
        lines.append(f"{snapshot.path} ({snapshot.model_name}, epoch {snapshot.epoch})")
        width = max(len(name) for name in snapshot.layers)
        lines.append(f"  {'layer':<{width}}  {'k':>3}  {'boxes':>5}  {'mean w x h (px)':>15}  {'at edge':>7}")
        for name, layer in snapshot.layers.items():
            s = layer_stats(layer)
            size = f"{s['mean_width']:.1f} x {s['mean_height']:.1f}"
            lines.append(
                f"  {name:<{width}}  {layer.max_size:>3}  {s['boxes']:>5}  {size:>15}  {s['at_edge']:>7.1%}"
            )
    return "\n".join(lines)


def draw_layer(
    snapshots: list[Snapshot], name: str, indices: np.ndarray, columns: int, cell: int
) -> np.ndarray:
    """One layer's panel: a title bar, then for each checkpoint its caption and the boxes ``indices``.

    Returns:
        (H, W, 3) uint8 BGR image; H grows with the number of checkpoints.
    """
    k = snapshots[0].layers[name].max_size
    labels = [str(i) for i in indices]
    rows = []
    for snapshot in snapshots:
        windows = draw.draw_boxes_in_windows(snapshot.layers[name].boxes[indices], k, cell, columns, labels)
        rows.append(draw.put_title(windows, snapshot.caption, height=18))
    title = f"{name} (k={k}), {len(indices)} of {len(snapshots[0].layers[name].boxes)} boxes"
    return draw.put_title(stack_vertically(rows, gap=4), title)


def stack_vertically(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
    """(H_i, W_i, 3) images one below the other, left-aligned on white, ``gap`` white pixels apart."""
    width = max(image.shape[1] for image in images)
    parts = []
    for i, image in enumerate(images):
        if i > 0:
            parts.append(np.full((gap, width, 3), 255, dtype=np.uint8))
        pad = np.full((image.shape[0], width - image.shape[1], 3), 255, dtype=np.uint8)
        parts.append(np.concatenate([image, pad], axis=1))
    return np.concatenate(parts, axis=0)


def default_output(snapshots: list[Snapshot], layer: str | None, names: list[str]) -> Path:
    stem = "boxes_all" if layer == "all" else f"boxes_{names[0].replace('.', '_')}"
    if len(snapshots) > 1:
        stem += "_evolution"
    return snapshots[0].path.parent / "figures" / f"{stem}.png"


def plot_boxes(
    snapshots: list[Snapshot],
    layer: str | None = None,
    n: int = 32,
    select: str = "first",
    seed: int = 0,
    columns: int | None = None,
    cell: int = 64,
) -> tuple[np.ndarray, list[str]]:
    """The figure of the chosen layers (one panel each, stacked) and the names of those layers.

    ``columns`` defaults to 8 for one checkpoint and to ``n`` (one row per checkpoint) for several.
    """
    check_same_architecture(snapshots)
    names = resolve_layers(snapshots[-1], layer)
    if columns is None:
        columns = 8 if len(snapshots) == 1 else n
    panels = []
    for name in names:
        indices = select_indices(snapshots[-1].layers[name].boxes, n, select, seed)
        panels.append(draw_layer(snapshots, name, indices, columns, cell))
    return stack_vertically(panels), names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files (.pt) or run directories")
    parser.add_argument("--layer", help="box layer name, or 'all' (default: the last box layer, as Fig. 4)")
    parser.add_argument("--n", type=int, default=32, help="boxes per layer to draw (default 32)")
    parser.add_argument("--select", choices=SELECTIONS, default="first", help="which boxes (widest: by area)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --select random")
    parser.add_argument("--columns", type=int, help="windows per row (default 8; n for several checkpoints)")
    parser.add_argument("--cell", type=int, default=64, help="side of one window in the figure, pixels")
    parser.add_argument("--list", action="store_true", help="print the box layers and their statistics")
    parser.add_argument(
        "--output", type=Path, help="PNG path (default <ckpt folder>/figures/boxes_<layer>.png)"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.cell < 16 or (args.columns is not None and args.columns < 1):
        parser.error("--n and --columns must be >= 1 and --cell >= 16")

    try:
        snapshots = load_snapshots(args.checkpoints)
        if args.list:
            print(list_layers(snapshots))
            return 0
        figure, names = plot_boxes(
            snapshots, args.layer, args.n, args.select, args.seed, args.columns, args.cell
        )
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        parser.error(str(exc))
    output = args.output or default_output(snapshots, args.layer, names)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), figure):
        parser.error(f"could not write {output}")
    height, width = figure.shape[:2]
    print(f"wrote {output} ({width}x{height}; {', '.join(names)}; {len(snapshots)} checkpoint(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
