"""scripts/plot_boxes.py: learned boxes drawn where they are, evolution rows, --list, errors, --help."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from boxpose.cli.train import train
from boxpose.config import compose_config
from boxpose.engine.checkpoint import model_state_dict, save_checkpoint
from boxpose.models import build_model
from boxpose.nn import box_conv_layers
from tests.engine.helpers import tiny_overrides
from tests.scripts.helpers import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "plot_boxes.py"
RED = (40, 40, 220)  # BGR colour of the boxes in boxpose.viz.draw.draw_boxes_in_windows
BORDER = (120, 120, 120)  # BGR colour of the kernel window's outline
LAYER = "units.12.branch.3"  # a k = 13 layer of boxnet_tiny


plot_boxes = load_script("plot_boxes")


def _save_tiny(path: Path, epoch: int, box0_px: tuple[float, float, float, float], width: int = 48) -> Path:
    """A boxnet_tiny checkpoint in the trainer's format whose box 0 of LAYER has the given corners
    (x_lo, x_hi, y_lo, y_hi) in pixels of its 13 x 13 window."""
    torch.manual_seed(0)
    model = build_model("boxnet_tiny", num_joints=16, width=width)
    layer = dict(box_conv_layers(model))[LAYER]
    with torch.no_grad():
        layer.boxes[0] = torch.tensor(box0_px) * (2.0 / layer.max_size) - 1.0
    payload = {
        "model": model_state_dict(model),
        "config": {"model": {"name": "boxnet_tiny", "width": width}},
        "model_name": "boxnet_tiny",
        "num_joints": 16,
        "input_size": [64, 64],
        "epoch": epoch,
        "step": 10 * epoch,
    }
    return save_checkpoint(path, payload)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) of the True pixels of a 2-D mask."""
    ys, xs = np.nonzero(mask)
    assert len(xs), "no pixels of the colour"
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


def _outline_lines(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of ``image`` holding a line of the window's outline (at least 10 outline-grey
    pixels: anti-aliased caption text has a few of them too)."""
    border = np.all(image == BORDER, axis=2)
    return np.nonzero(border.sum(axis=1) >= 10)[0], np.nonzero(border.sum(axis=0) >= 10)[0]


def _box_in_window(image: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """The drawn red box of a one-window image, in pixels of its k x k kernel window."""
    rows, columns = _outline_lines(image)
    wx0, wx1, wy0, wy1 = columns.min(), columns.max(), rows.min(), rows.max()
    rx0, rx1, ry0, ry1 = _bbox(np.all(image == RED, axis=2))
    scale_x, scale_y = (wx1 - wx0) / k, (wy1 - wy0) / k
    # The outline is 2 pixels thick, centred on the box's edges: its outer bound is 1 pixel outside them.
    return (
        (rx0 + 1 - wx0) / scale_x,
        (rx1 - 1 - wx0) / scale_x,
        (ry0 + 1 - wy0) / scale_y,
        (ry1 - 1 - wy0) / scale_y,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[Path]:
    """Three epochs of one 'run': box 0 of LAYER moves and grows."""
    folder = tmp_path_factory.mktemp("run")
    return [
        _save_tiny(folder / "epoch1.pt", 1, (2.0, 9.0, 4.0, 11.0)),
        _save_tiny(folder / "epoch2.pt", 2, (0.0, 6.0, 1.0, 3.0)),
        _save_tiny(folder / "epoch3.pt", 3, (5.0, 12.0, 0.0, 13.0)),
    ]


def test_box_is_drawn_where_it_is(checkpoints, tmp_path, capsys):
    output = tmp_path / "one.png"
    assert plot_boxes.main([str(checkpoints[0]), "--layer", LAYER, "--n", "1", "--output", str(output)]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    image = cv2.imread(str(output))
    np.testing.assert_allclose(_box_in_window(image, 13), (2.0, 9.0, 4.0, 11.0), atol=0.3)


def test_default_output_and_last_layer(checkpoints, capsys):
    assert plot_boxes.main([str(checkpoints[0])]) == 0
    # The paper's Fig. 4 shows the last box layer (k = 13).
    expected = checkpoints[0].parent / "figures" / "boxes_units_12_branch_3.png"
    assert f"wrote {expected}" in capsys.readouterr().out
    image = cv2.imread(str(expected))
    # 32 windows of 64 x (64 + caption) pixels in 8 columns: 4 rows of tiles under the title bars.
    assert image.shape[1] == 8 * 64 and image.shape[0] > 4 * 64


def test_evolution_has_one_row_per_checkpoint_with_its_own_boxes(checkpoints, tmp_path):
    heights = []
    for count in (1, 2, 3):
        output = tmp_path / f"evolution{count}.png"
        args = [*map(str, checkpoints[:count]), "--layer", LAYER, "--n", "4", "--output", str(output)]
        assert plot_boxes.main(args) == 0
        image = cv2.imread(str(output))
        assert image.shape[1] == 4 * 64  # one row of n windows per checkpoint
        heights.append(image.shape[0])
    assert heights[2] - heights[1] == heights[1] - heights[0] > 64

    # Each row shows its checkpoint's box 0. Rows are `pitch` pixels apart; the first row's window starts
    # at the first outline pixel (its box does not touch the outline).
    pitch = heights[1] - heights[0]
    image = cv2.imread(str(tmp_path / "evolution3.png"))
    first_column = image[:, :64]
    top = int(_outline_lines(first_column)[0][0])
    expected = [(2.0, 9.0, 4.0, 11.0), (0.0, 6.0, 1.0, 3.0), (5.0, 12.0, 0.0, 13.0)]
    for row, box in enumerate(expected):
        window = first_column[top - 3 + row * pitch : top + 56 + row * pitch]
        np.testing.assert_allclose(_box_in_window(window, 13), box, atol=0.3)


def test_same_indices_in_every_row_chosen_on_the_last_checkpoint(checkpoints):
    snapshots = [plot_boxes.load_snapshot(p) for p in checkpoints]
    last = snapshots[-1].layers[LAYER].boxes
    indices = plot_boxes.select_indices(last, 3, "widest")
    areas = (last[:, 1] - last[:, 0]) * (last[:, 3] - last[:, 2])
    assert (
        indices[0] == 0 and areas[indices[0]] >= areas[indices[1]] >= areas[indices[2]]
    )  # box 0 is 7 x 13 px
    random = plot_boxes.select_indices(last, 5, "random", seed=1)
    assert len(set(random.tolist())) == 5 and list(random) == sorted(random)
    assert list(plot_boxes.select_indices(last, 1000, "first")) == list(range(len(last)))


def test_run_directory_of_a_trained_model(tmp_path_factory, synthetic_root, capsys):
    """A real training run's folder: last.pt and best.pt of the same epoch are drawn once."""
    root = synthetic_root
    run = tmp_path_factory.mktemp("trained")
    train(compose_config("train", tiny_overrides(root, run, epochs=1)))
    assert plot_boxes.main([str(run), "--layer", "all", "--n", "8"]) == 0
    out = capsys.readouterr().out
    assert "skipping" in out and f"wrote {run / 'figures' / 'boxes_all.png'}" in out
    image = cv2.imread(str(run / "figures" / "boxes_all.png"))
    assert image.shape[1] == 8 * 64 and image.shape[0] > 8 * 64  # 8 box layers, one panel each


