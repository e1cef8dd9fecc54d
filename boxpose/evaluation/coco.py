"""COCO keypoint evaluation: OKS, OKS-NMS, HRNet's rescoring, the results file, and pycocotools' COCOeval.

Conventions
-----------
- Keypoints are ``(K, 3)`` rows ``(x, y, score)`` in pixels of the original image, in the COCO
  convention of the annotation files (x right, y down, no 1-pixel shift: boxpose's 0-based
  predictions are written as they are). Joint order and OKS sigmas come from
  :data:`boxpose.keypoints.COCO`.
- A *result* is the official COCO keypoint result entry
  ``{"image_id": int, "category_id": 1, "keypoints": [x1, y1, s1, ..., x17, y17, s17], "score": float}``.

The post-processing follows SimpleBaseline/HRNet (``lib/dataset/coco.py::evaluate``, ``lib/nms/nms.py``):
each person's score is the box score times the mean of its keypoint confidences above 0.2
(:func:`rescore`), then the people of each image go through OKS-NMS (greedy, threshold 0.9) or HRNet's
soft OKS-NMS. :func:`build_keypoint_results` does all of it::

    results = build_keypoint_results(image_ids, keypoints, box_scores, areas, nms="oks")
    stats = evaluate_keypoints("person_keypoints_val2017.json", results)
    print(format_coco_table(stats))
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import math
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO as COCOApi
from pycocotools.cocoeval import COCOeval

from boxpose.keypoints import COCO

__all__ = [
    "STAT_NAMES",
    "build_keypoint_results",
    "evaluate_keypoints",
    "format_coco_table",
    "load_results",
    "main",
    "oks_iou",
    "oks_nms",
    "rescore",
    "soft_oks_nms",
    "write_results",
    "write_test_dev_submission",
]

logger = logging.getLogger(__name__)

# The 10 numbers of COCOeval.stats for keypoints, named as the columns of the paper's Tables 2 and 3.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

PERSON_CATEGORY_ID = 1
NMS_MODES = ("none", "oks", "soft")


def _sigmas(sigmas: Sequence[float] | np.ndarray | None) -> np.ndarray:
    return np.asarray(COCO.sigmas if sigmas is None else sigmas, dtype=np.float64)


def oks_iou(
    kpts_a: np.ndarray,
    kpts_b: np.ndarray,
    area_a: float,
    areas_b: np.ndarray,
    sigmas: Sequence[float] | np.ndarray | None = None,
    in_vis_thr: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity between one person and each of M others, as HRNet's ``oks_iou``.

    ``OKS = mean_k exp(-d_k^2 / (2 * s * (2 sigma_k)^2))`` with ``s = (area_a + area_b) / 2``: the
    area is the mean of both people's areas (unlike COCOeval, which uses the ground truth's area).

    Args:
        kpts_a: (K, 2) or (K, 3) keypoints (x, y[, score]), or flat (3K,).
        kpts_b: (M, K, 2) or (M, K, 3), or flat (M, 3K).
        area_a: area of person a in pixels^2 (for predictions: the area of the crop box).
        areas_b: (M,) areas of the others.
        sigmas: (K,) per-joint constants; default COCO's.
        in_vis_thr: if given, average only over joints whose score exceeds it in *both* people (HRNet's
            version of this filter has a bug, ``list(...) and list(...)``, but is never used; this one
            does what it meant).

    Returns:
        (M,) float64 OKS values in [0, 1]; 0 where no joint passes ``in_vis_thr``.
    """
    sig = _sigmas(sigmas)
    k = sig.shape[0]
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(k, 3)
    if b.ndim == 2 and b.shape[1] == 3 * k:
        b = b.reshape(-1, k, 3)
    if a.ndim != 2 or a.shape[0] != k or b.ndim != 3 or b.shape[1] != k:
        raise ValueError(
            f"oks_iou: expected kpts_a ({k}, 2|3) and kpts_b (M, {k}, 2|3), got {a.shape} and {b.shape}"
        )
    areas = np.asarray(areas_b, dtype=np.float64).reshape(-1)
    variances = (2.0 * sig) ** 2
    d2 = (b[..., 0] - a[:, 0]) ** 2 + (b[..., 1] - a[:, 1]) ** 2  # (M, K)
    e = d2 / variances / ((area_a + areas[:, np.newaxis]) / 2.0 + np.spacing(1)) / 2.0
    similarity = np.exp(-e)
    if in_vis_thr is None:
        return similarity.mean(axis=1)
    if a.shape[1] < 3 or b.shape[2] < 3:
        raise ValueError("oks_iou: in_vis_thr needs keypoint scores (a third column)")
    use = (a[:, 2] > in_vis_thr) & (b[..., 2] > in_vis_thr)  # (M, K)
    n = use.sum(axis=1)
    return np.where(n > 0, (similarity * use).sum(axis=1) / np.maximum(n, 1), 0.0)


