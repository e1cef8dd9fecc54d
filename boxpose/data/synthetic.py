"""A synthetic, learnable pose dataset written to disk in the MPII and COCO formats.

No real dataset can be downloaded where boxpose is built and tested, so this module draws one: JPEG
images plus the exact files the real loaders read (HRNet-style MPII JSON and ``gt_valid.mat``; COCO
``person_keypoints_*.json`` and a person-detection results file). :class:`~boxpose.data.mpii.MPIIDataset`
and :class:`~boxpose.data.coco.COCODataset` read them with no special code path.

Figures
-------
Each person is a 3-D articulated body (pelvis, torso, neck, head with face, two arms with hands, two
legs with feet) with human proportions (varied per person) and joint angles sampled within human
limits (shoulder abduction/flexion, elbow flexion 0-145 degrees, hip flexion/abduction, knee flexion
backwards only, head tilt and turn). It is turned by a yaw angle about the vertical, tilted slightly,
projected orthographically, rotated in the image plane, scaled and placed. Limbs are tapered capsules
with outlines, drawn far-to-near (painter's algorithm) in per-person clothing and skin colours, on
textured, cluttered backgrounds (colour fields, stripes, grain, random shapes, limb-like distractors),
with occluders in front of people, then pixel noise and JPEG compression.

The left/right cue needs a large receptive field (the design goal)
------------------------------------------------------------------
Left and right limbs are drawn identically (same colours, same shapes, symmetric sleeves). Whether the
person's left arm appears on the image's left or right depends only on whether the figure faces the
camera or turns its back to it (yaw within ``max_yaw`` of 0 or of 180 degrees, 50/50), and that is shown
only *at the body's centre*: front-facing figures show a face (skin-coloured, with eyes, nose and mouth,
under the hair) and a light shirt front with an emblem; back-facing figures show hair over the whole head
and a dark spine stripe (feet also point the way the figure faces). So to label a wrist or an ankle as
left or right a network has to combine the limb's own appearance with evidence from the head and torso,
which is half a body away: the crop is 6 head-box diagonals wide (MPII's ``scale``), so a standing
person is ~100 px tall in a 128 px input (~200 px in 256) and a wrist is typically 30-100 input pixels
from the chest. A stack of 3x3 convolutions sees that far only after many layers; a large box filter sees
it in one. Everything is mirror symmetric in distribution (the cues are on the body's midline), so a
horizontally flipped sample with swapped left/right labels is another valid sample: flip augmentation
and the flip test are consistent, and they matter.

Annotation semantics
--------------------
- MPII: ``joints_vis`` = 1 for every joint inside the image (annotated, occluded or not), 0 (and
  ``[-1, -1]``) outside; head boxes are the square around the head (side 2.2 head radii);
  ``center``/``scale`` like MPII's ``objpos``/``scale``: ``scale * 200`` = 4.8 x the head box diagonal
  (the exact relation in the real annotations), ``center`` 15 * scale px above the middle of the
  joints, so that the loader's standard shift centres the crop. The PCKh threshold is then 5% of the
  crop side, as on MPII.
- COCO: ``v`` = 2 if the joint is inside the image and the figure itself is drawn there (its own limb,
  not an occluder, another person or another of its own limbs in front), 1 if inside but hidden, 0
  outside the image; face points (nose, eyes, ears) turned away from the camera are 0 (not labelled), as
  COCO annotators do for people seen from behind. ``bbox``/``area``/``segmentation`` come from the
  person's visible pixels; people hidden completely are not annotated; people without any labelled
  keypoint are kept (``num_keypoints`` 0), as in COCO, and dropped by the loader.

Files (``root`` is ``data/synthetic/<kind>`` by default, relative to the working directory)::

    mpii: images/<id>.jpg, annot/train.json, annot/valid.json, annot/gt_valid.mat, [annot/test.json]
    coco: train2017/, val2017/, [test2017/], annotations/person_keypoints_{train,val}2017.json,
          [annotations/image_info_test-dev2017.json],
          person_detection_results/synthetic_{val2017,test-dev2017}_detections.json
    both: synthetic.json (generator version and parameters; the data are regenerated when they change)

Generation is deterministic: image ``i`` of a split is drawn from ``numpy.random.default_rng([seed,
split, i])``, whatever the number of worker processes. Difficulty knobs: ``clutter``, ``occluders``,
``max_yaw``, ``roll_std``, ``pose_variety``, ``noise``, ``person_height``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from boxpose.evaluation.mpii import MPIIGroundTruth, save_mpii_gt
from boxpose.keypoints import COCO, MPII, KeypointSpec

GENERATOR_VERSION = 2  # bump whenever the drawing or the annotation rules change
KINDS = ("mpii", "coco")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
MARKER_FILE = "synthetic.json"

# Joints of the body model: MPII's 16 in MPII order, then COCO's face points.
BODY_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "nose", "l_eye", "r_eye",
    "l_ear", "r_ear",
)  # fmt: skip
J = {name: i for i, name in enumerate(BODY_JOINTS)}
FACE_JOINTS = ("nose", "l_eye", "r_eye", "l_ear", "r_ear")

# Drawn parts (ids within a person's label range) and, per joint, the parts that show it.
PARTS = (
    "torso", "head", "neck", "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot", "l_ear", "r_ear",
)  # fmt: skip
PART_ID = {name: i + 1 for i, name in enumerate(PARTS)}
LABELS_PER_PERSON = 32
HEADBOX_HALF_SIDE = 1.1  # MPII head box: a square of 2.2 head radii around the head
OCCLUDER_LABEL = 65535
JOINT_PARTS = {
    "pelvis": ("torso", "l_thigh", "r_thigh"), "thorax": ("torso", "neck"), "upper_neck": ("neck", "head"),
    "head_top": ("head",), "nose": ("head",), "l_eye": ("head",), "r_eye": ("head",),
    "l_ear": ("head", "l_ear"), "r_ear": ("head", "r_ear"),
}  # fmt: skip
for _s in ("l", "r"):
    JOINT_PARTS.update(
        {
            f"{_s}_shoulder": ("torso", f"{_s}_upper_arm"),
            f"{_s}_elbow": (f"{_s}_upper_arm", f"{_s}_forearm"),
            f"{_s}_wrist": (f"{_s}_forearm", f"{_s}_hand"),
            f"{_s}_hip": ("torso", f"{_s}_thigh"),
            f"{_s}_knee": (f"{_s}_thigh", f"{_s}_shin"),
            f"{_s}_ankle": (f"{_s}_shin", f"{_s}_foot"),
        }
    )


# (21, 32) bool: which part ids show each joint.
_JOINT_PART_MASK = np.zeros((len(BODY_JOINTS), LABELS_PER_PERSON), dtype=bool)
for _j, _name in enumerate(BODY_JOINTS):
    _JOINT_PART_MASK[_j, [PART_ID[p] for p in JOINT_PARTS[_name]]] = True


@dataclass(frozen=True)
class SyntheticParams:
    """Generation parameters (the ``synthetic:`` block of a data config).

    Attributes:
        seed: base seed; equal parameters give byte-identical files.
        num_train, num_val, num_test: images per split (test: no keypoints written; 0 = no test split).
        image_size: (width, height) of the images.
        people_per_image: (min, max) people per image (MPII: each person is an entry).
        person_height: (min, max) standing height as a fraction of the image height.
        truncation: how far (as a fraction of its size) a person's box may hang out of the image.
        max_yaw: degrees the body may turn away from facing the camera (or from facing away); 90 would
            include pure profiles, where left and right overlap.
        roll_std: standard deviation in degrees of the in-plane body rotation (clipped at 3x).
        pose_variety: 0..1, share of non-neutral poses (raised arms, bent legs, ...).
        clutter: number of background shapes (some of them limb-like distractors).
        occluders: mean number of occluding objects per person.
        noise: standard deviation of the pixel noise (0-255 scale).
        jpeg_quality: JPEG quality.
        workers: processes used to generate (0 = up to 8, one per core); not part of the data identity.
    """

    seed: int = 0
    num_train: int = 4000
    num_val: int = 500
    num_test: int = 0
    image_size: tuple[int, int] = (256, 256)
    people_per_image: tuple[int, int] = (1, 2)
    person_height: tuple[float, float] = (0.5, 0.85)
    max_yaw: float = 35.0
    roll_std: float = 10.0
    pose_variety: float = 0.4
    truncation: float = 0.05
    clutter: int = 6
    occluders: float = 0.15
    noise: float = 4.0
    jpeg_quality: int = 90
    workers: int = field(default=0, compare=False)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | SyntheticParams) -> SyntheticParams:
        """Build from a config mapping (lists become tuples); unknown keys are an error."""
        if isinstance(values, SyntheticParams):
            return values
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown synthetic data parameters {unknown}; known: {sorted(known)}")
        kwargs = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in values.items()}
        return cls(**kwargs)

    def identity(self, kind: str) -> dict[str, Any]:
        """What determines the generated files: generator version, kind and every parameter but workers."""
        params = asdict(self)
        params.pop("workers")
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        return {"generator_version": GENERATOR_VERSION, "kind": kind, "params": params}


# ------------------------------------------------------------------------------------------ body model

# Proportions in units of the standing height (head top to sole).
_PROPORTIONS = {
    "head_r": 0.068, "neck": 0.045, "torso": 0.29, "shoulder": 0.115, "hip": 0.075, "upper_arm": 0.175,
    "forearm": 0.15, "hand_r": 0.024, "thigh": 0.245, "shin": 0.245, "foot": 0.07, "torso_depth": 0.06,
}  # fmt: skip
# Half-widths (start, end) of the tapered limbs, same unit.
_WIDTHS = {
    "upper_arm": (0.032, 0.026), "forearm": (0.026, 0.019), "thigh": (0.05, 0.036), "shin": (0.034, 0.024),
    "neck": (0.026, 0.026), "foot": (0.02, 0.014),
}  # fmt: skip

_SKIN = ((180, 200, 240), (150, 180, 225), (110, 145, 200), (80, 110, 165), (55, 75, 115), (165, 195, 235))
_HAIR = ((25, 30, 40), (20, 20, 22), (40, 60, 95), (90, 165, 205), (45, 70, 150), (150, 150, 155))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else v


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _rotate(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate ``v`` about the unit ``axis`` by ``degrees`` (right-hand rule, Rodrigues)."""
    t = math.radians(degrees)
    return v * math.cos(t) + _cross(axis, v) * math.sin(t) + axis * np.dot(axis, v) * (1 - math.cos(t))


