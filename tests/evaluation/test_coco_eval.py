"""COCO keypoints: OKS and OKS-NMS on hand-made cases, rescoring, results files, COCOeval on real data."""

from __future__ import annotations

import json
import logging
import math
import zipfile

import numpy as np
import pytest

from boxpose.evaluation.coco import (
    STAT_NAMES,
    build_keypoint_results,
    evaluate_keypoints,
    format_coco_table,
    load_results,
    oks_iou,
    oks_nms,
    rescore,
    soft_oks_nms,
    write_results,
    write_test_dev_submission,
)
from boxpose.keypoints import COCO

# faster-coco-eval-keypoints/README.md: COCOeval stats of dt_dataset.json on gt_dataset.json.
REFERENCE_STATS = [
    0.5048844884488449, 0.7227722772277227, 0.6336633663366337, 0.46633663366336636, 0.7504950495049505,
    0.5181818181818182, 0.7272727272727273, 0.6363636363636364, 0.4666666666666666, 0.75,
]  # fmt: skip

# Two joints with sigma 0.5: (2 sigma)^2 = 1. With both areas 2 (s = 2), a joint moved by 2 px has
# e = 4 / 1 / 2 / 2 = 1, so its similarity is exp(-1); a joint in place has similarity 1.
SIGMAS = [0.5, 0.5]
OKS_ONE_JOINT_MOVED = (math.exp(-1.0) + 1.0) / 2  # 0.6839...


def _person(x: float, y: float, score: float = 1.0) -> np.ndarray:
    return np.array([[x, y, score], [x + 10.0, y, score]])


# --- OKS ----------------------------------------------------------------------------------------


def test_oks_identical_and_hand_computed():
    a = _person(0, 0)
    moved = a.copy()
    moved[0, 0] += 2.0
    far = _person(100, 100)
    oks = oks_iou(a, np.stack([a, moved, far]), 2.0, np.array([2.0, 2.0, 2.0]), sigmas=SIGMAS)
    assert oks[0] == pytest.approx(1.0)
    assert oks[1] == pytest.approx(OKS_ONE_JOINT_MOVED, rel=1e-12)
    assert oks[2] == pytest.approx(0.0, abs=1e-12)


def test_oks_uses_the_mean_of_both_areas():
    a = _person(0, 0)
    moved = a.copy()
    moved[0, 0] += 2.0
    # areas 1 and 3: s = 2 again, so the same value as above.
    assert oks_iou(a, moved[None], 1.0, [3.0], sigmas=SIGMAS)[0] == pytest.approx(OKS_ONE_JOINT_MOVED)


def test_oks_accepts_flat_rows_and_default_coco_sigmas():
    a = np.random.default_rng(0).uniform(0, 100, size=(17, 3))
    b = a + 1.0
    flat = oks_iou(a.reshape(-1), b.reshape(1, -1), 500.0, [500.0])
    # One pixel along x and y: d^2 = 2, e_k = 2 / (2 sigma_k)^2 / 500 / 2.
    sig = np.array(COCO.sigmas)
    expected = np.mean(np.exp(-2.0 / (2 * sig) ** 2 / (500.0 + np.spacing(1)) / 2))
    assert flat[0] == pytest.approx(expected, rel=1e-12)


def test_oks_in_vis_thr_keeps_joints_confident_in_both_people():
    a = _person(0, 0)
    moved = a.copy()
    moved[0, 0] += 2.0
    a[1, 2] = 0.1  # joint 1 unsure in a: only joint 0 counts
    assert oks_iou(a, moved[None], 2.0, [2.0], sigmas=SIGMAS, in_vis_thr=0.2)[0] == pytest.approx(
        math.exp(-1)
    )
    moved[0, 2] = 0.1  # and joint 0 unsure in b: nothing counts
    assert oks_iou(a, moved[None], 2.0, [2.0], sigmas=SIGMAS, in_vis_thr=0.2)[0] == 0.0


def test_oks_shape_error():
    with pytest.raises(ValueError, match=r"oks_iou: expected kpts_a \(2, 2\|3\)"):
        oks_iou(np.zeros((3, 3)), np.zeros((1, 3, 3)), 1.0, [1.0], sigmas=SIGMAS)


# --- OKS-NMS ------------------------------------------------------------------------------------


