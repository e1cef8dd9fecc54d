"""MPII evaluation: PCKh, the MPII ``.mat`` file formats, and the MPII test-set submission file.

Conventions
-----------
Everything in this module is in the **MPII (MATLAB) convention**:

- pixel coordinates are **1-based** (the centre of the top-left pixel is (1, 1)), as in the MPII
  annotations, ``gt_valid.mat`` and SimpleBaseline/HRNet's ``pred.mat``;
- joints are in MPII's native order (0 r_ankle ... 15 l_wrist; :data:`boxpose.keypoints.MPII`);
- people are in the order of the ground-truth file.

boxpose itself works with 0-based pixels (see :mod:`boxpose.codec.affine`). Convert its predictions
with :func:`to_mpii_convention` (adds 1) before scoring or writing them::

    gt = load_mpii_gt("gt_valid.mat")
    result = compute_pckh(to_mpii_convention(preds0), gt)   # preds0: (N, 16, 2) or (N, 16, 3), 0-based
    print(format_pckh_table(result))

This module reads and writes plain arrays and files only, so it can score a ``pred.mat`` that boxpose
did not produce (``python -m boxpose.evaluation.mpii --pred PRED.mat --gt GT.mat``).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io as sio
from scipy.io.matlab import MatReadError

from boxpose.keypoints import MPII

__all__ = [
    "MAT_JOINT_NAMES",
    "PCKH_COLUMNS",
    "MPIIGroundTruth",
    "MPIITestLayout",
    "compute_pckh",
    "format_pckh_table",
    "load_mpii_gt",
    "load_mpii_test_layout",
    "load_pred_mat",
    "main",
    "save_mpii_gt",
    "save_mpii_test_submission",
    "save_pred_mat",
    "to_mpii_convention",
]

HEAD_SIZE_FACTOR = 0.6  # head size = 0.6 x head-box diagonal ("SC_BIAS" in the reference code)

# The joint abbreviations of the MPII evaluation .mat files (`dataset_joints` of gt_valid.mat),
# keyed by boxpose's joint names so that their order follows boxpose.keypoints.MPII.
_MAT_ABBREVIATION = {
    "r_ankle": "rank", "r_knee": "rkne", "r_hip": "rhip", "l_hip": "lhip", "l_knee": "lkne",
    "l_ankle": "lank", "pelvis": "pelv", "thorax": "thor", "upper_neck": "neck", "head_top": "head",
    "r_wrist": "rwri", "r_elbow": "relb", "r_shoulder": "rsho", "l_shoulder": "lsho", "l_elbow": "lelb",
    "l_wrist": "lwri",
}  # fmt: skip
MAT_JOINT_NAMES: tuple[str, ...] = tuple(_MAT_ABBREVIATION[name] for name in MPII.joint_names)

PCKH_COLUMNS: tuple[str, ...] = (*MPII.pckh_groups, "Mean", "Mean@0.1")

_GT_FIELDS = ("jnt_missing", "pos_gt_src", "headboxes_src")


def to_mpii_convention(preds0: np.ndarray) -> np.ndarray:
    """boxpose's 0-based joint coordinates -> MPII's 1-based ones.

    Args:
        preds0: (..., 16, 2) or (..., 16, 3) array; x, y in 0-based image pixels (a third column,
            e.g. a confidence, is dropped).

    Returns:
        float64 array (..., 16, 2) of 1-based x, y: ``preds0[..., :2] + 1``.
    """
    return np.asarray(preds0, dtype=np.float64)[..., :2] + 1.0


@dataclass
class MPIIGroundTruth:
    """The MPII PCKh ground truth (the content of ``gt_valid.mat``), one row per person.

    Attributes:
        joints: (N, 16, 2) float64, x, y in 1-based pixels (values at missing joints are meaningless).
        missing: (N, 16) bool, True where the joint is not annotated.
        headboxes: (N, 2, 2) float64, two opposite corners ``[[x1, y1], [x2, y2]]`` of the head box.
        joint_names: the file's joint abbreviations (:data:`MAT_JOINT_NAMES`, MPII order).
    """

    joints: np.ndarray
    missing: np.ndarray
    headboxes: np.ndarray
    joint_names: tuple[str, ...] = MAT_JOINT_NAMES

    def __post_init__(self) -> None:
        self.joints = np.asarray(self.joints, dtype=np.float64)
        self.missing = np.asarray(self.missing).astype(bool)
        self.headboxes = np.asarray(self.headboxes, dtype=np.float64)
        self.joint_names = tuple(str(name) for name in self.joint_names)
        n = self.joints.shape[0] if self.joints.ndim == 3 else -1
        expected = {"joints": (n, 16, 2), "missing": (n, 16), "headboxes": (n, 2, 2)}
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if n < 0 or actual != shape:
                raise ValueError(f"MPIIGroundTruth.{name} must have shape {_shape_text(shape)}, got {actual}")
        if self.joint_names != MAT_JOINT_NAMES:
            raise ValueError(
                f"joint names {list(self.joint_names)} are not the MPII order {list(MAT_JOINT_NAMES)}"
            )

    @classmethod
    def from_zero_based(
        cls, joints: np.ndarray, visible: np.ndarray, headboxes: np.ndarray
    ) -> MPIIGroundTruth:
        """From boxpose's 0-based arrays: joints (N, 16, 2), visible (N, 16), headboxes (N, 2, 2).

        Joints that are not visible are stored as (0, 0), as in the MPII files.
        """
        visible = np.asarray(visible, dtype=bool)
        joints = np.where(visible[..., np.newaxis], np.asarray(joints, dtype=np.float64) + 1.0, 0.0)
        return cls(joints=joints, missing=~visible, headboxes=np.asarray(headboxes, dtype=np.float64) + 1.0)

    @property
    def num_people(self) -> int:
        return self.joints.shape[0]

    def joints_zero_based(self) -> np.ndarray:
        """(N, 16, 2) joints in boxpose's 0-based pixels."""
        return self.joints - 1.0

    def head_sizes(self) -> np.ndarray:
        """(N,) PCKh normaliser of each person: 0.6 x the head-box diagonal, in pixels."""
        return HEAD_SIZE_FACTOR * np.linalg.norm(self.headboxes[:, 1] - self.headboxes[:, 0], axis=1)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("N" if s < 0 else str(s) for s in shape) + ")"


