"""BoxNet: units, training on CPU, box projection, state dicts, channels-last, autocast, torch.compile,
receptive fields."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

from boxpose.models import build_model
from boxpose.models.boxnet import (
    BOXNET_11UNIT_SPEC,
    BOXNET_SPEC,
    BasicUnit,
    BoxNet,
    BoxNetSpec,
    DilatedDepthwise4x4,
    UnitSpec,
    concat_shuffle,
    dilation_for_window,
    scaled_spec,
)
from boxpose.nn import BoxConv2d, box_conv_layers, project_boxes_


def tiny(**kwargs) -> BoxNet:
    model = build_model("boxnet_tiny", num_joints=4, **kwargs)
    assert isinstance(model, BoxNet)
    return model


def test_concat_shuffle_matches_shufflenet() -> None:
    a, b = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    reference = torch.cat((a, b), 1).view(2, 2, 6, 5, 7).transpose(1, 2).reshape(2, 12, 5, 7)
    assert torch.equal(concat_shuffle(a, b), reference)
    cl = concat_shuffle(
        a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    )
    assert cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cl, reference)


def test_concat_shuffle_equals_the_previous_cat_index_select() -> None:
    """Old checkpoints give identical results: the shuffle is the same permutation as boxpose 0.1's."""
    a, b = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    order = torch.arange(8).view(2, 4).t().reshape(-1)  # 0, 4, 1, 5, ...
    previous = torch.cat((a, b), 1).index_select(1, order)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        out = concat_shuffle(
            a.contiguous(memory_format=memory_format), b.contiguous(memory_format=memory_format)
        )
        assert torch.equal(out, previous)


def test_concat_shuffle_keeps_channels_last_for_a_channel_slice() -> None:
    """A basic unit passes the identity half as a channel slice of an NHWC tensor (not channels-last
    contiguous): the output must still be channels-last, or every later layer converts back."""
    x = torch.randn(2, 8, 5, 7).contiguous(memory_format=torch.channels_last)
    identity, rest = x.chunk(2, dim=1)
    branch = (2 * rest).contiguous(memory_format=torch.channels_last)
    out = concat_shuffle(identity, branch)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = torch.cat((identity, branch), 1).view(2, 2, 4, 5, 7).transpose(1, 2).reshape(2, 8, 5, 7)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_concat_shuffle_gradients_are_the_reference_gradients(dtype: torch.dtype) -> None:
    """Channels-last float inputs are interleaved through a complex tensor, bfloat16 ones by stack: both
    give the reference's values and gradients (a permutation's gradient is the inverse permutation)."""
    x = torch.randn(2, 8, 5, 7, dtype=dtype).contiguous(memory_format=torch.channels_last)
    b = torch.randn(2, 4, 5, 7, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2, 8, 5, 7, dtype=dtype)
    grads = []
    for function in (concat_shuffle, _reference_shuffle):
        xs, bs = x.clone().requires_grad_(), b.clone().requires_grad_()
        identity, _ = xs.chunk(2, dim=1)
        out = function(identity, bs)
        (out * weight).sum().backward()
        grads.append((out.detach(), xs.grad, bs.grad))
    for ours, reference in zip(*grads, strict=True):
        assert torch.equal(ours, reference)


def _reference_shuffle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    n, c, h, w = a.shape
    return torch.cat((a, b), 1).view(n, 2, c, h, w).transpose(1, 2).reshape(n, 2 * c, h, w)


def test_units_keep_channels_last() -> None:
    model = tiny().eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        features = model.stem(x)
        for unit in model.units:
            features = unit(features)
            assert features.is_contiguous(memory_format=torch.channels_last), type(unit).__name__


def test_concat_shuffle_compiles_with_dynamic_sizes() -> None:
    """The stack form traces with dynamic spatial sizes (the reason for the old cat + index_select)."""
    compiled = torch.compile(concat_shuffle, backend="aot_eager", fullgraph=True)
    for size in ((4, 6), (6, 10), (10, 4)):  # the third size compiles a dynamic graph
        for memory_format in (torch.contiguous_format, torch.channels_last):
            a = torch.randn(2, 3, *size).contiguous(memory_format=memory_format)
            b = torch.randn(2, 3, *size).contiguous(memory_format=memory_format)
            out = compiled(a, b)
            assert torch.equal(out, concat_shuffle(a, b))
            assert out.is_contiguous(memory_format=memory_format)


def test_layer_structure() -> None:
    model = build_model("boxnet", num_joints=17)
    assert isinstance(model, BoxNet)
    layers = box_conv_layers(model)
    # Box units: 4 basic (one box layer, after the leading 1x1) + 2 changing (two box layers each).
    assert [name for name, _ in layers] == [
        "units.3.branch1.0",
        "units.3.branch2.3",
        "units.5.branch.3",
        "units.9.branch1.0",
        "units.9.branch2.3",
        "units.10.branch.3",
        "units.11.branch.3",
        "units.12.branch.3",
    ]
    assert [layer.max_size for _, layer in layers] == [13, 13, 13, 31, 31, 25, 25, 13]
    assert all(layer.boxes_per_channel == 1 for _, layer in layers)
    # One box per channel (Sec. 3.2): 288 + 192 + 192 + 768 + 192 + 3 x 192 box filters.
    assert sum(layer.boxes.shape[0] for _, layer in layers) == 2208
    dilated = build_model("boxnet_dilated", num_joints=17)
    convs = [m.conv for m in dilated.modules() if isinstance(m, DilatedDepthwise4x4)]
    assert [c.dilation[0] for c in convs] == [4, 4, 4, 10, 10, 8, 8, 4]
    assert not box_conv_layers(build_model("boxnet_3x3", num_joints=17))


