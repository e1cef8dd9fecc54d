"""Drawing: skeletons on images, heatmaps, image grids, and learned boxes inside their kernel windows.

Images are uint8 BGR arrays (H, W, 3), OpenCV's convention; keypoints are (K, 2) or (K, 3) arrays of
x, y (and a score or visibility) in that image's pixel coordinates. Colours and limbs come from the
keypoint spec (:mod:`boxpose.keypoints`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from boxpose.keypoints import KeypointSpec

_JOINT_COLOURS = {"left": (255, 128, 0), "right": (0, 128, 255), "centre": (0, 200, 0)}


# Distinct BGR colours for telling people apart (matplotlib's tab10).
PERSON_COLOURS = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
)  # fmt: skip


def person_colour(index: int) -> tuple[int, int, int]:
    """The BGR colour of the ``index``-th person of an image."""
    return PERSON_COLOURS[index % len(PERSON_COLOURS)]


def _drawable(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel coordinates limited to a band around the image: OpenCV needs them to fit in int32, and a
    point far outside draws the same as one just outside."""
    limit = 4.0 * max(height, width)
    return np.clip(points, -limit, limit)


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    spec: KeypointSpec,
    score_threshold: float = 0.2,
    thickness: int | None = None,
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Draw one person's skeleton on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR.
        keypoints: (K, 2) or (K, 3) in pixels; a third column (score or visibility) hides joints at or
            below ``score_threshold``. Non-finite joints are hidden; joints far outside the image are
            drawn at its surroundings' edge.
        colour: BGR colour of every limb (one per person); None = the spec's limb colours.
    """
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = thickness or max(1, round(min(height, width) / 128))
    points = np.asarray(keypoints, dtype=np.float64)
    visible = points[:, 2] > score_threshold if points.shape[1] > 2 else np.ones(len(points), dtype=bool)
    visible &= np.isfinite(points[:, :2]).all(axis=1)
    xy = _drawable(np.where(visible[:, None], points[:, :2], 0.0), height, width)
    for (a, b), limb_colour in zip(spec.skeleton, spec.limb_colors):
        if visible[a] and visible[b]:
            pa = tuple(round(v) for v in xy[a])
            pb = tuple(round(v) for v in xy[b])
            cv2.line(canvas, pa, pb, colour or limb_colour, thickness + 1, cv2.LINE_AA)
    for j in range(spec.num_joints):
        if visible[j]:
            centre = tuple(round(v) for v in xy[j])
            cv2.circle(canvas, centre, thickness + 2, _JOINT_COLOURS[spec.joint_side(j)], -1, cv2.LINE_AA)
            cv2.circle(canvas, centre, thickness + 2, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def draw_people(
    image: np.ndarray,
    people: Sequence[np.ndarray],
    spec: KeypointSpec,
    score_threshold: float = 0.2,
    boxes: np.ndarray | None = None,
    person_colours: bool = False,
) -> np.ndarray:
    """Draw several people's skeletons (each (K, 2) or (K, 3)) on a copy of ``image``.

    Args:
        boxes: optional (P, 4+) person boxes ``[x, y, w, h, ...]`` in pixels, drawn as rectangles.
        person_colours: each person's limbs (and box) in its own colour (:func:`person_colour`) instead
            of the spec's limb colours.
    """
    canvas = image.copy()
    height, width = canvas.shape[:2]
    for i, keypoints in enumerate(people):
        colour = person_colour(i) if person_colours else None
        if boxes is not None and np.isfinite(boxes[i][:4]).all():
            x, y, w, h = boxes[i][:4]
            corners = _drawable(np.array([[x, y], [x + w, y + h]]), height, width)
            p0, p1 = (tuple(round(v) for v in c) for c in corners)
            cv2.rectangle(canvas, p0, p1, colour or (255, 255, 255), max(1, round(min(height, width) / 256)))
        canvas = draw_skeleton(canvas, keypoints, spec, score_threshold, colour=colour)
    return canvas


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend the per-pixel maximum over joints of ``heatmaps`` (K, h, w), colour-mapped, onto ``image``."""
    peak = np.clip(np.asarray(heatmaps, dtype=np.float32).max(axis=0), 0.0, 1.0)
    peak = cv2.resize(peak, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap((peak * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1.0 - alpha, coloured, alpha, 0.0)


def tile_images(images: Sequence[np.ndarray], columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Arrange equally sized (H, W, 3) images in a grid with ``gap`` black pixels between them."""
    if not images:
        raise ValueError("tile_images: no images")
    height, width = images[0].shape[:2]
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    grid = np.zeros((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        if img.shape[:2] != (height, width):
            img = cv2.resize(img, (width, height))
        r, c = divmod(i, columns)
        grid[
            r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width
        ] = img
    return grid


def draw_boxes_in_windows(
    boxes: np.ndarray, max_size: int, cell: int = 64, columns: int = 8, labels: Sequence[str] | None = None
) -> np.ndarray:
    """The paper's Fig. 4: each learned box drawn as a rectangle inside its k x k kernel window.

    Args:
        boxes: (n, 4) corners (x_lo, x_hi, y_lo, y_hi) in pixels of the window, [0, max_size]
            (``BoxConv2d.boxes_in_pixels()``).
        max_size: k. cell: side of one window in the figure, pixels. columns: windows per row.
        labels: optional caption per window (e.g. the channel index).
    Returns:
        (H, W, 3) uint8 BGR figure on a white background.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    margin = 6
    caption = 12 if labels is not None else 0
    tiles = []
    scale = (cell - 2 * margin) / max_size
    for i, (x_lo, x_hi, y_lo, y_hi) in enumerate(boxes):
        tile = np.full((cell + caption, cell, 3), 255, dtype=np.uint8)
        # The window: a grey square with a faint grid when cells are big enough to see.
        top_left = (margin, margin)
        bottom_right = (cell - margin, cell - margin)
        cv2.rectangle(tile, top_left, bottom_right, (225, 225, 225), -1)
        if scale >= 4:
            for t in range(1, max_size):
                p = round(margin + t * scale)
                cv2.line(tile, (p, margin), (p, cell - margin), (240, 240, 240), 1)
                cv2.line(tile, (margin, p), (cell - margin, p), (240, 240, 240), 1)
        cv2.rectangle(tile, top_left, bottom_right, (120, 120, 120), 1)
        p0 = (round(margin + x_lo * scale), round(margin + y_lo * scale))
        p1 = (round(margin + x_hi * scale), round(margin + y_hi * scale))
        cv2.rectangle(tile, p0, p1, (40, 40, 220), -1 if (p1[0] - p0[0]) * (p1[1] - p0[1]) < 4 else 2)
        centre = round(margin + max_size * scale / 2)
        cv2.drawMarker(tile, (centre, centre), (0, 0, 0), cv2.MARKER_CROSS, 5, 1)
        if labels is not None:
            cv2.putText(
                tile,
                str(labels[i]),
                (margin, cell + 8),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.33,
                (0, 0, 0),
                1,
                cv2.LINE_AA,
            )
        tiles.append(tile)
    return tile_images(tiles, columns=min(columns, len(tiles)), gap=0)


def put_title(image: np.ndarray, text: str, height: int = 22) -> np.ndarray:
    """``image`` with a white title bar on top."""
    bar = np.full((height, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(bar, text, (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def bgr_to_chw_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) BGR uint8 -> (3, H, W) RGB uint8, the layout TensorBoard's ``add_image`` expects."""
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))