def _check_people(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, ...]:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if keypoints.ndim != 3 or not len(keypoints) == len(scores) == len(areas):
        raise ValueError(
            f"expected keypoints (M, K, 2|3), scores (M,) and areas (M,); got {keypoints.shape}, "
            f"{scores.shape}, {areas.shape}"
        )
    return keypoints, scores, areas


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: Sequence[float] | np.ndarray | None = None,
    in_vis_thr: float | None = None,
) -> list[int]:
    """Greedy OKS non-maximum suppression of the people of one image (HRNet's ``oks_nms``).

    Visits people by decreasing score; keeps one and drops every remaining person whose OKS with it
    is above ``thr`` (keeps those with OKS <= thr).

    Args:
        keypoints: (M, K, 2|3) keypoints of the M people.
        scores: (M,) their scores.
        areas: (M,) their areas (pixels^2), see :func:`oks_iou`.
        thr: OKS threshold (HRNet's COCO configs: 0.9).
        sigmas, in_vis_thr: as for :func:`oks_iou`.

    Returns:
        indices of the kept people, by decreasing score (ties in input order).
    """
    keypoints, scores, areas = _check_people(keypoints, scores, areas)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        overlap = oks_iou(keypoints[i], keypoints[order[1:]], areas[i], areas[order[1:]], sigmas, in_vis_thr)
        order = order[1:][overlap <= thr]
    return keep


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: Sequence[float] | np.ndarray | None = None,
    in_vis_thr: float | None = None,
    max_dets: int = 20,
) -> list[int]:
    """HRNet's soft OKS-NMS (``TEST.SOFT_NMS``): Gaussian rescoring, at most ``max_dets`` people kept.

    Repeatedly takes the person with the highest (decayed) score and multiplies the score of every
    remaining person by ``exp(-oks^2 / thr)``, where ``oks`` is its OKS with the person taken; stops
    after ``max_dets`` people. As in HRNet, the decayed scores only decide which people are kept and
    in what order; the people keep their own scores.

    Args:
        keypoints, scores, areas, sigmas, in_vis_thr: as for :func:`oks_nms`.
        thr: the Gaussian's parameter (HRNet passes its OKS threshold, 0.9).
        max_dets: the most people kept (HRNet: 20, COCOeval's maxDets for keypoints).

    Returns:
        indices of the kept people, in the order they were taken.
    """
    keypoints, scores, areas = _check_people(keypoints, scores, areas)
    order = np.argsort(-scores, kind="stable")
    decayed = scores[order]
    keep: list[int] = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(int(i))
        overlap = oks_iou(keypoints[i], keypoints[order[1:]], areas[i], areas[order[1:]], sigmas, in_vis_thr)
        decayed = decayed[1:] * np.exp(-(overlap**2) / thr)
        resort = np.argsort(-decayed, kind="stable")
        order, decayed = order[1:][resort], decayed[resort]
    return keep


