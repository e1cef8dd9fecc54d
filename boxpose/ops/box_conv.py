"""The box-convolution operator: learnable box filters summed from summed-area tables.

Public functions
----------------
- :func:`box_conv2d` ``(input, boxes, max_size)``: one box per output channel (a depthwise box filter
  with channel multiplier m).
- :func:`box_conv2d_split`: the kernel-splitting variants of the paper's Fig. 2 (a box cut at its
  midpoint into 2 or 4 pieces with learnable weights, sharing the SAT samples of the shared edges).
- :func:`box_filter`: the generic corner-grid operation both are made of (see
  :mod:`boxpose.ops.reference` for its definition).

Meaning of ``box_conv2d``
-------------------------
``input`` is (N, C, H, W); ``boxes`` is (C_out, 4) with columns (x_lo, x_hi, y_lo, y_hi) normalised to
[-1, 1]; ``max_size`` k is an odd int >= 1; C_out = m * C and output channel j reads input channel
j // m. A normalised coordinate p maps to the kernel coordinate a = (p + 1) * k / 2 in [0, k]. The
output at (y, x) is the integral of the zero-extended, piecewise-constant input (pixel (v, u) covers
[v, v+1) x [u, u+1)) over the box placed so that the k x k kernel window's left/top edge sits at
x - (k-1)/2, y - (k-1)/2. Equivalently, a depthwise convolution with padding (k-1)/2 and the dense
kernel w[j, iy, ix] = ov_y(iy) * ov_x(ix), ov(i) = max(0, min(hi, i+1) - max(lo, i)). Boxes
(-1, 1, -1, 1) give the full k x k box sum. The output has stride 1 and the input's size.

- Boxes outside [-1, 1] are clamped by the op (no out-of-bounds reads; zero gradient beyond the
  clamp, full gradient on it), however far outside (1e30 included). A box with hi < lo on an axis is
  empty (zero output, zero gradient).
- Non-finite boxes (NaN, +-inf) raise ``ValueError`` ("boxes must be finite") in every implementation,
  forward and backward; ``box_filter`` does the same for its corners xs, ys and clamps finite ones into
  [0, k]. (The check is one ``isfinite().all()`` on the boxes; on CUDA it synchronises with the device.
  Under ``torch.compile`` the op's kernel checks at run time; during CUDA graph capture nothing is
  checked and the kernels clamp NaN corners to 0, which keeps them memory-safe.)
- Gradients with respect to the input and the boxes are exact: the derivative of the dense-kernel
  form. Where a corner sits exactly on an integer kernel coordinate a < k the right derivative
  (towards larger a) is returned, at a = k the left one; at lo == hi the box can grow from either edge.
- dtypes: float32, float64, float16, bfloat16 input. Boxes are float32 (float64 for float64 input);
  half-precision inputs accumulate in float32 and the SAT is never held in half precision.
- Non-contiguous and channels-last inputs work; a channels-last input gives a channels-last output. The
  CPU and CUDA kernels filter a channels-last input in NHWC, forward and backward (no conversion to
  NCHW and back); other inputs are made contiguous (NCHW).

Implementations (``BOXPOSE_OP_IMPL``, or :func:`set_impl` / :func:`use_impl`)
-------------------------------------------------------------------------------
``auto`` (default): compiled CPU or CUDA kernels for CPU/CUDA tensors (built on first use, see
:mod:`boxpose.ops.kernels`), falling back with a warning to the reference path if they cannot be
built; ``cpu`` / ``cuda``: the compiled kernel, or an error; ``reference``: the pure-PyTorch path
(exports to ONNX and TorchScript; also used automatically while tracing or exporting).

The op is registered with ``torch.library`` as ``boxpose::box_filter`` (schema, fake kernel,
autograd formula through ``boxpose::box_filter_backward``, and a FLOP formula for
``torch.utils.flop_counter``), so ``torch.compile(fullgraph=True)`` works on models that use it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake
from torch.utils.flop_counter import register_flop_formula

from boxpose.ops import kernels, reference

IMPLEMENTATIONS = ("auto", "cuda", "cpu", "reference")

# Kernel splitting (paper, Fig. 2): split name -> (pieces along y, pieces along x).
# "h2" cuts the box into a left and a right half, "v2" into a top and a bottom half, "q4" into quarters.
SPLITS: dict[str, tuple[int, int]] = {"none": (1, 1), "h2": (1, 2), "v2": (2, 1), "q4": (2, 2)}


def _impl_from_env() -> str:
    impl = os.environ.get("BOXPOSE_OP_IMPL", "auto").strip().lower() or "auto"
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"BOXPOSE_OP_IMPL={impl!r} is not one of {IMPLEMENTATIONS}")
    return impl


_IMPL = _impl_from_env()
_warned_fallback: set[str] = set()


def get_impl() -> str:
    """The selected implementation: "auto", "cuda", "cpu" or "reference"."""
    return _IMPL


def set_impl(impl: str) -> None:
    """Select the implementation for this process (overrides ``BOXPOSE_OP_IMPL``)."""
    global _IMPL
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"implementation {impl!r} is not one of {IMPLEMENTATIONS}")
    _IMPL = impl


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Context manager selecting the implementation temporarily (e.g. ``use_impl("reference")`` to export)."""
    previous = _IMPL
    set_impl(impl)
    try:
        yield
    finally:
        set_impl(previous)


