"""Person detection for top-down pose estimation: images -> person boxes.

A person detector is any callable

    detector(images: Sequence[np.ndarray]) -> list[boxes]

taking (H, W, 3) uint8 **BGR** images (OpenCV's order, as everywhere in boxpose) and returning, per
image, its persons as an (N, 5) array ``[x, y, w, h, score]`` in pixels (or a list of ``(box, score)``
pairs with ``box = [x, y, w, h]``; :func:`as_box_array` turns either into the array).

Built in: torchvision's COCO detectors (:class:`TorchvisionPersonDetector`; Faster R-CNN, RetinaNet,
FCOS, SSDlite). Plugging in another detector:

- from Python, pass any such callable where boxpose takes a detector (e.g. ``boxpose.cli.predict``'s
  ``predict(cfg, detector=my_detector)``);
- from the command line, ``detector.name=my_package.my_module:make_detector``: ``make_detector`` is called
  with the keyword arguments ``weights``, ``score_thr``, ``device`` (the ``detector.*`` keys) and returns
  the callable;
- or write its boxes to a JSON file and pass ``boxes=file.json`` (:func:`load_boxes_file` gives the two
  accepted forms).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from boxpose.detect.boxes import as_box_array, clean_person_boxes, load_boxes_file
from boxpose.detect.torchvision_detector import DETECTORS, TorchvisionPersonDetector

PersonDetector = Callable[[Sequence[np.ndarray]], list[Any]]

__all__ = [
    "DETECTORS",
    "PersonDetector",
    "TorchvisionPersonDetector",
    "as_box_array",
    "build_detector",
    "clean_person_boxes",
    "load_boxes_file",
]


def build_detector(
    name: str,
    weights: str = "default",
    score_thr: float = 0.5,
    device: str = "cpu",
    min_size: int | None = None,
    max_size: int | None = None,
    batch_size: int = 4,
    download: bool = True,
) -> PersonDetector:
    """A detector by name: one of torchvision's (:data:`DETECTORS`), or ``"module:factory"``, an importable
    factory called as ``factory(weights=..., score_thr=..., device=...)`` that returns a detector."""
    if name in DETECTORS:
        return TorchvisionPersonDetector(
            name, weights, score_thr, device, min_size, max_size, batch_size, download
        )
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"detector {name!r}: cannot import {attribute} from {module_name} ({exc})"
            ) from None
        return factory(weights=weights, score_thr=score_thr, device=device)
    raise ValueError(
        f"unknown detector {name!r}; expected one of {sorted(DETECTORS)} or 'module:factory' (a Python "
        "factory returning a callable images -> boxes)"
    )
