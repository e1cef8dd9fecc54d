"""The CUDA kernels: block algorithm (emulated on the CPU), compilation and, on a GPU, results.

The CUDA kernels are built from the phase functions of kernels/box_filter_common.h. The emulation
library (kernels/box_filter_emulation.cpp, loaded only here through ``kernels.load_emulation()``) runs
the same phases thread by thread on the CPU (box_filter_*_emulated), so the GPU algorithm's indexing,
work split, rolling SAT reads and block reduction are checked here against the reference even on
machines without a GPU. The compile test builds the real CUDA library with nvcc (no GPU needed), so a
CUDA compile error fails CI. Tests of the CUDA device path run where a GPU exists and are skipped
elsewhere.
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
from tests.ops.dense_oracle import random_boxes

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
    "shape", [(2, 3, 1, 9, 11, 5), (4, 8, 2, 64, 48, 31), (1, 2, 1, 200, 300, 13), (1, 1, 1, 1, 1, 3)]
)
def test_cuda_kernels_match_reference(dtype, shape):
    n, c, m, h, w, k = shape
    x = torch.randn(n, c, h, w, device="cuda").to(dtype).requires_grad_()
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
