"""A synthetic, learnable pose dataset written to disk in the MPII and COCO formats.

No real dataset can be downloaded where boxpose is built and tested, so this module draws one: JPEG
images plus the exact files the real loaders read (HRNet-style MPII JSON and ``gt_valid.mat``; COCO
``person_keypoints_*.json`` and a person-detection results file). :class:`~boxpose.data.mpii.MPIIDataset`
and :class:`~boxpose.data.coco.COCODataset` read them with no special code path.

Figures
-------
Each person is a 3-D articulated body (pelvis, torso, neck, head with face, two arms with hands, two
legs with feet) with human proportions (varied per person) and joint angles sampled within human
limits (shoulder abduction/flexion, elbow flexion 0-145 degrees, hip flexion/abduction, knee flexion
backwards only, head tilt and turn). It is turned by a yaw angle about the vertical, tilted slightly,
projected orthographically, rotated in the image plane, scaled and placed. Limbs are tapered capsules
with outlines, drawn far-to-near (painter's algorithm) in per-person clothing and skin colours, on
textured, cluttered backgrounds (colour fields, stripes, grain, random shapes, limb-like distractors),
with occluders in front of people, then pixel noise and JPEG compression.

The left/right cue needs a large receptive field (the design goal)
------------------------------------------------------------------
Left and right limbs are drawn identically (same colours, same shapes, symmetric sleeves). Whether the
person's left arm appears on the image's left or right depends only on whether the figure faces the
camera or turns its back to it (yaw within ``max_yaw`` of 0 or of 180 degrees, 50/50), and that is shown
only *at the body's centre*: front-facing figures show a face (skin-coloured, with eyes, nose and mouth,
under the hair) and a light shirt front with an emblem; back-facing figures show hair over the whole head
and a dark spine stripe (feet also point the way the figure faces). So to label a wrist or an ankle as
left or right a network has to combine the limb's own appearance with evidence from the head and torso,
which is half a body away: the crop is 6 head-box diagonals wide (MPII's ``scale``), so a standing
person is ~100 px tall in a 128 px input (~200 px in 256) and a wrist is typically 30-100 input pixels
from the chest. A stack of 3x3 convolutions sees that far only after many layers; a large box filter sees
it in one. Everything is mirror symmetric in distribution (the cues are on the body's midline), so a
horizontally flipped sample with swapped left/right labels is another valid sample: flip augmentation
and the flip test are consistent, and they matter.

Annotation semantics (MPII ``joints_vis``, COCO ``v``, boxes, head boxes): see :mod:`.annotate`.

Files (``root`` is ``data/synthetic/<kind>`` by default, relative to the working directory)::

    mpii: images/<id>.jpg, annot/train.json, annot/valid.json, annot/gt_valid.mat, [annot/test.json]
    coco: train2017/, val2017/, [test2017/], annotations/person_keypoints_{train,val}2017.json,
          [annotations/image_info_test-dev2017.json],
          person_detection_results/synthetic_{val2017,test-dev2017}_detections.json
    both: synthetic.json (generator version and parameters; the data are regenerated when they change)

Generation is deterministic: image ``i`` of a split is drawn from ``numpy.random.default_rng([seed,
split, i])``, whatever the number of worker processes. Difficulty knobs: ``clutter``, ``occluders``,
``max_yaw``, ``roll_std``, ``pose_variety``, ``noise``, ``person_height``.

Modules, by concern::

    params    SyntheticParams, GENERATOR_VERSION
    body      the 3-D body model, its colours and projection (Person); joint names from boxpose.keypoints
    canvas    image + label map drawn with the same shapes; part ids
    render    draw_person (far-to-near), render_scene (Scene)
    scenery   backgrounds, occluders, pixel noise
    annotate  MPII / COCO annotations of a scene, simulated detections
    write     files in the layout of boxpose.data.layout, worker processes, the cache marker and lock
"""

from boxpose.data.synthetic.annotate import (
    HEADBOX_HALF_SIDE,
    JOINT_PARTS,
    coco_annotations,
    inside_image,
    joint_visibility,
    mpii_annotations,
    simulated_detections,
    visible_mask,
)
from boxpose.data.synthetic.body import (
    BODY_JOINTS,
    FACE_JOINTS,
    J,
    Person,
    layout_indices,
    make_person,
    sample_body,
)
from boxpose.data.synthetic.canvas import LABELS_PER_PERSON, OCCLUDER_LABEL, PART_ID, PARTS, Canvas
from boxpose.data.synthetic.params import GENERATOR_VERSION, SyntheticParams
from boxpose.data.synthetic.render import Scene, draw_person, render_scene
from boxpose.data.synthetic.write import KINDS, MARKER_FILE, SPLIT_CODES, ensure_synthetic, generate_synthetic

__all__ = [
    "BODY_JOINTS",
    "FACE_JOINTS",
    "GENERATOR_VERSION",
    "HEADBOX_HALF_SIDE",
    "JOINT_PARTS",
    "KINDS",
    "LABELS_PER_PERSON",
    "MARKER_FILE",
    "OCCLUDER_LABEL",
    "PARTS",
    "PART_ID",
    "SPLIT_CODES",
    "Canvas",
    "J",
    "Person",
    "Scene",
    "SyntheticParams",
    "coco_annotations",
    "draw_person",
    "ensure_synthetic",
    "generate_synthetic",
    "inside_image",
    "joint_visibility",
    "layout_indices",
    "make_person",
    "mpii_annotations",
    "render_scene",
    "sample_body",
    "simulated_detections",
    "visible_mask",
]
