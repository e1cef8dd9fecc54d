"""The affine crop transform: the one home for mapping between image pixels and a person crop.

Training crops, inference crops and the back-projection of predictions all use these functions, so a
joint that is cropped, encoded, decoded and mapped back lands exactly where it started.

Conventions
-----------
- Pixel coordinates are 0-based with pixel centres on integers: pixel (u, v) is centred at x = u, y = v.
  (MPII files are 1-based; the MPII loader converts centre and joints alike on reading.)
- A crop is described by ``center`` (x, y) and ``scale`` (w, h): the size in *pixels* of the box
  that is mapped onto the output (not HRNet's units of 200 px). Rotation ``rot`` is in degrees; a
  positive angle rotates the box counter-clockwise on the image, so the content in the crop turns
  clockwise (the SimpleBaseline/HRNet convention).
- The box is scaled uniformly by ``output_w / scale_w``; callers make the box's aspect ratio match
  the output's (see :func:`box_to_center_scale`).
- A heatmap is a crop of the same box at lower resolution: decode with ``output_size`` equal to the
  heatmap size and the same centre and scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def get_affine_transform(
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    rot: float,
    output_size: Sequence[int],
    inverse: bool = False,
) -> np.ndarray:
    """The (2, 3) matrix mapping image points to crop points (or crop to image if ``inverse``).

    Args:
        center: (x, y) of the box centre in image pixels.
        scale: (w, h) of the box in image pixels; only w sets the scale factor.
        rot: rotation in degrees.
        output_size: (width, height) of the crop in pixels.
        inverse: return the crop-to-image matrix instead.

    Returns:
        float64 array of shape (2, 3), usable with ``cv2.warpAffine`` and :func:`transform_points`.
    """
    cx, cy = float(center[0]), float(center[1])
    src_w = float(scale[0])
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    if src_w <= 0:
        raise ValueError(f"crop box width must be positive, got scale={tuple(scale)}")
    s = dst_w / src_w
    theta = math.radians(rot)
    cos, sin = math.cos(theta), math.sin(theta)
    # crop = dst_centre + s * R(-rot) @ (image - centre), with R(t) = [[cos t, -sin t], [sin t, cos t]].
    a = s * np.array([[cos, sin], [-sin, cos]])
    b = np.array([dst_w * 0.5, dst_h * 0.5]) - a @ np.array([cx, cy])
    if inverse:
        a_inv = np.linalg.inv(a)
        return np.concatenate([a_inv, (-a_inv @ b)[:, None]], axis=1)
    return np.concatenate([a, b[:, None]], axis=1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points of shape (..., 2); returns float64 (..., 2)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(
    image: np.ndarray, matrix: np.ndarray, output_size: Sequence[int], border_value: float = 0.0
) -> np.ndarray:
    """Crop ``image`` (H, W[, C]) with ``matrix`` into an array of ``output_size`` (width, height).

    Bilinear interpolation, constant border; the result keeps the input's dtype and channel count.
    """
    return cv2.warpAffine(
        image,
        matrix,
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


# How much larger than the (aspect-corrected) person box the crop is (SimpleBaseline/HRNet: 1.25).
BOX_PADDING = 1.25


def box_to_center_scale(
    box_xywh: Sequence[float], aspect_ratio: float, padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of the crop for a person box (the SimpleBaseline/HRNet recipe).

    The box (x, y, w, h) is widened or heightened to ``aspect_ratio`` = crop width / crop height,
    then enlarged by ``padding``. The centre is (x + w/2, y + h/2).

    Returns:
        center (2,) and scale (2,) in pixels, float64.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w, h]) * padding
    return center, scale


def center_scale_to_box(
    center: Sequence[float] | np.ndarray, scale: Sequence[float] | np.ndarray, padding: float = BOX_PADDING
) -> np.ndarray:
    """The person box (x, y, w, h) whose padded crop is ``center``/``scale``: the inverse of
    :func:`box_to_center_scale` for a box that already has the crop's aspect ratio.

    Returns:
        (4,) float64 box, pixels.
    """
    size = np.asarray(scale, dtype=np.float64) / padding
    return np.concatenate([np.asarray(center, dtype=np.float64) - size / 2, size])