def _loadmat(path: str | Path, **kwargs) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such .mat file: {path}")
    try:
        return sio.loadmat(str(path), **kwargs)
    except (MatReadError, ValueError, TypeError, OSError) as e:
        raise ValueError(f"{path} is not a readable MATLAB .mat file: {e}") from e


def _with_person_axis(array: np.ndarray, ndim: int) -> np.ndarray:
    # MATLAB drops trailing singleton dimensions, so a one-person file stores (16, 2) for (16, 2, 1).
    return array[..., np.newaxis] if array.ndim == ndim - 1 else array


def _read_joint_names(value: np.ndarray, path: Path) -> tuple[str, ...]:
    """`dataset_joints` as stored by MATLAB (a 1x16 cell of strings) or as a char/str array."""
    flat = np.ravel(value)
    if value.dtype == object:
        return tuple(str(np.ravel(item)[0]).strip() if np.size(item) else "" for item in flat)
    if value.dtype.kind in "US":
        return tuple(str(item).strip() for item in flat)
    raise ValueError(f"{path}: field 'dataset_joints' must hold joint-name strings, got dtype {value.dtype}")


def load_mpii_gt(path: str | Path) -> MPIIGroundTruth:
    """Read an MPII PCKh ground-truth file in the ``gt_valid.mat`` layout of SimpleBaseline/HRNet.

    Fields read: ``jnt_missing`` (16, N), ``pos_gt_src`` (16, 2, N) 1-based x, y, ``headboxes_src``
    (2, 2, N), and ``dataset_joints`` (1, 16) joint abbreviations, which must be in MPII order
    (:data:`MAT_JOINT_NAMES`); a file without ``dataset_joints`` is taken to be in MPII order.
    Other fields (e.g. ``pos_pred_src``) are ignored.
    """
    path = Path(path)
    mat = _loadmat(path)
    absent = [key for key in _GT_FIELDS if key not in mat]
    if absent:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(
            f"{path}: not an MPII ground-truth file: missing field(s) {absent}; it has {present}. "
            f"Expected {list(_GT_FIELDS)} (and 'dataset_joints')."
        )
    pos = _with_person_axis(np.asarray(mat["pos_gt_src"], dtype=np.float64), 3)
    missing = np.asarray(mat["jnt_missing"])
    headboxes = _with_person_axis(np.asarray(mat["headboxes_src"], dtype=np.float64), 3)
    if pos.ndim != 3 or pos.shape[:2] != (16, 2):
        raise ValueError(f"{path}: 'pos_gt_src' must have shape (16, 2, N), got {pos.shape}")
    n = pos.shape[2]
    if missing.shape == (16,):
        missing = missing[:, np.newaxis]
    if missing.shape != (16, n):
        raise ValueError(
            f"{path}: 'jnt_missing' must have shape (16, {n}) like 'pos_gt_src', got {missing.shape}"
        )
    if headboxes.shape != (2, 2, n):
        raise ValueError(
            f"{path}: 'headboxes_src' must have shape (2, 2, {n}) like 'pos_gt_src', got {headboxes.shape}"
        )
    names = _read_joint_names(mat["dataset_joints"], path) if "dataset_joints" in mat else MAT_JOINT_NAMES
    if names != MAT_JOINT_NAMES:
        raise ValueError(
            f"{path}: 'dataset_joints' {list(names)} is not the MPII order {list(MAT_JOINT_NAMES)}"
        )
    return MPIIGroundTruth(
        joints=pos.transpose(2, 0, 1),
        missing=missing.T.astype(bool),
        headboxes=headboxes.transpose(2, 0, 1),
        joint_names=names,
    )


