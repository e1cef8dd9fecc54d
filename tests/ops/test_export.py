"""Export through the reference path: ONNX (run with onnxruntime) and TorchScript."""

from __future__ import annotations

import warnings

import pytest
import torch

from boxpose.nn import BoxConv2d
from boxpose.ops import use_impl


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 1),
        BoxConv2d(4, 7, boxes_per_channel=2),
        torch.nn.ReLU(),
        BoxConv2d(8, 5, split="h2"),
    ).eval()


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("explicit_reference", [True, False])
def test_onnx_export_runs_in_onnxruntime(tmp_path, dynamo, explicit_reference):
    ort = pytest.importorskip("onnxruntime")
    model = _model()
    x = torch.randn(2, 3, 16, 12)
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if explicit_reference:
            with use_impl("reference"):
                torch.onnx.export(model, (x,), str(path), dynamo=dynamo)
        else:  # the op switches to the reference path by itself while exporting
            torch.onnx.export(model, (x,), str(path), dynamo=dynamo)
    session = ort.InferenceSession(str(path))
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-4, atol=1e-4)


def test_torchscript_trace_matches_eager():
    model = _model()
    x = torch.randn(1, 3, 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)
