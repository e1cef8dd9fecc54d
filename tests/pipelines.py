"""Top-down pipelines for tests that build a dataset directly (the builders do it from a config)."""

from __future__ import annotations

from boxpose.codec.heatmap import HeatmapCodec
from boxpose.data.pipeline import AugmentConfig, TopDownPipeline
from boxpose.keypoints import get_spec

# The sizes the papers use for each layout: MPII 256x256, COCO 256x192 (as [W, H]).
DEFAULT_INPUT_SIZE = {"mpii": (256, 256), "coco": (192, 256)}


def make_pipeline(
    spec: str,
    *,
    train: bool = False,
    input_size: tuple[int, int] | None = None,
    heatmap_size: tuple[int, int] | None = None,
    sigma: float = 2.0,
    augment: AugmentConfig | None = None,
    color_rgb: bool = True,
) -> TopDownPipeline:
    """A pipeline for the layout ``spec`` ("mpii" | "coco"): training augmentation (``augment``, default
    settings when None) if ``train``, heatmaps a quarter of the input unless given."""
    input_size = input_size or DEFAULT_INPUT_SIZE[spec]
    heatmap_size = heatmap_size or (input_size[0] // 4, input_size[1] // 4)
    codec = HeatmapCodec(tuple(input_size), tuple(heatmap_size), sigma)
    return TopDownPipeline(get_spec(spec), codec, (augment or AugmentConfig()) if train else None, color_rgb)