def _limb(
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    bend_towards: np.ndarray,
    bend: float,
    second_length: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end points of a two-segment limb whose second segment bends by ``bend`` degrees
    towards ``bend_towards`` (projected perpendicular to the first segment)."""
    middle = start + length * direction
    b = bend_towards - np.dot(bend_towards, direction) * direction
    b = _unit(b) if np.linalg.norm(b) > 1e-6 else _unit(_cross(direction, np.array([1.0, 0.0, 0.0])))
    t = math.radians(bend)
    return middle, middle + second_length * (math.cos(t) * direction + math.sin(t) * b)


def sample_body(rng: np.random.Generator, variety: float) -> dict[str, np.ndarray]:
    """A 3-D pose in the body frame: x = the person's left, y = up, z = the way the person faces.

    Returns points (3,) in units of the standing height: all BODY_JOINTS plus "head_c", the toes
    ("l_toe", "r_toe"), hand centres ("l_hand", "r_hand"), "emblem" (chest centre, front surface), the
    corners of the shirt's front panel ("panel_top_l", "panel_top_r", "panel_bot_l", "panel_bot_r"),
    "spine_top"/"spine_bot" (back surface), and the axes "face_fwd", "face_up", "torso_fwd" (unit).
    """
    p = {k: v * (1 + 0.05 * rng.standard_normal()) for k, v in _PROPORTIONS.items()}
    lat, up, fwd = np.eye(3)
    wild = rng.random() < variety

    # Torso: lean forward/back (about the lateral axis) and sideways (about the forward axis).
    lean_f = float(np.clip(rng.normal(0, 8 if wild else 4), -30, 30))
    lean_s = float(np.clip(rng.normal(0, 6 if wild else 3), -20, 20))
    t_up, t_lat, t_fwd = (_rotate(_rotate(a, lat, -lean_f), fwd, lean_s) for a in (up, lat, fwd))
    pts: dict[str, np.ndarray] = {"pelvis": np.zeros(3)}
    pts["thorax"] = p["torso"] * t_up
    pts["torso_fwd"] = t_fwd

    # Head: tilt and turn relative to the torso.
    tilt_f, tilt_s = rng.normal(0, 10), rng.normal(0, 8)
    turn = float(np.clip(rng.normal(0, 15), -45, 45))
    h_up = _rotate(_rotate(t_up, t_lat, -tilt_f), t_fwd, tilt_s)
    h_fwd = _rotate(_rotate(_rotate(t_fwd, t_lat, -tilt_f), t_fwd, tilt_s), h_up, turn)
    h_lat = _cross(h_up, h_fwd)
    r = p["head_r"]
    pts["upper_neck"] = pts["thorax"] + p["neck"] * h_up
    pts["head_c"] = pts["upper_neck"] + 0.95 * r * h_up
    pts["head_top"] = pts["head_c"] + r * h_up
    pts["face_fwd"], pts["face_up"] = h_fwd, h_up
    hc = pts["head_c"]
    pts["nose"] = hc + r * _unit(h_fwd - 0.1 * h_up)
    pts["l_eye"] = hc + r * _unit(0.8 * h_fwd + 0.25 * h_up + 0.38 * h_lat)
    pts["r_eye"] = hc + r * _unit(0.8 * h_fwd + 0.25 * h_up - 0.38 * h_lat)
    pts["l_ear"] = hc + r * _unit(h_lat - 0.05 * h_fwd)
    pts["r_ear"] = hc + r * _unit(-h_lat - 0.05 * h_fwd)
    pts["emblem"] = pts["thorax"] - 0.09 * t_up + p["torso_depth"] * t_fwd
    for name, end, across, along in (
        ("panel_top", pts["thorax"], 0.07, -0.03),
        ("panel_bot", np.zeros(3), 0.05, 0.03),
    ):
        for side, s in (("l", 1.0), ("r", -1.0)):
            pts[f"{name}_{side}"] = end + s * across * t_lat + along * t_up + p["torso_depth"] * t_fwd
    pts["spine_top"] = pts["thorax"] - 0.04 * t_up - p["torso_depth"] * t_fwd
    pts["spine_bot"] = 0.06 * t_up - p["torso_depth"] * t_fwd

    for side, s in (("l", 1.0), ("r", -1.0)):
        # Arm: abduct (sideways) about the torso's forward axis, flex (forwards) about its lateral axis.
        mode = rng.choice(3, p=[0.45, 0.35, 0.2]) if wild else 0
        abd = (rng.uniform(5, 35), rng.uniform(20, 100), rng.uniform(80, 170))[mode]
        flex = (rng.uniform(-25, 35), rng.uniform(-20, 90), rng.uniform(-10, 60))[mode]
        elbow = rng.uniform(0, 60) if mode == 0 else rng.uniform(0, 145)
        twist = rng.uniform(-20, 110)  # the elbow bends forwards (0) to across the body (90)
        shoulder = pts["thorax"] + s * p["shoulder"] * t_lat - 0.01 * t_up
        d = _rotate(_rotate(-t_up, t_fwd, s * abd), t_lat, -flex)
        bend_dir = math.cos(math.radians(twist)) * t_fwd - s * math.sin(math.radians(twist)) * t_lat
        elbow_pt, wrist = _limb(shoulder, d, p["upper_arm"], bend_dir, elbow, p["forearm"])
        pts[f"{side}_shoulder"], pts[f"{side}_elbow"], pts[f"{side}_wrist"] = shoulder, elbow_pt, wrist
        pts[f"{side}_hand"] = wrist + 0.8 * p["hand_r"] * _unit(wrist - elbow_pt)

        # Leg: the knee bends backwards only.
        mode = rng.choice(3, p=[0.55, 0.3, 0.15]) if wild else 0
        abd = (rng.uniform(-3, 15), rng.uniform(-5, 20), rng.uniform(0, 35))[mode]
        flex = (rng.uniform(-15, 25), rng.uniform(-35, 60), rng.uniform(30, 100))[mode]
        knee = (rng.uniform(0, 25), rng.uniform(0, 70), rng.uniform(40, 130))[mode]
        hip = s * p["hip"] * lat
        d = _rotate(_rotate(-up, fwd, s * abd), lat, -flex)
        knee_pt, ankle = _limb(hip, d, p["thigh"], -fwd, knee, p["shin"])
        pts[f"{side}_hip"], pts[f"{side}_knee"], pts[f"{side}_ankle"] = hip, knee_pt, ankle
        shin = _unit(ankle - knee_pt)
        toe_dir = fwd - np.dot(fwd, shin) * shin
        pts[f"{side}_toe"] = ankle + p["foot"] * _unit(_unit(toe_dir) + 0.3 * shin)
    pts["pelvis"] = 0.5 * (pts["l_hip"] + pts["r_hip"])
    pts["_head_r"] = np.array([r, 0.0, 0.0])
    pts["_torso_depth"] = np.array([p["torso_depth"], 0.0, 0.0])
    return pts


@dataclass
class Person:
    """A placed, projected figure.

    Attributes:
        joints: (21, 2) image x, y of BODY_JOINTS. depth: (21,) towards the camera (pixels).
        points: projected extra points (name -> (x, y)); depths: their depths.
        axes_z: depth components of the unit axes "face_fwd", "torso_fwd" (> 0: towards the camera).
        head_c, head_r: head centre (2,) and radius in pixels. height: standing height in pixels.
        facing_front: True if the torso faces the camera.
        slot: index of the person in the image (labels slot * 32 + part id).
    """

    joints: np.ndarray
    depth: np.ndarray
    points: dict[str, np.ndarray]
    depths: dict[str, float]
    axes: dict[str, np.ndarray]
    head_c: np.ndarray
    head_r: float
    height: float
    facing_front: bool
    slot: int
    colors: dict[str, tuple[int, int, int]]
    bbox: np.ndarray  # (4,) x0, y0, x1, y1 of the joints and head, pixels


def _view(rng: np.random.Generator, params: SyntheticParams) -> tuple[np.ndarray, float, bool]:
    """Camera rotation (3, 3) body -> camera (x right, y up, z towards the camera), roll, facing flag."""
    front = bool(rng.random() < 0.5)
    yaw = rng.uniform(-params.max_yaw, params.max_yaw) + (0.0 if front else 180.0)
    pitch = float(np.clip(rng.normal(0, 6), -15, 15))
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    roll = float(np.clip(rng.normal(0, params.roll_std), -3 * params.roll_std, 3 * params.roll_std))
    return r_pitch @ r_yaw, roll, front


def _colors(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    skin = np.array(_SKIN[rng.integers(len(_SKIN))], dtype=float)
    hair = np.array(_HAIR[rng.integers(len(_HAIR))], dtype=float)
    if np.abs(hair - skin).mean() < 60:  # keep face and hair apart: the facing cue must be visible
        hair = np.clip(255 - skin * 0.8, 0, 255) if skin.mean() < 128 else skin * 0.25
    shirt = _hsv_color(rng, sat=(80, 255), val=(70, 255))
    pants = _hsv_color(rng, sat=(40, 220), val=(40, 200))
    emblem = tuple(int(255 - c) for c in shirt)
    if np.abs(np.array(emblem) - np.array(shirt)).mean() < 80:
        emblem = (255, 255, 255) if np.mean(shirt) < 128 else (20, 20, 20)
    long_sleeves, long_pants = rng.random() < 0.5, rng.random() < 0.7
    return {
        "skin": tuple(int(c) for c in skin), "hair": tuple(int(c) for c in hair), "shirt": shirt,
        "pants": pants, "emblem": emblem, "panel": tuple(int(0.55 * c + 0.45 * 255) for c in shirt),
        "shoes": tuple(int(c) for c in rng.integers(10, 70, 3)),
        "hand": tuple(int(0.85 * c) for c in skin),
        "forearm": shirt if long_sleeves else tuple(int(c) for c in skin),
        "shin": pants if long_pants else tuple(int(c) for c in skin),
    }  # fmt: skip


def _hsv_color(rng: np.random.Generator, sat: tuple[int, int], val: tuple[int, int]) -> tuple[int, int, int]:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(*sat), rng.integers(*val)]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def make_person(rng: np.random.Generator, params: SyntheticParams, height: float, slot: int) -> Person:
    """Sample, project and scale one figure to ``height`` pixels, centred at the origin (pelvis)."""
    body = sample_body(rng, params.pose_variety)
    rot, roll, front = _view(rng, params)
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    roll2d = np.array([[cr, -sr], [sr, cr]])

    def project(v: np.ndarray) -> tuple[np.ndarray, float]:
        c = rot @ v
        return roll2d @ np.array([c[0], -c[1]]) * height, float(c[2] * height)

    points, depths = {}, {}
    for name, v in body.items():
        if not name.startswith("_") and name not in ("face_fwd", "face_up", "torso_fwd"):
            points[name], depths[name] = project(v)
    axes = {}
    for name in ("face_fwd", "face_up", "torso_fwd"):
        c = rot @ body[name]
        axes[name] = np.array([*(roll2d @ np.array([c[0], -c[1]])), c[2]])  # image x, y and depth z
    joints = np.array([points[n] for n in BODY_JOINTS])
    depth = np.array([depths[n] for n in BODY_JOINTS])
    head_r = float(body["_head_r"][0] * height)
    ext = np.concatenate([joints, [points["head_c"] - head_r, points["head_c"] + head_r]])
    bbox = np.concatenate([ext.min(axis=0), ext.max(axis=0)])
    return Person(
        joints=joints,
        depth=depth,
        points=points,
        depths=depths,
        axes=axes,
        head_c=points["head_c"],
        head_r=head_r,
        height=height,
        facing_front=front,
        slot=slot,
        colors=_colors(rng),
        bbox=bbox,
    )


def _translate(person: Person, offset: np.ndarray) -> None:
    person.joints = person.joints + offset
    person.points = {k: v + offset for k, v in person.points.items()}
    person.head_c = person.head_c + offset
    person.bbox = person.bbox + np.tile(offset, 2)


# ------------------------------------------------------------------------------------------ drawing

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def _pts(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


class Canvas:
    """The image (H, W, 3) uint8 and a label map (H, W) uint16 drawn with the same shapes."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.label = np.zeros(image.shape[:2], dtype=np.uint16)

    def poly(self, points: np.ndarray, color: tuple, label: int | None) -> None:
        p = _pts(points)
        cv2.fillConvexPoly(self.image, p, color, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.fillConvexPoly(self.label, p, label, cv2.LINE_8, _SHIFT)

    def circle(self, center: np.ndarray, radius: float, color: tuple, label: int | None) -> None:
        c, r = tuple(_pts(center)), max(round(radius * _ONE), 1)
        cv2.circle(self.image, c, r, color, -1, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.circle(self.label, c, r, label, -1, cv2.LINE_8, _SHIFT)

    def ellipse(
        self, center: np.ndarray, axes: tuple[float, float], angle: float, color: tuple, label: int | None
    ) -> None:
        c = tuple(_pts(center))
        ax = (max(round(axes[0] * _ONE), 1), max(round(axes[1] * _ONE), 1))
        cv2.ellipse(self.image, c, ax, angle, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.ellipse(self.label, c, ax, angle, 0, 360, label, -1, cv2.LINE_8, _SHIFT)

    def capsule(
        self,
        a: np.ndarray,
        b: np.ndarray,
        ra: float,
        rb: float,
        color: tuple,
        label: int | None,
        outline: bool = True,
    ) -> None:
        """A tapered limb from ``a`` (half-width ``ra``) to ``b`` (``rb``), with a darker outline."""
        shapes = [(ra + 1.0, rb + 1.0, _darker(color)), (ra, rb, color)] if outline else [(ra, rb, color)]
        for i, (wa, wb, col) in enumerate(shapes):
            lab = label if i == len(shapes) - 1 else None
            d = b - a
            length = float(np.hypot(*d))
            if length > 1e-3:
                n = np.array([-d[1], d[0]]) / length
                self.poly(np.array([a + n * wa, b + n * wb, b - n * wb, a - n * wa]), col, lab)
            self.circle(a, wa, col, lab)
            self.circle(b, wb, col, lab)


def _darker(color: tuple, f: float = 0.55) -> tuple[int, int, int]:
    return tuple(int(c * f) for c in color)


def _disc_on_surface(
    canvas: Canvas, center: np.ndarray, normal: np.ndarray, radius: float, color: tuple, label: int | None
) -> None:
    """A disc of ``radius`` on a surface with unit ``normal`` (image x, y, depth z), seen from the camera."""
    nx, ny, nz = normal
    angle = math.degrees(math.atan2(ny, nx)) if abs(nx) + abs(ny) > 1e-6 else 0.0
    canvas.ellipse(center, (max(radius * abs(nz), 0.5), radius), angle, color, label)


def draw_person(canvas: Canvas, person: Person) -> None:
    """Draw ``person`` far-to-near, writing ``slot * 32 + part id`` into the label map."""
    P, D, col = person.points, person.depths, person.colors
    h = person.height
    base = person.slot * LABELS_PER_PERSON

    def lab(part: str) -> int:
        return base + PART_ID[part]

    items: list[tuple[float, Any]] = []

    def add(depth: float, fn: Any) -> None:
        items.append((depth, fn))

    torso_fwd = person.axes["torso_fwd"]
    td = float(_PROPORTIONS["torso_depth"]) * h

    def torso() -> None:
        # The torso is a box: shoulder line and hip line, each thickened by the body depth.
        t_fwd2 = torso_fwd[:2] * td
        corners = [
            P[n] + sgn * t_fwd2 for n in ("l_shoulder", "r_shoulder", "l_hip", "r_hip") for sgn in (1, -1)
        ]
        hull = cv2.convexHull(np.array(corners, dtype=np.float32)).reshape(-1, 2)
        outline_hull = hull + 1.0 * np.sign(hull - hull.mean(axis=0))
        canvas.poly(outline_hull, _darker(col["shirt"]), None)
        canvas.poly(hull, col["shirt"], lab("torso"))
        if torso_fwd[2] > 0.1:  # front: a light shirt front and a chest emblem with a dark ring
            panel = [P["panel_top_l"], P["panel_top_r"], P["panel_bot_r"], P["panel_bot_l"]]
            canvas.poly(np.array(panel), col["panel"], None)
            _disc_on_surface(canvas, P["emblem"], torso_fwd, 0.065 * h, _darker(col["emblem"], 0.3), None)
            _disc_on_surface(canvas, P["emblem"], torso_fwd, 0.05 * h, col["emblem"], None)
        elif torso_fwd[2] < -0.1:  # back: spine stripe
            t = max(round(0.035 * h), 1)
            cv2.line(
                canvas.image,
                tuple(_pts(P["spine_top"])),
                tuple(_pts(P["spine_bot"])),
                _darker(col["shirt"], 0.35),
                t,
                cv2.LINE_AA,
                _SHIFT,
            )

    add(0.5 * (D["thorax"] + D["pelvis"]), torso)

    face_fwd, face_up = person.axes["face_fwd"], person.axes["face_up"]
    r = person.head_r

    def head() -> None:
        c = person.head_c
        canvas.circle(c, r + 1.0, _darker(col["hair"]), None)
        canvas.circle(c, r, col["hair"], lab("head"))
        if face_fwd[2] > -0.15:
            # The face: a skin-coloured cap of the head sphere around the face direction, under the hair.
            f = face_fwd - 0.25 * face_up
            f = f / np.linalg.norm(f)
            centre = c + 0.45 * r * f[:2]
            _disc_on_surface(canvas, centre, f, 0.8 * r, col["skin"], None)
            for name, rad, color in (
                ("l_eye", 0.13, (25, 25, 25)),
                ("r_eye", 0.13, (25, 25, 25)),
                ("nose", 0.12, _darker(col["skin"], 0.75)),
            ):
                if D[name] - D["head_c"] > 0.15 * r:
                    canvas.circle(P[name], max(rad * r, 0.6), color, None)
            mouth = c + r * 0.8 * (face_fwd[:2] - 0.5 * face_up[:2])
            if (face_fwd[2] - 0.5 * face_up[2]) > 0.2:
                canvas.ellipse(
                    mouth,
                    (0.22 * r, 0.07 * r),
                    math.degrees(math.atan2(face_up[0], -face_up[1])),
                    (40, 40, 120),
                    None,
                )

    add(D["head_c"] + 0.01 * h, head)
    for side in ("l", "r"):
        add(
            D[f"{side}_ear"],
            lambda side=side: canvas.circle(P[f"{side}_ear"], 0.25 * r, col["skin"], lab(f"{side}_ear")),
        )
    w = {k: (a * h, b * h) for k, (a, b) in _WIDTHS.items()}
    add(
        0.5 * (D["thorax"] + D["upper_neck"]) - 0.01 * h,
        lambda: canvas.capsule(P["thorax"], P["upper_neck"], *w["neck"], col["skin"], lab("neck")),
    )
    for side in ("l", "r"):
        limbs = (
            ("upper_arm", f"{side}_shoulder", f"{side}_elbow", col["shirt"], 0.02),
            ("forearm", f"{side}_elbow", f"{side}_wrist", col["forearm"], 0.025),
            ("thigh", f"{side}_hip", f"{side}_knee", col["pants"], -0.01),
            ("shin", f"{side}_knee", f"{side}_ankle", col["shin"], -0.005),
            ("foot", f"{side}_ankle", f"{side}_toe", col["shoes"], 0.0),
        )
        for part, a, b, color, bias in limbs:
            add(
                0.5 * (D[a] + D[b]) + bias * h,
                lambda part=part, a=a, b=b, color=color, side=side: canvas.capsule(
                    P[a], P[b], *w[part], color, lab(f"{side}_{part}")
                ),
            )
        add(
            D[f"{side}_hand"] + 0.03 * h,
            lambda side=side: canvas.capsule(
                P[f"{side}_hand"],
                P[f"{side}_hand"],
                _PROPORTIONS["hand_r"] * h,
                _PROPORTIONS["hand_r"] * h,
                col["hand"],
                lab(f"{side}_hand"),
            ),
        )
    for _, fn in sorted(items, key=lambda item: item[0]):
        fn()


@functools.lru_cache(maxsize=4)
def _noise_table(width: int, height: int) -> np.ndarray:
    """(2H, 2W, 3) int16 standard-normal noise x 16, from a fixed seed: images take shifted windows of it,
    which is much faster than drawing fresh noise for every pixel and just as good for this purpose."""
    table = np.random.default_rng(12345).standard_normal((2 * height, 2 * width, 3)) * 16
    table = np.round(table).astype(np.int16)
    table.flags.writeable = False
    return table


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` plus Gaussian pixel noise of standard deviation ``sigma`` (uint8, saturated)."""
    h, w = image.shape[:2]
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    noise = _noise_table(w, h)[y0 : y0 + h, x0 : x0 + w]
    out = image.astype(np.int16) + ((noise * round(sigma * 16)) >> 8).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, width: int, height: int, clutter: int) -> np.ndarray:
    """Textured, cluttered background (H, W, 3) uint8."""
    g = int(rng.integers(2, 7))
    field_ = rng.uniform(0, 255, (g, g, 3)).astype(np.float32)
    img = cv2.resize(field_, (width, height), interpolation=cv2.INTER_CUBIC)
    kind = rng.integers(4)
    xs, ys = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    if kind == 0:  # stripes: sin(a x + b y), as a sum of two outer products (separable, fast)
        t = rng.uniform(0, math.pi)
        k = 2 * math.pi / rng.uniform(6, 40)
        ax, by = xs * (k * math.cos(t)), ys * (k * math.sin(t))
        wave = np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax))
        img += (wave * rng.uniform(10, 40))[..., None]
    elif kind == 1:  # checks: -(-1)^(row cell + column cell)
        cell = int(rng.integers(8, 40))
        checks = np.outer(2 * ((ys // cell) % 2) - 1, 1 - 2 * ((xs // cell) % 2))
        img += (checks * rng.uniform(10, 35))[..., None]
    elif kind == 2:  # grain
        small = rng.standard_normal((height // 4 + 1, width // 4 + 1)).astype(np.float32)
        img += cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)[..., None] * rng.uniform(
            8, 25
        )
    img = np.clip(img, 0, 255).astype(np.uint8)
    canvas = Canvas(img)
    size = min(width, height)
    for _ in range(clutter):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        c = rng.uniform(0, 1, 2) * (width, height)
        s = rng.uniform(0.03, 0.25) * size
        shape = rng.integers(5)
        if shape == 0:
            angle = rng.uniform(0, 360)
            box = cv2.boxPoints(
                ((float(c[0]), float(c[1])), (float(s), float(s * rng.uniform(0.3, 1.5))), angle)
            )
            canvas.poly(box, color, None)
        elif shape == 1:
            canvas.ellipse(c, (s / 2, s * rng.uniform(0.2, 0.6)), rng.uniform(0, 180), color, None)
        elif shape == 2:
            end = c + rng.normal(0, s, 2)
            cv2.line(
                canvas.image,
                tuple(_pts(c)),
                tuple(_pts(end)),
                color,
                int(rng.integers(1, 4)),
                cv2.LINE_AA,
                _SHIFT,
            )
        else:  # limb-like distractor in skin or clothing colours
            if rng.random() < 0.5:
                color = _SKIN[rng.integers(len(_SKIN))]
            end = c + rng.normal(0, 1, 2) / math.sqrt(2) * s
            wa = rng.uniform(0.015, 0.04) * size
            canvas.capsule(c, end, wa, wa * rng.uniform(0.6, 1.0), color, None)
    return canvas.image


def _occluder(canvas: Canvas, rng: np.random.Generator, person: Person) -> None:
    """A textured object in front of a random joint of ``person``."""
    target = person.joints[rng.integers(16)] + rng.normal(0, 0.08 * person.height, 2)
    s = rng.uniform(0.12, 0.3) * person.height
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    if rng.random() < 0.5:
        box = cv2.boxPoints(
            (
                (float(target[0]), float(target[1])),
                (float(s), float(s * rng.uniform(0.4, 1.2))),
                rng.uniform(0, 180),
            )
        )
        canvas.poly(box, color, OCCLUDER_LABEL)
        stripe = _darker(color, 0.6)
        cv2.line(canvas.image, tuple(_pts(box[0])), tuple(_pts(box[2])), stripe, 2, cv2.LINE_AA, _SHIFT)
    else:
        canvas.ellipse(
            target, (s / 2, s * rng.uniform(0.25, 0.5)), rng.uniform(0, 180), color, OCCLUDER_LABEL
        )


@dataclass
class Scene:
    """A rendered image: ``image`` (H, W, 3) uint8 BGR, the ``background`` before people and occluders,
    the ``label`` map (H, W) uint16 (0 background, person ``slot`` parts ``slot * 32 + part id``,
    65535 occluders) and the people (slots 1..n)."""

    image: np.ndarray
    background: np.ndarray
    label: np.ndarray
    people: list[Person]


def render_scene(rng: np.random.Generator, params: SyntheticParams) -> Scene:
    """Draw one image: background, people (placed with limited overlap), occluders, noise."""
    width, height = params.image_size
    background = _background(rng, width, height, params.clutter)
    canvas = Canvas(background.copy())
    n_people = int(rng.integers(params.people_per_image[0], params.people_per_image[1] + 1))
    people: list[Person] = []
    for slot in range(1, n_people + 1):
        person = make_person(rng, params, rng.uniform(*params.person_height) * height, slot)
        size = person.bbox[2:] - person.bbox[:2]
        for _ in range(20):
            # Place the bbox inside the image where it fits (a little may hang out), avoiding big overlaps.
            lo = -person.bbox[:2] - params.truncation * size
            hi = np.array([width, height]) - person.bbox[2:] + params.truncation * size
            offset = np.where(hi > lo, rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi)), (lo + hi) / 2)
            box = person.bbox + np.tile(offset, 2)
            if all(_overlap(box, other.bbox) < 0.3 for other in people):
                break
        _translate(person, offset)
        people.append(person)
    for person in sorted(people, key=lambda p: p.height):  # smaller (farther) people first
        draw_person(canvas, person)
    for person in people:
        for _ in range(rng.poisson(params.occluders)):
            _occluder(canvas, rng, person)
    image = canvas.image
    if params.noise > 0:
        image = _add_noise(image, params.noise, rng)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.0))
    return Scene(image=image, background=background, label=canvas.label, people=people)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area, boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(smaller, 1e-6))


# ------------------------------------------------------------------------------------------ annotation


def inside_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: points within the pixel grid [0, W - 1] x [0, H - 1]."""
    return (
        (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    )


def joint_visibility(scene: Scene, person: Person) -> np.ndarray:
    """(21,) COCO-style visibility of BODY_JOINTS: 2 shown, 1 hidden, 0 outside / facing away."""
    h, w = scene.label.shape
    inside = inside_image(person.joints, w, h)
    v = np.where(inside, 1, 0)
    for j, name in enumerate(BODY_JOINTS):
        if name in FACE_JOINTS and person.depth[j] - person.depths["head_c"] < -0.1 * person.head_r:
            v[j] = 0  # on the far side of the head: not labelled
            continue
        if not inside[j]:
            continue
        x, y = np.round(person.joints[j]).astype(int)
        patch = scene.label[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        own = (patch // LABELS_PER_PERSON) == person.slot
        if (own & _JOINT_PART_MASK[j][patch % LABELS_PER_PERSON]).any():
            v[j] = 2
    return v


def layout_indices(spec: KeypointSpec) -> np.ndarray:
    """Indices into BODY_JOINTS of ``spec``'s joints, in the spec's order ("left_knee" -> "l_knee")."""
    names = [n.replace("left_", "l_").replace("right_", "r_") for n in spec.joint_names]
    return np.array([J[n] for n in names])


def visible_mask(scene: Scene, person: Person) -> np.ndarray:
    """(H, W) bool: pixels where ``person`` is drawn and not covered."""
    lo = person.slot * LABELS_PER_PERSON
    return (scene.label > lo) & (scene.label < lo + LABELS_PER_PERSON)


def mpii_annotations(scene: Scene, image_name: str, rng: np.random.Generator) -> list[dict]:
    """HRNet-style MPII entries (1-based) plus 0-based ``_headbox`` (2, 2) for the .mat, one per person."""
    h, w = scene.label.shape
    idx = layout_indices(MPII)
    entries = []
    for person in scene.people:
        joints = person.joints[idx]
        vis = inside_image(joints, w, h)
        if vis.sum() < 4:
            continue
        # MPII's scale is tied to the head box: scale * 200 = 4.8 x the head box diagonal (exactly, in the
        # real annotations); so the crop and the PCKh threshold relate as in MPII.
        r = HEADBOX_HALF_SIDE * person.head_r
        scale = 4.8 * (2 * math.sqrt(2) * r) / 200.0
        mid = 0.5 * (joints.min(axis=0) + joints.max(axis=0)) + rng.normal(0, 0.02 * person.height, 2)
        center = mid - np.array([0.0, 15.0 * scale])
        entries.append(
            {
                "image": image_name,
                "center": [round(float(c) + 1.0, 2) for c in center],
                "scale": round(float(scale), 4),
                "joints": [
                    [round(float(x) + 1.0, 2), round(float(y) + 1.0, 2)] if v else [-1.0, -1.0]
                    for (x, y), v in zip(joints, vis)
                ],
                "joints_vis": [int(v) for v in vis],
                "_headbox": [(person.head_c - r).tolist(), (person.head_c + r).tolist()],
            }
        )
    return entries


def coco_annotations(scene: Scene, image_id: int) -> list[dict]:
    """COCO person annotations (keypoints, bbox, area, segmentation) of the people in ``scene``."""
    idx = layout_indices(COCO)
    anns = []
    for person in scene.people:
        mask = visible_mask(scene, person)
        area = int(mask.sum())
        if area == 0:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        segmentation = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
        if not segmentation:
            segmentation = [
                [float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]
            ]
        vis = joint_visibility(scene, person)[idx]
        kpts = []
        for (x, y), v in zip(person.joints[idx], vis):
            kpts += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
        anns.append({
            "id": image_id * 100 + person.slot, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)], "area": float(area),
            "segmentation": segmentation, "keypoints": kpts, "num_keypoints": int((vis > 0).sum()),
        })  # fmt: skip
    return anns


def simulated_detections(
    anns: list[dict], image_id: int, width: int, height: int, rng: np.random.Generator
) -> list[dict]:
    """A person detector's output for one image: jittered true boxes and a few false positives."""
    dets = []
    for ann in anns:
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.05, 4) * np.array([w, h, w, h])
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": round(float(rng.uniform(0.6, 1.0)), 4),
                "bbox": [
                    round(float(v), 2)
                    for v in (x + jitter[0], y + jitter[1], max(w + jitter[2], 2.0), max(h + jitter[3], 2.0))
                ],
            }
        )
    for _ in range(rng.integers(0, 3)):
        w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.2, 0.8) * height
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": round(float(rng.uniform(0.02, 0.4)), 4),
                "bbox": [
                    round(float(rng.uniform(0, width - w)), 2),
                    round(float(rng.uniform(0, height - h)), 2),
                    round(float(w), 2),
                    round(float(h), 2),
                ],
            }
        )
    return dets


# ------------------------------------------------------------------------------------------ writing


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


def _coco_categories() -> list[dict]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO.joint_names),
            "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton],
        }
    ]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


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
            entries = [
                e
                for r in _render_split(kind, split, count, params, root / "images", workers, progress)
                for e in r["entries"]
            ]
            headboxes = np.array([e.pop("_headbox") for e in entries])
            if split == "test":
                entries = [{k: e[k] for k in ("image", "center", "scale")} for e in entries]
            _write_json(
                root / "annot" / {"train": "train.json", "val": "valid.json", "test": "test.json"}[split],
                entries,
            )
            if split == "val":
                joints = np.array([e["joints"] for e in entries], dtype=np.float64) - 1.0
                visible = np.array([e["joints_vis"] for e in entries]) > 0
                save_mpii_gt(
                    root / "annot" / "gt_valid.mat",
                    MPIIGroundTruth.from_zero_based(joints, visible, headboxes),
                )
        else:
            folder = {"train": "train2017", "val": "val2017", "test": "test2017"}[split]
            results = list(_render_split(kind, split, count, params, root / folder, workers, progress))
            info = {
                "description": "boxpose synthetic COCO-format person keypoints",
                "version": str(GENERATOR_VERSION),
            }
            data = {
                "info": info,
                "licenses": [],
                "images": [r["image"] for r in results],
                "categories": _coco_categories(),
            }
            if split == "test":
                _write_json(root / "annotations" / "image_info_test-dev2017.json", data)
            else:
                data["annotations"] = [a for r in results for a in r["annotations"]]
                _write_json(root / "annotations" / f"person_keypoints_{folder}.json", data)
            if split != "train":
                name = "val2017" if split == "val" else "test-dev2017"
                _write_json(
                    root / "person_detection_results" / f"synthetic_{name}_detections.json",
                    [d for r in results for d in r["detections"]],
                )


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