def test_list(checkpoints, capsys):
    assert plot_boxes.main([str(checkpoints[2]), "--list"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith("units.")]
    assert [line[0] for line in lines][:2] == ["units.3.branch1.0", "units.3.branch2.3"] and len(lines) == 8
    row = next(line for line in lines if line[0] == LAYER)
    assert row[1:3] == ["13", "24"]  # k and number of boxes (24 channels x 1 box)
    # Box 0 (5..12 x 0..13) reaches the edge; the random initial boxes within [-0.5, 0.5] do not.
    assert row[-1] == f"{1 / 24:.1%}"


def test_layer_stats():
    layer = plot_boxes.LayerBoxes(5, np.array([[0.0, 2.0, 1.0, 2.0], [1.0, 3.0, 1.0, 4.0]]))
    stats = plot_boxes.layer_stats(layer)
    assert stats == {"boxes": 2, "mean_width": 2.0, "mean_height": 2.0, "at_edge": 0.5}


def test_unknown_layer_lists_the_valid_names(checkpoints, capsys):
    with pytest.raises(SystemExit) as exc:
        plot_boxes.main([str(checkpoints[0]), "--layer", "units.99"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no box layer named 'units.99'" in err and "units.3.branch1.0" in err and LAYER in err


def test_different_architectures_are_refused(checkpoints, tmp_path, capsys):
    narrow = _save_tiny(tmp_path / "narrow.pt", 4, (0.0, 1.0, 0.0, 1.0), width=24)
    with pytest.raises(SystemExit) as exc:
        plot_boxes.main([str(checkpoints[0]), str(narrow)])
    assert exc.value.code == 2 and "different architectures" in capsys.readouterr().err


def test_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot_boxes.main([str(tmp_path / "nothing.pt")])
    assert "checkpoint not found" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        plot_boxes.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "Fig. 4" in out and "--layer" in out and "best.pt" in out