def test_oks_nms_two_identical_people_keeps_the_higher_score():
    kpts = np.stack([_person(0, 0), _person(0, 0)])
    assert oks_nms(kpts, [0.3, 0.8], [2.0, 2.0], sigmas=SIGMAS) == [1]


def test_oks_nms_two_people_far_apart_keeps_both_by_score():
    kpts = np.stack([_person(0, 0), _person(200, 0)])
    assert oks_nms(kpts, [0.3, 0.8], [2.0, 2.0], sigmas=SIGMAS) == [1, 0]


def test_oks_nms_threshold_keeps_oks_at_or_below_it():
    moved = _person(0, 0)
    moved[0, 0] += 2.0
    kpts = np.stack([_person(0, 0), moved, _person(200, 0)])  # OKS(0, 1) = 0.684
    assert oks_nms(kpts, [0.9, 0.8, 0.7], [2.0] * 3, thr=0.7, sigmas=SIGMAS) == [0, 1, 2]
    assert oks_nms(kpts, [0.9, 0.8, 0.7], [2.0] * 3, thr=0.6, sigmas=SIGMAS) == [0, 2]
    assert oks_nms(kpts, [0.9, 0.8, 0.7], [2.0] * 3, thr=OKS_ONE_JOINT_MOVED, sigmas=SIGMAS) == [0, 1, 2]
    assert oks_nms(np.zeros((0, 2, 3)), [], [], sigmas=SIGMAS) == []


def test_soft_oks_nms_gaussian_decay():
    # A (score 1) is taken first; B overlaps it with OKS 0.684, so B's score decays by
    # exp(-0.684^2 / 0.9) = 0.5947; C is far from both (no decay, score 0.4).
    # B = 0.68 -> 0.4044 > 0.4: B before C.  B = 0.66 -> 0.3925 < 0.4: C before B.
    moved = _person(0, 0)
    moved[0, 0] += 2.0
    kpts = np.stack([_person(0, 0), moved, _person(300, 0)])
    decay = math.exp(-(OKS_ONE_JOINT_MOVED**2) / 0.9)
    assert 0.68 * decay > 0.4 > 0.66 * decay
    assert soft_oks_nms(kpts, [1.0, 0.68, 0.4], [2.0] * 3, thr=0.9, sigmas=SIGMAS) == [0, 1, 2]
    assert soft_oks_nms(kpts, [1.0, 0.66, 0.4], [2.0] * 3, thr=0.9, sigmas=SIGMAS) == [0, 2, 1]


def test_soft_oks_nms_keeps_duplicates_but_at_most_max_dets():
    kpts = np.stack([_person(0, 0), _person(0, 0)])
    assert soft_oks_nms(kpts, [0.5, 0.9], [2.0, 2.0], sigmas=SIGMAS) == [1, 0]
    many = np.stack([_person(100.0 * i, 0) for i in range(25)])
    kept = soft_oks_nms(many, np.linspace(0.1, 0.9, 25), [2.0] * 25, sigmas=SIGMAS)
    assert kept == list(range(24, 4, -1))  # the 20 best, by score


# --- rescoring and the results list ----------------------------------------------------------------


def test_rescore_is_box_score_times_mean_confidence_above_threshold():
    # 0.2 is not above 0.2: the mean is over 0.3 and 0.5 = 0.4.
    assert rescore(0.8, [0.1, 0.2, 0.3, 0.5]) == pytest.approx(0.32)
    assert rescore(0.8, [0.1, 0.2]) == 0.0
    np.testing.assert_allclose(rescore([1.0, 0.5], [[0.9, 0.1], [0.3, 0.5]]), [0.9, 0.2])


def _coco_person(x: float, y: float, conf: float) -> np.ndarray:
    kpts = np.zeros((17, 3))
    kpts[:, 0] = x + np.arange(17) * 3.0
    kpts[:, 1] = y + np.arange(17) * 5.0
    kpts[:, 2] = conf
    return kpts