def _savemat_deterministic(path: str | Path, arrays: dict) -> None:
    """``scipy.io.savemat`` without the creation time in the header, so equal data gives equal files."""
    buffer = io.BytesIO()
    sio.savemat(buffer, arrays, do_compression=False, oned_as="row")
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by boxpose".ljust(116, b" ")  # the header's descriptive text
    Path(path).write_bytes(bytes(data))


def save_mpii_gt(path: str | Path, gt: MPIIGroundTruth) -> None:
    """Write ``gt`` in the ``gt_valid.mat`` layout that :func:`load_mpii_gt` (and HRNet) read.

    The file holds no creation time, so the same ground truth always gives the same bytes.
    """
    names = np.empty((1, len(gt.joint_names)), dtype=object)
    names[0, :] = list(gt.joint_names)
    _savemat_deterministic(
        path,
        {
            "dataset_joints": names,
            "jnt_missing": gt.missing.T.astype(np.uint8),
            "pos_gt_src": gt.joints.transpose(1, 2, 0),
            "headboxes_src": gt.headboxes.transpose(1, 2, 0),
        },
    )


def _check_preds(preds: np.ndarray, what: str = "predictions") -> np.ndarray:
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[1:] != (16, 2):
        raise ValueError(
            f"{what} must have shape (N, 16, 2) (1-based x, y in MPII joint order), got {preds.shape}"
        )
    return preds


def save_pred_mat(path: str | Path, preds: np.ndarray) -> None:
    """Write predictions as HRNet's ``pred.mat``: key ``preds``, (N, 16, 2) float64, 1-based x, y."""
    sio.savemat(str(path), {"preds": _check_preds(preds)})


