"""prepare_for_inference: folded BatchNorms give the eval-mode model's output, for every model family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from boxpose.models import build_model, list_models, prepare_for_inference
from boxpose.models.inference import fold_batchnorms_

# (model, kwargs, input size): every registered family, the full models at 64x64.
CASES = [
    ("boxnet", {}, (64, 64)),
    ("boxnet_3x3", {}, (64, 64)),
    ("boxnet_dilated", {}, (64, 64)),
    ("boxnet_split_h2", {}, (64, 64)),
    ("boxnet_split_v2", {}, (32, 32)),
    ("boxnet_split_q4", {}, (32, 32)),
    ("boxnet_tiny", {}, (32, 48)),
    ("boxnet_tiny", {"depthwise": "dilated", "boxes_per_channel": 2}, (32, 32)),
    ("boxnet_11unit_m2", {"width": 48}, (32, 32)),
    ("simple_baseline_r50", {}, (64, 64)),
    ("hourglass8", {}, (64, 64)),
]


def randomize_batchnorms_(model: nn.Module, seed: int = 0) -> None:
    """Statistics and affine parameters away from 0 / 1, as after training (fresh ones fold trivially)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.5 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                module.weight.copy_(0.5 + torch.rand(c, generator=generator))
                module.bias.copy_(0.2 * torch.randn(c, generator=generator))


def test_cases_cover_every_registered_model() -> None:
    assert {name for name, _, _ in CASES} == set(list_models())


@pytest.mark.parametrize(("name", "kwargs", "size"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_prepared_model_matches_eval_model(name: str, kwargs: dict, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_joints=5, **kwargs)
    randomize_batchnorms_(model)
    model.train()  # prepare_for_inference must not depend on (or change) the mode it is given
    before = {key: value.clone() for key, value in model.state_dict().items()}
    x = torch.randn(2, 3, *size)

    prepared = prepare_for_inference(model, memory_format="contiguous")
    with torch.no_grad():
        expected = model.eval()(x)
        out = prepared(x)

    assert not prepared.training
    assert type(prepared) is type(model)
    scale = expected.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * scale)
    # The input model is untouched: same weights, its BatchNorms still there.
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize("name", ["boxnet_tiny", "boxnet_split_h2", "boxnet_dilated", "simple_baseline_r50"])
def test_every_batchnorm_is_folded(name: str) -> None:
    model = build_model(name, num_joints=3)
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    prepared = prepare_for_inference(model)
    assert bns > 0
    assert [n for n, m in prepared.named_modules() if isinstance(m, nn.BatchNorm2d)] == []


def test_hourglass_keeps_only_its_preactivation_batchnorms() -> None:
    """A residual module's first BN follows a sum and precedes a ReLU: no convolution can absorb it."""
    model = build_model("hourglass8", num_joints=3).eval()
    total = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    residuals = sum(type(m).__name__ == "Residual" for m in model.modules())
    assert fold_batchnorms_(model) == total - residuals
    left = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(left) == residuals and all(n.endswith(".body.0") for n in left)


def test_box_batchnorm_folds_into_the_following_pointwise_convolution() -> None:
    """box -> BN -> 1x1: by hand, W (s x + t) + b with the BN's s, t becomes the 1x1's weight and bias."""
    model = build_model("boxnet_tiny", num_joints=2).eval()
    randomize_batchnorms_(model)
    branch = model.units[5].branch  # basic unit, box window 13: 1x1, BN, ReLU, box, BN, 1x1, BN, ReLU
    bn, conv, bn2 = branch[4], branch[5], branch[6]
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    t = bn.bias - bn.running_mean * s
    s2 = bn2.weight / torch.sqrt(bn2.running_var + bn2.eps)
    t2 = bn2.bias - bn2.running_mean * s2
    w = conv.weight[:, :, 0, 0]
    expected_weight = (s2[:, None] * w) * s[None, :]
    expected_bias = s2 * (w @ t) + t2

    prepared = prepare_for_inference(model, memory_format="contiguous")
    folded = prepared.units[5].branch[5]
    assert isinstance(prepared.units[5].branch[4], nn.Identity)
    torch.testing.assert_close(folded.weight[:, :, 0, 0], expected_weight.detach())
    torch.testing.assert_close(folded.bias, expected_bias.detach())


def test_channels_last_preparation_matches() -> None:
    model = build_model("boxnet_tiny", num_joints=4)
    randomize_batchnorms_(model)
    x = torch.randn(2, 3, 32, 32)
    prepared = prepare_for_inference(model, memory_format="channels_last")
    with torch.no_grad():
        expected = model.eval()(x)
        out = prepared(x)  # an NCHW input: the first convolution's channels-last weight converts it
    assert prepared.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_bad_memory_format() -> None:
    with pytest.raises(ValueError, match=r"memory_format must be one of .*'nhwc'"):
        prepare_for_inference(build_model("boxnet_tiny", num_joints=2), memory_format="nhwc")


def test_trained_in_one_memory_format_evaluates_the_same_in_the_other() -> None:
    """A few training steps in channels-last; the state dict evaluated in NCHW (eager and prepared) and in
    channels-last gives the same heatmaps."""
    torch.manual_seed(0)
    model = build_model("boxnet_tiny", num_joints=3).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(4, 3, 32, 32)
    target = torch.rand(4, 3, 8, 8)
    for _ in range(3):
        loss = nn.functional.mse_loss(model(x.contiguous(memory_format=torch.channels_last)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    nchw = build_model("boxnet_tiny", num_joints=3)
    nchw.load_state_dict(model.state_dict())
    test = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = nchw.eval()(test)
        outputs = {
            "channels_last": model.eval()(test.contiguous(memory_format=torch.channels_last)),
            "prepared_nchw": prepare_for_inference(nchw, "contiguous")(test),
            "prepared_channels_last": prepare_for_inference(model, "channels_last")(test),
        }
    assert not expected.is_contiguous(memory_format=torch.channels_last)
    for name, out in outputs.items():
        torch.testing.assert_close(
            out, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item(), msg=name
        )


def test_preferred_memory_format() -> None:
    from boxpose.models.inference import preferred_memory_format

    dilated = build_model("boxnet_tiny", num_joints=2, depthwise="dilated")
    assert preferred_memory_format("cpu", build_model("boxnet_tiny", num_joints=2)) == "channels_last"
    assert preferred_memory_format("cpu", dilated) == "contiguous"
    assert preferred_memory_format("cuda", dilated) == "channels_last"
    prepared = prepare_for_inference(dilated)  # "auto" on the CPU
    assert not prepared.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
