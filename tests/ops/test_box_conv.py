"""box_conv2d against the dense-kernel oracle: values, gradients, dtypes, layouts, errors, registration."""

from __future__ import annotations

import warnings

import pytest
import torch

from boxpose.ops import box_conv as box_conv_module
from boxpose.ops import (
    box_conv2d,
    box_conv2d_split,
    box_corners,
    box_filter,
    kernels,
    set_impl,
    split_coefficients,
    use_impl,
)
from tests.ops.dense_oracle import dense_box_conv, dense_split_conv, random_boxes

IMPLS = ["cpu", "reference"]

# (N, C, H, W, k, m): odd shapes, images smaller than the kernel, 1x1 images, k = 1, m = 1 and 2.
SHAPES = [
    (2, 3, 9, 11, 5, 1),
    (1, 2, 3, 4, 7, 2),
    (2, 2, 1, 1, 3, 1),
    (1, 1, 1, 1, 31, 2),
    (1, 4, 6, 5, 1, 1),
    (1, 2, 20, 17, 31, 2),
    (3, 1, 13, 2, 13, 1),
]


def _grads(fn, x, boxes, g):
    out = fn(x, boxes)
    gx, gb = torch.autograd.grad(out, [x, boxes], g)
    return out.detach(), gx, gb


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_and_gradients_match_dense_kernel(impl, shape):
    n, c, h, w, k, m = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    boxes = random_boxes(c * m, k).requires_grad_()
    g = torch.randn(n, c * m, h, w, dtype=torch.float64)
    ref = _grads(lambda a, b: dense_box_conv(a, b, k), x, boxes, g)
    with use_impl(impl):
        got = _grads(lambda a, b: box_conv2d(a, b, k), x, boxes, g)
    for r, o in zip(ref, got):
        torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
def test_every_kernel_size_up_to_31(impl):
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    for k in range(1, 32, 2):
        boxes = random_boxes(6, k)
        with use_impl(impl):
            out = box_conv2d(x, boxes, k)
        torch.testing.assert_close(out, dense_box_conv(x, boxes, k), rtol=1e-9, atol=1e-9, msg=f"k={k}")


