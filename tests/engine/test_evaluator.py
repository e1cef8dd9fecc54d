"""The evaluator on the real samples: oracle mode (the codec's and the crop chain's upper bound), COCO-mini
training, inference with flip test, and the predictor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from boxpose.cli.train import train
from boxpose.codec.heatmap import HeatmapCodec
from boxpose.config import compose_config
from boxpose.data import COCODataset, MPIIDataset
from boxpose.engine.evaluator import Evaluator
from boxpose.engine.inference import predict_heatmaps
from boxpose.engine.metrics import COCOKeypointMetric, PCKhMetric
from boxpose.evaluation import coco as coco_eval
from boxpose.evaluation.mpii import MPIIGroundTruth, compute_pckh, load_mpii_gt, load_pred_mat, save_mpii_gt
from boxpose.keypoints import COCO
from tests.pipelines import make_pipeline


@pytest.fixture(scope="module")
def mpii_valid(realdata, tmp_path_factory) -> Path:
    """The five real MPII validation persons as a valid.json + gt_valid.mat pair (bearpaw's rows 0-4)."""
    root = tmp_path_factory.mktemp("mpii5")
    (root / "annot").mkdir()
    shutil.copy(realdata / "mmpose-mpii" / "test_mpii.json", root / "annot" / "valid.json")
    shutil.copytree(realdata / "mmpose-mpii", root / "images", ignore=shutil.ignore_patterns("*.json"))
    gt = load_mpii_gt(realdata / "bearpaw-mpii-eval" / "detections_our_format.mat")
    rows = slice(0, 5)
    save_mpii_gt(
        root / "annot" / "gt_valid.mat",
        MPIIGroundTruth(gt.joints[rows], gt.missing[rows], gt.headboxes[rows]),
    )
    return root


def test_oracle_on_real_mpii_is_near_perfect(mpii_valid, tmp_path):
    dataset = MPIIDataset(mpii_valid / "annot" / "valid.json", mpii_valid / "images", make_pipeline("mpii"),
                          gt_mat=mpii_valid / "annot" / "gt_valid.mat")  # fmt: skip
    evaluator = Evaluator(dataset, PCKhMetric(), batch_size=4, workers=0, oracle=True, progress=False)
    result = evaluator.evaluate(torch.nn.Identity(), torch.device("cpu"), tmp_path)
    assert result.metrics["Mean"] >= 99.0, result.table
    assert result.metrics["Mean@0.1"] >= 50.0
    assert (tmp_path / "pred.mat").is_file() and (tmp_path / "metrics.json").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["split"] == "val" and saved["num_persons"] == 5 and saved["oracle"] is True


def test_oracle_on_real_coco_with_ground_truth_boxes_is_well_above_0_9(realdata, tmp_path):
    root = realdata / "coco-mini"
    dataset = COCODataset(root / "annotations" / "person_keypoints_val2017.json", root / "val2017",
                          make_pipeline("coco", input_size=(192, 256), heatmap_size=(48, 64)))  # fmt: skip
    evaluator = Evaluator(dataset, COCOKeypointMetric(), batch_size=16, workers=0, oracle=True,
                          progress=False)  # fmt: skip
    result = evaluator.evaluate(torch.nn.Identity(), torch.device("cpu"), tmp_path)
    assert result.metrics["AP"] > 0.9, result.table
    results = json.loads((tmp_path / "keypoints_results.json").read_text())
    assert json.loads((tmp_path / "metrics.json").read_text())["person_boxes"] == "ground truth"
    assert (
        len(results) == len(dataset)
        and {"image_id", "category_id", "keypoints", "score"} <= results[0].keys()
    )


def test_short_training_on_real_coco_mini_lowers_the_loss(realdata, tmp_path):
    overrides = [
        "data=coco", f"data.root={realdata / 'coco-mini'}", "data.det_file=null", "model=boxnet_tiny",
        "data.input_size=[96,128]", "data.heatmap_size=[24,32]", "schedule=coco", "trainer.epochs=4",
        "trainer.batch_size=16", "trainer.workers=0", "trainer.device=cpu", "trainer.val_every=4",
        "trainer.progress=false", "evaluate.workers=0", "run_name=coco", f"output_dir={tmp_path}",
    ]  # fmt: skip
    summary = train(compose_config("train", overrides))
    history = torch.load(tmp_path / "last.pt", weights_only=True)["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert summary["metric_name"] == "AP" and set(summary["last_metrics"]) >= {"AP", "AP50", "AR"}


class _Constant(torch.nn.Module):
    """A 'network' whose heatmaps depend on the image only through its left/right asymmetry."""

    def forward(self, x):
        n = x.shape[0]
        heatmaps = torch.zeros(n, 17, 8, 6)
        heatmaps[:, :, 2, 1] = 1.0  # a peak on the left side for every joint
        heatmaps[:, 1, 5, 4] = 2.0  # joint 1 (left eye) peaks on the right, bottom
        return heatmaps


def test_flip_test_mirrors_swaps_and_shifts():
    images = torch.zeros(2, 3, 32, 24)
    plain = _Constant()(images)
    merged = predict_heatmaps(_Constant(), images, COCO.flip_pairs, flip_test=True, flip_shift=1)
    # The flipped pass puts the left-eye peak (channel 1) into channel 2 (right eye) after the swap,
    # mirrored to column 6 - 1 - 4 = 1 and shifted one pixel right: column 2.
    assert merged[0, 2, 5, 2] == pytest.approx(1.0)
    assert merged[0, 1, 5, 4] == pytest.approx(1.0)  # half of the unflipped 2.0
    without = predict_heatmaps(_Constant(), images, COCO.flip_pairs, flip_test=False)
    assert torch.equal(without, plain)


def test_predictor_matches_the_evaluators_keypoints(realdata):
    """Predictor.predict on the raw image and a person's box gives the keypoints evaluation computes."""
    import cv2

    from boxpose.codec.affine import center_scale_to_box
    from boxpose.engine.inference import run_inference
    from boxpose.engine.predictor import Predictor
    from boxpose.models import build_model

    torch.manual_seed(0)
    model = build_model("boxnet_tiny", num_joints=17).eval()
    root = realdata / "coco-mini"
    dataset = COCODataset(root / "annotations" / "person_keypoints_val2017.json", root / "val2017",
                          make_pipeline("coco", input_size=(96, 128), heatmap_size=(24, 32)))  # fmt: skip
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, [0, 3]), batch_size=2)
    predictions = run_inference(model, loader, dataset.codec, COCO.flip_pairs, device=torch.device("cpu"),
                                progress=False)  # fmt: skip
    predictor = Predictor(model, COCO, HeatmapCodec((96, 128), (24, 32)))
    for row, index in enumerate([0, 3]):
        record = dataset.records[index]
        # The box whose aspect-fixed, padded crop is this record's (centre, scale).
        box = center_scale_to_box(record.center, record.scale)[None]
        keypoints = predictor.predict(cv2.imread(record.image_file), box)
        np.testing.assert_allclose(keypoints[0], predictions.keypoints[row], rtol=1e-4, atol=1e-3)


