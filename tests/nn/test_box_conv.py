"""BoxConv2d: parameterisation, projection, splitting, snapping, normalisation, dtypes."""

from __future__ import annotations

import pytest
import torch

from boxpose.nn import BoxConv2d, project_boxes_, snap_boxes_
from tests.ops.dense_oracle import dense_box_conv, dense_box_kernel, dense_split_conv


def test_initialisation_is_ordered_and_inside_half_window():
    layer = BoxConv2d(64, 13, boxes_per_channel=2)
    boxes = layer.boxes.detach()
    assert boxes.shape == (128, 4)
    assert boxes.min() >= -0.5 and boxes.max() <= 0.5
    assert (boxes[:, 0] <= boxes[:, 1]).all() and (boxes[:, 2] <= boxes[:, 3]).all()
    assert boxes.std() > 0.1  # really random


def test_forward_matches_dense_kernel_and_shapes():
    layer = BoxConv2d(3, 9, boxes_per_channel=2).double()
    x = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (2, 6, 12, 10)
    torch.testing.assert_close(out, dense_box_conv(x, layer.boxes.detach(), 9))


def test_project_clips_and_reorders():
    layer = BoxConv2d(2, 7)
    with torch.no_grad():
        layer.boxes.copy_(torch.tensor([[0.9, -1.5, 0.2, 0.1], [1.3, 1.2, -2.0, 3.0]]))
    layer.project_()
    expected = torch.tensor([[-1.0, 0.9, 0.1, 0.2], [1.0, 1.0, -1.0, 1.0]])
    torch.testing.assert_close(layer.boxes.detach(), expected)


def test_project_boxes_reaches_nested_layers():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), torch.nn.Sequential(BoxConv2d(2, 5)))
    with torch.no_grad():
        model[1][0].boxes.fill_(3.0)
    project_boxes_(model)
    assert model[1][0].boxes.max() == 1.0


def test_boxes_at_the_window_edge_still_get_gradient():
    """A box projected onto the edge of its window must be able to shrink again."""
    layer = BoxConv2d(1, 5)
    with torch.no_grad():
        layer.boxes.copy_(torch.tensor([[-1.0, 1.0, -1.0, 1.0]]))
    x = torch.randn(1, 1, 8, 8)
    layer(x).pow(2).sum().backward()
    assert (layer.boxes.grad != 0).all()


def test_boxes_in_pixels():
    layer = BoxConv2d(1, 9)
    with torch.no_grad():
        layer.boxes.copy_(torch.tensor([[-1.0, 0.0, -0.5, 1.5]]))
    torch.testing.assert_close(layer.boxes_in_pixels(), torch.tensor([[0.0, 4.5, 2.25, 9.0]]))


@pytest.mark.parametrize("split", ["h2", "v2", "q4"])
def test_split_layer_matches_dense_kernel(split):
    layer = BoxConv2d(2, 11, split=split).double()
    with torch.no_grad():
        layer.piece_weights.normal_()
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    expected = dense_split_conv(x, layer.boxes.detach(), layer.piece_weights.detach(), 11, split)
    torch.testing.assert_close(layer(x), expected)
    assert layer.piece_weights.shape == (2, 4 if split == "q4" else 2)


def test_split_piece_weights_start_at_one_so_the_split_box_equals_the_plain_box():
    plain = BoxConv2d(3, 9).double()
    split = BoxConv2d(3, 9, split="q4").double()
    split.boxes.data.copy_(plain.boxes.data)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(split(x), plain(x))