def rescore(box_score, keypoint_scores, in_vis_thr: float = 0.2):
    """HRNet's person score: box score x mean of the keypoint confidences above ``in_vis_thr`` (0 if none).

    Args:
        box_score: scalar or (M,) detection scores (1 for ground-truth boxes).
        keypoint_scores: (K,) or (M, K) keypoint confidences (the heatmap maxima).
        in_vis_thr: confidences must exceed this (strictly) to count (HRNet's ``TEST.IN_VIS_THRE``).

    Returns:
        float for one person, (M,) float64 array for M.
    """
    conf = np.asarray(keypoint_scores, dtype=np.float64)
    above = conf > in_vis_thr
    n = above.sum(axis=-1)
    mean = np.where(n > 0, (conf * above).sum(axis=-1) / np.maximum(n, 1), 0.0)
    score = np.asarray(box_score, dtype=np.float64) * mean
    return float(score) if score.ndim == 0 else score


def build_keypoint_results(
    image_ids: Sequence[int] | np.ndarray,
    keypoints: np.ndarray,
    box_scores: Sequence[float] | np.ndarray,
    areas: Sequence[float] | np.ndarray,
    nms: str = "oks",
    oks_thr: float = 0.9,
    in_vis_thr: float = 0.2,
    sigmas: Sequence[float] | np.ndarray | None = None,
) -> list[dict]:
    """Per-person predictions -> the official COCO keypoint results list, as HRNet's ``evaluate``.

    Each person is rescored (:func:`rescore`), the people are grouped by image, and each image's
    people go through :func:`oks_nms` (``nms="oks"``), :func:`soft_oks_nms` (``"soft"``) or nothing
    (``"none"``).

    Args:
        image_ids: (M,) COCO image id of each person.
        keypoints: (M, 17, 3) x, y, confidence; x, y in original-image pixels (COCO convention).
        box_scores: (M,) person-detection scores (1 for ground-truth boxes).
        areas: (M,) area in pixels^2 of each person's crop box in the image (the padded,
            aspect-corrected box, HRNet's ``prod(scale * 200)``); used only by OKS-NMS.
        nms: "oks", "soft" or "none".
        oks_thr: threshold of OKS-NMS (HRNet's ``TEST.OKS_THRE``, 0.9 in its COCO configs).
        in_vis_thr: confidence threshold of the rescoring (HRNet's ``TEST.IN_VIS_THRE``, 0.2).
        sigmas: OKS constants; default COCO's.

    Returns:
        results grouped by image (images in order of first appearance; within an image, in NMS order,
        or input order for "none"): ``{"image_id", "category_id": 1, "keypoints": 51 floats, "score"}``.
    """
    if nms not in NMS_MODES:
        raise ValueError(f"nms must be one of {NMS_MODES}, got {nms!r}")
    image_ids = np.asarray(image_ids).reshape(-1)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    box_scores = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    k = _sigmas(sigmas).shape[0]
    if keypoints.shape[1:] != (k, 3) or not len(image_ids) == len(keypoints) == len(box_scores) == len(areas):
        raise ValueError(
            f"expected image_ids (M,), keypoints (M, {k}, 3), box_scores (M,), areas (M,); got "
            f"{image_ids.shape}, {keypoints.shape}, {box_scores.shape}, {areas.shape}"
        )
    scores = rescore(box_scores, keypoints[..., 2], in_vis_thr)
    by_image: dict[int, list[int]] = {}
    for index, image_id in enumerate(image_ids):
        by_image.setdefault(int(image_id), []).append(index)

    results = []
    for image_id, members in by_image.items():
        members_arr = np.asarray(members)
        if nms == "none":
            kept = members_arr
        else:
            suppress = oks_nms if nms == "oks" else soft_oks_nms
            local = suppress(
                keypoints[members_arr], scores[members_arr], areas[members_arr], thr=oks_thr, sigmas=sigmas
            )
            kept = members_arr[local]
        for i in kept:
            results.append(
                {
                    "image_id": image_id,
                    "category_id": PERSON_CATEGORY_ID,
                    "keypoints": [float(v) for v in keypoints[i].reshape(-1)],
                    "score": float(scores[i]),
                }
            )
    return results


