"""The top-down sample pipeline: crops land where the affine transform says, flips are consistent,
half-body and rotation follow the reference rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from boxpose.codec.affine import box_to_center_scale
from boxpose.codec.heatmap import HeatmapCodec, flip_back
from boxpose.data.pipeline import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    TopDownPipeline,
    denormalize_image,
    half_body_center_scale,
    normalize_image,
)
from boxpose.keypoints import COCO, MPII


def _unnormalise(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised RGB tensor -> (H, W, 3) float RGB in [0, 1]."""
    return image.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN


def _blob_image(width: int, height: int, x: float, y: float) -> np.ndarray:
    """A black BGR image with a small white Gaussian blob centred at (x, y)."""
    ys, xs = np.mgrid[0:height, 0:width]
    blob = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
    return np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(gray: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (x, y) of the 9 x 9 window around the maximum."""
    y0, x0 = np.unravel_index(np.argmax(gray), gray.shape)
    ys, xs = np.mgrid[max(y0 - 4, 0) : y0 + 5, max(x0 - 4, 0) : x0 + 5]
    w = gray[ys, xs]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


@pytest.mark.parametrize("seed", range(6))
def test_marked_pixel_lands_on_the_cropped_joint(seed):
    """Warp an image with a marked point under random scale/rotation/flip: the mark is found in the crop
    exactly where the pipeline says the joint is."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(110, 190, 2)
    image = _blob_image(300, 300, x, y)
    joints = np.zeros((MPII.num_joints, 2))
    visible = np.zeros(MPII.num_joints)
    j = 15  # left wrist: a flip moves it to the right wrist's channel
    joints[j], visible[j] = (x, y), 1
    aug = AugmentConfig(flip_prob=0.5, scale_factor=0.25, rotation_factor=40, rotation_prob=1.0)
    pipeline = TopDownPipeline(MPII, HeatmapCodec((256, 256), (64, 64)), aug)
    out = pipeline(image, joints, visible, np.array([150.0, 150.0]), np.array([200.0, 200.0]), rng)
    j_out = MPII.flip_permutation()[j] if out["flipped"] else j
    found = _centroid(_unnormalise(out["image"]).mean(axis=2))
    assert out["joints"][j_out, 2] == 1
    np.testing.assert_allclose(found, out["joints"][j_out, :2].numpy(), atol=0.25)
    assert out["target_weight"][j_out] == 1 and out["target_weight"].sum() == 1
    peak = np.unravel_index(torch.argmax(out["target"][j_out]).item(), (64, 64))[::-1]
    assert np.abs(np.array(peak) - out["joints"][j_out, :2].numpy() / 4).max() <= 0.5 + 1e-6


def test_flip_then_flip_back_is_identity():
    """A flipped sample, mirrored back (x = w - x', left/right swapped), equals the unflipped sample;
    its heatmaps are restored by flip_back with the 1-pixel shift."""
    rng = np.random.default_rng(0)
    # A smooth image, so that OpenCV's 1/32-pixel interpolation grid cannot make a visible difference.
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    joints = rng.uniform(80, 220, (COCO.num_joints, 2))
    visible = (rng.random(COCO.num_joints) > 0.2).astype(np.float32)
    center, scale = np.array([160.0, 120.0]), np.array([150.0, 200.0])
    codec = HeatmapCodec((192, 256), (48, 64))
    plain = TopDownPipeline(COCO, codec, AugmentConfig(flip=False, scale_factor=0.3, rotation_factor=0))
    flip = TopDownPipeline(COCO, codec, AugmentConfig(flip_prob=1.0, scale_factor=0.3, rotation_factor=0))
    a = plain(image, joints, visible, center, scale, np.random.default_rng(5))
    b = flip(image, joints, visible, center, scale, np.random.default_rng(5))
    assert b["flipped"] and not a["flipped"]
    np.testing.assert_allclose(a["scale"], b["scale"])  # same scale draw
    perm = COCO.flip_permutation()
    back = b["joints"][perm].clone()
    back[:, 0] = torch.where(back[:, 2] > 0, 192 - back[:, 0], 0.0)
    np.testing.assert_allclose(back, a["joints"], atol=1e-4)
    # Image: crop column u of the flipped sample shows what column w - u shows unflipped.
    np.testing.assert_allclose(b["image"].flip(2)[:, :, :-1], a["image"][:, :, 1:], atol=0.02)
    assert not torch.allclose(b["image"].flip(2), a["image"], atol=0.02)  # ... and not column u itself
    # Heatmaps: flip_back (mirror, swap, shift 1) puts every peak back within one heatmap pixel.
    restored = flip_back(b["target"][None], COCO.flip_pairs, shift=1)[0]
    inside = (
        (a["joints"][:, 2] > 0)
        & (a["joints"][:, 0] >= 0)
        & (a["joints"][:, 0] < 192)
        & (a["joints"][:, 1] >= 0)
        & (a["joints"][:, 1] < 256)
    )
    assert inside.sum() >= 5
    for k in np.flatnonzero(inside.numpy()):
        pa = np.unravel_index(torch.argmax(a["target"][k]).item(), (64, 48))
        pb = np.unravel_index(torch.argmax(restored[k]).item(), (64, 48))
        assert abs(pa[0] - pb[0]) == 0 and abs(pa[1] - pb[1]) <= 1


def test_eval_pipeline_is_deterministic_centre_crop():
    image = np.full((100, 100, 3), 128, dtype=np.uint8)
    pipeline = TopDownPipeline(MPII, HeatmapCodec((64, 64), (16, 16)), augment=None)
    joints = np.full((16, 2), 50.0)
    out = pipeline(image, joints, np.ones(16), np.array([50.0, 50.0]), np.array([80.0, 80.0]))
    assert out["rotation"] == 0.0 and out["flipped"] is False
    np.testing.assert_allclose(out["joints"][:, :2], 32.0)  # the centre maps to the crop centre
    np.testing.assert_allclose(out["center"], [50, 50])
    np.testing.assert_allclose(out["scale"], [80, 80])
    grey = _unnormalise(out["image"])[20:40, 20:40]
    np.testing.assert_allclose(grey, 128 / 255, atol=1e-5)


def test_rotation_distributions():
    """normal: clip(N(0, rf), -2 rf, 2 rf) applied with p = rotation_prob; uniform: U(-rf, rf)."""
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    codec = HeatmapCodec((16, 16), (4, 4))
    args = (image, np.zeros((16, 2)), np.zeros(16), np.array([8.0, 8.0]), np.array([16.0, 16.0]))
    rng = np.random.default_rng(0)
    for dist, limit in (("normal", 60.0), ("uniform", 30.0)):
        aug = AugmentConfig(
            flip=False, scale_factor=0, rotation_factor=30, rotation_dist=dist, rotation_prob=0.6
        )
        rots = np.array([TopDownPipeline(MPII, codec, aug)(*args, rng)["rotation"] for _ in range(3000)])
        assert np.mean(rots == 0) == pytest.approx(0.4, abs=0.04)
        nonzero = rots[rots != 0]
        assert np.abs(nonzero).max() <= limit and np.abs(nonzero).max() > 0.9 * limit
        if dist == "normal":
            assert np.mean(np.abs(nonzero) > 30) == pytest.approx(0.317, abs=0.04)  # P(|z| > 1)
            assert np.mean(np.abs(nonzero) == 60) == pytest.approx(0.046, abs=0.02)  # clipped at 2 sigma


class _FixedNormal:
    """Stands in for a Generator whose standard_normal() returns a fixed value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def standard_normal(self) -> float:
        return self.value


def test_half_body_rule():
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 200, (COCO.num_joints, 2))
    visible = np.ones(COCO.num_joints)
    upper = np.array(COCO.upper_body)
    lower = np.array(COCO.lower_body)
    c, s = half_body_center_scale(joints, visible, COCO, 0.75, 1.5, _FixedNormal(0.4))  # randn < 0.5: upper
    np.testing.assert_allclose(c, joints[upper].mean(axis=0))  # the mean, not the box centre
    x0, y0 = joints[upper].min(axis=0)
    x1, y1 = joints[upper].max(axis=0)
    np.testing.assert_allclose(s, box_to_center_scale((x0, y0, x1 - x0, y1 - y0), 0.75, 1.5)[1])
    assert s[0] / s[1] == pytest.approx(0.75)
    c, _ = half_body_center_scale(joints, visible, COCO, 0.75, 1.5, _FixedNormal(0.6))  # randn >= 0.5: lower
    np.testing.assert_allclose(c, joints[lower].mean(axis=0))
    only_upper = np.zeros(COCO.num_joints)
    only_upper[upper[:5]] = 1
    c, _ = half_body_center_scale(
        joints, only_upper, COCO, 0.75, 1.5, _FixedNormal(0.9)
    )  # lower empty: upper
    np.testing.assert_allclose(c, joints[upper[:5]].mean(axis=0))
    one = np.zeros(COCO.num_joints)
    one[0] = 1
    assert half_body_center_scale(joints, one, COCO, 0.75, 1.5, _FixedNormal(0.0)) is None


def test_augment_config_validation():
    with pytest.raises(ValueError, match="rotation_dist"):
        AugmentConfig(rotation_dist="laplace")
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="scale_factor"):
        AugmentConfig(scale_factor=1.0)


def test_normalisation_and_colour_jitter():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    rgb = (crop[:, :, ::-1].astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(normalize_image(crop).numpy().transpose(1, 2, 0), rgb, atol=1e-6)
    bgr = (crop.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD  # SimpleBaseline: BGR, RGB stats
    out = normalize_image(crop, color_rgb=False).numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, bgr, atol=1e-6)
    np.testing.assert_array_equal(denormalize_image(normalize_image(crop)), crop)  # back to uint8 BGR
    a = normalize_image(crop, jitter=0.4, rng=np.random.default_rng(1))
    b = normalize_image(crop, jitter=0.4, rng=np.random.default_rng(1))
    assert torch.equal(a, b) and not torch.allclose(a, normalize_image(crop), atol=1e-3)
    unit = _unnormalise(a)
    assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6  # clamped to valid intensities
    with pytest.raises(ValueError, match="rng"):
        normalize_image(crop, jitter=0.4)
