"""Neural-network layers built on the box-convolution op."""

from boxpose.nn.box_conv import BoxConv2d, box_conv_layers, project_boxes_, snap_boxes_

__all__ = ["BoxConv2d", "box_conv_layers", "project_boxes_", "snap_boxes_"]
