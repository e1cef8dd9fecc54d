"""Rendering: a person's parts drawn far-to-near (painter's algorithm), and a whole scene (background,
people placed with limited overlap, occluders, noise, blur).

Limbs are tapered capsules with outlines in per-person clothing and skin colours. Left and right limbs are
drawn identically; the facing cues are at the body's centre only: front-facing figures show a face and a
light shirt front with an emblem, back-facing ones hair over the whole head and a dark spine stripe.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from boxpose.data.synthetic.body import PROPORTIONS, WIDTHS, Person, make_person, translate
from boxpose.data.synthetic.canvas import LABELS_PER_PERSON, PART_ID, Canvas, darker, disc_on_surface
from boxpose.data.synthetic.params import SyntheticParams
from boxpose.data.synthetic.scenery import add_noise, add_occluder, background

# The limbs of one side: part, start joint, end joint, colour key, depth bias (in standing heights)
# that settles which of two touching parts is drawn on top.
_LIMBS = (
    ("upper_arm", "shoulder", "elbow", "shirt", 0.02),
    ("forearm", "elbow", "wrist", "forearm", 0.025),
    ("thigh", "hip", "knee", "pants", -0.01),
    ("shin", "knee", "ankle", "shin", -0.005),
    ("foot", "ankle", "toe", "shoes", 0.0),
)


def part_label(person: Person, part: str) -> int:
    """The label map value of ``part`` of ``person``."""
    return person.slot * LABELS_PER_PERSON + PART_ID[part]


def draw_torso(canvas: Canvas, person: Person) -> None:
    """The torso as a box (shoulder and hip lines thickened by the body depth), with the shirt front and
    chest emblem when it faces the camera, the spine stripe when it faces away."""
    P, col, h = person.points, person.colors, person.height
    torso_fwd = person.axes["torso_fwd"]
    t_fwd2 = torso_fwd[:2] * (float(PROPORTIONS["torso_depth"]) * h)
    corners = [P[n] + sgn * t_fwd2 for n in ("l_shoulder", "r_shoulder", "l_hip", "r_hip") for sgn in (1, -1)]
    hull = cv2.convexHull(np.array(corners, dtype=np.float32)).reshape(-1, 2)
    outline_hull = hull + 1.0 * np.sign(hull - hull.mean(axis=0))
    canvas.poly(outline_hull, darker(col["shirt"]), None)
    canvas.poly(hull, col["shirt"], part_label(person, "torso"))
    if torso_fwd[2] > 0.1:  # front: a light shirt front and a chest emblem with a dark ring
        panel = [P["panel_top_l"], P["panel_top_r"], P["panel_bot_r"], P["panel_bot_l"]]
        canvas.poly(np.array(panel), col["panel"], None)
        disc_on_surface(canvas, P["emblem"], torso_fwd, 0.065 * h, darker(col["emblem"], 0.3), None)
        disc_on_surface(canvas, P["emblem"], torso_fwd, 0.05 * h, col["emblem"], None)
    elif torso_fwd[2] < -0.1:  # back: spine stripe
        canvas.line(P["spine_top"], P["spine_bot"], darker(col["shirt"], 0.35), max(round(0.035 * h), 1))


def draw_head(canvas: Canvas, person: Person) -> None:
    """The head in hair colour; when it faces the camera, a skin-coloured face with eyes, nose and mouth."""
    P, D, col = person.points, person.depths, person.colors
    c, r = person.head_c, person.head_r
    face_fwd, face_up = person.axes["face_fwd"], person.axes["face_up"]
    canvas.circle(c, r + 1.0, darker(col["hair"]), None)
    canvas.circle(c, r, col["hair"], part_label(person, "head"))
    if face_fwd[2] <= -0.15:
        return
    # The face: a skin-coloured cap of the head sphere around the face direction, under the hair.
    f = face_fwd - 0.25 * face_up
    f = f / np.linalg.norm(f)
    disc_on_surface(canvas, c + 0.45 * r * f[:2], f, 0.8 * r, col["skin"], None)
    for name, rad, color in (
        ("l_eye", 0.13, (25, 25, 25)),
        ("r_eye", 0.13, (25, 25, 25)),
        ("nose", 0.12, darker(col["skin"], 0.75)),
    ):
        if D[name] - D["head_c"] > 0.15 * r:
            canvas.circle(P[name], max(rad * r, 0.6), color, None)
    if (face_fwd[2] - 0.5 * face_up[2]) > 0.2:
        mouth = c + r * 0.8 * (face_fwd[:2] - 0.5 * face_up[:2])
        angle = math.degrees(math.atan2(face_up[0], -face_up[1]))
        canvas.ellipse(mouth, (0.22 * r, 0.07 * r), angle, (40, 40, 120), None)


def draw_ear(canvas: Canvas, person: Person, side: str) -> None:
    """The ear of ``side`` ("l" or "r") as a small skin-coloured disc."""
    part = f"{side}_ear"
    canvas.circle(person.points[part], 0.25 * person.head_r, person.colors["skin"], part_label(person, part))


def draw_capsule_part(
    canvas: Canvas, person: Person, part: str, shape: str, start: str, end: str, color_key: str
) -> None:
    """The tapered ``part`` (a PART_ID key) from point ``start`` to ``end``, its half-widths ``WIDTHS[shape]``
    (in standing heights), in ``person.colors[color_key]``."""
    h = person.height
    a, b = WIDTHS[shape]
    canvas.capsule(
        person.points[start],
        person.points[end],
        a * h,
        b * h,
        person.colors[color_key],
        part_label(person, part),
    )


def draw_hand(canvas: Canvas, person: Person, side: str) -> None:
    """The hand of ``side`` as a disc with an outline."""
    radius = PROPORTIONS["hand_r"] * person.height
    centre = person.points[f"{side}_hand"]
    canvas.capsule(centre, centre, radius, radius, person.colors["hand"], part_label(person, f"{side}_hand"))


def painting_order(canvas: Canvas, person: Person) -> list[Callable[[], None]]:
    """The drawing steps of ``person``, far to near (ties keep this listing order)."""
    D, h = person.depths, person.height
    steps: list[tuple[float, Callable[[], None]]] = [
        (0.5 * (D["thorax"] + D["pelvis"]), functools.partial(draw_torso, canvas, person)),
        (D["head_c"] + 0.01 * h, functools.partial(draw_head, canvas, person)),
        (D["l_ear"], functools.partial(draw_ear, canvas, person, "l")),
        (D["r_ear"], functools.partial(draw_ear, canvas, person, "r")),
        (
            0.5 * (D["thorax"] + D["upper_neck"]) - 0.01 * h,
            functools.partial(
                draw_capsule_part, canvas, person, "neck", "neck", "thorax", "upper_neck", "skin"
            ),
        ),
    ]
    for side in ("l", "r"):
        for part, start, end, color_key, bias in _LIMBS:
            a, b = f"{side}_{start}", f"{side}_{end}"
            draw = functools.partial(
                draw_capsule_part, canvas, person, f"{side}_{part}", part, a, b, color_key
            )
            steps.append((0.5 * (D[a] + D[b]) + bias * h, draw))
        steps.append((D[f"{side}_hand"] + 0.03 * h, functools.partial(draw_hand, canvas, person, side)))
    return [draw for _, draw in sorted(steps, key=lambda step: step[0])]


def draw_person(canvas: Canvas, person: Person) -> None:
    """Draw ``person`` far-to-near, writing ``slot * 32 + part id`` into the label map."""
    for draw in painting_order(canvas, person):
        draw()


@dataclass
class Scene:
    """A rendered image: ``image`` (H, W, 3) uint8 BGR, the ``background`` before people and occluders,
    the ``label`` map (H, W) uint16 (0 background, person ``slot`` parts ``slot * 32 + part id``,
    65535 occluders) and the people (slots 1..n)."""

    image: np.ndarray
    background: np.ndarray
    label: np.ndarray
    people: list[Person]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area, boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / max(smaller, 1e-6))


def _place(person: Person, others: list[Person], params: SyntheticParams, rng: np.random.Generator) -> None:
    """Move ``person`` to where its box fits in the image (a little may hang out), avoiding big overlaps
    with ``others`` (20 tries; the last one is kept)."""
    width, height = params.image_size
    size = person.bbox[2:] - person.bbox[:2]
    for _ in range(20):
        lo = -person.bbox[:2] - params.truncation * size
        hi = np.array([width, height]) - person.bbox[2:] + params.truncation * size
        offset = np.where(hi > lo, rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi)), (lo + hi) / 2)
        box = person.bbox + np.tile(offset, 2)
        if all(_overlap(box, other.bbox) < 0.3 for other in others):
            break
    translate(person, offset)


def render_scene(rng: np.random.Generator, params: SyntheticParams) -> Scene:
    """Draw one image: background, people (placed with limited overlap), occluders, noise."""
    width, height = params.image_size
    scene_background = background(rng, width, height, params.clutter)
    canvas = Canvas(scene_background.copy())
    n_people = int(rng.integers(params.people_per_image[0], params.people_per_image[1] + 1))
    people: list[Person] = []
    for slot in range(1, n_people + 1):
        person = make_person(rng, params, rng.uniform(*params.person_height) * height, slot)
        _place(person, people, params, rng)
        people.append(person)
    for person in sorted(people, key=lambda p: p.height):  # smaller (farther) people first
        draw_person(canvas, person)
    for person in people:
        for _ in range(rng.poisson(params.occluders)):
            add_occluder(canvas, rng, person)
    image = canvas.image
    if params.noise > 0:
        image = add_noise(image, params.noise, rng)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.0))
    return Scene(image=image, background=scene_background, label=canvas.label, people=people)
