"""MPII PCKh: the reference numbers on real data, hand-made cases, the .mat files and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from boxpose.evaluation.mpii import (
    MAT_JOINT_NAMES,
    PCKH_COLUMNS,
    MPIIGroundTruth,
    compute_pckh,
    format_pckh_table,
    load_mpii_gt,
    load_pred_mat,
    save_mpii_gt,
    save_pred_mat,
    to_mpii_convention,
)
from boxpose.keypoints import MPII

# bearpaw-mpii-eval/README.md: PCKh of the Tompson et al. predictions (pos_pred_src) on 2958 val people.
REFERENCE_AT_05 = {
    "Head": 95.6003, "Shoulder": 92.7140, "Elbow": 83.3646, "Wrist": 76.7357,
    "Hip": 81.9283, "Knee": 73.3628, "Ankle": 65.4462, "Mean": 82.3367,
}  # fmt: skip
REFERENCE_AT_01 = {
    "Head": 42.5648, "Shoulder": 33.0333, "Elbow": 32.8447, "Wrist": 31.0581,
    "Hip": 15.7003, "Knee": 20.5131, "Ankle": 19.8628, "Mean": 28.9748,
}  # fmt: skip
REFERENCE_COUNTS = [
    2115, 2485, 2889, 2888, 2478, 2119, 2878, 2932, 2932, 2932, 2928, 2935, 2944, 2944, 2932, 2909,
]  # fmt: skip


@pytest.fixture(scope="module")
def bearpaw_mat(realdata):
    return realdata / "bearpaw-mpii-eval" / "detections_our_format.mat"


@pytest.fixture(scope="module")
def tompson_preds(bearpaw_mat) -> np.ndarray:
    return sio.loadmat(str(bearpaw_mat))["pos_pred_src"].transpose(2, 0, 1)


def test_reference_pckh_on_real_validation_set(bearpaw_mat, tompson_preds):
    gt = load_mpii_gt(bearpaw_mat)
    assert gt.num_people == 2958
    result = compute_pckh(tompson_preds, gt)
    for column, value in REFERENCE_AT_05.items():
        assert result[column] == pytest.approx(value, abs=1e-4), column
    for column, value in REFERENCE_AT_01.items():
        key = "Mean@0.1" if column == "Mean" else column
        got = result[key] if column == "Mean" else result["columns@0.1"][column]
        assert got == pytest.approx(value, abs=1e-4), key
    assert list(result["joint_counts"].values()) == REFERENCE_COUNTS


def test_ground_truth_as_predictions_scores_100(bearpaw_mat):
    gt = load_mpii_gt(bearpaw_mat)
    result = compute_pckh(gt.joints, gt)
    for column in PCKH_COLUMNS:
        assert result[column] == pytest.approx(100.0), column


def test_mean_at_0_1_uses_threshold_0_10_not_0_11(bearpaw_mat, tompson_preds):
    gt = load_mpii_gt(bearpaw_mat)
    result = compute_pckh(tompson_preds, gt)
    assert compute_pckh(tompson_preds, gt, threshold=0.1)["Mean"] == pytest.approx(result["Mean@0.1"])
    # The old repositories' "Mean@0.1" (threshold 0.11) is a different, higher number.
    assert compute_pckh(tompson_preds, gt, threshold=0.11)["Mean"] > result["Mean@0.1"] + 1.0


def _hand_made_case() -> tuple[MPIIGroundTruth, np.ndarray]:
    """Two people, head boxes 30 x 40 (diagonal 50, head size 30: threshold 0.5 = 15 px, 0.1 = 3 px)."""
    rng = np.random.default_rng(0)
    joints = rng.integers(100, 400, size=(2, 16, 2)).astype(np.float64)  # integers: offsets stay exact
    missing = np.zeros((2, 16), dtype=bool)
    missing[1, [MPII.index("r_ankle"), MPII.index("l_ankle")]] = True
    headboxes = np.array([[[10.0, 20.0], [40.0, 60.0]], [[0.0, 0.0], [30.0, 40.0]]])
    preds = joints.copy()
    preds[0, MPII.index("r_ankle")] += (15.0, 0.0)  # error exactly 0.5: correct (<= is inclusive)
    preds[0, MPII.index("l_ankle")] += (9.0, 12.0)  # distance 15: correct
    preds[0, MPII.index("head_top")] += (0.0, 15.01)  # just over: wrong
    preds[0, MPII.index("pelvis")] += (100.0, 0.0)  # wrong, but pelvis is not in Mean
    preds[1, MPII.index("r_ankle")] += (500.0, 0.0)  # not annotated: ignored
    preds[1, MPII.index("r_wrist")] += (16.0, 0.0)  # wrong
    return MPIIGroundTruth(joints, missing, headboxes), preds


def test_hand_made_case():
    gt, preds = _hand_made_case()
    result = compute_pckh(preds, gt)
    # Per joint: ankles 1/1 each, head_top 1/2, r_wrist 1/2, pelvis 1/2, all others 2/2.
    assert result["per_joint"]["r_ankle"] == 100.0
    assert result["per_joint"]["head_top"] == 50.0
    assert result["per_joint"]["pelvis"] == 50.0
    assert result["joint_counts"]["r_ankle"] == 1
    assert result["Head"] == 50.0
    assert result["Wrist"] == 75.0
    assert result["Ankle"] == 100.0
    assert result["Shoulder"] == 100.0
    # Mean over 14 joints weighted by counts: 24 correct of 26 annotated instances.
    assert result["Mean"] == pytest.approx(100 * 24 / 26)
    # At 0.1 (3 px) only the exact joints are right: 22 of 26 (ankles 0/1, head_top 1/2, r_wrist 1/2).
    assert result["Mean@0.1"] == pytest.approx(100 * 22 / 26)
    assert result["columns@0.1"]["Ankle"] == 0.0


def test_nan_prediction_counts_as_wrong():
    gt, _ = _hand_made_case()
    preds = gt.joints.copy()
    preds[0, MPII.index("head_top")] = np.nan
    assert compute_pckh(preds, gt)["Head"] == 50.0


def test_joint_never_annotated_gives_nan_and_is_left_out_of_mean():
    gt, _ = _hand_made_case()
    gt.missing[:, MPII.index("upper_neck")] = True
    result = compute_pckh(gt.joints, gt)
    assert np.isnan(result["per_joint"]["upper_neck"])
    assert result["Mean"] == 100.0


def test_to_mpii_convention_adds_one_and_drops_scores():
    preds0 = np.zeros((2, 16, 3))
    preds0[..., 2] = 0.7
    out = to_mpii_convention(preds0)
    assert out.shape == (2, 16, 2)
    assert np.all(out == 1.0)


def test_format_pckh_table():
    gt, preds = _hand_made_case()
    table = format_pckh_table(compute_pckh(preds, gt))
    title, header, values = table.splitlines()
    assert title == "MPII PCKh@0.5 (2 people)"
    assert header.split() == list(PCKH_COLUMNS)
    # Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1
    expected = ["50.00", "100.00", "100.00", "75.00", "100.00", "100.00", "100.00", "92.31", "84.62"]
    assert values.split() == expected


# --- files ---------------------------------------------------------------------------------------


def test_gt_file_round_trip(tmp_path):
    gt, _ = _hand_made_case()
    save_mpii_gt(tmp_path / "gt.mat", gt)
    loaded = load_mpii_gt(tmp_path / "gt.mat")
    np.testing.assert_array_equal(loaded.joints, gt.joints)
    np.testing.assert_array_equal(loaded.missing, gt.missing)
    np.testing.assert_array_equal(loaded.headboxes, gt.headboxes)
    assert loaded.joint_names == MAT_JOINT_NAMES


def test_real_gt_file_reads_like_the_reference_code(bearpaw_mat):
    gt = load_mpii_gt(bearpaw_mat)
    raw = sio.loadmat(str(bearpaw_mat))
    np.testing.assert_array_equal(gt.joints[7], raw["pos_gt_src"][:, :, 7])
    np.testing.assert_array_equal(gt.missing[:, 0], raw["jnt_missing"][0] == 1)
    np.testing.assert_array_equal(gt.headboxes[3], raw["headboxes_src"][:, :, 3])


def test_one_person_gt_file_without_trailing_singleton_axis(tmp_path):
    # MATLAB drops trailing singleton dimensions: one person is stored as (16, 2) and (2, 2).
    gt, _ = _hand_made_case()
    sio.savemat(
        tmp_path / "one.mat",
        {
            "jnt_missing": gt.missing[0].astype(np.uint8)[:, None],
            "pos_gt_src": gt.joints[0],
            "headboxes_src": gt.headboxes[0],
        },
    )
    loaded = load_mpii_gt(tmp_path / "one.mat")
    assert loaded.num_people == 1
    np.testing.assert_array_equal(loaded.joints[0], gt.joints[0])


def test_pred_mat_round_trip(tmp_path):
    preds = np.random.default_rng(1).uniform(0, 500, size=(5, 16, 2))
    save_pred_mat(tmp_path / "pred.mat", preds)
    assert sio.loadmat(str(tmp_path / "pred.mat"))["preds"].shape == (5, 16, 2)
    np.testing.assert_array_equal(load_pred_mat(tmp_path / "pred.mat"), preds)


# --- errors --------------------------------------------------------------------------------------


def _write_gt_fields(path, **override):
    gt, _ = _hand_made_case()
    fields = {
        "jnt_missing": gt.missing.T.astype(np.uint8),
        "pos_gt_src": gt.joints.transpose(1, 2, 0),
        "headboxes_src": gt.headboxes.transpose(1, 2, 0),
    }
    fields.update(override)
    sio.savemat(path, {k: v for k, v in fields.items() if v is not None})
    return path


def test_gt_missing_field(tmp_path):
    path = _write_gt_fields(tmp_path / "gt.mat", headboxes_src=None)
    with pytest.raises(ValueError, match=r"missing field\(s\) \['headboxes_src'\]"):
        load_mpii_gt(path)


def test_gt_wrong_joint_count(tmp_path):
    path = _write_gt_fields(tmp_path / "gt.mat", pos_gt_src=np.zeros((14, 2, 2)))
    with pytest.raises(ValueError, match=r"'pos_gt_src' must have shape \(16, 2, N\), got \(14, 2, 2\)"):
        load_mpii_gt(path)


def test_gt_mismatched_person_counts(tmp_path):
    path = _write_gt_fields(tmp_path / "gt.mat", jnt_missing=np.zeros((16, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"'jnt_missing' must have shape \(16, 2\) like 'pos_gt_src'"):
        load_mpii_gt(path)
    path = _write_gt_fields(tmp_path / "gt2.mat", headboxes_src=np.zeros((2, 2, 5)))
    with pytest.raises(ValueError, match=r"'headboxes_src' must have shape \(2, 2, 2\)"):
        load_mpii_gt(path)


def test_gt_joint_names_out_of_order(tmp_path):
    names = np.empty((1, 16), dtype=object)
    names[0, :] = list(reversed(MAT_JOINT_NAMES))
    path = _write_gt_fields(tmp_path / "gt.mat", dataset_joints=names)
    with pytest.raises(ValueError, match="is not the MPII order"):
        load_mpii_gt(path)


def test_unreadable_and_absent_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such \.mat file"):
        load_mpii_gt(tmp_path / "absent.mat")
    (tmp_path / "text.mat").write_text("not a mat file")
    with pytest.raises(ValueError, match=r"not a readable MATLAB \.mat file"):
        load_pred_mat(tmp_path / "text.mat")


def test_pred_mat_errors(tmp_path):
    sio.savemat(tmp_path / "nokey.mat", {"predictions": np.zeros((2, 16, 2))})
    with pytest.raises(ValueError, match=r"no field 'preds' \(it has \['predictions'\]\)"):
        load_pred_mat(tmp_path / "nokey.mat")
    sio.savemat(tmp_path / "shape.mat", {"preds": np.zeros((16, 2, 4))})
    with pytest.raises(ValueError, match=r"'preds' must have shape \(N, 16, 2\).*got \(16, 2, 4\)"):
        load_pred_mat(tmp_path / "shape.mat")
    with pytest.raises(ValueError, match=r"must have shape \(N, 16, 2\)"):
        save_pred_mat(tmp_path / "bad.mat", np.zeros((4, 17, 2)))


def test_compute_pckh_errors():
    gt, preds = _hand_made_case()
    with pytest.raises(ValueError, match="predictions cover 1 people but the ground truth has 2"):
        compute_pckh(preds[:1], gt)
    with pytest.raises(ValueError, match=r"must have shape \(N, 16, 2\)"):
        compute_pckh(preds[:, :14], gt)
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        compute_pckh(preds, gt, threshold=0.0)
    gt.headboxes[1] = [[5.0, 5.0], [5.0, 5.0]]
    with pytest.raises(ValueError, match="person 1 has a degenerate head box"):
        compute_pckh(preds, gt)


def test_ground_truth_shape_errors():
    with pytest.raises(ValueError, match=r"MPIIGroundTruth.missing must have shape \(2, 16\), got \(3, 16\)"):
        MPIIGroundTruth(np.zeros((2, 16, 2)), np.zeros((3, 16)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"MPIIGroundTruth.joints must have shape \(N, 16, 2\)"):
        MPIIGroundTruth(np.zeros((16, 2)), np.zeros((1, 16)), np.zeros((1, 2, 2)))