def test_basic_unit_styles() -> None:
    """ShuffleNetV2's basic unit (1x1, depthwise, 1x1) and the earlier depthwise-first reading."""
    unit = BasicUnit(8, 3, "box", 1, "none")
    assert [type(m).__name__ for m in unit.branch] == [
        "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "ReLU",
    ]  # fmt: skip
    assert unit.branch[3].groups == 4  # depthwise on the half
    earlier = BasicUnit(8, 13, "box", 2, "none", style="depthwise_first")
    assert [type(m).__name__ for m in earlier.branch] == [
        "BoxConv2d",
        "BatchNorm2d",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
    ]
    with pytest.raises(ValueError, match="style"):
        BasicUnit(8, 3, "box", 1, "none", style="shufflenet")


def test_earlier_reading_is_boxpose_0_1s_network() -> None:
    model = build_model("boxnet_11unit_m2", num_joints=17)
    assert model.spec == BOXNET_11UNIT_SPEC and len(model.units) == 11
    assert [u.receptive_field for u in model.unit_table()] == [
        7,
        55,
        63,
        111,
        119,
        127,
        135,
        255,
        351,
        447,
        495,
    ]
    assert all(layer.boxes_per_channel == 2 for _, layer in box_conv_layers(model))
    assert build_model("boxnet_11unit_m2", num_joints=4, width=48).spec.stem_channels == 24


def test_receptive_fields() -> None:
    model = build_model("boxnet", num_joints=17)
    table = model.unit_table()
    # Units 0 and 1's depthwise filters run at 1/2 resolution (2 input pixels per feature pixel).
    assert [u.receptive_field for u in table] == [7, 11, 19, 67, 75, 123, 131, 139, 147, 267, 363, 459, 507]
    assert [u.kind for u in table][:4] == ["basic", "changing", "basic", "changing"]
    assert table[9].depthwise == "box k=31 m=1"
    assert model.receptive_field() == 507
    dilated = build_model("boxnet_dilated", num_joints=17)
    assert dilated.receptive_field() == 507  # a 4x4 kernel with dilation (k - 1) / 3 spans k pixels
    assert dilated.unit_table()[9].depthwise == "dilated 4x4 d=10 m=1 (k=31)"
    assert build_model("boxnet_3x3", num_joints=17).receptive_field() == 3 + 2 * 2 * 2 + 11 * 2 * 4


def test_receptive_field_matches_the_gradient_support() -> None:
    """With full-window boxes and positive weights, an output pixel's gradient covers its receptive field."""
    spec = BoxNetSpec(stem_channels=4, units=(UnitSpec(8, 3, stride=2), UnitSpec(8, 5), UnitSpec(8, 3)))
    model = BoxNet(num_joints=1, spec=spec, boxes_per_channel=1).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.uniform_(0.5, 1.0)
            elif isinstance(module, BoxConv2d):
                module.boxes.copy_(torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    x = torch.ones(1, 3, 96, 96, requires_grad=True)
    model(x)[0, 0, 12, 12].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1))
    assert int(rows.max() - rows.min() + 1) == model.receptive_field() == 3 + 2 * 2 + 4 * 4 + 2 * 4


def test_dilated_padding() -> None:
    assert [dilation_for_window(k) for k in (13, 25, 31)] == [4, 8, 10]
    with pytest.raises(ValueError, match="3d \\+ 1"):
        dilation_for_window(15)
    # Even d: symmetric padding, taps at -6, -2, 2, 6 around the output pixel (the 13 x 13 box window).
    layer = DilatedDepthwise4x4(1, 1, dilation=4)
    assert layer.padding is None and layer.conv.padding == (6, 6)
    nn.init.ones_(layer.conv.weight)
    impulse = torch.zeros(1, 1, 1, 31)
    impulse[..., 15] = 1.0
    out = layer(impulse.expand(1, 1, 31, 31).contiguous())
    assert out.shape == (1, 1, 31, 31)
    assert torch.nonzero(out[0, 0, 15]).flatten().tolist() == [9, 13, 17, 21]
    # Odd d: 3d is odd, the extra pixel goes right/bottom (PyTorch's padding="same" convention).
    odd = DilatedDepthwise4x4(2, 3, dilation=1)
    assert odd.padding == (1, 2, 1, 2)
    x = torch.randn(1, 2, 9, 8)
    assert odd(x).shape == (1, 6, 9, 8)
    with warnings.catch_warnings():  # "padding='same' with even kernel lengths ... may require a copy"
        warnings.simplefilter("ignore", UserWarning)
        same = nn.functional.conv2d(x, odd.conv.weight, padding="same", groups=2)
    assert torch.allclose(odd(x), same, atol=1e-6)


