"""Pose prediction on arbitrary images, given person boxes (from any detector, or the whole image).

    predictor = build_predictor("outputs/coco_boxnet/best.pt")   # boxpose.builders
    keypoints = predictor.predict(image_bgr, boxes_xywh)   # (P, K, 3): x, y in image pixels, confidence

Person boxes (x, y, w, h in pixels) come from a detector (:mod:`boxpose.detect`; ``boxpose-predict
detector=...``), a JSON file (``boxpose-predict boxes=...``) or the caller. Without boxes the whole
image is taken as one person. All persons of an image go through the network in batches of
``batch_size``.

The crop is the training one (:func:`boxpose.codec.affine.box_to_center_scale` with 1.25 padding and
the model's aspect ratio, :func:`boxpose.data.pipeline.normalize_image`), the flip test and decoding
are the evaluator's, so predictions match what evaluation measures.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from boxpose.codec.affine import BOX_PADDING, box_to_center_scale, get_affine_transform, warp_image
from boxpose.codec.heatmap import HeatmapCodec
from boxpose.data.pipeline import normalize_image
from boxpose.engine.inference import autocast, predict_heatmaps
from boxpose.keypoints import KeypointSpec


class Predictor:
    """Keypoints of the people in an image.

    Args:
        model: (N, 3, H, W) -> (N, K, h, w) in eval mode.
        spec: the keypoint layout the model was trained on.
        codec: the run's heatmap codec: input size and heatmap size (width, height) of the model, and the
            decoding (``decode_mode``), as in evaluation.
        device: where the model runs. flip_test, flip_shift: as in evaluation.
        color_rgb: the input colour order the model was trained with. amp: "none", "bf16", "fp16".
        batch_size: people per forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: KeypointSpec,
        codec: HeatmapCodec,
        device: torch.device | str = "cpu",
        flip_test: bool = True,
        flip_shift: int = 1,
        color_rgb: bool = True,
        amp: str = "none",
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.spec = spec
        self.device = torch.device(device)
        self.codec = codec
        self.input_size = codec.input_size
        self.flip_test = flip_test
        self.flip_shift = flip_shift
        self.color_rgb = color_rgb
        self.amp = amp
        self.batch_size = batch_size

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Network inputs (P, 3, H, W) for boxes (P, 4) x, y, w, h, with their centres and scales (P, 2)."""
        aspect = self.input_size[0] / self.input_size[1]
        tensors, centers, scales = [], [], []
        for box in boxes:
            center, scale = box_to_center_scale(box, aspect, BOX_PADDING)
            crop = warp_image(
                image, get_affine_transform(center, scale, 0.0, self.input_size), self.input_size
            )
            tensors.append(normalize_image(crop, self.color_rgb))
            centers.append(center)
            scales.append(scale)
        return torch.stack(tensors), np.asarray(centers), np.asarray(scales)

    @torch.no_grad()
    def predict(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """Keypoints of each person.

        Args:
            image: (H, W, 3) uint8 BGR.
            boxes: (P, 4) person boxes x, y, w, h in pixels; None = the whole image as one person.
        Returns:
            (P, K, 3): x, y in image pixels (0-based) and the heatmap-peak confidence.
        """
        if boxes is None or len(boxes) == 0:
            boxes = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
        if bad.any():
            raise ValueError(
                f"person box {boxes[bad][0].tolist()} (x, y, w, h) is not finite or has a zero or negative "
                "size; check boxes first (boxpose.detect.clean_person_boxes skips and clips them)"
            )
        results = []
        for start in range(0, len(boxes), self.batch_size):
            inputs, centers, scales = self.crops(image, boxes[start : start + self.batch_size])
            with autocast(self.device, self.amp):
                heatmaps = predict_heatmaps(
                    self.model, inputs.to(self.device), self.spec.flip_pairs, self.flip_test, self.flip_shift
                )
            coords, maxvals = self.codec.decode_to_image(heatmaps.cpu().numpy(), centers, scales)
            results.append(np.concatenate([coords, maxvals[..., None]], axis=-1))
        return np.concatenate(results)