def _check_results(results: object, where: str, num_keypoints: int = 17) -> list[dict]:
    """Raise a ValueError naming the first malformed entry of a keypoint results list."""
    if not isinstance(results, list):
        kind = type(results).__name__
        raise ValueError(f"{where}: keypoint results must be a JSON list of objects, got a {kind}")
    for n, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValueError(f"{where}: result {n} is a {type(r).__name__}, not an object")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise ValueError(f"{where}: result {n} has no {key!r} (it has {sorted(r)})")
        kpts = r["keypoints"]
        if not isinstance(kpts, list) or len(kpts) != 3 * num_keypoints:
            size = len(kpts) if isinstance(kpts, list) else type(kpts).__name__
            raise ValueError(
                f"{where}: result {n}: 'keypoints' must be a list of {3 * num_keypoints} numbers, got {size}"
            )
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in [*kpts, r["score"]]):
            raise ValueError(f"{where}: result {n}: 'keypoints' and 'score' must be finite numbers")
    return results


def write_results(path: str | Path, results: list[dict]) -> None:
    """Write a keypoint results list as JSON (the file COCOeval and the evaluation server read)."""
    _check_results(results, where=str(path))
    with open(path, "w") as f:
        json.dump(results, f)


def load_results(path: str | Path) -> list[dict]:
    """Read and check a keypoint results JSON file written by :func:`write_results` (or anyone else)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such results file: {path}")
    try:
        with open(path) as f:
            results = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    return _check_results(results, where=str(path))


def _load_coco(ann: str | Path | dict, log: io.StringIO) -> COCOApi:
    if isinstance(ann, dict):
        coco = COCOApi()
        coco.dataset = copy.deepcopy(ann)
        with contextlib.redirect_stdout(log):
            coco.createIndex()
        return coco
    path = Path(ann)
    if not path.is_file():
        raise FileNotFoundError(f"no such annotation file: {path}")
    try:
        with contextlib.redirect_stdout(log):
            return COCOApi(str(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    except (AssertionError, KeyError, TypeError) as e:  # pycocotools asserts the file is a JSON object
        raise ValueError(
            f"{path}: not a COCO annotation file (expected a JSON object with images, annotations, "
            f"categories; pycocotools: {type(e).__name__} {e})"
        ) from None


def evaluate_keypoints(
    gt_ann_file: str | Path | dict,
    results: str | Path | list[dict],
    verbose: bool = False,
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR of ``results`` with pycocotools' ``COCOeval(gt, dt, "keypoints")``.

    pycocotools' own messages and its summary are captured and logged at INFO level on this module's
    logger (``verbose=True`` also prints them). An empty results list gives all-zero stats and a
    warning rather than pycocotools' crash. Every ground-truth image (of ``image_ids``) counts, including
    images without any result. A stat is -1 where the ground truth has no person of that size
    (pycocotools' convention).

    Args:
        gt_ann_file: a COCO person-keypoints annotation file (or its loaded dict); a ``segmentation``
            field is not needed.
        results: a results list or the path of a results JSON file (see :func:`build_keypoint_results`).
        verbose: print pycocotools' output.
        image_ids: score only these ground-truth images (e.g. leaving out images that could not be
            read); None = every image.

    Returns:
        ``{"AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL": float}`` in [0, 1].
    """
    log = io.StringIO()
    coco_gt = _load_coco(gt_ann_file, log)
    if isinstance(results, str | Path):
        results = load_results(results)
    else:
        results = copy.deepcopy(_check_results(results, where="results"))  # loadRes modifies its input
    if not results:
        logger.warning("no keypoint results to evaluate: every COCO stat is 0")
        return dict.fromkeys(STAT_NAMES, 0.0)
    unknown = {r["image_id"] for r in results} - set(coco_gt.getImgIds())
    if unknown:
        raise ValueError(
            f"{len(unknown)} result image id(s) are not in the ground truth "
            f"(e.g. {sorted(unknown, key=str)[:5]})"
        )
    with contextlib.redirect_stdout(log):
        coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = np.asarray(COCO.sigmas)
        if image_ids is not None:
            coco_eval.params.imgIds = sorted(int(i) for i in image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    logger.info("pycocotools COCOeval output:\n%s", log.getvalue())
    if verbose:
        print(log.getvalue(), end="")
    return {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats)}


