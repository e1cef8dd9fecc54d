"""The box-convolution operator (see :mod:`boxpose.ops.box_conv`)."""

from boxpose.ops.box_conv import (
    IMPLEMENTATIONS,
    SPLITS,
    box_conv2d,
    box_conv2d_split,
    box_corners,
    box_filter,
    get_impl,
    set_impl,
    split_coefficients,
    use_impl,
)

__all__ = [
    "IMPLEMENTATIONS",
    "SPLITS",
    "box_conv2d",
    "box_conv2d_split",
    "box_corners",
    "box_filter",
    "get_impl",
    "set_impl",
    "split_coefficients",
    "use_impl",
]
