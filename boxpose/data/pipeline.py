"""The top-down sample pipeline shared by every dataset: augment, crop, normalise, encode targets.

Given an image and one person (joints, crop centre and scale in image pixels), produce the network
input crop and its heatmap targets, following SimpleBaseline/HRNet's ``JointsDataset.__getitem__``:

1. half-body (training, optional; HRNet's rule, see :func:`half_body_center_scale`);
2. scale: ``scale *= clip(randn * sf + 1, 1 - sf, 1 + sf)``;
3. rotation, with probability ``rotation_prob`` (reference 0.6), else 0:
   ``"normal"``: ``clip(randn * rf, -2 rf, 2 rf)`` degrees (the reference: ``rf`` is the standard
   deviation, so ``rotation_factor: 30`` gives rotations up to +-60 degrees, not a uniform +-30);
   ``"uniform"``: uniform in ``[-rf, rf]``;
4. horizontal flip with probability ``flip_prob`` (reference 0.5): ``x' = width - x - 1``, centre
   likewise, left/right joints swapped (the image is not copied: the flip is folded into the affine
   matrix, which samples exactly the same pixels as flipping the array first);
5. affine crop to ``input_size`` with :mod:`boxpose.codec.affine` (bilinear, black border);
6. colour: BGR -> RGB (``color_rgb``, HRNet's ``COLOR_RGB``), optional colour jitter (training), then
   ImageNet normalisation (:func:`normalize_image`);
7. targets with :meth:`boxpose.codec.heatmap.HeatmapCodec.encode`.

Evaluation samples (``augment=None``) do only steps 5-7. All randomness comes from the
``numpy.random.Generator`` passed in (one per sample, see :class:`boxpose.data.base.TopDownDataset`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from boxpose.codec.affine import box_to_center_scale, get_affine_transform, transform_points, warp_image
from boxpose.codec.heatmap import HeatmapCodec
from boxpose.keypoints import KeypointSpec

# ImageNet statistics of RGB images scaled to [0, 1] (torchvision's), the only normalisation boxpose uses.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# normalize_image computes (x / 255 - mean) / std as x * _SCALE - _OFFSET, per channel, shape (3, 1, 1).
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)[:, None, None]
_OFFSET = (IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)[:, None, None]

ROTATION_DISTS = ("normal", "uniform")


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation switches (the ``augment:`` block of a data config).

    Attributes:
        flip: random horizontal flip with left/right joint swapping.
        flip_prob: probability of a flip (reference 0.5).
        scale_factor: ``sf`` of the scale jitter; 0 disables it.
        rotation_factor: ``rf`` in degrees; 0 disables rotation.
        rotation_dist: "normal" (reference: N(0, rf) clipped at +-2 rf) or "uniform" (U(-rf, rf)).
        rotation_prob: probability that a sample is rotated at all (reference 0.6).
        half_body_prob: probability of half-body augmentation (HRNet COCO 0.3; 0 disables).
        half_body_min_joints: half-body is tried only with more than this many visible joints (HRNet 8).
        half_body_padding: box enlargement of the half-body crop (HRNet 1.5).
        color_jitter: strength ``j`` of a random brightness/contrast/saturation change, each factor
            uniform in [1 - j, 1 + j]; 0 (the reference) disables it.
    """

    flip: bool = True
    flip_prob: float = 0.5
    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_dist: str = "normal"
    rotation_prob: float = 0.6
    half_body_prob: float = 0.0
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.rotation_dist not in ROTATION_DISTS:
            raise ValueError(f"rotation_dist must be one of {ROTATION_DISTS}, got {self.rotation_dist!r}")
        for name in ("flip_prob", "rotation_prob", "half_body_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"augment.scale_factor must be in [0, 1), got {self.scale_factor}")
        if self.rotation_factor < 0 or not 0.0 <= self.color_jitter < 1.0:
            raise ValueError("augment.rotation_factor must be >= 0 and augment.color_jitter in [0, 1)")


def half_body_center_scale(
    joints: np.ndarray,
    visible: np.ndarray,
    spec: KeypointSpec,
    aspect_ratio: float,
    padding: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """HRNet's ``half_body_transform``: a crop around the upper or the lower body.

    The upper body is chosen if ``rng.standard_normal() < 0.5`` (a *normal* draw, as the reference's
    ``np.random.randn``, so the upper half is preferred with probability ~0.69) and it has more than
    2 visible joints; otherwise the lower body if it has more than 2, else the upper body. Fewer than 2
    selected joints -> None. The centre is the *mean* of the selected joints (not the box centre); the
    box is their extent, fixed to ``aspect_ratio`` and enlarged by ``padding``.

    Args:
        joints: (K, 2) image pixels. visible: (K,) in {0, 1}.

    Returns:
        (center (2,), scale (2,) in pixels) or None.
    """
    upper_set = set(spec.upper_body)
    vis = visible > 0
    upper = [j for j in range(spec.num_joints) if vis[j] and j in upper_set]
    lower = [j for j in range(spec.num_joints) if vis[j] and j not in upper_set]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    pts = joints[selected]
    center = pts.mean(axis=0)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    _, scale = box_to_center_scale((x0, y0, x1 - x0, y1 - y0), aspect_ratio, padding)
    return center, scale


def _flip_matrix(width: int) -> np.ndarray:
    """(3, 3) matrix of the horizontal image flip x' = width - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


class TopDownPipeline:
    """Turns (image, person) into a network input, heatmap targets and crop metadata.

    Args:
        spec: keypoint layout (flip pairs, upper/lower body).
        codec: the heatmap codec; its input size is the crop size.
        augment: training augmentation, or None for evaluation (deterministic centre crop).
        color_rgb: feed RGB (HRNet) rather than BGR (SimpleBaseline) to the normalisation.
    """

    def __init__(
        self, spec: KeypointSpec, codec: HeatmapCodec, augment: AugmentConfig | None, color_rgb: bool = True
    ) -> None:
        self.spec = spec
        self.codec = codec
        self.augment = augment
        self.color_rgb = color_rgb
        self.input_size = codec.input_size
        self.aspect_ratio = codec.input_size[0] / codec.input_size[1]
        self._flip_perm = spec.flip_permutation()

    def __call__(
        self,
        image: np.ndarray,
        joints: np.ndarray,
        visible: np.ndarray,
        center: np.ndarray,
        scale: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> dict:
        """Process one person.

        Args:
            image: (H, W, 3) uint8 BGR image (as read by OpenCV).
            joints: (K, 2) joint x, y in image pixels (0-based); entries of invisible joints ignored.
            visible: (K,) in {0, 1}.
            center: (2,) crop centre, image pixels. scale: (2,) crop box (w, h) in pixels.
            rng: random generator; required when augmenting.

        Returns:
            dict with "image" float32 tensor (3, H, W), "target" float32 (K, h, w), "target_weight"
            float32 (K,), "joints" float32 (K, 3) crop-pixel x, y, visibility, and the crop actually
            taken: "center" float32 (2,), "scale" float32 (2,), "rotation" float, "flipped" bool.
            When flipped, centre and scale refer to the flipped image (x' = W - 1 - x).
        """
        joints = np.asarray(joints, dtype=np.float64).copy()
        visible = np.asarray(visible, dtype=np.float32).copy()
        center = np.asarray(center, dtype=np.float64).copy()
        scale = np.asarray(scale, dtype=np.float64).copy()
        rotation = 0.0
        flipped = False
        aug = self.augment
        if aug is not None:
            if rng is None:
                raise ValueError("an rng is required when augmenting")
            if (
                aug.half_body_prob > 0
                and np.sum(visible > 0) > aug.half_body_min_joints
                and rng.random() < aug.half_body_prob
            ):
                half = half_body_center_scale(
                    joints, visible, self.spec, self.aspect_ratio, aug.half_body_padding, rng
                )
                if half is not None:
                    center, scale = half
            sf, rf = aug.scale_factor, aug.rotation_factor
            if sf > 0:
                scale = scale * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
            if rf > 0 and rng.random() <= aug.rotation_prob:
                if aug.rotation_dist == "normal":
                    rotation = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf))
                else:
                    rotation = float(rng.uniform(-rf, rf))
            if aug.flip and rng.random() <= aug.flip_prob:
                flipped = True
                width = image.shape[1]
                joints[:, 0] = width - joints[:, 0] - 1
                joints, visible = joints[self._flip_perm], visible[self._flip_perm]
                center[0] = width - center[0] - 1

        crop_matrix = get_affine_transform(center, scale, rotation, self.input_size)
        warp_matrix = crop_matrix @ _flip_matrix(image.shape[1]) if flipped else crop_matrix
        crop = warp_image(image, warp_matrix, self.input_size)

        crop_joints = transform_points(joints, crop_matrix)
        crop_joints[visible <= 0] = 0.0
        target, target_weight = self.codec.encode(crop_joints, visible)

        return {
            "image": normalize_image(crop, self.color_rgb, aug.color_jitter if aug is not None else 0.0, rng),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(target_weight),
            "joints": torch.from_numpy(
                np.concatenate([crop_joints, visible[:, None]], axis=1).astype(np.float32)
            ),
            "center": center.astype(np.float32),
            "scale": scale.astype(np.float32),
            "rotation": rotation,
            "flipped": flipped,
        }


def color_jitter(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation of a (3, H, W) float32 image in [0, 1] (in place)."""
    b, c, s = (np.float32(f) for f in rng.uniform(1 - strength, 1 + strength, size=3))
    img *= b
    gray = img.mean(axis=0, keepdims=True)
    img -= gray
    img *= s
    img += gray
    mean = img.mean()
    img -= mean
    img *= c
    img += mean
    return np.clip(img, 0.0, 1.0, out=img)


def normalize_image(
    image_bgr: np.ndarray, color_rgb: bool = True, jitter: float = 0.0, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """Network input from an (H, W, 3) uint8 BGR crop: (3, H, W) float32, ImageNet-normalised.

    ``color_rgb`` converts to RGB first (HRNet). With ``color_rgb=False`` the BGR channels are normalised
    with the RGB-ordered statistics, exactly as SimpleBaseline does. ``jitter`` > 0 applies
    :func:`color_jitter` with ``rng`` before normalising. Inference code that crops images itself should
    use this function, so that it sees the same input as training.

    Runs in single-threaded NumPy: it is called once per sample inside data-loader workers, where
    torch's intra-op thread pool would compete with the training process for the same cores.
    """
    channels = image_bgr[:, :, ::-1] if color_rgb else image_bgr
    img = channels.transpose(2, 0, 1).astype(np.float32)
    if jitter > 0:
        if rng is None:
            raise ValueError("colour jitter needs an rng")
        img *= np.float32(1.0 / 255.0)
        color_jitter(img, jitter, rng)
        img *= np.float32(255.0)
    img *= _SCALE
    img -= _OFFSET
    return torch.from_numpy(img)


def denormalize_image(image: torch.Tensor, color_rgb: bool = True) -> np.ndarray:
    """The inverse of :func:`normalize_image` (without jitter): (3, H, W) tensor -> (H, W, 3) uint8 BGR,
    for drawing and logging."""
    img = image.detach().float().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[:, :, ::-1] if color_rgb else img)