def test_build_keypoint_results_rescores_groups_and_suppresses():
    image_ids = [7, 3, 7, 7]
    kpts = np.stack(
        [
            _coco_person(10, 10, 0.5),
            _coco_person(0, 0, 0.9),
            _coco_person(10, 10, 0.8),
            _coco_person(300, 10, 0.6),
        ]
    )
    box_scores = [1.0, 0.5, 0.9, 1.0]
    areas = [4000.0] * 4
    results = build_keypoint_results(image_ids, kpts, box_scores, areas, nms="oks")
    # Image 7 first (first seen); its duplicates (people 0 and 2) keep the better one: person 2 (0.72).
    assert [(r["image_id"], round(r["score"], 6)) for r in results] == [(7, 0.72), (7, 0.6), (3, 0.45)]
    first = results[0]
    assert first["category_id"] == 1
    assert first["keypoints"] == [float(v) for v in kpts[2].reshape(-1)]
    assert len(first["keypoints"]) == 51
    json.dumps(results)  # plain Python types only

    unsuppressed = build_keypoint_results(image_ids, kpts, box_scores, areas, nms="none")
    assert [(r["image_id"], round(r["score"], 6)) for r in unsuppressed] == [
        (7, 0.5),
        (7, 0.72),
        (7, 0.6),
        (3, 0.45),
    ]
    soft = build_keypoint_results(image_ids, kpts, box_scores, areas, nms="soft")
    assert [round(r["score"], 6) for r in soft] == [0.72, 0.6, 0.5, 0.45]  # duplicate decayed below the other


def test_build_keypoint_results_errors():
    with pytest.raises(ValueError, match="nms must be one of"):
        build_keypoint_results([1], np.zeros((1, 17, 3)), [1.0], [1.0], nms="box")
    with pytest.raises(ValueError, match=r"keypoints \(M, 17, 3\)"):
        build_keypoint_results([1], np.zeros((1, 16, 3)), [1.0], [1.0])
    with pytest.raises(ValueError, match=r"box_scores \(M,\)"):
        build_keypoint_results([1, 2], np.zeros((2, 17, 3)), [1.0], [1.0, 1.0])


# --- files ----------------------------------------------------------------------------------------


def _result(image_id: int = 1, score: float = 0.5) -> dict:
    return {"image_id": image_id, "category_id": 1, "keypoints": [1.5] * 51, "score": score}


def test_results_file_round_trip(tmp_path):
    results = build_keypoint_results(
        [1, 2], np.stack([_coco_person(0, 0, 0.5)] * 2), [0.9, 0.8], [100.0, 100.0]
    )
    write_results(tmp_path / "res.json", results)
    assert load_results(tmp_path / "res.json") == results


def test_results_file_errors(tmp_path):
    bad = _result()
    del bad["score"]
    with pytest.raises(ValueError, match=r"result 1 has no 'score'"):
        write_results(tmp_path / "r.json", [_result(), bad])
    with pytest.raises(ValueError, match=r"result 0: 'keypoints' must be a list of 51 numbers, got 34"):
        write_results(tmp_path / "r.json", [{**_result(), "keypoints": [0.0] * 34}])
    with pytest.raises(ValueError, match="must be finite numbers"):
        write_results(tmp_path / "r.json", [{**_result(), "score": float("nan")}])
    (tmp_path / "dict.json").write_text('{"image_id": 1}')
    with pytest.raises(ValueError, match="must be a JSON list of objects, got a dict"):
        load_results(tmp_path / "dict.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError, match="no such results file"):
        load_results(tmp_path / "absent.json")


def test_test_dev_submission_file_names_and_zip(tmp_path):
    results = [_result(11), _result(12)]
    zip_path = write_test_dev_submission(tmp_path / "sub", results, alg_name="boxpose-w32")
    assert zip_path.name == "person_keypoints_test-dev2017_boxpose-w32_results.zip"
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == ["person_keypoints_test-dev2017_boxpose-w32_results.json"]
        assert json.loads(z.read(z.namelist()[0])) == results
    with pytest.raises(ValueError, match="alg_name must be letters, digits and '-' only"):
        write_test_dev_submission(tmp_path, results, alg_name="my_alg")
    info = tmp_path / "image_info_test-dev2017.json"
    info.write_text(json.dumps({"images": [{"id": 11}]}))
    with pytest.raises(ValueError, match="1 result image id"):
        write_test_dev_submission(tmp_path, results, image_info_file=info)


# --- COCOeval -------------------------------------------------------------------------------------


def test_reference_stats_on_real_results(realdata):
    folder = realdata / "faster-coco-eval-keypoints"
    gt = json.loads((folder / "gt_dataset.json").read_text())
    assert all("segmentation" not in ann for ann in gt["annotations"])  # loading works without it
    stats = evaluate_keypoints(folder / "gt_dataset.json", folder / "dt_dataset.json")
    assert list(stats) == list(STAT_NAMES)
    np.testing.assert_allclose(list(stats.values()), REFERENCE_STATS, atol=1e-4)


def test_evaluate_does_not_modify_the_results_list(realdata):
    folder = realdata / "faster-coco-eval-keypoints"
    results = json.loads((folder / "dt_dataset.json").read_text())
    before = json.dumps(results)
    stats = evaluate_keypoints(folder / "gt_dataset.json", results)
    assert json.dumps(results) == before
    assert stats["AP"] == pytest.approx(REFERENCE_STATS[0], abs=1e-4)


def test_summary_is_logged_not_printed(realdata, caplog, capsys):
    folder = realdata / "faster-coco-eval-keypoints"
    with caplog.at_level(logging.INFO, logger="boxpose.evaluation.coco"):
        evaluate_keypoints(folder / "gt_dataset.json", folder / "dt_dataset.json")
    assert capsys.readouterr().out == ""
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] = 0.505" in caplog.text