def test_invalid_tables_and_arguments() -> None:
    with pytest.raises(ValueError, match="4 times"):
        BoxNet(3, BoxNetSpec(8, (UnitSpec(8, 3),)))
    with pytest.raises(ValueError, match="stride 1"):
        BoxNet(3, BoxNetSpec(8, (UnitSpec(8, 13, stride=2),)))
    with pytest.raises(ValueError, match="split"):
        build_model("boxnet_tiny", num_joints=3, depthwise="conv3x3", split="h2")
    with pytest.raises(ValueError, match="depthwise"):
        build_model("boxnet_tiny", num_joints=3, depthwise="box5x5")
    with pytest.raises(ValueError, match="boxes_per_channel"):
        build_model("boxnet", num_joints=3, boxes_per_channel=0)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"depthwise": "conv3x3"}, {"depthwise": "dilated"}, {"split": "q4", "boxes_per_channel": 2}],
)
def test_forward_backward_and_projection(kwargs: dict) -> None:
    model = tiny(**kwargs).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    x = torch.randn(2, 3, 32, 48)
    out = model(x)
    assert out.shape == (2, 4, 8, 12)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    layers = box_conv_layers(model)
    if kwargs.get("depthwise", "box") == "box":
        assert layers and all(layer.boxes.grad.abs().sum() > 0 for _, layer in layers)
        optimizer.step()  # a huge step throws boxes out of [-1, 1] and disorders them
        project_boxes_(model)
        for _, layer in layers:
            boxes = layer.boxes.detach()
            assert boxes.abs().max() <= 1.0
            assert (boxes[:, 0] <= boxes[:, 1]).all() and (boxes[:, 2] <= boxes[:, 3]).all()
    else:
        assert not layers


def test_state_dict_round_trip() -> None:
    model = tiny().train()
    model(torch.randn(4, 3, 32, 32))  # moves the BN running statistics
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = tiny()
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(2, 3, 32, 32)
    model.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_channels_last_and_autocast() -> None:
    model = tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        cl_model = tiny().eval()
        cl_model.load_state_dict(model.state_dict())
        cl_model = cl_model.to(memory_format=torch.channels_last)
        out = cl_model(x.contiguous(memory_format=torch.channels_last))
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(out, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert torch.allclose(low.float(), reference, atol=0.05 * reference.abs().max().item())


def test_torch_compile_inductor_matches_eager() -> None:
    """Default inductor backend, whole graph (about 40 s on 2 CPU cores with a cold compile cache)."""
    model = tiny().eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        out = compiled(x)
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_torch_compile_training_step() -> None:
    """A training step through the box op's autograd formula, compiled with aot_eager (inductor's training
    graph takes about 85 s to compile here)."""
    model = tiny().train()
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(2, 3, 32, 32)
    compiled(x).square().mean().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert torch.allclose(
            grads[name], p.grad, rtol=1e-3, atol=1e-6 * p.grad.abs().max().item() + 1e-12
        ), name


def test_spec_table_is_the_documented_one() -> None:
    """docs/architecture.md, "Final layer table": the 13 Block labels of Fig. 3 in flow order."""
    assert BOXNET_SPEC.stem_channels == 192 and BOXNET_SPEC.basic_unit == "shufflenetv2"
    assert [(u.out_channels, u.window, u.stride) for u in BOXNET_SPEC.units] == [
        (192, 3, 1),
        (288, 3, 2),
        (288, 3, 1),
        (384, 13, 1),
        (384, 3, 1),
        (384, 13, 1),
        (384, 3, 1),
        (768, 3, 1),
        (768, 3, 1),
        (384, 31, 1),
        (384, 25, 1),
        (384, 25, 1),
        (384, 13, 1),
    ]


def test_scaled_spec_and_tiny_widths() -> None:
    assert scaled_spec(BOXNET_SPEC, 384) == BOXNET_SPEC
    tiny_spec = scaled_spec(BOXNET_SPEC, 48)
    assert tiny_spec.stem_channels == 24
    assert sorted({u.out_channels for u in tiny_spec.units}) == [24, 36, 48, 96]
    assert tiny_spec.basic_unit == BOXNET_SPEC.basic_unit
    assert [u.window for u in tiny_spec.units] == [u.window for u in BOXNET_SPEC.units]
    assert tiny().spec == tiny_spec and tiny(width=32).spec.stem_channels == 16
    with pytest.raises(ValueError, match="even"):
        scaled_spec(BOXNET_SPEC, 33)


def test_split_boxes_under_autocast() -> None:
    """The piece weights' coefficients stay float32 under autocast (the op needs them with the corners)."""
    model = tiny(split="h2").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    torch.testing.assert_close(out.float(), expected, rtol=0.1, atol=0.1 * expected.abs().max().item())
