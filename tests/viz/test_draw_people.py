"""Drawing people: per-person colours, and coordinates far outside the image (issue 13, case 4)."""

from __future__ import annotations

import numpy as np
import pytest

from boxpose.keypoints import get_spec
from boxpose.viz.draw import draw_people, person_colour

COCO = get_spec("coco")


def _person(x: float, y: float) -> np.ndarray:
    """17 confident joints in a 40 x 60 px column at (x, y)."""
    joints = np.zeros((17, 3))
    joints[:, 0] = x + np.linspace(0, 40, 17)
    joints[:, 1] = y + np.linspace(0, 60, 17)
    joints[:, 2] = 0.9
    return joints


def _has_colour(image: np.ndarray, colour) -> bool:
    return bool((image == np.asarray(colour, np.uint8)).all(axis=-1).any())


def test_each_person_has_its_own_colour():
    image = np.zeros((120, 200, 3), np.uint8)
    boxes = np.array([[10, 10, 50, 80, 0.9], [110, 10, 50, 80, 0.8]])
    drawn = draw_people(image, [_person(15, 20), _person(115, 20)], COCO, 0.2, boxes, person_colours=True)
    assert person_colour(0) != person_colour(1)
    assert _has_colour(drawn[:, :100], person_colour(0)) and not _has_colour(drawn[:, :100], person_colour(1))
    assert _has_colour(drawn[:, 100:], person_colour(1)) and not _has_colour(drawn[:, 100:], person_colour(0))


@pytest.mark.parametrize(
    "far",
    [1e12, -1e12, float("inf"), float("nan")],
)
def test_far_away_or_non_finite_coordinates_do_not_crash(far):
    image = np.zeros((60, 80, 3), np.uint8)
    person = _person(10, 0)
    person[3, :2] = far
    person[5, 0] = far
    drawn = draw_people(image, [person], COCO, 0.2, np.array([[0, 0, far, far, 1.0]]), person_colours=True)
    assert drawn.shape == image.shape and drawn.any()
