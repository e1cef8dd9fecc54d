"""HeatmapCodec: targets as SimpleBaseline's generate_target, decoding, back-projection, flip test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boxpose.codec.affine import get_affine_transform, transform_points
from boxpose.codec.heatmap import HeatmapCodec, flip_back, merge_flip
from boxpose.keypoints import COCO, MPII


def reference_generate_target(joints, visible, image_size, heatmap_size, sigma):
    """A direct, per-joint transcription of SimpleBaseline's JointsDataset.generate_target (loops and all)."""
    k = len(joints)
    target = np.zeros((k, heatmap_size[1], heatmap_size[0]), dtype=np.float32)
    weight = np.array(visible, dtype=np.float32)
    tmp_size = sigma * 3
    stride = np.array(image_size) / np.array(heatmap_size)
    for j in range(k):
        mu_x = int(joints[j][0] / stride[0] + 0.5)
        mu_y = int(joints[j][1] / stride[1] + 0.5)
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= heatmap_size[0] or ul[1] >= heatmap_size[1] or br[0] < 0 or br[1] < 0:
            weight[j] = 0
            continue
        size = 2 * tmp_size + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, None]
        x0 = y0 = size // 2
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
        g_x = max(0, -ul[0]), min(br[0], heatmap_size[0]) - ul[0]
        g_y = max(0, -ul[1]), min(br[1], heatmap_size[1]) - ul[1]
        img_x = max(0, ul[0]), min(br[0], heatmap_size[0])
        img_y = max(0, ul[1]), min(br[1], heatmap_size[1])
        if weight[j] > 0.5:
            target[j][img_y[0] : img_y[1], img_x[0] : img_x[1]] = g[g_y[0] : g_y[1], g_x[0] : g_x[1]]
    return target, weight


