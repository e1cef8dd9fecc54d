"""What every top-down dataset shares: person records, image reading with failure accounting, the
sample dict, per-sample random generators, error messages that say what to do.

A dataset is a list of :class:`PersonRecord` (one person crop each) plus a
:class:`~boxpose.data.pipeline.TopDownPipeline`. ``dataset[i]`` is a dict::

    {"image": float32 (3, H, W) ImageNet-normalised RGB, "target": float32 (K, h, w),
     "target_weight": float32 (K,), "joints": float32 (K, 3) crop pixels x, y, visibility,
     "meta": {"image_id": int, "image_file": str, "index": int, "center": float32 (2,),
              "scale": float32 (2,) pixels, "rotation": float, "score": float, "flipped": bool}}

which ``torch.utils.data.default_collate`` batches. ``meta["index"]`` is the record's position in the
annotation file order (the ground-truth order the evaluators expect).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from boxpose.codec.heatmap import HeatmapCodec
from boxpose.data.pipeline import TopDownPipeline
from boxpose.keypoints import KeypointSpec

README_HINT = "see data/README.md in the boxpose repository for how to obtain and lay out the datasets"


class AnnotationError(ValueError):
    """An annotation file has an entry of the wrong shape or with non-finite numbers."""


class ImageReadError(RuntimeError):
    """Too many images of a dataset could not be read."""


def require_path(path: str | Path | None, what: str, expected: str, is_dir: bool = False) -> Path:
    """``Path(path)`` made absolute if it exists; else a FileNotFoundError naming the path, what belongs
    there and the README.

    Args:
        path: the path to check.
        what: what it is, e.g. "MPII training annotations".
        expected: what should be there, e.g. "a JSON list of persons (annot/train.json)".
        is_dir: require a directory rather than a file.
    """
    if path is None or str(path) in ("", "???"):
        raise FileNotFoundError(f"{what}: no path given (expected {expected}); {README_HINT}")
    p = Path(path).expanduser().absolute()
    if (is_dir and p.is_dir()) or (not is_dir and p.is_file()):
        return p
    kind = "folder" if is_dir else "file"
    other = " (it is a file)" if p.is_file() else " (it is a folder)" if p.exists() else ""
    raise FileNotFoundError(f"{what} not found: {kind} {p}{other}. Expected {expected}; {README_HINT}")


def read_image(path: str) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR image, or None if it cannot be read. EXIF orientation is ignored, because
    COCO and MPII annotations refer to the stored pixel grid (as HRNet reads them)."""
    return cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


@dataclass
class PersonRecord:
    """One person to crop, in 0-based image pixels (pixel centres on integers).

    Attributes:
        image_file: path of the image.
        image_id: integer image id (COCO id; MPII: the numeric file name).
        center: (2,) crop centre. scale: (2,) crop box (w, h) in pixels.
        joints: (K, 2) joint x, y (0 where not visible). visible: (K,) float32 in {0, 1}.
        score: box score (1.0 for ground-truth boxes).
        index: position in the annotation file / ground-truth order.
    """

    image_file: str
    image_id: int
    center: np.ndarray
    scale: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    score: float = 1.0
    index: int = 0


def subset_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded, sorted random subset of ``range(n)`` of size ``max(1, round(fraction * n))``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(n)
    k = max(1, round(fraction * n))
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


