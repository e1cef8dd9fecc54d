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
    BOXNET_SPEC,
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
    # Box units: 3 basic (one box layer) x 4 + 2 changing (two box layers each).
    assert [name for name, _ in layers] == [
        "units.1.branch1.0",
        "units.1.branch2.3",
        "units.3.branch.0",
        "units.7.branch1.0",
        "units.7.branch2.3",
        "units.8.branch.0",
        "units.9.branch.0",
        "units.10.branch.0",
    ]
    assert [layer.max_size for _, layer in layers] == [13, 13, 13, 31, 31, 25, 25, 13]
    assert all(layer.boxes_per_channel == 2 for _, layer in layers)
    dilated = build_model("boxnet_dilated", num_joints=17)
    convs = [m.conv for m in dilated.modules() if isinstance(m, DilatedDepthwise4x4)]
    assert [c.dilation[0] for c in convs] == [4, 4, 4, 10, 10, 8, 8, 4]
    assert not box_conv_layers(build_model("boxnet_3x3", num_joints=17))


def test_receptive_fields() -> None:
    model = build_model("boxnet", num_joints=17)
    table = model.unit_table()
    assert [u.receptive_field for u in table] == [7, 55, 63, 111, 119, 127, 135, 255, 351, 447, 495]
    assert [u.kind for u in table][:3] == ["changing", "changing", "basic"]
    assert table[7].depthwise == "box k=31 m=2"
    assert model.receptive_field() == 495
    dilated = build_model("boxnet_dilated", num_joints=17)
    assert dilated.receptive_field() == 495  # a 4x4 kernel with dilation (k - 1) / 3 spans k pixels
    assert dilated.unit_table()[7].depthwise == "dilated 4x4 d=10 m=2 (k=31)"
    assert build_model("boxnet_3x3", num_joints=17).receptive_field() == 7 + 10 * 2 * 4


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
    [{}, {"depthwise": "conv3x3"}, {"depthwise": "dilated"}, {"split": "q4", "boxes_per_channel": 1}],
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
    assert BOXNET_SPEC.stem_channels == 192
    assert [(u.out_channels, u.window, u.stride) for u in BOXNET_SPEC.units] == [
        (288, 3, 2),
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
    assert sorted({u.out_channels for u in tiny_spec.units}) == [36, 48, 96]
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
