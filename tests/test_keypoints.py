"""Keypoint specs: the facts every other module reads (flip pairs, skeletons, body halves, OKS sigmas,
PCKh columns) are consistent with the joint names, for every spec."""

from __future__ import annotations

import numpy as np
import pytest

from boxpose.keypoints import SPECS, KeypointSpec, flip_permutation, get_spec

ALL_SPECS = sorted(SPECS.values(), key=lambda s: s.name)
LEFT, RIGHT = ("l_", "left_"), ("r_", "right_")


def _side_and_part(name: str) -> tuple[str, str]:
    """("left" | "right" | "centre", name without its side prefix)."""
    for prefix in LEFT:
        if name.startswith(prefix):
            return "left", name.removeprefix(prefix)
    for prefix in RIGHT:
        if name.startswith(prefix):
            return "right", name.removeprefix(prefix)
    return "centre", name


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_flip_pairs_join_left_and_right_of_the_same_part(spec: KeypointSpec) -> None:
    paired = set()
    for a, b in spec.flip_pairs:
        side_a, part_a = _side_and_part(spec.joint_names[a])
        side_b, part_b = _side_and_part(spec.joint_names[b])
        assert {side_a, side_b} == {"left", "right"} and part_a == part_b, (a, b)
        paired |= {a, b}
    assert len(paired) == 2 * len(spec.flip_pairs)  # no joint in two pairs
    # Every sided joint has its partner; centre joints stay where they are.
    sided = {j for j, name in enumerate(spec.joint_names) if _side_and_part(name)[0] != "centre"}
    assert paired == sided


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_flip_permutation_is_an_involution_that_mirrors_names(spec: KeypointSpec) -> None:
    perm = spec.flip_permutation()
    assert sorted(perm) == list(range(spec.num_joints))
    np.testing.assert_array_equal(perm[perm], np.arange(spec.num_joints))
    mirror = {"left": "right", "right": "left", "centre": "centre"}
    for j, name in enumerate(spec.joint_names):
        side, part = _side_and_part(name)
        assert _side_and_part(spec.joint_names[perm[j]]) == (mirror[side], part)
        assert spec.joint_side(j) == side


def test_flip_permutation_by_hand() -> None:
    np.testing.assert_array_equal(flip_permutation(5, [(0, 3), (1, 4)]), [3, 4, 2, 0, 1])
    np.testing.assert_array_equal(flip_permutation(3, []), [0, 1, 2])


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_skeleton_and_groups_index_existing_joints(spec: KeypointSpec) -> None:
    k = spec.num_joints
    assert len(set(spec.joint_names)) == k
    for a, b in spec.skeleton:
        assert 0 <= a < k and 0 <= b < k and a != b
    assert len(spec.limb_colors) == len(spec.skeleton)
    # Half-body augmentation: the two halves split the joints.
    assert set(spec.upper_body).isdisjoint(spec.lower_body)
    assert set(spec.upper_body) | set(spec.lower_body) == set(range(k))
    for joints in spec.pckh_groups.values():
        assert all(0 <= j < k for j in joints)


@pytest.mark.parametrize("spec", [s for s in ALL_SPECS if s.sigmas is not None], ids=lambda s: s.name)
def test_oks_sigmas_one_per_joint_and_mirror_symmetric(spec: KeypointSpec) -> None:
    assert len(spec.sigmas) == spec.num_joints
    assert all(s > 0 for s in spec.sigmas)
    for a, b in spec.flip_pairs:
        assert spec.sigmas[a] == spec.sigmas[b]


def test_known_layouts() -> None:
    """Hand facts: MPII has 16 joints starting with the right ankle, COCO 17 starting with the nose and
    pycocotools' sigmas (nose 0.026, hips 0.107)."""
    mpii, coco = get_spec("mpii"), get_spec("coco")
    assert mpii.num_joints == 16 and mpii.joint_names[0] == "r_ankle" and mpii.joint_names[9] == "head_top"
    assert coco.num_joints == 17 and coco.joint_names[0] == "nose"
    assert coco.sigmas[0] == 0.026 and coco.sigmas[coco.index("left_hip")] == 0.107
    assert mpii.flip_permutation()[mpii.index("l_wrist")] == mpii.index("r_wrist")


def test_unknown_spec_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown keypoint layout 'h36m'; known: \\['coco', 'mpii'\\]"):
        get_spec("h36m")
