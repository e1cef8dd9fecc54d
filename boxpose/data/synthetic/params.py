"""The generation parameters of the synthetic data and what identifies a generated set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

GENERATOR_VERSION = 2  # bump whenever the drawing or the annotation rules change


@dataclass(frozen=True)
class SyntheticParams:
    """Generation parameters (the ``synthetic:`` block of a data config).

    Attributes:
        seed: base seed; equal parameters give byte-identical files.
        num_train, num_val, num_test: images per split (test: no keypoints written; 0 = no test split).
        image_size: (width, height) of the images.
        people_per_image: (min, max) people per image (MPII: each person is an entry).
        person_height: (min, max) standing height as a fraction of the image height.
        truncation: how far (as a fraction of its size) a person's box may hang out of the image.
        max_yaw: degrees the body may turn away from facing the camera (or from facing away); 90 would
            include pure profiles, where left and right overlap.
        roll_std: standard deviation in degrees of the in-plane body rotation (clipped at 3x).
        pose_variety: 0..1, share of non-neutral poses (raised arms, bent legs, ...).
        clutter: number of background shapes (some of them limb-like distractors).
        occluders: mean number of occluding objects per person.
        noise: standard deviation of the pixel noise (0-255 scale).
        jpeg_quality: JPEG quality.
        workers: processes used to generate (0 = up to 8, one per core); not part of the data identity.
    """

    seed: int = 0
    num_train: int = 4000
    num_val: int = 500
    num_test: int = 0
    image_size: tuple[int, int] = (256, 256)
    people_per_image: tuple[int, int] = (1, 2)
    person_height: tuple[float, float] = (0.5, 0.85)
    max_yaw: float = 35.0
    roll_std: float = 10.0
    pose_variety: float = 0.4
    truncation: float = 0.05
    clutter: int = 6
    occluders: float = 0.15
    noise: float = 4.0
    jpeg_quality: int = 90
    workers: int = field(default=0, compare=False)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | SyntheticParams) -> SyntheticParams:
        """Build from a config mapping (lists become tuples); unknown keys are an error."""
        if isinstance(values, SyntheticParams):
            return values
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown synthetic data parameters {unknown}; known: {sorted(known)}")
        kwargs = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in values.items()}
        return cls(**kwargs)

    def identity(self, kind: str) -> dict[str, Any]:
        """What determines the generated files: generator version, kind and every parameter but workers."""
        params = asdict(self)
        params.pop("workers")
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        return {"generator_version": GENERATOR_VERSION, "kind": kind, "params": params}
