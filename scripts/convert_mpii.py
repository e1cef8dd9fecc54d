#!/usr/bin/env python
"""Convert the official MPII Human Pose release to the SimpleBaseline/HRNet annotation layout.

Input:
  - ``mpii_human_pose_v1_u12_1.mat`` (in ``mpii_human_pose_v1_u12_2.zip`` from the MPII site): the
    ``RELEASE`` struct with ``annolist(i).image.name``, ``annolist(i).annorect(p)`` (``objpos.x/y``,
    ``scale``, head box ``x1 y1 x2 y2``, ``annopoints.point(k)`` with ``id`` (0-15), ``x``, ``y``,
    ``is_visible``), ``img_train`` (1 = training image) and ``single_person`` (per image, the indices of
    the well-separated people the single-person benchmark evaluates).
  - The standard train/validation split of Tompson et al. (CVPR 2015), which the .mat does not contain:
    2,958 validation persons from training images. It is distributed as ``detections.mat`` in Tompson's
    ``mpii_valid_pred.zip`` (fields ``RELEASE_img_index``, ``RELEASE_person_index``: 1-based indices into
    ``annolist`` and ``annorect``, in the validation order that ``gt_valid.mat`` and HRNet's valid.json
    use). Pass that file, or a text file with one ``img_index person_index`` pair (1-based) per line.

Output (into ``--out``, normally ``<root>/annot``):
  - ``valid.json``: the split's persons, in the split file's order;
  - ``train.json``: every annotated person of a training image that holds no validation person (the rule
    of the CPM / stacked-hourglass / HRNet split; HRNet's train.json has 22,246 persons);
  - ``trainval.json``: both;
  - ``test.json``: persons of the test images (``img_train == 0``) with a centre and scale, by default
    only those listed in ``single_person`` (the official single-person test set, 11,731 persons;
    HRNet's own test.json has 7,247 and cannot be rebuilt from the release); ``--test-all`` keeps all;
  - ``gt_valid.mat``: ``dataset_joints``, ``jnt_missing``, ``pos_gt_src``, ``headboxes_src`` of the
    validation persons (the fields HRNet's evaluation reads).

Entries: ``{"image", "center": objpos, "scale", "joints": 16 x [x, y] ([-1, -1] if not annotated),
"joints_vis": 16 x {0, 1}}`` with MPII's 1-based coordinates, unchanged (the loader converts them).

Example:
  python scripts/convert_mpii.py --mat mpii_human_pose_v1_u12_1.mat --split detections.mat \\
      --out data/mpii/annot
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.io

from boxpose.evaluation.mpii import MPIIGroundTruth, MPIIReleaseRect, read_mpii_release, save_mpii_gt


def read_split(path: Path) -> list[tuple[int, int]]:
    """Validation (image, person) pairs, 1-based, in order: Tompson's detections.mat or a text file."""
    if path.suffix == ".mat":
        mat = scipy.io.loadmat(str(path))
        if "RELEASE_img_index" not in mat or "RELEASE_person_index" not in mat:
            raise ValueError(
                f"{path} lacks RELEASE_img_index / RELEASE_person_index (Tompson's detections.mat)"
            )
        imgs = np.asarray(mat["RELEASE_img_index"]).ravel()
        people = np.asarray(mat["RELEASE_person_index"]).ravel()
        return [(int(i), int(p)) for i, p in zip(imgs, people)]
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise ValueError(f"{path} line {n}: expected 'img_index person_index', got {line!r}")
        pairs.append((int(parts[0]), int(parts[1])))
    return pairs


def _entry(image: str, person: MPIIReleaseRect, with_joints: bool = True) -> dict:
    entry = {"image": image, "center": list(person.objpos), "scale": person.scale}
    if with_joints:
        entry["joints"] = person.joints.tolist()
        entry["joints_vis"] = person.joints_vis.tolist()
    return entry


def convert(mat_path: Path, split_path: Path, out_dir: Path, test_all: bool = False) -> dict[str, int]:
    """Write train/valid/trainval/test JSON and gt_valid.mat into ``out_dir``; return the counts."""
    release = read_mpii_release(mat_path)
    images, img_train = release.image_names, release.img_train
    # (image, person), both 1-based -> the annorect entry
    persons = {
        (i, p): rect
        for i, rects in enumerate(release.annorects, start=1)
        for p, rect in enumerate(rects, start=1)
    }
    valid_pairs = read_split(split_path)
    for pair in valid_pairs:
        person = persons.get(pair)
        if person is None or not person.has_points or person.objpos is None or person.scale is None:
            raise ValueError(
                f"validation person {pair} (1-based image, person) is not an annotated person of "
                f"{mat_path}; does the split file belong to this release?"
            )
    valid_images = {i for i, _ in valid_pairs}

    def usable(person: MPIIReleaseRect) -> bool:
        return person.has_points and person.objpos is not None and (person.scale or 0) > 0

    valid = [_entry(images[i - 1], persons[(i, p)]) for i, p in valid_pairs]
    train = [
        _entry(images[i - 1], person)
        for (i, p), person in persons.items()
        if img_train[i - 1] == 1 and i not in valid_images and usable(person)
    ]
    test = [
        _entry(images[i - 1], person, with_joints=False)
        for (i, p), person in persons.items()
        if img_train[i - 1] == 0
        and person.objpos is not None
        and (person.scale or 0) > 0
        and (test_all or p in release.single_person[i - 1])
    ]

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in (("train", train), ("valid", valid), ("trainval", train + valid), ("test", test)):
        (out_dir / f"{name}.json").write_text(json.dumps(data))
    joints = np.array([persons[pair].joints for pair in valid_pairs]) - 1.0
    visible = np.array([persons[pair].joints_vis for pair in valid_pairs]) > 0
    headboxes = []
    for pair in valid_pairs:
        if persons[pair].headbox is None:
            raise ValueError(f"validation person {pair} has no head box (x1, y1, x2, y2) in {mat_path}")
        headboxes.append(persons[pair].headbox)
    save_mpii_gt(
        out_dir / "gt_valid.mat", MPIIGroundTruth.from_zero_based(joints, visible, np.array(headboxes) - 1.0)
    )
    return {"train": len(train), "valid": len(valid), "test": len(test)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Convert the official MPII release (mpii_human_pose_v1_u12_1.mat) to HRNet-style "
        "annot/{train,valid,trainval,test}.json and gt_valid.mat.",
        epilog="See data/README.md. HRNet's files have 22,246 train / 2,958 valid persons.",
    )
    parser.add_argument("--mat", type=Path, required=True, help="mpii_human_pose_v1_u12_1.mat")
    parser.add_argument(
        "--split",
        type=Path,
        required=True,
        help="validation split: Tompson's detections.mat (mpii_valid_pred.zip) or a text file "
        "of 1-based 'img_index person_index' lines",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. data/mpii/annot")
    parser.add_argument(
        "--test-all",
        action="store_true",
        help="test.json: every test person with a centre and scale, not only single_person",
    )
    args = parser.parse_args(argv)
    counts = convert(args.mat, args.split, args.out, test_all=args.test_all)
    print(json.dumps({"out": str(args.out), **counts}))


if __name__ == "__main__":
    main()
