"""``boxpose-export``: export a checkpoint to ONNX or TorchScript and check the export against PyTorch.

The box convolutions go through the op's pure-PyTorch reference path (summed-area table, gathers and
a weighted sum), which both exporters translate; the compiled kernels are PyTorch-only. The exported
graph takes (N, 3, H, W) normalised crops at the checkpoint's input size and returns (N, K, h, w)
heatmaps (the last stack for intermediate-supervision models). With ``verify`` the exported model is
run (onnxruntime for ONNX, torch.jit for TorchScript) on random input and compared with PyTorch; the
maximum difference is printed in the last-line JSON and must be under ``tolerance``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from boxpose.config import to_plain, validate_export_config
from boxpose.engine.checkpoint import load_model
from boxpose.engine.inference import final_heatmaps
from boxpose.ops import use_impl

FORMATS = ("onnx", "torchscript")


class _LastStack(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return final_heatmaps(self.model(x))


def export(cfg: dict[str, Any]) -> dict[str, Any]:
    fmt = cfg["format"]
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    checkpoint_path = Path(cfg["checkpoint"])
    model, checkpoint = load_model(checkpoint_path, "cpu", prepare=bool(cfg.get("prepare", True)))
    model = _LastStack(model).eval()
    width, height = checkpoint["input_size"]
    example = torch.randn(2, 3, height, width)
    suffix = ".onnx" if fmt == "onnx" else ".torchscript.pt"
    output = Path(cfg.get("output") or checkpoint_path.with_suffix(suffix))
    output.parent.mkdir(parents=True, exist_ok=True)
    with use_impl("reference"), torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model(example)
        if fmt == "onnx":
            axes = (
                {"input": {0: "batch"}, "heatmaps": {0: "batch"}} if cfg.get("dynamic_batch", True) else None
            )
            torch.onnx.export(
                model, (example,), str(output), input_names=["input"], output_names=["heatmaps"],
                dynamic_axes=axes, dynamo=False,
            )  # fmt: skip
        else:
            torch.jit.trace(model, example).save(str(output))
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint_path),
        "format": fmt,
        "output": str(output),
        "input_shape": [None, 3, height, width],
        "output_shape": list(expected.shape),
    }
    if cfg.get("verify", True):
        got = _run_exported(fmt, output, example)
        if got is None:
            summary["verified"] = "skipped: onnxruntime is not installed"
        else:
            diff = float((got - expected).abs().max())
            summary["max_abs_diff"] = diff
            summary["verified"] = diff <= float(cfg.get("tolerance", 1e-4))
            if not summary["verified"]:
                raise RuntimeError(f"the exported model differs from PyTorch by {diff:.3g} (> tolerance)")
    print(json.dumps(summary))
    return summary


def _run_exported(fmt: str, path: Path, example: torch.Tensor) -> torch.Tensor | None:
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path))(example)
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": example.numpy()})
    return torch.from_numpy(out)


@hydra.main(version_base=None, config_path="pkg://boxpose._configs", config_name="export")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        plain = to_plain(cfg)
        validate_export_config(plain)
        export(plain)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"boxpose-export: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
