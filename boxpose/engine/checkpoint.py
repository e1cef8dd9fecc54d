"""Checkpoints: atomic writes, ``weights_only`` loading, RNG-state capture, prefix-tolerant model loading.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(path, weights_only=True)`` (no pickled objects)::

    {"format": "boxpose-checkpoint-v1", "model": state_dict, "optimizer": ..., "scheduler": ...,
     "scaler": ..., "epoch": int (epochs completed), "step": int (optimizer steps), "step_in_epoch": int,
     "best_metric": float | None, "best_epoch": int | None, "metric_name": str, "rng": {...},
     "epoch_sums": running loss/accuracy sums of the current epoch, "pending_validation": the finished
     epoch's training statistics while its validation has not completed (else None), "world_size": int,
     "config": resolved config dict, "model_name": str, "model_reading": str, "num_joints": int,
     "input_size": [w, h]}

``model_reading`` (since boxpose 0.2) says which reading of the paper's Fig. 3 a BoxNet checkpoint holds.

Model state dicts are saved without the ``module.`` (DistributedDataParallel) and ``_orig_mod.``
(torch.compile) prefixes, and both are accepted when loading.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

FORMAT = "boxpose-checkpoint-v1"
_PREFIXES = ("module.", "_orig_mod.")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files that a process killed while writing a checkpoint left in
    ``directory`` (only those whose process no longer runs, so a concurrent writer is never disturbed).
    Returns the removed paths."""
    removed = []
    for tmp in Path(directory).glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a crash mid-write never leaves a corrupt file behind
    (the temporary ``.<name>.tmp-<pid>`` a ``kill -9`` leaves is removed by the next save in that folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; clear errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"could not read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path} is not a boxpose checkpoint (no 'model' entry)")
    return checkpoint


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP's ``module.`` and torch.compile's ``_orig_mod.`` prefixes from every key."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    changed = True
        out[key] = value
    return out


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return strip_prefixes(unwrap_model(model).state_dict())


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool = True) -> None:
    """Load a state dict saved with or without wrapper prefixes into a plain or wrapped model.

    Raises:
        ValueError: the state dict is of another architecture; for BoxNets the message names the reading
            of Fig. 3 that each holds (``boxnet`` vs the earlier ``boxnet_11unit_m2``).
    """
    from boxpose.models.boxnet import BoxNet, reading_of_state_dict

    plain = unwrap_model(model)
    state_dict = strip_prefixes(state_dict)
    try:
        plain.load_state_dict(state_dict, strict=strict)
    except RuntimeError as exc:
        held = reading_of_state_dict(state_dict)
        if isinstance(plain, BoxNet) and held is not None and held != plain.reading:
            raise ValueError(
                f"the weights are a BoxNet of another reading of Fig. 3 ({held}) than the model "
                f"({plain.reading}): 'boxnet' is the 13-unit reading since boxpose 0.2, checkpoints of "
                "0.1's 11-unit reading load as model 'boxnet_11unit_m2'"
            ) from None
        detail = (str(exc).splitlines()[1:2] or [str(exc)])[0].strip()
        raise ValueError(f"the weights do not fit the model {type(plain).__name__}: {detail}") from exc


def capture_rng_state() -> dict[str, Any]:
    """The states of every random generator that training uses (torch CPU/CUDA, numpy, random)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> list[int]:
    """NumPy's global (legacy) generator state as plain ints: the 624 keys, then the position."""
    _, keys, position, _, _ = np.random.get_state()  # noqa: NPY002 - the global generator libraries use
    return [int(v) for v in keys] + [int(position)]


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = np.asarray(state["numpy"][:-1], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy"][-1], 0, 0.0))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model(
    path: str | Path, device: str | torch.device = "cpu", prepare: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a training checkpoint was saved from and load its weights.

    Returns:
        (model in eval mode on ``device``, the checkpoint dict).
    """
    from boxpose.models import build_model, prepare_for_inference
    from boxpose.models.boxnet import EARLIER_READING, earlier_reading_call, reading_of_state_dict

    checkpoint = load_checkpoint(path)
    config = checkpoint.get("config") or {}
    model_cfg = dict(config.get("model") or {})
    name = checkpoint.get("model_name") or model_cfg.get("name")
    if not name or "num_joints" not in checkpoint:
        raise ValueError(f"{path} does not say which model it holds (no model_name / num_joints)")
    model_cfg.pop("name", None)
    model_cfg.pop("pretrained", None)  # the weights come from the checkpoint, not from ImageNet
    earlier = earlier_reading_call(name, model_cfg)
    held = reading_of_state_dict(strip_prefixes(checkpoint["model"]))
    if "model_reading" not in checkpoint and earlier is not None and held and held.startswith("11 units"):
        log.warning(
            "%s holds boxpose 0.1's %s (the earlier 11-unit reading of Fig. 3): loading it as %s(%s)",
            path, name, EARLIER_READING, ", ".join(f"{k}={v!r}" for k, v in earlier.items()),
        )  # fmt: skip
        name, model_cfg = EARLIER_READING, earlier
    model = build_model(name, num_joints=int(checkpoint["num_joints"]), **model_cfg)
    try:
        load_model_state(model, checkpoint["model"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    model = model.to(device).eval()
    return (prepare_for_inference(model) if prepare else model), checkpoint