def _gt_people(ann_file) -> list[dict]:
    data = json.loads(ann_file.read_text())
    return [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]


def test_ground_truth_as_predictions_gives_ap_1(realdata):
    ann_file = realdata / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
    results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in _gt_people(ann_file)
    ]
    stats = evaluate_keypoints(ann_file, results)
    assert stats == dict.fromkeys(STAT_NAMES, 1.0)


def test_ground_truth_through_rescoring_and_oks_nms_gives_ap_1(realdata):
    ann_file = realdata / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
    people = _gt_people(ann_file)
    kpts = np.array([a["keypoints"] for a in people], dtype=np.float64).reshape(-1, 17, 3)
    kpts[..., 2] = kpts[..., 2] > 0  # confidence 1 where labelled
    results = build_keypoint_results(
        [a["image_id"] for a in people],
        kpts,
        np.ones(len(people)),
        [a["bbox"][2] * a["bbox"][3] for a in people],
        nms="oks",
    )
    assert len(results) == len(people)  # no two real people overlap with OKS > 0.9
    assert evaluate_keypoints(ann_file, results)["AP"] == 1.0


def test_empty_results_give_zeros_and_a_warning(realdata, caplog):
    ann_file = realdata / "faster-coco-eval-keypoints" / "gt_dataset.json"
    with caplog.at_level(logging.WARNING, logger="boxpose.evaluation.coco"):
        stats = evaluate_keypoints(ann_file, [])
    assert stats == dict.fromkeys(STAT_NAMES, 0.0)
    assert "no keypoint results" in caplog.text


def test_evaluate_errors(tmp_path, realdata):
    ann_file = realdata / "faster-coco-eval-keypoints" / "gt_dataset.json"
    with pytest.raises(
        ValueError, match=r"1 result image id\(s\) are not in the ground truth \(e\.g\. \[42\]\)"
    ):
        evaluate_keypoints(ann_file, [_result(42)])
    with pytest.raises(FileNotFoundError, match="no such annotation file"):
        evaluate_keypoints(tmp_path / "absent.json", [_result()])


def test_evaluate_accepts_a_loaded_ground_truth_dict():
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": 2000.0,
                "bbox": [10, 10, 40, 50],
                "num_keypoints": 17,
                "keypoints": [20, 30, 2] * 17,
            }
        ],
    }
    stats = evaluate_keypoints(
        gt, [{"image_id": 1, "category_id": 1, "keypoints": [20, 30, 1] * 17, "score": 1.0}]
    )
    # The only person is medium-sized (32^2 < 2000 < 96^2): no large person, so APL and ARL are -1.
    assert stats["AP"] == pytest.approx(1.0) and stats["APM"] == pytest.approx(1.0)
    assert stats["APL"] == -1.0 and stats["ARL"] == -1.0


def test_format_coco_table():
    stats = dict(zip(STAT_NAMES, REFERENCE_STATS))
    header, values = format_coco_table(stats).splitlines()
    assert header.split() == list(STAT_NAMES)
    assert values.split()[:2] == ["0.5049", "0.7228"]