def _compiled_ops(device: torch.device):
    """The compiled kernels' op namespace for ``device``, or None to use the reference path."""
    impl = _IMPL
    if impl == "reference":
        return None
    if device.type not in ("cpu", "cuda"):
        if impl != "auto":
            raise RuntimeError(f"BOXPOSE_OP_IMPL={impl}, but the tensors are on {device.type}")
        return None
    if impl != "auto" and impl != device.type:
        raise RuntimeError(f"BOXPOSE_OP_IMPL={impl}, but the tensors are on {device.type}")
    cuda = device.type == "cuda"
    try:
        kernels.load(cuda=cuda)
    except kernels.KernelBuildError as exc:
        if impl != "auto":
            raise
        if device.type not in _warned_fallback:
            _warned_fallback.add(device.type)
            warnings.warn(
                f"{exc}\nboxpose: using the pure-PyTorch reference path for {device.type} tensors.",
                stacklevel=3,
            )
        return None
    return torch.ops.boxpose_kernels_cuda if cuda else torch.ops.boxpose_kernels


# --------------------------------------------------------------------------------------------------
# torch.library registration

_lib = torch.library.Library("boxpose", "DEF")
_lib.define(
    "box_filter(Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, bool snapped=False) -> Tensor"
)
_lib.define(
    "box_filter_backward(Tensor grad_output, Tensor input, Tensor xs, Tensor ys, Tensor coef, int max_size, "
    "bool snapped, bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)"
)


