"""Annotation of a rendered scene in the two formats: MPII (HRNet JSON entries with head boxes) and COCO
(person keypoints with visibility, box, area, segmentation), plus a simulated person detector's output.

Semantics:

- MPII: ``joints_vis`` = 1 for every joint inside the image (annotated, occluded or not), 0 (and
  ``[-1, -1]``) outside; head boxes are the square around the head (side 2.2 head radii);
  ``center``/``scale`` like MPII's ``objpos``/``scale``: ``scale * 200`` = 4.8 x the head box diagonal
  (the exact relation in the real annotations), ``center`` 15 * scale px above the middle of the
  joints, so that the loader's standard shift centres the crop. The PCKh threshold is then 5% of the
  crop side, as on MPII.
- COCO: ``v`` = 2 if the joint is inside the image and the figure itself is drawn there (its own limb,
  not an occluder, another person or another of its own limbs in front), 1 if inside but hidden, 0
  outside the image; face points (nose, eyes, ears) turned away from the camera are 0 (not labelled), as
  COCO annotators do for people seen from behind. ``bbox``/``area``/``segmentation`` come from the
  person's visible pixels; people hidden completely are not annotated; people without any labelled
  keypoint are kept (``num_keypoints`` 0), as in COCO, and dropped by the loader.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from boxpose.data.synthetic.body import BODY_JOINTS, FACE_JOINTS, Person, layout_indices
from boxpose.data.synthetic.canvas import LABELS_PER_PERSON, PART_ID
from boxpose.data.synthetic.render import Scene
from boxpose.keypoints import COCO, MPII

HEADBOX_HALF_SIDE = 1.1  # MPII head box: a square of 2.2 head radii around the head

# The drawn parts that show each joint: a joint is visible (COCO v = 2) where one of them is on top.
JOINT_PARTS = {
    "pelvis": ("torso", "l_thigh", "r_thigh"), "thorax": ("torso", "neck"), "upper_neck": ("neck", "head"),
    "head_top": ("head",), "nose": ("head",), "l_eye": ("head",), "r_eye": ("head",),
    "l_ear": ("head", "l_ear"), "r_ear": ("head", "r_ear"),
}  # fmt: skip
for _s in ("l", "r"):
    JOINT_PARTS.update(
        {
            f"{_s}_shoulder": ("torso", f"{_s}_upper_arm"),
            f"{_s}_elbow": (f"{_s}_upper_arm", f"{_s}_forearm"),
            f"{_s}_wrist": (f"{_s}_forearm", f"{_s}_hand"),
            f"{_s}_hip": ("torso", f"{_s}_thigh"),
            f"{_s}_knee": (f"{_s}_thigh", f"{_s}_shin"),
            f"{_s}_ankle": (f"{_s}_shin", f"{_s}_foot"),
        }
    )


# (21, 32) bool: which part ids show each joint.
JOINT_PART_MASK = np.zeros((len(BODY_JOINTS), LABELS_PER_PERSON), dtype=bool)
for _j, _name in enumerate(BODY_JOINTS):
    JOINT_PART_MASK[_j, [PART_ID[p] for p in JOINT_PARTS[_name]]] = True


def inside_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: points within the pixel grid [0, W - 1] x [0, H - 1]."""
    return (
        (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    )


def joint_visibility(scene: Scene, person: Person) -> np.ndarray:
    """(21,) COCO-style visibility of BODY_JOINTS: 2 shown, 1 hidden, 0 outside / facing away."""
    h, w = scene.label.shape
    inside = inside_image(person.joints, w, h)
    v = np.where(inside, 1, 0)
    for j, name in enumerate(BODY_JOINTS):
        if name in FACE_JOINTS and person.depth[j] - person.depths["head_c"] < -0.1 * person.head_r:
            v[j] = 0  # on the far side of the head: not labelled
            continue
        if not inside[j]:
            continue
        x, y = np.round(person.joints[j]).astype(int)
        patch = scene.label[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
        own = (patch // LABELS_PER_PERSON) == person.slot
        if (own & JOINT_PART_MASK[j][patch % LABELS_PER_PERSON]).any():
            v[j] = 2
    return v


def visible_mask(scene: Scene, person: Person) -> np.ndarray:
    """(H, W) bool: pixels where ``person`` is drawn and not covered."""
    lo = person.slot * LABELS_PER_PERSON
    return (scene.label > lo) & (scene.label < lo + LABELS_PER_PERSON)


def mpii_annotations(scene: Scene, image_name: str, rng: np.random.Generator) -> list[dict]:
    """HRNet-style MPII entries (1-based) plus 0-based ``_headbox`` (2, 2) for the .mat, one per person."""
    h, w = scene.label.shape
    idx = layout_indices(MPII)
    entries = []
    for person in scene.people:
        joints = person.joints[idx]
        vis = inside_image(joints, w, h)
        if vis.sum() < 4:
            continue
        # MPII's scale is tied to the head box: scale * 200 = 4.8 x the head box diagonal (exactly, in the
        # real annotations); so the crop and the PCKh threshold relate as in MPII.
        r = HEADBOX_HALF_SIDE * person.head_r
        scale = 4.8 * (2 * math.sqrt(2) * r) / 200.0
        mid = 0.5 * (joints.min(axis=0) + joints.max(axis=0)) + rng.normal(0, 0.02 * person.height, 2)
        center = mid - np.array([0.0, 15.0 * scale])
        entries.append(
            {
                "image": image_name,
                "center": [round(float(c) + 1.0, 2) for c in center],
                "scale": round(float(scale), 4),
                "joints": [
                    [round(float(x) + 1.0, 2), round(float(y) + 1.0, 2)] if v else [-1.0, -1.0]
                    for (x, y), v in zip(joints, vis)
                ],
                "joints_vis": [int(v) for v in vis],
                "_headbox": [(person.head_c - r).tolist(), (person.head_c + r).tolist()],
            }
        )
    return entries


def coco_annotations(scene: Scene, image_id: int) -> list[dict]:
    """COCO person annotations (keypoints, bbox, area, segmentation) of the people in ``scene``."""
    idx = layout_indices(COCO)
    anns = []
    for person in scene.people:
        mask = visible_mask(scene, person)
        area = int(mask.sum())
        if area == 0:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        segmentation = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
        if not segmentation:
            segmentation = [
                [float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]
            ]
        vis = joint_visibility(scene, person)[idx]
        kpts = []
        for (x, y), v in zip(person.joints[idx], vis):
            kpts += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
        anns.append({
            "id": image_id * 100 + person.slot, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)], "area": float(area),
            "segmentation": segmentation, "keypoints": kpts, "num_keypoints": int((vis > 0).sum()),
        })  # fmt: skip
    return anns


def simulated_detections(
    anns: list[dict], image_id: int, width: int, height: int, rng: np.random.Generator
) -> list[dict]:
    """A person detector's output for one image: jittered true boxes and a few false positives."""
    dets = []
    for ann in anns:
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.05, 4) * np.array([w, h, w, h])
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": round(float(rng.uniform(0.6, 1.0)), 4),
                "bbox": [
                    round(float(v), 2)
                    for v in (x + jitter[0], y + jitter[1], max(w + jitter[2], 2.0), max(h + jitter[3], 2.0))
                ],
            }
        )
    for _ in range(rng.integers(0, 3)):
        w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.2, 0.8) * height
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": round(float(rng.uniform(0.02, 0.4)), 4),
                "bbox": [
                    round(float(rng.uniform(0, width - w)), 2),
                    round(float(rng.uniform(0, height - h)), 2),
                    round(float(w), 2),
                    round(float(h), 2),
                ],
            }
        )
    return dets


def coco_categories() -> list[dict]:
    """The COCO "categories" list: the person with the COCO spec's keypoint names and 1-based skeleton."""
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO.joint_names),
            "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton],
        }
    ]
