"""``boxpose-predict``: keypoints on images, folders of images or videos, drawn and written as JSON.

Outputs (in ``output_dir``): each image with the skeletons drawn (``<name>.jpg``; for a video, one
``<name>_pose.mp4``), and ``predictions.json``: a list of ``{"image": name, "people": [{"box": [x, y,
w, h], "score": s, "keypoints": [[x, y, confidence], ...]}]}`` in original-image pixels.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from boxpose.engine import distributed
from boxpose.engine.predictor import Predictor
from boxpose.viz.draw import draw_people

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def load_boxes(path: str | None) -> dict[str, np.ndarray]:
    """The boxes file: image name (or frame number) -> (P, 5) x, y, w, h, score."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"boxes file not found: {file}")
    try:
        raw = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"{file}: expected a JSON object mapping image names to lists of [x, y, w, h(, score)]"
        )
    boxes = {}
    for name, entries in raw.items():
        rows = []
        for entry in entries if isinstance(entries, list) else [None]:
            if not isinstance(entry, list) or len(entry) not in (4, 5):
                raise ValueError(f"{file}: each box of {name!r} must be [x, y, w, h] or [x, y, w, h, score]")
            rows.append([float(v) for v in entry] + ([1.0] if len(entry) == 4 else []))
        boxes[str(name)] = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return boxes


def iterate_inputs(source: str, max_frames: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR image) for an image, every image of a folder (sorted), or every frame of a video."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                print(f"boxpose-predict: cannot read {file}; skipped", file=sys.stderr)
                continue
            yield file.name, image
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"cannot open video {path}")
        frame = 0
        while max_frames is None or frame < max_frames:
            ok, image = capture.read()
            if not ok:
                break
            yield str(frame), image
            frame += 1
        capture.release()
    else:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {path}")
        yield path.name, image


def predict(cfg: dict[str, Any]) -> dict[str, Any]:
    source = Path(cfg["input"])
    is_video = source.suffix.lower() in VIDEO_SUFFIXES
    output_dir = Path(cfg.get("output_dir") or Path("outputs") / "predict" / source.stem)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = distributed.setup(cfg.get("device", "auto"))
    predictor = Predictor.from_checkpoint(
        cfg["checkpoint"],
        device,
        prepare=bool(cfg.get("prepare", True)),
        flip_test=bool(cfg.get("flip_test", True)),
    )
    boxes = load_boxes(cfg.get("boxes"))
    threshold = float(cfg.get("score_threshold", 0.2))
    records, writer = [], None
    for name, image in tqdm(iterate_inputs(str(source), cfg.get("max_frames")), desc="predict", unit="image"):
        person_boxes = boxes.get(name, np.zeros((0, 5)))
        if len(person_boxes) == 0:
            person_boxes = np.array([[0.0, 0.0, image.shape[1], image.shape[0], 1.0]])
        keypoints = predictor.predict(image, person_boxes[:, :4])
        drawn = draw_people(image, list(keypoints), predictor.spec, threshold)
        if is_video:
            if writer is None:
                writer = cv2.VideoWriter(
                    str(output_dir / f"{source.stem}_pose.mp4"),
                    cv2.VideoWriter_fourcc(*"mp4v"),
                    25,
                    (image.shape[1], image.shape[0]),
                )
            writer.write(drawn)
        else:
            cv2.imwrite(str(output_dir / (Path(name).stem + ".jpg")), drawn)
        records.append({
            "image": name,
            "people": [
                {"box": [float(v) for v in box[:4]], "score": float(box[4]),
                 "keypoints": [[float(v) for v in joint] for joint in person]}
                for box, person in zip(person_boxes, keypoints)
            ],
        })  # fmt: skip
    if writer is not None:
        writer.release()
    (output_dir / "predictions.json").write_text(json.dumps(records))
    summary = {
        "images": len(records),
        "output_dir": str(output_dir),
        "predictions": str(output_dir / "predictions.json"),
    }
    print(json.dumps(summary))
    return summary


@hydra.main(version_base=None, config_path="pkg://boxpose._configs", config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        predict(OmegaConf.to_container(cfg, resolve=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"boxpose-predict: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
