"""``boxpose-predict``: detect people, estimate their poses, draw them and write them as COCO results.

Inputs (``input=``): an image, a folder of images, a glob of images (``'photos/**/*.jpg'``), or a video.
Person boxes: a boxes file (``boxes=``), else a detector (``detector=<name>``, :mod:`boxpose.detect`),
else the whole image as one person; every box is checked (:func:`boxpose.detect.clean_person_boxes`).

Outputs (in ``output_dir``, created only once the inputs, the checkpoint and the detector are found):

- each image with its people drawn (per-person colours, joints above ``score_threshold``), at its path
  relative to the input folder with its own name and suffix (``x.jpg`` and ``x.png`` stay apart); for a
  video, ``<name>_pose.mp4`` (H.264) when OpenCV's writer can encode H.264, else ``<name>_pose.avi``
  (MJPG), at the input's frame rate; the summary says which;
- ``predictions.json``: every person in the COCO keypoint results format, strict JSON:
  ``{"image_id", "category_id": 1, "keypoints": [x1, y1, s1, ...], "score", "bbox": [x, y, w, h],
  "box_score", "image_file"}`` (plus ``"frame"`` for a video) in original-image pixels. ``image_id`` is
  the file name's number when every input name is one (COCO's ``000000000785.jpg`` -> 785), else the
  image's position in the sorted input; for a video the frame number. ``score`` is the box score times
  the mean keypoint confidence above 0.2, as in COCO evaluation.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from boxpose.builders import build_predictor
from boxpose.detect import PersonDetector, as_box_array, build_detector, clean_person_boxes, load_boxes_file
from boxpose.detect.boxes import image_id_of, names_are_numeric
from boxpose.engine import distributed
from boxpose.engine.memory import retain_freed_memory
from boxpose.evaluation.coco import rescore
from boxpose.viz.draw import draw_people

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
GLOB_CHARACTERS = "*?["
DEFAULT_FPS = 25.0  # when a video does not say its frame rate


@dataclass
class Inputs:
    """What ``input=`` names: image files (with their names relative to a common folder) or a video."""

    images: list[Path]
    names: list[str]
    video: Path | None = None


def find_inputs(source: str) -> Inputs:
    """Resolve ``input=`` to image files or a video; a clear error when there is nothing to read."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        return Inputs(files, [p.name for p in files])
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return Inputs([], [], video=path)
        return Inputs([path], [path.name])
    if any(c in source for c in GLOB_CHARACTERS):
        files = sorted(
            Path(p) for p in glob.glob(source, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) match {source}")
        base = Path(os.path.commonpath([str(p.parent) for p in files]))
        return Inputs(files, [p.relative_to(base).as_posix() for p in files])
    raise FileNotFoundError(f"input not found: {path}")


def read_frames(inputs: Inputs, max_frames: int | None) -> Iterator[tuple[int, str, np.ndarray]]:
    """(position, name, BGR image) of each readable image, or of each video frame (name = frame number)."""
    if inputs.video is None:
        for position, (file, name) in enumerate(zip(inputs.images, inputs.names)):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                warnings.warn(
                    f"boxpose-predict: cannot read image {file}; skipped", RuntimeWarning, stacklevel=2
                )
                continue
            yield position, name, image
        return
    capture = cv2.VideoCapture(str(inputs.video))
    frame = 0
    while max_frames is None or frame < max_frames:
        ok, image = capture.read()
        if not ok:
            break
        yield frame, str(frame), image
        frame += 1
    capture.release()


def video_properties(video: Path) -> tuple[float, int]:
    """(frames per second, frame count) of a video; a clear error when OpenCV cannot open it."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {video}")
    fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return (fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS), count


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: FFmpeg prints its failed encoder probes there, not through Python."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def open_video_writer(stem: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path, str]:
    """A writer for ``stem`` + ``.mp4`` in H.264 when OpenCV's build can encode it, else ``.avi`` in MJPG
    (which every OpenCV build writes). Returns (writer, path, codec name)."""
    for fourcc, suffix, codec in (("avc1", ".mp4", "H.264"), ("MJPG", ".avi", "MJPG")):
        path = stem.with_name(stem.name + suffix)
        with _quiet_stderr():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, path, codec
        writer.release()
        path.unlink(missing_ok=True)
    raise RuntimeError(f"OpenCV cannot write {stem.name} here: neither H.264 nor MJPG is available")


def _detector_from_config(cfg: dict[str, Any], device: str) -> PersonDetector | None:
    options = cfg.get("detector") or {}
    if not options.get("name"):
        return None
    return build_detector(
        options["name"],
        weights=str(options.get("weights", "default")),
        score_thr=float(options.get("score_thr", 0.5)),
        device=str(options.get("device") or device),
        min_size=options.get("min_size"),
        max_size=options.get("max_size"),
        batch_size=int(options.get("batch_size", 4)),
    )


def predict(cfg: dict[str, Any], detector: PersonDetector | None = None) -> dict[str, Any]:
    """Run ``boxpose-predict`` with a resolved configuration (the plain dict of ``configs/predict.yaml``).

    Args:
        detector: a detector callable (:mod:`boxpose.detect`) to use instead of ``cfg["detector"]``.
    """
    source = str(cfg["input"])
    inputs = find_inputs(source)
    fps, frame_count = video_properties(inputs.video) if inputs.video is not None else (None, 0)
    boxes_file, unnamed_is_whole_image = None, True
    if cfg.get("boxes"):
        boxes_file, unnamed_is_whole_image = load_boxes_file(cfg["boxes"])
    device = distributed.setup(cfg.get("device", "auto"))
    evaluate_cfg = cfg.get("evaluate") or {}
    predictor = build_predictor(
        cfg["checkpoint"], device, prepare=bool(cfg.get("prepare", True)),
        flip_test=bool(evaluate_cfg.get("flip_test", True)),
        flip_shift=int(evaluate_cfg.get("flip_shift", 1)), decode=str(evaluate_cfg.get("decode", "quarter")),
        batch_size=int(evaluate_cfg.get("batch_size", 32)),
    )  # fmt: skip
    if boxes_file is not None:
        detector = None  # the boxes file overrides the detector
    elif detector is None:
        detector = _detector_from_config(cfg, str(device))
    stem = Path(source.rstrip("/")).stem if not any(c in source for c in GLOB_CHARACTERS) else "glob"
    output_dir = Path(cfg.get("output_dir") or Path("outputs") / "predict" / stem)
    for file, name in zip(inputs.images, inputs.names):
        if (output_dir / name).resolve() == file.resolve():
            raise ValueError(
                f"output_dir={output_dir} would overwrite the input image {file}; choose another"
            )
    output_dir.mkdir(parents=True, exist_ok=True)

    numeric = inputs.video is None and names_are_numeric(inputs.names)
    max_frames = cfg.get("max_frames")
    total = len(inputs.images) if inputs.video is None else frame_count
    total = min(total, max_frames) if max_frames is not None and total else total
    chunk_size = getattr(detector, "batch_size", 4) if detector is not None else 1
    threshold = float(cfg.get("score_threshold", 0.2))
    results: list[dict[str, Any]] = []
    writer, video_path, codec, frames = None, None, None, 0
    progress = tqdm(total=total or None, desc="predict", unit="frame" if inputs.video else "image")
    frame_iter = read_frames(inputs, max_frames)
    while chunk := [item for _, item in zip(range(chunk_size), frame_iter)]:
        if detector is not None:
            detections = [as_box_array(d) for d in detector([image for _, _, image in chunk])]
        for i, (position, name, image) in enumerate(chunk):
            height, width = image.shape[:2]
            image_id = position if inputs.video is not None else image_id_of(name, position, numeric)
            if detector is not None:
                candidates = detections[i]
            elif boxes_file is not None:
                candidates = _boxes_from_file(boxes_file, name, image_id)
                if candidates is None:
                    candidates = whole_image(width, height) if unnamed_is_whole_image else np.zeros((0, 5))
            else:
                candidates = whole_image(width, height)
            where = f"{inputs.video.name} frame {name}" if inputs.video else name
            boxes, messages = clean_person_boxes(candidates, width, height, where)
            for message in messages:
                warnings.warn(message, RuntimeWarning, stacklevel=2)
            keypoints = predictor.predict(image, boxes[:, :4]) if len(boxes) else np.zeros((0, 0, 3))
            drawn = draw_people(image, list(keypoints), predictor.spec, threshold, boxes, person_colours=True)
            if inputs.video is not None:
                if writer is None:
                    writer, video_path, codec = open_video_writer(
                        output_dir / f"{inputs.video.stem}_pose", fps, (width, height)
                    )
                writer.write(drawn)
            else:
                target = output_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(target), drawn):
                    raise ValueError(f"cannot write {target}")
            results.extend(_coco_results(image_id, name, inputs.video is not None, boxes, keypoints))
            frames += 1
            progress.update(1)
    progress.close()
    if writer is not None:
        writer.release()
    predictions = output_dir / "predictions.json"
    predictions.write_text(json.dumps(results, allow_nan=False))
    summary: dict[str, Any] = {
        "images": frames,
        "persons": len(results),
        "output_dir": str(output_dir),
        "predictions": str(predictions),
    }
    if inputs.video is not None:
        summary.update({"video": str(video_path) if video_path else None, "codec": codec, "fps": fps})
    print(json.dumps(summary))
    return summary


def whole_image(width: int, height: int) -> np.ndarray:
    """The (1, 5) box of a person filling the image, score 1."""
    return np.array([[0.0, 0.0, float(width), float(height), 1.0]])


def _boxes_from_file(boxes_file: dict[str, np.ndarray], name: str, image_id: int) -> np.ndarray | None:
    """An image's boxes in a boxes file (by name, else by image id); None when the file does not name it."""
    found = boxes_file.get(name)
    return found if found is not None else boxes_file.get(f"id:{image_id}")


def _coco_results(
    image_id: int, name: str, is_frame: bool, boxes: np.ndarray, keypoints: np.ndarray
) -> list[dict[str, Any]]:
    """One image's persons as COCO keypoint results (see the module docstring)."""
    results = []
    for box, person in zip(boxes, keypoints):
        entry = {
            "image_id": int(image_id),
            "category_id": 1,
            "keypoints": [round(float(v), 3) for v in person.reshape(-1)],
            "score": float(rescore(box[4], person[:, 2])),
            "bbox": [round(float(v), 2) for v in box[:4]],
            "box_score": float(box[4]),
            "image_file": name,
        }
        if is_frame:
            entry["frame"] = int(image_id)
        results.append(entry)
    return results


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each on the command line (skipped boxes, unreadable images)."""
    print(f"boxpose-predict: warning: {message}", file=sys.stderr)


@hydra.main(version_base=None, config_path="pkg://boxpose._configs", config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            predict(OmegaConf.to_container(cfg, resolve=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"boxpose-predict: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    retain_freed_memory()
    _hydra_main()


if __name__ == "__main__":
    main()
