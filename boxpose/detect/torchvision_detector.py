"""torchvision's COCO detectors as person detectors.

    detector = TorchvisionPersonDetector("fasterrcnn_resnet50_fpn_v2", score_thr=0.5, device="cuda")
    boxes = detector([image_bgr, ...])        # per image: (N, 5) [x, y, w, h, score], pixels

Weights (``weights=``):

- ``"default"``: torchvision's COCO weights, from torch's hub cache
  (``$TORCH_HOME/hub/checkpoints/<file>``, by default ``~/.cache/torch/hub/checkpoints``), downloaded
  there on first use when the machine has internet (``download=False`` forbids it);
- a path: a ``.pth`` state dict of that model (the same file torchvision downloads);
- ``"random"``: untrained, for tests (its boxes are meaningless).

Without the weights file and without internet, the error names the file, its URL and the folder to
put it in, and how to pass it as ``detector.weights=/path/to/file.pth``.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision

COCO_PERSON_LABEL = 1  # torchvision's COCO detectors use the 91-entry COCO category ids; person is 1
NUM_COCO_CLASSES = 91

# name -> the keyword of that model's score threshold, which we set to ``score_thr`` so that low
# thresholds are not cut by torchvision's own default (0.05).
DETECTORS = {
    "fasterrcnn_resnet50_fpn_v2": "box_score_thresh",
    "fasterrcnn_resnet50_fpn": "box_score_thresh",
    "retinanet_resnet50_fpn_v2": "score_thresh",
    "retinanet_resnet50_fpn": "score_thresh",
    "fcos_resnet50_fpn": "score_thresh",
    "ssdlite320_mobilenet_v3_large": "score_thresh",
}
FIXED_SIZE = {"ssdlite320_mobilenet_v3_large"}  # resizes every image to 320 x 320; min_size does not apply


def default_weights_url(name: str) -> str:
    """The URL torchvision downloads ``name``'s COCO weights from."""
    return torchvision.models.get_model_weights(name).DEFAULT.url


def default_weights_path(name: str) -> Path:
    """Where torchvision keeps ``name``'s COCO weights once downloaded (torch's hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(default_weights_url(name)).name


def _missing_weights_message(name: str, reason: str) -> str:
    url, path = default_weights_url(name), default_weights_path(name)
    return (
        f"{reason}. The {name} COCO weights are {path.name} from {url}: download it on a machine with "
        f"internet (e.g. `wget {url}`) and pass detector.weights=/path/to/{path.name}, or put it in "
        f"{path.parent}/ (torchvision's cache)"
    )


def load_detector_weights(name: str, weights: str, download: bool = True) -> dict[str, torch.Tensor] | None:
    """The state dict of ``name`` for ``weights`` ("default", a path, or "random" -> None)."""
    if weights == "random":
        return None
    if weights == "default":
        path = default_weights_path(name)
        if not path.is_file():
            if not download:
                raise FileNotFoundError(_missing_weights_message(name, f"detector weights not found: {path}"))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(default_weights_url(name), str(path), progress=True)
            except (urllib.error.URLError, OSError) as exc:
                reason = f"detector weights {path} are not there and the download failed ({exc})"
                raise FileNotFoundError(_missing_weights_message(name, reason)) from None
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(_missing_weights_message(name, f"detector weights not found: {path}"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"could not read detector weights {path}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict of {name}")
    return state


class TorchvisionPersonDetector:
    """A torchvision COCO detector, keeping the person class.

    Args:
        name: one of :data:`DETECTORS`.
        weights: "default" (torchvision's COCO weights: cache or download), a path, or "random".
        score_thr: keep persons with score >= this.
        device: where the detector runs.
        min_size, max_size: the shorter / longer image side the detector resizes to (torchvision's
            defaults 800 / 1333 when None; ignored by SSDlite, which always uses 320 x 320).
        batch_size: images per forward pass.
        download: allow downloading the default weights when they are not cached.
    """

    def __init__(
        self,
        name: str = "fasterrcnn_resnet50_fpn_v2",
        weights: str = "default",
        score_thr: float = 0.5,
        device: torch.device | str = "cpu",
        min_size: int | None = None,
        max_size: int | None = None,
        batch_size: int = 4,
        download: bool = True,
    ) -> None:
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}; expected one of {sorted(DETECTORS)}")
        if not 0.0 <= score_thr <= 1.0:
            raise ValueError(f"detector score_thr must be in [0, 1], got {score_thr}")
        if batch_size < 1:
            raise ValueError(f"detector batch_size must be >= 1, got {batch_size}")
        state = load_detector_weights(name, str(weights), download)
        options: dict = {DETECTORS[name]: score_thr}
        if name not in FIXED_SIZE:
            options.update(
                {k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None}
            )
        model = torchvision.models.get_model(
            name, weights=None, weights_backbone=None, num_classes=NUM_COCO_CLASSES, **options
        )
        if state is not None:
            result = model.load_state_dict(state, strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise ValueError(
                    f"detector weights {weights} do not fit {name}: missing {result.missing_keys[:3]}, "
                    f"unexpected {result.unexpected_keys[:3]} (is it another model's file?)"
                )
        self.name = name
        self.score_thr = score_thr
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = model.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person boxes of each image.

        Args:
            images: (H, W, 3) uint8 BGR images (OpenCV's order), any sizes.
        Returns:
            per image, (N, 5) float64 ``[x, y, w, h, score]`` in pixels, by decreasing score.
        """
        results = []
        for start in range(0, len(images), self.batch_size):
            batch = [
                torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1]))  # BGR -> RGB, as torchvision trains
                .permute(2, 0, 1)
                .to(self.device, torch.float32)
                .div_(255.0)
                for image in images[start : start + self.batch_size]
            ]
            for output in self.model(batch):
                keep = (output["labels"] == COCO_PERSON_LABEL) & (output["scores"] >= self.score_thr)
                corners = output["boxes"][keep].double().cpu().numpy()  # (N, 4) x1, y1, x2, y2
                scores = output["scores"][keep].double().cpu().numpy()
                order = np.argsort(-scores, kind="stable")
                corners, scores = corners[order], scores[order]
                results.append(
                    np.column_stack([corners[:, :2], corners[:, 2:] - corners[:, :2], scores]).reshape(-1, 5)
                )
        return results
