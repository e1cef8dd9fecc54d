"""The evaluation CLIs, run as a user runs them: ``python -m boxpose.evaluation.{mpii,coco}``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import scipy.io as sio

from boxpose.evaluation.coco import STAT_NAMES
from boxpose.evaluation.mpii import PCKH_COLUMNS, save_pred_mat

# sys.executable is the interpreter running the tests: the project's .venv/bin/python.


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_mpii_cli_prints_table_and_last_line_json(tmp_path, realdata):
    gt = realdata / "bearpaw-mpii-eval" / "detections_our_format.mat"
    save_pred_mat(tmp_path / "pred.mat", sio.loadmat(str(gt))["pos_pred_src"].transpose(2, 0, 1))
    proc = _run("boxpose.evaluation.mpii", "--pred", tmp_path / "pred.mat", "--gt", gt)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "MPII PCKh@0.5 (2958 people)"
    last = json.loads(lines[-1])
    assert list(last) == list(PCKH_COLUMNS)
    assert last["Mean"] == pytest.approx(82.3367, abs=1e-4)
    assert last["Mean@0.1"] == pytest.approx(28.9748, abs=1e-4)
    assert last["Ankle"] == pytest.approx(65.4462, abs=1e-4)


def test_mpii_cli_threshold(tmp_path, realdata):
    gt = realdata / "bearpaw-mpii-eval" / "detections_our_format.mat"
    save_pred_mat(tmp_path / "pred.mat", sio.loadmat(str(gt))["pos_pred_src"].transpose(2, 0, 1))
    proc = _run("boxpose.evaluation.mpii", "--pred", tmp_path / "pred.mat", "--gt", gt, "--threshold", "0.1")
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["Mean"] == pytest.approx(28.9748, abs=1e-4)
    assert last["Head"] == pytest.approx(42.5648, abs=1e-4)


def test_mpii_cli_errors(tmp_path, realdata):
    gt = realdata / "bearpaw-mpii-eval" / "detections_our_format.mat"
    # The GT file has no 'preds' field.
    proc = _run("boxpose.evaluation.mpii", "--pred", gt, "--gt", gt)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "no field 'preds'" in proc.stderr
    assert proc.stdout == ""
    save_pred_mat(tmp_path / "short.mat", sio.loadmat(str(gt))["pos_pred_src"].transpose(2, 0, 1)[:10])
    proc = _run("boxpose.evaluation.mpii", "--pred", tmp_path / "short.mat", "--gt", gt)
    assert proc.returncode == 2
    assert "predictions cover 10 people but the ground truth has 2958" in proc.stderr


def test_coco_cli_prints_table_and_last_line_json(realdata):
    folder = realdata / "faster-coco-eval-keypoints"
    proc = _run(
        "boxpose.evaluation.coco", "--gt", folder / "gt_dataset.json", "--results", folder / "dt_dataset.json"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == list(STAT_NAMES)
    assert "Average Precision" not in proc.stdout  # pycocotools' prints are captured
    last = json.loads(lines[-1])
    assert list(last) == list(STAT_NAMES)
    assert last["AP"] == pytest.approx(0.5048844884488449, abs=1e-4)
    assert last["ARL"] == pytest.approx(0.75, abs=1e-4)


def test_coco_cli_errors(tmp_path, realdata):
    gt = realdata / "faster-coco-eval-keypoints" / "gt_dataset.json"
    results = tmp_path / "res.json"
    results.write_text(json.dumps([{"image_id": 5, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}]))
    proc = _run("boxpose.evaluation.coco", "--gt", gt, "--results", results)
    assert proc.returncode == 2
    assert "error: 1 result image id(s) are not in the ground truth" in proc.stderr
    proc = _run("boxpose.evaluation.coco", "--gt", gt, "--results", tmp_path / "absent.json")
    assert proc.returncode == 2
    assert "no such results file" in proc.stderr


def test_evaluation_does_not_import_data_or_models():
    # evaluation/ must score files that boxpose did not produce: it may not depend on data/ or models/.
    code = (
        "import sys, boxpose.evaluation.mpii, boxpose.evaluation.coco, boxpose.evaluation.pck; "
        "print([m for m in sys.modules if m.startswith(('boxpose.data', 'boxpose.models'))])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