def test_full_box_is_k_by_k_box_sum():
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    full = torch.tensor([[-1.0, 1.0, -1.0, 1.0]] * 2, dtype=torch.float64)
    ones = torch.ones(2, 1, 5, 5, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(x, ones, padding=2, groups=2)
    torch.testing.assert_close(box_conv2d(x, full, 5), expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_off_the_integer_grid(impl):
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    boxes = random_boxes(4, 7, margin=0.1).requires_grad_()
    with use_impl(impl):
        assert torch.autograd.gradcheck(lambda a, b: box_conv2d(a, b, 7), (x, boxes), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
def test_one_sided_derivatives_at_integer_corners(impl):
    """At an integer kernel coordinate a < k the right derivative is returned, at a = k the left one."""
    k = 5
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    g = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    # x_lo at a=1, x_hi at a=k (p=1), y_lo at a=0 (p=-1), y_hi at a=3.
    boxes = torch.tensor([[2 * 1 / k - 1, 1.0, -1.0, 2 * 3 / k - 1]], dtype=torch.float64, requires_grad=True)
    with use_impl(impl):
        loss = (box_conv2d(x, boxes, k) * g).sum()
        (grad,) = torch.autograd.grad(loss, boxes)

    def f(b):
        return (dense_box_conv(x, b, k) * g).sum()

    delta = 1e-7
    for col, side in [(0, "right"), (1, "left"), (2, "right"), (3, "right")]:
        step = torch.zeros_like(boxes)
        step[0, col] = delta
        with torch.no_grad():
            if side == "right":
                fd = (f(boxes + step) - f(boxes)) / delta
            else:
                fd = (f(boxes) - f(boxes - step)) / delta
        torch.testing.assert_close(grad[0, col], fd, rtol=1e-5, atol=1e-6, msg=f"column {col} ({side})")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_reduced_precision_matches_float64(dtype):
    x = torch.randn(2, 3, 16, 16).to(dtype)
    boxes = random_boxes(6, 13).float()
    ref = dense_box_conv(x.double(), boxes.double(), 13)
    out = box_conv2d(x, boxes, 13)
    assert out.dtype == dtype
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())
    # Gradients too: input gradient in the input's dtype, box gradient in float32.
    xg = x.clone().requires_grad_()
    bg = boxes.clone().requires_grad_()
    g = torch.randn(2, 6, 16, 16).to(dtype)
    gx, gb = torch.autograd.grad(box_conv2d(xg, bg, 13), [xg, bg], g)
    xr, br = x.double().requires_grad_(), boxes.double().requires_grad_()
    rx, rb = torch.autograd.grad(dense_box_conv(xr, br, 13), [xr, br], g.double())
    assert gx.dtype == dtype and gb.dtype == torch.float32
    torch.testing.assert_close(gx.double(), rx, rtol=tol, atol=tol * rx.abs().max().item())
    torch.testing.assert_close(gb.double(), rb, rtol=tol, atol=tol * rb.abs().max().item())


# (N, C, H, W, k, m) for the float32 kernels' vectorised paths: widths in whole blocks of 16 columns, with
# a block of 8 left over, and under 8; heights in whole bands of 8 rows and not; channel blocks in whole
# vectors of 8 and not (channels-last); m = 2; a window larger than the image; the network's size.
FLOAT32_SHAPES = [
    (2, 16, 16, 32, 9, 1),
    (1, 24, 13, 24, 7, 1),
    (1, 8, 9, 5, 11, 2),
    (2, 20, 8, 17, 25, 1),
    (1, 16, 64, 64, 25, 1),
]
# Coefficient matrices (NY = NX = 3; rows and columns sum to zero, as box_filter requires) by the
# coefficient rows the filter's separable form keeps apart: one (the others multiples of it, or zero),
# two (rows that are no multiples of each other), and random ones.
COEFFICIENTS = {
    "multiples": [[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]],
    "zero_row": [[0.0, 0.0, 0.0], [1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]],
    "two_rows": [[1.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 1.0]],
    "random": None,
}


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("shape", FLOAT32_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("coefficients", COEFFICIENTS)
def test_float32_kernel_matches_float64_reference(layout, shape, coefficients):
    """The compiled float32 kernels (vectorised where the CPU allows) against the float64 reference:
    output and every gradient, for every coefficient structure, in both layouts."""
    n, c, h, w, k, m = shape
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(n, c, h, w, generator=generator)
    g = torch.randn(n, c * m, h, w, generator=generator)
    corners = (torch.rand(c * m, 6, generator=generator) * k).sort(1).values
    xs, ys = corners[:, [0, 2, 4]].contiguous(), corners[:, [1, 3, 5]].contiguous()
    coef_values = COEFFICIENTS[coefficients]
    if coef_values is None:  # random, then every row and column centred on zero
        coef = torch.randn(c * m, 3, 3, generator=generator)
        row_means, column_means = coef.mean(2, keepdim=True), coef.mean(1, keepdim=True)
        coef = coef - row_means - column_means + coef.mean((1, 2), keepdim=True)
    else:
        coef = torch.tensor(coef_values).expand(c * m, 3, 3).contiguous()
    if layout == "channels_last":
        x, g = x.contiguous(memory_format=CL), g.contiguous(memory_format=CL)
    results = {}
    for impl, dtype in (("reference", torch.float64), ("cpu", torch.float32)):
        inputs = [t.to(dtype).requires_grad_() for t in (x, xs, ys, coef)]
        with use_impl(impl):
            out = box_filter(*inputs, k)
            grads = torch.autograd.grad(out, inputs, g.to(dtype))
        assert out.dtype == dtype and all(grad.dtype == dtype for grad in grads)
        results[impl] = [out.detach(), *grads]
    names = ["output", "grad input", "grad xs", "grad ys", "grad coef"]
    for name, got, expected in zip(names, results["cpu"], results["reference"]):
        scale = expected.abs().max().item()
        torch.testing.assert_close(
            got.double(), expected, rtol=1e-5, atol=1e-5 * scale, msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.parametrize("impl", IMPLS)
def test_boxes_outside_the_window_are_clamped(impl):
    x = torch.randn(1, 2, 10, 10, dtype=torch.float64)
    boxes = torch.tensor(
        [[-1.7, 0.3, -0.2, 2.5], [-3.0, -2.0, 0.1, 0.4]], dtype=torch.float64, requires_grad=True
    )
    with use_impl(impl):
        out = box_conv2d(x, boxes, 7)
        (grad,) = torch.autograd.grad(out.sum(), boxes)
    torch.testing.assert_close(out, dense_box_conv(x, boxes.detach().clamp(-1, 1), 7))
    # Coordinates beyond the clamp get no gradient; inside, they do. (Box 1 is clamped to zero width.)
    assert grad[0, 0] == 0 and grad[0, 3] == 0 and grad[1, 0] == 0 and grad[1, 1] == 0
    assert grad[0, 1] != 0 and grad[0, 2] != 0


@pytest.mark.parametrize("impl", IMPLS)
def test_inverted_boxes_are_empty(impl):
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    boxes = torch.tensor([[0.5, -0.5, -0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    with use_impl(impl):
        out = box_conv2d(x, boxes, 5)
        (grad,) = torch.autograd.grad(out.sum(), boxes)
    # Zero up to the rounding of F(lo) - F(lo).
    assert out.abs().max() < 1e-12
    assert grad.abs().max() < 1e-12


@pytest.mark.parametrize("impl", IMPLS)
def test_channels_last_and_non_contiguous_inputs(impl):
    x = torch.randn(2, 4, 9, 12)
    boxes = random_boxes(8, 9).float()
    with use_impl(impl):
        expected = box_conv2d(x, boxes, 9)
        cl = box_conv2d(x.contiguous(memory_format=torch.channels_last), boxes, 9)
        strided = box_conv2d(torch.randn(2, 4, 9, 24)[..., ::2].copy_(x), boxes, 9)
        transposed = box_conv2d(x.transpose(2, 3).contiguous().transpose(2, 3), boxes, 9)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    for out in (cl, strided, transposed):
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("split", ["h2", "v2", "q4", "none"])
def test_split_boxes_match_dense_kernel(impl, split):
    pieces = {"none": 1, "h2": 2, "v2": 2, "q4": 4}[split]
    x = torch.randn(2, 2, 9, 8, dtype=torch.float64, requires_grad=True)
    boxes = random_boxes(4, 11).requires_grad_()
    weights = torch.randn(4, pieces, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    ref = dense_split_conv(x, boxes, weights, 11, split)
    ref_grads = torch.autograd.grad(ref, [x, boxes, weights], g)
    with use_impl(impl):
        out = box_conv2d_split(x, boxes, weights, 11, split)
        grads = torch.autograd.grad(out, [x, boxes, weights], g)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    for got, exp in zip(grads, ref_grads):
        torch.testing.assert_close(got, exp, rtol=1e-9, atol=1e-9)


def test_split_none_with_unit_weight_is_the_plain_box():
    x = torch.randn(1, 3, 7, 7, dtype=torch.float64)
    boxes = random_boxes(3, 7)
    coef = split_coefficients(torch.ones(3, 1, dtype=torch.float64), "none")
    torch.testing.assert_close(
        coef, torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64).expand(3, 2, 2)
    )
    torch.testing.assert_close(
        box_conv2d_split(x, boxes, torch.ones(3, 1, dtype=torch.float64), 7, "none"), box_conv2d(x, boxes, 7)
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_snapped_integer_path(impl):
    k = 9
    x = torch.randn(2, 2, 10, 10, dtype=torch.float64)
    corners = torch.tensor([[1, 6, 0, 9], [3, 4, 2, 8]], dtype=torch.float64)
    boxes = corners * (2 / k) - 1
    with use_impl(impl):
        out = box_conv2d(x, boxes, k, snapped=True)
        # Snapping rounds: slightly perturbed corners give the same output.
        out_perturbed = box_conv2d(x, boxes + 0.02, k, snapped=True)
    torch.testing.assert_close(out, dense_box_conv(x, boxes, k))
    torch.testing.assert_close(out_perturbed, out)


def test_cpu_kernel_and_reference_agree_on_random_inputs():
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        n, c, m = 2, 3, 2
        h, w = torch.randint(1, 30, (2,), generator=gen).tolist()
        k = int(torch.randint(0, 16, (1,), generator=gen)) * 2 + 1
        x = torch.randn(n, c, h, w, generator=gen)
        boxes = (torch.rand(c * m, 4, generator=gen) * 2.4 - 1.2).float()
        with use_impl("cpu"):
            a = box_conv2d(x, boxes, k)
        with use_impl("reference"):
            b = box_conv2d(x, boxes, k)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_empty_batch_and_empty_image():
    boxes = random_boxes(2, 5).float()
    assert box_conv2d(torch.randn(0, 2, 4, 4), boxes, 5).shape == (0, 2, 4, 4)
    assert box_conv2d(torch.randn(1, 2, 0, 4), boxes, 5).shape == (1, 2, 0, 4)


# --------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (
            (torch.randn(2, 3, 4), torch.zeros(3, 4), 3),
            ValueError,
            r"input must be a 4-D tensor \(N, C, H, W\)",
        ),
        ((torch.randn(1, 3, 4, 4), torch.zeros(3, 3), 3), ValueError, r"boxes must have shape \(C_out, 4\)"),
        (
            (torch.randn(1, 3, 4, 4), torch.zeros(4, 4), 3),
            ValueError,
            r"C_out=4 must be a positive multiple of the input channels C=3",
        ),
        (
            (torch.randn(1, 3, 4, 4), torch.zeros(3, 4), 4),
            ValueError,
            r"max_size must be an odd integer >= 1, got 4",
        ),
        (
            (torch.randn(1, 3, 4, 4), torch.zeros(3, 4), 0),
            ValueError,
            r"max_size must be an odd integer >= 1, got 0",
        ),
        ((torch.randn(1, 3, 4, 4), torch.zeros(3, 4), 3.0), ValueError, r"max_size must be an odd integer"),
        (
            (torch.randn(1, 3, 4, 4), torch.zeros(3, 4, dtype=torch.float64), 3),
            TypeError,
            r"dtype mismatch: boxes must be torch.float32 for torch.float32 input",
        ),
        ((torch.randn(1, 3, 4, 4).half(), torch.zeros(3, 4).half(), 3), TypeError, r"dtype mismatch"),
        (
            (torch.randn(1, 3, 4, 4).double(), torch.zeros(3, 4), 3),
            TypeError,
            r"boxes must be torch.float64 for torch.float64 input",
        ),
        (
            (torch.randint(0, 3, (1, 3, 4, 4)), torch.zeros(3, 4), 3),
            TypeError,
            r"input must be a floating-point tensor",
        ),
        (
            (torch.randn(1, 3, 4, 4), torch.zeros(3, 4, device="meta"), 3),
            ValueError,
            r"device mismatch: input is on cpu, boxes are on meta",
        ),
    ],
)
def test_bad_arguments_are_named(args, error, match):
    with pytest.raises(error, match=match):
        box_conv2d(*args)


def test_bad_split_arguments_are_named():
    x, boxes = torch.randn(1, 2, 4, 4), torch.zeros(2, 4)
    with pytest.raises(ValueError, match="split must be one of"):
        box_conv2d_split(x, boxes, torch.ones(2, 2), 3, "h3")
    with pytest.raises(ValueError, match=r"piece_weights must have shape \(2, 4\) for split='q4'"):
        box_conv2d_split(x, boxes, torch.ones(2, 2), 3, "q4")


def test_bad_implementation_name():
    with pytest.raises(ValueError, match="is not one of"):
        set_impl("gpu")


def test_forced_cuda_implementation_on_cpu_tensors_is_an_error():
    with (
        use_impl("cuda"),
        pytest.raises(RuntimeError, match="BOXPOSE_OP_IMPL=cuda, but the tensors are on cpu"),
    ):
        box_conv2d(torch.randn(1, 1, 4, 4), torch.zeros(1, 4), 3)


def test_failed_build_falls_back_to_reference_with_a_warning(monkeypatch):
    def failing_load(cuda, verbose=False):
        raise kernels.KernelBuildError("could not build the CPU box-filter kernels (simulated)")

    monkeypatch.setattr(kernels, "load", failing_load)
    monkeypatch.setattr(box_conv_module, "_warned_fallback", set())
    x, boxes = torch.randn(1, 2, 6, 6, dtype=torch.float64), random_boxes(2, 5)
    with use_impl("auto"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = box_conv2d(x, boxes, 5)
    assert any("simulated" in str(w.message) and "reference path" in str(w.message) for w in caught)
    torch.testing.assert_close(out, dense_box_conv(x, boxes, 5))
    with use_impl("cpu"), pytest.raises(kernels.KernelBuildError, match="simulated"):
        box_conv2d(x, boxes, 5)


def test_build_error_message_says_how_to_fall_back(tmp_path, monkeypatch):
    monkeypatch.setattr(kernels, "source_dir", lambda: tmp_path)  # an empty folder: no sources
    monkeypatch.setattr(kernels, "_loaded", set())
    monkeypatch.setattr(kernels, "_errors", {})
    with pytest.raises(kernels.KernelBuildError, match=r"sources missing.*BOXPOSE_OP_IMPL=reference"):
        kernels.load(cuda=False)


def test_production_cpu_library_holds_no_emulation():
    """The CPU emulation of the CUDA kernels lives in its own library, which only the tests load."""
    kernels.load(cuda=False)
    assert hasattr(torch.ops.boxpose_kernels, "box_filter_forward")
    assert not hasattr(torch.ops.boxpose_kernels, "box_filter_forward_emulated")
    assert not hasattr(torch.ops.boxpose_kernels, "box_filter_backward_emulated")


# --------------------------------------------------------------------------------------------------
# Registration: opcheck, torch.compile, FLOP counting


@pytest.mark.parametrize("impl", IMPLS)
def test_opcheck(impl):
    x = torch.randn(2, 2, 6, 5, requires_grad=True)
    boxes = random_boxes(4, 5).float()
    xs, ys = box_corners(boxes, 5)
    coef = split_coefficients(torch.randn(4, 2), "h2")
    xs, ys = box_corners(boxes, 5, "h2")
    with use_impl(impl):
        for requires_grad in (True, False):
            args = (
                x,
                xs.clone().requires_grad_(requires_grad),
                ys.clone(),
                coef.clone().requires_grad_(requires_grad),
                5,
                False,
            )
            torch.library.opcheck(torch.ops.boxpose.box_filter.default, args)
        cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        torch.library.opcheck(torch.ops.boxpose.box_filter.default, (cl, xs, ys, coef, 5, True))


def test_torch_compile_fullgraph():
    from boxpose.nn import BoxConv2d

    torch._dynamo.reset()
    layer = BoxConv2d(3, 7, boxes_per_channel=2)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), layer, torch.nn.ReLU())
    x = torch.randn(2, 3, 10, 10)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, model(x))
    assert layer.boxes.grad is not None and torch.count_nonzero(layer.boxes.grad) > 0


def test_flop_counter_counts_16_macs_per_output():
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, 8, 10)
    boxes = random_boxes(6, 7).float()
    with FlopCounterMode(display=False) as counter:
        box_conv2d(x, boxes, 7)
    assert counter.get_total_flops() == 2 * 16 * 2 * 6 * 8 * 10
    with FlopCounterMode(display=False) as counter:
        box_conv2d(x, boxes, 7, snapped=True)
    assert counter.get_total_flops() == 2 * 4 * 2 * 6 * 8 * 10
    with FlopCounterMode(display=False) as counter:
        box_conv2d_split(x, boxes, torch.ones(6, 4), 7, "q4")
    # 9 corners x 4 samples; the coefficient einsum of the split is counted separately.
    assert counter.get_flop_counts()["Global"][torch.ops.boxpose.box_filter] == 2 * 36 * 2 * 6 * 8 * 10


def test_fake_tensor_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(4, 8, 64, 48)
        out = box_conv2d(x, torch.zeros(16, 4), 31)
    assert out.shape == (4, 16, 64, 48)


def test_generic_box_filter_matches_reference():
    x = torch.randn(2, 2, 7, 9, dtype=torch.float64)
    xs = torch.tensor([[0.3, 2.2, 4.9], [1.0, 1.5, 5.0]], dtype=torch.float64)
    ys = torch.tensor([[0.1, 3.3], [2.5, 4.4]], dtype=torch.float64)
    coef = torch.randn(2, 2, 3, dtype=torch.float64)
    with use_impl("reference"):
        ref = box_filter(x, xs, ys, coef, 5)
    # Forced: "auto" would fall back to the reference if the build failed and compare it with itself.
    with use_impl("cpu"):
        out = box_filter(x, xs, ys, coef, 5)
    torch.testing.assert_close(out, ref)


def test_compiled_comparisons_run_the_compiled_kernel(monkeypatch):
    """use_impl("cpu") runs the compiled library, never the reference: a failed build is an error there."""
    x, boxes = torch.randn(1, 2, 6, 6, dtype=torch.float64), random_boxes(2, 5)

    def no_reference(*args, **kwargs):
        raise AssertionError("the reference path ran under use_impl('cpu')")

    monkeypatch.setattr(box_conv_module.reference, "box_filter_reference", no_reference)
    with use_impl("cpu"):
        out = box_conv2d(x, boxes, 5)
    torch.testing.assert_close(out, dense_box_conv(x, boxes, 5))


# --------------------------------------------------------------------------------------------------
# Bad corner values (the full fuzz, in a subprocess, is tests/ops/test_corner_fuzz.py)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_boxes_are_a_value_error(impl, value):
    x = torch.randn(1, 1, 6, 6)
    boxes = torch.tensor([[-0.5, 0.5, value, 0.5]], requires_grad=True)
    with use_impl(impl):
        with pytest.raises(ValueError, match="box_conv2d: boxes must be finite"):
            box_conv2d(x, boxes, 5)
        with pytest.raises(ValueError, match="box_conv2d_split: boxes must be finite"):
            box_conv2d_split(x, boxes, torch.ones(1, 2), 5, "h2")
        xs, ys = torch.tensor([[1.0, 3.0]]), torch.tensor([[value, 3.0]])
        coef = split_coefficients(torch.ones(1, 1), "none")
        with pytest.raises(ValueError, match="box_filter: ys must be finite"):
            box_filter(x, xs, ys, coef, 5)


@pytest.mark.parametrize("impl", IMPLS)
def test_box_filter_clamps_far_corners(impl):
    """Corners at +-1e10 are the window's edges (forward), with no gradient beyond them."""
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    coef = split_coefficients(torch.ones(1, 1, dtype=torch.float64), "none")
    xs = torch.tensor([[1.5, 3.5]], dtype=torch.float64, requires_grad=True)
    ys = torch.tensor([[-1e10, 1e10]], dtype=torch.float64, requires_grad=True)
    with use_impl(impl):
        out = box_filter(x, xs, ys, coef, 5)
        grad_xs, grad_ys = torch.autograd.grad(out.sum(), [xs, ys])
    # The whole window's height: y in [0, 5] is boxes' y_lo = -1, y_hi = 1.
    boxes = torch.tensor([[1.5 * 2 / 5 - 1, 3.5 * 2 / 5 - 1, -1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(out, dense_box_conv(x, boxes, 5))
    assert torch.equal(grad_ys, torch.zeros_like(grad_ys)) and grad_xs.abs().min() > 0


# --------------------------------------------------------------------------------------------------
# Channels-last (NHWC) kernels: same oracle, same tolerances as the NCHW ones

# (N, C, H, W, k, m): channel counts that fill no block exactly (the CPU kernel takes 16 // m
# channels at a time), m up to 3, images smaller than the kernel.
NHWC_SHAPES = [
    (2, 3, 9, 11, 5, 1),
    (1, 2, 3, 4, 7, 2),
    (2, 20, 13, 7, 9, 3),
    (1, 40, 8, 8, 5, 1),
    (1, 17, 5, 6, 31, 2),
]
CL = torch.channels_last


def _channels_last(n, c, h, w, dtype=torch.float64):
    return torch.randn(n, c, h, w, dtype=dtype).contiguous(memory_format=CL)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", NHWC_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("snapped", [False, True])
def test_channels_last_forward_and_gradients_match_dense_kernel(impl, shape, snapped):
    n, c, h, w, k, m = shape
    x = _channels_last(n, c, h, w).requires_grad_()
    boxes = random_boxes(c * m, k)
    if snapped:  # integer corners: the snapped filter is the plain one there
        boxes = ((boxes + 1) * (k / 2)).round() * (2 / k) - 1
    boxes.requires_grad_()
    g = _channels_last(n, c * m, h, w)
    with use_impl(impl):
        out = box_conv2d(x, boxes, k, snapped=snapped)
        gx, gb = torch.autograd.grad(out, [x, boxes], g, allow_unused=True)
    ref = dense_box_conv(x, boxes, k)
    rx, rb = torch.autograd.grad(ref, [x, boxes], g)
    assert out.is_contiguous(memory_format=CL)
    assert gx.is_contiguous(memory_format=CL) or impl == "reference"  # (autograd picks its layout there)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-9)
    if not snapped:  # (snapped corners' gradients are the kernels' convention; see test_corner_fuzz)
        torch.testing.assert_close(gb, rb, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("split", ["h2", "v2", "q4"])
def test_channels_last_split_boxes_match_dense_kernel(impl, split):
    pieces = {"h2": 2, "v2": 2, "q4": 4}[split]
    x = _channels_last(2, 18, 9, 8).requires_grad_()
    boxes = random_boxes(36, 11).requires_grad_()
    weights = torch.randn(36, pieces, dtype=torch.float64, requires_grad=True)
    g = _channels_last(2, 36, 9, 8)
    ref = dense_split_conv(x, boxes, weights, 11, split)
    ref_grads = torch.autograd.grad(ref, [x, boxes, weights], g)
    with use_impl(impl):
        out = box_conv2d_split(x, boxes, weights, 11, split)
        grads = torch.autograd.grad(out, [x, boxes, weights], g)
    assert out.is_contiguous(memory_format=CL)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    for name, got, exp in zip(("input", "boxes", "weights"), grads, ref_grads):
        torch.testing.assert_close(
            got, exp, rtol=1e-9, atol=1e-9, msg=lambda m, name=name: f"grad {name}: {m}"
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_channels_last_reduced_precision(dtype):
    x = _channels_last(2, 24, 16, 16, dtype=dtype)
    boxes = random_boxes(24, 13).float()
    with use_impl("cpu"):
        out = box_conv2d(x, boxes, 13)
    assert out.dtype == dtype and out.is_contiguous(memory_format=CL)
    ref = dense_box_conv(x.double(), boxes.double(), 13)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())


def test_channels_last_compiled_kernel_converts_no_layout():
    """Forward and backward of a channels-last input copy no tensor (no NCHW round trip)."""
    x = _channels_last(2, 32, 12, 10, dtype=torch.float32).requires_grad_()
    boxes = random_boxes(64, 9).float().requires_grad_()
    g = _channels_last(2, 64, 12, 10, dtype=torch.float32)
    with use_impl("cpu"):
        box_conv2d(x, boxes, 9)  # build and load outside the profile
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True
        ) as prof:
            out = box_conv2d(x, boxes, 9)
            gx, _ = torch.autograd.grad(out, [x, boxes], g)
    names = {event.name for event in prof.events()}
    assert "boxpose_kernels::box_filter_forward" in names and "boxpose_kernels::box_filter_backward" in names
    # (The small corner tensors may be copied; no tensor of an image's size may be.)
    copies = [
        (event.name, event.input_shapes)
        for event in prof.events()
        if event.name in ("aten::copy_", "aten::clone", "aten::_to_copy")
        and any(len(shape) == 4 and shape[2:] == [12, 10] for shape in event.input_shapes)
    ]
    assert not copies, f"layout conversions in the channels-last path: {copies}"
    assert out.is_contiguous(memory_format=CL) and gx.is_contiguous(memory_format=CL)


@pytest.mark.parametrize("shape", [(2, 24, 17, 13), (1, 20, 16, 32)], ids=["24x17x13", "20x16x32"])
def test_channels_last_forward_is_bitwise_the_nchw_forward(shape):
    """Same running sums and taps in the same order: a model evaluates identically in either layout
    (with channel blocks in whole vectors and not, widths in whole blocks and not)."""
    x = torch.randn(*shape)
    boxes = (torch.rand(2 * shape[1], 4) * 2 - 1).sort(1).values[:, [0, 3, 1, 2]].contiguous()
    weights = torch.randn(2 * shape[1], 4)
    with use_impl("cpu"):
        for fn in (
            lambda t: box_conv2d(t, boxes, 11),
            lambda t: box_conv2d(t, boxes, 11, snapped=True),
            lambda t: box_conv2d_split(t, boxes, weights, 11, "q4"),
        ):
            nchw, nhwc = fn(x), fn(x.contiguous(memory_format=CL))
            assert nhwc.is_contiguous(memory_format=CL)
            assert torch.equal(nchw, nhwc)
