"""The heatmap codec: training targets (encode) and keypoints from network output (decode).

One object, :class:`HeatmapCodec`, owns both directions so that a joint that is encoded, decoded and
mapped back to the image lands where it started (up to the heatmap quantisation). The recipe is
SimpleBaseline/HRNet's (``generate_target``, ``get_max_preds``, ``get_final_preds``), vectorised.

Coordinate conventions
----------------------
- Input-crop pixels are 0-based with pixel centres on integers (see :mod:`boxpose.codec.affine`).
- The heatmap is the same crop box at lower resolution. With ``stride = input_size / heatmap_size``
  (per axis), heatmap pixel ``i`` corresponds to input pixel ``i * stride`` and input point ``x`` to
  heatmap point ``x / stride`` (SimpleBaseline's convention, not UDP's ``(in - 1) / (out - 1)``). This is
  exactly what :func:`boxpose.codec.affine.get_affine_transform` gives for the two output sizes.
- Decoded coordinates are in heatmap pixels (x, y); :meth:`HeatmapCodec.to_image` maps them to the
  original image with the inverse of ``get_affine_transform(center, scale, rot, heatmap_size)``.

Encoding (SimpleBaseline ``generate_target``)
---------------------------------------------
For each joint, ``mu = int(x / stride + 0.5)`` (Python ``int`` rounds towards zero, so a joint up to
one stride left of / above the crop is pulled onto pixel 0 -- kept for fidelity); an unnormalised
Gaussian with peak 1 and standard deviation ``sigma`` (heatmap pixels) centred on the integer pixel
``mu`` is written into the patch ``[int(mu - 3 sigma), int(mu + 3 sigma + 1))`` (13 x 13 for sigma 2)
and zero elsewhere. The joint's weight is its visibility, set to 0 when the patch lies off the heatmap
by the reference's test ``ul >= size or br < 0`` (``br`` is exclusive, so a patch ending exactly at
pixel -1 keeps weight 1 with an all-zero target, as in the reference). Joints with weight 0 get an
all-zero heatmap.

Decoding
--------
``argmax`` of each heatmap gives integer (x, y); ``maxval`` (the peak value) is the confidence, and
coordinates are set to (0, 0) where ``maxval <= 0`` (the reference does this so that an empty heatmap
decodes to a fixed, recognisable point; consumers should look at ``maxvals``). Then, by ``decode_mode``:

- ``"argmax"``: no refinement.
- ``"quarter"`` (default, SimpleBaseline ``POST_PROCESS``): shift each axis by 0.25 px towards the
  higher of the two neighbours (``sign`` of their difference, so no shift on a tie), only when the peak
  satisfies ``1 < px < w - 1 and 1 < py < h - 1`` (the reference rule: column/row 1 also excluded).
- ``"dark"`` (Zhang et al., "Distribution-Aware Coordinate Representation", CVPR 2020): blur each
  heatmap with a ``dark_kernel`` Gaussian (OpenCV's default sigma for that size, zero padding), rescale
  it to its original maximum, take the log (clamped at 1e-10) and take one Newton step of the second
  order Taylor expansion at the argmax: ``offset = -H^-1 grad`` with central differences, where
  ``1 < px < w - 2 and 1 < py < h - 2`` and the Hessian is invertible.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from scipy.ndimage import correlate1d

from boxpose.codec.affine import get_affine_transform, transform_points
from boxpose.keypoints import flip_permutation

DECODE_MODES = ("argmax", "quarter", "dark")


class HeatmapCodec:
    """Gaussian heatmap targets and their decoding.

    Args:
        input_size: (width, height) of the network input crop in pixels.
        heatmap_size: (width, height) of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels.
        decode_mode: "quarter" (default), "dark" or "argmax"; see the module docstring.
        dark_kernel: odd size of the Gaussian blur used by "dark".
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        decode_mode: str = "quarter",
        dark_kernel: int = 11,
    ) -> None:
        if decode_mode not in DECODE_MODES:
            raise ValueError(f"decode_mode must be one of {DECODE_MODES}, got {decode_mode!r}")
        if dark_kernel < 1 or dark_kernel % 2 == 0:
            raise ValueError(f"dark_kernel must be a positive odd integer, got {dark_kernel}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if min(self.input_size + self.heatmap_size) <= 0:
            raise ValueError(f"sizes must be positive, got input {input_size}, heatmap {heatmap_size}")
        self.sigma = float(sigma)
        self.decode_mode = decode_mode
        self.dark_kernel = int(dark_kernel)
        # (2,) input pixels per heatmap pixel along x and y.
        self.stride = np.array(self.input_size, dtype=np.float64) / np.array(self.heatmap_size)

    def __repr__(self) -> str:
        return (
            f"HeatmapCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, decode_mode={self.decode_mode!r}, dark_kernel={self.dark_kernel})"
        )

    # ------------------------------------------------------------------ encode

    def encode(self, joints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian targets for one person.

        Args:
            joints: (K, 2) joint x, y in input-crop pixels. Entries of invisible joints are ignored.
            visible: (K,) visibility in {0, 1}.

        Returns:
            heatmaps (K, h, w) float32 and weights (K,) float32 (visibility, zeroed off-heatmap).
        """
        joints = np.asarray(joints, dtype=np.float64)
        visible = np.asarray(visible, dtype=np.float32)
        if joints.ndim != 2 or joints.shape[1] != 2 or visible.shape != (joints.shape[0],):
            raise ValueError(
                f"expected joints (K, 2) and visible (K,), got {joints.shape} and {visible.shape}"
            )
        if not np.all(np.isfinite(joints[visible > 0])):
            raise ValueError(f"visible joints must be finite, got {joints[visible > 0].tolist()}")
        joints = np.where(visible[:, None] > 0, joints, 0.0)
        w, h = self.heatmap_size
        radius = self.sigma * 3

        # Rounding as the reference's int(): towards zero.
        mu = np.trunc(joints / self.stride + 0.5)  # (K, 2)
        ul = np.trunc(mu - radius)
        br = np.trunc(mu + radius + 1)
        off = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weights = np.where(off, 0.0, visible).astype(np.float32)

        # The 2-D Gaussian restricted to the square patch is separable: g(x, y) = gx(x) * gy(y).
        xs = np.arange(w, dtype=np.float64)[None, :]
        ys = np.arange(h, dtype=np.float64)[None, :]
        gx = np.exp(-((xs - mu[:, :1]) ** 2) / (2 * self.sigma**2)) * ((xs >= ul[:, :1]) & (xs < br[:, :1]))
        gy = np.exp(-((ys - mu[:, 1:]) ** 2) / (2 * self.sigma**2)) * ((ys >= ul[:, 1:]) & (ys < br[:, 1:]))
        gx *= (weights > 0.5)[:, None]
        heatmaps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)
        return heatmaps, weights

    # ------------------------------------------------------------------ decode

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Peak locations of a batch of heatmaps.

        Args:
            heatmaps: (N, K, h, w) network output (NumPy array or tensor).

        Returns:
            coords (N, K, 2) float32 x, y in heatmap pixels, and maxvals (N, K) float32.
        """
        if isinstance(heatmaps, torch.Tensor):
            heatmaps = heatmaps.detach().float().cpu().numpy()
        hm = np.asarray(heatmaps, dtype=np.float32)
        if hm.ndim != 4:
            raise ValueError(f"expected heatmaps of shape (N, K, h, w), got {hm.shape}")
        n, k, h, w = hm.shape
        flat = hm.reshape(n, k, h * w)
        idx = flat.argmax(axis=2)
        maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
        coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
        coords[~(maxvals > 0)] = 0.0

        if self.decode_mode == "quarter":
            coords = _quarter_offset(hm, coords)
        elif self.decode_mode == "dark":
            coords = _dark_refine(hm, coords, self.dark_kernel)
        return coords.astype(np.float32), maxvals.astype(np.float32)

    def to_image(
        self,
        coords: np.ndarray,
        centers: np.ndarray,
        scales: np.ndarray,
        rotations: np.ndarray | Sequence[float] | None = None,
    ) -> np.ndarray:
        """Map heatmap coordinates back to the original image.

        Args:
            coords: (N, K, 2) x, y in heatmap pixels.
            centers: (N, 2) crop centres in image pixels (the sample's ``meta["center"]``).
            scales: (N, 2) crop box sizes in image pixels (``meta["scale"]``).
            rotations: (N,) crop rotations in degrees, or None for 0.

        Returns:
            (N, K, 2) float64 image coordinates.
        """
        coords = np.asarray(coords, dtype=np.float64)
        centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
        scales = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
        n = coords.shape[0]
        rotations = np.zeros(n) if rotations is None else np.asarray(rotations, dtype=np.float64).reshape(-1)
        if not (centers.shape[0] == scales.shape[0] == rotations.shape[0] == n):
            raise ValueError(
                f"batch sizes differ: coords {coords.shape}, centers {centers.shape}, "
                f"scales {scales.shape}, rotations {rotations.shape}"
            )
        out = np.empty_like(coords)
        for i in range(n):
            inv = get_affine_transform(centers[i], scales[i], rotations[i], self.heatmap_size, inverse=True)
            out[i] = transform_points(coords[i], inv)
        return out

    def decode_to_image(
        self,
        heatmaps: np.ndarray | torch.Tensor,
        centers: np.ndarray,
        scales: np.ndarray,
        rotations: np.ndarray | Sequence[float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`decode` then :meth:`to_image`: (N, K, 2) image coordinates and (N, K) maxvals."""
        coords, maxvals = self.decode(heatmaps)
        return self.to_image(coords, centers, scales, rotations), maxvals


def _gather(hm: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """hm[n, k, ys[n, k], xs[n, k]] for (N, K, h, w) ``hm`` and (N, K) integer indices."""
    n, k = ys.shape
    return hm[np.arange(n)[:, None], np.arange(k)[None, :], ys, xs]


def _quarter_offset(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """SimpleBaseline's quarter-pixel shift towards the higher neighbour (see the module docstring)."""
    _, _, h, w = hm.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    px = np.clip(px, 1, max(w - 2, 1))
    py = np.clip(py, 1, max(h - 2, 1))
    dx = np.sign(_gather(hm, py, np.minimum(px + 1, w - 1)) - _gather(hm, py, px - 1))
    dy = np.sign(_gather(hm, np.minimum(py + 1, h - 1), px) - _gather(hm, py - 1, px))
    return coords + 0.25 * np.stack([dx, dy], axis=-1) * inside[..., None]


def _dark_blur(hm: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's modulation: zero-padded Gaussian blur, rescaled to each map's original maximum."""
    g = cv2.getGaussianKernel(kernel, 0).ravel()  # sigma = 0.3 * ((kernel - 1) / 2 - 1) + 0.8
    blurred = correlate1d(hm.astype(np.float64), g, axis=-1, mode="constant", cval=0.0)
    blurred = correlate1d(blurred, g, axis=-2, mode="constant", cval=0.0)
    orig_max = hm.max(axis=(2, 3), keepdims=True)
    new_max = blurred.max(axis=(2, 3), keepdims=True)
    ratio = np.divide(orig_max, new_max, out=np.zeros_like(new_max), where=new_max > 0)
    return blurred * ratio


def _dark_refine(hm: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's Taylor refinement around the integer argmax (see the module docstring)."""
    _, _, h, w = hm.shape
    logm = np.log(np.maximum(_dark_blur(hm, kernel), 1e-10))
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    px = np.clip(px, 2, max(w - 3, 2))
    py = np.clip(py, 2, max(h - 3, 2))
    if w < 5 or h < 5:  # no pixel satisfies the border rule; avoid out-of-range gathers
        return coords

    def at(dy: int, dx: int) -> np.ndarray:
        return _gather(logm, py + dy, px + dx)

    c = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    ok = inside & (det != 0)
    safe = np.where(ok, det, 1.0)
    # offset = -H^-1 g with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det.
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    return coords + np.stack([off_x, off_y], axis=-1) * ok[..., None]


# ---------------------------------------------------------------------- flip test


def flip_back(heatmaps: torch.Tensor, flip_pairs: Sequence[Sequence[int]], shift: int = 1) -> torch.Tensor:
    """Align the output for a horizontally flipped input with the unflipped input.

    Reverses the width axis, swaps the channels of each (left, right) pair, then shifts the maps
    ``shift`` heatmap pixels to the right (SimpleBaseline's ``SHIFT_HEATMAP``; the first ``shift``
    columns keep their values, as the reference's in-place ``[:, :, :, 1:] = [:, :, :, :-1]`` does;
    0 disables). The shift compensates the half-stride misalignment of a flipped crop under the
    ``i * stride`` pixel convention.

    Args:
        heatmaps: (N, K, h, w) network output for the flipped input.
        flip_pairs: (left, right) joint index pairs, e.g. ``dataset.spec.flip_pairs``.
        shift: heatmap pixels to shift right.

    Returns:
        (N, K, h, w) tensor, a new tensor.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"expected (N, K, h, w) heatmaps, got shape {tuple(heatmaps.shape)}")
    if shift < 0 or shift >= heatmaps.shape[-1]:
        raise ValueError(f"shift must be in [0, width), got {shift}")
    perm = flip_permutation(heatmaps.shape[1], flip_pairs).tolist()
    out = heatmaps.flip(-1)[:, perm]
    if shift > 0:
        out = torch.cat([out[..., :shift], out[..., :-shift]], dim=-1)
    return out


def merge_flip(
    heatmaps: torch.Tensor,
    flipped_heatmaps: torch.Tensor,
    flip_pairs: Sequence[Sequence[int]],
    shift: int = 1,
) -> torch.Tensor:
    """Flip test: the average of ``heatmaps`` and ``flip_back(flipped_heatmaps, ...)``, (N, K, h, w)."""
    return (heatmaps + flip_back(flipped_heatmaps, flip_pairs, shift)) * 0.5