def reference_quarter_decode(hm):
    """SimpleBaseline's get_max_preds + POST_PROCESS quarter offset, loop version."""
    n, k, h, w = hm.shape
    coords = np.zeros((n, k, 2))
    maxvals = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            idx = int(np.argmax(hm[i, j]))
            maxvals[i, j] = hm[i, j].max()
            x, y = (idx % w, idx // w) if maxvals[i, j] > 0 else (0, 0)
            px, py = math.floor(x + 0.5), math.floor(y + 0.5)
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array(
                    [hm[i, j, py, px + 1] - hm[i, j, py, px - 1], hm[i, j, py + 1, px] - hm[i, j, py - 1, px]]
                )
                x, y = np.array([x, y], dtype=float) + np.sign(diff) * 0.25
            coords[i, j] = (x, y)
    return coords, maxvals


@pytest.mark.parametrize(
    ("input_size", "heatmap_size", "sigma"),
    [((256, 256), (64, 64), 2.0), ((192, 256), (48, 64), 2.0), ((128, 96), (32, 24), 3.0)],
)
def test_encode_matches_reference_generate_target(input_size, heatmap_size, sigma):
    rng = np.random.default_rng(0)
    k = 40
    # Joints inside, near the border, just outside (where int() rounds towards zero) and far outside.
    joints = rng.uniform(-60, np.array(input_size) + 60, size=(k, 2))
    joints[:4] = [[-3.0, 10.0], [-5.0, -5.0], [input_size[0] + 20.0, 5.0], [-4 * 7.5 - 1, 20.0]]
    visible = (rng.random(k) > 0.2).astype(np.float32)
    codec = HeatmapCodec(input_size, heatmap_size, sigma)
    heatmaps, weights = codec.encode(joints, visible)
    ref_h, ref_w = reference_generate_target(joints, visible, input_size, heatmap_size, sigma)
    assert heatmaps.dtype == np.float32 and heatmaps.shape == (k, heatmap_size[1], heatmap_size[0])
    np.testing.assert_array_equal(weights, ref_w)
    np.testing.assert_allclose(heatmaps, ref_h, atol=1e-6)
    assert 0 < weights.sum() < visible.sum()  # some joints were dropped for lying off the heatmap


def test_target_peak_at_rounded_heatmap_pixel():
    codec = HeatmapCodec((256, 256), (64, 64), 2.0)
    joints = np.array([[100.0, 50.0], [101.9, 50.0], [102.1, 53.9], [0.0, 0.0]])
    heatmaps, weights = codec.encode(joints, np.ones(4))
    peaks = [np.unravel_index(np.argmax(h), h.shape)[::-1] for h in heatmaps]
    # int(x / 4 + 0.5): 100 -> 25, 101.9 -> 25, 102.1 -> 26, 53.9 -> 13
    assert peaks == [(25, 13), (25, 13), (26, 13), (0, 0)]
    assert np.allclose(heatmaps.max(axis=(1, 2)), 1.0)
    # 13 x 13 patch for sigma 2: the value 6 px from the peak is written, 7 px is not.
    assert heatmaps[0, 13, 25 + 6] == pytest.approx(math.exp(-36 / 8), rel=1e-6)
    assert heatmaps[0, 13, 25 + 7] == 0.0
    np.testing.assert_array_equal(weights, 1.0)


def test_invisible_joint_has_zero_target_and_weight():
    codec = HeatmapCodec((256, 256), (64, 64))
    heatmaps, weights = codec.encode(np.array([[np.nan, np.nan], [10.0, 10.0]]), np.array([0.0, 1.0]))
    assert weights.tolist() == [0.0, 1.0]
    assert not heatmaps[0].any() and np.isfinite(heatmaps).all()
    with pytest.raises(ValueError, match="finite"):
        codec.encode(np.array([[np.nan, 1.0]]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        codec.encode(np.zeros((3, 3)), np.ones(3))


def test_quarter_decode_matches_reference():
    rng = np.random.default_rng(1)
    hm = rng.random((3, 5, 20, 16)).astype(np.float32)
    hm[0, 0] = 0.0  # all zero: maxval 0 -> coords (0, 0)
    hm[0, 1] = -1.0
    hm[1, 0, 1, 7] = 5.0  # peak on row 1: the reference rule leaves it unshifted
    hm[1, 1, 10, 14] = 5.0  # peak on column w - 2: shifted
    coords, maxvals = HeatmapCodec((64, 80), (16, 20), decode_mode="quarter").decode(hm)
    ref_c, ref_m = reference_quarter_decode(hm)
    np.testing.assert_allclose(coords, ref_c)
    np.testing.assert_allclose(maxvals, ref_m, rtol=1e-6)
    assert coords[0, 0].tolist() == [0, 0] and coords[0, 1].tolist() == [0, 0] and maxvals[0, 1] == -1.0
    assert coords[1, 0].tolist() == [7, 1]


@pytest.mark.parametrize("mode", ["argmax", "quarter", "dark"])
def test_encode_decode_round_trip(mode):
    codec = HeatmapCodec((192, 256), (48, 64), 2.0, decode_mode=mode)
    rng = np.random.default_rng(2)
    joints = rng.uniform(20, [172, 236], size=(17, 2))
    heatmaps, _ = codec.encode(joints, np.ones(17))
    coords, maxvals = codec.decode(heatmaps[None])
    err = np.abs(coords[0] * codec.stride - joints)  # back to input pixels (i * stride)
    # The target is centred on the rounded heatmap pixel: argmax is within half a stride; the quarter
    # offset cannot see sub-pixel positions of a symmetric target, so also within half a stride (+0.25).
    limit = {"argmax": 0.5, "quarter": 0.5, "dark": 0.5}[mode] * codec.stride + 1e-6
    assert np.all(err <= limit)
    np.testing.assert_allclose(maxvals, 1.0)


def test_dark_recovers_subpixel_gaussian_centre():
    """DARK on an exact Gaussian centred between pixels recovers the centre far better than argmax."""
    h, w = 64, 48
    rng = np.random.default_rng(3)
    centres = rng.uniform(10, 38, size=(6, 2))
    ys, xs = np.mgrid[0:h, 0:w]
    hm = np.stack([np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 2.0**2)) for cx, cy in centres])[None]
    dark, _ = HeatmapCodec((192, 256), (w, h), decode_mode="dark").decode(hm.astype(np.float32))
    arg, _ = HeatmapCodec((192, 256), (w, h), decode_mode="argmax").decode(hm.astype(np.float32))
    dark_err = np.abs(dark[0] - centres).max()
    arg_err = np.abs(arg[0] - centres).max()
    assert dark_err < 0.1 < arg_err


def test_to_image_inverts_the_crop_transform():
    codec = HeatmapCodec((192, 256), (48, 64))
    centers = np.array([[320.0, 240.0], [100.0, 50.0]])
    scales = np.array([[150.0, 200.0], [60.0, 80.0]])
    rots = np.array([0.0, 30.0])
    image_pts = np.array([[[300.0, 250.0], [330.0, 180.0]], [[90.0, 40.0], [110.0, 70.0]]])
    hm_pts = np.stack(
        [
            transform_points(image_pts[i], get_affine_transform(centers[i], scales[i], rots[i], (48, 64)))
            for i in range(2)
        ]
    )
    np.testing.assert_allclose(codec.to_image(hm_pts, centers, scales, rots), image_pts, atol=1e-9)
    # Heatmap pixel i <-> input pixel i * stride: the crop centre maps to the heatmap centre.
    np.testing.assert_allclose(
        codec.to_image(np.array([[[24.0, 32.0]]]), centers[:1], scales[:1]), [centers[:1]]
    )


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(8, 184),
    y=st.floats(8, 248),
    cx=st.floats(100, 500),
    cy=st.floats(100, 400),
    s=st.floats(80, 400),
)
def test_image_to_heatmap_to_image_round_trip(x, y, cx, cy, s):
    """A joint cropped, encoded and decoded back to the image is within the quantisation error."""
    codec = HeatmapCodec((192, 256), (48, 64), decode_mode="quarter")
    center, scale = np.array([cx, cy]), np.array([s, s * 256 / 192])
    crop = np.array([[x, y]])
    image_pt = transform_points(crop, get_affine_transform(center, scale, 0, (192, 256), inverse=True))
    heatmaps, _ = codec.encode(crop, np.ones(1))
    back, _ = codec.decode_to_image(heatmaps[None], center[None], scale[None])
    image_px_per_heatmap_px = s / 48
    assert np.abs(back[0] - image_pt).max() <= 0.5 * image_px_per_heatmap_px + 1e-6


