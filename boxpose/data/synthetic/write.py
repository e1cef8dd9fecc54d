"""Writing a synthetic dataset to disk in the real layouts (:mod:`boxpose.data.layout`), rendering images in
worker processes, and caching: a set is generated once per parameters, under a file lock.

Generation is deterministic: image ``i`` of a split is drawn from ``numpy.random.default_rng([seed,
split code, i])``, whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from boxpose.data.layout import (
    COCO_ANNOTATION_FILES,
    COCO_DETECTION_FOLDER,
    COCO_IMAGE_FOLDERS,
    MPII_ANNOTATION_FILES,
    MPII_GT_MAT,
    MPII_IMAGE_FOLDER,
)
from boxpose.data.synthetic.annotate import (
    coco_annotations,
    coco_categories,
    mpii_annotations,
    simulated_detections,
)
from boxpose.data.synthetic.params import GENERATOR_VERSION, SyntheticParams
from boxpose.data.synthetic.render import render_scene
from boxpose.evaluation.mpii import MPIIGroundTruth, save_mpii_gt

KINDS = ("mpii", "coco")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
MARKER_FILE = "synthetic.json"
# The simulated person detections of COCO val and test-dev, under COCO_DETECTION_FOLDER.
DETECTION_FILES = {
    "val": "synthetic_val2017_detections.json",
    "test": "synthetic_test-dev2017_detections.json",
}


def _image_id(split: str, i: int) -> int:
    return SPLIT_CODES[split] * 1_000_000 + i + 1


def _render_task(task: tuple[str, str, int, SyntheticParams, str]) -> dict:
    """Render image ``i`` of ``split``, write its JPEG, return its annotations (runs in worker processes)."""
    kind, split, i, params, out_dir = task
    rng = np.random.default_rng([params.seed, SPLIT_CODES[split], i])
    scene = render_scene(rng, params)
    image_id = _image_id(split, i)
    name = f"{image_id:09d}.jpg" if kind == "mpii" else f"{image_id:012d}.jpg"
    ok, buf = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for synthetic image {name}")
    Path(out_dir, name).write_bytes(buf.tobytes())
    h, w = scene.image.shape[:2]
    if kind == "mpii":
        return {"entries": mpii_annotations(scene, name, rng)}
    anns = coco_annotations(scene, image_id)
    return {
        "image": {"id": image_id, "file_name": name, "width": w, "height": h},
        "annotations": anns,
        "detections": simulated_detections(anns, image_id, w, h, rng),
    }


def _render_split(
    kind: str, split: str, count: int, params: SyntheticParams, out_dir: Path, workers: int, progress: bool
) -> Iterator[dict]:
    """The results of :func:`_render_task` for images 0..count-1 of ``split``, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(kind, split, i, params, str(out_dir)) for i in range(count)]
    bar = tqdm(total=count, desc=f"synthetic {kind} {split}", unit="img", disable=not progress)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for t in tasks:
            yield _render_task(t)
            bar.update()
    else:
        # Fork (spawn would re-run an unguarded calling script in every worker). No OpenCV pool thread may
        # be alive at the fork, or a child can deadlock on the pool's lock: run OpenCV single-threaded
        # meanwhile (the children inherit that, which is what they want anyway).
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for result in pool.imap(_render_task, tasks, chunksize=8):
                    yield result
                    bar.update()
        finally:
            cv2.setNumThreads(threads)
    bar.close()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def _write_mpii_split(root: Path, split: str, results: Iterator[dict]) -> None:
    """The split's JSON entries (test: image, center, scale only) and, for val, the ground-truth .mat."""
    entries = [e for r in results for e in r["entries"]]
    headboxes = np.array([e.pop("_headbox") for e in entries])
    if split == "test":
        entries = [{k: e[k] for k in ("image", "center", "scale")} for e in entries]
    _write_json(root / MPII_ANNOTATION_FILES[split], entries)
    if split == "val":
        joints = np.array([e["joints"] for e in entries], dtype=np.float64) - 1.0
        visible = np.array([e["joints_vis"] for e in entries]) > 0
        save_mpii_gt(root / MPII_GT_MAT, MPIIGroundTruth.from_zero_based(joints, visible, headboxes))


def _write_coco_split(root: Path, split: str, results: list[dict]) -> None:
    """The split's annotation file (test: the image-info file) and, for val and test, the detections."""
    info = {
        "description": "boxpose synthetic COCO-format person keypoints",
        "version": str(GENERATOR_VERSION),
    }
    data = {
        "info": info,
        "licenses": [],
        "images": [r["image"] for r in results],
        "categories": coco_categories(),
    }
    if split != "test":
        data["annotations"] = [a for r in results for a in r["annotations"]]
    _write_json(root / COCO_ANNOTATION_FILES[split], data)
    if split in DETECTION_FILES:
        _write_json(
            root / COCO_DETECTION_FOLDER / DETECTION_FILES[split],
            [d for r in results for d in r["detections"]],
        )


def generate_synthetic(kind: str, root: str | Path, params: SyntheticParams, progress: bool = True) -> None:
    """Write a synthetic dataset of ``kind`` ("mpii" or "coco") into ``root`` (which should be empty)."""
    if kind not in KINDS:
        raise ValueError(f"synthetic kind must be one of {KINDS}, got {kind!r}")
    root = Path(root)
    workers = params.workers or min(8, os.cpu_count() or 1)
    splits = [("train", params.num_train), ("val", params.num_val), ("test", params.num_test)]
    for split, count in splits:
        if count <= 0:
            if split != "test":
                raise ValueError(f"synthetic num_{split} must be positive, got {count}")
            continue
        if kind == "mpii":
            images = root / MPII_IMAGE_FOLDER
            _write_mpii_split(
                root, split, _render_split(kind, split, count, params, images, workers, progress)
            )
        else:
            images = root / COCO_IMAGE_FOLDERS[split]
            results = list(_render_split(kind, split, count, params, images, workers, progress))
            _write_coco_split(root, split, results)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX), so that concurrent processes generate only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def ensure_synthetic(
    kind: str, root: str | Path, params: Mapping[str, Any] | SyntheticParams, progress: bool = True
) -> Path:
    """Make sure ``root`` holds the synthetic ``kind`` dataset for ``params``; generate it if not.

    The data are (re)generated when ``root`` has no ``synthetic.json`` or one with other parameters or
    another generator version; otherwise nothing is done. A relative ``root`` is relative to the current
    working directory. A non-empty ``root`` without ``synthetic.json`` is never overwritten.

    Returns:
        ``root`` as a Path.
    """
    params = SyntheticParams.from_mapping(params)
    root = Path(root)
    want = params.identity(kind)
    want["hash"] = hashlib.sha256(json.dumps(want, sort_keys=True).encode()).hexdigest()[:16]
    if _read_marker(root) == want:
        return root
    with _file_lock(root.parent / f".{root.name}.lock"):
        if _read_marker(root) == want:  # another process generated it while we waited
            return root
        if root.exists() and _read_marker(root) is None and any(root.iterdir()):
            raise FileExistsError(
                f"{root} is not empty and holds no {MARKER_FILE}; refusing to generate "
                "synthetic data over it (choose another data.root)"
            )
        tmp = root.parent / f".{root.name}.generating"
        shutil.rmtree(tmp, ignore_errors=True)
        generate_synthetic(kind, tmp, params, progress=progress)
        _write_json(tmp / MARKER_FILE, want)
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    return root
