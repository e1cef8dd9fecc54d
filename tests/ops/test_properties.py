"""Property tests (hypothesis): random shapes and boxes, including boxes outside [-1, 1] and inverted ones."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boxpose.ops import box_conv2d, use_impl
from tests.ops.dense_oracle import dense_box_conv


@st.composite
def problems(draw):
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 3))
    m = draw(st.integers(1, 2))
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    k = draw(st.integers(0, 8)) * 2 + 1
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, dtype=torch.float64, generator=gen)
    boxes = torch.rand(c * m, 4, dtype=torch.float64, generator=gen) * 3.0 - 1.5
    return x, boxes, k


@settings(max_examples=60, deadline=None)
@given(problems())
def test_forward_matches_dense_kernel_for_any_shape_and_box(problem):
    x, boxes, k = problem
    expected = dense_box_conv(x, _ordered_or_empty(boxes), k)
    for impl in ("cpu", "reference"):
        with use_impl(impl):
            torch.testing.assert_close(box_conv2d(x, boxes, k), expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(problems())
def test_input_gradient_is_the_adjoint(problem):
    """<box_conv(x), g> == <x, grad_x> for random g: the input gradient is the exact adjoint."""
    x, boxes, k = problem
    x = x.clone().requires_grad_()
    with use_impl("cpu"):
        out = box_conv2d(x, boxes, k)
    g = torch.randn_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close((out * g).sum(), (x * gx).sum(), rtol=1e-9, atol=1e-9)


def _ordered_or_empty(boxes: torch.Tensor) -> torch.Tensor:
    """The dense oracle's view of the op's rule: an inverted axis is empty (hi = lo)."""
    b = boxes.clamp(-1, 1).clone()
    b[:, 1] = torch.maximum(b[:, 1], b[:, 0])
    b[:, 3] = torch.maximum(b[:, 3], b[:, 2])
    return b
