"""The numbers the paper publishes in its Tables 1-3 (Zhang, Halber, Rusinkiewicz, "Accelerating
Large-Kernel Convolution Using Summed-Area Tables"): the one home for them.

``scripts/make_tables.py`` prints them beside our runs; ``tests/models/test_counting.py`` checks our
parameter and MAC counts against them. Input sizes are the paper's height x width (Table 1: 256x256;
Tables 2-3: 256x192, i.e. ``input_size=[192, 256]``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One row of a table of the paper.

    Attributes:
        method: the method as the paper names it.
        params_m: #Params in millions.
        gflops: FLOPs in G as printed (None where the table has no FLOPs column).
        metrics: the metric columns in the table's order, in percent (None where the paper prints "-").
    """

    method: str
    params_m: float
    gflops: float | None
    metrics: tuple[float | None, ...]


# Keyed by table number, then by (our registry's model name, ImageNet-initialised backbone).
# Table 1: MPII test set, PCKh@0.5 at 256x256; Head Sho. Elb. Wri. Hip Knee Ank. Mean.
# Table 2: COCO val2017, Faster R-CNN person boxes, 256x192; AP AP50 AP75 APM APL AR.
# Table 3: COCO test-dev2017, 256x192; AP AP50 AP75 APM APL AR (the paper prints no FLOPs there).
PAPER: dict[int, dict[tuple[str, bool], PaperRow]] = {
    1: {
        ("hourglass8", False): PaperRow(
            "8-stage hourglass", 25.1, 19.1, (98.2, 96.3, 91.2, 87.1, 90.1, 87.4, 83.6, 90.9)
        ),
        ("simple_baseline_r50", False): PaperRow(
            "SimpleBaseline R50", 34.0, 12.0, (98.0, 95.3, 89.1, 83.9, 88.3, 83.7, 79.1, 88.7)
        ),
        ("simple_baseline_r50", True): PaperRow(
            "SimpleBaseline R50", 34.0, 12.0, (98.1, 96.0, 90.3, 85.6, 89.6, 86.1, 81.9, 90.1)
        ),
        ("boxnet_dilated", False): PaperRow(
            "Dilated Convolution", 1.88, 7.7, (97.7, 94.6, 88.8, 83.5, 87.4, 82.3, 77.7, 88.0)
        ),
        ("boxnet_3x3", False): PaperRow(
            "3×3 Convolution", 1.87, 7.6, (95.6, 92.2, 82.0, 75.6, 76.3, 69.3, 63.8, 80.2)
        ),
        ("boxnet", False): PaperRow("Ours", 1.85, 7.7, (98.1, 95.7, 90.6, 85.7, 89.2, 84.4, 79.6, 89.6)),
    },
    2: {
        ("hourglass8", False): PaperRow(
            "8-stage hourglass", 25.1, 14.3, (66.9, None, None, None, None, None)
        ),
        ("simple_baseline_r50", False): PaperRow(
            "SimpleBaseline R50", 34.0, 8.9, (69.3, 88.3, 77.0, 66.2, 75.8, 75.3)
        ),
        ("simple_baseline_r50", True): PaperRow(
            "SimpleBaseline R50", 34.0, 8.9, (70.4, 88.6, 78.3, 67.1, 77.2, 76.3)
        ),
        ("boxnet", False): PaperRow("Ours", 1.85, 5.8, (69.9, 88.6, 76.7, 66.1, 76.5, 75.1)),
    },
    3: {
        ("simple_baseline_r50", False): PaperRow(
            "SimpleBaseline R50", 34.0, None, (68.8, 90.3, 76.8, 65.7, 74.5, 74.5)
        ),
        ("simple_baseline_r50", True): PaperRow(
            "SimpleBaseline R50", 34.0, None, (70.0, 90.9, 77.9, 66.8, 75.8, 75.6)
        ),
        ("boxnet", False): PaperRow("Ours", 1.85, None, (68.9, 90.3, 76.0, 65.3, 74.9, 74.3)),
    },
}
