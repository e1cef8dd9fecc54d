"""The on-disk layout of the MPII and COCO dataset roots: the one home of the standard file names.

The loader finds a COCO split's images with :data:`COCO_IMAGE_FOLDERS`; ``configs/data/mpii.yaml`` and
``configs/data/coco.yaml`` name the same annotation files under ``${data.root}`` (a test keeps them equal);
the synthetic generator writes these files. All paths are relative to the dataset root.
"""

from __future__ import annotations

# MPII, HRNet layout: one JSON list of persons per split, the validation ground truth with head boxes.
MPII_IMAGE_FOLDER = "images"
MPII_ANNOTATION_FILES = {"train": "annot/train.json", "val": "annot/valid.json", "test": "annot/test.json"}
MPII_GT_MAT = "annot/gt_valid.mat"

# COCO 2017 image folders of each split (test-dev images live in test2017/).
COCO_IMAGE_FOLDERS = {"train": "train2017", "val": "val2017", "test": "test2017"}
# Annotation files: person keypoints for train/val, an image-info file (images only) for test-dev.
COCO_ANNOTATION_FILES = {
    "train": "annotations/person_keypoints_train2017.json",
    "val": "annotations/person_keypoints_val2017.json",
    "test": "annotations/image_info_test-dev2017.json",
}
COCO_DETECTION_FOLDER = "person_detection_results"
