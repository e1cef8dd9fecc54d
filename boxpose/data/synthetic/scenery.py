"""What surrounds the people: textured, cluttered backgrounds, occluders in front of people, pixel noise."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from boxpose.data.synthetic.body import SKIN, Person
from boxpose.data.synthetic.canvas import OCCLUDER_LABEL, Canvas, darker


@functools.lru_cache(maxsize=4)
def _noise_table(width: int, height: int) -> np.ndarray:
    """(2H, 2W, 3) int16 standard-normal noise x 16, from a fixed seed: images take shifted windows of it,
    which is much faster than drawing fresh noise for every pixel and just as good for this purpose."""
    table = np.random.default_rng(12345).standard_normal((2 * height, 2 * width, 3)) * 16
    table = np.round(table).astype(np.int16)
    table.flags.writeable = False
    return table


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` plus Gaussian pixel noise of standard deviation ``sigma`` (uint8, saturated)."""
    h, w = image.shape[:2]
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    noise = _noise_table(w, h)[y0 : y0 + h, x0 : x0 + w]
    out = image.astype(np.int16) + ((noise * round(sigma * 16)) >> 8).astype(np.int16)
    return np.clip(out, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8: a smooth colour field plus stripes, checks, grain or nothing."""
    g = int(rng.integers(2, 7))
    field_ = rng.uniform(0, 255, (g, g, 3)).astype(np.float32)
    img = cv2.resize(field_, (width, height), interpolation=cv2.INTER_CUBIC)
    kind = rng.integers(4)
    xs, ys = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    if kind == 0:  # stripes: sin(a x + b y), as a sum of two outer products (separable, fast)
        t = rng.uniform(0, math.pi)
        k = 2 * math.pi / rng.uniform(6, 40)
        ax, by = xs * (k * math.cos(t)), ys * (k * math.sin(t))
        wave = np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax))
        img += (wave * rng.uniform(10, 40))[..., None]
    elif kind == 1:  # checks: -(-1)^(row cell + column cell)
        cell = int(rng.integers(8, 40))
        checks = np.outer(2 * ((ys // cell) % 2) - 1, 1 - 2 * ((xs // cell) % 2))
        img += (checks * rng.uniform(10, 35))[..., None]
    elif kind == 2:  # grain
        small = rng.standard_normal((height // 4 + 1, width // 4 + 1)).astype(np.float32)
        img += cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)[..., None] * rng.uniform(
            8, 25
        )
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter_shape(canvas: Canvas, rng: np.random.Generator, width: int, height: int) -> None:
    """One background shape: a box, an ellipse, a line or a limb-like capsule in skin or clothing colours."""
    size = min(width, height)
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    c = rng.uniform(0, 1, 2) * (width, height)
    s = rng.uniform(0.03, 0.25) * size
    shape = rng.integers(5)
    if shape == 0:
        angle = rng.uniform(0, 360)
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (float(s), float(s * rng.uniform(0.3, 1.5))), angle))
        canvas.poly(box, color, None)
    elif shape == 1:
        canvas.ellipse(c, (s / 2, s * rng.uniform(0.2, 0.6)), rng.uniform(0, 180), color, None)
    elif shape == 2:
        end = c + rng.normal(0, s, 2)
        canvas.line(c, end, color, int(rng.integers(1, 4)))
    else:  # limb-like distractor in skin or clothing colours
        if rng.random() < 0.5:
            color = SKIN[rng.integers(len(SKIN))]
        end = c + rng.normal(0, 1, 2) / math.sqrt(2) * s
        wa = rng.uniform(0.015, 0.04) * size
        canvas.capsule(c, end, wa, wa * rng.uniform(0.6, 1.0), color, None)


def background(rng: np.random.Generator, width: int, height: int, clutter: int) -> np.ndarray:
    """Textured, cluttered background (H, W, 3) uint8 with ``clutter`` shapes."""
    canvas = Canvas(_texture(rng, width, height))
    for _ in range(clutter):
        _clutter_shape(canvas, rng, width, height)
    return canvas.image


def add_occluder(canvas: Canvas, rng: np.random.Generator, person: Person) -> None:
    """A textured object in front of a random joint of ``person`` (labelled OCCLUDER_LABEL)."""
    target = person.joints[rng.integers(16)] + rng.normal(0, 0.08 * person.height, 2)
    s = rng.uniform(0.12, 0.3) * person.height
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    if rng.random() < 0.5:
        box = cv2.boxPoints(
            (
                (float(target[0]), float(target[1])),
                (float(s), float(s * rng.uniform(0.4, 1.2))),
                rng.uniform(0, 180),
            )
        )
        canvas.poly(box, color, OCCLUDER_LABEL)
        canvas.line(box[0], box[2], darker(color, 0.6), 2)
    else:
        canvas.ellipse(
            target, (s / 2, s * rng.uniform(0.25, 0.5)), rng.uniform(0, 180), color, OCCLUDER_LABEL
        )
