"""scripts/hourglass_variants.py: its parts against hand counts, its sums against the full network, and
the documented conclusion (no hourglass variant has both 25.1M and 14.3 / 19.1 GMACs)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.scripts.helpers import load_script

hv = load_script("hourglass_variants")

# One 256-channel residual: 1x1 256->128, 3x3 128->128, 1x1 128->256 (weights, per output pixel) ...
RESIDUAL_MACS_PER_PIXEL = 256 * 128 + 128 * 128 * 9 + 128 * 256
# ... plus biases (128 + 128 + 256) and three BatchNorms (2 x (256 + 128 + 128)).
RESIDUAL_PARAMS = RESIDUAL_MACS_PER_PIXEL + 512 + 1024
# Pixels a depth-4 hourglass's residuals run on, from a 64 x 64 (MPII) and a 48 x 64 (COCO) input:
# skip branch at sizes 1, 1/2, 1/4, 1/8; low1 and low3 at 1/2 ... 1/16; one bottom residual at 1/16.
HOURGLASS_PIXELS = tuple(
    sum(w * h // 4**k for k in range(4)) + 2 * sum(w * h // 4**k for k in range(1, 5)) + w * h // 4**4
    for w, h in ((64, 64), (48, 64))
)


@pytest.fixture(scope="module")
def parts() -> dict[str, object]:
    return hv.measure_components(17)


def test_parts_match_hand_counts(parts) -> None:
    assert HOURGLASS_PIXELS == (8176, 6132)
    post = parts["post residual"]
    assert post == hv.Part(
        RESIDUAL_PARAMS, 1024, 512, (RESIDUAL_MACS_PER_PIXEL * 4096, RESIDUAL_MACS_PER_PIXEL * 3072)
    )
    hourglass = parts["hourglass"]
    assert hourglass.params == 13 * RESIDUAL_PARAMS
    assert hourglass.macs == tuple(RESIDUAL_MACS_PER_PIXEL * p for p in HOURGLASS_PIXELS)
    assert parts["bottom residual"].macs == (RESIDUAL_MACS_PER_PIXEL * 16, RESIDUAL_MACS_PER_PIXEL * 12)
    assert parts["remap features"].params == 256 * 256 + 256
    assert parts["skip conv of post residual"].macs == (256 * 256 * 4096, 256 * 256 * 3072)


def test_sums_of_parts_equal_the_full_networks(parts) -> None:
    """hg.lua's hourglass8 (the exact counts of the built network, tests/models/test_counting.py) and its
    lean variant."""
    default = hv.total(hv.NAMED["hg.lua (default hourglass8)"], parts)
    assert (default.params, default.macs) == (25_437_960, (27_455_913_984, 20_591_935_488))
    lean = hv.total(replace(hv.NAMED["hg.lua (default hourglass8)"], post=0), parts)
    assert lean.params == 25_437_960 - 8 * RESIDUAL_PARAMS
    assert tuple(round(g, 1) for g in hv.gmacs(lean)) == (19.1, 14.3)


def test_matches_reads_the_printed_digits() -> None:
    def part(params: int, g256: float, g192: float):
        return hv.Part(params, 0, 0, (int(g256 * 2**30), int(g192 * 2**30)))

    assert hv.matches(part(25_140_000, 19.14, 14.26))
    assert not hv.matches(part(25_160_000, 19.14, 14.26))
    assert not hv.matches(part(25_140_000, 19.16, 14.26))
    assert not hv.matches(part(25_140_000, 19.14, 14.36), "rounded")
    assert hv.matches(part(25_190_000, 19.19, 14.39), "truncated")
    assert not hv.matches(part(25_090_000, 19.19, 14.39), "truncated")
    assert not hv.matches(part(25_190_000, 19.19, 14.29), "truncated")
    with pytest.raises(ValueError, match="reading must be one of"):
        hv.matches(part(0, 0, 0), "floored")


def test_no_variant_has_both_the_printed_params_and_macs(parts) -> None:
    results = hv.search({17: parts})
    assert len(results) == len(hv.all_variants()) // 2  # J = 17 half of the grid
    for reading in hv.READINGS:
        assert not [v for v, counts in results if hv.matches(counts, reading)]
    right_macs = [c for _, c in results if tuple(round(g, 1) for g in hv.gmacs(c)) == hv.TARGET_GMACS]
    assert right_macs and min(abs(c.params - 25_100_000) for c in right_macs) > 150_000
