"""The person box <-> crop (centre, scale) conversion: 1.25 padding, aspect correction, and the inverse."""

from __future__ import annotations

import numpy as np

from boxpose.codec.affine import BOX_PADDING, box_to_center_scale, center_scale_to_box


def test_box_to_center_scale_by_hand() -> None:
    # A 40 x 60 box at (10, 20) is narrower than a 3:4 crop: its width grows to 60 * 0.75 = 45.
    center, scale = box_to_center_scale([10, 20, 40, 60], aspect_ratio=0.75)
    np.testing.assert_allclose(center, [30, 50])
    np.testing.assert_allclose(scale, [45 * 1.25, 60 * 1.25])
    assert BOX_PADDING == 1.25  # SimpleBaseline / HRNet


def test_center_scale_to_box_inverts_a_box_of_the_crop_aspect() -> None:
    box = np.array([12.5, -3.0, 48.0, 64.0])  # 3:4, like a 192 x 256 crop
    center, scale = box_to_center_scale(box, aspect_ratio=0.75)
    np.testing.assert_allclose(center_scale_to_box(center, scale), box)
    # By hand: a (100, 80) crop around (50, 40) comes from the (80, 64) box at (10, 8).
    np.testing.assert_allclose(center_scale_to_box([50, 40], [100, 80]), [10, 8, 80, 64])