def load_pred_mat(path: str | Path) -> np.ndarray:
    """Read a ``pred.mat`` (key ``preds``, (N, 16, 2), 1-based x, y) as float64 (N, 16, 2)."""
    path = Path(path)
    mat = _loadmat(path)
    if "preds" not in mat:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(
            f"{path}: no field 'preds' (it has {present}); a pred.mat holds 'preds' of shape (N, 16, 2)"
        )
    return _check_preds(mat["preds"], what=f"{path}: 'preds'")


def _pckh_per_joint(errors: np.ndarray, visible: np.ndarray, threshold: float) -> np.ndarray:
    """(16,) percentage of visible joints with normalised error <= threshold (NaN: joint never visible)."""
    correct = (errors <= threshold) & visible  # NaN errors (NaN predictions) compare False: wrong
    counts = visible.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * correct.sum(axis=0) / counts


def _table_columns(per_joint: np.ndarray) -> dict[str, float]:
    return {name: float(np.mean(per_joint[list(joints)])) for name, joints in MPII.pckh_groups.items()}


def _weighted_mean(per_joint: np.ndarray, counts: np.ndarray) -> float:
    """Mean over all joints but pelvis and thorax, weighted by visible counts (a mean over instances)."""
    weights = counts.astype(np.float64)
    weights[[MPII.index("pelvis"), MPII.index("thorax")]] = 0.0
    if weights.sum() == 0:
        return float("nan")
    return float(np.sum(np.where(weights > 0, per_joint, 0.0) * weights) / weights.sum())


def compute_pckh(preds: np.ndarray, gt: MPIIGroundTruth, threshold: float = 0.5) -> dict:
    """PCKh of ``preds`` against ``gt``, as the standard MPII evaluation (SimpleBaseline/HRNet ``evaluate``).

    A joint is correct if ``||pred - gt|| / (0.6 * head-box diagonal) <= threshold`` (inclusive) and
    it is annotated; per-joint PCKh = 100 * correct / annotated. The table columns average the left and
    right joint of each group in :data:`boxpose.keypoints.MPII.pckh_groups` (Head = head top only).
    ``Mean`` averages all joints except pelvis and thorax, weighted by their annotated counts (upper
    neck counts in ``Mean`` although it has no column). A NaN prediction counts as wrong.

    ``Mean@0.1`` is ``Mean`` at threshold **0.10**. SimpleBaseline and HRNet report ``pckAll[11]``, which
    is threshold 0.11 (HRNet issue #167), so their ``Mean@0.1`` is higher than ours for the same
    predictions; mmpose's current evaluator uses 0.10 as we do.

    Args:
        preds: (N, 16, 2) x, y in **1-based** pixels (MPII convention; see :func:`to_mpii_convention`),
            MPII joint order, people in the order of ``gt``.
        gt: the ground truth (:func:`load_mpii_gt`).
        threshold: the PCKh threshold of the columns and of ``Mean``.

    Returns:
        ``{"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1": float,
        "threshold": float, "num_people": int, "columns@0.1": {column: float},
        "per_joint": {joint name: float}, "per_joint@0.1": {joint name: float},
        "joint_counts": {joint name: int}}``; values are percentages (0-100), NaN for a joint with no
        annotated instance.
    """
    preds = _check_preds(preds)
    if preds.shape[0] != gt.num_people:
        raise ValueError(
            f"predictions cover {preds.shape[0]} people but the ground truth has {gt.num_people}; "
            "they must be in the same order, one row per ground-truth person"
        )
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive number, got {threshold}")
    visible = ~gt.missing
    head_sizes = gt.head_sizes()
    bad = np.flatnonzero(~(head_sizes > 0) & visible.any(axis=1))
    if bad.size:
        box = gt.headboxes[bad[0]].tolist()
        raise ValueError(f"person {bad[0]} has a degenerate head box {box} (zero size)")
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.linalg.norm(preds - gt.joints, axis=2) / head_sizes[:, np.newaxis]  # (N, 16)
    counts = visible.sum(axis=0)
    per_joint = _pckh_per_joint(errors, visible, threshold)
    per_joint_01 = _pckh_per_joint(errors, visible, 0.1)
    names = MPII.joint_names
    return {
        **_table_columns(per_joint),
        "Mean": _weighted_mean(per_joint, counts),
        "Mean@0.1": _weighted_mean(per_joint_01, counts),
        "threshold": float(threshold),
        "num_people": int(gt.num_people),
        "columns@0.1": _table_columns(per_joint_01),
        "per_joint": {name: float(v) for name, v in zip(names, per_joint)},
        "per_joint@0.1": {name: float(v) for name, v in zip(names, per_joint_01)},
        "joint_counts": {name: int(c) for name, c in zip(names, counts)},
    }


