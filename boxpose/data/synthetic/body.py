"""The body model: a 3-D articulated figure with human proportions and joint limits, its clothing and skin
colours, and its projection into the image as a :class:`Person`.

The figure's joints are :data:`BODY_JOINTS`: MPII's 16 joints in MPII's order, then the COCO face points
that MPII lacks, named as in :mod:`boxpose.keypoints` (COCO's ``left_``/``right_`` shortened to
``l_``/``r_``, MPII's style). :func:`layout_indices` maps a keypoint spec's joints onto them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from boxpose.data.synthetic.params import SyntheticParams
from boxpose.keypoints import COCO, MPII, KeypointSpec


def short_joint_name(name: str) -> str:
    """A spec's joint name in the body model's style: "left_knee" -> "l_knee" (MPII names unchanged)."""
    return name.replace("left_", "l_").replace("right_", "r_")


# Joints of the body model: MPII's 16 in MPII order, then COCO's face points (which MPII lacks).
FACE_JOINTS = tuple(n for n in (short_joint_name(c) for c in COCO.joint_names) if n not in MPII.joint_names)
BODY_JOINTS = (*MPII.joint_names, *FACE_JOINTS)
J = {name: i for i, name in enumerate(BODY_JOINTS)}


def layout_indices(spec: KeypointSpec) -> np.ndarray:
    """Indices into BODY_JOINTS of ``spec``'s joints, in the spec's order ("left_knee" -> "l_knee")."""
    return np.array([J[short_joint_name(n)] for n in spec.joint_names])


# Proportions in units of the standing height (head top to sole).
PROPORTIONS = {
    "head_r": 0.068, "neck": 0.045, "torso": 0.29, "shoulder": 0.115, "hip": 0.075, "upper_arm": 0.175,
    "forearm": 0.15, "hand_r": 0.024, "thigh": 0.245, "shin": 0.245, "foot": 0.07, "torso_depth": 0.06,
}  # fmt: skip
# Half-widths (start, end) of the tapered limbs, same unit.
WIDTHS = {
    "upper_arm": (0.032, 0.026), "forearm": (0.026, 0.019), "thigh": (0.05, 0.036), "shin": (0.034, 0.024),
    "neck": (0.026, 0.026), "foot": (0.02, 0.014),
}  # fmt: skip

SKIN = ((180, 200, 240), (150, 180, 225), (110, 145, 200), (80, 110, 165), (55, 75, 115), (165, 195, 235))
HAIR = ((25, 30, 40), (20, 20, 22), (40, 60, 95), (90, 165, 205), (45, 70, 150), (150, 150, 155))


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
    p = {k: v * (1 + 0.05 * rng.standard_normal()) for k, v in PROPORTIONS.items()}
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
    skin = np.array(SKIN[rng.integers(len(SKIN))], dtype=float)
    hair = np.array(HAIR[rng.integers(len(HAIR))], dtype=float)
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


def translate(person: Person, offset: np.ndarray) -> None:
    person.joints = person.joints + offset
    person.points = {k: v + offset for k, v in person.points.items()}
    person.head_c = person.head_c + offset
    person.bbox = person.bbox + np.tile(offset, 2)
