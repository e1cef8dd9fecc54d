"""Keypoint specifications: the one home for joint names, flip pairs, skeletons, body-part sets,
OKS sigmas and drawing colours of each supported joint layout.

Everything that needs one of these facts (datasets, the synthetic generator, the codec's flip merge,
the metrics, drawing) reads it from the spec returned by :func:`get_spec`; nothing else hard-codes it.

Joint indices are 0-based throughout boxpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Colours are BGR tuples (OpenCV's order), chosen so that left and right limbs are told apart at a glance.
_LEFT = (255, 128, 0)  # blue-ish
_RIGHT = (0, 128, 255)  # orange
_CENTRE = (0, 200, 0)  # green


def flip_permutation(num_joints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """(num_joints,) int index array ``perm`` with ``flipped_joints = joints[perm]`` after a horizontal
    flip: the identity with each (left, right) pair swapped."""
    perm = np.arange(num_joints)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


@dataclass(frozen=True)
class KeypointSpec:
    """A joint layout.

    Attributes:
        name: layout name ("mpii", "coco").
        joint_names: one name per joint, in the dataset's native order.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        skeleton: (a, b) index pairs drawn as limbs.
        upper_body: joints used by half-body augmentation's upper half.
        lower_body: joints used by half-body augmentation's lower half.
        sigmas: per-joint OKS constants kappa_i (COCO); None where the layout has none.
        pckh_groups: table columns of the MPII PCKh table: column name -> joint indices averaged.
        limb_colors: one BGR colour per skeleton edge.
    """

    name: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body: tuple[int, ...]
    lower_body: tuple[int, ...]
    sigmas: tuple[float, ...] | None = None
    pckh_groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    limb_colors: tuple[tuple[int, int, int], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def flip_permutation(self) -> np.ndarray:
        """Index array ``perm`` with ``flipped_joints = joints[perm]`` after a horizontal flip."""
        return flip_permutation(self.num_joints, self.flip_pairs)

    def index(self, joint_name: str) -> int:
        return self.joint_names.index(joint_name)

    def joint_side(self, j: int) -> str:
        """'left', 'right' or 'centre' (from the flip pairs)."""
        for a, b in self.flip_pairs:
            if j in (a, b):
                return "left" if self.joint_names[j].startswith(("l_", "left")) else "right"
        return "centre"


def _limb_colors(joint_names: tuple[str, ...], skeleton: tuple[tuple[int, int], ...]) -> tuple:
    colors = []
    for a, b in skeleton:
        names = joint_names[a] + " " + joint_names[b]
        if "left" in names or names.startswith("l_") or " l_" in names:
            colors.append(_LEFT)
        elif "right" in names or names.startswith("r_") or " r_" in names:
            colors.append(_RIGHT)
        else:
            colors.append(_CENTRE)
    return tuple(colors)


# fmt: off
_MPII_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
_MPII_SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
)
# fmt: on

MPII = KeypointSpec(
    name="mpii",
    joint_names=_MPII_NAMES,
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=_MPII_SKELETON,
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body=(0, 1, 2, 3, 4, 5, 6),
    pckh_groups={
        "Head": (9,),
        "Shoulder": (12, 13),
        "Elbow": (11, 14),
        "Wrist": (10, 15),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
    },
    limb_colors=_limb_colors(_MPII_NAMES, _MPII_SKELETON),
)

# fmt: off
_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# The 19 edges of the COCO person category ("skeleton", made 0-based).
_COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
# COCO keypoint evaluation constants (pycocotools' kpt_oks_sigmas).
_COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
    0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)
# fmt: on

COCO = KeypointSpec(
    name="coco",
    joint_names=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=_COCO_SKELETON,
    upper_body=tuple(range(11)),
    lower_body=tuple(range(11, 17)),
    sigmas=_COCO_SIGMAS,
    limb_colors=_limb_colors(_COCO_NAMES, _COCO_SKELETON),
)

SPECS: dict[str, KeypointSpec] = {"mpii": MPII, "coco": COCO}


def get_spec(name: str) -> KeypointSpec:
    """The keypoint spec called ``name`` ("mpii" or "coco")."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint layout {name!r}; known: {sorted(SPECS)}") from None
