"""MPII loader on the real samples (mmpose-mpii), checked against the real ground truth (bearpaw-mpii-eval).

The gt_valid.mat format itself lives in boxpose.evaluation.mpii and is tested in tests/evaluation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from boxpose.data import AnnotationError, ImageReadError, MPIIDataset
from boxpose.evaluation.mpii import MPIIGroundTruth, load_mpii_gt, save_mpii_gt
from tests.pipelines import make_pipeline


@pytest.fixture(scope="module")
def mpii_dir(realdata: Path) -> Path:
    return realdata / "mmpose-mpii"


@pytest.fixture(scope="module")
def bearpaw_mat(realdata: Path) -> Path:
    return realdata / "bearpaw-mpii-eval" / "detections_our_format.mat"


def test_mpii_loader_matches_bearpaw_gt(mpii_dir, bearpaw_mat):
    """The 5 mmpose persons are validation persons 0-4: after the loader's conversion, the joints equal
    pos_gt_src[:, :, :5] - 1 and the visibility 1 - jnt_missing."""
    ds = MPIIDataset(mpii_dir / "test_mpii.json", mpii_dir, make_pipeline("mpii"))
    gt = load_mpii_gt(bearpaw_mat)
    assert len(ds) == 5 and ds.spec.name == "mpii"
    raw = json.loads((mpii_dir / "test_mpii.json").read_text())
    visible, joints0 = ~gt.missing, gt.joints_zero_based()
    for i, r in enumerate(ds.records):
        np.testing.assert_array_equal(r.visible > 0, visible[i])
        np.testing.assert_allclose(r.joints[visible[i]], joints0[i][visible[i]], atol=1e-4)
        # Centre: 1-based -> 0-based, shifted down by 15 * scale; box: 1.25 * scale * 200 px, square.
        c, s = np.array(raw[i]["center"], dtype=float), raw[i]["scale"]
        np.testing.assert_allclose(r.center, [c[0] - 1, c[1] + 15 * s - 1])
        np.testing.assert_allclose(r.scale, [s * 250, s * 250])
        assert r.image_id == int(raw[i]["image"][:-4]) and r.index == i
    assert [int(r.visible.sum()) for r in ds.records].count(14) == 2


def test_mpii_sample_format_and_collate(mpii_dir):
    ds = MPIIDataset(mpii_dir / "test_mpii.json", mpii_dir, make_pipeline("mpii", train=True))
    torch.manual_seed(0)
    samples = [ds[i] for i in range(2)]
    s = samples[0]
    assert s["image"].shape == (3, 256, 256) and s["image"].dtype == torch.float32
    assert s["target"].shape == (16, 64, 64) and s["target_weight"].shape == (16,)
    assert s["joints"].shape == (16, 3)
    assert set(s["meta"]) == {
        "image_id",
        "image_file",
        "index",
        "center",
        "scale",
        "rotation",
        "score",
        "flipped",
    }
    batch = default_collate(samples)
    assert batch["image"].shape == (2, 3, 256, 256)
    assert batch["meta"]["center"].shape == (2, 2) and batch["meta"]["index"].tolist() == [0, 1]
    assert isinstance(batch["meta"]["image_file"], list) and batch["meta"]["flipped"].dtype == torch.bool


def test_eval_sample_joints_follow_the_crop(mpii_dir):
    ds = MPIIDataset(mpii_dir / "test_mpii.json", mpii_dir, make_pipeline("mpii"))
    s = ds[0]
    r = ds.records[0]
    # Without augmentation the crop maps image point p to (p - centre) * 256 / box + 128.
    expected = (r.joints - r.center) * (256 / r.scale[0]) + 128
    np.testing.assert_allclose(s["joints"][:, :2].numpy(), expected, atol=1e-3)
    assert s["meta"]["rotation"] == 0.0 and not s["meta"]["flipped"] and s["meta"]["score"] == 1.0


@pytest.fixture
def mpii_copy(tmp_path: Path, mpii_dir: Path) -> Path:
    """A writable MPII layout: annot/valid.json (the 5 persons), images/ (their JPEGs)."""
    (tmp_path / "annot").mkdir()
    shutil.copy(mpii_dir / "test_mpii.json", tmp_path / "annot" / "valid.json")
    shutil.copytree(mpii_dir, tmp_path / "images", ignore=shutil.ignore_patterns("*.json"))
    return tmp_path


def test_gt_mat_is_checked_against_the_json(mpii_copy, bearpaw_mat):
    gt = load_mpii_gt(bearpaw_mat)
    gt_file = mpii_copy / "annot" / "gt_valid.mat"

    def write(rows):
        save_mpii_gt(gt_file, MPIIGroundTruth(gt.joints[rows], gt.missing[rows], gt.headboxes[rows]))

    write(list(range(5)))
    ds = MPIIDataset(
        mpii_copy / "annot" / "valid.json", mpii_copy / "images", make_pipeline("mpii"), gt_mat=gt_file
    )
    assert ds.gt is not None and ds.gt.num_people == 5 and ds.gt_mat == gt_file
    # The full 2958-person file does not belong to a 5-person JSON.
    with pytest.raises(AnnotationError, match="2958 persons"):
        MPIIDataset(
            mpii_copy / "annot" / "valid.json",
            mpii_copy / "images",
            make_pipeline("mpii"),
            gt_mat=bearpaw_mat,
        )
    # Same count, wrong order.
    write([1, 0, 2, 3, 4])
    with pytest.raises(AnnotationError, match="same order"):
        MPIIDataset(
            mpii_copy / "annot" / "valid.json", mpii_copy / "images", make_pipeline("mpii"), gt_mat=gt_file
        )


def test_test_json_without_joints(mpii_copy):
    entries = json.loads((mpii_copy / "annot" / "valid.json").read_text())
    test = [{k: e[k] for k in ("image", "center", "scale")} for e in entries]
    (mpii_copy / "annot" / "test.json").write_text(json.dumps(test))
    ds = MPIIDataset(mpii_copy / "annot" / "test.json", mpii_copy / "images", make_pipeline("mpii"))
    s = ds[3]
    assert len(ds) == 5 and not ds.has_joints
    assert s["target_weight"].sum() == 0 and s["target"].abs().sum() == 0


def test_missing_paths_name_the_path_and_the_readme(tmp_path, mpii_copy):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)MPII annotation file not found.*nope\.json.*data/README\.md"
    ):
        MPIIDataset(tmp_path / "nope.json", mpii_copy / "images", make_pipeline("mpii"))
    with pytest.raises(FileNotFoundError, match=r"(?s)MPII image folder not found.*imgs.*README"):
        MPIIDataset(mpii_copy / "annot" / "valid.json", tmp_path / "imgs", make_pipeline("mpii"))
    with pytest.raises(FileNotFoundError, match=r"005808361\.jpg.*image_dir"):
        MPIIDataset(
            mpii_copy / "annot" / "valid.json", mpii_copy / "annot", make_pipeline("mpii")
        )  # exists, wrong folder
    with pytest.raises(FileNotFoundError, match=r"MPII image folder: no path given \(expected the MPII JPEG"):
        MPIIDataset(mpii_copy / "annot" / "valid.json", None, make_pipeline("mpii"))
    with pytest.raises(FileNotFoundError, match="validation ground truth not found"):
        MPIIDataset(
            mpii_copy / "annot" / "valid.json",
            mpii_copy / "images",
            make_pipeline("mpii"),
            gt_mat=tmp_path / "gt.mat",
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("joints", [[1.0, 2.0]] * 15, r"entry 2 \(051423444\.jpg\): joints must be \(16, 2\)"),
        ("joints", [[float("nan"), 2.0]] + [[1.0, 2.0]] * 15, r"entry 2 \(051423444\.jpg\) joints has NaN"),
        ("joints_vis", [1] * 17, r"entry 2 .*joints_vis \(16,\)"),
        ("center", [1.0], r"entry 2 .*center must have 2 numbers"),
        ("scale", -1.0, r"entry 2 .*scale must be positive"),
    ],
)
def test_bad_annotations_name_the_entry(mpii_copy, field, value, message):
    path = mpii_copy / "annot" / "valid.json"
    entries = json.loads(path.read_text())
    entries[2][field] = value
    path.write_text(json.dumps(entries))
    with pytest.raises(AnnotationError, match=message):
        MPIIDataset(path, mpii_copy / "images", make_pipeline("mpii"))


def test_gt_mat_with_missing_fields(mpii_copy):
    import scipy.io

    gt_file = mpii_copy / "annot" / "gt_valid.mat"
    scipy.io.savemat(gt_file, {"pos_gt_src": np.zeros((16, 2, 5))})
    with pytest.raises(AnnotationError, match=r"missing field\(s\) \['jnt_missing', 'headboxes_src'\]"):
        MPIIDataset(
            mpii_copy / "annot" / "valid.json", mpii_copy / "images", make_pipeline("mpii"), gt_mat=gt_file
        )


def test_unreadable_image_is_skipped_warned_and_counted(mpii_copy):
    (mpii_copy / "images" / "051423444.jpg").write_bytes(b"not a jpeg")  # record 2
    ds = MPIIDataset(
        mpii_copy / "annot" / "valid.json",
        mpii_copy / "images",
        make_pipeline("mpii"),
        max_failure_fraction=0.5,
    )
    with pytest.warns(RuntimeWarning, match=r"cannot read image .*051423444\.jpg"):
        s = ds[2]
    assert s["meta"]["index"] == 3  # the next record, deterministically
    assert ds.num_failed == 1
    assert ds[2]["meta"]["index"] == 3  # known failures are skipped without re-reading
    # More failures than allowed: a loud error.
    strict = MPIIDataset(
        mpii_copy / "annot" / "valid.json",
        mpii_copy / "images",
        make_pipeline("mpii"),
        max_failure_fraction=0.01,
    )
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(ImageReadError, match=r"1 of 5 images .* could not be read"),
    ):
        strict[2]