def format_coco_table(stats: dict[str, float]) -> str:
    """A two-line aligned table of the 10 stats of :func:`evaluate_keypoints` (AP ... ARL)."""
    widths = [max(len(name), 6) for name in STAT_NAMES]
    header = "  ".join(name.rjust(w) for name, w in zip(STAT_NAMES, widths))
    values = "  ".join(f"{stats[name]:.4f}".rjust(w) for name, w in zip(STAT_NAMES, widths))
    return f"{header}\n{values}"


def write_test_dev_submission(
    out_dir: str | Path,
    results: list[dict],
    alg_name: str = "boxpose",
    image_info_file: str | Path | None = None,
) -> Path:
    """Write COCO test-dev keypoint results under the official name, zipped for the evaluation server.

    Writes ``person_keypoints_test-dev2017_<alg_name>_results.json`` (the COCO naming convention
    ``[type]_[testset]_[alg]_results.json``) and a ``.zip`` of the same name holding it at its root.

    The test-dev labels are private: upload the zip to the COCO keypoint test-dev evaluation server
    linked from cocodataset.org (Keypoints -> "Upload"/"Evaluate"). That server has been a CodaLab
    competition (competitions.codalab.org, later codalab.lisn.upsaclay.fr); CodaLab Competitions is
    being replaced by Codabench, and in 2026 users reported the COCO test-dev server unavailable
    (cocodataset/cocoapi issue #693). Check cocodataset.org for its current address before submitting.

    Args:
        out_dir: directory to write to (created if needed).
        results: keypoint results for test-dev images (:func:`build_keypoint_results`).
        alg_name: the ``<alg>`` part of the file name: letters, digits and '-' (no '_', which separates
            the fields of the name).
        image_info_file: optional ``image_info_test-dev2017.json``; if given, every result's image id
            must be one of its images.

    Returns:
        the path of the zip file.
    """
    if not re.fullmatch(r"[A-Za-z0-9-]+", alg_name):
        raise ValueError(f"alg_name must be letters, digits and '-' only (no '_'), got {alg_name!r}")
    _check_results(results, where="results")
    if image_info_file is not None:
        with open(image_info_file) as f:
            known = {image["id"] for image in json.load(f)["images"]}
        unknown = {r["image_id"] for r in results} - known
        if unknown:
            raise ValueError(f"{len(unknown)} result image id(s) are not in {image_info_file}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"person_keypoints_test-dev2017_{alg_name}_results"
    json_path = out_dir / f"{name}.json"
    write_results(json_path, results)
    zip_path = out_dir / f"{name}.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(json_path, arcname=json_path.name)
    return zip_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m boxpose.evaluation.coco --gt ANN.json --results RES.json``.

    Prints the stats table, then, as the last line, a JSON object with the 10 stats (AP ... ARL).
    Returns 0, or 2 with a message on stderr when an input is wrong.
    """
    parser = argparse.ArgumentParser(
        prog="python -m boxpose.evaluation.coco",
        description="COCO keypoint AP/AR (pycocotools COCOeval) of a keypoint results file.",
    )
    parser.add_argument("--gt", required=True, help="COCO person-keypoints annotation JSON")
    parser.add_argument("--results", required=True, help="keypoint results JSON (list of result objects)")
    parser.add_argument("--verbose", action="store_true", help="also print pycocotools' own output")
    args = parser.parse_args(argv)
    try:
        stats = evaluate_keypoints(args.gt, args.results, verbose=args.verbose)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_coco_table(stats))
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
