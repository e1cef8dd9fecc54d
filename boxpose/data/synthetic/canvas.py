"""The canvas: an image and a label map drawn with the same shapes, so that every pixel knows which
person's part (or which occluder) it shows.

Label map values: 0 background, ``slot * LABELS_PER_PERSON + PART_ID[part]`` for the parts of the person
in ``slot`` (1, 2, ...), :data:`OCCLUDER_LABEL` for occluders.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Drawn parts (ids within a person's label range).
PARTS = (
    "torso", "head", "neck", "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot", "l_ear", "r_ear",
)  # fmt: skip
PART_ID = {name: i + 1 for i, name in enumerate(PARTS)}
LABELS_PER_PERSON = 32
OCCLUDER_LABEL = 65535

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def _fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as OpenCV's fixed-point integers with _SHIFT fractional bits."""
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


class Canvas:
    """The image (H, W, 3) uint8 and a label map (H, W) uint16 drawn with the same shapes."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.label = np.zeros(image.shape[:2], dtype=np.uint16)

    def poly(self, points: np.ndarray, color: tuple, label: int | None) -> None:
        p = _fixed_point(points)
        cv2.fillConvexPoly(self.image, p, color, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.fillConvexPoly(self.label, p, label, cv2.LINE_8, _SHIFT)

    def circle(self, center: np.ndarray, radius: float, color: tuple, label: int | None) -> None:
        c, r = tuple(_fixed_point(center)), max(round(radius * _ONE), 1)
        cv2.circle(self.image, c, r, color, -1, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.circle(self.label, c, r, label, -1, cv2.LINE_8, _SHIFT)

    def ellipse(
        self, center: np.ndarray, axes: tuple[float, float], angle: float, color: tuple, label: int | None
    ) -> None:
        c = tuple(_fixed_point(center))
        ax = (max(round(axes[0] * _ONE), 1), max(round(axes[1] * _ONE), 1))
        cv2.ellipse(self.image, c, ax, angle, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.ellipse(self.label, c, ax, angle, 0, 360, label, -1, cv2.LINE_8, _SHIFT)

    def line(self, a: np.ndarray, b: np.ndarray, color: tuple, thickness: int) -> None:
        """An antialiased line from ``a`` to ``b`` on the image only (no label)."""
        cv2.line(
            self.image, tuple(_fixed_point(a)), tuple(_fixed_point(b)), color, thickness, cv2.LINE_AA, _SHIFT
        )

    def capsule(
        self,
        a: np.ndarray,
        b: np.ndarray,
        ra: float,
        rb: float,
        color: tuple,
        label: int | None,
        outline: bool = True,
    ) -> None:
        """A tapered limb from ``a`` (half-width ``ra``) to ``b`` (``rb``), with a darker outline."""
        shapes = [(ra + 1.0, rb + 1.0, darker(color)), (ra, rb, color)] if outline else [(ra, rb, color)]
        for i, (wa, wb, col) in enumerate(shapes):
            lab = label if i == len(shapes) - 1 else None
            d = b - a
            length = float(np.hypot(*d))
            if length > 1e-3:
                n = np.array([-d[1], d[0]]) / length
                self.poly(np.array([a + n * wa, b + n * wb, b - n * wb, a - n * wa]), col, lab)
            self.circle(a, wa, col, lab)
            self.circle(b, wb, col, lab)


def darker(color: tuple, f: float = 0.55) -> tuple[int, int, int]:
    """``color`` scaled by ``f`` (outlines, stripes)."""
    return tuple(int(c * f) for c in color)


def disc_on_surface(
    canvas: Canvas, center: np.ndarray, normal: np.ndarray, radius: float, color: tuple, label: int | None
) -> None:
    """A disc of ``radius`` on a surface with unit ``normal`` (image x, y, depth z), seen from the camera."""
    nx, ny, nz = normal
    angle = math.degrees(math.atan2(ny, nx)) if abs(nx) + abs(ny) > 1e-6 else 0.0
    canvas.ellipse(center, (max(radius * abs(nz), 0.5), radius), angle, color, label)