class TopDownDataset(Dataset):
    """Base class of the top-down datasets: person records + an injected pipeline + robust image reading.

    Subclasses parse their annotation format into :class:`PersonRecord` and call ``super().__init__``.

    Args:
        records: the persons, in annotation order.
        spec: the dataset's keypoint layout (``dataset.spec``: flip pairs, names, ...); the pipeline must
            use the same one.
        pipeline: turns an image and a record into a sample (:class:`~boxpose.data.pipeline.TopDownPipeline`:
            the run's codec, the training augmentation or None for evaluation, the colour order).
        fraction: keep a seeded random subset of this fraction of the records (the builder passes
            ``train_fraction`` for the training split only).
        fraction_seed: seed of that subset.
        max_failure_fraction: unreadable images are skipped (another sample is returned, and every
            person of that image is counted as failed: :meth:`failed_records`); when more than this
            fraction of the dataset's images have failed, reading raises :class:`ImageReadError`.
    """

    def __init__(
        self,
        records: list[PersonRecord],
        spec: KeypointSpec,
        pipeline: TopDownPipeline,
        *,
        fraction: float = 1.0,
        fraction_seed: int = 0,
        max_failure_fraction: float = 0.01,
    ) -> None:
        if pipeline.spec.name != spec.name:
            raise ValueError(
                f"{type(self).__name__} has the {spec.name!r} keypoint layout but its pipeline was built for "
                f"{pipeline.spec.name!r}"
            )
        self.spec = spec
        self.pipeline = pipeline
        self.codec: HeatmapCodec = pipeline.codec
        self.train = pipeline.augment is not None  # augmenting (training) or not (evaluation)
        self.input_size = self.codec.input_size
        self.heatmap_size = self.codec.heatmap_size
        self.num_records_total = len(records)
        self.records = [records[i] for i in subset_indices(len(records), fraction, fraction_seed)]
        if not self.records:
            raise ValueError(f"{type(self).__name__} has no person records")
        if self.train and not any(np.any(r.visible > 0) for r in self.records):
            raise AnnotationError(
                f"{type(self).__name__}: none of the {len(self.records)} training persons has a visible "
                "joint, so the loss would be 0 and nothing learned; check the annotations' visibility "
                "flags (MPII joints_vis, COCO keypoints v)"
            )
        self.max_failure_fraction = max_failure_fraction
        # Image number of each record: failures are counted per image (several persons share one).
        files = [r.image_file for r in self.records]
        numbers = {f: i for i, f in enumerate(dict.fromkeys(files))}
        self._image_of_record = np.array([numbers[f] for f in files], dtype=np.int64)
        self.num_images = len(numbers)
        # Which records failed to read, shared with DataLoader workers (shared memory survives pickling to
        # workers), so that the failure count is over the whole dataset, not per worker process.
        self._failed = torch.zeros(len(self.records), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_failed(self) -> int:
        """How many records' images could not be read so far (over all worker processes)."""
        return int(self._failed.sum())

    @property
    def num_failed_images(self) -> int:
        """How many distinct images could not be read so far (over all worker processes)."""
        return len(np.unique(self._image_of_record[self._failed.numpy()]))

    def failed_records(self) -> list[int]:
        """Positions (in ``self.records``) of the persons whose image could not be read so far."""
        return [int(i) for i in np.flatnonzero(self._failed.numpy())]

    def _sample_rng(self, key: int | tuple[int, int, int]) -> np.random.Generator | None:
        """The sample's random generator (None when not augmenting).

        For a key ``(index, seed, epoch)`` (from :class:`~boxpose.data.loader.EpochSampler`) it is
        ``default_rng([seed, epoch, index])``, a function of the key alone. For a plain index it is seeded
        from torch: the worker's seed in a DataLoader worker, else a draw from torch's global generator,
        so that ``torch.manual_seed`` makes direct use repeatable too.
        """
        if not self.train:
            return None
        if isinstance(key, tuple):
            index, seed, epoch = key
            return np.random.default_rng([seed, epoch, index])
        info = get_worker_info()
        seed = info.seed if info is not None else int(torch.randint(0, 2**62, ()).item())
        return np.random.default_rng([seed, key])

    def _load(self, index: int) -> tuple[PersonRecord, np.ndarray]:
        """The record at ``index`` and its image, or, if that image cannot be read, the next readable
        record's (deterministically), warning about and counting the failure."""
        n = len(self.records)
        for attempt in range(n):
            i = (index + attempt) % n
            record = self.records[i]
            if self._failed[i]:
                continue
            image = read_image(record.image_file)
            if image is not None:
                return record, image
            same_image = self._image_of_record == self._image_of_record[i]
            self._failed[torch.from_numpy(same_image)] = True
            failed = self.num_failed_images
            warnings.warn(
                f"cannot read image {record.image_file} (record {record.index}); skipping its "
                f"{int(same_image.sum())} person(s) ({failed} of {self.num_images} images unreadable so far)",
                RuntimeWarning,
                stacklevel=2,
            )
            if failed > self.max_failure_fraction * self.num_images:
                raise ImageReadError(
                    f"{failed} of {self.num_images} images of {type(self).__name__} could not be read (more "
                    f"than data.max_failure_fraction={self.max_failure_fraction:g}), last: "
                    f"{record.image_file}. Check the image folder and the files; {README_HINT}"
                )
        raise ImageReadError(f"no image of {type(self).__name__} could be read; {README_HINT}")

    def __getitem__(self, key: int | tuple[int, int, int]) -> dict:
        """The sample at ``key``: an index, or a training sampler's ``(index, seed, epoch)``."""
        index = key[0] if isinstance(key, tuple) else key
        record, image = self._load(index)
        out = self.pipeline(
            image, record.joints, record.visible, record.center, record.scale, self._sample_rng(key)
        )
        return {
            "image": out["image"],
            "target": out["target"],
            "target_weight": out["target_weight"],
            "joints": out["joints"],
            "meta": {
                "image_id": int(record.image_id),
                "image_file": record.image_file,
                "index": int(record.index),
                "center": out["center"],
                "scale": out["scale"],
                "rotation": float(out["rotation"]),
                "score": float(record.score),
                "flipped": bool(out["flipped"]),
            },
        }


def as_numbers(value: object, what: str) -> np.ndarray:
    """``value`` (a number or nested list of numbers from an annotation file) as a float64 array; an
    :class:`AnnotationError` naming ``what`` (file and entry) when it holds anything else (strings,
    ragged lists, null)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{what} must be numbers, got {value!r:.80} ({e})") from None


def check_finite(values: np.ndarray, what: str) -> None:
    """Raise :class:`AnnotationError` naming ``what`` if ``values`` has NaN or infinite entries."""
    if not np.all(np.isfinite(values)):
        raise AnnotationError(f"{what} has NaN or infinite values: {np.asarray(values).tolist()}")
