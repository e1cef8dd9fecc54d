"""The MPII test-set submission file (pred_keypoints_mpii.mat) and the test layout read from RELEASE.

The real mpii_human_pose_v1_u12_1.mat is not available offline, so RELEASE here is a small synthetic
file with the documented structure (annolist(i).image.name, annolist(i).annorect(r).objpos.x/.y,
img_train, single_person as a cell of column vectors). The submission is checked by a Python port of
how the official evaluatePCKh.m pairs predictions with ground truth (flatten_annolist: walk every
annorect with a non-empty objpos; annolist2matrix: look points up by id; keep single_person rects).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from boxpose.evaluation.mpii import MPIITestLayout, load_mpii_test_layout, save_mpii_test_submission

EMPTY = np.zeros((0, 0))


def _struct_array(records: list[dict]) -> np.ndarray:
    fields = list(records[0])
    array = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for j, record in enumerate(records):
        for f in fields:
            array[0, j][f] = record[f]
    return array


def _rect(objpos: tuple[float, float] | None) -> dict:
    return {
        "x1": 1.0,
        "y1": 2.0,
        "x2": 30.0,
        "y2": 40.0,
        "scale": 2.5,
        "objpos": EMPTY if objpos is None else {"x": objpos[0], "y": objpos[1]},
    }


def _write_release(path) -> None:
    images = [
        ("train.jpg", [_rect((5.0, 5.0))], 1, np.array([[1.0]])),
        ("a.jpg", [_rect((100.0, 200.0)), _rect((300.0, 210.0))], 0, np.array([[1.0], [2.0]])),
        ("b.jpg", [_rect((50.0, 60.0)), _rect(None), _rect((70.0, 80.0))], 0, np.array([[3.0]])),
        ("c.jpg", [], 0, EMPTY),
    ]
    annolist = _struct_array(
        [
            {
                "image": {"name": name},
                "annorect": _struct_array(rects) if rects else EMPTY,
                "frame_sec": 1.0,
                "vididx": 1.0,
            }
            for name, rects, _, _ in images
        ]
    )
    single_person = np.empty((len(images), 1), dtype=object)
    for i, image in enumerate(images):
        single_person[i, 0] = image[3]
    release = {
        "annolist": annolist,
        "img_train": np.array([[image[2] for image in images]], dtype=np.float64),
        "single_person": single_person,
        "version": "12",
    }
    sio.savemat(path, {"RELEASE": release})


EXPECTED_LAYOUT = MPIITestLayout(
    image_names=("a.jpg", "b.jpg", "c.jpg"),
    objpos=(((100.0, 200.0), (300.0, 210.0)), ((50.0, 60.0), None, (70.0, 80.0)), ()),
    single_person=((1, 2), (3,), ()),
)


@pytest.fixture
def layout(tmp_path) -> MPIITestLayout:
    _write_release(tmp_path / "release.mat")
    return load_mpii_test_layout(tmp_path / "release.mat")


def test_load_test_layout(layout):
    assert layout == EXPECTED_LAYOUT


def _as_list(value) -> list:
    return list(value.ravel()) if isinstance(value, np.ndarray) else [value]


def _toolkit_flatten(annolist: list, single_person: tuple[tuple[int, ...], ...]) -> list[tuple]:
    """(image name, rect id, rect, is single person) for every rect with a non-empty objpos, in order."""
    flat = []
    for image, singles in zip(annolist, single_person):
        for r, rect in enumerate(_as_list(image.annorect), start=1):
            objpos = getattr(rect, "objpos", EMPTY)
            if not (isinstance(objpos, np.ndarray) and objpos.size == 0):
                flat.append((image.image.name, r, rect, r in singles))
    return flat


def _toolkit_points(rect) -> np.ndarray:
    """annolist2matrix for one rect: (16, 2), NaN where no point has that id."""
    joints = np.full((16, 2), np.nan)
    annopoints = rect.annopoints
    if isinstance(annopoints, np.ndarray) and annopoints.size == 0:
        return joints
    for point in _as_list(annopoints.point):
        joints[int(point.id)] = (point.x, point.y)
    return joints


def test_submission_pairs_with_ground_truth_like_the_official_toolkit(tmp_path, layout):
    preds = np.random.default_rng(0).uniform(1, 500, size=(3, 16, 2))
    save_mpii_test_submission(
        tmp_path / "pred_keypoints_mpii.mat", preds, ["b.jpg", "a.jpg", "a.jpg"], [3, 2, 1], layout
    )

    mat = sio.loadmat(str(tmp_path / "pred_keypoints_mpii.mat"), struct_as_record=False, squeeze_me=True)
    pred = _as_list(mat["pred"])
    # One entry per test image, in the official order (the toolkit asserts equal length).
    assert [image.image.name for image in pred] == list(layout.image_names)
    flat = _toolkit_flatten(pred, layout.single_person)
    # Same rects, in the same order, as the ground truth's flattened list: a.jpg 1, 2 and b.jpg 1, 3.
    assert [(name, r, single) for name, r, _, single in flat] == [
        ("a.jpg", 1, True),
        ("a.jpg", 2, True),
        ("b.jpg", 1, False),
        ("b.jpg", 3, True),
    ]
    scored = {(name, r): _toolkit_points(rect) for name, r, rect, single in flat if single}
    np.testing.assert_array_equal(scored[("b.jpg", 3)], preds[0])
    np.testing.assert_array_equal(scored[("a.jpg", 2)], preds[1])
    np.testing.assert_array_equal(scored[("a.jpg", 1)], preds[2])
    # objpos is copied from the official list.
    rect = _as_list(pred[1].annorect)[2]
    assert (rect.objpos.x, rect.objpos.y) == (70.0, 80.0)
    point_ids = [int(p.id) for p in _as_list(rect.annopoints.point)]
    assert point_ids == list(range(16))


def test_missing_single_person_prediction_is_an_error_unless_allowed(tmp_path, layout):
    preds = np.ones((2, 16, 2))
    message = r"1 of 3 single-person test people have no prediction \(first: image 'b\.jpg', rect 3\)"
    with pytest.raises(ValueError, match=message):
        save_mpii_test_submission(tmp_path / "p.mat", preds, ["a.jpg", "a.jpg"], [1, 2], layout)
    save_mpii_test_submission(
        tmp_path / "p.mat", preds, ["a.jpg", "a.jpg"], [1, 2], layout, allow_missing=True
    )
    pred = sio.loadmat(str(tmp_path / "p.mat"), struct_as_record=False, squeeze_me=True)["pred"]
    missing = _as_list(pred[1].annorect)[2]
    assert np.all(np.isnan(_toolkit_points(missing)))


def test_submission_errors(tmp_path, layout):
    out = tmp_path / "p.mat"
    one = np.ones((1, 16, 2))
    with pytest.raises(ValueError, match=r"image 'train\.jpg' is not in the MPII test annotation list"):
        save_mpii_test_submission(out, one, ["train.jpg"], [1], layout, allow_missing=True)
    with pytest.raises(
        ValueError, match=r"image 'b\.jpg': rect id 2 is not the 1-based annorect index of a person"
    ):
        save_mpii_test_submission(out, one, ["b.jpg"], [2], layout, allow_missing=True)
    with pytest.raises(ValueError, match=r"image 'a\.jpg': rect id 0 is not the 1-based annorect index"):
        save_mpii_test_submission(out, one, ["a.jpg"], [0], layout, allow_missing=True)
    with pytest.raises(ValueError, match=r"image 'a\.jpg', rect 1 has more than one prediction"):
        save_mpii_test_submission(
            out, np.ones((2, 16, 2)), ["a.jpg", "a.jpg"], [1, 1], layout, allow_missing=True
        )
    with pytest.raises(ValueError, match="2 predictions but 1 image names and 2 rect ids"):
        save_mpii_test_submission(out, np.ones((2, 16, 2)), ["a.jpg"], [1, 2], layout)
    with pytest.raises(ValueError, match=r"must have shape \(N, 16, 2\)"):
        save_mpii_test_submission(out, np.ones((1, 14, 2)), ["a.jpg"], [1], layout)
    assert not out.exists()


def test_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="image names must be unique"):
        MPIITestLayout(("a.jpg", "a.jpg"), ((), ()), ((), ()))
    with pytest.raises(ValueError, match="single-person rect 2 is not an annorect entry with an objpos"):
        MPIITestLayout(("a.jpg",), (((1.0, 1.0), None),), ((2,),))
    with pytest.raises(ValueError, match="they must be equally long"):
        MPIITestLayout(("a.jpg",), (), ((),))
    sio.savemat(tmp_path / "other.mat", {"annolist": np.zeros(3)})
    with pytest.raises(ValueError, match="no 'RELEASE' struct"):
        load_mpii_test_layout(tmp_path / "other.mat")
