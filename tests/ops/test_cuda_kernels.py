"""The CUDA kernels: block algorithm (emulated on the CPU), compilation and, on a GPU, results.

The CUDA kernels are built from the phase functions of kernels/box_filter_common.h. The emulation
library (kernels/box_filter_emulation.cpp, loaded only here through ``kernels.load_emulation()``) runs
the same phases thread by thread on the CPU (box_filter_*_emulated), so the GPU algorithm's indexing,
work split, rolling SAT reads and block reduction are checked here against the reference even on
machines without a GPU, for the NCHW kernels and for the channels-last (NHWC) ones. The compile test
builds the real CUDA library with nvcc (no GPU needed), so a CUDA compile error fails CI. Tests of the
CUDA device path run where a GPU exists and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from boxpose.ops import box_conv2d, box_conv2d_split, box_corners, kernels, split_coefficients, use_impl
from boxpose.ops.reference import box_filter_backward_reference, box_filter_reference
from tests.ops.dense_oracle import dense_box_conv, random_boxes

# (N, C, m, H, W, k, split, threads_per_block): blocks with more threads than pixels, fewer threads
# than columns (W > threads), odd sizes, every split, and k larger than the image.
CASES = [
    (2, 3, 1, 9, 11, 5, "none", 256),
    (1, 2, 2, 16, 12, 13, "none", 64),
    (1, 1, 1, 7, 70, 9, "none", 32),
    (1, 2, 1, 33, 5, 31, "h2", 96),
    (2, 1, 2, 12, 12, 25, "v2", 256),
    (1, 2, 1, 10, 9, 7, "q4", 64),
    (1, 1, 1, 1, 1, 3, "none", 32),
]


@pytest.fixture(scope="module")
def emulation():
    """The ops of the emulation library (compiled on first use, about a minute)."""
    kernels.load_emulation()
    return torch.ops.boxpose_kernels_emulation


def _corner_args(c_out, k, split, dtype, gen):
    boxes = random_boxes(c_out, k, dtype=dtype, generator=gen)
    xs, ys = box_corners(boxes, k, split)
    pieces = {"none": 1, "h2": 2, "v2": 2, "q4": 4}[split]
    coef = split_coefficients(torch.randn(c_out, pieces, dtype=dtype, generator=gen), split)
    return xs, ys, coef


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("snapped", [False, True])
def test_emulated_cuda_algorithm_matches_reference(emulation, case, snapped):
    n, c, m, h, w, k, split, threads = case
    gen = torch.Generator().manual_seed(hash(case) % 1000)
    x = torch.randn(n, c, h, w, dtype=torch.float64, generator=gen)
    g = torch.randn(n, c * m, h, w, dtype=torch.float64, generator=gen)
    xs, ys, coef = _corner_args(c * m, k, split, torch.float64, gen)
    out = emulation.box_filter_forward_emulated(x, xs, ys, coef, k, snapped, threads)
    torch.testing.assert_close(out, box_filter_reference(x, xs, ys, coef, k, snapped), rtol=1e-10, atol=1e-10)
    mask = [True, True, True, True]
    got = emulation.box_filter_backward_emulated(g, x, xs, ys, coef, k, snapped, mask, threads)
    expected = box_filter_backward_reference(g, x, xs, ys, coef, k, snapped, mask)
    for name, a, b in zip(("input", "xs", "ys", "coef"), got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"grad {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_emulated_cuda_algorithm_in_reduced_precision(emulation, dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=gen).to(dtype)
    xs, ys, coef = _corner_args(3, 13, "none", torch.float32, gen)
    out = emulation.box_filter_forward_emulated(x, xs, ys, coef, 13, False, 128)
    assert out.dtype == dtype
    ref = box_filter_reference(x.double(), xs.double(), ys.double(), coef.double(), 13)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())


def test_emulated_backward_respects_the_output_mask(emulation):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=gen)
    g = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=gen)
    xs, ys, coef = _corner_args(2, 5, "none", torch.float64, gen)
    gi, gx, gy, gc = emulation.box_filter_backward_emulated(
        g, x, xs, ys, coef, 5, False, [True, False, False, False], 64
    )
    assert gi.abs().sum() > 0 and gx.abs().sum() == 0 and gy.abs().sum() == 0 and gc.abs().sum() == 0


# Channels-last kernels: (N, C, m, H, W, k, split, threads_per_block, channels_per_block).
NHWC_CASES = [
    (2, 3, 1, 9, 11, 5, "none", 256, 3),  # one group holds every channel
    (1, 40, 1, 7, 6, 7, "none", 64, 32),  # C not a multiple of the warp: the last group has 8 of 32
    (1, 37, 2, 8, 5, 9, "h2", 96, 32),  # m = 2, 3 threads per channel
    (1, 5, 2, 12, 10, 13, "q4", 64, 3),  # 3 does not divide 64: a thread without a channel
    (2, 8, 1, 16, 12, 25, "v2", 256, 8),
    (1, 33, 1, 1, 1, 3, "none", 32, 32),  # 1 x 1 image, one thread per channel
    (1, 3, 1, 5, 40, 9, "none", 32, 16),  # a group wider than C; more columns than threads per channel
]


def _channels_last(*tensors):
    return [t.contiguous(memory_format=torch.channels_last) for t in tensors]


@pytest.mark.parametrize("case", NHWC_CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("snapped", [False, True])
def test_emulated_channels_last_cuda_algorithm_matches_reference(emulation, case, snapped):
    n, c, m, h, w, k, split, threads, group = case
    gen = torch.Generator().manual_seed(hash(case) % 1000)
    x, g = _channels_last(
        torch.randn(n, c, h, w, dtype=torch.float64, generator=gen),
        torch.randn(n, c * m, h, w, dtype=torch.float64, generator=gen),
    )
    xs, ys, coef = _corner_args(c * m, k, split, torch.float64, gen)
    out = emulation.box_filter_forward_nhwc_emulated(x, xs, ys, coef, k, snapped, threads, group)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, box_filter_reference(x, xs, ys, coef, k, snapped), rtol=1e-10, atol=1e-10)
    mask = [True, True, True, True]
    got = emulation.box_filter_backward_nhwc_emulated(g, x, xs, ys, coef, k, snapped, mask, threads, group)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    expected = box_filter_backward_reference(g, x, xs, ys, coef, k, snapped, mask)
    for name, a, b in zip(("input", "xs", "ys", "coef"), got, expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"grad {name}")


def test_emulated_channels_last_cuda_algorithm_matches_the_dense_oracle(emulation):
    """Plain boxes: the output and the input gradient against torch's depthwise conv2d with dense kernels."""
    gen = torch.Generator().manual_seed(5)
    n, c, m, h, w, k = 2, 37, 2, 9, 7, 7
    boxes = random_boxes(c * m, k, generator=gen)
    x, g = _channels_last(
        torch.randn(n, c, h, w, dtype=torch.float64, generator=gen),
        torch.randn(n, c * m, h, w, dtype=torch.float64, generator=gen),
    )
    xs, ys = box_corners(boxes, k)
    coef = split_coefficients(torch.ones(c * m, 1, dtype=torch.float64), "none")
    out = emulation.box_filter_forward_nhwc_emulated(x, xs, ys, coef, k, False, 64, 32)
    dense_x = x.detach().clone().requires_grad_()
    dense = dense_box_conv(dense_x, boxes, k)
    torch.testing.assert_close(out, dense.detach(), rtol=1e-10, atol=1e-10)
    (dense_grad,) = torch.autograd.grad(dense, dense_x, g)
    grad_input = emulation.box_filter_backward_nhwc_emulated(
        g, x, xs, ys, coef, k, False, [True, False, False, False], 64, 32
    )[0]
    torch.testing.assert_close(grad_input, dense_grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("snapped", [False, True])
def test_emulated_channels_last_cuda_algorithm_in_reduced_precision(emulation, dtype, snapped):
    gen = torch.Generator().manual_seed(2)
    n, c, m, h, w, k = 2, 35, 1, 11, 9, 13
    x, g = _channels_last(torch.randn(n, c, h, w, generator=gen), torch.randn(n, c * m, h, w, generator=gen))
    x, g = x.to(dtype), g.to(dtype)
    xs, ys, coef = _corner_args(c * m, k, "none", torch.float32, gen)
    out = emulation.box_filter_forward_nhwc_emulated(x, xs, ys, coef, k, snapped, 256, 32)
    mask = [True, True, True, True]
    grads = emulation.box_filter_backward_nhwc_emulated(g, x, xs, ys, coef, k, snapped, mask, 256, 32)
    assert out.dtype == dtype and grads[0].dtype == dtype
    wide = [t.double() for t in (g, x, xs, ys, coef)]
    expected = [box_filter_reference(*wide[1:], k, snapped)]
    expected += box_filter_backward_reference(*wide, k, snapped, mask)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    for name, a, b in zip(
        ("output", "grad input", "grad xs", "grad ys", "grad coef"), [out, *grads], expected
    ):
        torch.testing.assert_close(a.double(), b, rtol=tol, atol=tol * b.abs().max().item(), msg=name)


def test_emulated_channels_last_backward_respects_the_output_mask(emulation):
    gen = torch.Generator().manual_seed(1)
    x, g = _channels_last(
        torch.randn(1, 6, 8, 8, dtype=torch.float64, generator=gen),
        torch.randn(1, 6, 8, 8, dtype=torch.float64, generator=gen),
    )
    xs, ys, coef = _corner_args(6, 5, "none", torch.float64, gen)
    gi, gx, gy, gc = emulation.box_filter_backward_nhwc_emulated(
        g, x, xs, ys, coef, 5, False, [True, False, False, False], 64, 4
    )
    assert gi.abs().sum() > 0 and gx.abs().sum() == 0 and gy.abs().sum() == 0 and gc.abs().sum() == 0
    gi, gx, gy, gc = emulation.box_filter_backward_nhwc_emulated(
        g, x, xs, ys, coef, 5, False, [False, True, False, True], 64, 4
    )
    assert gi.abs().sum() == 0 and gx.abs().sum() > 0 and gy.abs().sum() == 0 and gc.abs().sum() > 0


def test_emulated_channels_last_rejects_a_group_wider_than_the_block(emulation):
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    xs, ys, coef = _corner_args(4, 3, "none", torch.float64, torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="channels_per_block must be in"):
        emulation.box_filter_forward_nhwc_emulated(x, xs, ys, coef, 3, False, 32, 64)


def _nvcc_available() -> bool:
    return shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda/bin/nvcc")


@pytest.mark.skipif(not _nvcc_available(), reason="nvcc not installed")
def test_cuda_sources_compile(tmp_path):
    """nvcc builds and links the CUDA library (no GPU needed); a CUDA compile error fails here."""
    env = dict(os.environ)
    env.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    result = subprocess.run(
        [sys.executable, "-m", "boxpose.ops.build", "--cuda", "--no-cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["cuda"] == "ok"


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "shape",
    [
        (2, 3, 1, 9, 11, 5),
        (4, 8, 2, 64, 48, 31),
        (1, 2, 1, 200, 300, 13),
        (1, 1, 1, 1, 1, 3),
        (2, 40, 2, 17, 9, 7),
    ],
)
@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"]
)
def test_cuda_kernels_match_reference(dtype, shape, memory_format):
    n, c, m, h, w, k = shape
    x = (
        torch.randn(n, c, h, w, device="cuda")
        .to(dtype)
        .contiguous(memory_format=memory_format)
        .requires_grad_()
    )
    box_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    boxes = random_boxes(c * m, k, dtype=box_dtype).cuda().requires_grad_()
    g = torch.randn(n, c * m, h, w, device="cuda").to(dtype)
    with use_impl("cuda"):
        out = box_conv2d(x, boxes, k)
        gx, gb = torch.autograd.grad(out, [x, boxes], g)
    with use_impl("reference"):
        xr, br = x.detach().double().requires_grad_(), boxes.detach().double().requires_grad_()
        ref = box_conv2d(xr, br, k)
        rx, rb = torch.autograd.grad(ref, [xr, br], g.double())
    assert out.is_contiguous(memory_format=memory_format) and gx.is_contiguous(memory_format=memory_format)
    tol = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 3e-3, torch.bfloat16: 2e-2}[dtype]
    for got, exp in ((out, ref), (gx, rx), (gb, rb)):
        torch.testing.assert_close(got.double(), exp, rtol=tol, atol=tol * exp.abs().max().item())