def format_pckh_table(result: dict) -> str:
    """An aligned table (title, column names, values) of the PCKh columns, Mean and Mean@0.1."""
    widths = [max(len(c), 6) for c in PCKH_COLUMNS]
    header = "  ".join(c.rjust(w) for c, w in zip(PCKH_COLUMNS, widths))
    values = "  ".join(f"{result[c]:.2f}".rjust(w) for c, w in zip(PCKH_COLUMNS, widths))
    title = f"MPII PCKh@{result['threshold']:g} ({result['num_people']} people)"
    return "\n".join([title, header, values])


# ---------------------------------------------------------------------------------------------------
# MPII test set: the official submission file
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MPIITestLayout:
    """The structure of the official MPII test annotation list that a submission must mirror.

    It is ``RELEASE.annolist(RELEASE.img_train == 0)`` of the public ``mpii_human_pose_v1_u12_1.mat``
    (the test joints themselves are private); read it with :func:`load_mpii_test_layout`.

    Attributes:
        image_names: one name per test image, in the order of the official test annotation list.
        objpos: per test image, one item per ``annorect`` entry: its ``objpos`` (x, y), or None where it
            has none. The official evaluation pairs predictions with ground truth by walking the entries
            that have an objpos, so a submission must have exactly the same ones.
        single_person: per test image, the 1-based ``annorect`` indices of the single-person subset
            that ``evaluatePCKh.m`` scores (``RELEASE.single_person``).
    """

    image_names: tuple[str, ...]
    objpos: tuple[tuple[tuple[float, float] | None, ...], ...]
    single_person: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not len(self.image_names) == len(self.objpos) == len(self.single_person):
            raise ValueError(
                f"MPIITestLayout: {len(self.image_names)} image names, {len(self.objpos)} annorect "
                f"lists and {len(self.single_person)} single-person lists; they must be equally long"
            )
        if len(set(self.image_names)) != len(self.image_names):
            raise ValueError("MPIITestLayout: image names must be unique (they identify the test images)")
        for i, singles in enumerate(self.single_person):
            for r in singles:
                if not self.is_person(i, r):
                    raise ValueError(
                        f"MPIITestLayout: image {self.image_names[i]!r}: single-person rect {r} is not an "
                        f"annorect entry with an objpos (the image has {len(self.objpos[i])} entries)"
                    )

    def is_person(self, image_index: int, rect_id: int) -> bool:
        """Whether 1-based ``rect_id`` is an annorect entry with an objpos in test image ``image_index``."""
        rects = self.objpos[image_index]
        return 1 <= rect_id <= len(rects) and rects[rect_id - 1] is not None


def _as_list(value) -> list:
    """A value read with ``loadmat(squeeze_me=True)``: one item, an array of items, or empty -> list."""
    if not _has_value(value):
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _has_value(value) -> bool:
    return value is not None and not (isinstance(value, np.ndarray) and value.size == 0)


def _field(struct, name: str):
    """Field ``name`` of a MATLAB struct read with ``struct_as_record=False``, or None if absent or empty."""
    value = getattr(struct, name, None)
    return value if _has_value(value) else None


