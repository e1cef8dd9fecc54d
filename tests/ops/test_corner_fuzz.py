"""Bad corner values never crash the op: NaN, +-inf, huge and tiny numbers in every column of the boxes.

The documented behaviour (boxpose/ops/box_conv.py): non-finite boxes or corners raise ``ValueError``
("... must be finite") from box_conv2d, box_conv2d_split, box_filter and the registered forward and
backward ops, in every implementation; finite ones far outside the window are clamped, forward and
backward (zero gradient beyond the clamp). The compiled kernels, called directly, clamp whatever they
are given (NaN to 0) and never read outside their tables.

Every case runs in one subprocess, so a segfault fails the test instead of killing pytest.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import torch

VALUES = [math.nan, math.inf, -math.inf, 1e10, -1e10, 1e30, 1e-30, 0.0]
K = 5
SPLIT_PIECES = {"h2": 2, "v2": 2, "q4": 4}


def _inputs(c_out: int, m: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(2, c_out // m, 7, 6, dtype=torch.float64, generator=generator)
    g = torch.randn(2, c_out, 7, 6, dtype=torch.float64, generator=generator)
    return x, g


def _run(fn, x: torch.Tensor, params: list[torch.Tensor], g: torch.Tensor) -> list[torch.Tensor]:
    """[output, grad x, grad of each parameter]."""
    x = x.clone().requires_grad_()
    params = [p.clone().requires_grad_() for p in params]
    out = fn(x, *params)
    grads = torch.autograd.grad(out, [x, *params], g, allow_unused=True, materialize_grads=True)
    return [out.detach(), *grads]


def _expect_value_error(fn, words: list[str], label: str) -> None:
    try:
        fn()
    except ValueError as exc:
        missing = [w for w in words if w not in str(exc)]
        assert not missing, f"{label}: message {str(exc)!r} lacks {missing}"
        return
    raise AssertionError(f"{label}: no ValueError")


def _assert_close(got: list[torch.Tensor], expected: list, names: list[str], label: str) -> None:
    for name, a, b in zip(names, got, expected):
        where = f"{label}: {name}"
        assert torch.isfinite(a).all(), f"{where} is not finite"
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=lambda m, where=where: f"{where}: {m}")


def _check_public_function(
    name, fn, x, g, params, fuzzed: int, row: int, col: int, value, low, high, arg, snapped_corners: int = 0
):
    """Put ``value`` at params[fuzzed][row, col] and compare every implementation with the reference on
    the clamped parameters (the fuzzed entry's gradient is zero beyond the clamp).

    snapped_corners: how many leading parameters are snapped corners, whose gradients are only checked to
    be finite (the reference path's snapped corners carry no gradient, the kernels' carry the gradient
    at the rounded corner).
    """
    from boxpose.ops import use_impl

    bad = [p.clone() for p in params]
    bad[fuzzed][row, col] = value
    label = f"{name} {arg}[{row}, {col}]={value}"
    names = ["output", "grad input"] + [f"grad param {i}" for i in range(len(params))]
    clamped = [p.clone() for p in bad]
    if math.isfinite(value):
        clamped[fuzzed][row, col] = min(max(value, low), high)
        with use_impl("reference"):
            expected = _run(fn, x, clamped, g)
        if not low <= value <= high:
            expected[2 + fuzzed][row, col] = 0.0
        for i in range(snapped_corners):
            expected[2 + i] = None
    for impl in ("reference", "cpu"):
        with use_impl(impl):
            if not math.isfinite(value):
                _expect_value_error(lambda: fn(x, *bad), [arg, "finite"], f"{label} ({impl})")
                continue
            _assert_close(_run(fn, x, bad, g), expected, names, f"{label} ({impl})")
    return clamped


def _check_raw_ops(x, g, xs, ys, coef, snapped: bool, label: str) -> None:
    """The registered ops reject non-finite corners; the compiled kernels clamp them (NaN to 0)."""
    from boxpose.ops.reference import box_filter_backward_reference, box_filter_reference, clamp_corners

    finite = bool(torch.isfinite(xs).all() and torch.isfinite(ys).all())
    mask = [True, True, True, True]
    if not finite:
        for arg in ("forward", "backward"):
            call = (
                (lambda: torch.ops.boxpose.box_filter(x, xs, ys, coef, K, snapped))
                if arg == "forward"
                else (lambda: torch.ops.boxpose.box_filter_backward(g, x, xs, ys, coef, K, snapped, mask))
            )
            _expect_value_error(call, ["finite"], f"{label} boxpose::box_filter {arg}")
    xs_c, ys_c = clamp_corners(xs, K), clamp_corners(ys, K)
    expected = [box_filter_reference(x, xs_c, ys_c, coef, K, snapped)]
    expected += list(box_filter_backward_reference(g, x, xs_c, ys_c, coef, K, snapped, mask))
    cpu = torch.ops.boxpose_kernels
    names = ["output", "grad input", "grad xs", "grad ys", "grad coef"]
    got = [cpu.box_filter_forward(x, xs, ys, coef, K, snapped)]
    got += list(cpu.box_filter_backward(g, x, xs, ys, coef, K, snapped, mask))
    _assert_close(got, expected, names, f"{label} compiled kernel")
    emulation = torch.ops.boxpose_kernels_emulation
    got = [emulation.box_filter_forward_emulated(x, xs, ys, coef, K, snapped, 32)]
    got += list(emulation.box_filter_backward_emulated(g, x, xs, ys, coef, K, snapped, mask, 32))
    _assert_close(got, expected, names, f"{label} emulated CUDA kernel")
    got = [emulation.box_filter_forward_nhwc_emulated(x, xs, ys, coef, K, snapped, 32, 3)]
    got += list(emulation.box_filter_backward_nhwc_emulated(g, x, xs, ys, coef, K, snapped, mask, 32, 3))
    _assert_close(got, expected, names, f"{label} emulated channels-last CUDA kernel")


def run_all_cases() -> int:
    """Every case; raises AssertionError on the first wrong result. Returns the number of cases."""
    from boxpose.ops import box_conv2d, box_conv2d_split, box_corners, box_filter, kernels, split_coefficients
    from tests.ops.dense_oracle import dense_box_conv, random_boxes
    from tests.ops.test_properties import _ordered_or_empty

    kernels.load(cuda=False)
    kernels.load_emulation()
    gen = torch.Generator().manual_seed(13)
    cases = 0
    c_out, m = 4, 2
    x, g = _inputs(c_out, m, gen)
    boxes = random_boxes(c_out, K, generator=gen)
    for value in VALUES:
        for col in range(4):
            for row in (0, c_out - 1):
                for snapped in (False, True):

                    def plain(a, b, snapped=snapped):
                        return box_conv2d(a, b, K, snapped=snapped)

                    clamped = _check_public_function(
                        "box_conv2d",
                        plain,
                        x,
                        g,
                        [boxes],
                        0,
                        row,
                        col,
                        value,
                        -1.0,
                        1.0,
                        "boxes",
                        int(snapped),
                    )
                    if math.isfinite(value) and not snapped:
                        dense = dense_box_conv(x, _ordered_or_empty(clamped[0]), K)
                        torch.testing.assert_close(box_conv2d(x, clamped[0], K), dense, rtol=1e-9, atol=1e-9)
                    bad = boxes.clone()
                    bad[row, col] = value
                    xs, ys = box_corners(bad, K)
                    _check_raw_ops(
                        x, g, xs, ys, plain_coefficients(c_out), snapped, f"boxes[{row}, {col}]={value}"
                    )
                    cases += 1
                for split, pieces in SPLIT_PIECES.items():
                    weights = torch.randn(c_out, pieces, dtype=torch.float64, generator=gen)

                    def split_fn(a, b, w, split=split):
                        return box_conv2d_split(a, b, w, K, split)

                    _check_public_function(
                        f"box_conv2d_split {split}",
                        split_fn,
                        x,
                        g,
                        [boxes, weights],
                        0,
                        row,
                        col,
                        value,
                        -1.0,
                        1.0,
                        "boxes",
                    )
                    cases += 1
    # box_filter: 3 x-corners and 2 y-corners per channel, in kernel coordinates [0, K].
    xs = (torch.rand(c_out, 3, dtype=torch.float64, generator=gen) * K).sort(1).values
    ys = (torch.rand(c_out, 2, dtype=torch.float64, generator=gen) * K).sort(1).values
    coef = split_coefficients(torch.randn(c_out, 2, dtype=torch.float64, generator=gen), "h2")
    for value in VALUES:
        for arg, corners in (("xs", xs), ("ys", ys)):
            for col in range(corners.shape[1]):
                for row in (0, c_out - 1):
                    for snapped in (False, True):

                        def generic(a, px, py, pc, snapped=snapped):
                            return box_filter(a, px, py, pc, K, snapped)

                        params = [xs, ys, coef]
                        fuzzed = 0 if arg == "xs" else 1
                        _check_public_function(
                            "box_filter",
                            generic,
                            x,
                            g,
                            params,
                            fuzzed,
                            row,
                            col,
                            value,
                            0.0,
                            float(K),
                            arg,
                            2 * int(snapped),
                        )
                        bad = corners.clone()
                        bad[row, col] = value
                        raw = (bad, ys) if arg == "xs" else (xs, bad)
                        _check_raw_ops(x, g, *raw, coef, snapped, f"box_filter {arg}[{row}, {col}]={value}")
                        cases += 1
    return cases


def plain_coefficients(c_out: int) -> torch.Tensor:
    """Coefficients of plain boxes, float64."""
    return torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64).expand(c_out, 2, 2).contiguous()


def test_bad_corner_values_never_crash_and_follow_the_documented_rule():
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.ops.test_corner_fuzz import run_all_cases; print(run_all_cases())",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    crashed = f"the op crashed the process (signal {-result.returncode}):\n{result.stderr[-3000:]}"
    assert result.returncode >= 0, crashed
    assert result.returncode == 0, result.stderr[-4000:]
    # value x column x row x (plain, snapped, each split)
    box_conv_cases = len(VALUES) * 4 * 2 * (2 + len(SPLIT_PIECES))
    box_filter_cases = len(VALUES) * (3 + 2) * 2 * 2  # value, xs and ys column, row, snapped
    assert int(result.stdout.strip().splitlines()[-1]) == box_conv_cases + box_filter_cases