def test_flip_back_on_asymmetric_heatmap():
    """flip_back undoes a horizontal flip: mirrored columns, swapped left/right channels, 1-px shift."""
    torch.manual_seed(0)
    hm = torch.rand(2, MPII.num_joints, 8, 10)
    flipped_output = hm.flip(3)  # what a perfectly flip-equivariant network would output for a flipped
    flipped_output = flipped_output[:, MPII.flip_permutation()]  # input: mirrored and left/right swapped
    np.testing.assert_array_equal(flip_back(flipped_output, MPII.flip_pairs, shift=0), hm)
    shifted = flip_back(flipped_output, MPII.flip_pairs, shift=1)
    np.testing.assert_array_equal(shifted[..., 1:], hm[..., :-1])
    np.testing.assert_array_equal(shifted[..., 0], hm[..., 0])  # the reference keeps column 0
    # Left wrist (15) of the flipped output is the right wrist (10) of the original, mirrored.
    marked = torch.zeros(1, 16, 4, 6)
    marked[0, 15, 1, 0] = 1.0
    back = flip_back(marked, MPII.flip_pairs, shift=0)
    assert back[0, 10, 1, 5] == 1.0 and back.sum() == 1.0


def test_merge_flip_averages_aligned_maps():
    hm = torch.rand(1, COCO.num_joints, 6, 5)
    flipped = hm.flip(3)[:, COCO.flip_permutation()]
    np.testing.assert_allclose(merge_flip(hm, flipped, COCO.flip_pairs, shift=0), hm, atol=1e-7)
    with pytest.raises(ValueError, match="shift"):
        flip_back(hm, COCO.flip_pairs, shift=5)


def test_decode_accepts_tensors():
    hm = torch.rand(2, 3, 16, 12)
    codec = HeatmapCodec((48, 64), (12, 16))
    coords_t, maxvals_t = codec.decode(hm)
    coords_n, maxvals_n = codec.decode(hm.numpy())
    np.testing.assert_array_equal(coords_t, coords_n)
    np.testing.assert_array_equal(maxvals_t, maxvals_n)
    assert coords_t.dtype == np.float32 and coords_t.shape == (2, 3, 2)


def test_codec_argument_errors():
    with pytest.raises(ValueError, match="decode_mode"):
        HeatmapCodec((256, 256), (64, 64), decode_mode="median")
    with pytest.raises(ValueError, match="odd"):
        HeatmapCodec((256, 256), (64, 64), dark_kernel=10)
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        HeatmapCodec((256, 256), (64, 64)).decode(np.zeros((4, 64, 64)))