def test_a_tolerated_unreadable_image_is_skipped_in_evaluation(mpii_valid, tmp_path):
    """One of the five real MPII images unreadable: the metric covers the other four persons (equal to
    PCKh of the full run's predictions on those rows), the warning and metrics.json name the file."""
    full_set = MPIIDataset(mpii_valid / "annot" / "valid.json", mpii_valid / "images", make_pipeline("mpii"),
                           gt_mat=mpii_valid / "annot" / "gt_valid.mat")  # fmt: skip
    full = Evaluator(full_set, PCKhMetric(), batch_size=2, workers=0, oracle=True, progress=False)
    full_result = full.evaluate(torch.nn.Identity(), torch.device("cpu"), tmp_path / "full")
    root = tmp_path / "broken"
    shutil.copytree(mpii_valid, root)
    entries = json.loads((root / "annot" / "valid.json").read_text())
    broken = root / "images" / entries[2]["image"]
    broken.write_bytes(b"truncated")
    annot = root / "annot"
    dataset = MPIIDataset(annot / "valid.json", root / "images", make_pipeline("mpii"),
                          gt_mat=annot / "gt_valid.mat", max_failure_fraction=0.25)  # fmt: skip
    evaluator = Evaluator(dataset, PCKhMetric(), batch_size=2, workers=0, oracle=True, progress=False)
    with pytest.warns(RuntimeWarning, match=broken.name):
        result = evaluator.evaluate(torch.nn.Identity(), torch.device("cpu"), tmp_path / "out")
    assert result.skipped_persons == 1 and result.skipped_files == [str(broken)]
    rows = [0, 1, 3, 4]
    gt = load_mpii_gt(root / "annot" / "gt_valid.mat")
    subset = MPIIGroundTruth(gt.joints[rows], gt.missing[rows], gt.headboxes[rows])
    preds = full_result.predictions.keypoints[rows, :, :2] + 1.0
    expected = compute_pckh(preds, subset)
    assert result.metrics["Mean"] == pytest.approx(expected["Mean"])
    assert result.metrics["Mean@0.1"] == pytest.approx(expected["Mean@0.1"])
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["num_persons"] == 4
    assert saved["skipped"] == {"persons": 1, "images": 1, "files": [str(broken)]}
    pred_mat = load_pred_mat(tmp_path / "out" / "pred.mat")
    assert pred_mat.shape == (5, 16, 2) and np.isnan(pred_mat[2]).all() and np.isfinite(pred_mat[rows]).all()


