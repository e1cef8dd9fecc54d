"""Person boxes: checking and clipping (issue 13, case 4), the detector output forms, the boxes file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boxpose.detect import as_box_array, clean_person_boxes, load_boxes_file

WIDTH, HEIGHT = 640, 480
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ([NAN, 10, 50, 80, 0.9], "not finite"),
        ([10, 10, INF, 80, 0.9], "not finite"),
        ([10, 10, 50, 80, NAN], "not finite"),
        ([10, 10, 0, 80, 0.9], "zero or negative"),
        ([10, 10, 50, 0, 0.9], "zero or negative"),
        ([10, 10, -50, 80, 0.9], "zero or negative"),
        ([700, 10, 50, 80, 0.9], "entirely outside the 640x480 image"),
        ([-100, -100, 50, 50, 0.9], "entirely outside the 640x480 image"),
        ([639.5, 10, 50, 80, 0.9], "less than 1 pixel"),
    ],
)
def test_a_bad_box_is_skipped_with_a_message_naming_image_and_box(box, words):
    kept, messages = clean_person_boxes(np.array([box, [10, 20, 30, 40, 0.5]]), WIDTH, HEIGHT, "x.jpg")
    np.testing.assert_array_equal(kept, [[10, 20, 30, 40, 0.5]])  # the good box survives unchanged
    assert len(messages) == 1
    assert messages[0].startswith("x.jpg: person box [") and words in messages[0]
    assert f"{box[0]:g}" in messages[0]


@pytest.mark.parametrize(
    ("box", "clipped"),
    [
        ([0, 0, 1e12, 1e12, 1.0], [0, 0, WIDTH, HEIGHT, 1.0]),
        ([-20, -30, 100, 100, 0.7], [0, 0, 80, 70, 0.7]),
        ([600, 400, 100, 100, 0.7], [600, 400, 40, 80, 0.7]),
    ],
)
def test_boxes_reaching_outside_are_clipped_to_the_image(box, clipped):
    kept, messages = clean_person_boxes(np.array([box]), WIDTH, HEIGHT, "x.jpg")
    assert messages == []
    np.testing.assert_allclose(kept, [clipped])


def test_detector_output_forms_give_the_same_array():
    pairs = [([1, 2, 3, 4], 0.5), ((5, 6, 7, 8), 0.25)]
    expected = np.array([[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.25]])
    np.testing.assert_array_equal(as_box_array(pairs), expected)
    np.testing.assert_array_equal(as_box_array(expected), expected)
    np.testing.assert_array_equal(as_box_array([[1, 2, 3, 4]]), [[1, 2, 3, 4, 1.0]])
    assert as_box_array([]).shape == (0, 5)
    with pytest.raises(ValueError, match=r"\(N, 4\|5\).*got shape \(2, 3\)"):
        as_box_array([[1, 2, 3], [4, 5, 6]])


def test_boxes_file_in_both_forms(tmp_path):
    by_name = tmp_path / "by_name.json"
    by_name.write_text(json.dumps({"a.jpg": [[1, 2, 3, 4], [5, 6, 7, 8, 0.5]], "7": []}))
    boxes, whole_image = load_boxes_file(by_name)
    assert whole_image
    np.testing.assert_array_equal(boxes["a.jpg"], [[1, 2, 3, 4, 1], [5, 6, 7, 8, 0.5]])
    assert boxes["7"].shape == (0, 5)

    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps([
        {"image_id": 785, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": 785, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9},  # a car: ignored
        {"image_id": 9, "category_id": 1, "bbox": [5, 6, 7, 8], "score": 0.4, "file_name": "b.png"},
    ]))  # fmt: skip
    boxes, whole_image = load_boxes_file(detections)
    assert not whole_image and set(boxes) == {"id:785", "b.png"}
    np.testing.assert_array_equal(boxes["id:785"], [[1, 2, 3, 4, 0.9]])


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (None, FileNotFoundError, "boxes file not found"),
        ("{not json", ValueError, "is not valid JSON"),
        ('{"a.jpg": [[1, 2, 3]]}', ValueError, "each box of 'a.jpg' must be [x, y, w, h]"),
        ('{"a.jpg": [["1", 2, 3, 4]]}', ValueError, "each box of 'a.jpg' must be"),
        ('[{"image_id": 1, "bbox": [1, 2, 3]}]', ValueError, "entry 0: bbox must be 4 numbers"),
        ('[{"bbox": [1, 2, 3, 4]}]', ValueError, "entry 0: expected an object with image_id"),
        ("3", ValueError, "expected a JSON object mapping image names"),
    ],
)
def test_bad_boxes_files_are_named(tmp_path, content, error, words):
    path = tmp_path / "boxes.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error) as info:
        load_boxes_file(path)
    assert str(path) in str(info.value) and words in str(info.value)
