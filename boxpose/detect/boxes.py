"""Person boxes from any source (a detector, a plugged-in callable, a JSON file): reading and checking.

A person box is a row ``[x, y, w, h, score]`` in pixels of the original image: ``(x, y)`` the top-left
corner, ``w, h`` the width and height. A set of boxes is a float64 array (N, 5).

Before a box is used to crop a person it goes through :func:`clean_person_boxes`: a box that is not
finite, has zero or negative size, or lies entirely outside the image is skipped with a message
naming the image and the box; every other box is clipped to the image (so a box of 1e12 pixels becomes
the whole image).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MIN_BOX_SIDE = 1.0  # pixels: a clipped box thinner than this has nothing to crop


def as_box_array(detections: Any) -> np.ndarray:
    """One image's detections as a float64 (N, 5) array ``[x, y, w, h, score]``.

    Accepts an (N, 4) or (N, 5) array-like (score 1 when absent) or a list of ``(box, score)`` pairs with
    ``box = [x, y, w, h]``, the two forms a plugged-in detector may return.
    """
    if isinstance(detections, np.ndarray | list | tuple) and len(detections) == 0:
        return np.zeros((0, 5))
    if isinstance(detections, list | tuple) and all(
        isinstance(d, list | tuple) and len(d) == 2 and np.size(d[0]) == 4 for d in detections
    ):
        return np.asarray([[*map(float, box), float(score)] for box, score in detections], dtype=np.float64)
    array = np.asarray(detections, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise ValueError(
            f"detections must be (N, 4|5) [x, y, w, h(, score)] or a list of (box, score); got shape "
            f"{array.shape}"
        )
    if array.shape[1] == 4:
        array = np.concatenate([array, np.ones((len(array), 1))], axis=1)
    return array


def _format_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def clean_person_boxes(
    boxes: np.ndarray, width: int, height: int, image: str
) -> tuple[np.ndarray, list[str]]:
    """The usable boxes of one image, clipped to it, and a message for each box skipped.

    Args:
        boxes: (N, 5) ``[x, y, w, h, score]`` in pixels.
        width, height: the image size in pixels.
        image: the image's name, for the messages.
    Returns:
        ((M, 5) kept boxes clipped to [0, width] x [0, height], in input order; messages naming the image
        and each skipped box).
    """
    kept, messages = [], []
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 5):
        x, y, w, h, score = box
        reason = None
        if not np.isfinite(box).all():
            reason = "it is not finite"
        elif w <= 0 or h <= 0:
            reason = "its width or height is zero or negative"
        else:
            x0, y0 = max(x, 0.0), max(y, 0.0)
            x1, y1 = min(x + w, float(width)), min(y + h, float(height))
            if x1 <= x0 or y1 <= y0:
                reason = f"it lies entirely outside the {width}x{height} image"
            elif x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
                reason = (
                    f"inside the {width}x{height} image it is less than {MIN_BOX_SIDE:g} pixel wide or tall"
                )
            else:
                kept.append([x0, y0, x1 - x0, y1 - y0, score])
        if reason is not None:
            messages.append(f"{image}: person box {_format_box(box)} (x, y, w, h, score) skipped: {reason}")
    return np.asarray(kept, dtype=np.float64).reshape(-1, 5), messages


def image_id_of(name: str, position: int, all_numeric: bool) -> int:
    """The COCO image id of an image: its file name's number (``000000000785.jpg`` -> 785) when every
    name of the input is a number, else its position in the sorted input."""
    return int(Path(name).stem) if all_numeric else position


def names_are_numeric(names: Iterable[str]) -> bool:
    """Whether every file stem is a distinct number (COCO's ``<id>.jpg`` naming)."""
    stems = [Path(n).stem for n in names]
    return all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)


def load_boxes_file(path: str | Path) -> tuple[dict[str, np.ndarray], bool]:
    """A boxes file for ``boxpose-predict boxes=...``, in either of two forms.

    - A JSON object mapping an image's name (its path relative to the input folder, or for a video the
      frame number) to a list of ``[x, y, w, h]`` or ``[x, y, w, h, score]``. An image the file does not
      name is taken as one person filling the image.
    - A detection results list as ``scripts/make_detections.py`` and the HRNet/SimpleBaseline files
      write it: ``[{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score"(, "file_name")}]``.
      Entries are matched to images by ``file_name`` when present, else by image id (the number of a
      COCO file name, ``000000000785.jpg`` -> 785; for a video the frame number). Non-person entries
      (category_id != 1) are ignored; an image the file does not name has no person.

    Returns:
        (key -> (N, 5) boxes, whether unnamed images are one whole-image person). Keys are image names
        (object form, or entries with ``file_name``) or ``"id:<image_id>"`` (list form).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"boxes file not found: {file}")
    try:
        raw = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from None
    if isinstance(raw, dict):
        boxes = {}
        for name, entries in raw.items():
            rows = []
            for entry in entries if isinstance(entries, list) else [None]:
                if not _is_box(entry, (4, 5)):
                    raise ValueError(
                        f"{file}: each box of {name!r} must be [x, y, w, h] or [x, y, w, h, score] "
                        f"numbers, got {entry!r}"
                    )
                rows.append([float(v) for v in entry] + ([1.0] if len(entry) == 4 else []))
            boxes[str(name)] = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        return boxes, True
    if isinstance(raw, list):
        grouped: dict[str, list[list[float]]] = {}
        for i, det in enumerate(raw):
            if (
                not isinstance(det, dict)
                or "bbox" not in det
                or ("image_id" not in det and "file_name" not in det)
            ):
                raise ValueError(
                    f"{file} entry {i}: expected an object with image_id (or file_name), bbox, score"
                )
            if det.get("category_id", 1) != 1:
                continue
            if not _is_box(det["bbox"], (4,)) or not _is_number(det.get("score", 1.0)):
                raise ValueError(f"{file} entry {i}: bbox must be 4 numbers [x, y, w, h] and score a number")
            key = str(det["file_name"]) if "file_name" in det else f"id:{int(det['image_id'])}"
            grouped.setdefault(key, []).append([*map(float, det["bbox"]), float(det.get("score", 1.0))])
        return {k: np.asarray(v, dtype=np.float64) for k, v in grouped.items()}, False
    raise ValueError(
        f"{file}: expected a JSON object mapping image names to lists of [x, y, w, h(, score)], or a "
        "JSON list of detections {image_id, category_id, bbox, score}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_box(entry: Any, lengths: Sequence[int]) -> bool:
    return isinstance(entry, list) and len(entry) in lengths and all(_is_number(v) for v in entry)