def test_normalize_divides_by_box_area():
    layer = BoxConv2d(2, 7, normalize=True).double()
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    area = dense_box_kernel(layer.boxes.detach(), 7).sum(dim=(1, 2)).clamp_min(1.0)  # floored at 1 px
    assert (area > 1.0).any()
    expected = dense_box_conv(x, layer.boxes.detach(), 7) / area[None, :, None, None]
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("split", ["none", "h2", "q4"])
def test_snap_rounds_corners_freezes_and_survives_a_state_dict_round_trip(split):
    torch.manual_seed(1)
    layer = BoxConv2d(4, 13, split=split).double()
    x = torch.randn(1, 4, 16, 16, dtype=torch.float64)
    before = layer(x)
    layer.snap_()
    pixels = (layer.boxes.detach() + 1) * 13 / 2
    torch.testing.assert_close(pixels, pixels.round(), atol=1e-9, rtol=0)
    if split in ("h2", "q4"):  # the x midpoint is an integer too
        assert ((pixels[:, 1] - pixels[:, 0]).round() % 2 == 0).all()
    assert not layer.boxes.requires_grad and layer.is_snapped
    assert "snapped=True" in repr(layer)
    after = layer(x)
    # Snapping moves corners by at most half a pixel; the result is the filter of the rounded boxes.
    assert (after - before).abs().max() < (before.abs().max() + 1)
    if split == "none":
        torch.testing.assert_close(after, dense_box_conv(x, layer.boxes.detach(), 13))
    fresh = BoxConv2d(4, 13, split=split).double()
    fresh.load_state_dict(layer.state_dict())
    assert fresh.is_snapped and not fresh.boxes.requires_grad
    torch.testing.assert_close(fresh(x), after)
    fresh.project_()  # a no-op once snapped
    torch.testing.assert_close(fresh.boxes, layer.boxes)


@pytest.mark.parametrize("split", ["none", "h2"])
def test_snap_keeps_sub_pixel_boxes_alive(split):
    layer = BoxConv2d(1, 13, boxes_per_channel=3, split=split)
    pixels = torch.tensor([
        [6.1, 6.3, 2.0, 9.0],    # 0.2 px wide inside pixel 6: both ends round to 6
        [12.8, 13.0, 0.0, 13.0],  # against the right edge: keeps pixel 12
        [4.0, 4.0, 3.0, 8.0],    # already empty: stays empty
    ])  # fmt: skip
    layer.boxes.data.copy_(pixels * 2 / 13 - 1)
    layer.snap_()
    widths = layer.boxes_in_pixels()[:, 1] - layer.boxes_in_pixels()[:, 0]
    x_lo = layer.boxes_in_pixels()[:, 0].round()
    if split == "none":
        torch.testing.assert_close(widths, torch.tensor([1.0, 1.0, 0.0]), atol=1e-4, rtol=0)
        assert x_lo[:2].tolist() == [6.0, 12.0]
    else:  # even widths on the split axis, still not empty
        torch.testing.assert_close(widths, torch.tensor([2.0, 2.0, 0.0]), atol=1e-4, rtol=0)
    x = torch.rand(1, 1, 16, 16) + 0.1
    assert (layer(x)[0, :2].abs().amax(dim=(1, 2)) > 0).all()


def test_snap_boxes_counts_layers():
    model = torch.nn.Sequential(BoxConv2d(2, 5), torch.nn.ReLU(), BoxConv2d(2, 7))
    assert snap_boxes_(model) == 2
    assert all(not m.boxes.requires_grad for m in (model[0], model[2]))


def test_extra_repr_shows_size_multiplier_and_split():
    text = repr(BoxConv2d(8, 25, boxes_per_channel=2, split="h2"))
    assert "max_size=25" in text and "boxes_per_channel=2" in text and "split=h2" in text


def test_bf16_input_keeps_float32_boxes_and_model_half_still_works():
    layer = BoxConv2d(3, 9)
    x = torch.randn(2, 3, 8, 8)
    out = layer(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x), rtol=2e-2, atol=5e-2)
    half_layer = BoxConv2d(3, 9).half()  # parameters in half: the forward still uses float32 corners
    assert half_layer(x.half()).dtype == torch.float16


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 0, "max_size": 3}, "channels must be >= 1"),
        ({"channels": 2, "max_size": 4}, "max_size must be an odd integer"),
        ({"channels": 2, "max_size": 3, "boxes_per_channel": 0}, "boxes_per_channel must be >= 1"),
        ({"channels": 2, "max_size": 3, "split": "x3"}, "split must be one of"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BoxConv2d(**kwargs)