def test_an_unreadable_coco_image_is_left_out_of_the_scored_images(realdata, tmp_path):
    """COCO: the images that could not be read are left out of COCOeval's images, so their persons are
    not counted as misses: AP equals that of the full run's predictions on the other images."""
    root = realdata / "coco-mini"
    ann = root / "annotations" / "person_keypoints_val2017.json"
    size = {"input_size": (64, 64), "heatmap_size": (16, 16)}
    full_set = COCODataset(ann, root / "val2017", make_pipeline("coco", **size))
    full = Evaluator(full_set, COCOKeypointMetric(), batch_size=32, workers=0, oracle=True,
                     progress=False).evaluate(torch.nn.Identity(), torch.device("cpu"))  # fmt: skip
    images = tmp_path / "val2017"
    shutil.copytree(root / "val2017", images)
    dataset = COCODataset(ann, images, make_pipeline("coco", **size), max_failure_fraction=0.05)
    broken = Path(dataset.records[-1].image_file)
    broken.write_bytes(b"")
    broken_id = dataset.records[-1].image_id
    persons = sum(r.image_file == str(broken) for r in dataset.records)
    evaluator = Evaluator(dataset, COCOKeypointMetric(), batch_size=32, workers=0, oracle=True,
                          progress=False)  # fmt: skip
    with pytest.warns(RuntimeWarning, match=broken.name):
        result = evaluator.evaluate(torch.nn.Identity(), torch.device("cpu"), tmp_path / "out")
    assert result.skipped_persons == persons and result.skipped_files == [str(broken)]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["skipped"]["persons"] == persons

    p = full.predictions
    keep = p.image_ids != broken_id
    areas = p.scales[keep, 0] * p.scales[keep, 1]
    results = coco_eval.build_keypoint_results(
        p.image_ids[keep], p.keypoints[keep], p.box_scores[keep], areas
    )
    readable = sorted(set(dataset.coco.getImgIds()) - {broken_id})
    expected = coco_eval.evaluate_keypoints(ann, results, image_ids=readable)
    assert result.metrics["AP"] == pytest.approx(expected["AP"]) and result.metrics["AR"] == pytest.approx(
        expected["AR"]
    )
    as_misses = coco_eval.evaluate_keypoints(ann, results)  # the unreadable image's persons as misses
    assert as_misses["AR"] < result.metrics["AR"]