@requires_cuda
@pytest.mark.cuda
def test_cuda_split_snapped_channels_last_and_many_planes():
    x = torch.randn(2, 4, 20, 20, device="cuda")
    boxes = random_boxes(8, 13, dtype=torch.float32).cuda()
    weights = torch.randn(8, 4, device="cuda")
    with use_impl("cuda"):
        split = box_conv2d_split(x, boxes, weights, 13, "q4")
        snapped = box_conv2d(x, boxes, 13, snapped=True)
        cl = box_conv2d(x.contiguous(memory_format=torch.channels_last), boxes, 13)
        # More planes than a grid dimension can index (Burkov's layer failed at 65535).
        many = box_conv2d(torch.randn(70000, 1, 2, 2, device="cuda"), torch.zeros(1, 4, device="cuda"), 3)
    with use_impl("reference"):
        torch.testing.assert_close(split, box_conv2d_split(x, boxes, weights, 13, "q4"), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(snapped, box_conv2d(x, boxes, 13, snapped=True), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(cl, box_conv2d(x, boxes, 13), rtol=1e-4, atol=1e-4)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert many.shape == (70000, 1, 2, 2)


@requires_cuda
@pytest.mark.cuda
def test_cuda_channels_last_split_snapped_and_many_blocks():
    """The NHWC kernels with split and snapped boxes, and more (image, channel group) tasks than blocks."""
    x = torch.randn(2, 4, 20, 20, device="cuda").contiguous(memory_format=torch.channels_last)
    many = torch.randn(20000, 3, 3, 2, device="cuda").contiguous(memory_format=torch.channels_last)
    boxes = random_boxes(8, 13, dtype=torch.float32).cuda()
    many_boxes = random_boxes(3, 3, dtype=torch.float32).cuda()
    weights = torch.randn(8, 4, device="cuda")
    results = {}
    for impl in ("cuda", "reference"):
        with use_impl(impl):
            results[impl] = (
                box_conv2d_split(x, boxes, weights, 13, "q4"),
                box_conv2d(x, boxes, 13, snapped=True),
                box_conv2d(many, many_boxes, 3),
            )
    for got, expected in zip(results["cuda"], results["reference"]):
        assert got.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@requires_cuda
@pytest.mark.cuda
def test_cuda_opcheck_and_current_stream():
    x = torch.randn(2, 2, 8, 8, device="cuda", requires_grad=True)
    boxes = random_boxes(4, 5, dtype=torch.float32).cuda()
    xs, ys = box_corners(boxes, 5)
    coef = split_coefficients(torch.ones(4, 1, device="cuda"), "none")
    with use_impl("cuda"):
        torch.library.opcheck(torch.ops.boxpose.box_filter.default, (x, xs, ys, coef, 5, False))
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            out = box_conv2d(x, boxes, 5)
        stream.synchronize()
        torch.testing.assert_close(out, box_conv2d(x, boxes, 5))