def _number(value) -> float | None:
    """The first element of a MATLAB number as a float, or None if absent or empty."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64).ravel()
    return float(array[0]) if array.size else None


@dataclass(frozen=True)
class MPIIReleaseRect:
    """One ``annorect`` entry of the official release, in the file's 1-based pixel coordinates.

    Attributes:
        objpos: (x, y) of the person's rough centre, or None where the entry has none.
        scale: person scale (box side / 200 px), or None.
        joints: (16, 2) float64 joints by MPII joint id, [-1, -1] where the entry has no point.
        joints_vis: (16,) int64, 1 where the entry has a point for the joint (annotated, not "visible").
        headbox: ((x1, y1), (x2, y2)) of the head box, or None.
        has_points: whether the entry has any ``annopoints``.
    """

    objpos: tuple[float, float] | None
    scale: float | None
    joints: np.ndarray
    joints_vis: np.ndarray
    headbox: tuple[tuple[float, float], tuple[float, float]] | None
    has_points: bool


@dataclass(frozen=True)
class MPIIRelease:
    """The official annotation file ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE``), as read by
    :func:`read_mpii_release`.

    Attributes:
        image_names: ``annolist(i).image.name`` per image, in file order.
        img_train: (N,) int64, 1 for training images, 0 for test images.
        single_person: per image, the 1-based ``annorect`` indices of the single-person benchmark.
        annorects: per image, its ``annorect`` entries in order (rect id r is ``annorects[i][r - 1]``).
    """

    image_names: tuple[str, ...]
    img_train: np.ndarray
    single_person: tuple[tuple[int, ...], ...]
    annorects: tuple[tuple[MPIIReleaseRect, ...], ...]


def _read_rect(rect) -> MPIIReleaseRect:
    objpos = _field(rect, "objpos")
    center = None
    if objpos is not None and _field(objpos, "x") is not None:
        center = (_number(_field(objpos, "x")), _number(_field(objpos, "y")))
    joints = np.full((MPII.num_joints, 2), -1.0)
    visible = np.zeros(MPII.num_joints, dtype=np.int64)
    annopoints = _field(rect, "annopoints")
    points = _as_list(_field(annopoints, "point")) if annopoints is not None else []
    for point in points:
        j = int(_number(_field(point, "id")))
        joints[j] = [_number(_field(point, "x")), _number(_field(point, "y"))]
        visible[j] = 1
    headbox = None
    if _field(rect, "x1") is not None:
        headbox = (
            (_number(_field(rect, "x1")), _number(_field(rect, "y1"))),
            (_number(_field(rect, "x2")), _number(_field(rect, "y2"))),
        )
    return MPIIReleaseRect(center, _number(_field(rect, "scale")), joints, visible, headbox, bool(points))


def read_mpii_release(release_path: str | Path) -> MPIIRelease:
    """Read the official MPII annotation file ``mpii_human_pose_v1_u12_1.mat``: ``RELEASE.annolist``
    (``image.name``, ``annorect(r)`` with ``objpos``, ``scale``, head box ``x1 y1 x2 y2``,
    ``annopoints.point(k)`` with ``id``, ``x``, ``y``), ``RELEASE.img_train`` and ``RELEASE.single_person``.
    """
    path = Path(release_path)
    mat = _loadmat(path, struct_as_record=False, squeeze_me=True)
    if "RELEASE" not in mat:
        raise ValueError(f"{path}: no 'RELEASE' struct; expected the official mpii_human_pose_v1_u12_1.mat")
    release = mat["RELEASE"]
    try:
        annolist = _as_list(release.annolist)
        img_train = np.atleast_1d(np.asarray(release.img_train, dtype=np.int64)).ravel()
        single_person = _as_list(release.single_person)
    except AttributeError as e:
        raise ValueError(f"{path}: RELEASE lacks a field boxpose reads: {e}") from e
    if not len(annolist) == len(img_train) == len(single_person):
        raise ValueError(
            f"{path}: RELEASE.annolist ({len(annolist)}), img_train ({len(img_train)}) and "
            f"single_person ({len(single_person)}) differ in length"
        )
    names = []
    for annotation in annolist:
        image = _field(annotation, "image")
        names.append(str(_field(image, "name")) if image is not None else "")
    return MPIIRelease(
        image_names=tuple(names),
        img_train=img_train,
        single_person=tuple(
            tuple(int(r) for r in np.atleast_1d(np.asarray(entry, dtype=np.int64)).ravel())
            for entry in single_person
        ),
        annorects=tuple(
            tuple(_read_rect(rect) for rect in _as_list(_field(annotation, "annorect")))
            for annotation in annolist
        ),
    )


def load_mpii_test_layout(release_path: str | Path) -> MPIITestLayout:
    """Read the test-set layout from the official MPII annotation file ``mpii_human_pose_v1_u12_1.mat``
    (:func:`read_mpii_release`): the images with ``img_train == 0``, in file order."""
    release = read_mpii_release(release_path)
    test_images = np.flatnonzero(release.img_train == 0)
    return MPIITestLayout(
        tuple(release.image_names[i] for i in test_images),
        tuple(tuple(rect.objpos for rect in release.annorects[i]) for i in test_images),
        tuple(release.single_person[i] for i in test_images),
    )


def _struct_array(records: list[dict], fields: Sequence[str]) -> np.ndarray:
    """A 1 x n MATLAB struct array for scipy.io.savemat (a field a record lacks is written as [])."""
    array = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for j, record in enumerate(records):
        for f in fields:
            array[0, j][f] = record.get(f, np.zeros((0, 0)))
    return array


def save_mpii_test_submission(
    path: str | Path,
    preds: np.ndarray,
    image_names: Sequence[str],
    rect_ids: Sequence[int],
    layout: MPIITestLayout,
    allow_missing: bool = False,
) -> None:
    """Write MPII test-set predictions as the official single-person submission ``pred_keypoints_mpii.mat``.

    The MPII test labels are private: test PCKh is computed only by the dataset maintainers. Per the
    MPII evaluation page (human-pose.mpi-inf.mpg.de, "Evaluation"), e-mail this file to the address
    given there (at the time of writing: eldar at mpi-inf.mpg.de; older copies of the page also list
    leonid at mpi-inf.mpg.de); at most four submissions per method, at least 72 hours apart.

    What is written (what the official toolkit's ``evaluatePCKh.m`` loads): a variable ``pred``, a
    1 x M struct array with one entry per test image, in the order of ``layout`` (= the official
    ``annolist(RELEASE.img_train == 0)``; the toolkit asserts equal length). Entry ``pred(i)`` has
    ``image.name`` and ``annorect``, a struct array with as many entries as the official one. Each
    entry has ``objpos`` (copied from the official list: a struct with ``x``, ``y``, or ``[]``; the
    toolkit pairs predicted and ground-truth rects by walking the entries whose objpos is not empty)
    and ``annopoints``: for a predicted person a struct whose ``point`` is a 1 x 16 struct array with
    fields ``id`` (0-based MPII joint id, 0 = r_ankle ... 15 = l_wrist), ``x`` and ``y`` (1-based
    pixels of the full image); ``[]`` for a rect without prediction. The toolkit scores the rects
    listed in ``RELEASE.single_person`` only, looks points up by ``id``, and scores a missing joint as
    wrong. This is the layout of the MPII instructions (``pred = annolist_test``, then
    ``pred(imgidx).annorect(ridx).annopoints.point(pidx).x/.y``, ``save('pred_keypoints_mpii.mat',
    'pred')``) and of anibali/eval-mpii-pose's ``prepareTestResults.m``.

    Not verified here: the file has not been run through MATLAB/Octave's ``evaluatePCKh.m`` (neither is
    available), and the other ``annolist`` fields (``scale``, head rectangles, ``frame_sec``,
    ``vididx``) are not written, because the toolkit reads them from its own ground truth only.

    Args:
        path: output file; name it ``pred_keypoints_mpii.mat`` as the MPII instructions do.
        preds: (N, 16, 2) x, y in **1-based** pixels of the full image, MPII joint order.
        image_names: (N,) image file name of each prediction (e.g. ``"005808361.jpg"``).
        rect_ids: (N,) **1-based** ``annorect`` index of each predicted person in its image (the values
            of ``RELEASE.single_person``).
        layout: the official test-list structure (:func:`load_mpii_test_layout`).
        allow_missing: write the file even if some single-person test person has no prediction.
    """
    preds = _check_preds(preds)
    n = preds.shape[0]
    if len(image_names) != n or len(rect_ids) != n:
        raise ValueError(f"{n} predictions but {len(image_names)} image names and {len(rect_ids)} rect ids")
    image_index = {name: i for i, name in enumerate(layout.image_names)}
    by_image: dict[int, dict[int, np.ndarray]] = {}
    for name, rect_id, joints in zip(image_names, rect_ids, preds):
        if name not in image_index:
            raise ValueError(f"image {name!r} is not in the MPII test annotation list")
        i, r = image_index[name], int(rect_id)
        if not layout.is_person(i, r):
            raise ValueError(
                f"image {name!r}: rect id {r} is not the 1-based annorect index of a person with an "
                f"objpos (the image has {len(layout.objpos[i])} annorect entries)"
            )
        if r in by_image.setdefault(i, {}):
            raise ValueError(f"image {name!r}, rect {r} has more than one prediction")
        by_image[i][r] = joints
    absent = [
        (layout.image_names[i], r)
        for i, rs in enumerate(layout.single_person)
        for r in rs
        if r not in by_image.get(i, {})
    ]
    if absent and not allow_missing:
        total = sum(len(rs) for rs in layout.single_person)
        raise ValueError(
            f"{len(absent)} of {total} single-person test people have no prediction (first: image "
            f"{absent[0][0]!r}, rect {absent[0][1]}); they would be scored as wrong "
            "(pass allow_missing=True to write the file anyway)"
        )

    images = []
    for i, name in enumerate(layout.image_names):
        rects = []
        for r, objpos in enumerate(layout.objpos[i], start=1):
            rect: dict = {}
            if objpos is not None:
                rect["objpos"] = {"x": objpos[0], "y": objpos[1]}
            if r in by_image.get(i, {}):
                joints = by_image[i][r]
                points = [{"id": float(j), "x": float(x), "y": float(y)} for j, (x, y) in enumerate(joints)]
                rect["annopoints"] = {"point": _struct_array(points, ("id", "x", "y"))}
            rects.append(rect)
        annorect = _struct_array(rects, ("objpos", "annopoints")) if rects else np.zeros((0, 0))
        images.append({"image": {"name": name}, "annorect": annorect})
    sio.savemat(str(path), {"pred": _struct_array(images, ("image", "annorect"))})


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m boxpose.evaluation.mpii --pred PRED.mat --gt GT.mat [--threshold 0.5]``.

    Prints the PCKh table, then, as the last line, a JSON object with the columns, ``Mean`` and
    ``Mean@0.1``. Returns 0, or 2 with a message on stderr when an input is wrong.
    """
    parser = argparse.ArgumentParser(
        prog="python -m boxpose.evaluation.mpii",
        description="MPII PCKh of a pred.mat (key 'preds', (N, 16, 2), 1-based) against a gt_valid.mat.",
    )
    parser.add_argument("--pred", required=True, help="predictions .mat: 'preds', (N, 16, 2), 1-based")
    parser.add_argument("--gt", required=True, help="ground-truth .mat in the gt_valid.mat layout")
    parser.add_argument("--threshold", type=float, default=0.5, help="PCKh threshold (default 0.5)")
    args = parser.parse_args(argv)
    try:
        result = compute_pckh(load_pred_mat(args.pred), load_mpii_gt(args.gt), threshold=args.threshold)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_pckh_table(result))
    print(json.dumps({c: result[c] for c in PCKH_COLUMNS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