def _check_finite(name: str, **tensors: Tensor) -> None:
    """Raise ValueError naming the first argument holding NaN or +-inf.

    One ``isfinite().all()`` on the small corner tensor (on CUDA it synchronises with the device). Skipped
    where values are unknown: while tracing, compiling (the op's own kernel checks at run time), on
    fake and meta tensors, and during CUDA graph capture.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    for arg, tensor in tensors.items():
        if is_fake(tensor) or tensor.device.type == "meta":
            continue
        if tensor.is_cuda and torch.cuda.is_current_stream_capturing():
            continue
        if not bool(torch.isfinite(tensor).all()):
            shape = tuple(tensor.shape)
            raise ValueError(f"{name}: {arg} must be finite, got NaN or inf in {arg} of shape {shape}")


def _box_filter_kernel(
    input: Tensor, xs: Tensor, ys: Tensor, coef: Tensor, max_size: int, snapped: bool = False
) -> Tensor:
    _check_finite("boxpose::box_filter", xs=xs, ys=ys)
    ops = _compiled_ops(input.device)
    if ops is None:
        out = reference.box_filter_reference(input, xs, ys, coef, max_size, snapped)
    else:
        out = ops.box_filter_forward(input, xs, ys, coef, max_size, snapped)
    return out.contiguous(memory_format=reference.output_memory_format(input))


def _box_filter_backward_kernel(
    grad_output: Tensor,
    input: Tensor,
    xs: Tensor,
    ys: Tensor,
    coef: Tensor,
    max_size: int,
    snapped: bool,
    output_mask: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_finite("boxpose::box_filter_backward", xs=xs, ys=ys)
    ops = _compiled_ops(input.device)
    if ops is None:
        grads = reference.box_filter_backward_reference(
            grad_output, input, xs, ys, coef, max_size, snapped, output_mask
        )
    else:
        grads = ops.box_filter_backward(grad_output, input, xs, ys, coef, max_size, snapped, output_mask)
    grad_input, grad_xs, grad_ys, grad_coef = grads
    return (
        grad_input.contiguous(memory_format=reference.output_memory_format(input)),
        reference.zero_beyond_window(grad_xs, xs, max_size),
        reference.zero_beyond_window(grad_ys, ys, max_size),
        grad_coef,
    )


_lib.impl("box_filter", _box_filter_kernel, "CompositeExplicitAutograd")
_lib.impl("box_filter_backward", _box_filter_backward_kernel, "CompositeExplicitAutograd")


@torch.library.register_fake("boxpose::box_filter", lib=_lib)
def _box_filter_fake(input, xs, ys, coef, max_size, snapped=False):
    n, _, h, w = input.shape
    return input.new_empty((n, xs.shape[0], h, w)).contiguous(
        memory_format=reference.output_memory_format(input)
    )


@torch.library.register_fake("boxpose::box_filter_backward", lib=_lib)
def _box_filter_backward_fake(grad_output, input, xs, ys, coef, max_size, snapped, output_mask):
    grad_input = torch.empty_like(input, memory_format=reference.output_memory_format(input))
    return grad_input, torch.empty_like(xs), torch.empty_like(ys), torch.empty_like(coef)


def _setup_context(ctx, inputs, output) -> None:
    input, xs, ys, coef, max_size = inputs[:5]
    ctx.save_for_backward(input, xs, ys, coef)
    ctx.max_size = max_size
    ctx.snapped = inputs[5] if len(inputs) > 5 else False


def _backward(ctx, grad_output: Tensor):
    input, xs, ys, coef = ctx.saved_tensors
    mask = [bool(m) for m in ctx.needs_input_grad[:4]]
    grad_input, grad_xs, grad_ys, grad_coef = torch.ops.boxpose.box_filter_backward(
        grad_output, input, xs, ys, coef, ctx.max_size, ctx.snapped, mask
    )
    return (
        grad_input if mask[0] else None,
        grad_xs if mask[1] else None,
        grad_ys if mask[2] else None,
        grad_coef if mask[3] else None,
        None,
        None,
    )


torch.library.register_autograd("boxpose::box_filter", _backward, setup_context=_setup_context, lib=_lib)


@register_flop_formula(torch.ops.boxpose.box_filter)
def _box_filter_flops(input_shape, xs_shape, ys_shape, coef_shape, max_size, snapped=False, *args, **kwargs):
    """FLOPs (2 x multiply-accumulates, torch's convention) of the filter.

    Each corner is 4 SAT samples with precomputed bilinear weights (one sample once snapped), and each
    sample is one multiply-accumulate per output: 16 for a plain box, the paper's "same as a 4x4 conv".
    """
    n, _, h, w = input_shape
    samples_per_corner = 1 if snapped else 4
    macs = n * xs_shape[0] * h * w * xs_shape[1] * ys_shape[1] * samples_per_corner
    return 2 * macs


# --------------------------------------------------------------------------------------------------
# Public functions


def _use_reference_directly() -> bool:
    """Use the pure-PyTorch path itself (not the op) when selected, or while tracing/exporting."""
    if _IMPL == "reference" or torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    is_exporting = getattr(torch.onnx, "is_in_onnx_export", None)
    return bool(is_exporting is not None and is_exporting())


def box_filter(
    input: Tensor, xs: Tensor, ys: Tensor, coef: Tensor, max_size: int, snapped: bool = False
) -> Tensor:
    """The generic corner-grid box filter (see :mod:`boxpose.ops.reference`).

    Args:
        input: (N, C, H, W).
        xs: (C_out, NX) corner abscissae in kernel coordinates [0, k]; ys: (C_out, NY) ordinates.
        coef: (C_out, NY, NX) coefficients of F at each corner. Every row and column must sum to zero
            (a weighted sum of boxes, as :func:`split_coefficients` gives): the input gradient is the
            mirrored filter, which is the adjoint only then.
        max_size: k, odd. snapped: corners are rounded to integers (no interpolation, 1 SAT read each).
    Returns:
        (N, C_out, H, W).
    Raises:
        ValueError: if xs or ys hold NaN or +-inf. Finite corners outside [0, k] are clamped into it
        (zero gradient beyond the window, full gradient on its edge).
    """
    _check_finite("box_filter", xs=xs, ys=ys)
    return _box_filter(input, xs, ys, coef, max_size, snapped)


def _box_filter(input: Tensor, xs: Tensor, ys: Tensor, coef: Tensor, max_size: int, snapped: bool) -> Tensor:
    if _use_reference_directly():
        return reference.box_filter_reference(input, xs, ys, coef, max_size, snapped)
    return torch.ops.boxpose.box_filter(input, xs, ys, coef, max_size, snapped)


def _check_args(name: str, input: Tensor, boxes: Tensor, max_size: int) -> None:
    if not isinstance(input, Tensor) or input.dim() != 4:
        shape = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"{name}: input must be a 4-D tensor (N, C, H, W), got {shape}")
    if not input.is_floating_point():
        raise TypeError(f"{name}: input must be a floating-point tensor, got {input.dtype}")
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(
            f"{name}: boxes must have shape (C_out, 4) with columns (x_lo, x_hi, y_lo, y_hi), got {shape}"
        )
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1 or max_size % 2 == 0:
        raise ValueError(f"{name}: max_size must be an odd integer >= 1, got {max_size!r}")
    channels, c_out = input.shape[1], boxes.shape[0]
    if channels == 0 or c_out == 0 or c_out % channels != 0:
        raise ValueError(
            f"{name}: the number of boxes C_out={c_out} must be a positive multiple of the input "
            f"channels C={channels}"
        )
    if boxes.device != input.device:
        raise ValueError(f"{name}: device mismatch: input is on {input.device}, boxes are on {boxes.device}")
    expected = torch.float64 if input.dtype == torch.float64 else torch.float32
    if boxes.dtype != expected:
        raise TypeError(
            f"{name}: dtype mismatch: boxes must be {expected} for {input.dtype} input (float64 boxes go "
            f"with float64 input, float32 boxes with every other dtype), got {boxes.dtype}"
        )


def _clamp_unit(p: Tensor) -> Tensor:
    """Clamp to [-1, 1] with gradient 1 on the bounds and 0 beyond them.

    (``torch.clamp`` passes no gradient at a bound, so a box projected onto the window's edge could
    never shrink again.)
    """
    return torch.where((p >= -1.0) & (p <= 1.0), p, p.detach().clamp(-1.0, 1.0))


def box_corners(boxes: Tensor, max_size: int, split: str = "none") -> tuple[Tensor, Tensor]:
    """Corner coordinates of boxes in kernel units.

    Args:
        boxes: (C_out, 4) with columns (x_lo, x_hi, y_lo, y_hi) in [-1, 1] (clamped here).
        max_size: k. split: "none", "h2", "v2" or "q4" (adds the midpoint on the split axes).
    Returns:
        xs (C_out, NX) and ys (C_out, NY) in [0, k], ascending (an inverted axis becomes empty: hi = lo).
    """
    a = (_clamp_unit(boxes) + 1.0) * (max_size / 2.0)
    x_lo, x_hi, y_lo, y_hi = a.unbind(1)
    x_hi = torch.where(x_hi >= x_lo, x_hi, x_lo)
    y_hi = torch.where(y_hi >= y_lo, y_hi, y_lo)
    pieces_y, pieces_x = SPLITS[split]
    xs = [x_lo, (x_lo + x_hi) * 0.5, x_hi] if pieces_x == 2 else [x_lo, x_hi]
    ys = [y_lo, (y_lo + y_hi) * 0.5, y_hi] if pieces_y == 2 else [y_lo, y_hi]
    return torch.stack(xs, 1), torch.stack(ys, 1)


def _edge_signs(pieces: int, like: Tensor) -> Tensor:
    """(pieces + 1, pieces) matrix: column p is -1 at the piece's lower corner and +1 at its upper one."""
    signs = torch.zeros(pieces + 1, pieces, dtype=like.dtype, device=like.device)
    for p in range(pieces):
        signs[p, p] = -1.0
        signs[p + 1, p] = 1.0
    return signs


def split_coefficients(piece_weights: Tensor, split: str) -> Tensor:
    """Coefficient matrices of split boxes.

    Args:
        piece_weights: (C_out, P) weights of the pieces, P = 2 for "h2" (left, right) and "v2" (top,
            bottom), 4 for "q4" (top-left, top-right, bottom-left, bottom-right), 1 for "none".
    Returns:
        (C_out, NY, NX) in the weights' dtype, coef[j] = sum over pieces of weight * (outer product of
        the piece's edge signs). (Elementwise products, not an einsum: autocast would run an einsum in
        half precision.)
    """
    pieces_y, pieces_x = SPLITS[split]
    weights = piece_weights.reshape(-1, 1, pieces_y, 1, pieces_x)  # (C_out, 1, P_y, 1, P_x)
    dy = _edge_signs(pieces_y, piece_weights)[None, :, :, None, None]  # (1, NY, P_y, 1, 1)
    dx = _edge_signs(pieces_x, piece_weights)[None, None, None, :, :]  # (1, 1, 1, NX, P_x)
    return (dy * weights * dx).sum(dim=(2, 4))


def _plain_coefficients(boxes: Tensor) -> Tensor:
    return boxes.new_tensor([[1.0, -1.0], [-1.0, 1.0]]).expand(boxes.shape[0], 2, 2)


def box_conv2d(input: Tensor, boxes: Tensor, max_size: int, *, snapped: bool = False) -> Tensor:
    """Depthwise box convolution (see the module docstring for the exact definition).

    Args:
        input: (N, C, H, W).
        boxes: (C_out, 4), columns (x_lo, x_hi, y_lo, y_hi) in [-1, 1]; C_out = m * C.
        max_size: k, odd >= 1.
        snapped: the corners are integers (e.g. after :meth:`BoxConv2d.snap_`): 4 SAT reads per output.
    Returns:
        (N, C_out, H, W); output channel j reads input channel j // m.
    """
    _check_args("box_conv2d", input, boxes, max_size)
    _check_finite("box_conv2d", boxes=boxes)
    xs, ys = box_corners(boxes, max_size)
    return _box_filter(input, xs, ys, _plain_coefficients(boxes), max_size, snapped)


def box_conv2d_split(
    input: Tensor, boxes: Tensor, piece_weights: Tensor, max_size: int, split: str, *, snapped: bool = False
) -> Tensor:
    """Box convolution with kernel splitting (paper, Fig. 2).

    The box is cut at its midpoint into 2 ("h2": left/right, "v2": top/bottom) or 4 ("q4") pieces, each
    scaled by its weight in ``piece_weights`` (C_out, P); the SAT samples of the shared edges are read
    once. ``split="none"`` with P = 1 is a weighted plain box.
    """
    _check_args("box_conv2d_split", input, boxes, max_size)
    if split not in SPLITS:
        raise ValueError(f"box_conv2d_split: split must be one of {sorted(SPLITS)}, got {split!r}")
    pieces = SPLITS[split][0] * SPLITS[split][1]
    if piece_weights.shape != (boxes.shape[0], pieces):
        raise ValueError(
            f"box_conv2d_split: piece_weights must have shape ({boxes.shape[0]}, {pieces}) "
            f"for split={split!r}, got {tuple(piece_weights.shape)}"
        )
    if piece_weights.dtype != boxes.dtype or piece_weights.device != boxes.device:
        raise TypeError("box_conv2d_split: piece_weights must have the boxes' dtype and device")
    _check_finite("box_conv2d_split", boxes=boxes)
    xs, ys = box_corners(boxes, max_size, split)
    return _box_filter(input, xs, ys, split_coefficients(piece_weights, split), max_size, snapped)
