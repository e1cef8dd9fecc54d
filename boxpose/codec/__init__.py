"""Codec: the affine crop transform and the heatmap encoder/decoder shared by training and evaluation."""
