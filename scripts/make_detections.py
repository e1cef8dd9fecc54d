"""Person detections for top-down evaluation, in the HRNet/SimpleBaseline detection-file format.

    python scripts/make_detections.py --images /data/coco/val2017 \\
        --ann /data/coco/annotations/person_keypoints_val2017.json \\
        --out /data/coco/person_detection_results/boxpose_val2017_fasterrcnn_v2.json
    boxpose-eval checkpoint=best.pt data=coco data.root=/data/coco \\
        data.det_file=/data/coco/person_detection_results/boxpose_val2017_fasterrcnn_v2.json

    python scripts/make_detections.py --images my_photos/ --out my_photos_dets.json   # any folder
    python scripts/make_detections.py --images val2017/ --detector fcos_resnet50_fpn --weights fcos.pth ...

Writes a JSON list ``[{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score", "file_name"}]``
(the fields of ``COCO_val2017_detections_AP_H_56_person.json``, plus the image's file name), read by
``boxpose-eval data.det_file=...`` and ``boxpose-predict boxes=...``. Image ids: with ``--ann``, the
annotation file's ids, and only its images are detected (a missing image is an error); without, the
number of each file name when all are numbers (``000000000785.jpg`` -> 785), else the position in the
sorted folder.

With ``--ann`` the person box AP of the detections is printed (pycocotools ``COCOeval``, ``bbox``,
person category; the annotation's crowd boxes are ignored regions as in COCO) and returned.
The detector is one of torchvision's (``boxpose.detect.DETECTORS``) or ``module:factory``
(see ``boxpose/detect/__init__.py``); its weights as for ``boxpose-predict detector.weights=``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from boxpose.data.coco import load_coco
from boxpose.detect import DETECTORS, PersonDetector, as_box_array, build_detector
from boxpose.detect.boxes import image_id_of, names_are_numeric

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
BBOX_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def list_images(images: Path, ann_file: Path | None) -> list[tuple[int, Path]]:
    """(image id, file) of every image to detect, sorted by file name."""
    if not images.is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    if ann_file is not None:
        coco = load_coco(ann_file)
        pairs = sorted(
            ((int(i), images / info["file_name"]) for i, info in coco.imgs.items()), key=lambda p: p[1].name
        )
        missing = [file for _, file in pairs if not file.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(pairs)} images of {ann_file} are not in {images} "
                f"(first: {missing[0].name})"
            )
        return pairs
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    numeric = names_are_numeric(p.name for p in files)
    return [(image_id_of(p.name, i, numeric), p) for i, p in enumerate(files)]


def detect_folder(
    detector: PersonDetector, images: Sequence[tuple[int, Path]], batch_size: int, progress: bool = True
) -> list[dict[str, Any]]:
    """Detections of every image, in the detection-file format (image order, then decreasing score)."""
    detections: list[dict[str, Any]] = []
    bar = tqdm(total=len(images), desc="detect", unit="image", disable=not progress)
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pixels = []
        for _, file in chunk:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read image {file}")
            pixels.append(image)
        for (image_id, file), found in zip(chunk, detector(pixels)):
            for x, y, w, h, score in as_box_array(found):
                detections.append({
                    "image_id": image_id, "category_id": 1,
                    "bbox": [round(float(v), 2) for v in (x, y, w, h)], "score": round(float(score), 5),
                    "file_name": file.name,
                })  # fmt: skip
        bar.update(len(chunk))
    bar.close()
    return detections


def person_box_ap(ann_file: Path, detections: list[dict[str, Any]]) -> dict[str, float]:
    """COCOeval ``bbox`` statistics (AP, AP50, ... as fractions) of person detections."""
    from pycocotools.cocoeval import COCOeval

    coco = load_coco(ann_file)
    if not detections:
        return dict.fromkeys(BBOX_STATS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        results = coco.loadRes([{k: v for k, v in d.items() if k != "file_name"} for d in detections])
        evaluation = COCOeval(coco, results, "bbox")
        evaluation.params.catIds = [1]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(value) for name, value in zip(BBOX_STATS, evaluation.stats)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", required=True, type=Path, help="folder of images (e.g. val2017/)")
    parser.add_argument("--ann", type=Path, help="COCO annotation file: its image ids, and the person AP")
    parser.add_argument("--out", required=True, type=Path, help="detection file to write (.json)")
    parser.add_argument(
        "--detector", default="fasterrcnn_resnet50_fpn_v2", help=f"{', '.join(DETECTORS)} or module:factory"
    )
    parser.add_argument(
        "--weights", default="default", help="default (torchvision cache/download), a path, random"
    )
    parser.add_argument("--score-thr", type=float, default=0.05, help="keep boxes with score >= this")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--batch-size", type=int, default=4, help="images per detector forward pass")
    parser.add_argument("--min-size", type=int, default=None, help="detector's shorter image side (800)")
    parser.add_argument("--max-size", type=int, default=None, help="detector's longer side limit (1333)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.ann is not None and not args.ann.is_file():
            raise FileNotFoundError(f"annotation file not found: {args.ann}")
        images = list_images(args.images, args.ann)
        detector = build_detector(
            args.detector,
            args.weights,
            args.score_thr,
            args.device,
            args.min_size,
            args.max_size,
            args.batch_size,
        )
        detections = detect_folder(detector, images, args.batch_size, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as exc:
        print(f"make_detections: error: {exc}", file=sys.stderr)
        sys.exit(2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(detections, allow_nan=False))
    summary: dict[str, Any] = {"images": len(images), "detections": len(detections), "out": str(args.out)}
    print(f"{len(detections)} person detections in {len(images)} images written to {args.out}")
    if args.ann is not None:
        stats = person_box_ap(args.ann, detections)
        summary["bbox"] = stats
        print(
            f"person box AP {100 * stats['AP']:.1f} (AP50 {100 * stats['AP50']:.1f}, AP75 "
            f"{100 * stats['AP75']:.1f}, AR100 {100 * stats['AR100']:.1f}) on {args.ann.name}"
        )
    print(json.dumps(summary))
    return summary


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
