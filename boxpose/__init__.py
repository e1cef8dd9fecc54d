"""boxpose: large-receptive-field pose estimation with learnable box filters on summed-area tables."""

__version__ = "0.1.0"
