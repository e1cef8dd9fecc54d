"""boxpose.viz.draw: sizes and dtypes of every figure, and what is drawn where, checked pixel by pixel
against hand-placed keypoints (left joints blue-ish, right joints orange, hidden joints not drawn)."""

from __future__ import annotations

import numpy as np
import pytest

from boxpose.keypoints import MPII
from boxpose.viz import draw


def _bgr(image: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in image[y, x])


def _mpii_person(visible: dict[str, tuple[float, float]]) -> np.ndarray:
    """(16, 3): the named joints at the given (x, y) with score 1, every other joint hidden (score 0)."""
    keypoints = np.zeros((MPII.num_joints, 3))
    for name, (x, y) in visible.items():
        keypoints[MPII.index(name)] = [x, y, 1.0]
    return keypoints


def test_skeleton_joints_and_limbs_are_drawn_in_their_side_colours() -> None:
    image = np.zeros((64, 80, 3), dtype=np.uint8)
    person = _mpii_person({"l_wrist": (20, 12), "r_wrist": (60, 12), "r_ankle": (10, 50), "r_knee": (30, 50)})
    out = draw.draw_skeleton(image, person, MPII)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not image.any()  # drawn on a copy
    blue, _, red = _bgr(out, 20, 12)  # the left wrist: blue-ish
    assert blue > 200 and red < 60
    blue, _, red = _bgr(out, 60, 12)  # the right wrist: orange
    assert red > 200 and blue < 60
    blue, _, red = _bgr(out, 20, 50)  # the middle of the right shin (ankle-knee), 10 px from both joints
    assert red > 200 and blue < 60
    # A limb needs both ends: no line between the wrists and their hidden elbows; far pixels untouched.
    assert _bgr(out, 40, 12) == (0, 0, 0) and _bgr(out, 40, 30) == (0, 0, 0)
    assert _bgr(out, 79, 63) == (0, 0, 0)


def test_joints_at_or_below_the_score_threshold_are_hidden() -> None:
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    person = _mpii_person({"l_wrist": (16, 16)})
    person[MPII.index("l_wrist"), 2] = 0.2
    assert not draw.draw_skeleton(image, person, MPII, score_threshold=0.2).any()
    assert draw.draw_skeleton(image, person, MPII, score_threshold=0.1)[16, 16].any()
    # (K, 2) keypoints have no score: every finite joint is drawn.
    xy = np.full((MPII.num_joints, 2), np.nan)
    xy[MPII.index("head_top")] = [5, 5]
    out = draw.draw_skeleton(image, xy, MPII)
    green = _bgr(out, 5, 5)[1]
    assert green > 150 and out[20:, 20:].sum() == 0  # head top: a centre joint (green)


def test_draw_people_draws_everyone() -> None:
    image = np.full((40, 40, 3), 30, dtype=np.uint8)
    people = [_mpii_person({"l_wrist": (8, 8)}), _mpii_person({"r_wrist": (30, 30)})]
    out = draw.draw_people(image, people, MPII)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    assert _bgr(out, 8, 8)[0] > 200 and _bgr(out, 30, 30)[2] > 200
    assert _bgr(out, 20, 2) == (30, 30, 30)


def test_heatmap_overlay_colours_peaks_red_and_the_rest_blue() -> None:
    image = np.zeros((32, 48, 3), dtype=np.uint8)
    heatmaps = np.zeros((2, 8, 12), dtype=np.float32)
    heatmaps[1, 2:6, 6:10] = 1.0  # image pixels x 24..39, y 8..23 (x4 upsampling)
    out = draw.heatmap_overlay(image, heatmaps)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    blue, _, red = _bgr(out, 32, 16)  # JET at 1.0: dark red
    assert red > 50 and blue == 0
    blue, _, red = _bgr(out, 4, 28)  # JET at 0.0: dark blue
    assert blue > 50 and red == 0


def test_tile_images_places_each_image_with_black_gaps() -> None:
    images = [np.full((10, 20, 3), 50 * (i + 1), dtype=np.uint8) for i in range(3)]
    grid = draw.tile_images(images, gap=2)  # 3 images -> 2 columns, 2 rows
    assert grid.shape == (2 * 10 + 2, 2 * 20 + 2, 3) and grid.dtype == np.uint8
    assert (grid[0:10, 0:20] == 50).all() and (grid[0:10, 22:42] == 100).all()
    assert (grid[12:22, 0:20] == 150).all()
    assert not grid[10:12].any() and not grid[:, 20:22].any() and not grid[12:22, 22:42].any()
    with pytest.raises(ValueError, match="no images"):
        draw.tile_images([])


def test_boxes_in_windows_draws_each_box_where_it_lies_in_its_window() -> None:
    # k = 8 in 64 px cells with a 6 px margin: 6.5 figure pixels per kernel pixel.
    boxes = np.array([[2.0, 6.0, 2.0, 6.0], [0.0, 8.0, 0.0, 4.0]])
    figure = draw.draw_boxes_in_windows(boxes, max_size=8, cell=64, columns=8)
    assert figure.shape == (64, 128, 3) and figure.dtype == np.uint8
    box_colour = (40, 40, 220)
    # Box 0 spans figure pixels 6 + 2 * 6.5 = 19 to 6 + 6 * 6.5 = 45: its top edge at y = 19.
    assert _bgr(figure, 30, 19) == box_colour and _bgr(figure, 19, 30) == box_colour
    assert _bgr(figure, 30, 25) != box_colour  # inside: only the outline
    # Box 1 (second window, x offset 64): the top half of the window, bottom edge at y = 6 + 4 * 6.5 = 32.
    assert _bgr(figure, 64 + 40, 32) == box_colour and _bgr(figure, 64 + 40, 45) != box_colour
    assert _bgr(figure, 1, 1) == (255, 255, 255)  # white background
    labelled = draw.draw_boxes_in_windows(boxes, max_size=8, cell=64, labels=["a", "b"])
    assert labelled.shape == (64 + 12, 128, 3)


def test_put_title_and_tensorboard_layout() -> None:
    image = np.zeros((10, 120, 3), dtype=np.uint8)
    image[..., 2] = 200  # red in BGR
    titled = draw.put_title(image, "boxnet")
    assert titled.shape == (32, 120, 3) and titled.dtype == np.uint8
    assert (titled[22:] == image).all() and (titled[:22] < 128).any() and (titled[0, :] == 255).all()
    chw = draw.bgr_to_chw_rgb(image)
    assert chw.shape == (3, 10, 120) and chw.dtype == np.uint8
    assert (chw[0] == 200).all() and not chw[1:].any()  # RGB: red first
